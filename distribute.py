"""Where a run trains: one process, several devices of one machine, or several worker processes.

`make_cluster(cfg)` turns --distribute into a `Cluster`, the tf.distribute strategy the training
graph is built under and the session target it runs on:

* none: TensorFlow's default strategy, one replica, a local session (the default);
* mirrored: tf.distribute.MirroredStrategy over --mirrored_devices (default: every GPU TensorFlow
  sees, else the CPU), one process, one replica per device;
* multi_worker: tf.compat.v1 MultiWorkerMirroredStrategy, one replica per worker process (or
  machine), the cluster read from TF_CONFIG as TensorFlow documents it
  (`{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}}`). The
  process starts its own tf.distribute.Server and its sessions run on it; worker 0 is the chief.

--train_batch_size is the global batch in every mode: each replica takes its share (the batch
must divide evenly), so steps, schedules and accumulation are those of one process with the same
batch. Every worker reads the same data stream and keeps its own rows; the chief alone writes
checkpoints, summaries, evaluations and exports, into an --output_dir every worker must see.
"""

from __future__ import absolute_import
from __future__ import division
from __future__ import print_function

import collections
import json
import os

from absl import logging
import tensorflow as tf

from errors import InputDataError

tf1 = tf.compat.v1

DISTRIBUTE_MODES = ("none", "mirrored", "multi_worker")

Cluster = collections.namedtuple("Cluster", [
    "mode", "strategy", "target", "session_config", "is_chief", "worker_index", "num_workers",
    "num_replicas"])

# One strategy and server per process: TensorFlow allows a process one server, and a
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


def make_cluster(cfg, session_config):
  """The process's Cluster for cfg.distribute (made once per process, then returned again).

  Args:
    cfg: RunConfig (distribute, mirrored_devices, train_batch_size).
    session_config: the tf1.ConfigProto of the run's sessions; a copy is completed here.

  Raises:
    InputDataError: a bad TF_CONFIG, unknown devices, or a batch the replicas cannot share.
  """
  key = (cfg.distribute, tuple(cfg.mirrored_devices or ()))
  if key not in _process_cluster:
    if cfg.distribute not in DISTRIBUTE_MODES:
      raise InputDataError("--distribute must be one of %s, got %r"
                           % (", ".join(DISTRIBUTE_MODES), cfg.distribute))
    config = tf1.ConfigProto()
    config.CopyFrom(session_config)
    if cfg.distribute == "none":
      _process_cluster[key] = local_cluster(config)
    else:
      build = {"mirrored": _mirrored_cluster, "multi_worker": _multi_worker_cluster}
      _process_cluster[key] = build[cfg.distribute](cfg, config)
  cluster = _process_cluster[key]
  if cfg.train_batch_size % cluster.num_replicas:
    raise InputDataError("--train_batch_size=%d (the global batch) must be a multiple of the %d "
                         "replicas" % (cfg.train_batch_size, cluster.num_replicas))
  return cluster


def local_cluster(session_config=None):
  """One process, one device: TensorFlow's default strategy and a local session."""
  return Cluster(mode="none", strategy=tf.distribute.get_strategy(), target="",
                 session_config=session_config or tf1.ConfigProto(), is_chief=True,
                 worker_index=0, num_workers=1, num_replicas=1)


def is_chief(cfg):
  """Whether this process is the chief of cfg's cluster (worker 0; a lone process always is)."""
  if cfg.distribute != "multi_worker":
    return True
  return read_tf_config()[1] == 0


def _mirrored_cluster(cfg, config):
  devices = list(cfg.mirrored_devices or ())
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


def _multi_worker_cluster(cfg, config):
  del cfg
  workers, index = read_tf_config()
  strategy = tf1.distribute.experimental.MultiWorkerMirroredStrategy()
  config = strategy.update_config_proto(config)
  server = tf.distribute.Server(strategy.cluster_resolver.cluster_spec(), job_name="worker",
                                task_index=index, config=config, protocol="grpc")
  logging.info("Distribution: worker %d of %d (%s), %d replicas in all%s", index, len(workers),
               workers[index], strategy.num_replicas_in_sync, ", chief" if index == 0 else "")
  return Cluster(mode="multi_worker", strategy=strategy, target=server.target,
                 session_config=config, is_chief=index == 0, worker_index=index,
                 num_workers=len(workers), num_replicas=strategy.num_replicas_in_sync)


def replica_share(global_batch, num_replicas):
  """This replica's rows of a global batch (in replica context): dict of [batch / R, ...]."""
  if num_replicas == 1:
    return dict(global_batch)
  replica = tf.distribute.get_replica_context().replica_id_in_sync_group
  share = {}
  for name, tensor in global_batch.items():
    rows = tf.shape(tensor)[0] // num_replicas
    share[name] = tensor[replica * rows:(replica + 1) * rows]
  return share


def local_values(cluster, value):
  """The values of a per-replica `value` on this process's replicas (a list)."""
  return list(cluster.strategy.experimental_local_results(value))
