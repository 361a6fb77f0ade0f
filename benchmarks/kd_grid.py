#!/usr/bin/env python
"""The distillation grid, stated before it runs: which settings should theseus_module use?

On MRPC only (seed 1, 6 -> 3 from the embedded predecessor, the budget of the quality runs:
stage 1 2 epochs + stage 2 1 epoch, successors from group_first, one dev evaluation at the end
of each run), theseus_module is run for

  kd_alpha {0.5, 0.9} x kd_temperature {2, 4} x kd_module_weight {0.1, 1}

(8 points, every other setting quality.py's default), then once more at the best of them with
--kd_augment=4 (augmentation kept only if it raises the F1). Each point runs
benchmarks/quality.py in a work_dir of its own; all share one predecessor run
(--predecessor_dir reuses a finished one). The chosen point is the one choice every other task
then uses (for theseus_module, and its alpha, T and augmentation for truncation_kd). The table
goes to <work_dir>/kd_grid.json and is printed.

  python benchmarks/kd_grid.py
"""

import argparse
import itertools
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GRID = (("kd_alpha", (0.5, 0.9)), ("kd_temperature", (2.0, 4.0)),
        ("kd_module_weight", (0.1, 1.0)))
AUGMENT = 4
FIXED = ["--tasks=mrpc", "--seeds=1", "--stage1_epochs=2", "--stage2_epochs=1",
         "--suc_init=group_first", "--methods=theseus_module", "--evals_per_run=1"]
NAMES = [name for name, _ in GRID] + ["kd_augment"]


def point_name(values):
  return "_".join("%s%g" % (name.replace("kd_", ""), value) for name, value in zip(NAMES, values))


def run_point(work_dir, values, predecessor_dir):
  """Runs quality.py for one grid point; returns its final dev F1 and accuracy."""
  point_dir = os.path.join(work_dir, point_name(values))
  seed_dir = os.path.join(point_dir, "mrpc", "seed1")
  os.makedirs(seed_dir, exist_ok=True)
  shared = os.path.join(seed_dir, "predecessor")
  if predecessor_dir and not os.path.exists(shared):
    os.symlink(predecessor_dir, shared)
  flags = FIXED + ["--work_dir=" + point_dir] + [
      "--%s=%g" % (name, value) for name, value in zip(NAMES, values)]
  with open(os.path.join(point_dir, "grid.log"), "a") as log:
    code = subprocess.call([sys.executable, os.path.join(REPO, "benchmarks", "quality.py")] +
                           flags, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
  if code:
    raise SystemExit("grid point %s failed; see %s" % (point_name(values),
                                                       os.path.join(point_dir, "grid.log")))
  with open(os.path.join(point_dir, "quality.json")) as f:
    result = json.load(f)["mrpc"]
  return (result["values"]["theseus_module"][0], result["accuracy_values"]["theseus_module"][0],
          result["values"]["predecessor"][0], os.path.realpath(
              os.path.join(seed_dir, "predecessor")))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--work_dir", default=os.path.join(REPO, "runs", "kd_grid"))
  parser.add_argument("--predecessor_dir", default=None,
                      help="a finished MRPC seed-1 predecessor run of quality.py to share")
  args = parser.parse_args()
  os.makedirs(args.work_dir, exist_ok=True)
  table, predecessor_dir = [], args.predecessor_dir
  points = [values + (0,) for values in itertools.product(*[choices for _, choices in GRID])]
  for values in points + [None]:
    if values is None:  # augmentation, at the best point so far
      values = tuple(max(table, key=lambda row: row["f1"])[n] for n in NAMES[:-1]) + (AUGMENT,)
    f1, accuracy, predecessor_f1, predecessor_dir = run_point(args.work_dir, values,
                                                              predecessor_dir)
    table.append(dict(zip(NAMES, values), f1=f1, accuracy=accuracy,
                      predecessor_f1=predecessor_f1))
    print("%-40s F1 %.4f  accuracy %.4f" % (point_name(values), f1, accuracy), flush=True)
  best = max(table, key=lambda row: row["f1"])
  with open(os.path.join(args.work_dir, "kd_grid.json"), "w") as f:
    json.dump({"grid": [[n, list(c)] for n, c in GRID] + [["kd_augment", [0, AUGMENT]]],
               "fixed": FIXED, "points": table, "best": best}, f, indent=1)
  print("best: %s (F1 %.4f; predecessor %.4f)" % (
      ", ".join("%s=%g" % (n, best[n]) for n in NAMES), best["f1"], best["predecessor_f1"]))


if __name__ == "__main__":
  main()
