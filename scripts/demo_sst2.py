"""The main job: compress the embedded all-MiniLM-L6-v2 6 -> 3 layers on SST-2 and compare.

Steps (each one the real `run_classifier.py` command line, with the flagfiles in configs/):
  1. convert the packaged all-MiniLM-L6-v2 to a TF checkpoint (skipped when already done);
  2. fine-tune the predecessor (6 layers) on SST-2, evaluate, export it;
  3. stage 1: replace modules 6 -> 3 at a constant rate 0.5;
  4. stage 2: fine-tune the 3-layer successor alone, evaluate, export it;
  5. print predecessor vs successor (and the successor's int8 TFLite file): dev accuracy,
     parameters, file size, and batch-1 / batch-32 latency at sequence length 128.

A finished step is not run again (each run resumes or returns at once), so an interrupted demo
continues where it stopped. By default it trains on the first 8,000 SST-2 training examples so
that it ends within 20 minutes on 2 CPU cores; --train_examples=0 uses all 67,349.
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def parse_args():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--glue_dir", default=os.environ.get(
      "GLUE_DIR", os.path.join(REPO, os.pardir, "shared", "data", "glue")))
  parser.add_argument("--output_dir", default=os.environ.get(
      "OUTPUT_DIR", os.path.join(REPO, "output", "sst2_demo")))
  parser.add_argument("--train_examples", type=int, default=8000,
                      help="train on the first N SST-2 examples (0: all)")
  for stage, epochs in (("predecessor", 1.0), ("stage1", 2.0), ("stage2", 1.0)):
    parser.add_argument("--%s_epochs" % stage, type=float, default=epochs)
  parser.add_argument("--latency_iters", type=int, default=30,
                      help="timed calls per model at batch 1 (a third of it at batch 32)")
  parser.add_argument("--tf_verbose", action="store_true",
                      help="show TensorFlow's own start-up messages and warnings, in the steps' "
                           "logs and here")
  return parser.parse_args()


def run_step(name, args, log_dir):
  """Runs run_classifier.py with `args`; its log goes to <log_dir>/<name>.log."""
  log_path = os.path.join(log_dir, name + ".log")
  cmd = [sys.executable, os.path.join(REPO, "run_classifier.py")] + args
  print("\n[%s] %s" % (name, " ".join(cmd[1:])), flush=True)
  print("  log: %s" % log_path, flush=True)
  start = time.time()
  with open(log_path, "a") as log:
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    last_size = 0
    while proc.poll() is None:
      time.sleep(5)
      last_size = _echo_progress(log_path, last_size)
    _echo_progress(log_path, last_size)
  if proc.returncode != 0:
    with open(log_path) as f:
      tail = f.read().splitlines()[-15:]
    print("\n".join(tail))
    raise SystemExit("step %s failed (exit code %d); see %s" % (name, proc.returncode, log_path))
  print("  done in %.0fs" % (time.time() - start), flush=True)
  return time.time() - start


def _echo_progress(log_path, offset):
  """Prints the progress lines (step / eval / errors) the run has logged since `offset`."""
  with open(log_path) as f:
    f.seek(offset)
    text = f.read()
    offset = f.tell()
  for line in text.splitlines():
    message = line.split("] ", 1)[-1]
    # "error:" only at the start: TensorFlow's harmless "CUDA error: failed call to cuInit" on
    # machines without a GPU is not one of ours.
    if line.startswith("error:"):
      print("  " + line, flush=True)
    elif any(key in message for key in ("step ", "Eval at", "accuracy =", "Exported")):
      print("  " + message, flush=True)
  return offset


def read_json(path):
  with open(path) as f:
    return json.load(f)


def checkpoint_megabytes(export_dir):
  files = glob.glob(os.path.join(export_dir, "bert_model.ckpt.*"))
  return sum(os.path.getsize(f) for f in files) / 1e6


def latencies_ms(runners, batch_size, seq_length, iters):
  """Median milliseconds per batch of each runner (serving.make_runner) at [batch_size, seq_length].

  The models are loaded together, warmed up, then called in alternation (one call of each per
  round), so that background load and CPU clock changes hit them alike and the ratio of two
  medians is a fair speedup.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.RandomState(0)
  feed = {"input_ids": rng.randint(1000, 30000, size=(batch_size, seq_length)).astype(np.int32),
          "input_mask": np.ones((batch_size, seq_length), np.int32),
          "segment_ids": np.zeros((batch_size, seq_length), np.int32)}
  for run in runners:
    for _ in range(5):  # graph optimisation and oneDNN kernel set-up happen on the first calls
      run(feed)
  times = [[] for _ in runners]
  for _ in range(iters):
    for i, run in enumerate(runners):
      start = time.perf_counter()
      run(feed)
      times[i].append(time.perf_counter() - start)
  return [1000.0 * float(np.median(t)) for t in times]


def int8_dev_accuracy(export_dir, sst2_dir):
  """SST-2 dev accuracy of the export's model_int8.tflite, through predict.py's Predictor."""
  from theseus.tasks.classifier import datasets  # pylint: disable=g-import-not-at-top
  from theseus.export import serving  # pylint: disable=g-import-not-at-top
  examples = datasets.get_processor("sst-2").get_dev_examples(sst2_dir)
  predictor = serving.Predictor(export_dir, backend="tflite_int8")
  labels = []
  for start in range(0, len(examples), 32):
    labels += [p["label"] for p in predictor.predict([e.text_a for e in
                                                      examples[start:start + 32]])]
  return sum(l == e.label for l, e in zip(labels, examples)) / float(len(examples))


def comparison_rows(args, runs, sst2_dir):
  """Predecessor, successor and the successor's int8 TFLite file: accuracy, size, latency."""
  from theseus.export import serving  # pylint: disable=g-import-not-at-top
  models = [(name, os.path.join(run_dir, "export"), "saved_model") for name, run_dir in runs]
  models.append(("successor, int8 TFLite", os.path.join(runs[1][1], "export"), "tflite_int8"))
  runners = [serving.make_runner(export_dir, backend) for _, export_dir, backend in models]
  latency_b1 = latencies_ms(runners, 1, 128, args.latency_iters)
  latency_b32 = latencies_ms(runners, 32, 128, max(3, args.latency_iters // 3))
  for runner in runners:
    runner.close()
  rows = []
  for i, (name, export_dir, backend) in enumerate(models):
    int8 = backend == "tflite_int8"
    rows.append({
        "model": name,
        "dev_accuracy": (int8_dev_accuracy(export_dir, sst2_dir) if int8 else read_json(
            os.path.join(os.path.dirname(export_dir), "eval_results.json"))["accuracy"]),
        "parameters": read_json(os.path.join(export_dir, "export_info.json"))["parameters"],
        "file_mb": (os.path.getsize(os.path.join(export_dir, "model_int8.tflite")) / 1e6
                    if int8 else checkpoint_megabytes(export_dir)),
        "latency_b1_ms": latency_b1[i],
        "latency_b32_ms": latency_b32[i],
    })
  return rows


def print_table(args, rows, summary, s2_dir):
  print("\nSST-2 dev (872 sentences); latency at sequence length 128 through the exported "
        "SavedModel (the int8 row: its TFLite file), median of %d (batch 1) / %d (batch 32) "
        "alternating calls\n" % (args.latency_iters, max(3, args.latency_iters // 3)))
  header = "%-24s %10s %12s %10s %13s %14s" % ("model", "dev acc", "parameters", "file MB",
                                                "batch-1 ms", "batch-32 ms")
  print(header)
  print("-" * len(header))
  for r in rows:
    print("%-24s %10.4f %12d %10.1f %13.1f %14.1f" % (
        r["model"], r["dev_accuracy"], r["parameters"], r["file_mb"], r["latency_b1_ms"],
        r["latency_b32_ms"]))
  print("\nretention %.1f%% | speedup batch-1 %.2fx, batch-32 %.2fx | total %.0fs" % (
      100 * summary["retention"], summary["speedup_b1"], summary["speedup_b32"],
      summary["total_seconds"]))
  print("exported successor: %s" % os.path.join(s2_dir, "export"))


def main():
  args = parse_args()
  from theseus import cli  # pylint: disable=g-import-not-at-top
  verbose = ["--tf_verbose"] if args.tf_verbose else []
  # For the steps, and for this process, which loads the exported models for the latency table.
  cli.prepare_process(verbose)
  if not args.tf_verbose:
    cli.quiet_tensorflow_python_logs()
  os.makedirs(args.output_dir, exist_ok=True)
  sst2 = os.path.join(args.glue_dir, "SST-2")
  if not os.path.isfile(os.path.join(sst2, "train.tsv")):
    raise SystemExit("SST-2 not found in %s (set GLUE_DIR)" % sst2)
  total_start = time.time()

  import convert_checkpoint  # pylint: disable=g-import-not-at-top
  print("[convert] the packaged all-MiniLM-L6-v2 -> TF checkpoint", flush=True)
  result = convert_checkpoint.convert_embedded_default()
  print("  %s%s" % (result.output_dir, " (already converted)" if result.skipped else ""))

  pred_dir = os.path.join(args.output_dir, "predecessor")
  s1_dir = os.path.join(args.output_dir, "stage1")
  s2_dir = os.path.join(args.output_dir, "stage2")
  common = ["--data_dir=" + sst2, "--max_train_examples=%d" % args.train_examples]
  timings = {}
  timings["predecessor"] = run_step("predecessor", [
      "--flagfile=configs/sst2_predecessor.flags", "--output_dir=" + pred_dir,
      "--init_checkpoint=" + result.init_checkpoint,
      "--num_train_epochs=%g" % args.predecessor_epochs,
      "--do_train", "--do_eval", "--do_export"] + common + verbose, args.output_dir)
  pred_ckpt = read_json(os.path.join(pred_dir, "eval_results.json"))["checkpoint"]
  timings["stage1"] = run_step("stage1", [
      "--flagfile=configs/sst2_stage1.flags", "--output_dir=" + s1_dir,
      "--init_checkpoint=" + pred_ckpt, "--num_train_epochs=%g" % args.stage1_epochs,
      "--do_train", "--do_eval"] + common + verbose, args.output_dir)
  s1_ckpt = read_json(os.path.join(s1_dir, "eval_results.json"))["checkpoint"]
  timings["stage2"] = run_step("stage2", [
      "--flagfile=configs/sst2_stage2.flags", "--output_dir=" + s2_dir,
      "--init_checkpoint=" + s1_ckpt, "--num_train_epochs=%g" % args.stage2_epochs,
      "--do_train", "--do_eval", "--do_export", "--export_tflite"] + common + verbose,
      args.output_dir)

  runs = (("predecessor (6 layers)", pred_dir), ("successor (3 layers)", s2_dir))
  rows = comparison_rows(args, runs, sst2)
  pred, suc = rows[0], rows[1]
  summary = {"rows": rows, "retention": suc["dev_accuracy"] / pred["dev_accuracy"],
             "speedup_b1": pred["latency_b1_ms"] / suc["latency_b1_ms"],
             "speedup_b32": pred["latency_b32_ms"] / suc["latency_b32_ms"],
             "train_seconds": timings, "total_seconds": time.time() - total_start,
             "train_examples": args.train_examples}
  with open(os.path.join(args.output_dir, "summary.json"), "w") as f:
    json.dump(summary, f, indent=1)
  print_table(args, rows, summary, s2_dir)


if __name__ == "__main__":
  main()
