"""The settings of a run: the flags both run scripts share, and their validation.

`define_common_flags` defines the flags run_classifier.py and run_ner_mrc.py share (with
google-research/bert's names where they overlap); `RunConfig` holds one run's values (from the
flags, or given directly by tests and benchmarks); `check_run_config` validates them, the files
they name and the model config before any long work, raising InputDataError with one line.
"""

from __future__ import absolute_import
from __future__ import division
from __future__ import print_function

import os
import re

from absl import flags
from absl import logging
import tensorflow as tf

import checkpoints
import cli
from errors import InputDataError
import modeling_theseus as modeling
import optimization_theseus as optimization
import tokenization

tf1 = tf.compat.v1

_common_flags_defined = False


def define_common_flags():
  """Defines the flags both scripts share (google-research/bert names where they overlap).

  A second call (both scripts imported in one process, e.g. by pytest) does nothing.
  """
  global _common_flags_defined
  if _common_flags_defined:
    return
  _common_flags_defined = True
  _define_required_flags()
  _define_run_flags()
  _define_training_flags()
  _define_theseus_flags()
  _define_distillation_flags()
  _define_scale_flags()
  _define_tpu_flags()


def _define_required_flags():
  """## Required parameters (--spm_model_file may replace --vocab_file)."""
  flags.DEFINE_string("data_dir", None, "Directory with the task's data files.")
  flags.DEFINE_string("bert_config_file", None, "bert_config.json of the predecessor (L layers).")
  flags.DEFINE_string("vocab_file", None, "WordPiece vocab.txt the model was trained with.")
  flags.DEFINE_string("output_dir", None, "Where checkpoints, summaries and results are written.")


def _define_run_flags():
  """## Other parameters: what to do, inputs and outputs."""
  f = flags
  f.DEFINE_string("spm_model_file", None, "SentencePiece .model (instead of vocab_file).")
  f.DEFINE_string("init_checkpoint", None,
                  "Initial checkpoint: a pretrained BERT (plain fine-tuning), a fine-tuned "
                  "predecessor (stage 1), a stage-1 checkpoint (stage 2) or an exported model.")
  f.DEFINE_string("cache_dir", None, "Feature cache directory (default: <output_dir>/cache).")
  f.DEFINE_bool("do_lower_case", True, "Lower-case the input (uncased models).")
  f.DEFINE_integer("max_seq_length", 128, "Maximum total input length in word pieces.")
  f.DEFINE_bool("do_train", False, "Train.")
  f.DEFINE_bool("do_eval", False, "Evaluate on the dev set (the successor-only graph).")
  f.DEFINE_bool("do_predict", False, "Predict on the test set (the successor-only graph).")
  f.DEFINE_bool("do_export", False, "Export the successor as a plain n-layer BERT + SavedModel.")
  f.DEFINE_string("export_dir", None, "Export directory (default: <output_dir>/export).")
  f.DEFINE_bool("export_tflite", False, "--do_export: also write model.tflite (float32) and "
                "model_int8.tflite (dynamic-range int8) with the SavedModel's signature.")
  f.DEFINE_integer("eval_batch_size", 64, "Batch size for evaluation.")
  f.DEFINE_integer("predict_batch_size", 64, "Batch size for prediction.")
  f.DEFINE_integer("max_eval_examples", 0, "If > 0, evaluate on the first N examples only.")
  f.DEFINE_integer("num_threads", 0, "TensorFlow intra/inter-op threads (0: TensorFlow's choice).")
  f.DEFINE_bool("skip_bad_rows", False, "Skip (and count) malformed data rows instead of failing.")
  f.DEFINE_bool(cli.VERBOSE_FLAG, False,
                "Show TensorFlow's own start-up messages and deprecation warnings (give it on "
                "the command line: it takes effect before TensorFlow is imported).")


def _define_training_flags():
  """## Other parameters: the optimisation and the training loop."""
  f = flags
  f.DEFINE_integer("train_batch_size", 32, "Micro-batch size for training.")
  f.DEFINE_float("learning_rate", 5e-5, "Peak learning rate of Adam.")
  f.DEFINE_float("num_train_epochs", 3.0, "Number of training epochs.")
  f.DEFINE_integer("num_train_steps", 0, "If > 0, the number of optimizer updates (overrides "
                   "num_train_epochs).")
  f.DEFINE_float("warmup_proportion", 0.1, "Fraction of the updates spent warming up.")
  f.DEFINE_float("weight_decay_rate", 0.01, "Decoupled weight decay.")
  f.DEFINE_float("clip_norm", 1.0, "Global-norm gradient clip (0 disables).")
  f.DEFINE_integer("gradient_accumulation_steps", 1, "Micro-batches per optimizer update.")
  f.DEFINE_integer("save_checkpoints_steps", 1000, "Save a checkpoint every N updates.")
  f.DEFINE_integer("keep_checkpoint_max", 3, "How many recent checkpoints to keep.")
  f.DEFINE_integer("log_every_n_steps", 50, "Log progress every N updates.")
  f.DEFINE_integer("max_train_examples", 0, "If > 0, train on the first N examples only.")
  f.DEFINE_integer("seed", 12345, "Random seed (data order, dropout, replacement draws).")
  f.DEFINE_bool("evaluate_during_training", False,
                "Evaluate at every checkpoint and keep the best one (by the task's main metric) "
                "in <output_dir>/best; eval / predict / export then use it.")


def _define_theseus_flags():
  """## Other parameters: module replacing."""
  f = flags
  f.DEFINE_integer("suc_layers", 0, "Successor modules n (0 = plain fine-tuning of all layers).")
  f.DEFINE_bool("finetune_suc", False, "Stage 2: train the successor-only graph.")
  f.DEFINE_float("replacing_rate", 0.5, "Base replace rate p (stage 1).")
  f.DEFINE_enum("scheduler_type", "constant", ["constant", "linear"], "Replace-rate schedule.")
  f.DEFINE_float("scheduler_linear_k", 0.0, "Linear schedule slope per update.")
  f.DEFINE_integer("steps_for_replacing", 0, "Constant schedule: p = 1 from this update on (0: "
                   "never).")
  f.DEFINE_enum("suc_init", "first", sorted(modeling.SUC_INIT_RULES),
                "Predecessor layer that initialises successor j: first = j, group_first = j*r, "
                "group_last = j*r + r - 1.")
  f.DEFINE_list("stage1_also_train", [], "Stage 1: also train these groups: " +
                ", ".join(optimization.STAGE1_EXTRA_SCOPES))


def _define_distillation_flags():
  """## Other parameters: knowledge distillation (distillation.py), in any stage."""
  f = flags
  f.DEFINE_float("kd_alpha", 0.0, "Weight of the soft-label loss: (1 - a) * hard + a * soft "
                 "(0: none). Soft labels are the teacher's logits, computed once and cached.")
  f.DEFINE_float("kd_temperature", 1.0, "Temperature of the soft labels (the loss is scaled by "
                 "T^2).")
  f.DEFINE_float("kd_hidden_weight", 0.0, "Weight of the MSE between student layer j and the "
                 "teacher's last layer of group j (0: none; runs the teacher every step).")
  f.DEFINE_bool("kd_embeddings", False, "Hidden matching also matches the embedding outputs.")
  f.DEFINE_string("teacher_checkpoint", None, "The teacher (default: --init_checkpoint).")
  f.DEFINE_string("teacher_bert_config_file", None, "The teacher's bert_config.json (default: "
                  "--bert_config_file).")


def _define_scale_flags():
  """## Other parameters: devices, machines and precision (distribute.py, train_step.py)."""
  f = flags
  f.DEFINE_enum("distribute", "none", ["none", "mirrored", "multi_worker"],
                "none: one process, one device; mirrored: the devices of --mirrored_devices in "
                "one process; multi_worker: one worker of the TF_CONFIG cluster (see "
                "launch_workers.py). --train_batch_size is the global batch.")
  f.DEFINE_list("mirrored_devices", [], "--distribute=mirrored: the devices, e.g. "
                "/gpu:0,/gpu:1 (default: every GPU, else the CPU).")
  f.DEFINE_enum("precision", "fp32", ["fp32", "bf16", "fp16"],
                "Training compute precision of the encoder: fp32 weights always; bf16 / fp16 "
                "compute (fp16 with dynamic loss scaling). Exports are fp32.")
  f.DEFINE_float("fp16_initial_loss_scale", 2.0 ** 15, "--precision=fp16: the first loss scale.")
  f.DEFINE_integer("fp16_loss_scale_window", 2000, "--precision=fp16: double the loss scale "
                   "after this many updates without an overflow.")
  f.DEFINE_bool(cli.XLA_FLAG, False, "XLA clustering of the training and inference graphs (give "
                "it on the command line: on a CPU it takes effect before TensorFlow is imported).")


def _define_tpu_flags():
  """## google-research/bert's TPU parameters: accepted so its command lines run unchanged.

  --use_tpu=True is refused (check_run_config); the others are then unused.
  """
  f = flags
  f.DEFINE_bool("use_tpu", False, "google-research/bert's flag; only False is supported (this "
                "project trains on CPUs and GPUs).")
  for name in ("tpu_name", "tpu_zone", "gcp_project", "master"):
    f.DEFINE_string(name, None, "google-research/bert's flag (unused).")
  for name, default in (("num_tpu_cores", 8), ("iterations_per_loop", 1000)):
    f.DEFINE_integer(name, default, "google-research/bert's flag (unused).")


class RunConfig(object):
  """Validated settings of one run, read from the flags (or given directly by tests)."""

  def __init__(self, values):
    self.__dict__.update(values)
    if not self.cache_dir and self.output_dir:
      self.cache_dir = os.path.join(self.output_dir, "cache")
    if not self.export_dir and self.output_dir:
      self.export_dir = os.path.join(self.output_dir, "export")

  @classmethod
  def from_flags(cls, flag_values):
    return cls({name: flag_values[name].value for name in flag_values})

  @classmethod
  def from_defaults(cls, flag_values, **overrides):
    """The flags' default values with `overrides` (for running a script in-process)."""
    values = {name: flag_values[name].default for name in flag_values}
    unknown = set(overrides) - set(values)
    if unknown:
      raise ValueError("unknown settings: %s" % ", ".join(sorted(unknown)))
    values.update(overrides)
    return cls(values)

  def replace(self, **changes):
    """A copy with `changes` applied."""
    return RunConfig(dict(self.__dict__, **changes))


def check_run_config(cfg, needs_data=True):
  """Validates flags, files and the model config before any long work.

  Returns the BertConfig. Raises InputDataError with a one-line message.
  """
  _check_required(cfg, needs_data)
  try:
    bert_config = modeling.BertConfig.from_json_file(cfg.bert_config_file)
  except ValueError as e:
    raise InputDataError(str(e))
  try:
    bert_config.validate()
  except ValueError as e:
    raise InputDataError(str(e), cfg.bert_config_file)
  tokenizer = make_tokenizer(cfg)
  if len(tokenizer.vocab) != bert_config.vocab_size:
    raise InputDataError("vocab has %d entries but bert_config vocab_size is %d"
                         % (len(tokenizer.vocab), bert_config.vocab_size),
                         cfg.vocab_file or cfg.spm_model_file)
  if cfg.max_seq_length < 8:
    raise InputDataError("--max_seq_length must be >= 8, got %d" % cfg.max_seq_length)
  if cfg.max_seq_length > bert_config.max_position_embeddings:
    raise InputDataError("--max_seq_length %d is above the model's max_position_embeddings %d"
                         % (cfg.max_seq_length, bert_config.max_position_embeddings))
  try:
    modeling.check_theseus_layers(bert_config.num_hidden_layers, cfg.suc_layers)
  except ValueError as e:
    raise InputDataError("--suc_layers: " + str(e))
  _check_values(cfg)
  if cfg.init_checkpoint:
    check_init_checkpoint(cfg, bert_config)
    tokenization.validate_case_matches_checkpoint(cfg.do_lower_case, cfg.init_checkpoint)
  elif cfg.do_train and not checkpoints.find_latest_checkpoint(cfg.output_dir):
    logging.warning("no --init_checkpoint: training starts from random weights")
  check_writable_dir(cfg.output_dir)
  return bert_config


def _check_required(cfg, needs_data):
  """Something to do, the required flags, and the files they name exist."""
  if cfg.use_tpu:
    raise InputDataError("--use_tpu=True is not supported: this project trains on CPUs and GPUs "
                         "(TPUEstimator is gone from current TensorFlow); use --use_tpu=False")
  if not (cfg.do_train or cfg.do_eval or cfg.do_predict or cfg.do_export):
    raise InputDataError("nothing to do: set at least one of --do_train, --do_eval, "
                         "--do_predict, --do_export")
  for name in ("bert_config_file", "output_dir"):
    if not getattr(cfg, name):
      raise InputDataError("--%s is required" % name)
  if not (cfg.vocab_file or cfg.spm_model_file):
    raise InputDataError("--vocab_file (or --spm_model_file) is required")
  if needs_data and (cfg.do_train or cfg.do_eval or cfg.do_predict):
    if not cfg.data_dir:
      raise InputDataError("--data_dir is required with --do_train / --do_eval / --do_predict")
    if not os.path.isdir(cfg.data_dir):
      raise InputDataError("data directory not found", cfg.data_dir)
  for name in ("bert_config_file", "vocab_file", "spm_model_file"):
    path = getattr(cfg, name)
    if path and not os.path.isfile(path):
      raise InputDataError("file not found (--%s)" % name, path)


def _check_values(cfg):
  """The ranges of the numeric and Theseus flags."""
  if cfg.finetune_suc and cfg.suc_layers == 0:
    raise InputDataError("--finetune_suc needs --suc_layers > 0")
  if not 0.0 <= cfg.replacing_rate <= 1.0:
    raise InputDataError("--replacing_rate must be in [0, 1], got %r" % cfg.replacing_rate)
  if not 0.0 <= cfg.scheduler_linear_k <= 1.0:
    raise InputDataError("--scheduler_linear_k must be in [0, 1], got %r" % cfg.scheduler_linear_k)
  if cfg.steps_for_replacing < 0:
    raise InputDataError("--steps_for_replacing must be >= 0")
  for name in ("train_batch_size", "eval_batch_size", "predict_batch_size",
               "gradient_accumulation_steps", "save_checkpoints_steps", "log_every_n_steps"):
    if getattr(cfg, name) < 1:
      raise InputDataError("--%s must be >= 1, got %r" % (name, getattr(cfg, name)))
  if cfg.learning_rate <= 0:
    raise InputDataError("--learning_rate must be > 0")
  if not 0.0 <= cfg.warmup_proportion <= 1.0:
    raise InputDataError("--warmup_proportion must be in [0, 1]")
  if not 0.0 < cfg.fp16_initial_loss_scale < float("inf"):
    raise InputDataError("--fp16_initial_loss_scale must be a finite number > 0, got %r"
                         % cfg.fp16_initial_loss_scale)
  if cfg.fp16_loss_scale_window < 1:
    raise InputDataError("--fp16_loss_scale_window must be >= 1, got %r"
                         % cfg.fp16_loss_scale_window)
  for group in cfg.stage1_also_train:
    if group not in optimization.STAGE1_EXTRA_SCOPES:
      raise InputDataError("--stage1_also_train: unknown group %r (choose from %s)"
                           % (group, ", ".join(optimization.STAGE1_EXTRA_SCOPES)))


def check_init_checkpoint(cfg, bert_config):
  """Checks that --init_checkpoint exists and fits the config and the stage."""
  path = cfg.init_checkpoint
  if not tf.io.gfile.exists(path + ".index"):
    raise InputDataError("checkpoint not found (expected %s.index)" % path, path)
  num_layers, num_suc = modeling.checkpoint_layer_counts(path)
  if cfg.finetune_suc and num_suc == 0 and num_layers != cfg.suc_layers:
    raise InputDataError("--finetune_suc: checkpoint has no successor (suc_layer_*) variables and "
                         "%d layers, not the %d of an exported successor; run stage 1 first"
                         % (num_layers, cfg.suc_layers), path)
  if num_suc and num_suc != cfg.suc_layers and cfg.suc_layers:
    raise InputDataError("checkpoint has %d successor modules but --suc_layers=%d"
                         % (num_suc, cfg.suc_layers), path)
  # Plain fine-tuning and stage 1 build all L predecessor layers: a checkpoint with another
  # number of plain layers would leave some of them untrained-random (stage 1) or not load.
  if not cfg.finetune_suc and num_layers and num_layers != bert_config.num_hidden_layers:
    raise InputDataError("checkpoint has %d layers but bert_config num_hidden_layers is %d"
                         % (num_layers, bert_config.num_hidden_layers), path)
  _check_checkpoint_shapes(path, bert_config)


def _check_checkpoint_shapes(path, bert_config):
  """Every BERT variable of the checkpoint has the shape the config implies."""
  shapes = tf.train.load_checkpoint(path).get_variable_to_shape_map()
  h, i = bert_config.hidden_size, bert_config.intermediate_size
  expected = {
      "bert/embeddings/word_embeddings": [bert_config.vocab_size, h],
      "bert/embeddings/position_embeddings": [bert_config.max_position_embeddings, h],
      "bert/embeddings/token_type_embeddings": [bert_config.type_vocab_size, h],
      "bert/embeddings/LayerNorm/beta": [h], "bert/embeddings/LayerNorm/gamma": [h],
      "bert/pooler/dense/kernel": [h, h], "bert/pooler/dense/bias": [h],
  }
  layer_expected = {"intermediate/dense/kernel": [h, i], "intermediate/dense/bias": [i],
                    "output/dense/kernel": [i, h]}
  for sub in modeling.LAYER_VARIABLE_NAMES:
    layer_expected.setdefault(sub, [h, h] if sub.endswith("kernel") else [h])
  for name in sorted(shapes):
    m = re.match(r"^bert/encoder/(?:suc_)?layer_\d+/(.*)$", name)
    shape = layer_expected.get(m.group(1)) if m else expected.get(name)
    if shape is not None and list(shapes[name]) != shape:
      raise InputDataError("%s has shape %s but bert_config implies %s"
                           % (name, list(shapes[name]), shape), path)


def check_writable_dir(path):
  """Creates `path` if needed and checks that a file can be written there."""
  try:
    tf.io.gfile.makedirs(path)
    probe = os.path.join(path, ".write_test.%d" % os.getpid())
    with open(probe, "w") as f:
      f.write("ok")
    os.remove(probe)
  except (OSError, IOError, tf.errors.OpError) as e:
    raise InputDataError("output directory is not writable (%s)" % getattr(e, "strerror", e), path)


def make_tokenizer(cfg):
  """The run's tokenizer (WordPiece, or SentencePiece with --spm_model_file)."""
  try:
    return tokenization.create_tokenizer(cfg.vocab_file, cfg.do_lower_case, cfg.spm_model_file)
  except (ValueError, IOError, OSError) as e:
    if isinstance(e, InputDataError):
      raise
    raise InputDataError(str(e), cfg.vocab_file or cfg.spm_model_file)


def session_config(cfg):
  """The tf1.ConfigProto of the run's sessions (thread counts, XLA)."""
  config = tf1.ConfigProto()
  if cfg.num_threads:
    config.intra_op_parallelism_threads = cfg.num_threads
    config.inter_op_parallelism_threads = cfg.num_threads
  if getattr(cfg, cli.XLA_FLAG, False):
    config.graph_options.optimizer_options.global_jit_level = tf1.OptimizerOptions.ON_1
  return config
