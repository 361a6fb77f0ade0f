"""BERT with progressive module replacing (BERT-of-Theseus), for tf.compat.v1 graph mode.

One code path builds three graphs:

* `suc_layers=0`: the plain L-layer BERT (the predecessor, or any BERT).
* `suc_layers=n`, `is_training=True`, `finetune_suc=False`: the Theseus graph of stage 1. The L
  predecessor layers are cut into n groups of r = L / n consecutive layers; at every step each
  successor module j draws u ~ U(0, 1) and, if u < p, replaces group j for that batch. Only the
  drawn branch is computed (`tf.cond`).
* `suc_layers=n` with `finetune_suc=True` or `is_training=False`: the successor alone (stage 2,
  evaluation, prediction, export). Predecessor layers are not in this graph at all.

Variable names are exactly those of google-research/bert; successor modules live under
`bert/encoder/suc_layer_{j}/` with the same sub-names. Dense layers and LayerNorm are written with
`get_variable` + matmul (no tf.layers, no Keras).
"""

from __future__ import absolute_import
from __future__ import division
from __future__ import print_function

import collections
import copy
import json
import math
import re

import numpy as np
import tensorflow as tf

tf1 = tf.compat.v1

# Rules for the predecessor layer that initialises successor module j (group size r).
SUC_INIT_RULES = {
    "first": lambda j, r: j,  # layer j, as both reference implementations do
    "group_first": lambda j, r: j * r,  # first layer of group j
    "group_last": lambda j, r: j * r + r - 1,  # last layer of group j
}

_LAYER_RE = re.compile(r"^bert/encoder/layer_(\d+)/(.*)$")
_SUC_LAYER_RE = re.compile(r"^bert/encoder/suc_layer_(\d+)/(.*)$")

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


class BertConfig(object):
  """Configuration of a BertModel, with google-research/bert's field names."""

  REQUIRED_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size")

  def __init__(self,
               vocab_size,
               hidden_size=768,
               num_hidden_layers=12,
               num_attention_heads=12,
               intermediate_size=3072,
               hidden_act="gelu",
               hidden_dropout_prob=0.1,
               attention_probs_dropout_prob=0.1,
               max_position_embeddings=512,
               type_vocab_size=16,
               initializer_range=0.02):
    self.vocab_size = vocab_size
    self.hidden_size = hidden_size
    self.num_hidden_layers = num_hidden_layers
    self.num_attention_heads = num_attention_heads
    self.intermediate_size = intermediate_size
    self.hidden_act = hidden_act
    self.hidden_dropout_prob = hidden_dropout_prob
    self.attention_probs_dropout_prob = attention_probs_dropout_prob
    self.max_position_embeddings = max_position_embeddings
    self.type_vocab_size = type_vocab_size
    self.initializer_range = initializer_range
    self.validate()

  def validate(self):
    """Raises ValueError naming the field when a value is impossible."""
    for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                 "intermediate_size", "max_position_embeddings", "type_vocab_size"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError("bert config: %s must be a positive integer, got %r" % (name, value))
    if self.hidden_size % self.num_attention_heads != 0:
      raise ValueError("bert config: hidden_size (%d) is not a multiple of num_attention_heads (%d)"
                       % (self.hidden_size, self.num_attention_heads))
    for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
      value = getattr(self, name)
      if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError("bert config: %s must be in [0, 1), got %r" % (name, value))
    if not isinstance(self.initializer_range, (int, float)) or self.initializer_range <= 0:
      raise ValueError("bert config: initializer_range must be > 0, got %r" % self.initializer_range)
    get_activation(self.hidden_act)

  @classmethod
  def from_dict(cls, json_object):
    """Constructs a BertConfig from a dict; unknown keys are ignored, required ones checked."""
    missing = [k for k in cls.REQUIRED_FIELDS if k not in json_object]
    if missing:
      raise ValueError("bert config: missing field(s) %s" % ", ".join(missing))
    known = set(cls.__init__.__code__.co_varnames[1:cls.__init__.__code__.co_argcount])
    kwargs = {k: v for k, v in json_object.items() if k in known}
    return cls(**kwargs)

  @classmethod
  def from_json_file(cls, json_file):
    """Constructs a BertConfig from a json file; errors name the file."""
    try:
      with tf.io.gfile.GFile(json_file, "r") as reader:
        text = reader.read()
    except (tf.errors.NotFoundError, IOError, OSError):
      raise ValueError("%s: bert config file not found" % json_file)
    try:
      obj = json.loads(text)
    except ValueError as e:
      raise ValueError("%s: not valid JSON (%s)" % (json_file, e))
    if not isinstance(obj, dict):
      raise ValueError("%s: expected a JSON object" % json_file)
    try:
      return cls.from_dict(obj)
    except ValueError as e:
      raise ValueError("%s: %s" % (json_file, e))

  def to_dict(self):
    return copy.deepcopy(self.__dict__)

  def to_json_string(self):
    return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"


def get_activation(activation_string):
  """Maps an activation name to a function. Names follow Hugging Face's meaning.

  "gelu" is the exact erf GELU; "gelu_new" / "gelu_tanh" / "gelu_pytorch_tanh" the tanh
  approximation (what google-research/bert computes); "relu", "tanh", "linear" as named.
  """
  if not isinstance(activation_string, str):
    return activation_string
  act = activation_string.lower()
  if act == "gelu":
    return gelu
  if act in ("gelu_new", "gelu_tanh", "gelu_pytorch_tanh"):
    return gelu_tanh
  if act == "relu":
    return tf.nn.relu
  if act == "tanh":
    return tf.tanh
  if act in ("linear", ""):
    return None
  raise ValueError("bert config: unsupported hidden_act %r" % activation_string)


def gelu(x):
  """Exact Gaussian Error Linear Unit: x * Phi(x)."""
  return 0.5 * x * (1.0 + tf.math.erf(x / math.sqrt(2.0)))


def gelu_tanh(x):
  """The tanh approximation of GELU used by the original BERT."""
  cdf = 0.5 * (1.0 + tf.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * tf.pow(x, 3))))
  return x * cdf


def dropout(input_tensor, dropout_prob):
  if dropout_prob is None or dropout_prob == 0.0:
    return input_tensor
  return tf.nn.dropout(input_tensor, rate=dropout_prob)


def create_initializer(initializer_range=0.02):
  return tf1.truncated_normal_initializer(stddev=initializer_range)


def layer_norm(input_tensor, beta, gamma, epsilon=1e-12):
  """LayerNorm over the last axis with given beta / gamma variables."""
  mean, variance = tf.nn.moments(input_tensor, axes=[-1], keepdims=True)
  return (input_tensor - mean) * tf.math.rsqrt(variance + epsilon) * gamma + beta


def create_layer_norm_variables(name, width):
  """Creates `{name}/beta` and `{name}/gamma` ([width]) in the current variable scope."""
  with tf1.variable_scope(name):
    beta = tf1.get_variable("beta", [width], initializer=tf1.zeros_initializer())
    gamma = tf1.get_variable("gamma", [width], initializer=tf1.ones_initializer())
  return beta, gamma


def create_dense_variables(name, in_width, out_width, initializer_range):
  """Creates `{name}/kernel` [in_width, out_width] and `{name}/bias` [out_width]."""
  with tf1.variable_scope(name):
    kernel = tf1.get_variable("kernel", [in_width, out_width],
                              initializer=create_initializer(initializer_range))
    bias = tf1.get_variable("bias", [out_width], initializer=tf1.zeros_initializer())
  return kernel, bias


def dense(input_tensor, kernel, bias, activation=None):
  """[N, in] x [in, out] + [out] -> [N, out]."""
  output = tf.nn.bias_add(tf.matmul(input_tensor, kernel), bias)
  if activation is not None:
    output = activation(output)
  return output


def create_transformer_layer_variables(scope_name, config):
  """Creates the variables of one transformer layer under `scope_name` (current scope).

  Returns:
    dict from the sub-names in LAYER_VARIABLE_NAMES to variables.
  """
  h = config.hidden_size
  params = {}
  with tf1.variable_scope(scope_name):
    with tf1.variable_scope("attention"):
      with tf1.variable_scope("self"):
        for part in ("query", "key", "value"):
          k, b = create_dense_variables(part, h, h, config.initializer_range)
          params["attention/self/%s/kernel" % part] = k
          params["attention/self/%s/bias" % part] = b
      with tf1.variable_scope("output"):
        k, b = create_dense_variables("dense", h, h, config.initializer_range)
        params["attention/output/dense/kernel"] = k
        params["attention/output/dense/bias"] = b
        beta, gamma = create_layer_norm_variables("LayerNorm", h)
        params["attention/output/LayerNorm/beta"] = beta
        params["attention/output/LayerNorm/gamma"] = gamma
    with tf1.variable_scope("intermediate"):
      k, b = create_dense_variables("dense", h, config.intermediate_size, config.initializer_range)
      params["intermediate/dense/kernel"] = k
      params["intermediate/dense/bias"] = b
    with tf1.variable_scope("output"):
      k, b = create_dense_variables("dense", config.intermediate_size, h, config.initializer_range)
      params["output/dense/kernel"] = k
      params["output/dense/bias"] = b
      beta, gamma = create_layer_norm_variables("LayerNorm", h)
      params["output/LayerNorm/beta"] = beta
      params["output/LayerNorm/gamma"] = gamma
  return params


def transformer_layer(layer_input, attention_bias, params, batch_size, seq_length, config,
                      hidden_dropout_prob, attention_probs_dropout_prob):
  """Computes one transformer layer from existing variables.

  Args:
    layer_input: float Tensor [batch_size * seq_length, hidden_size].
    attention_bias: float Tensor [batch_size, 1, 1, seq_length]; 0 where attended, -10000 else.
    params: dict from create_transformer_layer_variables.
    batch_size, seq_length: scalar int Tensors (or ints).
    config: BertConfig.
    hidden_dropout_prob, attention_probs_dropout_prob: floats (0 when not training).

  Returns:
    float Tensor [batch_size * seq_length, hidden_size].
  """
  num_heads = config.num_attention_heads
  head_size = config.hidden_size // num_heads

  def to_heads(x):
    x = tf.reshape(x, [batch_size, seq_length, num_heads, head_size])
    return tf.transpose(x, [0, 2, 1, 3])  # [B, N, T, D]

  q = to_heads(dense(layer_input, params["attention/self/query/kernel"],
                     params["attention/self/query/bias"]))
  k = to_heads(dense(layer_input, params["attention/self/key/kernel"],
                     params["attention/self/key/bias"]))
  v = to_heads(dense(layer_input, params["attention/self/value/kernel"],
                     params["attention/self/value/bias"]))
  scores = tf.matmul(q, k, transpose_b=True) * (1.0 / math.sqrt(float(head_size)))  # [B, N, T, T]
  scores += attention_bias
  probs = dropout(tf.nn.softmax(scores), attention_probs_dropout_prob)
  context = tf.transpose(tf.matmul(probs, v), [0, 2, 1, 3])  # [B, T, N, D]
  context = tf.reshape(context, [batch_size * seq_length, config.hidden_size])

  attention_output = dense(context, params["attention/output/dense/kernel"],
                           params["attention/output/dense/bias"])
  attention_output = dropout(attention_output, hidden_dropout_prob)
  attention_output = layer_norm(attention_output + layer_input,
                                params["attention/output/LayerNorm/beta"],
                                params["attention/output/LayerNorm/gamma"])
  intermediate = dense(attention_output, params["intermediate/dense/kernel"],
                       params["intermediate/dense/bias"], get_activation(config.hidden_act))
  layer_output = dense(intermediate, params["output/dense/kernel"], params["output/dense/bias"])
  layer_output = dropout(layer_output, hidden_dropout_prob)
  return layer_norm(layer_output + attention_output, params["output/LayerNorm/beta"],
                    params["output/LayerNorm/gamma"])


def check_theseus_layers(num_hidden_layers, suc_layers):
  """Returns the group size r = L / n, raising ValueError when n does not fit L."""
  if isinstance(suc_layers, bool) or not isinstance(suc_layers, int) or suc_layers < 0:
    raise ValueError("suc_layers must be a non-negative integer, got %r" % (suc_layers,))
  if suc_layers == 0:
    return 0
  if suc_layers > num_hidden_layers:
    raise ValueError("suc_layers=%d is larger than the predecessor's %d layers"
                     % (suc_layers, num_hidden_layers))
  if num_hidden_layers % suc_layers != 0:
    raise ValueError("suc_layers=%d does not divide the predecessor's %d layers (choose one of %s)"
                     % (suc_layers, num_hidden_layers,
                        [d for d in range(1, num_hidden_layers + 1) if num_hidden_layers % d == 0]))
  return num_hidden_layers // suc_layers


def _check_rate(value, name):
  if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
    raise ValueError("%s must be in [0, 1], got %r" % (name, value))


def transformer_model_theseus(input_tensor,
                              attention_bias,
                              batch_size,
                              seq_length,
                              config,
                              suc_layers=0,
                              mode="predecessor",
                              replace_rate_prob=None,
                              hidden_dropout_prob=0.0,
                              attention_probs_dropout_prob=0.0,
                              branch_hook=None):
  """The encoder: predecessor layers, Theseus modules, or successor modules only.

  Args:
    input_tensor: float Tensor [batch_size * seq_length, hidden_size] (the embeddings).
    attention_bias: float Tensor [batch_size, 1, 1, seq_length].
    batch_size, seq_length: scalar int Tensors.
    config: BertConfig of the predecessor (num_hidden_layers = L).
    suc_layers: n, the number of successor modules (0 for the plain BERT).
    mode: "predecessor" (L layers `layer_i`), "theseus" (stage 1: n modules, each a tf.cond between
      successor j and predecessor group j) or "successor" (n `suc_layer_j` layers only).
    replace_rate_prob: float or scalar float Tensor p in [0, 1] (mode "theseus" only).
    hidden_dropout_prob, attention_probs_dropout_prob: dropout rates (0 when not training).
    branch_hook: optional callable(module_index, branch_name) -> list of ops, run inside the
      branch ("successor" or "predecessor") before its layers. For instrumentation and tests.

  Returns:
    (all_layer_outputs, replaced): a list of float Tensors [batch_size * seq_length, hidden_size],
    one per layer (predecessor: L) or per module (theseus, successor: n), and for "theseus" a
    bool Tensor [n] saying which modules were replaced this step (None otherwise).

  Raises:
    ValueError: n does not divide L, n > L, a constant rate outside [0, 1], an unknown mode.
  """
  num_layers = config.num_hidden_layers
  if mode not in ("predecessor", "theseus", "successor"):
    raise ValueError("unknown encoder mode %r" % (mode,))
  if mode == "predecessor":
    suc_layers = 0
  group_size = check_theseus_layers(num_layers, suc_layers)
  if mode != "predecessor" and suc_layers == 0:
    raise ValueError("mode %r needs suc_layers > 0" % mode)

  def run_layers(x, param_list):
    for params in param_list:
      # Ops named after their layer (layer_i / suc_layer_j), so profiles read per layer.
      with tf.name_scope(params["output/dense/kernel"].op.name.split("/")[-4]):
        x = transformer_layer(x, attention_bias, params, batch_size, seq_length, config,
                              hidden_dropout_prob, attention_probs_dropout_prob)
    return x

  if mode == "predecessor":
    return _stacked_layers(input_tensor, "layer_%d", num_layers, config, run_layers), None
  if mode == "successor":
    return _stacked_layers(input_tensor, "suc_layer_%d", suc_layers, config, run_layers), None
  return _theseus_modules(input_tensor, config, suc_layers, group_size, replace_rate_prob,
                          run_layers, branch_hook)


def _stacked_layers(input_tensor, name_pattern, num, config, run_layers):
  """`num` layers named name_pattern % i, one after the other; returns every layer's output."""
  outputs = []
  prev = input_tensor
  for i in range(num):
    params = create_transformer_layer_variables(name_pattern % i, config)
    prev = run_layers(prev, [params])
    outputs.append(prev)
  return outputs


def _theseus_modules(input_tensor, config, suc_layers, group_size, replace_rate_prob, run_layers,
                     branch_hook):
  """Stage 1: n modules, each successor j or predecessor group j as drawn this step (tf.cond).

  Returns:
    (module outputs: list of n Tensors, replaced: bool Tensor [n]).
  """
  if replace_rate_prob is None:
    raise ValueError("the Theseus graph needs replace_rate_prob")
  if not isinstance(replace_rate_prob, tf.Tensor):
    _check_rate(replace_rate_prob, "replace_rate_prob")
  p = tf.cast(replace_rate_prob, tf.float32)

  # Variables are created outside tf.cond; the branches only compute.
  pred_params = [create_transformer_layer_variables("layer_%d" % i, config)
                 for i in range(config.num_hidden_layers)]
  suc_params = [create_transformer_layer_variables("suc_layer_%d" % j, config)
                for j in range(suc_layers)]
  outputs, replaced = [], []
  prev = input_tensor
  for j in range(suc_layers):
    group = pred_params[j * group_size:(j + 1) * group_size]
    use_successor = tf.less(tf.random.uniform([], 0.0, 1.0, name="replace_draw_%d" % j), p)
    replaced.append(use_successor)

    def successor_branch(x=prev, j=j):
      with tf.control_dependencies(branch_hook(j, "successor") if branch_hook else []):
        x = tf.identity(x)
      return run_layers(x, [suc_params[j]])

    def predecessor_branch(x=prev, j=j, group=group):
      with tf.control_dependencies(branch_hook(j, "predecessor") if branch_hook else []):
        x = tf.identity(x)
      return run_layers(x, group)

    prev = tf.cond(use_successor, successor_branch, predecessor_branch, name="theseus_module_%d" % j)
    outputs.append(prev)
  return outputs, tf.stack(replaced)


def get_replace_rate(global_step, scheduler_type="constant", base_rate=0.5, k=0.0,
                     steps_for_replacing=0):
  """The replace rate p as a float32 scalar Tensor computed from global_step in the graph.

  constant: p = base_rate, and 1.0 from step `steps_for_replacing` on when that is > 0.
  linear:   p = min(1.0, base_rate + k * global_step).

  Because p is a function of global_step only, a resumed run continues the same schedule.
  """
  _check_rate(base_rate, "replacing_rate")
  if scheduler_type not in ("constant", "linear"):
    raise ValueError("scheduler_type must be 'constant' or 'linear', got %r" % (scheduler_type,))
  step = tf.cast(global_step, tf.float32)
  if scheduler_type == "constant":
    if not isinstance(steps_for_replacing, int) or steps_for_replacing < 0:
      raise ValueError("steps_for_replacing must be a non-negative integer, got %r"
                       % (steps_for_replacing,))
    rate = tf.constant(float(base_rate), tf.float32)
    if steps_for_replacing > 0:
      rate = tf.where(step >= float(steps_for_replacing), tf.constant(1.0), rate)
    return tf.identity(rate, name="replace_rate")
  if not isinstance(k, (int, float)) or k < 0.0 or k > 1.0:
    raise ValueError("scheduler_linear_k must be in [0, 1], got %r" % (k,))
  return tf.minimum(1.0, float(base_rate) + float(k) * step, name="replace_rate")


def _embeddings(config, input_ids, token_type_ids, seq_length, hidden_dropout_prob):
  """Word + token type + position embeddings, LayerNorm and dropout (current variable scope).

  Args:
    config: BertConfig.
    input_ids, token_type_ids: int32 Tensors [batch_size, seq_length].
    seq_length: scalar int Tensor (at most max_position_embeddings, checked when run).
    hidden_dropout_prob: dropout rate (0 when not training).

  Returns:
    (word embedding table [vocab_size, hidden_size], embeddings [batch_size, seq_length,
    hidden_size]).
  """
  embedding_table = tf1.get_variable(
      "word_embeddings", [config.vocab_size, config.hidden_size],
      initializer=create_initializer(config.initializer_range))
  token_type_table = tf1.get_variable(
      "token_type_embeddings", [config.type_vocab_size, config.hidden_size],
      initializer=create_initializer(config.initializer_range))
  position_table = tf1.get_variable(
      "position_embeddings", [config.max_position_embeddings, config.hidden_size],
      initializer=create_initializer(config.initializer_range))
  beta, gamma = create_layer_norm_variables("LayerNorm", config.hidden_size)

  assert_len = tf1.assert_less_equal(
      seq_length, config.max_position_embeddings,
      message="sequence longer than max_position_embeddings")
  with tf.control_dependencies([assert_len]):
    positions = tf.slice(position_table, [0, 0], tf.stack([seq_length, -1]))
  embeddings = (tf.gather(embedding_table, input_ids) +
                tf.gather(token_type_table, token_type_ids) +
                tf.expand_dims(positions, 0))
  embeddings = layer_norm(embeddings, beta, gamma)
  return embedding_table, dropout(embeddings, hidden_dropout_prob)


class BertModel(object):
  """BERT (predecessor, Theseus or successor graph).

  Example:
    model = BertModel(config, is_training=True, input_ids=ids, input_mask=mask,
                      token_type_ids=segments, suc_layers=3,
                      replace_rate_prob=get_replace_rate(global_step, "linear", 0.3, 1e-4))
    pooled = model.get_pooled_output()  # [batch_size, hidden_size]
  """

  def __init__(self,
               config,
               is_training,
               input_ids,
               input_mask=None,
               token_type_ids=None,
               suc_layers=0,
               replace_rate_prob=None,
               finetune_suc=False,
               scope=None,
               branch_hook=None,
               encoder_fn=None):
    """Builds the graph.

    Args:
      config: BertConfig of the predecessor (num_hidden_layers = L).
      is_training: bool; dropout is on only when True. With suc_layers > 0 and False, the graph
        is the successor alone (evaluation / prediction / export).
      input_ids: int32 Tensor [batch_size, seq_length]; seq_length may be dynamic.
      input_mask: optional int32 Tensor [batch_size, seq_length], 1 for real tokens.
      token_type_ids: optional int32 Tensor [batch_size, seq_length].
      suc_layers: n successor modules; 0 builds the plain L-layer BERT.
      replace_rate_prob: p, float or scalar Tensor, for the Theseus graph.
      finetune_suc: with suc_layers > 0, build the successor-only graph (stage 2).
      scope: variable scope, default "bert".
      branch_hook: see transformer_model_theseus.
      encoder_fn: the encoder, a callable with the signature and return value of
        transformer_model_theseus (the default), e.g. a reference variant for a benchmark.
    """
    config = copy.deepcopy(config)
    hidden_dropout_prob = config.hidden_dropout_prob if is_training else 0.0
    attention_dropout_prob = config.attention_probs_dropout_prob if is_training else 0.0
    check_theseus_layers(config.num_hidden_layers, suc_layers)
    if suc_layers == 0:
      self.mode = "predecessor"
    elif is_training and not finetune_suc:
      self.mode = "theseus"
    else:
      self.mode = "successor"

    input_ids = tf.convert_to_tensor(input_ids)
    shape = tf.shape(input_ids)
    batch_size, seq_length = shape[0], shape[1]
    if input_mask is None:
      input_mask = tf.ones_like(input_ids)
    if token_type_ids is None:
      token_type_ids = tf.zeros_like(input_ids)

    with tf1.variable_scope(scope, default_name="bert"):
      with tf1.variable_scope("embeddings"):
        self.embedding_table, self.embedding_output = _embeddings(
            config, input_ids, token_type_ids, seq_length, hidden_dropout_prob)  # [B, T, H]

      with tf1.variable_scope("encoder"):
        mask = tf.cast(tf.reshape(input_mask, [batch_size, 1, 1, seq_length]), tf.float32)
        attention_bias = (1.0 - mask) * -10000.0
        flat_input = tf.reshape(self.embedding_output, [batch_size * seq_length, config.hidden_size])
        encoder_fn = encoder_fn or transformer_model_theseus
        layer_outputs, self.replaced_modules = encoder_fn(
            flat_input, attention_bias, batch_size, seq_length, config, suc_layers=suc_layers,
            mode=self.mode, replace_rate_prob=replace_rate_prob,
            hidden_dropout_prob=hidden_dropout_prob,
            attention_probs_dropout_prob=attention_dropout_prob, branch_hook=branch_hook)
        self.all_encoder_layers = [
            tf.reshape(x, [batch_size, seq_length, config.hidden_size]) for x in layer_outputs]
      self.sequence_output = self.all_encoder_layers[-1]

      with tf1.variable_scope("pooler"):
        first_token = self.sequence_output[:, 0, :]
        kernel, bias = create_dense_variables("dense", config.hidden_size, config.hidden_size,
                                              config.initializer_range)
        self.pooled_output = dense(first_token, kernel, bias, tf.tanh)

  def get_pooled_output(self):
    """float Tensor [batch_size, hidden_size]: tanh(dense([CLS] output))."""
    return self.pooled_output

  def get_sequence_output(self):
    """float Tensor [batch_size, seq_length, hidden_size]: the last encoder output."""
    return self.sequence_output

  def get_all_encoder_layers(self):
    """List of [batch_size, seq_length, hidden_size]: one per layer (L) or module (n)."""
    return self.all_encoder_layers

  def get_embedding_output(self):
    """float Tensor [batch_size, seq_length, hidden_size]: embeddings after LayerNorm/dropout."""
    return self.embedding_output

  def get_embedding_table(self):
    return self.embedding_table


def _checkpoint_variables(init_checkpoint):
  """Returns OrderedDict name -> shape of the checkpoint's variables (ValueError if missing)."""
  try:
    return collections.OrderedDict(tf.train.list_variables(init_checkpoint))
  except (tf.errors.NotFoundError, ValueError, tf.errors.DataLossError) as e:
    raise ValueError("%s: cannot read checkpoint (%s)" % (init_checkpoint, str(e).splitlines()[0]))


def _graph_name(var):
  return re.sub(r":\d+$", "", var.name)


def _check_shape(var, ckpt_name, ckpt_shape, init_checkpoint):
  if list(var.shape.as_list()) != list(ckpt_shape):
    raise ValueError("%s: variable %s has shape %s in the checkpoint but %s in the graph (%s)"
                     % (init_checkpoint, ckpt_name, list(ckpt_shape), var.shape.as_list(),
                        _graph_name(var)))


def get_assignment_map_from_checkpoint(tvars, init_checkpoint):
  """Maps each graph variable to the checkpoint variable of the same name.

  Args:
    tvars: list of variables.
    init_checkpoint: checkpoint path (prefix).

  Returns:
    (assignment_map, initialized_variable_names): an OrderedDict checkpoint name -> variable,
    and a dict of the graph names that will be loaded (name -> 1, also with ":0").

  Raises:
    ValueError: unreadable checkpoint or a shape that disagrees with the graph.
  """
  ckpt_vars = _checkpoint_variables(init_checkpoint)
  assignment_map = collections.OrderedDict()
  initialized_variable_names = {}
  for var in tvars:
    name = _graph_name(var)
    if name not in ckpt_vars:
      continue
    _check_shape(var, name, ckpt_vars[name], init_checkpoint)
    assignment_map[name] = var
    initialized_variable_names[name] = 1
    initialized_variable_names[name + ":0"] = 1
  return assignment_map, initialized_variable_names


def checkpoint_layer_counts(init_checkpoint):
  """Returns (number of `layer_i` layers, number of `suc_layer_j` modules) in a checkpoint."""
  ckpt_vars = _checkpoint_variables(init_checkpoint)
  layers, suc = set(), set()
  for name in ckpt_vars:
    m = _LAYER_RE.match(name)
    if m:
      layers.add(int(m.group(1)))
    m = _SUC_LAYER_RE.match(name)
    if m:
      suc.add(int(m.group(1)))
  return len(layers), len(suc)


def get_assignment_map_from_checkpoint_for_theseus(tvars, init_checkpoint, suc_init="first"):
  """Assignment maps for the Theseus and successor graphs.

  Every graph variable is loaded from the checkpoint variable of the same name when there is one.
  Successor modules (`suc_layer_j`) are then filled as follows:
    * the checkpoint holds `suc_layer_*` (a stage-1 checkpoint): loaded by name;
    * the checkpoint holds exactly n plain layers, n the graph's successor modules (an exported
      successor): suc_layer_j <- layer_j;
    * otherwise (a predecessor with L = n * r layers): suc_layer_j <- layer_{rule(j)}, with the
      rule `suc_init`: "first" -> j, "group_first" -> j * r, "group_last" -> j * r + r - 1.

  Args:
    tvars: list of graph variables.
    init_checkpoint: checkpoint path.
    suc_init: one of SUC_INIT_RULES.

  Returns:
    (assignment_map, suc_assignment_map, initialized_variable_names). Both maps are OrderedDicts
    checkpoint name -> variable (two maps because one checkpoint variable, e.g. layer_0, may
    initialise both layer_0 and suc_layer_0).

  Raises:
    ValueError: unknown rule, unreadable checkpoint, shapes that disagree, or a checkpoint whose
      layer count does not fit the graph's successor modules.
  """
  if suc_init not in SUC_INIT_RULES:
    raise ValueError("suc_init must be one of %s, got %r" % (sorted(SUC_INIT_RULES), suc_init))
  ckpt_vars = _checkpoint_variables(init_checkpoint)
  assignment_map, initialized_variable_names = get_assignment_map_from_checkpoint(
      tvars, init_checkpoint)
  suc_vars = {}
  for var in tvars:
    m = _SUC_LAYER_RE.match(_graph_name(var))
    if m:
      suc_vars[(int(m.group(1)), m.group(2))] = var
  suc_assignment_map = collections.OrderedDict()
  if not suc_vars:
    return assignment_map, suc_assignment_map, initialized_variable_names
  num_suc = 1 + max(j for j, _ in suc_vars)
  ckpt_layers, ckpt_suc = checkpoint_layer_counts(init_checkpoint)
  if ckpt_suc:
    if ckpt_suc != num_suc:
      raise ValueError("%s: checkpoint has %d successor modules but the graph has %d"
                       % (init_checkpoint, ckpt_suc, num_suc))
    return assignment_map, suc_assignment_map, initialized_variable_names  # loaded by name
  if ckpt_layers == 0:
    raise ValueError("%s: checkpoint has no encoder layers to initialise the successor from"
                     % init_checkpoint)
  if ckpt_layers == num_suc:
    source = {j: j for j in range(num_suc)}
  else:
    group_size = check_theseus_layers(ckpt_layers, num_suc)
    source = {j: SUC_INIT_RULES[suc_init](j, group_size) for j in range(num_suc)}
  for (j, sub), var in sorted(suc_vars.items(), key=lambda kv: (kv[0][0], kv[0][1])):
    ckpt_name = "bert/encoder/layer_%d/%s" % (source[j], sub)
    if ckpt_name not in ckpt_vars:
      raise ValueError("%s: missing %s needed for %s" % (init_checkpoint, ckpt_name,
                                                          _graph_name(var)))
    _check_shape(var, ckpt_name, ckpt_vars[ckpt_name], init_checkpoint)
    suc_assignment_map[ckpt_name] = var
    initialized_variable_names[_graph_name(var)] = 1
    initialized_variable_names[_graph_name(var) + ":0"] = 1
  return assignment_map, suc_assignment_map, initialized_variable_names


def init_from_checkpoint_for_theseus(tvars, init_checkpoint, suc_init="first"):
  """Sets the initialisers of `tvars` from `init_checkpoint` (see the assignment-map rules).

  Returns initialized_variable_names.
  """
  assignment_map, suc_assignment_map, initialized = get_assignment_map_from_checkpoint_for_theseus(
      tvars, init_checkpoint, suc_init)
  if assignment_map:
    tf1.train.init_from_checkpoint(init_checkpoint, assignment_map)
  if suc_assignment_map:
    tf1.train.init_from_checkpoint(init_checkpoint, suc_assignment_map)
  return initialized


def count_parameters(variables):
  """Total number of scalars in `variables`."""
  return int(sum(np.prod(v.shape.as_list()) for v in variables))
