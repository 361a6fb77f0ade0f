#!/usr/bin/env python
"""NER-as-MRC benchmark on CoNLL-2003: compress the embedded predecessor 6 -> 3 layers.

Runs the real command line (run_ner_mrc.py, configs/ner_conll2003.flags) once per stage, each
in its own directory under --output_dir:

  predecessor  plain fine-tuning of the embedded all-MiniLM-L6-v2 (6 layers, converted by
               convert_checkpoint.convert_embedded_default) on train.txt;
  stage1       replacing (--suc_layers=3), from the predecessor's best checkpoint: only the
               successor modules train;
  stage2       successor fine-tuning (--finetune_suc), from stage 1's best checkpoint, then the
               3-layer successor is exported;
  with --methods=...,theseus_kd,truncation_kd also stage1_kd / stage2_kd (the same two stages
  with distillation from the predecessor) and truncation_kd (its first 3 layers fine-tuned with
  the same distillation and the stage 1 + stage 2 budget).

Every stage evaluates on valid.txt (the CoNLL-2003 test split is not in ../shared/data) at each
checkpoint and keeps the best; the final --do_eval of each stage uses it. Stage 1 and stage 2 are
scored with the successor-only graph (what gets shipped). The script prints a table (entity F1,
precision, recall, training time, evaluation speed) and writes it as JSON.

A stage whose directory already holds a finished run is resumed / reused (the training loop
resumes from its newest checkpoint); --fresh starts over.

Full run (hours on a CPU):
  python benchmarks/ner_conll2003.py
A short check (flags cap examples and steps):
  python benchmarks/ner_conll2003.py --max_train_examples=400 --max_eval_examples=200 \
      --predecessor_steps=120 --stage1_steps=60 --stage2_steps=60 --train_batch_size=16 \
      --output_dir=runs/ner_bench_short --fresh
"""

import argparse
import collections
import datetime
import glob
import json
import os
import platform
import shutil
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
  sys.path.insert(0, REPO_ROOT)

DEFAULT_DATA_DIR = os.path.normpath(os.path.join(REPO_ROOT, "..", "shared", "data", "conll2003"))
SCRIPT = os.path.join(REPO_ROOT, "run_ner_mrc.py")
FLAGFILE = os.path.join(REPO_ROOT, "configs", "ner_conll2003.flags")


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--data_dir", default=DEFAULT_DATA_DIR,
                 help="CoNLL-2003 directory with train.txt and valid.txt.")
  p.add_argument("--output_dir", default=os.path.join(REPO_ROOT, "runs", "ner_conll2003"),
                 help="Where the three stages write (one sub-directory each).")
  p.add_argument("--results_json", default=None,
                 help="Result file (default: <output_dir>/results.json).")
  p.add_argument("--model_dir", default=None,
                 help="Predecessor directory (bert_model.ckpt, bert_config.json, vocab.txt); "
                      "default: the embedded all-MiniLM-L6-v2, converted if needed.")
  p.add_argument("--suc_layers", type=int, default=3, help="Successor layers n.")
  p.add_argument("--max_train_examples", type=int, default=0,
                 help="Train on the first N sentences only (0: all 14,041).")
  p.add_argument("--max_eval_examples", type=int, default=0,
                 help="Evaluate on the first N dev sentences only (0: all 3,250).")
  for stage in ("predecessor", "stage1", "stage2"):
    p.add_argument("--%s_epochs" % stage, type=float, default=3.0)
    p.add_argument("--%s_steps" % stage, type=int, default=0,
                   help="If > 0, the updates of this stage (overrides its epochs).")
    p.add_argument("--%s_learning_rate" % stage, type=float, default=5e-5)
  p.add_argument("--replacing_rate", type=float, default=0.5, help="Stage-1 base replace rate.")
  p.add_argument("--scheduler_type", choices=("constant", "linear"), default="constant")
  p.add_argument("--scheduler_linear_k", type=float, default=0.0)
  p.add_argument("--train_batch_size", type=int, default=32)
  p.add_argument("--eval_batch_size", type=int, default=64)
  p.add_argument("--max_seq_length", type=int, default=128)
  p.add_argument("--save_checkpoints_steps", type=int, default=0,
                 help="Evaluate / checkpoint every N updates (0: 4 times per stage).")
  p.add_argument("--num_threads", type=int, default=0, help="TensorFlow threads (0: default).")
  p.add_argument("--fresh", action="store_true", help="Delete --output_dir first.")
  p.add_argument("--extra_flag", action="append", default=[],
                 help="Another run_ner_mrc.py flag for every stage (repeatable), e.g. "
                      "--extra_flag=--loss=focal.")
  p.add_argument("--methods", default="theseus",
                 help="comma list: theseus (stage1 -> stage2 from the predecessor), theseus_kd "
                      "(the same with distillation from the predecessor in both stages), "
                      "truncation_kd (the predecessor's first --suc_layers layers fine-tuned "
                      "with the same distillation and the stage 1 + stage 2 budget)")
  p.add_argument("--kd_alpha", type=float, default=0.5, help="*_kd: soft-label weight")
  p.add_argument("--kd_temperature", type=float, default=2.0, help="*_kd: temperature")
  p.add_argument("--kd_hidden_weight", type=float, default=1.0, help="*_kd: hidden matching")
  return p.parse_args(argv)


def latest_checkpoint(directory):
  """Newest model.ckpt-N in `directory` (None when there is none)."""
  indexes = glob.glob(os.path.join(directory, "model.ckpt-*.index"))
  if not indexes:
    return None
  newest = max(indexes, key=lambda p: int(p.rsplit("-", 1)[1].split(".")[0]))
  return newest[:-len(".index")]


def inference_checkpoint(stage_dir):
  """The checkpoint a stage's eval used: its best one, else its newest."""
  return latest_checkpoint(os.path.join(stage_dir, "best")) or latest_checkpoint(stage_dir)


def stage_steps(args, steps, epochs, num_features):
  if steps > 0:
    return steps
  return max(1, int(num_features * epochs / args.train_batch_size + 0.999))


def run_stage(args, name, model, init_checkpoint, extra):
  """Runs run_ner_mrc.py for one stage; returns (stage dir, wall seconds, eval metrics)."""
  stage_dir = os.path.join(args.output_dir, name)
  cmd = [sys.executable, SCRIPT, "--flagfile=" + FLAGFILE,
         "--data_dir=" + args.data_dir, "--bert_config_file=" + model["bert_config_file"],
         "--vocab_file=" + model["vocab_file"], "--init_checkpoint=" + init_checkpoint,
         "--output_dir=" + stage_dir, "--do_train", "--do_eval",
         "--evaluate_during_training", "--max_seq_length=%d" % args.max_seq_length,
         "--train_batch_size=%d" % args.train_batch_size,
         "--eval_batch_size=%d" % args.eval_batch_size,
         "--max_train_examples=%d" % args.max_train_examples,
         "--max_eval_examples=%d" % args.max_eval_examples,
         "--num_threads=%d" % args.num_threads, "--log_every_n_steps=20"] + extra
  cmd += args.extra_flag
  os.makedirs(stage_dir, exist_ok=True)
  log_path = os.path.join(stage_dir, "benchmark_log.txt")
  print("[%s] %s" % (name, " ".join(cmd)), flush=True)
  start = time.time()
  with open(log_path, "a", encoding="utf-8") as log:
    log.write("$ %s\n" % " ".join(cmd))
    log.flush()
    proc = subprocess.run(cmd, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
  seconds = time.time() - start
  if proc.returncode != 0:
    with open(log_path, encoding="utf-8", errors="replace") as f:
      tail = f.read()[-3000:]
    raise SystemExit("stage %s failed (exit code %d); log %s:\n%s"
                     % (name, proc.returncode, log_path, tail))
  with open(os.path.join(stage_dir, "eval_results.json")) as f:
    metrics = json.load(f)
  return stage_dir, seconds, metrics


def main(argv=None):
  args = parse_args(argv)
  args.output_dir = os.path.abspath(args.output_dir)
  if args.fresh and os.path.isdir(args.output_dir):
    shutil.rmtree(args.output_dir)
  os.makedirs(args.output_dir, exist_ok=True)
  for f in ("train.txt", "valid.txt"):
    if not os.path.isfile(os.path.join(args.data_dir, f)):
      raise SystemExit("error: %s not found in --data_dir=%s" % (f, args.data_dir))

  if args.model_dir:
    model = {"init_checkpoint": os.path.join(args.model_dir, "bert_model.ckpt"),
             "bert_config_file": os.path.join(args.model_dir, "bert_config.json"),
             "vocab_file": os.path.join(args.model_dir, "vocab.txt")}
  else:
    import convert_checkpoint  # pylint: disable=g-import-not-at-top
    embedded = convert_checkpoint.convert_embedded_default()
    model = {"init_checkpoint": embedded.init_checkpoint,
             "bert_config_file": embedded.bert_config_file, "vocab_file": embedded.vocab_file}
  with open(model["bert_config_file"]) as f:
    num_layers = json.load(f)["num_hidden_layers"]

  # Features per sentence = number of entity types (4) for CoNLL sentences, which fit one
  # window; used only to turn epochs into a step count shared by all stages' schedules.
  from theseus.tasks.ner_mrc import readers  # pylint: disable=g-import-not-at-top
  from theseus.tasks.ner_mrc import task as ner_task  # pylint: disable=g-import-not-at-top
  sentences, _ = readers.read_conll2003(os.path.join(args.data_dir, "train.txt"))
  num_train = len(sentences[:args.max_train_examples or None])
  queries = readers.load_queries(ner_task.default_query_file("conll2003"))
  num_features = num_train * len(queries)

  s1_steps = stage_steps(args, args.stage1_steps, args.stage1_epochs, num_features)
  s2_steps = stage_steps(args, args.stage2_steps, args.stage2_epochs, num_features)
  stage1 = ["--suc_layers=%d" % args.suc_layers, "--replacing_rate=%r" % args.replacing_rate,
            "--scheduler_type=" + args.scheduler_type,
            "--scheduler_linear_k=%r" % args.scheduler_linear_k]
  stage2 = ["--suc_layers=%d" % args.suc_layers, "--finetune_suc", "--do_export"]
  # name -> (steps, learning rate, flags, the stage whose checkpoint it starts from, distilled)
  plan = collections.OrderedDict([
      ("predecessor", (stage_steps(args, args.predecessor_steps, args.predecessor_epochs,
                                   num_features), args.predecessor_learning_rate, [], None,
                       False))])
  methods = args.methods.split(",")
  if "theseus" in methods:
    plan["stage1"] = (s1_steps, args.stage1_learning_rate, stage1, "predecessor", False)
    plan["stage2"] = (s2_steps, args.stage2_learning_rate, stage2, "stage1", False)
  if "theseus_kd" in methods:
    plan["stage1_kd"] = (s1_steps, args.stage1_learning_rate, stage1, "predecessor", True)
    plan["stage2_kd"] = (s2_steps, args.stage2_learning_rate, stage2, "stage1_kd", True)
  if "truncation_kd" in methods:
    plan["truncation_kd"] = (s1_steps + s2_steps, args.stage1_learning_rate, ["--do_export"],
                             "truncated", True)
  rows = []
  stage_dirs = {}
  for name, (steps, lr, extra, start, kd) in plan.items():
    every = args.save_checkpoints_steps or max(1, steps // 4)
    extra = extra + ["--num_train_steps=%d" % steps, "--learning_rate=%r" % lr,
                     "--save_checkpoints_steps=%d" % every]
    stage_model, init = model, model["init_checkpoint"]
    if start == "truncated":
      from theseus.training import checkpoints  # pylint: disable=g-import-not-at-top
      init, config = checkpoints.truncate_bert(
          inference_checkpoint(stage_dirs["predecessor"]), model["bert_config_file"],
          args.suc_layers, os.path.join(args.output_dir, "truncated_init"))
      stage_model = dict(model, bert_config_file=config)
    elif start:
      init = inference_checkpoint(stage_dirs[start])
    if kd:
      extra += ["--kd_alpha=%r" % args.kd_alpha, "--kd_temperature=%r" % args.kd_temperature,
                "--kd_hidden_weight=%r" % args.kd_hidden_weight,
                "--teacher_checkpoint=" + inference_checkpoint(stage_dirs["predecessor"]),
                "--teacher_bert_config_file=" + model["bert_config_file"]]
    stage_dir, seconds, metrics = run_stage(args, name, stage_model, init, extra)
    stage_dirs[name] = stage_dir
    num_eval = metrics.get("num_sentences", 0)
    rows.append({
        "stage": name,
        "layers": num_layers if name == "predecessor" else args.suc_layers,
        "f1": metrics["f1"], "precision": metrics["precision"], "recall": metrics["recall"],
        "per_type_f1": {k[3:]: v for k, v in metrics.items() if k.startswith("f1_")},
        "train_steps": steps, "learning_rate": lr, "stage_seconds": seconds,
        "eval_seconds": metrics.get("eval_seconds"),
        "eval_sentences": num_eval,
        "eval_sentences_per_second": (num_eval / metrics["eval_seconds"]
                                      if metrics.get("eval_seconds") else None),
        "checkpoint": metrics.get("checkpoint"), "output_dir": stage_dir})
    print("[%s] F1 %.4f (%.0fs)" % (name, metrics["f1"], seconds), flush=True)

  pred, stage2 = rows[0], rows[-1]
  summary = {
      "predecessor_f1": pred["f1"], "successor_f1": stage2["f1"],
      "f1_retained": stage2["f1"] / pred["f1"] if pred["f1"] else None,
      "final_f1": {r["stage"]: r["f1"] for r in rows},
      "compression_seconds": sum(r["stage_seconds"] for r in rows[1:]),
      "total_seconds": sum(r["stage_seconds"] for r in rows),
      "eval_speedup": (stage2["eval_sentences_per_second"] / pred["eval_sentences_per_second"]
                       if pred["eval_sentences_per_second"] and
                       stage2["eval_sentences_per_second"] else None),
  }
  export_dir = os.path.join(rows[-1]["output_dir"], "export")
  result = {
      "benchmark": "ner_conll2003", "date": datetime.datetime.now().isoformat(timespec="seconds"),
      "machine": {"platform": platform.platform(), "python": platform.python_version(),
                  "cpu_count": os.cpu_count()},
      "settings": {k: v for k, v in vars(args).items()},
      "train_sentences": num_train, "train_features": num_features,
      "shortened": bool(args.max_train_examples or args.max_eval_examples or
                        args.predecessor_steps or args.stage1_steps or args.stage2_steps),
      "stages": rows, "summary": summary, "export_dir": export_dir,
  }

  print()
  print("NER-as-MRC on CoNLL-2003 dev (valid.txt%s), %d -> %d layers%s"
        % (", first %d sentences" % args.max_eval_examples if args.max_eval_examples else "",
           num_layers, args.suc_layers, "  [SHORTENED RUN]" if result["shortened"] else ""))
  header = "%-14s %6s %7s %9s %7s %7s %10s %12s" % (
      "stage", "layers", "F1", "precision", "recall", "steps", "time (s)", "eval sent/s")
  print(header)
  print("-" * len(header))
  for r in rows:
    print("%-14s %6d %7.4f %9.4f %7.4f %7d %10.1f %12s" % (
        r["stage"], r["layers"], r["f1"], r["precision"], r["recall"], r["train_steps"],
        r["stage_seconds"],
        "%.1f" % r["eval_sentences_per_second"] if r["eval_sentences_per_second"] else "-"))
  print("-" * len(header))
  print("predecessor F1 %.4f | successor F1 %.4f | retained %s | compression time %.1fs | "
        "total %.1fs | eval speed-up %s" % (
            summary["predecessor_f1"], summary["successor_f1"],
            "%.1f%%" % (100 * summary["f1_retained"]) if summary["f1_retained"] else "-",
            summary["compression_seconds"], summary["total_seconds"],
            "%.2fx" % summary["eval_speedup"] if summary["eval_speedup"] else "-"))
  path = args.results_json or os.path.join(args.output_dir, "results.json")
  with open(path, "w") as f:
    json.dump(result, f, indent=1, default=str)
  print("Results: %s\nSuccessor export: %s" % (path, export_dir))
  return result


if __name__ == "__main__":
  main()
