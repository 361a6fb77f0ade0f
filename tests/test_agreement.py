"""What the replicas of a cluster agree on, on two mirrored CPU replicas in one process: a NaN
loss on one replica stops every replica at that step; replicas holding different weights after a
restore are refused with one line; a failed cluster step names a worker whose port closes while
the others look (asked once after a timed-out step), and says in one line what TensorFlow
reported."""

import socket
import threading

import numpy as np
import pytest
import tensorflow as tf

from theseus.errors import TrainingError
from theseus.stage import Stage
from theseus.training import agreement
from theseus.training import distribute
from theseus.training import update

tf1 = tf.compat.v1


def _two_replicas():
  config = distribute.session_config(0, False)
  return distribute.make_cluster("mirrored", ("/cpu:0", "/cpu:1"), 4, config)


def _step(cluster, poison_replica):
  """A one-variable model whose loss is NaN on replica `poison_replica` only (None: nowhere)."""
  features = {"x": tf.constant(np.arange(8, dtype=np.float32).reshape(4, 2))}

  def model_fn(f, draw_seed):
    del draw_seed
    w = tf1.get_variable("w", [2], initializer=tf1.ones_initializer())
    loss = tf.reduce_mean(tf.reduce_sum(f["x"] * w, axis=1))
    if poison_replica is not None:
      replica = tf.distribute.get_replica_context().replica_id_in_sync_group
      loss *= tf.where(tf.equal(replica, poison_replica), np.nan, 1.0)
    return loss, {"hard": loss}, None

  hyper = update.Hyperparameters(learning_rate=1e-2, num_train_steps=10, num_warmup_steps=0,
                                 accumulation=1, clip_norm=1.0, weight_decay_rate=0.0)
  with cluster.strategy.scope():
    return update.build_train_step(cluster, features, model_fn, Stage.of(0), hyper, 1)


def test_a_nan_loss_on_another_replica_is_seen_by_every_replica():
  with tf.Graph().as_default():
    cluster = _two_replicas()
    step = _step(cluster, poison_replica=1)
    with tf1.Session(config=cluster.session_config) as sess:
      sess.run(tf1.global_variables_initializer())
      loss, everywhere = sess.run([step.loss, step.loss_everywhere])
  assert np.isfinite(loss) and np.isnan(everywhere)  # replica 0 fine, yet it stops


def test_the_loss_everywhere_is_the_sum_of_the_replicas_losses():
  with tf.Graph().as_default():
    cluster = _two_replicas()
    step = _step(cluster, poison_replica=None)
    with tf1.Session(config=cluster.session_config) as sess:
      sess.run(tf1.global_variables_initializer())
      loss, everywhere = sess.run([step.loss, step.loss_everywhere])
  # Replica 0 reads rows 0-1 (x sums 1 and 5), replica 1 rows 2-3 (9 and 13).
  assert loss == pytest.approx(3.0) and everywhere == pytest.approx(3.0 + 11.0)


def test_replicas_holding_different_weights_after_a_restore_are_refused():
  with tf.Graph().as_default():
    cluster = _two_replicas()
    with cluster.strategy.scope():
      w = tf1.get_variable("w", [3], initializer=tf1.ones_initializer())
      global_step = tf1.train.get_or_create_global_step()
      state = agreement.restored_state(cluster.strategy, global_step, [w])
    local = lambda value: distribute.local_values(cluster, value)  # noqa: E731
    with tf1.Session(config=cluster.session_config) as sess:
      sess.run(tf1.global_variables_initializer())
      agreement.check_restored(sess, state, local, 0, 2, "ckpt-4")  # the same: no error
      sess.run(local(w)[1].assign([1.0, 1.0, 2.0]))  # replica 1 restored something else
      with pytest.raises(TrainingError) as e:
        agreement.check_restored(sess, state, local, 0, 2, "ckpt-4")
  assert str(e.value).startswith(
      "the workers do not hold the same model after restoring ckpt-4: worker 0 is at "
      "global_step 0 (weights checksum 3), the cluster's mean is global_step 0.0 (checksum 3.5)")


def _graph_error():
  """The InvalidArgumentError a session run raises, as TensorFlow formats it (with the stack)."""
  with tf.Graph().as_default():
    x = tf1.placeholder(tf.float32, [None])
    y = tf.reshape(x, [3])
    with tf1.Session() as sess:
      try:
        sess.run(y, {x: [1.0, 2.0]})
      except tf.errors.InvalidArgumentError as e:
        return e
  raise AssertionError("the reshape ran")


def test_a_failed_step_says_what_tensorflow_reported_in_one_line():
  error = _graph_error()
  assert "File " in error.message  # the stack the line must not carry
  assert agreement.error_summary(error) == (
      "InvalidArgumentError: Input to reshape is a tensor with 2 values, but the requested "
      "shape has 3")


def _line_for_worker_1(error, close_after_s=None, **settle):
  """worker_gone's line, as worker 0, when worker 1 listens on a local port (closed after
  `close_after_s` seconds if given): (the line, worker 1's address)."""
  port = socket.socket()
  port.bind(("127.0.0.1", 0))
  port.listen(8)
  address = "127.0.0.1:%d" % port.getsockname()[1]
  timer = threading.Timer(close_after_s, port.close) if close_after_s else None
  if timer:
    timer.start()  # the first probe still reaches it
  try:
    # Index 0 is this worker: never probed.
    return str(agreement.worker_gone(error, ["127.0.0.1:1", address], 0, 7, 20, **settle)), address
  finally:
    if timer:
      timer.cancel()
    port.close()


def test_a_worker_whose_port_closes_after_the_step_failed_is_named():
  """A killed worker's port can still accept a connection just after its peers' step failed."""
  line, address = _line_for_worker_1(_graph_error(), close_after_s=1.0)
  assert line.startswith("worker 1 (%s) stopped answering during step 7; this worker stops "
                         "too." % address), line


def test_workers_that_keep_answering_are_said_to_answer():
  line, _ = _line_for_worker_1(_graph_error(), settle_s=1.0)
  assert line == ("step 7 of the cluster failed or waited more than 20 s (--step_timeout_s) for "
                  "the other workers, which still answer: InvalidArgumentError: Input to reshape "
                  "is a tensor with 2 values, but the requested shape has 3")


def test_after_a_timed_out_step_the_workers_are_probed_once():
  """A worker that died during the wait is long gone by then: no seconds spent asking again."""
  line, _ = _line_for_worker_1(
      tf.errors.DeadlineExceededError(None, None, "Timed out waiting for notification"),
      close_after_s=1.0)
  assert line == ("step 7 of the cluster failed or waited more than 20 s (--step_timeout_s) for "
                  "the other workers, which still answer: DeadlineExceededError: Timed out "
                  "waiting for notification")
