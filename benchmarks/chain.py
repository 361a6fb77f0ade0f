"""The stages of one compression benchmark run through a task's real command line, for the
benchmarks of the tasks that quality.py does not cover (ner_conll2003.py, squad.py).

Methods, all 6 -> n from one predecessor (plain fine-tuning of the embedded model), each stage
in its own directory, evaluating at every checkpoint and keeping the best:

  theseus         stage 1 (--suc_layers=n) from the predecessor, then stage 2 (--finetune_suc)
  theseus_kd      the same, with soft labels and hidden matching from the predecessor in both
  theseus_module  stage 1 with soft labels and module distillation (each drawn successor module
                  matched to its predecessor group), stage 2 with soft labels and hidden matching
  truncation      the predecessor's first n layers fine-tuned with the stage 1 + stage 2 budget
  truncation_kd   the same with soft labels and hidden matching from the predecessor

A stage whose directory already holds a finished run is reused (the training loop resumes from
its newest checkpoint).
"""

import collections
import glob
import os
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHODS = ("theseus", "theseus_kd", "theseus_module", "truncation", "truncation_kd")


def add_arguments(parser, default_methods):
  """The flags every chain benchmark shares."""
  parser.add_argument("--suc_layers", type=int, default=3, help="Successor layers n.")
  for stage in ("predecessor", "stage1", "stage2"):
    parser.add_argument("--%s_epochs" % stage, type=float, default=3.0 if stage != "stage2"
                        else 2.0)
    parser.add_argument("--%s_steps" % stage, type=int, default=0,
                        help="If > 0, the updates of this stage (overrides its epochs).")
    parser.add_argument("--%s_learning_rate" % stage, type=float, default=5e-5)
  parser.add_argument("--replacing_rate", type=float, default=0.5, help="Stage-1 replace rate.")
  parser.add_argument("--scheduler_type", choices=("constant", "linear"), default="constant")
  parser.add_argument("--scheduler_linear_k", type=float, default=0.0)
  parser.add_argument("--suc_init", default="first", help="Stage 1's --suc_init.")
  parser.add_argument("--train_batch_size", type=int, default=32)
  parser.add_argument("--eval_batch_size", type=int, default=64)
  parser.add_argument("--evals_per_stage", type=int, default=4,
                      help="Checkpoints (each evaluated) per stage, the last at its final update.")
  parser.add_argument("--save_checkpoints_steps", type=int, default=0,
                      help="Evaluate / checkpoint every N updates (0: --evals_per_stage).")
  parser.add_argument("--num_threads", type=int, default=0, help="TensorFlow threads (0: all).")
  parser.add_argument("--seed", type=int, default=12345)
  parser.add_argument("--methods", default=default_methods,
                      help="comma list of " + ", ".join(METHODS))
  parser.add_argument("--kd_alpha", type=float, default=0.5, help="*_kd / *_module: soft labels")
  parser.add_argument("--kd_temperature", type=float, default=2.0, help="their temperature")
  parser.add_argument("--kd_hidden_weight", type=float, default=1.0, help="hidden matching")
  parser.add_argument("--kd_module_weight", type=float, default=1.0,
                      help="theseus_module: module distillation in stage 1")
  parser.add_argument("--extra_flag", action="append", default=[],
                      help="Another flag for every stage's command line (repeatable).")


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


def stage_steps(steps, epochs, num_features, batch_size):
  return steps if steps > 0 else max(1, int(num_features * epochs / batch_size + 0.999))


def run_stage(command, stage_dir, flags):
  """Runs one stage's command line into stage_dir; returns (wall seconds, eval metrics dict)."""
  import json  # pylint: disable=g-import-not-at-top
  os.makedirs(stage_dir, exist_ok=True)
  log_path = os.path.join(stage_dir, "benchmark_log.txt")
  cmd = command + ["--output_dir=" + stage_dir, "--do_train", "--do_eval",
                   "--evaluate_during_training"] + flags
  print("[%s] %s" % (os.path.basename(stage_dir), " ".join(cmd)), flush=True)
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
                     % (stage_dir, proc.returncode, log_path, tail))
  with open(os.path.join(stage_dir, "eval_results.json")) as f:
    return seconds, json.load(f)


def _kd_flags(args, teacher, teacher_config, hidden=True, module=False):
  flags = ["--kd_alpha=%r" % args.kd_alpha, "--kd_temperature=%r" % args.kd_temperature,
           "--teacher_checkpoint=" + teacher, "--teacher_bert_config_file=" + teacher_config]
  if hidden:
    flags.append("--kd_hidden_weight=%r" % args.kd_hidden_weight)
  if module:
    flags.append("--kd_module_weight=%r" % args.kd_module_weight)
  return flags


def plan(args, num_features):
  """OrderedDict stage -> (steps, learning rate, flags, the stage it starts from, kd kind)."""
  steps = {s: stage_steps(getattr(args, s + "_steps"), getattr(args, s + "_epochs"),
                          num_features, args.train_batch_size)
           for s in ("predecessor", "stage1", "stage2")}
  stage1 = ["--suc_layers=%d" % args.suc_layers, "--replacing_rate=%r" % args.replacing_rate,
            "--suc_init=" + args.suc_init, "--scheduler_type=" + args.scheduler_type,
            "--scheduler_linear_k=%r" % args.scheduler_linear_k]
  stage2 = ["--suc_layers=%d" % args.suc_layers, "--finetune_suc"]
  chain = collections.OrderedDict([("predecessor", (steps["predecessor"],
                                                    args.predecessor_learning_rate, [], None,
                                                    None))])
  s1, s2 = (steps["stage1"], args.stage1_learning_rate), (steps["stage2"],
                                                          args.stage2_learning_rate)
  for method in args.methods.split(","):
    if method not in METHODS:
      raise SystemExit("unknown method %r (choose from %s)" % (method, ", ".join(METHODS)))
    if method.startswith("theseus"):
      kd = {"theseus": (None, None), "theseus_kd": ("kd", "kd"),
            "theseus_module": ("module", "kd")}[method]
      suffix = method[len("theseus"):]
      chain["stage1" + suffix] = s1 + (stage1, "predecessor", kd[0])
      chain["stage2" + suffix] = s2 + (stage2, "stage1" + suffix, kd[1])
    else:
      chain[method] = (s1[0] + s2[0], args.stage1_learning_rate, [], "truncated",
                       "kd" if method == "truncation_kd" else None)
  return chain


def run_chain(args, command, model, num_features, output_dir):
  """Runs every stage of the plan; returns [(stage, steps, lr, seconds, metrics, stage dir)].

  command: the task's command line without --output_dir, --bert_config_file, --init_checkpoint
  and the stage's flags; model: {"init_checkpoint", "bert_config_file"} of the embedded model.
  The stages share one feature cache (<output_dir>/cache): the teacher's pass over the training
  set runs once for every distilled stage.
  """
  rows, stage_dirs = [], {}
  for name, (steps, rate, flags, start, kd) in plan(args, num_features).items():
    config, init = model["bert_config_file"], model["init_checkpoint"]
    if start == "truncated":
      from theseus.training import checkpoints  # pylint: disable=g-import-not-at-top
      init, config = checkpoints.truncate_bert(
          inference_checkpoint(stage_dirs["predecessor"]), model["bert_config_file"],
          args.suc_layers, os.path.join(output_dir, "truncated_init"))
    elif start:
      init = inference_checkpoint(stage_dirs[start])
    if kd:
      flags = flags + _kd_flags(args, inference_checkpoint(stage_dirs["predecessor"]),
                                model["bert_config_file"], hidden=kd == "kd",
                                module=kd == "module")
    flags = flags + ["--num_train_steps=%d" % steps, "--learning_rate=%r" % rate,
                     "--save_checkpoints_steps=%d" % (args.save_checkpoints_steps or
                                                      max(1, -(-steps // args.evals_per_stage))),
                     "--bert_config_file=" + config, "--init_checkpoint=" + init,
                     "--train_batch_size=%d" % args.train_batch_size,
                     "--eval_batch_size=%d" % args.eval_batch_size, "--seed=%d" % args.seed,
                     "--num_threads=%d" % args.num_threads,
                     "--cache_dir=" + os.path.join(output_dir, "cache"),
                     "--log_every_n_steps=20"] + args.extra_flag
    stage_dirs[name] = os.path.join(output_dir, name)
    seconds, metrics = run_stage(command, stage_dirs[name], flags)
    rows.append((name, steps, rate, seconds, metrics, stage_dirs[name]))
  return rows


def embedded_model():
  """{"init_checkpoint", "bert_config_file", "vocab_file"} of the embedded default predecessor."""
  if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)
  import convert_checkpoint  # pylint: disable=g-import-not-at-top
  embedded = convert_checkpoint.convert_embedded_default()
  return {"init_checkpoint": embedded.init_checkpoint,
          "bert_config_file": embedded.bert_config_file, "vocab_file": embedded.vocab_file}
