#!/usr/bin/env python
"""NER-as-MRC benchmark on CoNLL-2003: compress the embedded predecessor 6 -> 3 layers.

Runs the real command line (run_ner_mrc.py, configs/ner_conll2003.flags) for each stage of
benchmarks/chain.py's methods (the predecessor, then theseus, theseus_kd, theseus_module,
truncation, truncation_kd as --methods asks), each in its own directory under --output_dir.
Every stage evaluates on valid.txt (the CoNLL-2003 test split is not in ../shared/data) at each
checkpoint and keeps the best; the final --do_eval of each stage uses it, with the
successor-only graph for the successors (what gets shipped). The script prints a table (entity
F1, precision, recall, training time, evaluation speed) and writes it as JSON.

Full run (hours on a CPU):
  python benchmarks/ner_conll2003.py
A short check (flags cap examples and steps):
  python benchmarks/ner_conll2003.py --max_train_examples=400 --max_eval_examples=200 \
      --predecessor_steps=120 --stage1_steps=60 --stage2_steps=60 --train_batch_size=16 \
      --output_dir=runs/ner_bench_short --fresh
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chain  # noqa: E402  pylint: disable=g-import-not-at-top

DEFAULT_DATA_DIR = os.path.normpath(os.path.join(chain.REPO_ROOT, "..", "shared", "data",
                                                 "conll2003"))
SCRIPT = os.path.join(chain.REPO_ROOT, "run_ner_mrc.py")
FLAGFILE = os.path.join(chain.REPO_ROOT, "configs", "ner_conll2003.flags")


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--data_dir", default=DEFAULT_DATA_DIR,
                 help="CoNLL-2003 directory with train.txt and valid.txt.")
  p.add_argument("--output_dir", default=os.path.join(chain.REPO_ROOT, "runs", "ner_conll2003"),
                 help="Where the stages write (one sub-directory each).")
  p.add_argument("--results_json", default=None,
                 help="Result file (default: <output_dir>/results.json).")
  p.add_argument("--max_train_examples", type=int, default=0,
                 help="Train on the first N sentences only (0: all 14,041).")
  p.add_argument("--max_eval_examples", type=int, default=0,
                 help="Evaluate on the first N dev sentences only (0: all 3,250).")
  p.add_argument("--max_seq_length", type=int, default=128)
  p.add_argument("--fresh", action="store_true", help="Delete --output_dir first.")
  chain.add_arguments(p, default_methods="theseus")
  args = p.parse_args(argv)
  args.output_dir = os.path.abspath(args.output_dir)
  return args


def num_train_features(args):
  """Features = sentences x entity types (CoNLL sentences fit one window): turns epochs into a
  step count that every stage's schedule shares."""
  from theseus.tasks.ner_mrc import readers  # pylint: disable=g-import-not-at-top
  from theseus.tasks.ner_mrc import task as ner_task  # pylint: disable=g-import-not-at-top
  sentences, _ = readers.read_conll2003(os.path.join(args.data_dir, "train.txt"))
  queries = readers.load_queries(ner_task.default_query_file("conll2003"))
  return len(sentences[:args.max_train_examples or None]) * len(queries)


def print_table(args, rows):
  print("\nNER-as-MRC on CoNLL-2003 dev (valid.txt%s), 6 -> %d layers"
        % (", first %d sentences" % args.max_eval_examples if args.max_eval_examples else "",
           args.suc_layers))
  header = "%-16s %7s %9s %7s %7s %10s %12s" % ("stage", "F1", "precision", "recall", "steps",
                                               "time (s)", "eval sent/s")
  print(header + "\n" + "-" * len(header))
  for r in rows:
    print("%-16s %7.4f %9.4f %7.4f %7d %10.1f %12s" % (
        r["stage"], r["f1"], r["precision"], r["recall"], r["train_steps"], r["stage_seconds"],
        "%.1f" % r["eval_sentences_per_second"] if r["eval_sentences_per_second"] else "-"))


def main(argv=None):
  args = parse_args(argv)
  if args.fresh and os.path.isdir(args.output_dir):
    shutil.rmtree(args.output_dir)
  os.makedirs(args.output_dir, exist_ok=True)
  for name in ("train.txt", "valid.txt"):
    if not os.path.isfile(os.path.join(args.data_dir, name)):
      raise SystemExit("error: %s not found in --data_dir=%s" % (name, args.data_dir))
  model = chain.embedded_model()
  command = [sys.executable, SCRIPT, "--flagfile=" + FLAGFILE, "--data_dir=" + args.data_dir,
             "--vocab_file=" + model["vocab_file"], "--max_seq_length=%d" % args.max_seq_length,
             "--max_train_examples=%d" % args.max_train_examples,
             "--max_eval_examples=%d" % args.max_eval_examples, "--do_export"]
  rows = []
  for name, steps, rate, seconds, metrics, stage_dir in chain.run_chain(
      args, command, model, num_train_features(args), args.output_dir):
    eval_sentences = metrics.get("num_sentences", 0)
    rows.append({
        "stage": name, "f1": metrics["f1"], "precision": metrics["precision"],
        "recall": metrics["recall"],
        "per_type_f1": {k[3:]: v for k, v in metrics.items() if k.startswith("f1_")},
        "train_steps": steps, "learning_rate": rate, "stage_seconds": seconds,
        "eval_seconds": metrics.get("eval_seconds"), "eval_sentences": eval_sentences,
        "eval_sentences_per_second": (eval_sentences / metrics["eval_seconds"]
                                      if metrics.get("eval_seconds") else None),
        "checkpoint": metrics.get("checkpoint"), "output_dir": stage_dir})
  print_table(args, rows)
  result = {"benchmark": "ner_conll2003",
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "machine": {"platform": platform.platform(), "python": platform.python_version(),
                        "cpu_count": os.cpu_count()},
            "settings": vars(args), "stages": rows,
            "final_f1": {r["stage"]: r["f1"] for r in rows}}
  path = args.results_json or os.path.join(args.output_dir, "results.json")
  with open(path, "w") as f:
    json.dump(result, f, indent=1, default=str)
  print("Results: %s" % path)
  return result


if __name__ == "__main__":
  main()
