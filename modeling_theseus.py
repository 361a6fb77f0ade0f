"""BERT with progressive module replacing (BERT-of-Theseus), for tf.compat.v1 graph mode.

One code path builds three graphs:

* `suc_layers=0`: the plain L-layer BERT (the predecessor, or any BERT).
* `suc_layers=n`, `is_training=True`, `finetune_suc=False`: the Theseus graph of stage 1. The L
  predecessor layers are cut into n groups of r = L / n consecutive layers; at every step each
  successor module j draws u_j ~ U(0, 1) and, if u_j < p, replaces group j for that batch. Only
  the drawn branch is computed (`tf.cond`). The draw is stateless, a function of (seed, step):
  every replica of a distributed run, and a resumed run, draws the same modules.
* `suc_layers=n` with `finetune_suc=True` or `is_training=False`: the successor alone (stage 2,
  evaluation, prediction, export). Predecessor layers are not in this graph at all.

Variable names are exactly those of google-research/bert; successor modules live under
`bert/encoder/suc_layer_{j}/` with the same sub-names. Dense layers and LayerNorm are written with
`get_variable` + matmul (no tf.layers, no Keras).

Mixed precision (`compute_dtype` bfloat16 or float16): the encoder layers compute in that type
from float32 variables (cast where they are read); LayerNorm, the attention softmax, the
embeddings, the pooler and everything after the encoder stay float32.
"""

import collections
import contextlib
import copy
import json
import math
import re

import numpy as np
import tensorflow as tf
# TensorFlow 2's implementation of tf.cond (a functional If), used in every control-flow mode.
from tensorflow.python.ops import cond_v2  # pylint: disable=g-direct-tensorflow-import

from theseus import dropout as dropout_lib
from theseus import layer_norm as layer_norm_lib
from theseus import names
from theseus.stage import SUC_INIT_RULES
from theseus.stage import Stage

tf1 = tf.compat.v1

LAYER_VARIABLE_NAMES = names.LAYER_VARIABLE_NAMES


# The bert_config.json field that says which GELU "gelu" is (see BertConfig).
GELU_APPROXIMATE_FIELD = "gelu_approximate"


class BertConfig(object):
  """Configuration of a BertModel, with google-research/bert's field names.

  Read as google-research/bert reads it: construction and from_dict check nothing but the
  presence of the fields that fix the shapes, and every other field of the JSON (the
  `directionality` and `pooler_*` fields of the Chinese and multilingual releases, ...) is kept
  and written back by to_dict. `validate` checks the values; BertModel calls it.

  hidden_act "gelu" is GELU as google-research/bert computes it, the tanh approximation, which
  Google's checkpoints were trained with, unless the field `gelu_approximate` is "none": then it
  is the exact erf GELU (Hugging Face's "gelu"), which the converter writes for Hugging Face
  models. Google's modeling.py ignores that field, so every bert_config.json the project writes
  builds there. "gelu_new", "gelu_tanh" and "gelu_pytorch_tanh" are read as the tanh GELU too.
  """

  REQUIRED_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size")

  def __init__(self, vocab_size, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
               intermediate_size=3072, hidden_act="gelu", hidden_dropout_prob=0.1,
               attention_probs_dropout_prob=0.1, max_position_embeddings=512, type_vocab_size=16,
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

  def validate(self):
    """Raises ValueError naming the field when a value is impossible for a model."""
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
    hidden_activation(self)

  @classmethod
  def from_dict(cls, json_object):
    """Constructs a BertConfig from a dict, keeping every field; the required ones must be there."""
    missing = [k for k in cls.REQUIRED_FIELDS if k not in json_object]
    if missing:
      raise ValueError("bert config: missing field(s) %s" % ", ".join(missing))
    config = cls(vocab_size=None)
    config.__dict__.update(copy.deepcopy(dict(json_object)))
    return config

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
  """Maps an activation name to a function, as google-research/bert does.

  "gelu" ("gelu_new", "gelu_tanh", "gelu_pytorch_tanh") is the tanh GELU, "gelu_exact" the erf
  one, the others as named; a function is returned as it is. See hidden_activation(config).
  """
  if not isinstance(activation_string, str):
    return activation_string
  functions = {"gelu": gelu, "gelu_new": gelu, "gelu_tanh": gelu, "gelu_pytorch_tanh": gelu,
               "gelu_exact": gelu_exact, "relu": tf.nn.relu, "tanh": tf.tanh, "linear": None,
               "": None}
  if activation_string.lower() not in functions:
    raise ValueError("bert config: unsupported hidden_act %r" % activation_string)
  return functions[activation_string.lower()]


def hidden_activation(config):
  """The activation function of `config`'s intermediate layers (see BertConfig on "gelu")."""
  approximate = getattr(config, GELU_APPROXIMATE_FIELD, "tanh")
  if approximate not in ("tanh", "none"):
    raise ValueError("bert config: %s must be \"tanh\" or \"none\", got %r"
                     % (GELU_APPROXIMATE_FIELD, approximate))
  if config.hidden_act == "gelu" and approximate == "none":
    return gelu_exact
  return get_activation(config.hidden_act)


def gelu(x):
  """GELU as google-research/bert computes it: the tanh approximation, in tf.nn.gelu's form
  (oneDNN fuses it into its MatMul in inference graphs; google-research/bert's form it does not)."""
  return tf.nn.gelu(x, approximate=True)


def gelu_exact(x):
  """Exact Gaussian Error Linear Unit: x * Phi(x) (Hugging Face's "gelu")."""
  return 0.5 * x * (1.0 + tf.math.erf(x / math.sqrt(2.0)))


def dropout(input_tensor, dropout_prob):
  return dropout_lib.dropout(input_tensor, dropout_prob)  # keyed inside dropout_lib.dropout_key


def create_initializer(initializer_range=0.02):
  return tf1.truncated_normal_initializer(stddev=initializer_range)


def apply_layer_norm(input_tensor, beta, gamma, epsilon=1e-12):
  """LayerNorm over the last axis with given beta / gamma variables, computed in float32
  (element-wise, or fused inside theseus.layer_norm.fused_layer_norms()).

  Returns a Tensor of input_tensor's dtype.
  """
  return layer_norm_lib.layer_norm(input_tensor, beta, gamma, epsilon)


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


# The dense layers and LayerNorms of one transformer layer, in the order they are created:
# (scope under the layer, input width, output width), "h" hidden, "i" intermediate; None for a
# LayerNorm.
_LAYER_PARTS = (("attention/self/query", "h", "h"), ("attention/self/key", "h", "h"),
                ("attention/self/value", "h", "h"), ("attention/output/dense", "h", "h"),
                ("attention/output/LayerNorm", None, None), ("intermediate/dense", "h", "i"),
                ("output/dense", "i", "h"), ("output/LayerNorm", None, None))


def create_transformer_layer_variables(scope_name, config):
  """Creates the variables of one transformer layer under `scope_name` (current scope).

  Returns:
    dict from the sub-names in LAYER_VARIABLE_NAMES to variables.
  """
  widths = {"h": config.hidden_size, "i": config.intermediate_size}
  params = {}
  with tf1.variable_scope(scope_name):
    for part, width_in, width_out in _LAYER_PARTS:
      scopes, leaf = part.split("/")[:-1], part.split("/")[-1]
      with contextlib.ExitStack() as stack:
        for scope in scopes:
          stack.enter_context(tf1.variable_scope(scope))
        if width_in is None:
          values = create_layer_norm_variables(leaf, config.hidden_size)
          names_of = ("beta", "gamma")
        else:
          values = create_dense_variables(leaf, widths[width_in], widths[width_out],
                                          config.initializer_range)
          names_of = ("kernel", "bias")
      for name, value in zip(names_of, values):
        params["%s/%s" % (part, name)] = value
  return params


def attention_context(query, key, value, attention_bias, batch_size, from_seq_length,
                      to_seq_length, num_heads, head_size, attention_probs_dropout_prob,
                      return_attention=False):
  """Scaled dot-product attention over heads, from projected queries, keys and values.

  The scores are added to the bias and normalised in float32 whatever the inputs' dtype.

  Args:
    query: float Tensor [batch_size * from_seq_length, num_heads * head_size].
    key, value: float Tensors [batch_size * to_seq_length, num_heads * head_size].
    attention_bias: float32 Tensor broadcastable to [batch_size, num_heads, from_seq_length,
      to_seq_length] (0 where attended, -10000 else), or None.
    batch_size, from_seq_length, to_seq_length: ints or scalar int Tensors.
    num_heads, head_size: ints.
    attention_probs_dropout_prob: dropout on the attention probabilities (0 when not training).
    return_attention: also return the attention probabilities (before dropout, float32
      [batch_size, num_heads, from_seq_length, to_seq_length]) and the values ([batch_size,
      num_heads, to_seq_length, head_size]).

  Returns:
    float Tensor [batch_size * from_seq_length, num_heads * head_size] (and the two above).
  """

  def to_heads(x, seq_length):
    x = tf.reshape(x, [batch_size, seq_length, num_heads, head_size])
    return tf.transpose(x, [0, 2, 1, 3])  # [B, N, T, D]

  q = to_heads(query, from_seq_length)
  k = to_heads(key, to_seq_length)
  v = to_heads(value, to_seq_length)
  scores = tf.cast(tf.matmul(q, k, transpose_b=True) * (1.0 / math.sqrt(float(head_size))),
                   tf.float32)  # [B, N, F, T]
  if attention_bias is not None:
    scores += attention_bias
  raw_probs = tf.nn.softmax(scores)
  probs = tf.cast(dropout(raw_probs, attention_probs_dropout_prob), v.dtype)
  context = tf.transpose(tf.matmul(probs, v), [0, 2, 1, 3])  # [B, F, N, D]
  context = tf.reshape(context, [batch_size * from_seq_length, num_heads * head_size])
  return (context, raw_probs, v) if return_attention else context


def transformer_layer(layer_input, attention_bias, params, batch_size, seq_length, config,
                      hidden_dropout_prob, attention_probs_dropout_prob, return_attention=False,
                      first_token_only=False):
  """Computes one transformer layer from existing variables.

  Args:
    layer_input: float Tensor [batch_size * seq_length, hidden_size].
    attention_bias: float Tensor [batch_size, 1, 1, seq_length]; 0 where attended, -10000 else.
    params: dict from create_transformer_layer_variables.
    batch_size, seq_length: scalar int Tensors (or ints).
    config: BertConfig.
    hidden_dropout_prob, attention_probs_dropout_prob: floats (0 when not training).
    return_attention: also return the attention probabilities and values (attention_context).
    first_token_only: only each sequence's first token attends (to every token) and goes on.

  Returns:
    float Tensor [batch_size * F, hidden_size], F = 1 with first_token_only (the full layer's
    first tokens), else seq_length (and the layer's attention).
  """
  num_heads = config.num_attention_heads
  from_rows, from_length = layer_input, seq_length
  if first_token_only:
    from_rows, from_length = tf.reshape(layer_input, [batch_size, seq_length, -1])[:, 0], 1
  q, k, v = [dense(rows, params["attention/self/%s/kernel" % part],
                   params["attention/self/%s/bias" % part])
             for rows, part in ((from_rows, "query"), (layer_input, "key"), (layer_input, "value"))]
  attention = attention_context(q, k, v, attention_bias, batch_size, from_length, seq_length,
                                num_heads, config.hidden_size // num_heads,
                                attention_probs_dropout_prob, return_attention)
  context = attention[0] if return_attention else attention  # [B * F, H]

  attention_output = dense(context, params["attention/output/dense/kernel"],
                           params["attention/output/dense/bias"])
  attention_output = dropout(attention_output, hidden_dropout_prob)
  attention_output = apply_layer_norm(attention_output + from_rows,
                                      params["attention/output/LayerNorm/beta"],
                                      params["attention/output/LayerNorm/gamma"])
  intermediate = dense(attention_output, params["intermediate/dense/kernel"],
                       params["intermediate/dense/bias"], hidden_activation(config))
  layer_output = dense(intermediate, params["output/dense/kernel"], params["output/dense/bias"])
  layer_output = dropout(layer_output, hidden_dropout_prob)
  output = apply_layer_norm(layer_output + attention_output, params["output/LayerNorm/beta"],
                            params["output/LayerNorm/gamma"])
  return (output,) + tuple(attention[1:]) if return_attention else output


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


def replace_draw_seed(seed, counter):
  """The key of one stage-1 draw: int64 Tensor [2] from a run's seed and a step counter."""
  return tf.stack([tf.cast(seed, tf.int64), tf.cast(counter, tf.int64)], name="replace_draw_seed")


def default_replace_draw_seed():
  """(the graph-level seed or 0, global_step): one draw per update of a graph's global_step.

  Creates the graph's global_step (at the root scope, named `global_step`) if it has none.
  """
  global_step = tf1.train.get_global_step()
  if global_step is None:
    with tf1.variable_scope(tf1.VariableScope(reuse=False), auxiliary_name_scope=False):
      global_step = tf1.train.create_global_step()
  return replace_draw_seed(tf1.get_default_graph().seed or 0, global_step)


def draw_replacements(num_modules, replace_rate_prob, draw_seed):
  """Which modules the successor replaces in this step: bool Tensor [num_modules].

  Module j is replaced when u_j < p, u = U(0, 1)^n from the stateless generator keyed by
  draw_seed: the same key gives the same draw in every process. The draw is kept out of XLA
  clusters (XLA's stateless generator gives other numbers for the same key).
  """
  p = tf.cast(replace_rate_prob, tf.float32)
  outside_xla = (contextlib.nullcontext() if tf.executing_eagerly() else
                 tf.xla.experimental.jit_scope(compile_ops=False))
  with outside_xla:
    u = tf.random.stateless_uniform([num_modules], seed=draw_seed, name="replace_draw")
    return tf.less(u, p)


def transformer_model_theseus(input_tensor, attention_bias, batch_size, seq_length, config,
                              suc_layers=0, mode="predecessor", replace_rate_prob=None,
                              hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                              branch_hook=None, replace_draw_seed=None, expose_attention=False,
                              module_teacher=None, extras=None, first_token_only=False):
  """The encoder (predecessor layers, Theseus modules or successor modules); ValueError when n
  does not divide L, n > L, a rate is outside [0, 1] or the mode is unknown.

  Args:
    input_tensor: float Tensor [batch_size * seq_length, hidden_size] (the embeddings);
      attention_bias [batch_size, 1, 1, seq_length]; batch_size, seq_length: int Tensors.
    config: the predecessor's BertConfig (L layers); suc_layers: n modules (0: a plain BERT).
    mode: "predecessor" (L layers `layer_i`), "theseus" (stage 1: n modules, each a cond
      between successor j and predecessor group j) or "successor" (n `suc_layer_j` only).
    replace_rate_prob: float or scalar float Tensor p in [0, 1] (mode "theseus" only);
      hidden_dropout_prob, attention_probs_dropout_prob: dropout rates (0 when not training).
    branch_hook: optional callable(j, "successor" | "predecessor") -> ops run first in it.
    replace_draw_seed: int Tensor [2], the step's draw key (default_replace_draw_seed()).
    expose_attention: extras["attention_probs"] / ["values"] get each layer's (module's last
      layer's) attention probabilities [B, N, T, T] and values [B, N, T, D] (float32).
    module_teacher: "theseus" only: callable(j, student, teacher) -> float32 scalar of
      (output, probs, values) of successor j and of group j on its input (dropout off, no
      gradient), for the modules that drew the successor (else 0): extras["module_losses"].
    extras: the dict the two options above fill.
    first_token_only: layer_{L-1} / suc_layer_{n-1} compute the first tokens only: [B, H].

  Returns:
    (all_layer_outputs, replaced): float Tensors [batch_size * seq_length, hidden_size], one per
    layer (L) or module (n), and for "theseus" the bool Tensor [n] of the modules replaced.
  """
  group_size = _encoder_group_size(config.num_hidden_layers, suc_layers, mode)

  def run_layers(x, param_list, with_attention=False, dropout=True):
    """x through the layers, ops named after each (profiles read per layer): the output (or
    with its last layer's attention probs, values)."""
    layer = (x,)
    for params in param_list:
      name = names.LAYER_SCOPE_RE.search(params["output/dense/kernel"].op.name).group(0)
      with tf.name_scope(name):
        out = transformer_layer(layer[0], attention_bias, params, batch_size, seq_length, config,
                                hidden_dropout_prob if dropout else 0.0,
                                attention_probs_dropout_prob if dropout else 0.0, with_attention,
                                first_token_only and name in (
                                    names.LAYER_PATTERN % (config.num_hidden_layers - 1),
                                    names.SUC_LAYER_PATTERN % (suc_layers - 1)))
      layer = out if with_attention else (out,)
    return layer if with_attention else layer[0]

  extras = {} if extras is None else extras
  extras.update(attention_probs=[], values=[], module_losses=[])
  attention = extras if expose_attention else None
  if mode != "theseus":
    plain = mode == "predecessor"
    return _stacked_layers(input_tensor, names.LAYER_PATTERN if plain else
                           names.SUC_LAYER_PATTERN, config.num_hidden_layers if plain else
                           suc_layers, config, run_layers, attention), None
  return _theseus_modules(input_tensor, config, suc_layers, group_size, replace_rate_prob,
                          default_replace_draw_seed() if replace_draw_seed is None else
                          replace_draw_seed, run_layers, branch_hook, attention, module_teacher,
                          extras)


def _encoder_group_size(num_layers, suc_layers, mode):
  """The group size r of an encoder graph (0 for "predecessor"); ValueError when it is wrong."""
  if mode not in ("predecessor", "theseus", "successor"):
    raise ValueError("unknown encoder mode %r" % (mode,))
  if mode == "predecessor":
    return check_theseus_layers(num_layers, 0)
  group_size = check_theseus_layers(num_layers, suc_layers)
  if suc_layers == 0:
    raise ValueError("mode %r needs suc_layers > 0" % mode)
  return group_size


def _stacked_layers(input_tensor, name_pattern, num, config, run_layers, attention=None):
  """`num` layers named name_pattern % i, one after the other; returns every layer's output.

  attention: optional dict whose "attention_probs" / "values" lists get each layer's.
  """
  outputs = []
  prev = input_tensor
  for i in range(num):
    params = create_transformer_layer_variables(name_pattern % i, config)
    prev = run_layers(prev, [params], attention is not None)
    if attention is not None:
      prev = _keep_attention(prev, attention)
    outputs.append(prev)
  return outputs


def _keep_attention(layer, attention):
  """Appends a layer's (output, probs, values) attention to the lists; returns its output."""
  attention["attention_probs"].append(layer[1])
  attention["values"].append(tf.cast(layer[2], tf.float32))
  return layer[0]


def _theseus_modules(input_tensor, config, suc_layers, group_size, replace_rate_prob, draw_seed,
                     run_layers, branch_hook, attention=None, module_teacher=None, extras=None):
  """Stage 1: n modules, each successor j or predecessor group j as drawn this step.

  The choice is a functional conditional (cond_v2) in every control-flow mode: classic TF1's
  tf.cond builds Switch / Merge ops, whose outputs oneDNN's remapper mis-fuses (fetches after a
  drawn successor failed: "Retval[0] does not have value"). The branches return the attention
  and the module loss only when asked: otherwise the graph is the plain one.

  Returns:
    (module outputs: list of n Tensors, replaced: bool Tensor [n]).
  """
  if replace_rate_prob is None:
    raise ValueError("the Theseus graph needs replace_rate_prob")
  if not isinstance(replace_rate_prob, tf.Tensor):
    _check_rate(replace_rate_prob, "replace_rate_prob")
  replaced = draw_replacements(suc_layers, replace_rate_prob, draw_seed)

  # Variables are created outside the conditional; the branches only compute.
  pred_params = [create_transformer_layer_variables(names.LAYER_PATTERN % i, config)
                 for i in range(config.num_hidden_layers)]
  suc_params = [create_transformer_layer_variables(names.SUC_LAYER_PATTERN % j, config)
                for j in range(suc_layers)]
  plain = attention is None and module_teacher is None
  outputs = []
  prev = input_tensor
  for j in range(suc_layers):
    group = pred_params[j * group_size:(j + 1) * group_size]

    def branch(x, params, which, teach, j=j, group=group):
      with tf.control_dependencies(branch_hook(j, which) if branch_hook else []):
        x = tf.identity(x)
      if plain:
        return run_layers(x, params)
      layer = run_layers(x, params, True)
      result = [layer[0]] + (list(layer[1:]) if attention is not None else [])
      if module_teacher is not None:
        result.append(module_teacher(j, layer, [tf.stop_gradient(t) for t in run_layers(
            tf.stop_gradient(x), group, True, dropout=False)]) if teach else tf.zeros([]))
      return result

    prev = cond_v2.cond_v2(replaced[j], lambda x=prev, j=j: branch(x, [suc_params[j]],
                                                                   "successor", True),
                           lambda x=prev, g=group: branch(x, g, "predecessor", False),
                           name="theseus_module_%d" % j)
    if not plain:
      if module_teacher is not None:
        extras["module_losses"].append(prev[-1])
      prev = _keep_attention(prev, attention) if attention is not None else prev[0]
    outputs.append(prev)
  return outputs, replaced


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


def _embeddings(config, input_ids, token_type_ids, seq_length, hidden_dropout_prob,
                use_one_hot_embeddings=False):
  """Word + token type + position embeddings, LayerNorm and dropout (current variable scope).

  input_ids, token_type_ids: int32 [batch_size, seq_length]; seq_length: scalar int Tensor (at
  most max_position_embeddings, checked when run); use_one_hot_embeddings: words by a one-hot
  matmul (as google-research/bert on TPUs; the same numbers) instead of a gather.

  Returns:
    (word embedding table [vocab_size, hidden_size], embeddings [batch_size, seq_length, H]).
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

  assert_len = _host_assert_less_equal(seq_length, config.max_position_embeddings,
                                      "sequence longer than max_position_embeddings")
  with tf.control_dependencies([assert_len]):
    positions = tf.slice(position_table, [0, 0], tf.stack([seq_length, -1]))
  if use_one_hot_embeddings:
    words = tf.einsum("btv,vh->bth", tf.one_hot(input_ids, config.vocab_size), embedding_table)
  else:
    words = tf.gather(embedding_table, input_ids)
  embeddings = (words +
                tf.gather(token_type_table, token_type_ids) +
                tf.expand_dims(positions, 0))
  embeddings = apply_layer_norm(embeddings, beta, gamma)
  return embedding_table, dropout(embeddings, hidden_dropout_prob)


COMPUTE_DTYPES = {"fp32": tf.float32, "bf16": tf.bfloat16, "fp16": tf.float16}


def compute_dtype_getter(compute_dtype):
  """A variable-scope custom getter that reads float32 variables as `compute_dtype`.

  LayerNorm variables are read as they are (LayerNorm computes in float32). None for float32.
  """
  if compute_dtype == tf.float32:
    return None
  if compute_dtype not in COMPUTE_DTYPES.values():
    raise ValueError("compute_dtype must be one of float32, bfloat16, float16, got %r"
                     % (compute_dtype,))

  def cast_getter(getter, name, *args, **kwargs):
    variable = getter(name, *args, **kwargs)
    if "LayerNorm" in name or variable.dtype.base_dtype != tf.float32:
      return variable
    with tf.name_scope(variable.op.name + "/"):  # the cast is named <variable>/Cast
      return tf.cast(variable, compute_dtype)

  return cast_getter


class BertModel(object):
  """BERT (predecessor, Theseus or successor graph).

  The first seven arguments are google-research/bert's, in its order:
    config: BertConfig of the predecessor (num_hidden_layers = L).
    is_training: bool; dropout is on only when True. With suc_layers > 0 and False, the graph
      is the successor alone (evaluation / prediction / export).
    input_ids: int32 Tensor [batch_size, seq_length]; seq_length may be dynamic.
    input_mask: optional int32 Tensor [batch_size, seq_length], 1 for real tokens.
    token_type_ids: optional int32 Tensor [batch_size, seq_length].
    use_one_hot_embeddings: word lookup by one-hot matmul (as on TPUs) instead of a gather.
    scope: variable scope, default "bert".
  Module replacing and how the encoder computes:
    suc_layers: n successor modules; 0 builds the plain L-layer BERT.
    replace_rate_prob: p, float or scalar Tensor, for the Theseus graph.
    finetune_suc: with suc_layers > 0, build the successor-only graph (stage 2).
    branch_hook: see transformer_model_theseus.
    encoder_fn: the encoder, a callable like transformer_model_theseus (the default).
    replace_draw_seed: the Theseus graph's draw key (see transformer_model_theseus).
    compute_dtype: tf.float32, tf.bfloat16 or tf.float16: the dtype the encoder layers compute
      in (see the module docstring). The outputs are float32 in every case.
    expose_attention, module_teacher: see transformer_model_theseus; the attention of every
      layer (module) and stage 1's module losses are then in `extras`.
    first_token_only: the last layer computes the first token only, for heads that read the
      pooled output alone (the same pooled output); the sequence output is then [B, 1, H].
      Not with expose_attention or module_teacher, whose losses read every token.

  Raises:
    ValueError: an impossible config (BertConfig.validate) or Theseus setting.
  """

  def __init__(self, config, is_training, input_ids, input_mask=None, token_type_ids=None,
               use_one_hot_embeddings=False, scope=None, suc_layers=0, replace_rate_prob=None,
               finetune_suc=False, branch_hook=None, encoder_fn=None, replace_draw_seed=None,
               compute_dtype=tf.float32, expose_attention=False, module_teacher=None,
               first_token_only=False):
    """Builds the graph (the arguments: see the class docstring)."""
    config = copy.deepcopy(config)
    config.validate()
    self.config, self.first_token_only = config, first_token_only
    if first_token_only and (expose_attention or module_teacher is not None):
      raise ValueError("first_token_only drops tokens that attention and module losses read")
    hidden_dropout_prob = config.hidden_dropout_prob if is_training else 0.0
    check_theseus_layers(config.num_hidden_layers, suc_layers)
    self.mode = Stage.of(suc_layers, finetune_suc).encoder_graph(is_training)

    input_ids = tf.convert_to_tensor(input_ids)
    shape = tf.shape(input_ids)
    batch_size, seq_length = shape[0], shape[1]
    if input_mask is None:
      input_mask = tf.ones_like(input_ids)
    if token_type_ids is None:
      token_type_ids = tf.zeros_like(input_ids)

    with tf1.variable_scope(scope, default_name="bert"):
      with tf1.variable_scope("embeddings"):
        self.embedding_table, self.embedding_output = _embeddings(  # [B, T, H]
            config, input_ids, token_type_ids, seq_length, hidden_dropout_prob,
            use_one_hot_embeddings)
      with tf1.variable_scope("encoder"):
        self.extras = {}  # the encoder's attention and module losses, when asked for
        self._build_encoder(input_mask, batch_size, seq_length, encoder_fn or
                            transformer_model_theseus, compute_dtype, dict(
                                suc_layers=suc_layers, mode=self.mode,
                                replace_rate_prob=replace_rate_prob,
                                hidden_dropout_prob=hidden_dropout_prob,
                                attention_probs_dropout_prob=(
                                    config.attention_probs_dropout_prob if is_training else 0.0),
                                branch_hook=branch_hook, replace_draw_seed=replace_draw_seed,
                                expose_attention=expose_attention,
                                module_teacher=module_teacher, extras=self.extras,
                                first_token_only=first_token_only))
      self.sequence_output = self.all_encoder_layers[-1]
      with tf1.variable_scope("pooler"):
        first_token = self.sequence_output[:, 0, :]
        kernel, bias = create_dense_variables("dense", config.hidden_size, config.hidden_size,
                                              config.initializer_range)
        self.pooled_output = dense(first_token, kernel, bias, tf.tanh)

  def _build_encoder(self, input_mask, batch_size, seq_length, encoder_fn, compute_dtype,
                     encoder_args):
    """Sets all_encoder_layers ([B, T, H] float32 each) and replaced_modules (stage 1)."""
    hidden_size = self.config.hidden_size
    mask = tf.cast(tf.reshape(input_mask, [batch_size, 1, 1, seq_length]), tf.float32)
    attention_bias = (1.0 - mask) * -10000.0
    flat_input = tf.reshape(self.embedding_output, [batch_size * seq_length, hidden_size])
    getter = compute_dtype_getter(compute_dtype)
    with (tf1.variable_scope(tf1.get_variable_scope(), custom_getter=getter) if getter
          else contextlib.nullcontext()):
      layer_outputs, self.replaced_modules = encoder_fn(
          tf.cast(flat_input, compute_dtype), attention_bias, batch_size, seq_length,
          self.config, **encoder_args)
    self.all_encoder_layers = [
        tf.reshape(tf.cast(x, tf.float32), [batch_size, -1, hidden_size])
        for x in layer_outputs]

  def get_pooled_output(self):
    """float Tensor [batch_size, hidden_size]: tanh(dense([CLS] output))."""
    return self.pooled_output

  def get_sequence_output(self):
    """float Tensor [batch_size, seq_length (1 with first_token_only), hidden_size]."""
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
  return names.layer_counts(_checkpoint_variables(init_checkpoint))


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
    m = names.SUC_LAYER_RE.match(_graph_name(var))
    if m:
      suc_vars[(int(m.group(1)), m.group(2))] = var
  suc_assignment_map = collections.OrderedDict()
  if not suc_vars:
    return assignment_map, suc_assignment_map, initialized_variable_names
  source = _successor_sources(init_checkpoint, 1 + max(j for j, _ in suc_vars), suc_init)
  if source is None:
    return assignment_map, suc_assignment_map, initialized_variable_names  # loaded by name
  for (j, sub), var in sorted(suc_vars.items(), key=lambda kv: (kv[0][0], kv[0][1])):
    ckpt_name = names.layer_variable(source[j], sub)
    if ckpt_name not in ckpt_vars:
      raise ValueError("%s: missing %s needed for %s" % (init_checkpoint, ckpt_name,
                                                          _graph_name(var)))
    _check_shape(var, ckpt_name, ckpt_vars[ckpt_name], init_checkpoint)
    suc_assignment_map[ckpt_name] = var
    initialized_variable_names[_graph_name(var)] = 1
    initialized_variable_names[_graph_name(var) + ":0"] = 1
  return assignment_map, suc_assignment_map, initialized_variable_names


def _successor_sources(init_checkpoint, num_suc, suc_init):
  """{j: the checkpoint layer that initialises successor j}, or None when the checkpoint holds
  the successor modules themselves (see get_assignment_map_from_checkpoint_for_theseus)."""
  ckpt_layers, ckpt_suc = checkpoint_layer_counts(init_checkpoint)
  if ckpt_suc:
    if ckpt_suc != num_suc:
      raise ValueError("%s: checkpoint has %d successor modules but the graph has %d"
                       % (init_checkpoint, ckpt_suc, num_suc))
    return None
  if ckpt_layers == 0:
    raise ValueError("%s: checkpoint has no encoder layers to initialise the successor from"
                     % init_checkpoint)
  if ckpt_layers == num_suc:
    return {j: j for j in range(num_suc)}
  group_size = check_theseus_layers(ckpt_layers, num_suc)
  return {j: SUC_INIT_RULES[suc_init](j, group_size) for j in range(num_suc)}


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


# ----------------------------------------------------------------------------------------------
# google-research/bert's modeling API, for code written against it: the same names, arguments,
# variable names and results. BertModel above builds its graph from the same pieces.

def _host_assert_less_equal(x, y, message):
  """tf1.assert_less_equal on the host CPU (its string constants have no GPU kernel)."""
  with tf.device("/device:CPU:0"):
    return tf1.assert_less_equal(x, y, message=message)


def assert_rank(tensor, expected_rank, name=None):
  """Raises ValueError unless `tensor` has rank `expected_rank` (an int or a list of ints)."""
  expected = [expected_rank] if isinstance(expected_rank, int) else list(expected_rank)
  rank = tensor.shape.ndims
  if rank not in expected:
    raise ValueError("For the tensor `%s` in scope `%s`, the actual rank `%d` (shape = %s) is "
                     "not equal to the expected rank `%s`" % (
                         name or tensor.name, tf1.get_variable_scope().name, rank,
                         tensor.shape, expected_rank))


def get_shape_list(tensor, expected_rank=None, name=None):
  """The shape of `tensor` as a list: ints where static, scalar int32 Tensors where dynamic."""
  if expected_rank is not None:
    assert_rank(tensor, expected_rank, name)
  shape = tensor.shape.as_list()
  if all(dim is not None for dim in shape):
    return shape
  dynamic = tf.shape(tensor)
  return [dynamic[i] if dim is None else dim for i, dim in enumerate(shape)]


def reshape_to_matrix(input_tensor):
  """[..., width] -> [N, width] (a rank-2 tensor is returned as it is)."""
  if input_tensor.shape.ndims < 2:
    raise ValueError("Input tensor must have at least rank 2. Shape = %s" % input_tensor.shape)
  if input_tensor.shape.ndims == 2:
    return input_tensor
  return tf.reshape(input_tensor, [-1, input_tensor.shape[-1]])


def reshape_from_matrix(output_tensor, orig_shape_list):
  """[N, width] -> orig_shape_list[:-1] + [width]."""
  if len(orig_shape_list) == 2:
    return output_tensor
  width = get_shape_list(output_tensor)[-1]
  return tf.reshape(output_tensor, list(orig_shape_list[:-1]) + [width])


def create_attention_mask_from_input_mask(from_tensor, to_mask):
  """float32 [batch_size, from_seq_length, to_seq_length] mask: 1 where `to_mask` is 1.

  Args:
    from_tensor: Tensor [batch_size, from_seq_length, ...].
    to_mask: int32 Tensor [batch_size, to_seq_length].
  """
  from_shape = get_shape_list(from_tensor, expected_rank=[2, 3])
  to_shape = get_shape_list(to_mask, expected_rank=2)
  to_mask = tf.cast(tf.reshape(to_mask, [to_shape[0], 1, to_shape[1]]), tf.float32)
  return tf.ones([from_shape[0], from_shape[1], 1], tf.float32) * to_mask


def layer_norm(input_tensor, name=None):
  """LayerNorm over the last axis with new `{name or LayerNorm}/beta, gamma` variables."""
  width = input_tensor.shape[-1]
  with tf1.variable_scope(name, default_name="LayerNorm"):
    beta = tf1.get_variable("beta", [width], initializer=tf1.zeros_initializer())
    gamma = tf1.get_variable("gamma", [width], initializer=tf1.ones_initializer())
  return apply_layer_norm(input_tensor, beta, gamma)


def layer_norm_and_dropout(input_tensor, dropout_prob, name=None):
  """layer_norm, then dropout."""
  return dropout(layer_norm(input_tensor, name), dropout_prob)


def embedding_lookup(input_ids, vocab_size, embedding_size=128, initializer_range=0.02,
                     word_embedding_name="word_embeddings", use_one_hot_embeddings=False):
  """Word embeddings: (float Tensor [batch_size, seq_length, embedding_size], the table).

  input_ids is int32 [batch_size, seq_length] (or [batch_size, seq_length, 1]).
  """
  if input_ids.shape.ndims == 3:
    input_ids = tf.squeeze(input_ids, axis=[2])
  table = tf1.get_variable(word_embedding_name, [vocab_size, embedding_size],
                           initializer=create_initializer(initializer_range))
  if use_one_hot_embeddings:
    output = tf.einsum("btv,vh->bth", tf.one_hot(input_ids, vocab_size), table)
  else:
    output = tf.gather(table, input_ids)
  return output, table


def embedding_postprocessor(input_tensor, use_token_type=False, token_type_ids=None,
                            token_type_vocab_size=16,
                            token_type_embedding_name="token_type_embeddings",
                            use_position_embeddings=True,
                            position_embedding_name="position_embeddings",
                            initializer_range=0.02, max_position_embeddings=512, dropout_prob=0.1):
  """Adds token type and position embeddings, then LayerNorm and dropout.

  Args:
    input_tensor: float Tensor [batch_size, seq_length, width].
    (others as google-research/bert's.)

  Returns:
    float Tensor [batch_size, seq_length, width].
  """
  batch_size, seq_length, width = get_shape_list(input_tensor, expected_rank=3)
  output = input_tensor
  if use_token_type:
    if token_type_ids is None:
      raise ValueError("`token_type_ids` must be specified if `use_token_type` is True.")
    table = tf1.get_variable(token_type_embedding_name, [token_type_vocab_size, width],
                             initializer=create_initializer(initializer_range))
    output += tf.gather(table, token_type_ids)
  if use_position_embeddings:
    table = tf1.get_variable(position_embedding_name, [max_position_embeddings, width],
                             initializer=create_initializer(initializer_range))
    assert_len = _host_assert_less_equal(seq_length, max_position_embeddings,
                                        "sequence longer than max_position_embeddings")
    with tf.control_dependencies([assert_len]):
      positions = tf.slice(table, [0, 0], tf.stack([seq_length, -1]))
    output += tf.expand_dims(positions, 0)
  del batch_size
  return layer_norm_and_dropout(output, dropout_prob)


def attention_layer(from_tensor, to_tensor, attention_mask=None, num_attention_heads=1,
                    size_per_head=512, query_act=None, key_act=None, value_act=None,
                    attention_probs_dropout_prob=0.0, initializer_range=0.02,
                    do_return_2d_tensor=False, batch_size=None, from_seq_length=None,
                    to_seq_length=None):
  """Multi-headed attention from `from_tensor` to `to_tensor` (new query/key/value variables).

  Args:
    from_tensor: float Tensor [batch_size, from_seq_length, from_width], or rank 2 with
      batch_size and from_seq_length given.
    to_tensor: float Tensor [batch_size, to_seq_length, to_width] (or rank 2, likewise).
    attention_mask: optional int32 / float Tensor [batch_size, from_seq_length, to_seq_length].
    (others as google-research/bert's.)

  Returns:
    float Tensor [batch_size, from_seq_length, num_attention_heads * size_per_head], or
    [batch_size * from_seq_length, ...] with do_return_2d_tensor.
  """
  from_shape = get_shape_list(from_tensor, expected_rank=[2, 3])
  to_shape = get_shape_list(to_tensor, expected_rank=[2, 3])
  if len(from_shape) != len(to_shape):
    raise ValueError("The rank of `from_tensor` must match the rank of `to_tensor`.")
  if len(from_shape) == 3:
    batch_size, from_seq_length, to_seq_length = from_shape[0], from_shape[1], to_shape[1]
  elif batch_size is None or from_seq_length is None or to_seq_length is None:
    raise ValueError("When passing in rank 2 tensors to attention_layer, the values for `batch_"
                     "size`, `from_seq_length`, and `to_seq_length` must all be specified.")
  width = num_attention_heads * size_per_head
  projected = []
  for name, source, act in (("query", from_tensor, query_act), ("key", to_tensor, key_act),
                            ("value", to_tensor, value_act)):
    matrix = reshape_to_matrix(source)
    kernel, bias = create_dense_variables(name, matrix.shape[-1], width, initializer_range)
    projected.append(dense(matrix, kernel, bias, act))
  bias = None
  if attention_mask is not None:
    bias = (1.0 - tf.cast(tf.expand_dims(attention_mask, axis=1), tf.float32)) * -10000.0
  context = attention_context(projected[0], projected[1], projected[2], bias, batch_size,
                              from_seq_length, to_seq_length, num_attention_heads,
                              size_per_head, attention_probs_dropout_prob)
  if do_return_2d_tensor:
    return context
  return tf.reshape(context, [batch_size, from_seq_length, width])


def transformer_model(input_tensor, attention_mask=None, hidden_size=768, num_hidden_layers=12,
                      num_attention_heads=12, intermediate_size=3072, intermediate_act_fn=gelu,
                      hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                      initializer_range=0.02, do_return_all_layers=False):
  """google-research/bert's encoder: `layer_{i}` variables in the current scope.

  Args:
    input_tensor: float Tensor [batch_size, seq_length, hidden_size].
    attention_mask: optional int32 / float Tensor [batch_size, seq_length, seq_length].
    (others as google-research/bert's.)

  Returns:
    float Tensor [batch_size, seq_length, hidden_size] (the last layer), or the list of every
    layer's output with do_return_all_layers.
  """
  if hidden_size % num_attention_heads != 0:
    raise ValueError("The hidden size (%d) is not a multiple of the number of attention heads "
                     "(%d)" % (hidden_size, num_attention_heads))
  batch_size, seq_length, width = get_shape_list(input_tensor, expected_rank=3)
  if width != hidden_size:
    raise ValueError("The width of the input tensor (%d) != hidden size (%d)" % (width,
                                                                                 hidden_size))
  config = BertConfig(vocab_size=None, hidden_size=hidden_size,
                      num_attention_heads=num_attention_heads,
                      intermediate_size=intermediate_size, hidden_act=intermediate_act_fn,
                      initializer_range=initializer_range)
  bias = None
  if attention_mask is not None:
    bias = (1.0 - tf.cast(tf.expand_dims(attention_mask, axis=1), tf.float32)) * -10000.0
  prev = reshape_to_matrix(input_tensor)
  outputs = []
  for i in range(num_hidden_layers):
    params = create_transformer_layer_variables(names.LAYER_PATTERN % i, config)
    prev = transformer_layer(prev, bias, params, batch_size, seq_length, config,
                             hidden_dropout_prob, attention_probs_dropout_prob)
    outputs.append(tf.reshape(prev, [batch_size, seq_length, hidden_size]))
  return outputs if do_return_all_layers else outputs[-1]
