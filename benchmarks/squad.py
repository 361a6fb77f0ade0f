#!/usr/bin/env python
"""SQuAD v1.1 benchmark: compress the embedded predecessor 6 -> 3 layers with run_squad.py.

On ../shared/data/squad (train.json 7,753 questions, dev.json 1,086; SOURCES.md), the real
command line runs each stage of benchmarks/chain.py's methods (predecessor, theseus,
theseus_kd, theseus_module, truncation, truncation_kd), every stage evaluating on dev.json at
each checkpoint (exact match and F1 as evaluate-v1.1.py computes them) and keeping the best.
Every stage exports; the inference speed of the predecessor's and the successor's exports is
then measured on real dev features (batch 1 and 32, interleaved rounds, median).

  python benchmarks/squad.py                       # the BENCHMARKS.md run (hours on 2 cores)
  python benchmarks/squad.py --max_train_examples=64 --max_eval_examples=32 \
      --predecessor_steps=4 --stage1_steps=2 --stage2_steps=2 --output_dir=runs/squad_smoke

Prints a table and writes <output_dir>/results.json.
"""

import argparse
import datetime
import json
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chain  # noqa: E402  pylint: disable=g-import-not-at-top

DATA_DIR = os.path.normpath(os.path.join(chain.REPO_ROOT, "..", "shared", "data", "squad"))


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--train_file", default=os.path.join(DATA_DIR, "train.json"))
  p.add_argument("--predict_file", default=os.path.join(DATA_DIR, "dev.json"))
  p.add_argument("--output_dir", default=os.path.join(chain.REPO_ROOT, "runs", "squad"))
  p.add_argument("--max_seq_length", type=int, default=256)
  p.add_argument("--doc_stride", type=int, default=128)
  p.add_argument("--max_query_length", type=int, default=64)
  p.add_argument("--max_train_examples", type=int, default=0, help="questions (0: all)")
  p.add_argument("--max_eval_examples", type=int, default=0, help="questions (0: all)")
  p.add_argument("--speed_rounds", type=int, default=5)
  chain.add_arguments(p, default_methods="theseus,theseus_kd,truncation,truncation_kd")
  args = p.parse_args(argv)
  args.output_dir = os.path.abspath(args.output_dir)
  return args


def dev_features(args, vocab_file):
  """(train feature count, dev features) as run_squad.py makes them."""
  import tokenization  # pylint: disable=g-import-not-at-top
  from theseus.tasks.squad import features  # pylint: disable=g-import-not-at-top
  from theseus.tasks.squad import reader  # pylint: disable=g-import-not-at-top
  tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=True)
  counts = []
  for path, limit in ((args.train_file, args.max_train_examples),
                      (args.predict_file, args.max_eval_examples)):
    examples, _, _ = reader.read_squad_file(path, need_answers=True, limit=limit)
    built, _ = features.convert_examples_to_features(
        examples, tokenizer, args.max_seq_length, args.doc_stride, args.max_query_length)
    counts.append(built)
  return len(counts[0]), counts[1]


def _batch(features_list):
  length = max(len(f["input_ids"]) for f in features_list)
  pad = lambda values: values + [0] * (length - len(values))  # noqa: E731
  return {"input_ids": np.array([pad(f["input_ids"]) for f in features_list], np.int32),
          "input_mask": np.array([pad([1] * len(f["input_ids"])) for f in features_list],
                                 np.int32),
          "segment_ids": np.array([pad(f["segment_ids"]) for f in features_list], np.int32)}


def inference_speed(exports, dev, rounds):
  """{export name: {batch size: features (windows) per second}}: interleaved rounds over the
  same dev batches, the median round."""
  from theseus.export import serving  # pylint: disable=g-import-not-at-top
  runners = {name: serving.SavedModelRunner(os.path.join(path, "saved_model"))
             for name, path in exports.items()}
  batches = {1: [_batch([f]) for f in dev[:32]],
             32: [_batch(dev[i:i + 32]) for i in range(0, min(len(dev), 256), 32)]}
  times = {name: {size: [] for size in batches} for name in runners}
  for name, runner in runners.items():  # warm-up
    for size in batches:
      runner(batches[size][0])
  for _ in range(rounds):
    for size, feeds in batches.items():
      for name, runner in runners.items():
        start = time.perf_counter()
        for feed in feeds:
          runner(feed)
        times[name][size].append(time.perf_counter() - start)
  for runner in runners.values():
    runner.close()
  examples = {size: sum(feed["input_ids"].shape[0] for feed in feeds)
              for size, feeds in batches.items()}
  return {name: {size: examples[size] / float(np.median(times[name][size])) for size in batches}
          for name in runners}


def print_table(rows, speed):
  header = "%-16s %6s %7s %7s %7s %9s" % ("stage", "steps", "EM", "F1", "time s", "retained")
  print(header + "\n" + "-" * len(header))
  pred_f1 = rows[0]["f1"]
  for r in rows:
    print("%-16s %6d %7.2f %7.2f %7.0f %8.1f%%" % (r["stage"], r["steps"], r["exact_match"],
                                                  r["f1"], r["seconds"],
                                                  100 * r["f1"] / pred_f1))
  for size in (1, 32):
    pred, suc = speed["predecessor"][size], speed["successor"][size]
    print("inference, batch %2d: predecessor %.0f examples/s, successor %.0f examples/s: %.2fx"
          % (size, pred, suc, suc / pred))


def main(argv=None):
  args = parse_args(argv)
  os.makedirs(args.output_dir, exist_ok=True)
  model = chain.embedded_model()
  num_train_features, dev = dev_features(args, model["vocab_file"])
  command = [sys.executable, os.path.join(chain.REPO_ROOT, "run_squad.py"),
             "--vocab_file=" + model["vocab_file"], "--train_file=" + args.train_file,
             "--predict_file=" + args.predict_file, "--max_seq_length=%d" % args.max_seq_length,
             "--doc_stride=%d" % args.doc_stride,
             "--max_query_length=%d" % args.max_query_length,
             "--max_train_examples=%d" % args.max_train_examples,
             "--max_eval_examples=%d" % args.max_eval_examples, "--do_export"]
  stages = chain.run_chain(args, command, model, num_train_features, args.output_dir)
  rows = [{"stage": name, "steps": steps, "learning_rate": rate, "seconds": seconds,
           "exact_match": m["exact_match"], "f1": m["f1"], "checkpoint": m["checkpoint"],
           "eval_seconds": m["eval_seconds"]} for name, steps, rate, seconds, m, _ in stages]
  successor = next(d for name, _, _, _, _, d in stages if name.startswith("stage2"))
  speed = inference_speed({"predecessor": os.path.join(stages[0][5], "export"),
                           "successor": os.path.join(successor, "export")}, dev,
                          args.speed_rounds)
  print_table(rows, speed)
  result = {"benchmark": "squad_v1.1", "date": datetime.datetime.now().isoformat("T", "seconds"),
            "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
            "settings": vars(args), "train_features": num_train_features,
            "dev_features": len(dev), "stages": rows,
            "inference_examples_per_second": speed, "speed_successor": successor}
  with open(os.path.join(args.output_dir, "results.json"), "w") as f:
    json.dump(result, f, indent=1, default=str)
  print("Results: %s" % os.path.join(args.output_dir, "results.json"))
  return result


if __name__ == "__main__":
  main()
