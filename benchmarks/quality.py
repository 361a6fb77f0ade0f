"""Quality benchmark: does the 3-layer successor keep the 6-layer predecessor's dev metric?

For each task and seed, with the embedded all-MiniLM-L6-v2 as the pretrained start:
  predecessor      fine-tune all 6 layers;
  theseus_const    stage 1 (constant p = 0.5) + stage 2, 6 -> 3 layers;
  theseus_linear   stage 1 with a linear schedule that reaches p = 1 (one-stage, the official recipe);
  theseus_linear2  theseus_linear + stage 2;
  truncation       the predecessor's first 3 layers (+ embeddings, pooler, head) fine-tuned
                   directly, with the stage 1 + stage 2 budget in updates;
  theseus_kd       theseus_const with distillation from the predecessor in both stages (soft
                   labels --kd_alpha at --kd_temperature, hidden matching --kd_hidden_weight);
  theseus_module   theseus_const taught by the predecessor: soft labels in both stages, stage 1's
                   module distillation (--kd_module_weight: each drawn successor matched to its
                   group), hidden matching in stage 2;
  truncation_kd    truncation with soft labels and hidden matching (the 6-layer teacher's layers
                   1, 3, 5 for the student's 0, 1, 2), the same budget.
--kd_augment=N adds N teacher-labelled augmented copies of each example to every *_kd / *_module
run (the same number of updates).
Every run is the real run_classifier.py command line with --evaluate_during_training, so the dev
metric is recorded at every checkpoint (eval_history.jsonl). The table reports the metric of the
*final* checkpoint of each method (no selection on dev), mean and sample standard deviation (n - 1)
over seeds, and retention = successor / predecessor; then each Theseus method minus each
truncation baseline, paired by seed (both start from that seed's predecessor), with the standard
error of that mean. A PNG per task plots the dev metric against updates, with
the replace rate on a second axis.

  python benchmarks/quality.py --tasks=mrpc,sst-2,rte --seeds=1,2,3
  python benchmarks/quality.py --tasks=mrpc --seeds=1 --max_train_examples=1000   # a quick look

Ablation: --stage1_also_train=embeddings,pooler,head lets stage 1 of both Theseus methods update
those groups too (the design, like the official PyTorch code, trains only the successor layers in
stage 1). --suc_init=group_first|group_last starts successor j from another predecessor layer
(run_classifier.py's flag; the default, first, is layer j). --stage1_learning_rate and
--stage2_learning_rate set the Theseus stages' rates apart from --learning_rate. The predecessor
and truncation runs depend on none of these.

Finished runs are reused (each run resumes or returns at once), so the script can be stopped and
started again; a work_dir made with other settings (epochs, rates, ...) is refused rather than mixed. Results: <work_dir>/quality.json, <work_dir>/quality_<task>.png.

A sweep too long for one sitting can be run a few seeds at a time, each part with its own
--work_dir: --earlier_results=<an earlier part's quality.json>[,...] (same settings, other seeds)
adds that part's final metrics to the table, the retention and the paired differences, and to
this part's quality.json (the plot shows this part's seeds only). That file then holds every
seed so far, so the next part names it alone (naming rte1 again would count seed 1 twice, which
is refused):

  python benchmarks/quality.py --tasks=rte --seeds=1 --work_dir=runs/rte1 ...
  python benchmarks/quality.py --tasks=rte --seeds=2 --work_dir=runs/rte2 \
      --earlier_results=runs/rte1/quality.json ...
  python benchmarks/quality.py --tasks=rte --seeds=3 --work_dir=runs/rte3 \
      --earlier_results=runs/rte2/quality.json ...
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

TASK_DIRS = {"mrpc": "MRPC", "sst-2": "SST-2", "rte": "RTE"}
METHODS = ("predecessor", "theseus_const", "theseus_linear", "theseus_linear2", "truncation",
           "theseus_kd", "theseus_module", "truncation_kd")


def build_parser():
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--tasks", default="mrpc,sst-2,rte")
  p.add_argument("--seeds", default="1,2,3")
  p.add_argument("--glue_dir", default=os.path.join(REPO, os.pardir, "shared", "data", "glue"))
  p.add_argument("--work_dir", default=os.path.join(REPO, "runs", "quality"))
  p.add_argument("--max_train_examples", type=int, default=0, help="0: the full training set")
  p.add_argument("--predecessor_epochs", type=float, default=3.0)
  p.add_argument("--stage1_epochs", type=float, default=3.0)
  p.add_argument("--stage2_epochs", type=float, default=2.0)
  p.add_argument("--learning_rate", type=float, default=5e-5)
  p.add_argument("--stage1_learning_rate", type=float, default=None,
                 help="ablation: learning rate of stage 1 of both Theseus methods; default: "
                      "--learning_rate (the predecessor's and truncation's)")
  p.add_argument("--stage2_learning_rate", type=float, default=3e-5)
  p.add_argument("--batch_size", type=int, default=32)
  p.add_argument("--max_seq_length", type=int, default=128)
  p.add_argument("--evals_per_run", type=int, default=6, help="dev evaluations per run, evenly spaced, the last at the final update")
  p.add_argument("--linear_start", type=float, default=0.3)
  p.add_argument("--linear_reach_fraction", type=float, default=0.6,
                 help="the linear schedule reaches p = 1 after this fraction of stage 1")
  p.add_argument("--stage1_also_train", default="",
                 help="ablation: stage 1 of both Theseus methods also trains these groups "
                      "(comma list of embeddings, pooler, head; run_classifier.py's flag of the "
                      "same name); empty: only the successor layers, the design's default")
  p.add_argument("--suc_init", default="first", choices=["first", "group_first", "group_last"],
                 help="ablation: the predecessor layer successor j starts from in both Theseus "
                      "methods (run_classifier.py's flag of the same name): first = layer j, "
                      "group_first = layer 2j, group_last = layer 2j + 1")
  p.add_argument("--methods", default=",".join(METHODS),
                 help="comma list of the methods to run (the predecessor always runs)")
  p.add_argument("--kd_alpha", type=float, default=0.5,
                 help="theseus_kd / truncation_kd: weight of the teacher's soft labels")
  p.add_argument("--kd_temperature", type=float, default=2.0,
                 help="theseus_kd / truncation_kd: soft-label temperature")
  p.add_argument("--kd_hidden_weight", type=float, default=1.0,
                 help="theseus_kd / truncation_kd: weight of hidden matching")
  p.add_argument("--kd_module_weight", type=float, default=1.0,
                 help="theseus_module: weight of stage 1's module distillation")
  p.add_argument("--kd_module_attention_weight", type=float, default=0.0,
                 help="theseus_module: weight of MiniLM's attention targets in it")
  p.add_argument("--kd_augment", type=int, default=0,
                 help="distilled methods: teacher-labelled augmented copies of each example")
  p.add_argument("--earlier_results", default="",
                 help="comma list of quality.json files of earlier runs of this sweep (same "
                      "settings, other seeds) whose final metrics join this run's; a part's "
                      "file already holds the parts it joined")
  return p


# Recipe settings an ablation changes; a value other than the script's default is named in the
# plot's title, so a PNG cannot be mistaken for the default recipe's.
ABLATION_NOTES = {
    "stage1_also_train": "Theseus stage 1 also trains %s",
    "suc_init": "successors start from predecessor layers chosen by %s",
    "stage1_learning_rate": "stage 1 learning rate %g",
    "stage2_learning_rate": "stage 2 learning rate %g",
}


def ablation_notes(args):
  """Title lines for the ABLATION_NOTES settings whose value in `args` is not the default."""
  defaults = build_parser().parse_args([])
  return ["ablation: " + text % getattr(args, name) for name, text in ABLATION_NOTES.items()
          if getattr(args, name) != getattr(defaults, name)]


def run_classifier(args_list, log_path):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  with open(log_path, "a") as log:
    code = subprocess.call([sys.executable, os.path.join(REPO, "run_classifier.py")] + args_list,
                           cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
  if code != 0:
    raise SystemExit("run failed (exit %d), see %s" % (code, log_path))


def read_history(run_dir):
  """[(global_step, metrics)] from a run's eval_history.jsonl (last entry per step wins)."""
  by_step = {}
  with open(os.path.join(run_dir, "eval_history.jsonl")) as f:
    for line in f:
      m = json.loads(line)
      by_step[int(m["global_step"])] = m
  return sorted(by_step.items())


def num_updates(num_examples, epochs, batch_size):
  return max(1, int(np.ceil(num_examples * epochs / batch_size)))


# The settings a finished run depends on; a work_dir made with other values must not be reused.
RUN_SETTINGS = ("max_train_examples", "predecessor_epochs", "stage1_epochs", "stage2_epochs",
                "learning_rate", "stage1_learning_rate", "stage2_learning_rate", "batch_size",
                "max_seq_length", "evals_per_run", "linear_start", "linear_reach_fraction",
                "stage1_also_train", "suc_init", "kd_alpha", "kd_temperature",
                "kd_hidden_weight", "kd_module_weight", "kd_module_attention_weight",
                "kd_augment")
# Settings added after work_dirs were already made: a settings.json without them was made with
# these values.
LATER_SETTING_DEFAULTS = {"stage1_also_train": "", "suc_init": "first",
                          "stage1_learning_rate": None, "kd_alpha": 0.5, "kd_temperature": 2.0,
                          "kd_hidden_weight": 1.0, "kd_module_weight": 1.0,
                          "kd_module_attention_weight": 0.0, "kd_augment": 0}


def settings_changed(recorded, settings):
  """"name=old, now new" for each of `settings` whose value in `recorded` differs; "" if none."""
  return ", ".join("%s=%r, now %r" % (k, recorded.get(k), settings[k])
                   for k in sorted(settings) if recorded.get(k) != settings[k])


def check_settings(base, args):
  """Records the run settings in <base>/settings.json, or stops if the ones there differ.

  Finished runs are reused by step count, so a rerun with, say, other epochs would silently
  continue old runs to new lengths and mix two recipes in one table.
  """
  settings = {k: getattr(args, k) for k in RUN_SETTINGS}
  path = os.path.join(base, "settings.json")
  if os.path.exists(path):
    with open(path) as f:
      recorded = json.load(f)
    for k, v in LATER_SETTING_DEFAULTS.items():
      recorded.setdefault(k, v)
    changed = settings_changed(recorded, settings)
    if changed:
      raise SystemExit("error: %s was made with other settings (%s); pass another --work_dir" % (
          base, changed))
    return
  with open(path, "w") as f:
    json.dump(settings, f, indent=1, sort_keys=True)


class _SeedRun(object):
  """The runs of one task and seed: every method's command line, each reused once finished."""

  def __init__(self, args, task, seed, model, num_examples):
    self.args, self.task, self.seed, self.model = args, task, seed, model
    self.base = os.path.join(args.work_dir, task, "seed%d" % seed)
    os.makedirs(self.base, exist_ok=True)
    check_settings(self.base, args)
    self.data_dir = os.path.join(args.glue_dir, TASK_DIRS[task])
    self.pred_steps = num_updates(num_examples, args.predecessor_epochs, args.batch_size)
    self.s1_steps = num_updates(num_examples, args.stage1_epochs, args.batch_size)
    self.s2_steps = num_updates(num_examples, args.stage2_epochs, args.batch_size)
    self.linear_k = (1.0 - args.linear_start) / max(1.0, args.linear_reach_fraction *
                                                    self.s1_steps)
    self.pred_ckpt = None

  def run(self, name, steps, flags):
    """Runs run_classifier.py into <base>/<name>; returns its evaluation history.

    The runs of a seed share one feature cache, so the teacher's pass over the (augmented)
    training set runs once for all distilled runs, not once per run.
    """
    args = self.args
    out = os.path.join(self.base, name)
    run_classifier([
        "--task_name=" + self.task, "--data_dir=" + self.data_dir,
        "--vocab_file=" + self.model.vocab_file, "--max_seq_length=%d" % args.max_seq_length,
        "--train_batch_size=%d" % args.batch_size, "--eval_batch_size=64",
        "--seed=%d" % self.seed, "--do_train", "--evaluate_during_training",
        "--num_train_steps=%d" % steps, "--log_every_n_steps=50",
        "--save_checkpoints_steps=%d" % max(1, -(-steps // args.evals_per_run)),
        "--max_train_examples=%d" % args.max_train_examples, "--output_dir=" + out,
        "--cache_dir=" + os.path.join(self.base, "cache")] + flags,
                   out + ".log")
    return read_history(out)

  def final_ckpt(self, name):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    return tf.train.latest_checkpoint(os.path.join(self.base, name))

  def kd_flags(self, hidden=True):
    """The distillation flags of the distilled methods: the predecessor teaches."""
    a = self.args
    return ["--kd_alpha=%g" % a.kd_alpha, "--kd_temperature=%g" % a.kd_temperature,
            "--kd_hidden_weight=%g" % (a.kd_hidden_weight if hidden else 0.0),
            "--kd_augment=%d" % a.kd_augment, "--teacher_checkpoint=" + self.pred_ckpt,
            "--teacher_bert_config_file=" + self.model.bert_config_file]

  def module_flags(self):
    """theseus_module's stage 1: soft labels and module distillation."""
    a = self.args
    return self.kd_flags(hidden=False) + [
        "--kd_module_weight=%g" % a.kd_module_weight,
        "--kd_module_attention_weight=%g" % a.kd_module_attention_weight]

  def theseus(self, method, stage1_flags, kd=False, module=False):
    """Stage 1 (6 -> 3) from the predecessor, then stage 2: (stage-1 history, stage-2 history).

    kd: distillation in both stages (theseus_kd); module: theseus_module's (module
    distillation in stage 1, hidden matching in stage 2, soft labels in both).
    """
    a = self.args
    extra = self.kd_flags() if kd or module else []
    s1_extra = self.module_flags() if module else extra
    s1_rate = a.learning_rate if a.stage1_learning_rate is None else a.stage1_learning_rate
    config = "--bert_config_file=" + self.model.bert_config_file
    s1 = self.run(method + "_stage1", self.s1_steps, stage1_flags + s1_extra + [
        config, "--init_checkpoint=" + self.pred_ckpt, "--suc_layers=3",
        "--learning_rate=%g" % s1_rate, "--stage1_also_train=" + a.stage1_also_train,
        "--suc_init=" + a.suc_init])
    s2 = self.run(method + "_stage2", self.s2_steps, extra + [
        config, "--init_checkpoint=" + self.final_ckpt(method + "_stage1"), "--suc_layers=3",
        "--finetune_suc", "--learning_rate=%g" % a.stage2_learning_rate])
    return s1, s2

  def truncation(self, name, kd=False):
    """The predecessor's first 3 layers fine-tuned with the stage 1 + stage 2 budget."""
    from theseus.training import checkpoints  # pylint: disable=g-import-not-at-top
    ckpt, config = checkpoints.truncate_bert(self.pred_ckpt, self.model.bert_config_file, 3,
                                             os.path.join(self.base, "truncated_init"))
    return self.run(name, self.s1_steps + self.s2_steps, (self.kd_flags() if kd else []) + [
        "--bert_config_file=" + config, "--init_checkpoint=" + ckpt,
        "--learning_rate=%g" % self.args.learning_rate])


def run_task_seed(args, task, seed, model, num_examples):
  """Runs the chosen methods for one task and seed; returns ({method: history}, main_metric,
  schedule).

  A two-stage method's history is the stage-1 evaluations followed by the stage-2 ones (whose
  steps start again from 0).
  """
  from theseus.tasks.classifier import datasets  # pylint: disable=g-import-not-at-top
  methods = set(methods_run(args.methods))
  r = _SeedRun(args, task, seed, model, num_examples)
  t0 = time.time()
  runs = {"predecessor": r.run("predecessor", r.pred_steps, [
      "--bert_config_file=" + model.bert_config_file, "--init_checkpoint=" + model.init_checkpoint,
      "--learning_rate=%g" % args.learning_rate])}
  r.pred_ckpt = r.final_ckpt("predecessor")
  constant = ["--scheduler_type=constant", "--replacing_rate=0.5"]
  if "theseus_const" in methods:
    s1, s2 = r.theseus("theseus_const", constant)
    runs["theseus_const"] = s1 + s2
  if methods & {"theseus_linear", "theseus_linear2"}:
    s1, s2 = r.theseus("theseus_linear", ["--scheduler_type=linear",
                                          "--replacing_rate=%g" % args.linear_start,
                                          "--scheduler_linear_k=%g" % r.linear_k])
    runs["theseus_linear"], runs["theseus_linear2"] = s1, s1 + s2
  if "theseus_kd" in methods:
    s1, s2 = r.theseus("theseus_kd", constant, kd=True)
    runs["theseus_kd"] = s1 + s2
  if "theseus_module" in methods:
    s1, s2 = r.theseus("theseus_module", constant, module=True)
    runs["theseus_module"] = s1 + s2
  if "truncation" in methods:
    runs["truncation"] = r.truncation("truncation")
  if "truncation_kd" in methods:
    runs["truncation_kd"] = r.truncation("truncation_kd", kd=True)
  print("  %s seed %d: all methods in %.0fs" % (task, seed, time.time() - t0), flush=True)
  schedule = {"s1_steps": r.s1_steps, "s2_steps": r.s2_steps, "linear_k": r.linear_k,
              "linear_start": args.linear_start}
  return ({m: runs[m] for m in METHODS if m in runs},
          datasets.get_processor(task).main_metric, schedule)


def spread(values):
  """Sample standard deviation (n - 1 in the denominator); 0 for a single seed."""
  values = np.asarray(values, dtype=np.float64)
  return float(values.std(ddof=1)) if values.size > 1 else 0.0


def paired_difference(values, method, baseline):
  """(mean, standard error, per-seed list) of values[method] - values[baseline], seed by seed
  (the runs of one seed share their predecessor); the standard error is 0 for a single seed."""
  diffs = np.asarray(values[method], np.float64) - np.asarray(values[baseline], np.float64)
  return float(diffs.mean()), spread(diffs) / np.sqrt(diffs.size), diffs.tolist()


PAIRS = [(m, b) for m in ("theseus_const", "theseus_kd", "theseus_module")
         for b in ("truncation", "truncation_kd")]


def print_pairs(values):
  """Each Theseus method against each truncation baseline of the same sweep, paired by seed."""
  for method, baseline in PAIRS:
    if method in values and baseline in values:
      mean, se, diffs = paired_difference(values, method, baseline)
      print("%s - %s: %+.4f (standard error %.4f; by seed %s)" % (
          method, baseline, mean, se, ", ".join("%+.4f" % d for d in diffs)))


def methods_run(methods_flag):
  """The methods whose results a run with --methods=`methods_flag` holds."""
  methods = set(methods_flag.split(","))
  if methods & {"theseus_linear", "theseus_linear2"}:
    methods |= {"theseus_linear", "theseus_linear2"}
  return sorted(methods & set(METHODS) | {"predecessor"})


def read_earlier(paths, task, settings, methods, seeds):
  """[(path, the results of `task` in that earlier quality.json)], checked before any training:
  the same `settings` and `methods`, and none of `seeds` nor a seed of another file (one table
  must not mix two recipes or count a seed twice). Anything else stops the script."""
  parts, owner = [], {seed: "this run" for seed in seeds}
  for path in paths:
    try:
      with open(path) as f:
        part = json.load(f).get(task)
    except (OSError, ValueError) as e:
      raise SystemExit("error: cannot read %s: %s" % (path, e))
    if part is None or "seeds" not in part:
      raise SystemExit("error: %s has no %s results with their seeds" % (path, task))
    changed = settings_changed(part["settings"], settings)
    if changed:
      raise SystemExit("error: %s was run with other settings (%s)" % (path, changed))
    if sorted(part["values"]) != methods:
      raise SystemExit("error: %s has the methods %s, this run %s" % (
          path, ",".join(sorted(part["values"])), ",".join(methods)))
    for seed in part["seeds"]:
      if seed in owner:
        raise SystemExit("error: seed %d of %s is in %s and %s" % (seed, task, path, owner[seed]))
      owner[seed] = path
    parts.append((path, part))
  return parts


def merge_earlier(result, earlier):
  """`result` (this run's entry of a task in quality.json) with the seeds of the `earlier`
  parts (read_earlier) added, all values in ascending seed order."""
  by_seed = {}
  for part in [result] + [part for _, part in earlier]:
    for i, seed in enumerate(part["seeds"]):
      by_seed[seed] = {kind: {m: v[i] for m, v in part[kind].items()}
                       for kind in ("values", "accuracy_values")}
  merged = dict(result, values={}, accuracy_values={}, seeds=sorted(by_seed),
                merged_from=[path for path, _ in earlier])
  for seed in merged["seeds"]:
    for kind, per_method in by_seed[seed].items():
      for method, value in per_method.items():
        merged[kind].setdefault(method, []).append(value)
  return merged


def final_metric(history, main_metric):
  """The metric of the last evaluation (for two-stage histories: of the stage-2 run)."""
  return history[-1][1][main_metric]


def curve_over_seeds(per_seed, method, main_metric, s1_steps):
  """Dev-metric curve of one method: (updates [n], mean over seeds [n], sd over seeds [n]).

  A two-stage method's stage-2 evaluations are placed after stage 1 (their steps restart at 0,
  so `s1_steps` is added). Only the updates every seed was evaluated at are drawn (the seeds
  share one schedule, but a run that was stopped and resumed can miss an evaluation).
  """
  curves = []
  for runs in per_seed:
    curve, offset, last = {}, 0, -1
    for step, metrics in runs[method]:
      if step <= last:
        offset = s1_steps  # the stage-2 part restarts its step count
      last = step
      curve[step + offset] = metrics[main_metric]
    curves.append(curve)
  steps = sorted(set.intersection(*[set(c) for c in curves]))
  values = np.array([[c[s] for s in steps] for c in curves], dtype=np.float64)  # [seeds, n]
  sd = values.std(axis=0, ddof=1) if len(curves) > 1 else np.zeros(len(steps))
  return np.array(steps), values.mean(axis=0), sd


def plot_task(task, per_seed, main_metric, schedule, path, notes=()):
  """Writes a PNG of the dev metric (mean over seeds, band = 1 sd) against updates; `notes` are
  extra title lines (see ablation_notes)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(8, 5))
  for method in METHODS:
    if method not in per_seed[0]:
      continue
    steps, mean, sd = curve_over_seeds(per_seed, method, main_metric, schedule["s1_steps"])
    # theseus_linear2 starts with theseus_linear's stage 1: dashed, so both stay visible.
    style = "o--" if method == "theseus_linear2" else "o-"
    line, = ax.plot(steps, mean, style, label=method)
    if sd.any():
      ax.fill_between(steps, mean - sd, mean + sd, color=line.get_color(), alpha=0.12)
  ax.set_xlabel("updates (stage 2 continues after stage 1)")
  ax.set_ylabel("dev " + main_metric)
  ax2 = ax.twinx()
  x = np.arange(0, schedule["s1_steps"] + schedule["s2_steps"] + 1)
  const = np.where(x <= schedule["s1_steps"], 0.5, 1.0)
  linear = np.minimum(1.0, schedule["linear_start"] + schedule["linear_k"] * x)
  if any(m in per_seed[0] for m in ("theseus_const", "theseus_kd", "theseus_module")):
    ax2.plot(x, const, "k:", alpha=0.5, label="replace rate (const)")
  if any(m in per_seed[0] for m in ("theseus_linear", "theseus_linear2")):
    ax2.plot(x, linear, "k--", alpha=0.5, label="replace rate (linear)")
  ax2.set_ylabel("replace rate p")
  ax2.set_ylim(0, 1.05)
  lines = ax.get_legend_handles_labels()
  lines2 = ax2.get_legend_handles_labels()
  ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper left", fontsize=7)
  title = "%s, mean of %d seed(s) (band: 1 sd); successors 3 layers, predecessor 6" % (
      task, len(per_seed))
  ax.set_title("\n".join([title] + list(notes)))
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def main():
  args = build_parser().parse_args()
  import convert_checkpoint  # pylint: disable=g-import-not-at-top
  from theseus.tasks.classifier import datasets  # pylint: disable=g-import-not-at-top
  model = convert_checkpoint.convert_embedded_default()
  os.makedirs(args.work_dir, exist_ok=True)
  tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
  seeds = [int(s) for s in args.seeds.split(",")]
  settings = {k: getattr(args, k) for k in RUN_SETTINGS}
  earlier = {task: read_earlier([p.strip() for p in args.earlier_results.split(",") if p.strip()],
                                task, settings, methods_run(args.methods), seeds)
             for task in tasks}
  results = {}
  for task in tasks:
    processor = datasets.get_processor(task)
    n = len(processor.get_train_examples(os.path.join(args.glue_dir, TASK_DIRS[task])))
    if args.max_train_examples:
      n = min(n, args.max_train_examples)
    per_seed, table = [], {}
    for seed in seeds:
      runs, main_metric, schedule = run_task_seed(args, task, seed, model, n)
      per_seed.append(runs)
      for method, history in runs.items():
        table.setdefault(method, []).append(final_metric(history, main_metric))
    extra = {}
    if task == "mrpc":  # report accuracy too
      for method in table:
        extra[method] = [r[method][-1][1]["accuracy"] for r in per_seed]
    plot_task(task, per_seed, main_metric, schedule,
              os.path.join(args.work_dir, "quality_%s.png" % task), ablation_notes(args))
    results[task] = {"metric": main_metric, "train_examples": n, "values": table,
                     "accuracy_values": extra, "schedule": schedule, "seeds": seeds,
                     "settings": settings}
    if earlier[task]:
      results[task] = merge_earlier(results[task], earlier[task])
  with open(os.path.join(args.work_dir, "quality.json"), "w") as f:
    json.dump(results, f, indent=1)

  for task, r in results.items():
    pred = np.mean(r["values"]["predecessor"])
    print("\n%s: dev %s, final checkpoint, %d train examples, seeds %s" % (
        task, r["metric"], r["train_examples"], ",".join(str(s) for s in r["seeds"])))
    print("%-18s %8s %8s %10s" % ("method", "mean", "sd", "retention"))
    for method in r["values"]:
      v = np.array(r["values"][method])
      print("%-18s %8.4f %8.4f %9.1f%%" % (method, v.mean(), spread(v), 100 * v.mean() / pred))
    if r["accuracy_values"]:
      pred_acc = np.mean(r["accuracy_values"]["predecessor"])
      for method in r["accuracy_values"]:
        v = np.array(r["accuracy_values"][method])
        print("%-18s acc %8.4f %8.4f %9.1f%%" % (method, v.mean(), spread(v),
                                                 100 * v.mean() / pred_acc))
    print_pairs(r["values"])


if __name__ == "__main__":
  main()
