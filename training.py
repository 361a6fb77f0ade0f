"""Shared training, data-caching, checkpoint and export code for run_classifier.py and run_ner_mrc.py.

Everything both scripts need lives here once: input errors, TFRecord feature caches, the
length-bucketed tf.data pipeline, the session training loop (checkpoints, resume, summaries,
logging), evaluation during training and the successor export.
"""

from __future__ import absolute_import
from __future__ import division
from __future__ import print_function

import os


class InputDataError(ValueError):
  """Bad user input (data file, config, checkpoint, flags).

  The message is one line naming the file (and line, when known) and the problem; the command line
  entry points print it and exit with a non-zero code before any long work starts.
  """

  def __init__(self, message, path=None, line=None):
    where = ""
    if path is not None:
      where = str(path)
      if line is not None:
        where += ":%d" % line
      where += ": "
    super(InputDataError, self).__init__(where + message)
    self.path = path
    self.line = line


def read_text_lines(path, encoding="utf-8"):
  """Reads a text file as a list of lines (newline characters stripped).

  Raises InputDataError naming the file (and the line) when the file is missing, is a directory,
  is empty, or holds bytes that are not valid in `encoding`.
  """
  if not os.path.exists(path):
    raise InputDataError("file not found", path)
  if os.path.isdir(path):
    raise InputDataError("is a directory, expected a file", path)
  with open(path, "rb") as f:
    data = f.read()
  if not data.strip():
    raise InputDataError("file is empty", path)
  try:
    text = data.decode(encoding)
  except UnicodeDecodeError as e:
    line = data[:e.start].count(b"\n") + 1
    raise InputDataError("bytes that are not valid %s (byte %d)" % (encoding, e.start), path, line)
  if text.startswith("\ufeff"):
    text = text[1:]
  # Split on "\n" only: str.splitlines() would also break on U+2028, U+0085 or form feeds that
  # real text contains, shifting the line numbers errors report.
  lines = text.split("\n")
  if lines and lines[-1] == "":
    lines.pop()
  return [line[:-1] if line.endswith("\r") else line for line in lines]


# ----------------------------------------------------------------------------------------------
# Everything below needs TensorFlow.

import collections  # noqa: E402
import glob  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
import numpy as np  # noqa: E402

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # see modeling_theseus.py
import tensorflow as tf  # noqa: E402

import modeling_theseus as modeling  # noqa: E402
import optimization_theseus as optimization  # noqa: E402
import tokenization  # noqa: E402

tf1 = tf.compat.v1

CACHE_FORMAT_VERSION = 1
BEST_DIR = "best"


class TrainingError(RuntimeError):
  """A fault during training (NaN / Inf loss, failed write); the message names the step."""


# ----------------------------------------------------------------------------------------------
# Flags shared by run_classifier.py and run_ner_mrc.py.

_common_flags_defined = False


def define_common_flags():
  """Defines the flags both scripts share (google-research/bert names where they overlap).

  A second call (both scripts imported in one process, e.g. by pytest) does nothing.
  """
  global _common_flags_defined
  if _common_flags_defined:
    return
  _common_flags_defined = True
  f = flags
  f.DEFINE_string("data_dir", None, "Directory with the task's data files.")
  f.DEFINE_string("bert_config_file", None, "bert_config.json of the predecessor (L layers).")
  f.DEFINE_string("vocab_file", None, "WordPiece vocab.txt the model was trained with.")
  f.DEFINE_string("spm_model_file", None, "SentencePiece .model (instead of vocab_file).")
  f.DEFINE_string("init_checkpoint", None,
                  "Initial checkpoint: a pretrained BERT (plain fine-tuning), a fine-tuned "
                  "predecessor (stage 1), a stage-1 checkpoint (stage 2) or an exported model.")
  f.DEFINE_string("output_dir", None, "Where checkpoints, summaries and results are written.")
  f.DEFINE_string("cache_dir", None, "Feature cache directory (default: <output_dir>/cache).")
  f.DEFINE_bool("do_lower_case", True, "Lower-case the input (uncased models).")
  f.DEFINE_integer("max_seq_length", 128, "Maximum total input length in word pieces.")
  f.DEFINE_bool("do_train", False, "Train.")
  f.DEFINE_bool("do_eval", False, "Evaluate on the dev set (the successor-only graph).")
  f.DEFINE_bool("do_predict", False, "Predict on the test set (the successor-only graph).")
  f.DEFINE_bool("do_export", False, "Export the successor as a plain n-layer BERT + SavedModel.")
  f.DEFINE_string("export_dir", None, "Export directory (default: <output_dir>/export).")
  f.DEFINE_integer("train_batch_size", 32, "Micro-batch size for training.")
  f.DEFINE_integer("eval_batch_size", 64, "Batch size for evaluation.")
  f.DEFINE_integer("predict_batch_size", 64, "Batch size for prediction.")
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
  f.DEFINE_integer("max_eval_examples", 0, "If > 0, evaluate on the first N examples only.")
  f.DEFINE_integer("seed", 12345, "Random seed (data order, dropout, replacement draws).")
  f.DEFINE_integer("num_threads", 0, "TensorFlow intra/inter-op threads (0: TensorFlow's choice).")
  f.DEFINE_bool("skip_bad_rows", False, "Skip (and count) malformed data rows instead of failing.")
  # Theseus.
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
  f.DEFINE_bool("evaluate_during_training", False,
                "Evaluate at every checkpoint and keep the best one (by the task's main metric) "
                "in <output_dir>/best; eval / predict / export then use it.")


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


def check_run_config(cfg, needs_data=True):
  """Validates flags, files and the model config before any long work.

  Returns the BertConfig. Raises InputDataError with a one-line message.
  """
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
  try:
    bert_config = modeling.BertConfig.from_json_file(cfg.bert_config_file)
  except ValueError as e:
    raise InputDataError(str(e))
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
  for group in cfg.stage1_also_train:
    if group not in optimization.STAGE1_EXTRA_SCOPES:
      raise InputDataError("--stage1_also_train: unknown group %r (choose from %s)"
                           % (group, ", ".join(optimization.STAGE1_EXTRA_SCOPES)))
  if cfg.init_checkpoint:
    check_init_checkpoint(cfg, bert_config)
  elif cfg.do_train and not find_latest_checkpoint(cfg.output_dir):
    logging.warning("no --init_checkpoint: training starts from random weights")
  check_writable_dir(cfg.output_dir)
  return bert_config


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
  reader = tf.train.load_checkpoint(path)
  shapes = reader.get_variable_to_shape_map()
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
  try:
    return tokenization.create_tokenizer(cfg.vocab_file, cfg.do_lower_case, cfg.spm_model_file)
  except (ValueError, IOError, OSError) as e:
    if isinstance(e, InputDataError):
      raise
    raise InputDataError(str(e), cfg.vocab_file or cfg.spm_model_file)


# ----------------------------------------------------------------------------------------------
# Feature caches: TFRecord files of variable-length int / float lists.

def file_fingerprint(path):
  """sha1 of a file's bytes (the cache key uses content, not names or times)."""
  h = hashlib.sha1()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      h.update(chunk)
  return h.hexdigest()


def cache_key(parts):
  """A short stable hash of a dict of things that change the features."""
  text = json.dumps(dict(parts, cache_format=CACHE_FORMAT_VERSION), sort_keys=True, default=str)
  return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def _remove_quietly(path):
  try:
    os.remove(path)
  except OSError:
    pass


def atomic_write_text(path, text):
  tmp = "%s.tmp-%d" % (path, os.getpid())
  try:
    with open(tmp, "w", encoding="utf-8") as f:
      f.write(text)
    os.replace(tmp, path)
  except BaseException:
    _remove_quietly(tmp)  # e.g. a full disk: no half-written file is left behind
    raise


def write_feature_tfrecord(path, features, int_keys, float_keys=()):
  """Writes feature dicts (variable-length lists) to a TFRecord file via a temporary name."""
  tmp = "%s.tmp-%d" % (path, os.getpid())
  try:
    with tf.io.TFRecordWriter(tmp) as writer:
      for feature in features:
        out = collections.OrderedDict()
        for key in int_keys:
          out[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=list(feature[key])))
        for key in float_keys:
          out[key] = tf.train.Feature(float_list=tf.train.FloatList(value=list(feature[key])))
        writer.write(tf.train.Example(features=tf.train.Features(feature=out)).SerializeToString())
    os.replace(tmp, path)
  except BaseException:
    _remove_quietly(tmp)
    raise


def cached_features(cache_dir, name, key_parts, build_fn, int_keys, float_keys=(),
                    sort_by_length=False):
  """Returns (tfrecord_path, num_features), building the cache when its key is new.

  Args:
    cache_dir: directory of the caches.
    name: e.g. "train", "dev".
    key_parts: dict of what the features depend on (data file fingerprints, vocab fingerprint,
      max_seq_length, ...); a change rebuilds the cache.
    build_fn: () -> list of feature dicts.
    sort_by_length: write features sorted by length (evaluation: less padding per batch).
  """
  tf.io.gfile.makedirs(cache_dir)
  key = cache_key(key_parts)
  path = os.path.join(cache_dir, "%s-%s.tfrecord" % (name, key))
  meta_path = path + ".json"
  if os.path.exists(path) and os.path.exists(meta_path):
    with open(meta_path) as f:
      meta = json.load(f)
    logging.info("Using cached %s features: %s (%d)", name, path, meta["num_features"])
    return path, meta["num_features"]
  start = time.time()
  features = build_fn()
  if sort_by_length:
    features = sorted(features, key=lambda ft: len(ft["input_ids"]))
  try:
    write_feature_tfrecord(path, features, int_keys, float_keys)
    atomic_write_text(meta_path, json.dumps({"num_features": len(features), "key": key_parts},
                                            default=str, indent=1))
  except (OSError, tf.errors.OpError) as e:  # a full disk, an unwritable cache_dir
    raise TrainingError("could not write the %s feature cache %s (%s)"
                        % (name, path, _short_error(e)))
  logging.info("Wrote %d %s features to %s in %.1fs", len(features), name, path,
               time.time() - start)
  return path, len(features)


def make_dataset(path, int_keys, float_keys, batch_size, is_training, seed=0, skip_batches=0,
                 bucket_boundaries=(16, 32, 48, 64, 96, 128, 192, 256, 384)):
  """tf.data over a feature cache; batches padded to their longest sequence.

  Training: shuffled with a fixed seed (the same order on every run, so a resumed run can skip
  the batches it already consumed), repeated, and grouped by length so a batch holds sequences of
  similar length. Evaluation: one pass in file order, nothing dropped.

  Returns a dataset of dicts name -> [batch, max_len_in_batch] tensors (int32 / float32).
  """
  spec = {k: tf.io.VarLenFeature(tf.int64) for k in int_keys}
  spec.update({k: tf.io.VarLenFeature(tf.float32) for k in float_keys})

  def parse(record):
    parsed = tf.io.parse_single_example(record, spec)
    out = {}
    for k in int_keys:
      out[k] = tf.cast(tf.sparse.to_dense(parsed[k]), tf.int32)
    for k in float_keys:
      out[k] = tf.sparse.to_dense(parsed[k])
    out["input_mask"] = tf.ones_like(out["input_ids"])  # padding below adds the zeros
    return out

  d = tf.data.TFRecordDataset(path)
  if is_training:
    d = d.shuffle(10000, seed=seed, reshuffle_each_iteration=True).repeat()
  d = d.map(parse, num_parallel_calls=2 if not is_training else 1, deterministic=True)
  if is_training:
    boundaries = [b for b in bucket_boundaries]
    d = d.bucket_by_sequence_length(
        lambda x: tf.shape(x["input_ids"])[0], bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1))
    if skip_batches:
      d = d.skip(skip_batches)
  else:
    d = d.padded_batch(batch_size)
  return d.prefetch(2)


# ----------------------------------------------------------------------------------------------
# Graph building shared by the tasks.

class TaskSpec(object):
  """What a script tells the shared loop about its task.

  Attributes:
    int_keys / float_keys: feature names in the caches (all variable-length 1-D lists).
    index_key: the int feature that numbers examples (eval outputs are returned in its order).
    sequence_output_keys: outputs with a time axis; rows are trimmed to the example's length.
    head_variable_regex: non-`bert/` variables that belong to the model (exported with it).
    build_head: callable(model: BertModel, features: dict, is_training) -> (loss or None,
      outputs: dict name -> Tensor [batch, ...]); features may hold only input_ids, input_mask
      and segment_ids (export, serving): the loss is then None.
    serving_outputs: callable(outputs) -> dict of the SavedModel's outputs.
    evaluate: callable(outputs_by_index: list of dicts) -> dict of metrics with "main_metric".
  """

  def __init__(self, int_keys, float_keys, index_key, build_head, evaluate, serving_outputs,
               head_variable_regex, sequence_output_keys=()):
    self.int_keys = list(int_keys)
    self.float_keys = list(float_keys)
    self.index_key = index_key
    self.build_head = build_head
    self.evaluate = evaluate
    self.serving_outputs = serving_outputs
    self.head_variable_regex = head_variable_regex
    self.sequence_output_keys = tuple(sequence_output_keys)


def build_model(cfg, bert_config, task, features, is_training, replace_rate=None):
  """BertModel for this run's stage + the task head. Returns (model, loss, outputs)."""
  model = modeling.BertModel(
      bert_config, is_training, features["input_ids"], features["input_mask"],
      features["segment_ids"], suc_layers=cfg.suc_layers, replace_rate_prob=replace_rate,
      finetune_suc=cfg.finetune_suc)
  loss, outputs = task.build_head(model, features, is_training)
  return model, loss, outputs


def session_config(cfg):
  config = tf1.ConfigProto()
  if cfg.num_threads:
    config.intra_op_parallelism_threads = cfg.num_threads
    config.inter_op_parallelism_threads = cfg.num_threads
  return config


def find_latest_checkpoint(directory):
  if not directory or not tf.io.gfile.isdir(directory):
    return None
  return tf.train.latest_checkpoint(directory)


def num_train_steps_for(cfg, num_examples):
  if cfg.num_train_steps > 0:
    return cfg.num_train_steps
  per_update = cfg.train_batch_size * cfg.gradient_accumulation_steps
  return max(1, int(math.ceil(num_examples * cfg.num_train_epochs / per_update)))


def _format_eta(seconds):
  seconds = int(max(0, seconds))
  return "%d:%02d:%02d" % (seconds // 3600, (seconds // 60) % 60, seconds % 60)


class Evaluator(object):
  """The evaluation graph (successor-only when suc_layers > 0), built once, reloaded per checkpoint."""

  def __init__(self, cfg, bert_config, task, path, batch_size):
    self.cfg, self.task = cfg, task
    self.graph = tf.Graph()
    with self.graph.as_default():
      dataset = make_dataset(path, task.int_keys, task.float_keys, batch_size, is_training=False)
      self.iterator = tf1.data.make_initializable_iterator(dataset)
      features = self.iterator.get_next()
      eval_cfg = RunConfig(dict(cfg.__dict__))
      _, self.loss, self.outputs = build_model(eval_cfg, bert_config, task, features, False)
      self.fetch = dict(self.outputs)
      self.fetch["__index"] = features[task.index_key][:, 0]
      self.fetch["__length"] = tf.reduce_sum(features["input_mask"], axis=1)
      self.saver = tf1.train.Saver(tf1.global_variables())
      self.init = tf1.global_variables_initializer()
    self.sess = tf1.Session(graph=self.graph, config=session_config(cfg))

  def restore(self, checkpoint):
    """Loads `checkpoint`: a run checkpoint by name, or any BERT checkpoint by the Theseus rules."""
    names = {n for n, _ in tf.train.list_variables(checkpoint)}
    with self.graph.as_default():
      graph_names = {v.op.name for v in tf1.global_variables()}
    if graph_names <= names:
      self.saver.restore(self.sess, checkpoint)
      return
    with self.graph.as_default():
      tvars = tf1.global_variables()
      initialized = modeling.init_from_checkpoint_for_theseus(tvars, checkpoint, self.cfg.suc_init)
      missing = [v.op.name for v in tvars if v.op.name not in initialized]
      if missing:
        raise InputDataError("checkpoint lacks %d model variables, e.g. %s" %
                             (len(missing), ", ".join(missing[:3])), checkpoint)
      self.sess.run(tf1.global_variables_initializer())

  def run(self):
    """Returns (outputs per example ordered by index, mean loss or None, seconds)."""
    start = time.time()
    self.sess.run(self.iterator.initializer)
    rows, losses = {}, []
    fetch = dict(self.fetch)
    if self.loss is not None:
      fetch["__loss"] = self.loss
    while True:
      try:
        batch = self.sess.run(fetch)
      except tf.errors.OutOfRangeError:
        break
      if "__loss" in batch:
        losses.append((float(batch["__loss"]), len(batch["__index"])))
      for i, index in enumerate(batch["__index"]):
        row = {}
        for key in self.outputs:
          value = batch[key][i]
          if key in self.task.sequence_output_keys:
            value = value[:batch["__length"][i]]
          row[key] = value
        rows[int(index)] = row
    ordered = [rows[i] for i in sorted(rows)]
    loss = (sum(l * n for l, n in losses) / sum(n for _, n in losses)) if losses else None
    return ordered, loss, time.time() - start


def write_eval_results(output_dir, name, metrics):
  """eval_results.txt as google-research/bert writes it, plus a JSON copy."""
  lines = ["%s = %s" % (k, metrics[k]) for k in sorted(metrics) if not isinstance(metrics[k], dict)]
  atomic_write_text(os.path.join(output_dir, "%s_results.txt" % name), "\n".join(lines) + "\n")
  atomic_write_text(os.path.join(output_dir, "%s_results.json" % name),
                    json.dumps(metrics, indent=2, sort_keys=True, default=float) + "\n")


def _copy_checkpoint(checkpoint, target_dir, extra_files=None):
  """Copies a checkpoint into target_dir atomically (temp dir + rename)."""
  tmp = target_dir + ".tmp-%d" % os.getpid()
  if os.path.exists(tmp):
    shutil.rmtree(tmp)
  os.makedirs(tmp)
  base = os.path.basename(checkpoint)
  for path in glob.glob(checkpoint + ".*"):
    shutil.copy2(path, os.path.join(tmp, os.path.basename(path)))
  with open(os.path.join(tmp, "checkpoint"), "w") as f:
    f.write('model_checkpoint_path: "%s"\nall_model_checkpoint_paths: "%s"\n' % (base, base))
  for name, text in (extra_files or {}).items():
    with open(os.path.join(tmp, name), "w") as f:
      f.write(text)
  replace_dir(tmp, target_dir)


def recover_dir(target_dir):
  """Puts back a previous `target_dir` that a kill between replace_dir's two renames left as
  `<target_dir>.old-<pid>`. Returns True when one was restored."""
  if os.path.exists(target_dir):
    return False
  olds = sorted(glob.glob(target_dir + ".old-*"), key=os.path.getmtime)
  if not olds:
    return False
  os.rename(olds[-1], target_dir)
  logging.warning("restored %s from %s (an earlier replacement was interrupted)", target_dir,
                  olds[-1])
  return True


def replace_dir(new_dir, target_dir):
  """Puts new_dir at target_dir; a previous target survives until the new one is in place (if
  a kill falls between the two renames, recover_dir puts the previous one back)."""
  recover_dir(target_dir)
  old = None
  if os.path.exists(target_dir):
    old = target_dir + ".old-%d" % os.getpid()
    os.rename(target_dir, old)
  os.rename(new_dir, target_dir)
  if old:
    shutil.rmtree(old, ignore_errors=True)


def best_checkpoint(output_dir):
  best = os.path.join(output_dir, BEST_DIR)
  recover_dir(best)
  return find_latest_checkpoint(best)


def checkpoint_for_inference(cfg):
  """The checkpoint eval / predict / export use: best (with --evaluate_during_training), else the
  newest in output_dir, else --init_checkpoint."""
  if cfg.evaluate_during_training:
    best = best_checkpoint(cfg.output_dir)
    if best:
      return best
  latest = find_latest_checkpoint(cfg.output_dir)
  if latest:
    return latest
  if cfg.init_checkpoint:
    return cfg.init_checkpoint
  raise InputDataError("no checkpoint in output_dir and no --init_checkpoint to evaluate",
                       cfg.output_dir)


def _short_error(e):
  """The line of a (TensorFlow) error that says what went wrong, e.g. "...; No space left on
  device", not "Graph execution error:" or the node's Python stack."""
  lines = [l.strip() for l in str(getattr(e, "message", e)).splitlines() if l.strip()]
  for i, line in enumerate(lines[:-1]):
    if line.startswith("Node:"):
      return lines[i + 1]
  useful = [l for l in lines if l != "Graph execution error:" and
            not l.startswith(("Detected at node", "File "))]
  return (useful or lines or [type(e).__name__])[0]


def _kept_checkpoint(output_dir):
  latest = find_latest_checkpoint(output_dir)
  if latest:
    return "The last good checkpoint is kept: %s" % latest
  return "No checkpoint had been written yet."


def _evaluated_steps(output_dir):
  """The global_step of every evaluation recorded in <output_dir>/eval_history.jsonl (a set)."""
  path = os.path.join(output_dir, "eval_history.jsonl")
  if not os.path.exists(path):
    return set()
  steps = set()
  with open(path) as f:
    for line in f:
      try:
        steps.add(int(json.loads(line)["global_step"]))
      except (ValueError, KeyError, TypeError):
        continue  # a line cut short by a crash
  return steps


def train(cfg, bert_config, task, train_path, num_train_examples, eval_path=None,
          on_checkpoint=None):
  """The session training loop for every stage.

  Resumes from the newest checkpoint in output_dir (same global_step, learning rate and replace
  rate, and the same data order: consumed batches are skipped); otherwise initialises from
  --init_checkpoint by the Theseus rules. Saves every save_checkpoints_steps updates and at the
  end, logs progress every log_every_n_steps updates, writes TensorBoard summaries, evaluates at
  each checkpoint with --evaluate_during_training (keeping the best in <output_dir>/best), and
  stops with TrainingError on a NaN / Inf loss without saving the bad state.

  Returns a dict with global_step, replace_rate, and the final loss.
  """
  num_train_steps = num_train_steps_for(cfg, num_train_examples)
  num_warmup_steps = int(num_train_steps * cfg.warmup_proportion)
  k = cfg.gradient_accumulation_steps
  latest = find_latest_checkpoint(cfg.output_dir)
  resumed_step = 0
  if latest:
    resumed_step = int(tf.train.load_checkpoint(latest).get_tensor("global_step"))
  stage = ("plain fine-tuning" if cfg.suc_layers == 0 else
           "stage 2 (successor fine-tuning)" if cfg.finetune_suc else "stage 1 (replacing)")
  logging.info("***** Training: %s *****", stage)
  logging.info("  examples = %d, micro-batch = %d, accumulation = %d, updates = %d, warmup = %d",
               num_train_examples, cfg.train_batch_size, k, num_train_steps, num_warmup_steps)
  # A run stopped between saving a checkpoint and recording its evaluation: evaluate it on
  # resume, so the history and the best checkpoint miss nothing.
  missed_eval = bool(resumed_step and cfg.evaluate_during_training and eval_path and
                     resumed_step not in _evaluated_steps(cfg.output_dir))
  if resumed_step >= num_train_steps and not missed_eval:
    logging.info("  already trained: %s is at step %d", latest, resumed_step)
    return {"global_step": resumed_step, "resumed": True}

  graph = tf.Graph()
  with graph.as_default():
    tf1.set_random_seed(cfg.seed)
    dataset = make_dataset(train_path, task.int_keys, task.float_keys, cfg.train_batch_size,
                           is_training=True, seed=cfg.seed, skip_batches=resumed_step * k)
    features = tf1.data.make_one_shot_iterator(dataset).get_next()
    global_step = tf1.train.get_or_create_global_step()
    replace_rate = None
    if cfg.suc_layers and not cfg.finetune_suc:
      replace_rate = modeling.get_replace_rate(
          global_step, cfg.scheduler_type, cfg.replacing_rate, cfg.scheduler_linear_k,
          cfg.steps_for_replacing)
    model, loss, _ = build_model(cfg, bert_config, task, features, True, replace_rate)
    train_scope = None
    if cfg.suc_layers and not cfg.finetune_suc and cfg.stage1_also_train:
      train_scope = optimization.stage1_train_scope(cfg.stage1_also_train)
    ops = optimization.create_optimizer_for_bert_theseus(
        loss, cfg.learning_rate, num_train_steps, num_warmup_steps, finetune_suc=cfg.finetune_suc,
        clip_norm=cfg.clip_norm, gradient_accumulation_steps=k, train_scope=train_scope,
        weight_decay_rate=cfg.weight_decay_rate)
    rate_tensor = replace_rate if replace_rate is not None else tf.constant(
        0.0 if cfg.suc_layers == 0 else 1.0)
    tf1.summary.scalar("loss", loss)
    tf1.summary.scalar("learning_rate", ops.learning_rate)
    tf1.summary.scalar("replace_rate", rate_tensor)
    summary_op = tf1.summary.merge_all()
    tokens = tf.reduce_sum(features["input_mask"])
    batch_examples = tf.shape(features["input_ids"])[0]
    replaced = (tf.reduce_mean(tf.cast(model.replaced_modules, tf.float32))
                if model.replaced_modules is not None else tf.constant(-1.0))
    saver = tf1.train.Saver(tf1.global_variables(), max_to_keep=cfg.keep_checkpoint_max)
    # Checked before each save: a checkpoint on disk never holds NaN / Inf weights.
    weights_finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(v))
                                    for v in tf1.trainable_variables()])
    if not latest and cfg.init_checkpoint:
      # Model variables only: never global_step or optimizer slots of the source run.
      model_vars = tf1.trainable_variables()
      try:
        initialized = modeling.init_from_checkpoint_for_theseus(model_vars, cfg.init_checkpoint,
                                                                cfg.suc_init)
      except ValueError as e:  # e.g. a task head of another shape: one line, not a traceback
        raise InputDataError(str(e).splitlines()[0])
      fresh = [v.op.name for v in model_vars if v.op.name not in initialized]
      logging.info("Initialised %d of %d model variables from %s", len(model_vars) - len(fresh),
                   len(model_vars), cfg.init_checkpoint)
      if fresh:
        logging.info("  left to their initialisers: %s", ", ".join(fresh))
    init_ops = [tf1.global_variables_initializer(), tf1.local_variables_initializer()]
    logging.info("  parameters: %d trained of %d in the graph",
                 modeling.count_parameters(ops.train_vars),
                 modeling.count_parameters(tf1.trainable_variables()))
  graph.finalize()

  evaluator = None
  if cfg.evaluate_during_training and eval_path:
    evaluator = Evaluator(cfg, bert_config, task, eval_path, cfg.eval_batch_size)
  best_value = None
  best_meta = os.path.join(cfg.output_dir, BEST_DIR, "best_metric.json")
  if os.path.exists(best_meta):
    with open(best_meta) as f:
      best_value = json.load(f).get("value")

  writer = tf1.summary.FileWriter(cfg.output_dir, graph if not latest else None)
  sess = tf1.Session(graph=graph, config=session_config(cfg))
  sess.run(init_ops)
  if latest:
    saver.restore(sess, latest)
    logging.info("Resumed from %s at step %d", latest, resumed_step)
  ckpt_prefix = os.path.join(cfg.output_dir, "model.ckpt")

  def save(step):
    if not sess.run(weights_finite):
      raise TrainingError("weights are NaN / Inf after the update of step %d; stopping without "
                          "saving it. %s" % (step, _kept_checkpoint(cfg.output_dir)))
    try:
      path = saver.save(sess, ckpt_prefix, global_step=step)
    except (tf.errors.OpError, OSError) as e:
      # Only this save's temporary files go; earlier checkpoints and the state file are intact.
      for partial in glob.glob("%s-%d*tempstate*" % (ckpt_prefix, step)):
        if os.path.isdir(partial):
          shutil.rmtree(partial, ignore_errors=True)
        else:
          os.remove(partial)
      raise TrainingError("step %d: could not write checkpoint in %s (%s). %s"
                          % (step, cfg.output_dir, _short_error(e),
                             _kept_checkpoint(cfg.output_dir)))
    logging.info("Saved checkpoint %s", path)
    return path

  def maybe_evaluate(path, step):
    nonlocal best_value
    if evaluator is None:
      return
    evaluator.restore(path)
    rows, eval_loss, seconds = evaluator.run()
    metrics = task.evaluate(rows)
    if eval_loss is not None:
      metrics["eval_loss"] = eval_loss
    metrics["global_step"] = step
    value = metrics[metrics["main_metric"]]
    logging.info("Eval at step %d (%.1fs): %s", step, seconds,
                 ", ".join("%s = %.4f" % (k_, v) for k_, v in sorted(metrics.items())
                           if isinstance(v, (int, float))))
    summary = tf1.Summary(value=[tf1.Summary.Value(tag="eval/" + k_, simple_value=float(v))
                                 for k_, v in metrics.items() if isinstance(v, (int, float))])
    writer.add_summary(summary, step)
    with open(os.path.join(cfg.output_dir, "eval_history.jsonl"), "a") as f:
      f.write(json.dumps(metrics, default=float) + "\n")
    if best_value is None or value > best_value:
      best_value = value
      _copy_checkpoint(path, os.path.join(cfg.output_dir, BEST_DIR), {
          "best_metric.json": json.dumps({"metric": metrics["main_metric"], "value": value,
                                          "global_step": step, "metrics": metrics},
                                         default=float, indent=1)})
      logging.info("New best %s = %.4f at step %d", metrics["main_metric"], value, step)

  if missed_eval:
    logging.info("%s was saved but not evaluated before the run stopped; evaluating it now", latest)
    maybe_evaluate(latest, resumed_step)

  step = resumed_step
  window = {"loss": 0.0, "n": 0, "examples": 0, "tokens": 0, "replaced": 0.0, "start": time.time()}
  run_start, steps_this_run = time.time(), 0
  last_loss, rate_value = None, None
  fetches = {"train": ops.train_op, "loss": loss, "step": global_step, "rate": rate_tensor,
             "lr": ops.learning_rate, "tokens": tokens, "examples": batch_examples,
             "replaced": replaced}
  try:
    while step < num_train_steps:
      do_summary = (step + 1) % cfg.log_every_n_steps == 0
      out = sess.run(dict(fetches, summary=summary_op) if do_summary else fetches)
      # global_step is read concurrently with the update; take the settled value.
      new_step = int(sess.run(global_step))
      if not np.isfinite(out["loss"]):
        raise TrainingError("loss is %s at step %d; stopping. %s"
                            % (out["loss"], new_step, _kept_checkpoint(cfg.output_dir)))
      window["loss"] += float(out["loss"])
      window["n"] += 1
      window["examples"] += int(out["examples"])
      window["tokens"] += int(out["tokens"])
      window["replaced"] += max(0.0, float(out["replaced"]))
      last_loss, rate_value = float(out["loss"]), float(out["rate"])
      if new_step == step:
        continue  # a micro-batch without an update (gradient accumulation)
      step = new_step
      steps_this_run += 1
      if do_summary and "summary" in out:
        writer.add_summary(out["summary"], step)
      if step % cfg.log_every_n_steps == 0 or step == num_train_steps:
        elapsed = time.time() - window["start"]
        updates = max(1, window["n"] // k)
        eta = (time.time() - run_start) / steps_this_run * (num_train_steps - step)
        logging.info(
            "step %d/%d | %.2f steps/s | %.1f examples/s | %.0f tokens/s | loss %.4f | lr %.3g | "
            "replace rate %.3f%s | ETA %s", step, num_train_steps, updates / elapsed,
            window["examples"] / elapsed, window["tokens"] / elapsed,
            window["loss"] / window["n"], out["lr"], rate_value,
            (" (replaced %.2f)" % (window["replaced"] / window["n"]))
            if model.replaced_modules is not None else "", _format_eta(eta))
        window = {"loss": 0.0, "n": 0, "examples": 0, "tokens": 0, "replaced": 0.0,
                  "start": time.time()}
      if step % cfg.save_checkpoints_steps == 0 or step == num_train_steps:
        path = save(step)
        maybe_evaluate(path, step)
        if on_checkpoint is not None:
          on_checkpoint(step)
    # Both are functions of global_step: the values a resumed run must end with too.
    final = sess.run({"step": global_step, "lr": ops.learning_rate, "rate": rate_tensor})
  finally:
    writer.close()
    sess.close()
  logging.info("Training done: step %d, learning rate %.3g, replace rate %.4f, %.1fs",
               final["step"], final["lr"], final["rate"], time.time() - run_start)
  atomic_write_text(os.path.join(cfg.output_dir, "train_results.json"), json.dumps({
      "global_step": int(final["step"]), "learning_rate": float(final["lr"]),
      "replace_rate": float(final["rate"]), "last_loss": last_loss,
      "resumed_from_step": resumed_step, "num_train_steps": num_train_steps}, indent=1) + "\n")
  return {"global_step": int(final["step"]), "replace_rate": float(final["rate"]),
          "learning_rate": float(final["lr"]), "loss": last_loss}


# ----------------------------------------------------------------------------------------------
# Export: the successor as a plain n-layer BERT (+ head), and a SavedModel.

def exported_variable_name(name):
  """suc_layer_j -> layer_j; everything else keeps its name."""
  return name.replace("bert/encoder/suc_layer_", "bert/encoder/layer_")


def export_model(cfg, bert_config, task, checkpoint, export_dir, serving_inputs=None):
  """Writes export_dir with bert_model.ckpt.*, bert_config.json, vocab, saved_model/.

  The checkpoint holds the successor's weights under plain layer_{j} names (or the whole plain
  model when suc_layers = 0) with the task head, so google-research/bert-compatible code loads it.
  Everything is written to a temporary directory first and renamed into place: a crash never
  leaves a half-written export, and a previous export survives until the new one is complete.

  Returns a dict describing the export.
  """
  # Values of the inference graph's variables, from `checkpoint`.
  evaluator_graph = tf.Graph()
  with evaluator_graph.as_default():
    ids = tf1.placeholder(tf.int32, [None, None], "input_ids")
    features = {"input_ids": ids, "input_mask": ids, "segment_ids": ids}
    build_model(cfg, bert_config, task, features, False)
    model_vars = [v for v in tf1.global_variables()
                  if v.op.name.startswith("bert/") or re.search(task.head_variable_regex, v.op.name)]
    loader = tf1.train.Saver(model_vars)
    with tf1.Session() as sess:
      ckpt_names = {n for n, _ in tf.train.list_variables(checkpoint)}
      if {v.op.name for v in model_vars} <= ckpt_names:
        loader.restore(sess, checkpoint)
      else:
        modeling.init_from_checkpoint_for_theseus(model_vars, checkpoint, cfg.suc_init)
        sess.run(tf1.variables_initializer(model_vars))
      values = collections.OrderedDict(
          (exported_variable_name(v.op.name), sess.run(v)) for v in model_vars)

  num_layers = cfg.suc_layers or bert_config.num_hidden_layers
  export_config = modeling.BertConfig.from_dict(dict(bert_config.to_dict(),
                                                     num_hidden_layers=num_layers))
  parent = os.path.dirname(os.path.abspath(export_dir))
  tf.io.gfile.makedirs(parent)
  tmp = os.path.join(parent, ".%s.tmp-%d" % (os.path.basename(export_dir), os.getpid()))
  if os.path.exists(tmp):
    shutil.rmtree(tmp)
  os.makedirs(tmp)
  with open(os.path.join(tmp, "bert_config.json"), "w") as f:
    f.write(export_config.to_json_string())
  vocab = cfg.spm_model_file or cfg.vocab_file
  shutil.copy2(vocab, os.path.join(tmp, os.path.basename(vocab)))

  plain_cfg = RunConfig(dict(cfg.__dict__, suc_layers=0, finetune_suc=False))
  serving_graph = tf.Graph()
  with serving_graph.as_default():
    variables = [tf1.get_variable(name, initializer=value) for name, value in values.items()]
    saver = tf1.train.Saver(variables)
    with tf1.Session() as sess:
      sess.run(tf1.variables_initializer(variables))
      saver.save(sess, os.path.join(tmp, "bert_model.ckpt"), write_meta_graph=False)

  serving_graph = tf.Graph()
  with serving_graph.as_default():
    inputs = {
        "input_ids": tf1.placeholder(tf.int32, [None, None], "input_ids"),
        "input_mask": tf1.placeholder(tf.int32, [None, None], "input_mask"),
        "segment_ids": tf1.placeholder(tf.int32, [None, None], "segment_ids"),
    }
    features = dict(inputs)
    _, _, outputs = build_model(plain_cfg, export_config, task, features, False)
    serving = task.serving_outputs(outputs)
    saver = tf1.train.Saver(tf1.global_variables())
    with tf1.Session() as sess:
      saver.restore(sess, os.path.join(tmp, "bert_model.ckpt"))
      builder = tf1.saved_model.Builder(os.path.join(tmp, "saved_model"))
      signature = tf1.saved_model.signature_def_utils.predict_signature_def(
          inputs=inputs, outputs=serving)
      builder.add_meta_graph_and_variables(
          sess, [tf1.saved_model.tag_constants.SERVING],
          signature_def_map={"serving_default": signature}, strip_default_attrs=True)
      builder.save()
  info = {"num_hidden_layers": num_layers, "source_checkpoint": checkpoint,
          "parameters": int(sum(np.prod(v.shape) for v in values.values())),
          "serving_outputs": sorted(serving)}
  with open(os.path.join(tmp, "export_info.json"), "w") as f:
    json.dump(info, f, indent=1)
  replace_dir(tmp, export_dir)
  logging.info("Exported a %d-layer BERT to %s", num_layers, export_dir)
  return info


def load_saved_model_predictor(saved_model_dir):
  """Returns (session, predict_fn(feed_dict name -> array) -> dict) for an exported SavedModel."""
  graph = tf.Graph()
  sess = tf1.Session(graph=graph)
  with graph.as_default():
    meta = tf1.saved_model.loader.load(sess, [tf1.saved_model.tag_constants.SERVING],
                                       saved_model_dir)
  signature = meta.signature_def["serving_default"]
  input_names = {k: v.name for k, v in signature.inputs.items()}
  output_names = {k: v.name for k, v in signature.outputs.items()}

  def predict(inputs):
    feed = {input_names[k]: v for k, v in inputs.items()}
    return sess.run(output_names, feed)

  return sess, predict


# ----------------------------------------------------------------------------------------------
# Command-line entry.

def absl_main(run_fn, flag_values):
  """The `main` of a run script: `app.run(lambda argv: absl_main(run, FLAGS))`."""
  logging.set_verbosity(logging.INFO)
  tf1.disable_eager_execution()
  cfg = RunConfig.from_flags(flag_values)
  run_main(lambda argv: run_fn(cfg), None)


def run_main(main_fn, argv):
  """Runs main_fn(argv); bad input and faults become one line on stderr and exit code 1/2."""
  try:
    main_fn(argv)
  except InputDataError as e:
    sys.stderr.write("error: %s\n" % e)
    sys.stderr.flush()
    os._exit(2)
  except TrainingError as e:
    sys.stderr.write("error: %s\n" % e)
    sys.stderr.flush()
    os._exit(1)
  except (OSError, tf.errors.OpError) as e:
    # Any other failed read / write (a full disk during export, ...): the traceback for a bug
    # report, then the one line that says what went wrong.
    import traceback  # pylint: disable=g-import-not-at-top
    traceback.print_exc()
    sys.stderr.write("error: %s\n" % (" ".join(str(e).split()) if isinstance(e, OSError)
                                       else _short_error(e)))
    sys.stderr.flush()
    os._exit(1)
