"""BERT weights across the two worlds: the weights of a config (`weight_specs`), safetensors
files read with numpy, and the mappings between google-research/bert variables and Hugging Face
tensors, with a report of everything not converted.

Dense kernels are stored [in, out] on the TF side and [out, in] on the PyTorch side (nn.Linear),
so they are transposed; everything else is copied as is. Imports no TensorFlow.
"""

import collections
import json
import os
import re

from absl import logging
import numpy as np
import safetensors.numpy

from theseus import names
from theseus.conversion.configs import ConversionError
from theseus.conversion.configs import HF_WEIGHTS_INDEX_NAME
from theseus.conversion.configs import HF_WEIGHTS_NAME
from theseus.conversion.configs import read_json
from theseus.conversion.configs import require_file

# The Hugging Face module of each part of an encoder layer (TF scope relative to the layer:
# names.LAYER_VARIABLE_NAMES) and its kind: dense (kernel, bias) or norm (gamma, beta).
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
_LEAVES = {"dense": (("kernel", "weight", True), ("bias", "bias", False)),
           "norm": (("gamma", "weight", False), ("beta", "bias", False))}
_HF_LAYER_RE = re.compile(r"^encoder\.layer\.(\d+)\.")

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




def shape_str(shape):
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
  embeddings = names.EMBEDDINGS_SCOPE + "/"
  specs = [
      WeightSpec(embeddings + "word_embeddings", "embeddings.word_embeddings.weight", False,
                 (config["vocab_size"], h), "embeddings"),
      WeightSpec(embeddings + "token_type_embeddings", "embeddings.token_type_embeddings.weight",
                 False, (config["type_vocab_size"], h), "embeddings"),
      WeightSpec(embeddings + "position_embeddings", "embeddings.position_embeddings.weight",
                 False, (config["max_position_embeddings"], h), "embeddings"),
      WeightSpec(embeddings + "LayerNorm/gamma", "embeddings.LayerNorm.weight", False, (h,),
                 "embeddings"),
      WeightSpec(embeddings + "LayerNorm/beta", "embeddings.LayerNorm.bias", False, (h,),
                 "embeddings"),
  ]
  shapes = names.layer_sub_shapes(h, config["intermediate_size"])
  for i in range(config["num_hidden_layers"]):
    for tf_part, hf_part, kind in _LAYER_PARTS:
      for tf_leaf, hf_leaf, transpose in _LEAVES[kind]:
        sub = tf_part + "/" + tf_leaf
        specs.append(WeightSpec(names.layer_variable(i, sub),
                                "encoder.layer.%d.%s.%s" % (i, hf_part, hf_leaf), transpose,
                                tuple(shapes[sub]), "encoder"))
  pooler = names.POOLER_SCOPE + "/dense/"
  specs.append(WeightSpec(pooler + "kernel", "pooler.dense.weight", True, (h, h), "pooler"))
  specs.append(WeightSpec(pooler + "bias", "pooler.dense.bias", False, (h,), "pooler"))
  if num_labels is not None:
    specs.append(WeightSpec(names.CLASSIFIER_WEIGHTS, "classifier.weight", False,
                            (num_labels, h), "classifier"))
    specs.append(WeightSpec(names.CLASSIFIER_BIAS, "classifier.bias", False, (num_labels,),
                            "classifier"))
  return specs



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


_SAFETENSORS_DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "I64": "<i8", "I32": "<i4",
                       "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?", "BF16": "<u2"}


def _read_safetensors_raw(path):
  """Parses a safetensors file with numpy alone; BF16 is widened to float32.

  Raises:
    ConversionError: the file is not a whole safetensors file (a bad header, a tensor that
      reaches past the end of the data or does not fill its shape, an unknown dtype).
  """
  try:
    with open(path, "rb") as f:
      header_len = int(np.frombuffer(f.read(8), dtype="<u8")[0])
      if header_len > os.path.getsize(path):
        raise ValueError("header of %d bytes in a file of %d" % (header_len,
                                                                 os.path.getsize(path)))
      header = json.loads(f.read(header_len).decode("utf-8"))
      data = f.read()
  except (OSError, ValueError, IndexError, UnicodeDecodeError) as e:
    raise ConversionError("not a safetensors file, or truncated (%s)" % e, path)
  tensors = {}
  for name, info in header.items():
    if name != "__metadata__":
      tensors[name] = _raw_tensor(name, info, data, path)
  return tensors


def _raw_tensor(name, info, data, path):
  """One tensor of a safetensors file's data section (see _read_safetensors_raw)."""
  try:
    dtype = _SAFETENSORS_DTYPES[info["dtype"]]
    start, end = (int(x) for x in info["data_offsets"])
    shape = [int(d) for d in info["shape"]]
  except (KeyError, TypeError, ValueError):
    raise ConversionError("tensor %s has an unreadable or unsupported entry in the header (%r)"
                          % (name, info), path)
  if not 0 <= start <= end <= len(data):
    raise ConversionError("truncated: tensor %s ends at byte %d of a data section of %d"
                          % (name, end, len(data)), path)
  arr = np.frombuffer(data[start:end], dtype=dtype)
  if info["dtype"] == "BF16":
    arr = (arr.astype(np.uint32) << 16).view(np.float32)
  if arr.size != int(np.prod(shape)):
    raise ConversionError("tensor %s has %d values for its shape %s" % (name, arr.size, shape),
                          path)
  return arr.reshape(shape).copy()


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
    weight_map = read_json(index, "safetensors index").get("weight_map")
    if not isinstance(weight_map, dict):
      raise ConversionError("safetensors index has no weight_map", index)
    tensors = {}
    for shard in sorted(set(weight_map.values())):
      shard_path = os.path.join(hf_dir, shard)
      require_file(shard_path, "safetensors shard")
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



def _classify_ignored_tf(name):
  if name == names.GLOBAL_STEP or name.endswith("/" + names.GLOBAL_STEP):
    return "training step counter"
  if names.OPTIMIZER_SLOT_RE.search(name):
    return "optimizer slot"
  if names.SUC_LAYER_RE.match(name):
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
        (name, shape_str(got), shape_str(expected)), weights_path)


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
                          "[num_labels, %d]" % (shape_str(w.shape),
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
  _check_layer_count(names.layer_indices(by_bare, _HF_LAYER_RE), config,
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
    missing.extend([names.CLASSIFIER_WEIGHTS, names.CLASSIFIER_BIAS])

  shapes = {name: hf_tensors[name].shape for name in hf_tensors}
  return tf_tensors, _mapping_report(shapes, used, _classify_unused_hf, missing,
                                     num_labels, cast)


def _tf_num_labels(shapes, config, checkpoint_path):
  """The classifier's number of labels in a checkpoint's {name: shape}, or None without one."""
  heads = (names.CLASSIFIER_WEIGHTS, names.CLASSIFIER_BIAS)
  if not any(name in shapes for name in heads):
    return None
  for name in heads:
    if name not in shapes:
      raise ConversionError("%s is missing (the other classifier variable is there)" % name,
                            checkpoint_path)
  w_shape = shapes[names.CLASSIFIER_WEIGHTS]
  if len(w_shape) != 2:
    raise ConversionError("tensor output_weights has shape %s, expected [num_labels, %d]" %
                          (shape_str(w_shape), config["hidden_size"]), checkpoint_path)
  return int(w_shape[0])


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
  variable_names = set(shapes)
  suc = names.layer_indices(variable_names, names.SUC_LAYER_RE)
  hint = ""
  if suc:
    hint = ("; it holds %d successor modules (suc_layer_*): export the "
            "successor first" % len(suc))
  _check_layer_count(names.layer_indices(variable_names, names.LAYER_RE), config, config_path,
                     checkpoint_path, hint)

  num_labels = _tf_num_labels(shapes, config, checkpoint_path)
  prefix = "bert." if num_labels is not None else ""

  hf_tensors = collections.OrderedDict()
  used = set()
  missing = []
  cast = []
  specs = weight_specs(config, num_labels)
  for spec in specs:  # Check every shape before reading anything.
    if spec.tf_name in variable_names:
      _check_shape(spec.tf_name, shapes[spec.tf_name], spec.tf_shape,
                   checkpoint_path)
    elif spec.group in ("embeddings", "encoder"):
      raise ConversionError("variable %s is missing" % spec.tf_name,
                            checkpoint_path)
  for spec in specs:
    if spec.tf_name not in variable_names:
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
  return hf_tensors, _mapping_report({n: shapes[n] for n in variable_names}, used,
                                     _classify_ignored_tf, missing, num_labels, cast)

