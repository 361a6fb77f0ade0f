"""The variable-name scheme: google-research/bert's names, and where successor modules live.

The one place the names are spelled. The model builds its variables under these scopes, the
optimizer picks a stage's variables by them, the converter maps them to Hugging Face's, the
export renames successor modules to plain layers, and the checks read a checkpoint's layer
counts and shapes from them. Imports no TensorFlow.

  bert/embeddings/{word,token_type,position}_embeddings, bert/embeddings/LayerNorm/{beta,gamma}
  bert/encoder/layer_{i}/<LAYER_VARIABLE_NAMES>        predecessor (or plain) layer i
  bert/encoder/suc_layer_{j}/<LAYER_VARIABLE_NAMES>    successor module j (stage 1 and 2)
  bert/pooler/dense/{kernel,bias}
  output_weights, output_bias                          the classifier head
  cls/squad/output_weights, cls/squad/output_bias      the SQuAD span head (tasks add others)
"""

import re

BERT_SCOPE = "bert"
ENCODER_SCOPE = "bert/encoder"
EMBEDDINGS_SCOPE = "bert/embeddings"
POOLER_SCOPE = "bert/pooler"
GLOBAL_STEP = "global_step"
CLASSIFIER_WEIGHTS = "output_weights"  # google-research/bert's classifier head
CLASSIFIER_BIAS = "output_bias"
CLASSIFIER_HEAD_RE = r"^(%s|%s)$" % (CLASSIFIER_WEIGHTS, CLASSIFIER_BIAS)
SQUAD_SCOPE = "cls/squad"  # google-research/bert's run_squad.py head
SQUAD_WEIGHTS = SQUAD_SCOPE + "/output_weights"  # [2, hidden_size]: start, end
SQUAD_BIAS = SQUAD_SCOPE + "/output_bias"  # [2]
SQUAD_HEAD_RE = r"^%s/" % SQUAD_SCOPE

LAYER_PATTERN = "layer_%d"  # scope of predecessor (plain) layer i under bert/encoder
SUC_LAYER_PATTERN = "suc_layer_%d"  # scope of successor module j under bert/encoder

# Sub-variable names of one transformer layer, relative to its layer scope.
LAYER_VARIABLE_NAMES = (
    "attention/self/query/kernel", "attention/self/query/bias",
    "attention/self/key/kernel", "attention/self/key/bias",
    "attention/self/value/kernel", "attention/self/value/bias",
    "attention/output/dense/kernel", "attention/output/dense/bias",
    "attention/output/LayerNorm/beta", "attention/output/LayerNorm/gamma",
    "intermediate/dense/kernel", "intermediate/dense/bias",
    "output/dense/kernel", "output/dense/bias",
    "output/LayerNorm/beta", "output/LayerNorm/gamma",
)

EMBEDDING_TABLES = ("word_embeddings", "token_type_embeddings", "position_embeddings")

LAYER_RE = re.compile(r"^bert/encoder/layer_(\d+)/(.*)$")
SUC_LAYER_RE = re.compile(r"^bert/encoder/suc_layer_(\d+)/(.*)$")
ANY_LAYER_RE = re.compile(r"^bert/encoder/(?:suc_)?layer_(\d+)/(.*)$")
# A layer's own scope name inside a longer name (op names in profiles, variable names).
LAYER_SCOPE_RE = re.compile(r"(suc_)?layer_\d+")
SUCCESSOR_SCOPE_RE = r"^bert/encoder/suc_layer_\d+/"
EMBEDDINGS_SCOPE_RE = r"^bert/embeddings/"
POOLER_SCOPE_RE = r"^bert/pooler/"
OPTIMIZER_SLOT_RE = re.compile(
    r"/(adam_m|adam_v|Adam|Adam_1|AdamWeightDecay|AdamWeightDecay_1|Momentum|"
    r"accumulator|accum_grad|grad_accum)(_\d+)?$")
# Variables google-research/bert's create_optimizer exempts from weight decay (by name).
NO_WEIGHT_DECAY = ("LayerNorm", "layer_norm", "bias")


def layer_scope(index):
  """`bert/encoder/layer_{index}`."""
  return "%s/%s" % (ENCODER_SCOPE, LAYER_PATTERN % index)


def suc_layer_scope(index):
  """`bert/encoder/suc_layer_{index}`."""
  return "%s/%s" % (ENCODER_SCOPE, SUC_LAYER_PATTERN % index)


def layer_variable(index, sub_name):
  """The full name of sub-variable `sub_name` of plain layer `index`."""
  return "%s/%s" % (layer_scope(index), sub_name)


def is_successor(name):
  return re.match(SUCCESSOR_SCOPE_RE, name) is not None


def exported_name(name):
  """A successor module under the plain layer name it is exported as: suc_layer_j -> layer_j."""
  return name.replace(ENCODER_SCOPE + "/suc_layer_", ENCODER_SCOPE + "/layer_")


def layer_counts(names):
  """(number of `layer_i` layers, number of `suc_layer_j` modules) among variable names."""
  layers, successors = set(), set()
  for name in names:
    m = LAYER_RE.match(name)
    if m:
      layers.add(int(m.group(1)))
    m = SUC_LAYER_RE.match(name)
    if m:
      successors.add(int(m.group(1)))
  return len(layers), len(successors)


def layer_indices(names, pattern=LAYER_RE):
  """The set of layer indices `pattern` (LAYER_RE or SUC_LAYER_RE) finds among names."""
  found = set()
  for name in names:
    m = pattern.match(name)
    if m:
      found.add(int(m.group(1)))
  return found


def layer_sub_shapes(hidden_size, intermediate_size):
  """{LAYER_VARIABLE_NAMES entry: shape} of one transformer layer."""
  h, i = hidden_size, intermediate_size
  shapes = {"intermediate/dense/kernel": [h, i], "intermediate/dense/bias": [i],
            "output/dense/kernel": [i, h]}
  for sub in LAYER_VARIABLE_NAMES:
    shapes.setdefault(sub, [h, h] if sub.endswith("kernel") else [h])
  return shapes


def embedding_and_pooler_shapes(vocab_size, hidden_size, max_position_embeddings,
                                type_vocab_size):
  """{name: shape} of the embedding tables, their LayerNorm and the pooler."""
  h = hidden_size
  return {
      EMBEDDINGS_SCOPE + "/word_embeddings": [vocab_size, h],
      EMBEDDINGS_SCOPE + "/token_type_embeddings": [type_vocab_size, h],
      EMBEDDINGS_SCOPE + "/position_embeddings": [max_position_embeddings, h],
      EMBEDDINGS_SCOPE + "/LayerNorm/beta": [h], EMBEDDINGS_SCOPE + "/LayerNorm/gamma": [h],
      POOLER_SCOPE + "/dense/kernel": [h, h], POOLER_SCOPE + "/dense/bias": [h],
  }


def expected_shape(name, config):
  """The shape `config` (a dict of bert_config fields) implies for BERT variable `name`, or None
  for a name outside the scheme (a head, a slot, global_step)."""
  m = ANY_LAYER_RE.match(name)
  if m:
    return layer_sub_shapes(config["hidden_size"], config["intermediate_size"]).get(m.group(2))
  return embedding_and_pooler_shapes(config["vocab_size"], config["hidden_size"],
                                     config["max_position_embeddings"],
                                     config["type_vocab_size"]).get(name)


def beyond_layer(name, keep_layers):
  """Whether `name` belongs to a plain layer with index >= keep_layers."""
  m = LAYER_RE.match(name)
  return m is not None and int(m.group(1)) >= keep_layers
