#!/usr/bin/env python
"""Serving benchmark: each way to run an export, on real SST-2 dev sentences, in one run.

For the main job's predecessor and successor exports (made by `bash scripts/main_job.sh`, TFLite
files added here if missing) it measures, per backend: size on disk, batch-1 latency at SST-2
dev lengths (each sentence alone) and at length 128, batch-32 throughput at SST-2 lengths (dev
order, each batch padded to its longest sentence), dev accuracy, and agreement with the
SavedModel's predictions. Backends: the SavedModel with oneDNN on and off (TF_ENABLE_ONEDNN_OPTS
is read when TensorFlow starts, so every backend runs in a process of its own), TFLite float32
and dynamic-range int8 (serving.TFLiteRunner), and PyTorch + transformers on the same weights
(the export converted with convert_checkpoint.py). Rounds alternate the backends (the order
rotates), and each figure is the median over rounds.

  python benchmarks/serving.py                       # the main job's exports
  python benchmarks/serving.py --rounds 1 --latency_sentences 50   # a quick look
"""

import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import time

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
  sys.path.insert(0, REPO_ROOT)

BACKENDS = ("saved_model_onednn", "saved_model_no_onednn", "tflite", "tflite_int8", "pytorch")
DEMO_DIR = os.path.join(REPO_ROOT, "output", "sst2_demo")


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--exports", default="predecessor=%s,successor=%s" % (
      os.path.join(DEMO_DIR, "predecessor", "export"), os.path.join(DEMO_DIR, "stage2", "export")),
                 help="name=export_dir,... (default: the main job's two exports)")
  p.add_argument("--sst2_dev", default=os.path.join(REPO_ROOT, os.pardir, "shared", "data",
                                                    "glue", "SST-2", "dev.tsv"))
  p.add_argument("--rounds", type=int, default=3)
  p.add_argument("--latency_sentences", type=int, default=200,
                 help="dev sentences timed one by one per round (batch 1)")
  p.add_argument("--long_calls", type=int, default=20, help="batch-1 calls at length 128")
  p.add_argument("--threads", type=int, default=0)
  p.add_argument("--json_out", default=os.path.join(REPO_ROOT, "runs", "serving.json"))
  p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
  p.add_argument("--export_dir", default=None, help=argparse.SUPPRESS)
  p.add_argument("--hf_dir", default=None, help=argparse.SUPPRESS)
  p.add_argument("--measure_accuracy", action="store_true", help=argparse.SUPPRESS)
  p.add_argument("--workloads", default=None, help=argparse.SUPPRESS)
  return p.parse_args(argv)


# ----------------------------------------------------------------------------------------------
# Worker side: one backend, one export, one process.

def build_workloads(export_dir, dev_path, latency_sentences, path):
  """Pickles the padded batches every worker times (tokenized as predict.py does) to `path`.

  The workers then need no tokenizer, and the PyTorch one no TensorFlow.
  """
  from theseus.tasks.classifier import datasets  # pylint: disable=g-import-not-at-top
  from theseus.tasks.classifier import features  # pylint: disable=g-import-not-at-top
  from theseus.tasks.classifier import task as classifier_task  # pylint: disable=g-import-not-at-top
  from theseus.export import serving  # pylint: disable=g-import-not-at-top
  with open(os.path.join(export_dir, classifier_task.EXPORT_TASK_FILE)) as f:
    task = json.load(f)
  tokenizer = serving._export_tokenizer(export_dir, task["do_lower_case"])  # pylint: disable=protected-access
  examples = datasets.get_processor("sst-2").get_dev_examples(os.path.dirname(dev_path))
  features = [features.convert_single_example(i, ex, task["labels"], task["max_seq_length"],
                                                     tokenizer) for i, ex in enumerate(examples)]
  long_ids = np.random.RandomState(0).randint(1000, 20000, size=(1, 128)).astype(np.int32)
  workloads = {
      "singles": [serving.pad_batch([f]) for f in features[:latency_sentences]],
      "batches32": [serving.pad_batch(features[i:i + 32]) for i in range(0, len(features), 32)],
      "long": {"input_ids": long_ids, "input_mask": np.ones_like(long_ids),
               "segment_ids": np.zeros_like(long_ids)},
      "labels": np.array([task["labels"].index(ex.label) for ex in examples])}
  with open(path, "wb") as f:
    pickle.dump(workloads, f)


def _torch_runner(hf_dir, threads):
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  if threads:
    torch.set_num_threads(threads)
  model = transformers.BertForSequenceClassification.from_pretrained(hf_dir).eval()

  def run(batch):
    with torch.inference_mode():
      logits = model(input_ids=torch.from_numpy(batch["input_ids"]).long(),
                     attention_mask=torch.from_numpy(batch["input_mask"]).long(),
                     token_type_ids=torch.from_numpy(batch["segment_ids"]).long()).logits
      return {"probabilities": torch.softmax(logits, -1).numpy()}

  return run


def _make_runner(args):
  if args.worker == "pytorch":
    return _torch_runner(args.hf_dir, args.threads)
  from theseus.export import serving  # pylint: disable=g-import-not-at-top
  backend = {"saved_model_onednn": "saved_model", "saved_model_no_onednn": "saved_model",
             "tflite": "tflite", "tflite_int8": "tflite_int8"}[args.worker]
  return serving.make_runner(args.export_dir, backend, args.threads)


def _timed(run, batches):
  times = []
  for batch in batches:
    start = time.perf_counter()
    run(batch)
    times.append(time.perf_counter() - start)
  return times


def worker_main(args):
  """Measures one backend on one export and prints a JSON line."""
  with open(args.workloads, "rb") as f:
    workloads = pickle.load(f)
  run = _make_runner(args)
  singles, batches32, long_batch = workloads["singles"], workloads["batches32"], workloads["long"]
  for batch in singles[:5] + batches32[:2] + [long_batch] * 2:
    run(batch)  # warm-up: graph optimisation, kernel and tensor set-up
  result = {"b1_sst2_ms": 1000 * statistics.median(_timed(run, singles)),
            "b1_len128_ms": 1000 * statistics.median(_timed(run, [long_batch] * args.long_calls))}
  sentences = sum(b["input_ids"].shape[0] for b in batches32)
  result["b32_sst2_sentences_per_s"] = sentences / sum(_timed(run, batches32))
  if args.measure_accuracy:
    predictions = np.concatenate([np.argmax(run(b)["probabilities"], -1) for b in batches32])
    result["accuracy"] = float(np.mean(predictions == workloads["labels"]))
    result["predictions"] = predictions.tolist()
  print("RESULT " + json.dumps(result), flush=True)


# ----------------------------------------------------------------------------------------------
# Main side.

def ensure_files(exports):
  """The TFLite files and a Hugging Face copy of every export; returns {name: hf_dir}."""
  import convert_checkpoint  # pylint: disable=g-import-not-at-top
  hf_dirs = {}
  for name, export_dir in exports.items():
    if not os.path.exists(os.path.join(export_dir, "model_int8.tflite")):
      print("Converting %s to TFLite" % export_dir, flush=True)
      subprocess.run([sys.executable, os.path.join(REPO_ROOT, "convert_checkpoint.py"),
                      "--mode=tflite", "--export_dir=" + export_dir], check=True)
    hf_dirs[name] = os.path.join(os.path.dirname(export_dir), "export_hf")
    if not os.path.exists(os.path.join(hf_dirs[name], "model.safetensors")):
      convert_checkpoint.convert_tf_to_hf(os.path.join(export_dir, "bert_model.ckpt"),
                                          hf_dirs[name], label_names=["0", "1"])
  return hf_dirs


def run_worker(args, backend, export_dir, hf_dir, measure_accuracy, workloads):
  env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="0" if backend == "saved_model_no_onednn" else "1",
             TF_CPP_MIN_LOG_LEVEL="2")
  cmd = [sys.executable, os.path.abspath(__file__), "--worker=" + backend,
         "--export_dir=" + export_dir, "--hf_dir=" + hf_dir, "--workloads=" + workloads,
         "--long_calls=%d" % args.long_calls, "--threads=%d" % args.threads] + (["--measure_accuracy"] if measure_accuracy else [])
  proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
  lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
  if proc.returncode != 0 or not lines:
    raise SystemExit("worker %s on %s failed:\n%s" % (backend, export_dir, proc.stderr[-3000:]))
  return json.loads(lines[-1][len("RESULT "):])


def disk_mb(export_dir, backend):
  if backend == "tflite":
    return os.path.getsize(os.path.join(export_dir, "model.tflite")) / 1e6
  if backend == "tflite_int8":
    return os.path.getsize(os.path.join(export_dir, "model_int8.tflite")) / 1e6
  if backend == "pytorch":
    return os.path.getsize(os.path.join(os.path.dirname(export_dir), "export_hf",
                                        "model.safetensors")) / 1e6
  root = os.path.join(export_dir, "saved_model")
  return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs) / 1e6


def measure(args, exports, hf_dirs):
  """{export name: {backend: {figure: median over rounds, accuracy, agreement, size}}}."""
  raw = {name: {b: [] for b in BACKENDS} for name in exports}
  workloads = os.path.join(os.path.dirname(args.json_out), "serving_workloads.pkl")
  build_workloads(list(exports.values())[0], args.sst2_dev, args.latency_sentences, workloads)
  for r in range(args.rounds):
    order = BACKENDS[r % len(BACKENDS):] + BACKENDS[:r % len(BACKENDS)]
    for name, export_dir in exports.items():
      for backend in order:
        raw[name][backend].append(run_worker(args, backend, export_dir, hf_dirs[name], r == 0,
                                             workloads))
        print("  round %d %-10s %-22s %s" % (r + 1, name, backend, {
            k: round(v, 2) for k, v in raw[name][backend][-1].items()
            if isinstance(v, float)}), flush=True)
  table = {}
  for name, export_dir in exports.items():
    reference = np.array(raw[name]["saved_model_onednn"][0]["predictions"])
    table[name] = {}
    for backend, results in raw[name].items():
      row = {k: statistics.median([r[k] for r in results])
             for k in ("b1_sst2_ms", "b1_len128_ms", "b32_sst2_sentences_per_s")}
      row["accuracy"] = results[0]["accuracy"]
      row["agreement"] = float(np.mean(np.array(results[0]["predictions"]) == reference))
      row["disk_mb"] = disk_mb(export_dir, backend)
      table[name][backend] = row
  return table


def print_table(table):
  header = "%-12s %-22s %8s %11s %12s %14s %9s %10s" % (
      "model", "backend", "disk MB", "b1 SST-2 ms", "b1 len128 ms", "b32 sent/s", "accuracy",
      "agreement")
  print("\n" + header + "\n" + "-" * len(header))
  for name, rows in table.items():
    for backend, r in rows.items():
      print("%-12s %-22s %8.1f %11.2f %12.2f %14.1f %9.4f %10.4f" % (
          name, backend, r["disk_mb"], r["b1_sst2_ms"], r["b1_len128_ms"],
          r["b32_sst2_sentences_per_s"], r["accuracy"], r["agreement"]))
  for name, rows in table.items():
    fastest = min((b for b in rows if b != "tflite_int8" and b != "pytorch"),
                  key=lambda b: rows[b]["b1_sst2_ms"])
    print("%s: fastest exact batch-1 backend %s, %.2fx PyTorch" % (
        name, fastest, rows["pytorch"]["b1_sst2_ms"] / rows[fastest]["b1_sst2_ms"]))


def main(argv=None):
  args = parse_args(argv)
  if args.worker:
    return worker_main(args)
  from theseus import cli  # pylint: disable=g-import-not-at-top
  cli.prepare_process([])  # this process converts and tokenizes with TensorFlow
  exports = dict(item.split("=", 1) for item in args.exports.split(","))
  for name, export_dir in exports.items():
    if not os.path.isdir(os.path.join(export_dir, "saved_model")):
      raise SystemExit("error: %s has no saved_model/ (run bash scripts/main_job.sh)" % export_dir)
  hf_dirs = ensure_files(exports)
  os.makedirs(os.path.dirname(args.json_out), exist_ok=True)
  table = measure(args, exports, hf_dirs)
  print_table(table)
  with open(args.json_out, "w") as f:
    json.dump({"table": table, "args": vars(args)}, f, indent=1)
  print("\nwrote %s" % args.json_out)


if __name__ == "__main__":
  main()
