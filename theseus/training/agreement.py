"""What the replicas of a cluster must agree on, so that one bad worker stops them all at once.

* `restored_state`: after the variables are initialised or restored, every replica's
  global_step and a checksum of its weights, summed across the replicas (and their squares):
  `check_restored` stops with one line when a worker restored another checkpoint than the rest
  (each worker reads the newest checkpoint of its own --output_dir).
* `loss_everywhere`: the micro-batch loss summed across the replicas, fetched with each step:
  NaN / Inf on any replica makes it NaN / Inf on every one, so all stop at the same step instead
  of the others waiting for the one that stopped.
* `worker_gone`: when a cluster step fails or times out (the sessions' operation timeout is
  --step_timeout_s), the line that names the worker that no longer answers. A killed worker's
  port may accept connections for a moment after its peers saw the step fail (its process is
  still being torn down), so after a failed (not timed-out) step the workers are asked again for
  a few seconds before the line says they all answer.
"""

import socket
import time

import numpy as np
import tensorflow as tf

from theseus.errors import TrainingError

tf1 = tf.compat.v1

_SUM = tf.distribute.ReduceOp.SUM
_RELATIVE_TOLERANCE = 1e-9


def loss_everywhere(loss, num_replicas):
  """Replica context: `loss` summed over the replicas (the loss itself with one replica)."""
  if num_replicas == 1:
    return loss
  return tf.distribute.get_replica_context().all_reduce(_SUM, tf.stop_gradient(loss))


def _replica_state(global_step, variables):
  """Replica context: ([global_step, weight checksum] here, their sum and the sum of squares
  over the replicas), float64."""
  checksum = tf.add_n([tf.reduce_sum(tf.cast(v, tf.float64)) for v in variables])
  here = tf.stop_gradient(tf.stack([tf.cast(global_step, tf.float64), checksum]))
  context = tf.distribute.get_replica_context()
  return here, context.all_reduce(_SUM, here), context.all_reduce(_SUM, here * here)


def restored_state(strategy, global_step, variables):
  """The op check_restored runs (None with one replica): per replica, (its state, the sums)."""
  if strategy.num_replicas_in_sync == 1:
    return None
  return strategy.extended.call_for_each_replica(_replica_state, args=(global_step, variables))


def check_restored(sess, state_op, local_values, worker_index, num_replicas, checkpoint):
  """TrainingError unless every replica holds the same global_step and weights.

  local_values: callable(per-replica value) -> this process's replicas' values (a list).
  """
  if state_op is None:
    return
  # Every local replica's values: a replica's all-reduce waits for the others' to run.
  here, sums, squares = [values[0] for values in sess.run([local_values(v) for v in state_op])]
  mean = sums / num_replicas
  spread = np.sqrt(np.maximum(squares / num_replicas - mean * mean, 0.0))
  if np.all(spread <= _RELATIVE_TOLERANCE * np.maximum(np.abs(mean), 1.0)):
    return
  raise TrainingError(
      "the workers do not hold the same model after %s: worker %d is at global_step %d "
      "(weights checksum %.9g), the cluster's mean is global_step %.1f (checksum %.9g). Every "
      "worker resumes from the newest checkpoint of its --output_dir: give all of them the same "
      "directory (a shared file system), or remove the newer checkpoints"
      % ("restoring " + checkpoint if checkpoint else "initialisation", worker_index, here[0],
         here[1], mean[0], mean[1]))


def unreachable_workers(workers, index, timeout_s=2.0):
  """The (index, address) of the other workers that do not accept a connection now."""
  gone = []
  for other, address in enumerate(workers):
    if other == index:
      continue
    host, port = address.rsplit(":", 1)
    try:
      socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError:
      gone.append((other, address))
  return gone


def error_summary(error):
  """`error` (a tf.errors.OpError) in one short line: its class and what TensorFlow said, without
  the Python stack a graph error carries ("Detected at node ... File ...")."""
  kept = []
  for line in str(getattr(error, "message", error)).splitlines():
    text = line.strip()
    if (not text or line[:1].isspace() or text.startswith(("Detected at node", "Node:", "[[",
                                                           "Graph execution error")) or
        text.endswith("(most recent call last):")):
      continue
    kept.append(text)
  return "%s: %s" % (type(error).__name__, " ".join(" ".join(kept).split())[:300])


def worker_gone(error, workers, index, step, timeout_s, settle_s=5.0):
  """The TrainingError of a cluster step that failed with `error` (a tf.errors.OpError).

  The other workers are probed until one does not answer or `settle_s` seconds have passed (once
  only after a step that timed out: a worker that died then is long gone).
  """
  if isinstance(error, tf.errors.DeadlineExceededError):
    settle_s = 0.0
  deadline = time.monotonic() + settle_s
  gone = unreachable_workers(workers, index)
  while not gone and time.monotonic() < deadline:
    time.sleep(0.5)
    gone = unreachable_workers(workers, index)
  step = "?" if step is None else step
  if gone:
    names = ", ".join("worker %d (%s)" % pair for pair in gone)
    return TrainingError(
        "%s stopped answering during step %s; this worker stops too. Start every worker again "
        "with the same command: they resume from the newest checkpoint" % (names, step))
  return TrainingError(
      "step %s of the cluster failed or waited more than %d s (--step_timeout_s) for the "
      "other workers, which still answer: %s" % (step, timeout_s, error_summary(error)))
