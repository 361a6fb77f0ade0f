"""Where a run trains: one process, several devices of one machine, or several worker processes.

`make_cluster(mode, devices, ...)` turns --distribute into a `Cluster`, the tf.distribute
strategy the training graph is built under and the session target it runs on:

* none: TensorFlow's default strategy, one replica, a local session (the default);
* mirrored: tf.distribute.MirroredStrategy over --mirrored_devices (default: every GPU TensorFlow
  sees, else the CPU), one process, one replica per device;
* multi_worker: tf.compat.v1 MultiWorkerMirroredStrategy, one replica per worker process (or
  machine), the cluster read from TF_CONFIG as TensorFlow documents it
  (`{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}}`). The
  process starts its own tf.distribute.Server and its sessions run on it; worker 0 is the chief.

--train_batch_size is the global batch in every mode: each replica takes its share (the batch
must divide evenly), so steps, schedules and accumulation are those of one process with the same
batch. Every worker forms the same global batches from the unparsed records and parses only its
rows (input_pipeline.make_dataset); the chief alone writes checkpoints, summaries, evaluations
and exports, into an --output_dir every worker must see.
"""

import collections
import json
import os
import re
import socket
import time

from absl import logging
import tensorflow as tf
from tensorflow.core.protobuf import rewriter_config_pb2

from theseus.errors import InputDataError
from theseus.errors import TrainingError

tf1 = tf.compat.v1

DISTRIBUTE_MODES = ("none", "mirrored", "multi_worker")

Cluster = collections.namedtuple("Cluster", [
    "mode", "strategy", "target", "session_config", "is_chief", "worker_index", "num_workers",
    "num_replicas"])

# A multi-worker cluster is made once per process: TensorFlow allows a process one server, and a
# MultiWorkerMirroredStrategy holds collective state for the process.
_process_cluster = {}


def read_tf_config(environ=None):
  """The (worker addresses, this worker's index) of TF_CONFIG; InputDataError when it is wrong."""
  text = (environ if environ is not None else os.environ).get("TF_CONFIG")
  if not text:
    raise InputDataError("--distribute=multi_worker needs TF_CONFIG, e.g. '{\"cluster\": "
                         "{\"worker\": [\"host1:2222\", \"host2:2222\"]}, \"task\": "
                         "{\"type\": \"worker\", \"index\": 0}}' (launch_workers.py sets it)")
  try:
    spec = json.loads(text)
    workers = spec["cluster"]["worker"]
    task = spec["task"]
    if not isinstance(task, dict):
      raise TypeError("task is %r, not an object" % (task,))
  except (ValueError, KeyError, TypeError) as e:
    raise InputDataError("TF_CONFIG is not {\"cluster\": {\"worker\": [...]}, \"task\": "
                         "{...}} (%s: %s)" % (type(e).__name__, e))
  other_jobs = sorted(set(spec["cluster"]) - {"worker"})
  if other_jobs:
    raise InputDataError("TF_CONFIG: only a \"worker\" job is supported (worker 0 is the chief), "
                         "found %s" % ", ".join(other_jobs))
  if not isinstance(workers, list) or not workers or not all(
      isinstance(w, str) and ":" in w for w in workers):
    raise InputDataError("TF_CONFIG cluster.worker must be a list of \"host:port\", got %r"
                         % (workers,))
  if task.get("type") != "worker":
    raise InputDataError("TF_CONFIG task.type must be \"worker\", got %r" % (task.get("type"),))
  index = task.get("index")
  if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(workers):
    raise InputDataError("TF_CONFIG task.index must be an integer in [0, %d), got %r"
                         % (len(workers), index))
  return workers, index


_DEVICE_RE = re.compile(
    r"^/(?:job:\w+/(?:replica:\d+/)?(?:task:\d+/)?)?(?:device:)?(cpu|gpu):(\d+)$")


def check_distribution(mode, mirrored_devices):
  """InputDataError for a TF_CONFIG or --mirrored_devices that cannot work, before any long
  work (a GPU this machine does not have; several CPU replicas are logical devices)."""
  if mode == "multi_worker":
    read_tf_config()
  if mode != "mirrored":
    return
  gpus = len(tf.config.list_physical_devices("GPU"))
  for device in mirrored_devices:
    m = _DEVICE_RE.match(device.lower())
    if not m:
      raise InputDataError("--mirrored_devices: %r is not a device such as /gpu:0 or /cpu:0"
                           % device)
    if m.group(1) == "gpu" and int(m.group(2)) >= gpus:
      raise InputDataError("--mirrored_devices: %s does not exist: TensorFlow sees %d GPU(s) on "
                           "this machine" % (device, gpus))


def wait_for_workers(workers, index, timeout_s):
  """Waits until every other worker's address accepts a connection.

  Logs whom it waits for every 30 s; TrainingError naming the first worker that has not come up
  after timeout_s.
  """
  start, last_note = time.time(), 0.0
  for other, address in enumerate(workers):
    if other == index:
      continue
    host, port = address.rsplit(":", 1)
    while True:
      try:
        socket.create_connection((host, int(port)), timeout=2).close()
        break
      except OSError:
        waited = time.time() - start
        if waited > timeout_s:
          raise TrainingError(
              "worker %d (%s) did not come up within %d s (--cluster_timeout_s): start it with "
              "the same command and its TF_CONFIG (task.index %d), or check its address"
              % (other, address, timeout_s, other))
        if waited - last_note >= 30:
          logging.info("waiting for worker %d (%s), %.0f s so far", other, address, waited)
          last_note = waited
        time.sleep(0.5)


def make_cluster(mode, mirrored_devices, global_batch_size, session_config,
                 cluster_timeout_s=600, step_timeout_s=3600):
  """The Cluster of --distribute `mode` (a multi-worker one is made once per process).

  Args:
    mode: "none", "mirrored" or "multi_worker".
    mirrored_devices: the devices of "mirrored" (empty: every GPU, else the CPU).
    global_batch_size: --train_batch_size, which the replicas must share evenly.
    session_config: the tf1.ConfigProto of the run's sessions; a copy is completed here.
    cluster_timeout_s: how long a multi-worker process waits for the others to come up.
    step_timeout_s: its sessions' operation timeout (a step that waits longer for the others
      fails, and the trainer names the worker that is gone).

  Raises:
    InputDataError: a bad TF_CONFIG, unknown devices, or a batch the replicas cannot share.
    TrainingError: another worker did not come up in time.
  """
  if mode not in DISTRIBUTE_MODES:
    raise InputDataError("--distribute must be one of %s, got %r"
                         % (", ".join(DISTRIBUTE_MODES), mode))
  config = tf1.ConfigProto()
  config.CopyFrom(session_config)
  if mode == "none":
    cluster = local_cluster(config)
  elif mode == "mirrored":
    cluster = _mirrored_cluster(mirrored_devices, config)
  else:
    if mode not in _process_cluster:
      _process_cluster[mode] = _multi_worker_cluster(config, cluster_timeout_s, step_timeout_s)
    cluster = _process_cluster[mode]
  if global_batch_size % cluster.num_replicas:
    raise InputDataError("--train_batch_size=%d (the global batch) must be a multiple of the %d "
                         "replicas" % (global_batch_size, cluster.num_replicas))
  return cluster


def session_config(num_threads, xla):
  """The tf1.ConfigProto of a run's sessions: thread counts (0: TensorFlow's choice), XLA, GPU
  memory that grows as needed, soft placement (an op without a kernel on the device its
  scope names runs on the CPU instead of failing the run; tests/test_placement.py keeps the
  training graphs free of such ops), and one pass of the graph optimizer."""
  config = tf1.ConfigProto(allow_soft_placement=True)
  # Grappler's second pass over a training graph finds little the first did not (it removes
  # a few dozen duplicate constants) and costs about a second per graph a run starts.
  config.graph_options.rewrite_options.meta_optimizer_iterations = (
      rewriter_config_pb2.RewriterConfig.ONE)
  # Memory grows as needed: the chief's evaluation and teacher sessions share GPU 0 with its
  # replica, and local workers may share a GPU.
  config.gpu_options.allow_growth = True
  if num_threads:
    config.intra_op_parallelism_threads = num_threads
    config.inter_op_parallelism_threads = num_threads
  if xla:
    config.graph_options.optimizer_options.global_jit_level = tf1.OptimizerOptions.ON_1
  return config


def local_cluster(session_config=None):
  """One process, one device: TensorFlow's default strategy and a local session."""
  return Cluster(mode="none", strategy=tf.distribute.get_strategy(), target="",
                 session_config=session_config or tf1.ConfigProto(), is_chief=True,
                 worker_index=0, num_workers=1, num_replicas=1)


def is_chief(mode):
  """Whether this process is the chief of a --distribute `mode` cluster (worker 0; a lone
  process always is)."""
  if mode != "multi_worker":
    return True
  return read_tf_config()[1] == 0


def _mirrored_cluster(mirrored_devices, config):
  devices = list(mirrored_devices or ())
  if not devices:
    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in gpus] or ["/cpu:0"]
  cpus = [d for d in devices if "cpu" in d.lower()]
  if cpus:  # several CPU replicas need as many CPU devices in the session
    config.device_count["CPU"] = max(config.device_count["CPU"], len(cpus))
  try:
    strategy = tf.distribute.MirroredStrategy(devices)
  except (ValueError, tf.errors.OpError) as e:
    raise InputDataError("--mirrored_devices=%s: %s" % (",".join(devices),
                                                         str(e).splitlines()[0]))
  logging.info("Distribution: mirrored over %s", ", ".join(devices))
  return Cluster(mode="mirrored", strategy=strategy, target="", session_config=config,
                 is_chief=True, worker_index=0, num_workers=1,
                 num_replicas=strategy.num_replicas_in_sync)


def _multi_worker_cluster(config, cluster_timeout_s, step_timeout_s):
  workers, index = read_tf_config()
  strategy = tf1.distribute.experimental.MultiWorkerMirroredStrategy(
      communication=_communication(tf.config.list_physical_devices("GPU")))
  config = strategy.update_config_proto(config)
  config.operation_timeout_in_ms = step_timeout_s * 1000
  server = tf.distribute.Server(strategy.cluster_resolver.cluster_spec(), job_name="worker",
                                task_index=index, config=config, protocol="grpc")
  wait_for_workers(workers, index, cluster_timeout_s)
  logging.info("Distribution: worker %d of %d (%s), %d replicas in all%s", index, len(workers),
               workers[index], strategy.num_replicas_in_sync, ", chief" if index == 0 else "")
  return Cluster(mode="multi_worker", strategy=strategy, target=server.target,
                 session_config=config, is_chief=index == 0, worker_index=index,
                 num_workers=len(workers), num_replicas=strategy.num_replicas_in_sync)


def _communication(gpus):
  """NCCL between the GPUs of the workers when there are GPUs (the v1 strategy's default in
  session mode is the ring, even between the GPUs of one machine), else the ring."""
  options = tf.distribute.experimental.CollectiveCommunication
  return options.NCCL if gpus else options.RING


def replica_share(batch, num_replicas, num_workers=1):
  """This replica's rows (in replica context) of this worker's `batch` (its rows of the global
  batch, input_pipeline's shard): dict of [batch / local replicas, ...]."""
  local_replicas = num_replicas // num_workers
  if local_replicas == 1:
    return dict(batch)
  replica = tf.distribute.get_replica_context().replica_id_in_sync_group % local_replicas
  share = {}
  for name, tensor in batch.items():
    rows = tf.shape(tensor)[0] // local_replicas
    share[name] = tensor[replica * rows:(replica + 1) * rows]
  return share


def local_values(cluster, value):
  """The values of a per-replica `value` on this process's replicas (a list)."""
  return list(cluster.strategy.experimental_local_results(value))


def first_local_value(cluster, value):
  """This process's first replica's value of a per-replica `value`, computed only once every
  local replica has computed its own: a replica's part of an all-reduce (NCCL between GPUs,
  collective ops) completes only when every replica runs its part, so fetching one replica's
  value alone would wait forever."""
  values = local_values(cluster, value)
  if len(values) == 1:
    return values[0]
  with tf.control_dependencies(values[1:]):
    return tf.identity(values[0])
