"""Tests of modeling_theseus.py: names, equivalence, branch execution, draws, schedules, init maps."""

import contextlib
import math
import os

import numpy as np
import pytest
import tensorflow as tf

import modeling_theseus as modeling
from theseus import dropout as dropout_lib
from theseus import layer_norm as layer_norm_lib
from conftest import assign_variables

tf1 = tf.compat.v1
# THESEUS_TF1_MODE=1 (set by test_tf1_mode.py for a subprocess): classic TF1 mode, control flow
# v1 and ref variables, as google-research/bert code runs the modules.
if os.environ.get("THESEUS_TF1_MODE") == "1":
  tf1.disable_v2_behavior()
else:
  tf1.disable_eager_execution()


def test_runs_in_the_tensorflow_mode_asked_for():
  tf1_mode = os.environ.get("THESEUS_TF1_MODE") == "1"
  assert not tf1.executing_eagerly()
  assert tf1.control_flow_v2_enabled() != tf1_mode
  with tf.Graph().as_default():
    assert (type(tf1.get_variable("v", [1])).__name__ == "RefVariable") == tf1_mode

L = 4  # predecessor layers in the tiny config


def tiny_config(**overrides):
  values = dict(vocab_size=60, hidden_size=16, num_hidden_layers=L, num_attention_heads=2,
                intermediate_size=32, hidden_act="gelu", hidden_dropout_prob=0.0,
                attention_probs_dropout_prob=0.0, max_position_embeddings=24, type_vocab_size=2)
  values.update(overrides)
  return modeling.BertConfig(**values)


def random_inputs(batch=3, length=7, seed=0):
  rng = np.random.RandomState(seed)
  ids = rng.randint(1, 60, size=(batch, length)).astype(np.int32)
  mask = np.ones((batch, length), np.int32)
  mask[1, 5:] = 0  # one padded example
  ids[1, 5:] = 0
  segments = np.zeros((batch, length), np.int32)
  segments[:, 4:] = 1
  return ids, mask, segments


def google_bert_names(num_layers, layer_prefix="layer_"):
  """google-research/bert's variable names, written out independently of the module."""
  names = ["bert/embeddings/word_embeddings", "bert/embeddings/token_type_embeddings",
           "bert/embeddings/position_embeddings", "bert/embeddings/LayerNorm/beta",
           "bert/embeddings/LayerNorm/gamma", "bert/pooler/dense/kernel", "bert/pooler/dense/bias"]
  for i in range(num_layers):
    p = "bert/encoder/%s%d/" % (layer_prefix, i)
    for part in ("query", "key", "value"):
      names += [p + "attention/self/%s/kernel" % part, p + "attention/self/%s/bias" % part]
    names += [p + "attention/output/dense/kernel", p + "attention/output/dense/bias",
              p + "attention/output/LayerNorm/beta", p + "attention/output/LayerNorm/gamma",
              p + "intermediate/dense/kernel", p + "intermediate/dense/bias",
              p + "output/dense/kernel", p + "output/dense/bias",
              p + "output/LayerNorm/beta", p + "output/LayerNorm/gamma"]
  return names


class Graph(object):
  """A BertModel in its own graph and session, fed by placeholders."""

  def __init__(self, config, is_training, suc_layers=0, finetune_suc=False, rate=None,
               branch_hook=None, seed=1):
    self.graph = tf.Graph()
    with self.graph.as_default():
      tf1.set_random_seed(seed)
      self.ids = tf1.placeholder(tf.int32, [None, None])
      self.mask = tf1.placeholder(tf.int32, [None, None])
      self.segments = tf1.placeholder(tf.int32, [None, None])
      self.rate = tf1.placeholder_with_default(0.5 if rate is None else float(rate), [])
      # The counter of the stage-1 draw: feed(step=i) draws as update i of a training run.
      self.step = tf1.placeholder_with_default(tf.constant(0, tf.int64), [])
      self.model = modeling.BertModel(
          config, is_training, self.ids, self.mask, self.segments, suc_layers=suc_layers,
          replace_rate_prob=self.rate if (suc_layers and is_training and not finetune_suc) else None,
          finetune_suc=finetune_suc, branch_hook=branch_hook,
          replace_draw_seed=modeling.replace_draw_seed(seed, self.step))
      self.extra = {}
      self.build_hook()
      self.saver = tf1.train.Saver()
      self.init = tf1.global_variables_initializer()
    self.sess = tf1.Session(graph=self.graph)

  def build_hook(self):
    pass

  def names(self):
    with self.graph.as_default():
      return sorted(v.op.name for v in tf1.global_variables())

  def feed(self, inputs, rate=None, step=0):
    ids, mask, segments = inputs
    feed = {self.ids: ids, self.mask: mask, self.segments: segments, self.step: step}
    if rate is not None:
      feed[self.rate] = rate
    return feed

  def values(self):
    with self.graph.as_default():
      return {v.op.name: v for v in tf1.global_variables()}


def test_activations_are_the_formulas_google_and_hugging_face_use():
  x = np.linspace(-8.0, 8.0, 4001)
  tanh_gelu = 0.5 * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3))) * x
  exact_gelu = 0.5 * x * (1.0 + np.vectorize(math.erf)(x / np.sqrt(2.0)))
  with tf.Graph().as_default():
    t = tf.constant(x, tf.float32)
    with tf1.Session() as sess:
      got = sess.run({"gelu": modeling.get_activation("gelu")(t),
                      "gelu_exact": modeling.get_activation("gelu_exact")(t)})
  np.testing.assert_allclose(got["gelu"], tanh_gelu, rtol=0, atol=2e-6)
  np.testing.assert_allclose(got["gelu_exact"], exact_gelu, rtol=0, atol=2e-6)


def _onednn_on():
  from tensorflow.python.util import _pywrap_util_port  # pylint: disable=g-import-not-at-top
  return _pywrap_util_port.IsMklEnabled()


def test_both_layer_norm_forms_are_the_formula():
  rng = np.random.RandomState(0)
  x = (3.0 * rng.randn(3, 5, 16) + 1.0).astype(np.float32)
  beta, gamma = rng.randn(16).astype(np.float32), rng.randn(16).astype(np.float32)
  want = ((x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-12) * gamma +
          beta)
  for fused in (False, True):
    with tf.Graph().as_default() as graph:
      inputs = tf1.placeholder(tf.float32, [None, None, 16])
      with layer_norm_lib.fused_layer_norms() if fused else contextlib.nullcontext():
        outputs = [modeling.apply_layer_norm(inputs, beta, gamma),
                   modeling.apply_layer_norm(tf.reshape(inputs, [-1, 16]), beta, gamma),
                   modeling.apply_layer_norm(tf.cast(inputs, tf.bfloat16), beta, gamma)]
      assert ("FusedBatchNormV3" in {op.type for op in graph.get_operations()}) == fused
      assert [o.dtype for o in outputs] == [tf.float32, tf.float32, tf.bfloat16]
      with tf1.Session() as sess:
        three_d, two_d, bf16 = sess.run([outputs[0], outputs[1], tf.cast(outputs[2], tf.float32)],
                                        {inputs: x})
    np.testing.assert_allclose(three_d, want, rtol=0, atol=1e-5)
    np.testing.assert_allclose(two_d, want.reshape(-1, 16), rtol=0, atol=1e-5)
    np.testing.assert_allclose(bf16, want, rtol=0, atol=0.1)  # bf16 input: 8 bits of mantissa


def test_the_fused_form_is_one_op_in_an_inference_graph_with_onednn():
  config = tiny_config()
  with tf.Graph().as_default():
    # Shapes known only when run, as in a SavedModel (static ones fold the Fill ops the rewrite
    # matches into constants).
    ids, mask, segments = (tf1.placeholder(tf.int32, [None, None]) for _ in range(3))
    plain = modeling.BertModel(config, False, ids, mask, segments).get_sequence_output()
    with tf1.variable_scope(tf1.get_variable_scope(), reuse=True):  # the same weights
      with layer_norm_lib.fused_layer_norms():
        fused = modeling.BertModel(config, False, ids, mask, segments,
                                   scope="bert").get_sequence_output()
    outputs, kinds = [], []
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      for output in (plain, fused):
        meta = tf1.RunMetadata()
        outputs.append(sess.run(output, dict(zip((ids, mask, segments), random_inputs())),
                                options=tf1.RunOptions(output_partition_graphs=True),
                                run_metadata=meta))
        kinds.append([node.op for graph in meta.partition_graphs for node in graph.node])
  np.testing.assert_allclose(outputs[1], outputs[0], rtol=0, atol=1e-5)
  # 2 per layer and the embeddings'; TensorFlow rewrites them only with oneDNN on.
  assert kinds[1].count("_MklLayerNorm") == (2 * L + 1 if _onednn_on() else 0), kinds[1]
  assert "_MklLayerNorm" not in kinds[0]


def test_predecessor_variable_names_are_google_bert_names():
  g = Graph(tiny_config(), is_training=False)
  assert g.names() == sorted(google_bert_names(L))


def test_theseus_and_successor_variable_names():
  theseus = Graph(tiny_config(), is_training=True, suc_layers=2)
  expected = google_bert_names(L) + [n for n in google_bert_names(2, "suc_layer_")
                                     if "/suc_layer_" in n]
  assert theseus.names() == sorted(expected)
  successor = Graph(tiny_config(), is_training=False, suc_layers=2)
  expected_suc = [n for n in google_bert_names(2, "suc_layer_")]
  assert successor.names() == sorted(expected_suc)
  assert not any("/layer_" in n for n in successor.names())
  stage2 = Graph(tiny_config(), is_training=True, suc_layers=2, finetune_suc=True)
  assert stage2.names() == sorted(expected_suc)


@pytest.mark.parametrize("suc_layers,message", [(3, "does not divide"), (5, "larger than"),
                                                 (-1, "non-negative")])
def test_bad_successor_layer_counts_raise(suc_layers, message):
  with tf.Graph().as_default():
    ids = tf1.placeholder(tf.int32, [None, None])
    with pytest.raises(ValueError, match=message):
      modeling.BertModel(tiny_config(), True, ids, suc_layers=suc_layers, replace_rate_prob=0.5)


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_rate_outside_unit_interval_raises(rate):
  with tf.Graph().as_default():
    ids = tf1.placeholder(tf.int32, [None, None])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
      modeling.BertModel(tiny_config(), True, ids, suc_layers=2, replace_rate_prob=rate)


def test_config_validation_and_json_round_trip(tmp_path):
  config = tiny_config()
  path = tmp_path / "bert_config.json"
  path.write_text(config.to_json_string())
  assert modeling.BertConfig.from_json_file(str(path)).to_dict() == config.to_dict()
  # As google-research/bert: a config is read without checks (hidden 37 with 12 heads is its
  # JSON round-trip test); the values are checked where a model is built.
  for bad, message in ((dict(num_attention_heads=3), "num_attention_heads"),
                       (dict(hidden_act="swishy"), "hidden_act"),
                       (dict(gelu_approximate="erf"), "gelu_approximate")):
    config = tiny_config(**{k: v for k, v in bad.items() if k != "gelu_approximate"})
    config.__dict__.update({k: v for k, v in bad.items() if k == "gelu_approximate"})
    with pytest.raises(ValueError, match=message):
      config.validate()
    with tf.Graph().as_default(), pytest.raises(ValueError, match=message):
      modeling.BertModel(config, False, tf.zeros([1, 3], tf.int32))
  with pytest.raises(ValueError, match="missing field"):
    modeling.BertConfig.from_dict({"vocab_size": 10})
  # Fields the constructor does not know (Chinese / multilingual releases) are kept and written.
  extra = dict(tiny_config().to_dict(), directionality="bidi", pooler_fc_size=16,
               pooler_type="first_token_transform")
  assert modeling.BertConfig.from_dict(extra).to_dict() == extra


def _perturbed_successor(theseus, seed=3):
  """Gives the successor modules weights different from every predecessor layer."""
  rng = np.random.RandomState(seed)
  with theseus.graph.as_default():
    successors = [v for v in tf1.global_variables() if "/suc_layer_" in v.op.name]
  current = theseus.sess.run(successors)
  assign_variables(theseus.sess, {
      var: rng.normal(0, 0.3, size=value.shape).astype(np.float32) + value
      for var, value in zip(successors, current)})


def test_theseus_equals_predecessor_at_p0_and_successor_at_p1(tmp_path):
  config = tiny_config()
  inputs = random_inputs()
  predecessor = Graph(config, is_training=False)
  predecessor.sess.run(predecessor.init)
  pred_ckpt = predecessor.saver.save(predecessor.sess, str(tmp_path / "pred" / "model.ckpt"))
  pred_out = predecessor.sess.run(predecessor.model.get_sequence_output(), predecessor.feed(inputs))

  theseus = Graph(config, is_training=True, suc_layers=2)
  with theseus.graph.as_default():
    modeling.init_from_checkpoint_for_theseus(tf1.global_variables(), pred_ckpt)
    init = tf1.global_variables_initializer()
  theseus.sess.run(init)
  _perturbed_successor(theseus)
  p0 = theseus.sess.run(theseus.model.get_sequence_output(), theseus.feed(inputs, rate=0.0))
  np.testing.assert_allclose(p0, pred_out, atol=1e-5, rtol=0)
  p1 = theseus.sess.run(theseus.model.get_sequence_output(), theseus.feed(inputs, rate=1.0))
  assert np.abs(p1 - pred_out).max() > 1e-2  # the successor really differs
  theseus_ckpt = theseus.saver.save(theseus.sess, str(tmp_path / "theseus" / "model.ckpt"))

  successor = Graph(config, is_training=False, suc_layers=2)
  with successor.graph.as_default():
    modeling.init_from_checkpoint_for_theseus(tf1.global_variables(), theseus_ckpt)
    init = tf1.global_variables_initializer()
  successor.sess.run(init)
  suc_out = successor.sess.run(successor.model.get_sequence_output(), successor.feed(inputs))
  np.testing.assert_allclose(p1, suc_out, atol=1e-5, rtol=0)
  # Pooled output goes through the same pooler in both graphs.
  np.testing.assert_allclose(
      theseus.sess.run(theseus.model.get_pooled_output(), theseus.feed(inputs, rate=1.0)),
      successor.sess.run(successor.model.get_pooled_output(), successor.feed(inputs)),
      atol=1e-5, rtol=0)


@pytest.mark.parametrize("suc_layers, finetune_suc, is_training", [
    (0, False, True), (2, False, True), (2, True, True)])
def test_first_token_only_gives_the_pooled_output_and_gradients_of_the_full_model(
    suc_layers, finetune_suc, is_training):
  """The last layer computed for the first token alone: the same pooled output and the same
  gradient of every variable, in the predecessor, stage-1 (every draw) and successor graphs."""
  config = tiny_config()
  inputs = random_inputs()
  graph = tf.Graph()
  with graph.as_default():
    ids, mask, segments = [tf.constant(x) for x in inputs]
    step = tf1.placeholder(tf.int64, [])
    stage1 = suc_layers and is_training and not finetune_suc
    pooled, grads, last = [], [], []
    for first_token_only in (False, True):
      with tf1.variable_scope("shared", reuse=tf1.AUTO_REUSE):
        model = modeling.BertModel(
            config, is_training, ids, mask, segments, suc_layers=suc_layers,
            replace_rate_prob=0.5 if stage1 else None, finetune_suc=finetune_suc,
            replace_draw_seed=modeling.replace_draw_seed(7, step),
            first_token_only=first_token_only)
      weights = tf.constant(np.random.RandomState(1).normal(size=(16,)).astype(np.float32))
      pooled.append(model.get_pooled_output())
      grads.append([tf.convert_to_tensor(g) for g in tf.gradients(
          tf.reduce_sum(model.get_pooled_output() * weights), tf1.trainable_variables())])
      last.append(model.get_sequence_output())
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      draws = set()
      for i in range(8 if stage1 else 1):
        (full, fast), (g_full, g_fast), (seq_full, seq_fast), drawn = sess.run(
            [pooled, grads, last, model.replaced_modules if stage1 else tf.constant(0)],
            {step: i})
        draws.add(str(drawn))
        assert seq_fast.shape == (3, 1, 16) and seq_full.shape == (3, 7, 16)
        np.testing.assert_allclose(seq_fast[:, 0], seq_full[:, 0], atol=1e-5, rtol=0)
        np.testing.assert_allclose(fast, full, atol=1e-5, rtol=0)
        for a, b in zip(g_fast, g_full):
          np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)
      assert len(draws) > 2 or not stage1  # several draws of the two modules were compared


def test_first_token_only_is_refused_with_the_losses_that_read_every_token():
  with tf.Graph().as_default():
    ids = tf.constant(random_inputs()[0])
    with pytest.raises(ValueError, match="first_token_only"):
      modeling.BertModel(tiny_config(), False, ids, expose_attention=True,
                         first_token_only=True)


class CountingTheseus(Graph):
  """Theseus graph whose branches each increment their own counter when they run."""

  def __init__(self, config, suc_layers, **kw):
    self.counters = {}
    super(CountingTheseus, self).__init__(config, True, suc_layers=suc_layers,
                                          branch_hook=self._hook, **kw)

  def _hook(self, j, branch):
    with tf1.variable_scope("counters", reuse=tf1.AUTO_REUSE):
      counter = tf1.get_variable("%s_%d" % (branch, j), [], tf.int64,
                                 initializer=tf1.zeros_initializer(), trainable=False)
    self.counters[(j, branch)] = counter
    return [counter.assign_add(1)]


def test_only_the_drawn_branch_runs():
  g = CountingTheseus(tiny_config(), suc_layers=2)
  g.sess.run(g.init)
  inputs = random_inputs()
  replaced_history = []
  for step in range(40):
    _, replaced = g.sess.run([g.model.get_sequence_output(), g.model.replaced_modules],
                             g.feed(inputs, rate=0.5, step=step))
    replaced_history.append(replaced)
  replaced_history = np.array(replaced_history)
  for j in range(2):
    suc_runs = g.sess.run(g.counters[(j, "successor")])
    pred_runs = g.sess.run(g.counters[(j, "predecessor")])
    # Each step ran exactly one branch of module j: the one that was drawn.
    assert suc_runs == replaced_history[:, j].sum()
    assert pred_runs == (~replaced_history[:, j]).sum()
    assert suc_runs + pred_runs == 40
  # At p = 0 and p = 1 the other branch never runs.
  for rate, idle, busy in ((0.0, "successor", "predecessor"), (1.0, "predecessor", "successor")):
    before = {k: g.sess.run(c) for k, c in g.counters.items()}
    for step in range(5):
      g.sess.run(g.model.get_sequence_output(), g.feed(inputs, rate=rate, step=step))
    for j in range(2):
      assert g.sess.run(g.counters[(j, idle)]) == before[(j, idle)], (rate, j)
      assert g.sess.run(g.counters[(j, busy)]) == before[(j, busy)] + 5, (rate, j)


def test_stage1_successor_learns_through_the_predecessor_modules_after_it():
  """Successor 0's gradient flows through predecessor group 1 when module 1 draws it.

  With suc_layers = 2 the only path from suc_layer_0's output to the loss is module 1, so a
  predecessor branch whose output carried no gradient would leave successor 0 untrained
  whenever module 1 keeps the predecessor.
  """
  g = Graph(tiny_config(), is_training=True, suc_layers=2, seed=5)
  with g.graph.as_default():
    suc0 = [v for v in tf1.trainable_variables() if "/suc_layer_0/" in v.op.name]
    pred_late = [v for v in tf1.trainable_variables() if "/layer_3/" in v.op.name]
    loss = tf.reduce_sum(tf.square(g.model.get_sequence_output()))
    grads = [tf.zeros_like(v) if grad is None else grad
             for grad, v in zip(tf.gradients(loss, suc0 + pred_late), suc0 + pred_late)]
  g.sess.run(g.init)
  inputs = random_inputs()
  seen = set()
  for step in range(60):
    values, replaced = g.sess.run([grads, g.model.replaced_modules],
                                  g.feed(inputs, rate=0.5, step=step))
    norm_suc0 = sum(float(np.abs(x).sum()) for x in values[:len(suc0)])
    norm_pred = sum(float(np.abs(x).sum()) for x in values[len(suc0):])
    draw = tuple(bool(x) for x in replaced)
    seen.add(draw)
    assert np.isfinite(norm_suc0) and np.isfinite(norm_pred)
    # Successor 0 gets a gradient exactly when it was drawn, through either branch of module 1.
    assert (norm_suc0 > 0) == draw[0], (draw, norm_suc0)
    # Layer 3 (predecessor group 1) carries one exactly when module 1 drew the predecessor.
    assert (norm_pred > 0) == (not draw[1]), (draw, norm_pred)
  assert (True, False) in seen and (True, True) in seen


def _default_key_draws(graph_seed, steps):
  """The draws of a Theseus graph keyed by default (graph seed, global_step) at `steps`."""
  with tf.Graph().as_default():
    tf1.set_random_seed(graph_seed)
    ids = tf.constant(random_inputs()[0])
    model = modeling.BertModel(tiny_config(), True, ids, suc_layers=4, replace_rate_prob=0.5)
    global_step = tf1.train.get_global_step()
    assert global_step.op.name == "global_step"  # created at the root scope
    set_step = global_step.assign(tf1.placeholder(tf.int64, [], name="step"))
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      draws = []
      for step in steps:
        sess.run(set_step, {"step:0": step})
        draws.append(tuple(sess.run(model.replaced_modules)))
  return draws


def test_default_draw_is_a_function_of_graph_seed_and_global_step():
  steps = [0, 1, 2, 3, 2, 0]
  draws = _default_key_draws(3, steps)
  assert draws[4] == draws[2] and draws[5] == draws[0]  # the same step draws the same modules
  assert len(set(draws[:4])) > 1  # other steps draw others
  assert _default_key_draws(3, steps) == draws  # in another graph and session too
  assert _default_key_draws(4, steps) != draws  # another seed, another sequence


def _draws_under(xla, guarded, steps=5):
  """Draws of 64 modules at p = 0.5 for `steps` keys, built inside an XLA jit_scope or not."""
  with tf.Graph().as_default():
    key = tf1.placeholder(tf.int64, [2])
    with tf.xla.experimental.jit_scope() if xla else tf.name_scope("plain"):
      if guarded:
        drawn = modeling.draw_replacements(64, 0.5, key)
      else:  # the same draw without the guard: XLA compiles it
        drawn = tf.less(tf.random.stateless_uniform([64], seed=key), 0.5)
      drawn = tf.cast(drawn, tf.float32) * 1.0  # an op after it, in the cluster
    with tf1.Session() as sess:
      return [sess.run(drawn, {key: [3, step]}).tolist() for step in range(steps)]


def test_the_draw_is_kept_out_of_xla_clusters():
  plain = _draws_under(xla=False, guarded=True)
  assert _draws_under(xla=True, guarded=True) == plain
  # Compiled by XLA the stateless generator gives other numbers for the same key: what the
  # guard is for (were this equal, the test above would prove nothing).
  assert _draws_under(xla=True, guarded=False) != plain


def test_keyed_dropout_masks_are_functions_of_key_and_site():
  x = np.linspace(1.0, 2.0, 6 * 1001, dtype=np.float32).reshape(6, 1001)  # an odd size
  with tf.Graph().as_default():
    key = tf1.placeholder(tf.int64, [2])
    with dropout_lib.dropout_key(key):
      first, second = modeling.dropout(x, 0.1), modeling.dropout(x, 0.1)
    stateful = modeling.dropout(x, 0.1)  # outside a key: tf.nn.dropout
    with tf1.Session() as sess:
      a, b = sess.run([first, second], {key: [3, 7]})
      again, _ = sess.run([first, second], {key: [3, 7]})
      other, _ = sess.run([first, second], {key: [3, 8]})
      s1, s2 = sess.run(stateful), sess.run(stateful)
  np.testing.assert_array_equal(a, again)  # the same key: the same masks
  kept = a != 0
  assert not np.array_equal(kept, b != 0)  # another site
  assert not np.array_equal(kept, other != 0)  # another step
  assert not np.array_equal(s1, s2)  # the stateful generator moves on
  # The rate rounded to 2^-16; kept values scaled so that the mean is kept.
  threshold = round(0.1 * 65536)
  np.testing.assert_allclose(a[kept], x[kept] * 65536.0 / (65536 - threshold), rtol=1e-6)
  for masks in (kept, b != 0, other != 0):
    se = np.sqrt(0.1 * 0.9 / x.size)
    assert abs(masks.mean() - (1 - threshold / 65536)) < 4 * se, masks.mean()


def test_replacement_frequency_and_independence():
  config = tiny_config(num_hidden_layers=4)
  g = Graph(config, is_training=True, suc_layers=4, seed=7)
  g.sess.run(g.init)
  inputs = random_inputs(batch=2, length=6)
  p, steps = 0.3, 2000
  draws = np.array([g.sess.run(g.model.replaced_modules, g.feed(inputs, rate=p, step=step))
                    for step in range(steps)]).astype(np.float64)
  se = np.sqrt(p * (1 - p) / steps)
  for j in range(4):
    assert abs(draws[:, j].mean() - p) < 4 * se, (j, draws[:, j].mean())
  # Independence: pairs are replaced together with probability p^2.
  se_pair = np.sqrt(p * p * (1 - p * p) / steps)
  for a in range(4):
    for b in range(a + 1, 4):
      both = (draws[:, a] * draws[:, b]).mean()
      assert abs(both - p * p) < 4 * se_pair, (a, b, both)
  assert not all(np.array_equal(draws[:, 0], draws[:, j]) for j in range(1, 4))


def _rate_values(steps, **kwargs):
  with tf.Graph().as_default():
    step = tf1.placeholder(tf.int64, [])
    rate = modeling.get_replace_rate(step, **kwargs)
    assert rate.dtype == tf.float32
    with tf1.Session() as sess:
      return [float(sess.run(rate, {step: s})) for s in steps]


def test_constant_schedule():
  assert _rate_values([0, 10, 1000], scheduler_type="constant", base_rate=0.5) == [0.5, 0.5, 0.5]
  values = _rate_values([0, 99, 100, 5000], scheduler_type="constant", base_rate=0.3,
                        steps_for_replacing=100)
  np.testing.assert_allclose(values, [0.3, 0.3, 1.0, 1.0], rtol=0, atol=1e-7)


def test_linear_schedule_clips_at_one():
  values = _rate_values([0, 10, 100, 700, 701, 10 ** 6], scheduler_type="linear", base_rate=0.3,
                        k=0.001)
  np.testing.assert_allclose(values, [0.3, 0.31, 0.4, 1.0, 1.0, 1.0], rtol=0, atol=1e-6)


def test_bad_schedules_raise():
  with tf.Graph().as_default():
    step = tf1.train.get_or_create_global_step()
    with pytest.raises(ValueError, match="replacing_rate"):
      modeling.get_replace_rate(step, "constant", 1.2)
    with pytest.raises(ValueError, match="scheduler_type"):
      modeling.get_replace_rate(step, "cosine", 0.5)
    with pytest.raises(ValueError, match="scheduler_linear_k"):
      modeling.get_replace_rate(step, "linear", 0.5, k=-1.0)


def test_schedule_continues_after_restore(tmp_path):
  prefix = str(tmp_path / "model.ckpt")
  with tf.Graph().as_default():
    step = tf1.train.get_or_create_global_step()
    rate = modeling.get_replace_rate(step, "linear", 0.2, k=0.01)
    saver = tf1.train.Saver()
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      sess.run(step.assign(37))
      before = sess.run(rate)
      saver.save(sess, prefix)
  with tf.Graph().as_default():
    step = tf1.train.get_or_create_global_step()
    rate = modeling.get_replace_rate(step, "linear", 0.2, k=0.01)
    saver = tf1.train.Saver()
    with tf1.Session() as sess:
      saver.restore(sess, prefix)
      assert sess.run(step) == 37
      assert sess.run(rate) == before
      np.testing.assert_allclose(before, 0.57, atol=1e-6)


@pytest.mark.parametrize("rule,source", [("first", lambda j, r: j),
                                         ("group_first", lambda j, r: j * r),
                                         ("group_last", lambda j, r: j * r + r - 1)])
def test_stage1_assignment_map_rules(tmp_path, rule, source):
  config = tiny_config()
  predecessor = Graph(config, is_training=False)
  predecessor.sess.run(predecessor.init)
  ckpt = predecessor.saver.save(predecessor.sess, str(tmp_path / "pred.ckpt"))
  pred_values = predecessor.sess.run(predecessor.values())

  theseus = Graph(config, is_training=True, suc_layers=2)
  with theseus.graph.as_default():
    amap, suc_map, initialized = modeling.get_assignment_map_from_checkpoint_for_theseus(
        tf1.global_variables(), ckpt, suc_init=rule)
    assert set(amap) == set(google_bert_names(L))
    assert all(name.startswith("bert/encoder/layer_") for name in suc_map)
    modeling.init_from_checkpoint_for_theseus(tf1.global_variables(), ckpt, suc_init=rule)
    init = tf1.global_variables_initializer()
  theseus.sess.run(init)
  values = theseus.sess.run(theseus.values())
  assert all(n in initialized for n in values)
  for j in range(2):
    src = source(j, 2)
    for sub in modeling.LAYER_VARIABLE_NAMES:
      np.testing.assert_array_equal(values["bert/encoder/suc_layer_%d/%s" % (j, sub)],
                                    pred_values["bert/encoder/layer_%d/%s" % (src, sub)])
  for name in google_bert_names(L):
    np.testing.assert_array_equal(values[name], pred_values[name])


def test_stage2_init_from_stage1_and_from_exported_successor(tmp_path):
  config = tiny_config()
  theseus = Graph(config, is_training=True, suc_layers=2, seed=5)
  theseus.sess.run(theseus.init)
  ckpt = theseus.saver.save(theseus.sess, str(tmp_path / "stage1.ckpt"))
  stage1 = theseus.sess.run(theseus.values())

  stage2 = Graph(config, is_training=True, suc_layers=2, finetune_suc=True, seed=9)
  with stage2.graph.as_default():
    amap, suc_map, _ = modeling.get_assignment_map_from_checkpoint_for_theseus(
        tf1.global_variables(), ckpt)
    assert not suc_map  # successor modules load by name
    modeling.init_from_checkpoint_for_theseus(tf1.global_variables(), ckpt)
    init = tf1.global_variables_initializer()
  stage2.sess.run(init)
  for name, value in stage2.sess.run(stage2.values()).items():
    np.testing.assert_array_equal(value, stage1[name])

  # An exported successor: plain layer_0 .. layer_{n-1} names.
  exported = {}
  for name, value in stage1.items():
    if "/layer_" in name:
      continue
    exported[name.replace("/suc_layer_", "/layer_")] = value
  with tf.Graph().as_default():
    vs = [tf1.get_variable(n, initializer=v) for n, v in exported.items()]
    saver = tf1.train.Saver(vs)
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      export_ckpt = saver.save(sess, str(tmp_path / "export.ckpt"))
  successor = Graph(config, is_training=False, suc_layers=2, seed=11)
  with successor.graph.as_default():
    modeling.init_from_checkpoint_for_theseus(tf1.global_variables(), export_ckpt)
    init = tf1.global_variables_initializer()
  successor.sess.run(init)
  for name, value in successor.sess.run(successor.values()).items():
    np.testing.assert_array_equal(value, stage1[name])


def test_checkpoint_shape_mismatch_is_reported(tmp_path):
  small = Graph(tiny_config(hidden_size=8), is_training=False)
  small.sess.run(small.init)
  ckpt = small.saver.save(small.sess, str(tmp_path / "small.ckpt"))
  big = Graph(tiny_config(), is_training=False)
  with big.graph.as_default():
    with pytest.raises(ValueError, match="shape"):
      modeling.get_assignment_map_from_checkpoint(tf1.global_variables(), ckpt)
    with pytest.raises(ValueError, match="cannot read checkpoint"):
      modeling.get_assignment_map_from_checkpoint(tf1.global_variables(),
                                                  os.path.join(str(tmp_path), "missing.ckpt"))


def test_truncate_bert_keeps_the_first_layers_and_runs_as_a_plain_bert(tmp_path):
  import json  # pylint: disable=g-import-not-at-top
  from theseus.training import checkpoints  # pylint: disable=g-import-not-at-top
  full = Graph(tiny_config(), is_training=False)
  full.sess.run(full.init)
  ckpt = full.saver.save(full.sess, str(tmp_path / "full" / "model.ckpt"))
  config_file = tmp_path / "bert_config.json"
  config_file.write_text(tiny_config().to_json_string())
  prefix, truncated_config = checkpoints.truncate_bert(ckpt, str(config_file), 2,
                                                       str(tmp_path / "truncated"))
  with open(truncated_config) as f:
    assert json.load(f)["num_hidden_layers"] == 2
  names = {n for n, _ in tf.train.list_variables(prefix)}
  assert names == set(google_bert_names(2))
  original = checkpoints.read_checkpoint(ckpt)
  for name in names:
    np.testing.assert_array_equal(checkpoints.read_checkpoint(prefix)[name], original[name])
  # The truncated BERT is the full one's first two layers: same output after layer 2.
  inputs = random_inputs()
  two = Graph(tiny_config(num_hidden_layers=2), is_training=False)
  two.saver.restore(two.sess, prefix)
  np.testing.assert_allclose(
      two.sess.run(two.model.get_sequence_output(), two.feed(inputs)),
      full.sess.run(full.model.get_all_encoder_layers()[1], full.feed(inputs)), atol=1e-6)
