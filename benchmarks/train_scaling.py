"""Training throughput of the real command line: 1 vs N local workers, precisions and XLA.

`python benchmarks/speed.py --scaling` runs this after its own figures (`--skip_inference
--skip_training` for this part alone). Each configuration is run_classifier.py on the embedded
predecessor with every example exactly --seq_length word pieces long (SST-2 training sentences
joined until they fill it), --train_batch_size global batch, for --scaling_steps updates; its
tokens/s is read from the progress lines (of the global batch), leaving out the first window,
which holds graph building and warm-up:

* scaling: the predecessor's fine-tuning with 1 process and with 2 local workers
  (launch_workers.py), each worker given half the cores;
* precision (where TensorFlow sees a GPU, or with --scaling_precisions on any machine):
  predecessor, stage 1 (p = 0.5) and stage 2 (from the stage-1 fp32 run's weights) in fp32, in
  fp16 on a GPU (bf16 on a CPU), and fp32 with --xla.
"""

import os
import re
import statistics
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SST2_TRAIN = os.path.normpath(os.path.join(REPO_ROOT, "..", "shared", "data", "glue", "SST-2",
                                           "train.tsv"))
_TOKENS_RE = re.compile(r"step (\d+)/\d+ \| [\d.]+ steps/s \| [\d.]+ examples/s \| (\d+) tokens/s")


def write_full_length_task(data_dir, seq_length, num_examples=512):
  """An SST-2-format train.tsv whose every example fills seq_length word pieces."""
  os.makedirs(data_dir, exist_ok=True)
  with open(SST2_TRAIN, encoding="utf-8") as f:
    rows = [line.rstrip("\n").split("\t") for line in f][1:]
  words_needed = seq_length  # a word is at least one word piece: this always fills the length
  lines, i = ["sentence\tlabel"], 0
  for n in range(num_examples):
    words = []
    while len(words) < words_needed:
      words.extend(rows[i % len(rows)][0].split())
      i += 1
    lines.append("%s\t%d" % (" ".join(words[:words_needed]), n % 2))
  with open(os.path.join(data_dir, "train.tsv"), "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")


def tokens_per_second(output):
  """Median tokens/s of the progress lines after the first (of worker 0 in a cluster)."""
  values = []
  for line in output.splitlines():
    if line.startswith("[worker ") and not line.startswith("[worker 0]"):
      continue
    match = _TOKENS_RE.search(line)
    if match:
      values.append(int(match.group(2)))
  if len(values) < 2:
    raise RuntimeError("no progress lines in the output:\n" + output[-3000:])
  return statistics.median(values[1:])


def run_config(work_dir, name, model_dir, args, extra, num_workers=1, threads=0):
  """Trains one configuration and returns its tokens/s."""
  data_dir = os.path.join(work_dir, "full_length_data")
  command = [sys.executable, "run_classifier.py", "--task_name=sst-2", "--data_dir=" + data_dir,
             "--bert_config_file=" + os.path.join(model_dir, "bert_config.json"),
             "--vocab_file=" + os.path.join(model_dir, "vocab.txt"),
             "--init_checkpoint=" + os.path.join(model_dir, "bert_model.ckpt"), "--do_train",
             "--max_seq_length=%d" % args.seq_length,
             "--train_batch_size=%d" % args.train_batch_size,
             "--num_train_steps=%d" % args.scaling_steps,
             "--save_checkpoints_steps=%d" % (args.scaling_steps * 10),
             "--log_every_n_steps=%d" % max(1, args.scaling_steps // 5),
             "--num_threads=%d" % threads,
             "--output_dir=" + os.path.join(work_dir, "scaling", name)] + extra
  if num_workers > 1:
    command = [sys.executable, "launch_workers.py", "--num_workers=%d" % num_workers,
               "--"] + command
  proc = subprocess.run(command, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT)
  output = proc.stdout.decode("utf-8", "replace")
  if proc.returncode:
    raise RuntimeError("%s failed:\n%s" % (name, output[-3000:]))
  value = tokens_per_second(output)
  print("  %-28s %8.0f tokens/s" % (name, value), flush=True)
  return value


STAGES = (("predecessor", []),
          ("stage1", ["--suc_layers=3", "--replacing_rate=0.5"]),
          ("stage2", ["--suc_layers=3", "--finetune_suc"]))  # from the stage1_fp32 run's weights


def _last_checkpoint(output_dir):
  with open(os.path.join(output_dir, "checkpoint")) as f:
    name = f.readline().split(":", 1)[1].strip().strip('"')
  return os.path.join(output_dir, os.path.basename(name))


def run(args, results, model_dir, has_gpu):
  """Fills results["scaling"] (and results["precision"]) with tokens/s per configuration."""
  import shutil  # pylint: disable=g-import-not-at-top
  from theseus import cli  # pylint: disable=g-import-not-at-top
  shutil.rmtree(os.path.join(args.work_dir, "scaling"), ignore_errors=True)
  write_full_length_task(os.path.join(args.work_dir, "full_length_data"), args.seq_length)
  cores = cli.usable_cores()
  print("Training throughput, batch %d x %d, %d updates per run" % (
      args.train_batch_size, args.seq_length, args.scaling_steps), flush=True)
  one = run_config(args.work_dir, "predecessor_1_process", model_dir, args, [], 1, 0)
  two = run_config(args.work_dir, "predecessor_2_workers", model_dir, args, [], 2,
                   max(1, cores // 2))
  results["scaling"] = {"cores": cores, "one_process_tokens_per_s": one,
                        "two_workers_tokens_per_s": two, "two_vs_one": two / one}
  if not (has_gpu or args.scaling_precisions):
    results["precision"] = "not measured: TensorFlow sees no GPU (--scaling_precisions forces it)"
    return
  low = "fp16" if has_gpu else "bf16"
  table = {}
  for stage, flags in STAGES:
    if stage == "stage2":
      flags = flags + ["--init_checkpoint=" + _last_checkpoint(
          os.path.join(args.work_dir, "scaling", "stage1_fp32"))]
    for label, extra in (("fp32", []), (low, ["--precision=" + low]), ("fp32_xla", ["--xla"])):
      table["%s_%s" % (stage, label)] = run_config(args.work_dir, "%s_%s" % (stage, label),
                                                   model_dir, args, flags + extra)
  results["precision"] = table
