#!/usr/bin/env python
"""The GPU check: what a first run on GPUs must show, in one command (under 10 minutes on one
GPU), with random weights and nothing beyond the repository and its requirements.

  python benchmarks/gpu.py                 # on a machine with GPUs
  python benchmarks/gpu.py --cpu_smoke     # anywhere: one tiny step of every part, on the CPU

Parts, each the trainer's real update (trainer.make_model_fn + update.build_train_step) on
batches whose lengths are drawn from benchmarks/data/sentence_lengths.json (SST-2 / MRPC dev):

  placement   a stage-1 fp16 step with gradient accumulation 2 over every GPU, soft placement
              OFF: every op must find a kernel where the graph puts it; plus the static count
              of GPU ops without a GPU kernel (training/placement.py). It fetches what the
              trainer fetches (its start check, the loss summed across the replicas), whose
              all-reduces wait for every replica: a hang there ends at --step_timeout_s
  draws       4 stage-1 updates from the same weights on the GPU and on the CPU, dropout off:
              the same module draws and losses within 1e-3 (relative), with and without XLA
  fp16        dynamic loss scaling from 2^40: the overflowing updates are skipped, the scale
              comes down, the weights change and stay finite
  throughput  tokens/s of BERT-base size (12 x 768) and of the embedded model's size (6 x
              384): predecessor, stage 1, stage 2; fp32, bf16, fp16, each with and without XLA;
              one GPU and (with several) all of them

Every step runs with a timeout (--step_timeout_s); a part that fails or times out is recorded
as such and the others go on. Writes one JSON (--output) and prints a table. --cpu_smoke runs a
tiny model for one step of each part on the CPU (what CI runs) and says which parts need a GPU.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import traceback

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

LENGTHS_FILE = os.path.join(REPO_ROOT, "benchmarks", "data", "sentence_lengths.json")
MODELS = {
    "bert_base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                      intermediate_size=3072),
    "embedded": dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                     intermediate_size=1536),
    "tiny": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=64),
}
GPU_ONLY = ("fp16 and bf16 speed, XLA on a GPU, GPU vs CPU draws, several GPUs")


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--cpu_smoke", action="store_true", help="tiny model, one step each, CPU")
  p.add_argument("--batch_size", type=int, default=32)
  p.add_argument("--steps", type=int, default=10, help="timed updates per configuration")
  p.add_argument("--step_timeout_s", type=float, default=120)
  p.add_argument("--output", default=os.path.join(REPO_ROOT, "benchmarks", "results",
                                                  "gpu.json"))
  args = p.parse_args(argv)
  if args.cpu_smoke:
    args.batch_size, args.steps, args.output = 4, 1, args.output.replace(".json", "_smoke.json")
  return args


def length_batches(batch_size, count, seed):
  """`count` batches of (input_ids, input_mask, segment_ids), lengths drawn like real text."""
  with open(LENGTHS_FILE) as f:
    counts = json.load(f)["counts"]
  lengths = np.array([int(k) for k in counts])
  probabilities = np.array([counts[k] for k in counts], np.float64)
  rng = np.random.RandomState(seed)
  batches = []
  for _ in range(count):
    drawn = rng.choice(lengths, size=batch_size, p=probabilities / probabilities.sum())
    longest = int(drawn.max())
    ids = rng.randint(1000, 30000, size=(batch_size, longest)).astype(np.int32)
    mask = (np.arange(longest)[None, :] < drawn[:, None]).astype(np.int32)
    batches.append((ids * mask, mask, np.zeros_like(mask)))
  return batches


def bert_config(model, dropout=0.1):
  import modeling_theseus as modeling  # pylint: disable=g-import-not-at-top
  return modeling.BertConfig(vocab_size=30522, hidden_act="gelu", hidden_dropout_prob=dropout,
                             attention_probs_dropout_prob=dropout, max_position_embeddings=512,
                             type_vocab_size=2, initializer_range=0.02, **MODELS[model])


class Step(object):
  """The trainer's update of one configuration in a session of its own, on fed batches."""

  def __init__(self, config, variant, precision, devices, xla=False, soft_placement=True,
               accumulation=1, loss_scale=2.0 ** 15, seed=3, timeout_s=600):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    import modeling_theseus as modeling  # pylint: disable=g-import-not-at-top
    from theseus.config import groups  # pylint: disable=g-import-not-at-top
    from theseus.stage import Stage  # pylint: disable=g-import-not-at-top
    from theseus.tasks.classifier import datasets  # pylint: disable=g-import-not-at-top
    from theseus.tasks.classifier import head  # pylint: disable=g-import-not-at-top
    from theseus.training import agreement  # pylint: disable=g-import-not-at-top
    from theseus.training import distribute  # pylint: disable=g-import-not-at-top
    from theseus.training import trainer  # pylint: disable=g-import-not-at-top
    from theseus.training import update  # pylint: disable=g-import-not-at-top
    tf1 = tf.compat.v1
    suc_layers = config.num_hidden_layers // 2 if variant != "predecessor" else 0
    stage = Stage.of(suc_layers, variant == "stage2")
    session_config = distribute.session_config(0, xla)
    session_config.allow_soft_placement = soft_placement
    session_config.operation_timeout_in_ms = int(timeout_s * 1000)  # the start check's too
    self.graph = tf.Graph()
    with self.graph.as_default():
      tf1.set_random_seed(seed)
      cluster = distribute.make_cluster("mirrored", tuple(devices), 32, session_config)
      self.inputs = {k: tf1.placeholder(tf.int32, [None, None], k)
                     for k in ("input_ids", "input_mask", "segment_ids")}
      self.inputs["label_ids"] = tf1.placeholder(tf.int32, [None, 1], "label_ids")
      global_step = tf1.train.get_or_create_global_step()
      rate = modeling.get_replace_rate(global_step, "constant", 0.5) if variant == "stage1" \
          else None
      task = head.make_task(datasets.get_processor("sst-2"), [])
      model_fn = trainer.make_model_fn(config, task, stage, rate,
                                       modeling.COMPUTE_DTYPES[precision],
                                       groups.DistillationSettings(), config)
      hyper = update.Hyperparameters(2e-5, 10 ** 6, 0, accumulation, 1.0, 0.01)
      scaling = update.LossScaling(loss_scale, 3) if precision == "fp16" else None
      with cluster.strategy.scope():
        self.step = update.build_train_step(cluster, self.inputs, model_fn, stage, hyper, seed,
                                            loss_scaling=scaling)
        restored = agreement.restored_state(cluster.strategy, global_step,
                                            tf1.trainable_variables())
      self.saver = tf1.train.Saver()
      self.variables = {v.op.name: v for v in tf1.global_variables()}
      init = [tf1.global_variables_initializer(), tf1.local_variables_initializer()]
    self.sess = tf1.Session(graph=self.graph, config=cluster.session_config)
    self.sess.run(init)
    # The trainer's start check: with several replicas, an all-reduce across them.
    agreement.check_restored(self.sess, restored, lambda v: distribute.local_values(cluster, v),
                             0, cluster.num_replicas, None)

  def feed(self, batch):
    ids, mask, segments = batch
    return {self.inputs["input_ids"]: ids, self.inputs["input_mask"]: mask,
            self.inputs["segment_ids"]: segments,
            self.inputs["label_ids"]: (np.arange(len(ids)) % 2)[:, None].astype(np.int32)}

  def update(self, batch, timeout_s):
    """One update (every micro-batch): (loss, drawn modules or None, seconds)."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    options = tf.compat.v1.RunOptions(timeout_in_ms=int(timeout_s * 1000))
    start = time.perf_counter()
    step, feed = self.step, self.feed(batch)
    # What the trainer fetches each micro-batch: the loss summed across the replicas too.
    fetches = {"loss": step.loss, "everywhere": step.loss_everywhere, "replaced": step.replaced}
    if step.micro_batch_op is not None:
      for k in range(2):
        micro_feed = dict(feed)
        micro_feed[step.micro_batch] = k
        out = self.sess.run(dict(fetches, op=step.micro_batch_op), micro_feed, options=options)
      self.sess.run(step.update_op, feed, options=options)
    else:
      out = self.sess.run(dict(fetches, op=step.update_op), feed, options=options)
    seconds = time.perf_counter() - start
    drawn = [bool(x) for x in out["replaced"]] if len(out["replaced"]) else None
    return float(out["loss"]), drawn, seconds

  def value(self, name):
    return self.sess.run(self.variables[name])

  def close(self):
    self.sess.close()


def part(name, results, fn):
  """Runs one part; records its result, or its failure, and goes on."""
  start = time.time()
  try:
    results[name] = dict(fn(), status="ok")
  except Exception as e:  # pylint: disable=broad-except
    results[name] = {"status": "failed", "error": "%s: %s" % (type(e).__name__,
                                                               str(e).splitlines()[0][:300]),
                     "traceback": traceback.format_exc()[-2000:]}
  results[name]["seconds"] = round(time.time() - start, 1)
  print("%-12s %s (%.0f s)" % (name, results[name]["status"], results[name]["seconds"]),
        flush=True)


def check_placement(args, model, devices):
  """A stage-1 fp16 accumulation step over `devices` without soft placement."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from theseus.training import placement  # pylint: disable=g-import-not-at-top
  step = Step(bert_config(model), "stage1", "fp16", devices, soft_placement=False,
              accumulation=2, timeout_s=args.step_timeout_s)
  try:
    missing = placement.ops_without_gpu_kernel(step.graph) if any(
        "gpu" in d.lower() for d in devices) else []
    loss, _, seconds = step.update(length_batches(args.batch_size, 1, 0)[0], args.step_timeout_s)
  finally:
    step.close()
  del tf
  if missing:
    raise RuntimeError("%d GPU ops without a GPU kernel, e.g. %s" % (len(missing), missing[0]))
  return {"devices": devices, "loss": loss, "first_step_seconds": seconds}


def check_draws(args, model, device):
  """Stage-1 updates from the same weights on `device` and on the CPU: the same draws."""
  config = bert_config(model, dropout=0.0)
  batches = length_batches(args.batch_size, 4, 1)
  found = {}
  checkpoint = os.path.join(tempfile.mkdtemp(prefix="gpu_draws_"), "model.ckpt")
  runs = [("cpu", ["/cpu:0"], False), ("device", [device], False),
          ("device_xla", [device], True)]
  if args.cpu_smoke:  # the CPU against itself with XLA: the same code path, one graph less
    runs = [runs[0], ("device_xla", [device], True)]
  for name, devices, xla in runs:
    step = Step(config, "stage1", "fp32", devices, xla=xla)
    try:
      if name == "cpu":
        step.saver.save(step.sess, checkpoint, write_meta_graph=False)
      else:
        step.saver.restore(step.sess, checkpoint)
      found[name] = [step.update(b, args.step_timeout_s)[:2] for b in batches]
    finally:
      step.close()
  shutil.rmtree(os.path.dirname(checkpoint), ignore_errors=True)
  cpu = found["cpu"]
  result = {"draws": [d for _, d in cpu], "losses": {k: [l for l, _ in v] for k, v in
                                                     found.items()}}
  for name in [r[0] for r in runs[1:]]:
    same_draws = [d for _, d in found[name]] == [d for _, d in cpu]
    worst = max(abs(a[0] - b[0]) / max(abs(b[0]), 1e-6) for a, b in zip(found[name], cpu))
    result[name + "_same_draws"], result[name + "_worst_loss_difference"] = same_draws, worst
    if not same_draws or worst > 1e-3:
      raise RuntimeError("%s: draws equal %s, worst relative loss difference %.2g"
                         % (name, same_draws, worst))
  return result


def check_fp16(args, model, device):
  """Loss scaling from 2^40: skipped updates, a lower scale, changed and finite weights."""
  step = Step(bert_config(model), "predecessor", "fp16", [device], loss_scale=2.0 ** 40)
  kernel = "bert/encoder/layer_0/intermediate/dense/kernel"
  try:
    before = step.value(kernel)
    scales = []
    for batch in length_batches(args.batch_size, 1 if args.cpu_smoke else 40, 2):
      step.update(batch, args.step_timeout_s)
      scales.append(float(step.value("loss_scale")))
    after = step.value(kernel)
  finally:
    step.close()
  if not np.all(np.isfinite(after)):
    raise RuntimeError("weights are not finite after the updates")
  if scales[0] >= 2.0 ** 40:
    raise RuntimeError("the first update did not lower the scale from 2^40")
  if not args.cpu_smoke and np.array_equal(before, after):
    raise RuntimeError("no update was applied (scales %s)" % scales[-5:])
  return {"scales": scales, "weights_changed": not np.array_equal(before, after)}


def throughput(args, model, variant, precision, xla, devices):
  """Median tokens/s over --steps timed updates (after one warm-up update)."""
  step = Step(bert_config(model), variant, precision, devices, xla=xla)
  batches = length_batches(args.batch_size, args.steps + 1, 4)
  try:
    step.update(batches[0], args.step_timeout_s)
    seconds = [step.update(b, args.step_timeout_s)[2] for b in batches[1:]]
  finally:
    step.close()
  tokens = [int(b[1].sum()) for b in batches[1:]]
  return {"tokens_per_second": float(np.median(np.array(tokens) / np.array(seconds))),
          "median_step_seconds": float(np.median(seconds))}


def throughput_plan(args, gpus):
  """(name, model, variant, precision, xla, devices) of the throughput configurations."""
  if args.cpu_smoke:
    return [("tiny/stage1/fp32", "tiny", "stage1", "fp32", False, ["/cpu:0"])]
  plan = [("bert_base/predecessor/%s%s" % (p, "+xla" if x else ""), "bert_base", "predecessor",
           p, x, gpus[:1]) for p in ("fp32", "bf16", "fp16") for x in (False, True)]
  plan += [("bert_base/%s/fp16" % v, "bert_base", v, "fp16", False, gpus[:1])
           for v in ("stage1", "stage2")]
  plan += [("embedded/%s/%s" % (v, p), "embedded", v, p, False, gpus[:1])
           for v in ("predecessor", "stage1", "stage2") for p in ("fp32", "fp16")]
  if len(gpus) > 1:
    plan.append(("bert_base/predecessor/fp16/%d_gpus" % len(gpus), "bert_base", "predecessor",
                 "fp16", False, gpus))
  return plan


def print_table(results):
  print("\n%-40s %-8s %14s %10s" % ("part", "status", "tokens/s", "seconds"))
  for name, r in results.items():
    if not isinstance(r, dict) or "status" not in r:
      continue
    print("%-40s %-8s %14s %10.1f" % (name, r["status"], "%.0f" % r["tokens_per_second"]
                                      if "tokens_per_second" in r else "-", r["seconds"]))
    if r["status"] != "ok":
      print("    " + r["error"])


def main(argv=None):
  args = parse_args(argv)
  os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.compat.v1.disable_eager_execution()
  gpus = ["/gpu:%d" % i for i in range(len(tf.config.list_physical_devices("GPU")))]
  if not gpus and not args.cpu_smoke:
    raise SystemExit("no GPU found: run with --cpu_smoke for the CPU smoke test")
  model = "tiny" if args.cpu_smoke else "bert_base"
  device = gpus[0] if gpus and not args.cpu_smoke else "/cpu:0"
  results = {"gpus": gpus, "cpu_smoke": args.cpu_smoke,
             "tensorflow": tf.__version__, "batch_size": args.batch_size}
  # Over every GPU; in the smoke test over two CPU replicas (another all-reduce, same fetches).
  part("placement", results, lambda: check_placement(args, model, gpus or ["/cpu:0", "/cpu:1"]))
  part("draws", results, lambda: check_draws(args, "tiny" if args.cpu_smoke else "embedded",
                                             device))
  part("fp16", results, lambda: check_fp16(args, model, device))
  for name, m, variant, precision, xla, devices in throughput_plan(args, gpus):
    part(name, results, lambda: throughput(args, m, variant, precision, xla, devices))
  if args.cpu_smoke:
    results["needs_a_gpu"] = GPU_ONLY
  with open(args.output, "w") as f:
    json.dump(results, f, indent=1)
  print_table(results)
  if args.cpu_smoke:
    print("\nCPU smoke test only. These parts need a GPU to mean anything: %s." % GPU_ONLY)
  print("Results: %s" % args.output)
  failed = [k for k, v in results.items() if isinstance(v, dict) and v.get("status") == "failed"]
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
