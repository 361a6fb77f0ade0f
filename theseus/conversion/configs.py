"""Model configs across the two worlds: google-research/bert's bert_config.json and Hugging
Face's config.json, read, checked and written; the vocabulary count that must match them.

Bad input raises `ConversionError` (an InputDataError) with a one-line message naming the file.
Imports no TensorFlow.
"""

import collections
import json
import os

from theseus import files
from theseus.errors import InputDataError
import tokenization

CHECKPOINT_NAME = "bert_model.ckpt"
BERT_CONFIG_NAME = "bert_config.json"
VOCAB_NAME = "vocab.txt"
HF_CONFIG_NAME = "config.json"
HF_WEIGHTS_NAME = "model.safetensors"
HF_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
HF_TOKENIZER_CONFIG_NAME = "tokenizer_config.json"
REPORT_NAME = "conversion_report.json"
STAMP_NAME = "conversion_stamp.json"

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


class ConversionError(InputDataError):
  """Bad converter input: a missing file, a non-BERT config, a wrong shape...

  The message is one line: `<path>: <problem>` when a file is to blame.
  """

  def __init__(self, message, path=None):
    message = " ".join(str(message).split("\n"))
    super(ConversionError, self).__init__(message, path)


def require_file(path, what):
  if not path:
    raise ConversionError("no %s given" % what)
  if not os.path.exists(path):
    raise ConversionError("%s not found" % what, path)
  if os.path.isdir(path):
    raise ConversionError("%s is a directory, expected a file" % what, path)


def read_json(path, what):
  """A JSON object file (ConversionError naming the file when it is not one)."""
  require_file(path, what)
  try:
    return files.read_json_object(path, what)
  except InputDataError as e:
    raise ConversionError(str(e))


def count_vocab(vocab_file):
  """Number of tokens in a WordPiece vocab.txt, counted as tokenization.load_vocab counts them."""
  require_file(vocab_file, "vocab file")
  try:
    return len(tokenization.read_vocab_tokens(vocab_file))
  except InputDataError as e:
    raise ConversionError(str(e))


def check_vocab(vocab_file, config, config_path):
  n = count_vocab(vocab_file)
  if n != config["vocab_size"]:
    raise ConversionError(
        "vocab has %d tokens but %s says vocab_size = %d" %
        (n, os.path.basename(config_path), config["vocab_size"]), vocab_file)
  return n


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
  raw = read_json(path, "Hugging Face config")
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
  raw = read_json(path, "BERT config")
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


def write_json(obj, path):
  with open(path, "w", encoding="utf-8") as f:
    f.write(json.dumps(obj, indent=2) + "\n")


def write_bert_config(config, path):
  google = dict((k, config[k]) for k in GOOGLE_CONFIG_DEFAULTS)
  if config.get(GELU_APPROXIMATE_FIELD) == "none":
    google[GELU_APPROXIMATE_FIELD] = "none"
  with open(path, "w", encoding="utf-8") as f:
    f.write(json.dumps(google, indent=2, sort_keys=True) + "\n")

