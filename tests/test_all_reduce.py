"""Two replicas on logical CPU devices, reduced the ways GPUs reduce, train as one device does.

On GPUs, --distribute=mirrored all-reduces with NcclAllReduce (an AllReduceCrossDeviceOps; on
CPU devices TensorFlow picks ReductionToOneDevice instead, the reduction tests/
test_distributed.py's mirrored run uses), and a multi-worker cluster with CollectiveAllReduce
(collective ops; NCCL carries them between GPUs). Their GPU kernels cannot run here, the code
around them can: HierarchicalCopyAllReduce is the same AllReduceCrossDeviceOps with another last
step, and the collective ops run between two logical CPU devices of one process. Like NCCL's,
a replica's collective op completes only when every replica runs its own, so a fetch of one
replica's all-reduced value alone waits forever (the trainer's start check and its per-step
loss did, before they fetched every local replica's).

The trainer's graph is built in process (dropout off, 8 rows a micro-batch) on /cpu:0 and
/cpu:1. Stage 1 with gradient accumulation 2 ends with one device's weights and module draws
under both reductions; under the collective one, bf16 follows one device's losses, and fp16
skips the same overflowing updates on every replica, applies the others, and raises the scale.
"""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.distribute.cluster_resolver import tfconfig_cluster_resolver

from theseus.training import agreement
from theseus.training import distribute

import test_precision

tf1 = tf.compat.v1
tf1.disable_eager_execution()

ALL_REDUCES = ("collective", "all_reduce")
# Stage 1 of two predecessor layers, one module of one layer: a draw every update.
STAGE1 = dict(suc_layers=1, replacing_rate=0.5, gradient_accumulation_steps=2)
BF16_LOSS_GAP = 1e-5  # the largest gap of a micro-batch's loss; measured 6e-8
# fp16 from a scale its gradients overflow at, raised after each clean update: it goes down,
# then up and down again about where they start to overflow.
FP16 = dict(STAGE1, precision="fp16", fp16_initial_loss_scale=2.0 ** 26, fp16_loss_scale_window=1,
            num_train_steps=8)


@pytest.fixture(scope="module")
def world(tmp_path_factory, shared_data_dir, minilm_dir):
  return test_precision.tiny_world(tmp_path_factory.mktemp("all_reduce"), shared_data_dir,
                                   minilm_dir)


def _two_cpu_replicas(all_reduce):
  """A mirrored Cluster of /cpu:0 and /cpu:1 whose strategy all-reduces as GPUs would."""
  devices = ["/cpu:0", "/cpu:1"]
  config = distribute.session_config(1, False)
  config.device_count["CPU"] = 2
  if all_reduce == "collective":
    strategy = tf1.distribute.experimental.MultiWorkerMirroredStrategy()
    # Without TF_CONFIG the strategy is local: its replicas are these devices of this process.
    strategy.extended._initialize_local(  # pylint: disable=protected-access
        tfconfig_cluster_resolver.TFConfigClusterResolver(), devices=devices)
    config = strategy.update_config_proto(config)
  else:
    strategy = tf.distribute.MirroredStrategy(
        devices, cross_device_ops=tf.distribute.HierarchicalCopyAllReduce())
  assert strategy.num_replicas_in_sync == 2
  config.operation_timeout_in_ms = 60 * 1000  # a replica left waiting fails the test, not CI
  return distribute.Cluster(mode="mirrored", strategy=strategy, target="",
                            session_config=config, is_chief=True, worker_index=0,
                            num_workers=1, num_replicas=2)


def _train(world, name, all_reduce=None, **overrides):
  """Trains in process (once per module). Returns (the weights by name; each micro-batch's
  fetched values; with two replicas, each replica's [global_step, weights checksum] before the
  first update and after each)."""
  runs = world.setdefault("runs", {})
  if name in runs:
    return runs[name]
  output_dir = world["root"] / name
  cfg = test_precision.settings(world, name, **dict(dict(num_train_steps=4), **overrides))
  cluster = _two_cpu_replicas(all_reduce) if all_reduce else None
  g, plan = test_precision.train_graph(cfg, cluster)
  fetched, states = [], []
  with tf1.Session(graph=g.graph, config=cluster.session_config if cluster else None) as sess:
    sess.run(g.init_ops)
    if cluster:  # the trainer's check at its start, which fetches an all-reduce too
      local = lambda value: distribute.local_values(cluster, value)  # noqa: E731
      agreement.check_restored(sess, g.restored_state, local, 0, 2, None)
      states.append(sess.run(local(g.restored_state[0])))
    for _ in range(plan.num_train_steps):
      for micro_batch in range(plan.accumulation):
        out = sess.run(g.fetches, {g.micro_batch: micro_batch})
        fetched.append({k: v for k, v in out.items() if k not in ("train", "summary")})
      if g.update_op is not None:
        sess.run(g.update_op)
      if cluster:
        states.append(sess.run(local(g.restored_state[0])))
    g.saver.save(sess, str(output_dir / "model.ckpt"), global_step=g.global_step)
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(output_dir)))
  weights = {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()}
  runs[name] = (weights, fetched, np.array(states))
  return runs[name]


def _assert_same_weights(one, two, atol):
  assert sorted(one) == sorted(two)
  assert int(one["global_step"]) == int(two["global_step"]) == 4
  worst = {n: float(np.max(np.abs(one[n].astype(np.float64) - two[n]))) for n in one}
  assert max(worst.values()) <= atol, sorted(worst.items(), key=lambda kv: -kv[1])[:3]


@pytest.mark.parametrize("all_reduce", ALL_REDUCES)
def test_stage1_with_accumulation_on_two_replicas_ends_as_one_device(world, all_reduce):
  one, one_fetched, _ = _train(world, "stage1_one", **STAGE1)
  two, two_fetched, _ = _train(world, "stage1_" + all_reduce, all_reduce, **STAGE1)
  _assert_same_weights(one, two, atol=1e-6)
  # The same module draws, update after update (both micro-batches of an update share one).
  draws = [[bool(x) for x in f["draw"]] for f in one_fetched]
  assert draws == [[bool(x) for x in f["draw"]] for f in two_fetched]
  assert len({tuple(d) for d in draws}) == 2  # both branches were drawn: the draws mean something


def test_bf16_on_two_replicas_trains_as_one_device(world, all_reduce="collective"):
  """bf16 products sum each replica's half of the rows, in another order than one device's:
  the losses, not the weights (Adam's steps on gradients near 0 differ at the learning rate),
  stay close."""
  one = _train(world, "bf16_one", precision="bf16", **STAGE1)[1]
  two = _train(world, "bf16_" + all_reduce, all_reduce, precision="bf16", **STAGE1)[1]
  fp32 = _train(world, "stage1_one", **STAGE1)[1]
  one_loss, two_loss, fp32_loss = (np.array([f["loss_everywhere"] for f in run])
                                   for run in (one, two, fp32))
  gap = float(np.max(np.abs(two_loss / 2 - one_loss)))  # two replicas sum their means
  assert gap <= BF16_LOSS_GAP, (gap, one_loss, two_loss / 2)
  assert float(np.max(np.abs(one_loss - fp32_loss))) > 0  # the runs did compute in bf16
  assert [list(f["draw"]) for f in one] == [list(f["draw"]) for f in two]


def test_fp16_overflows_skip_the_same_updates_on_every_replica(world, all_reduce="collective"):
  """Each replica's fp16 gradients of its half-batch overflow at another scale than one
  device's, so the scales are not compared with one device's; every replica must skip the same
  updates, apply the others, and hold the same weights and scale throughout."""
  weights, fetched, states = _train(world, "fp16_" + all_reduce, all_reduce, **FP16)
  scales = [float(f["loss_scale"]) for f in fetched][::2]  # the scale each update used
  scales.append(float(weights["loss_scale"]))
  assert np.all(states[:, 0] == states[:, 1])  # [update, replica, (step, checksum)]
  checksums = states[:, 0, 1]
  overflowed = [after < before for before, after in zip(scales, scales[1:])]
  changed = [after != before for before, after in zip(checksums, checksums[1:])]
  assert changed == [not o for o in overflowed], (scales, checksums)
  # Both cases ran: updates skipped, and applied after the scale was raised again.
  assert any(overflowed) and any(b == 2 * a for a, b in zip(scales, scales[1:])), scales
  assert list(states[:, 0, 0]) == list(range(len(states)))  # skipped updates still count
