"""Tests of optimization_theseus.py: which variables each stage updates, accumulation, schedule."""

import numpy as np
import pytest
import tensorflow as tf

import modeling_theseus as modeling
import optimization_theseus as optimization
from test_modeling import random_inputs, tiny_config

tf1 = tf.compat.v1  # the mode (TF2 graph mode, or TF1 with THESEUS_TF1_MODE=1): test_modeling


class Trainer(object):
  """BertModel + classifier head + optimizer in its own graph."""

  def __init__(self, suc_layers=0, finetune_suc=False, rate=1.0, accumulation=1, lr=1e-2,
               train_scope=None, first_token_only=False):
    self.graph = tf.Graph()
    with self.graph.as_default():
      tf1.set_random_seed(3)
      self.ids = tf1.placeholder(tf.int32, [None, None])
      self.mask = tf1.placeholder(tf.int32, [None, None])
      self.segments = tf1.placeholder(tf.int32, [None, None])
      self.labels = tf1.placeholder(tf.int32, [None])
      model = modeling.BertModel(tiny_config(), True, self.ids, self.mask, self.segments,
                                 suc_layers=suc_layers, replace_rate_prob=rate,
                                 finetune_suc=finetune_suc, first_token_only=first_token_only)
      pooled = model.get_pooled_output()
      weights = tf1.get_variable("output_weights", [2, 16],
                                 initializer=tf1.truncated_normal_initializer(stddev=0.02))
      bias = tf1.get_variable("output_bias", [2], initializer=tf1.zeros_initializer())
      logits = tf.matmul(pooled, weights, transpose_b=True) + bias
      self.loss = tf.reduce_mean(
          tf.nn.sparse_softmax_cross_entropy_with_logits(labels=self.labels, logits=logits))
      self.ops = optimization.create_optimizer_for_bert_theseus(
          self.loss, lr, num_train_steps=10, num_warmup_steps=0, finetune_suc=finetune_suc,
          gradient_accumulation_steps=accumulation, train_scope=train_scope)
      self.global_step = tf1.train.get_global_step()
      self.model_vars = {v.op.name: v for v in tf1.global_variables()
                         if "adam_" not in v.op.name and v.op.name != "global_step"}
      self.saver = tf1.train.Saver()
      self.init = [tf1.global_variables_initializer(), tf1.local_variables_initializer()]
    self.sess = tf1.Session(graph=self.graph)
    self.sess.run(self.init)

  def snapshot(self):
    return self.sess.run(self.model_vars)  # one run for all (a run each is slow)

  def step(self, inputs, labels):
    ids, mask, segments = inputs
    return self.sess.run([self.ops.train_op, self.loss],
                         {self.ids: ids, self.mask: mask, self.segments: segments,
                          self.labels: labels})[1]


def changed_names(before, after):
  return {n for n in before if not np.array_equal(before[n], after[n])}


def test_stage1_updates_only_successor_variables():
  t = Trainer(suc_layers=2, rate=1.0)
  before = t.snapshot()
  t.step(random_inputs(), [0, 1, 1])
  changed = changed_names(before, t.snapshot())
  successor = {n for n in before if "/suc_layer_" in n}
  assert changed == successor
  assert t.sess.run(t.global_step) == 1


def test_stage1_train_scope_can_add_the_head():
  scope = optimization.stage1_train_scope(["head"])
  t = Trainer(suc_layers=2, rate=1.0, train_scope=scope)
  before = t.snapshot()
  t.step(random_inputs(), [0, 1, 1])
  changed = changed_names(before, t.snapshot())
  assert changed == {n for n in before if "/suc_layer_" in n} | {"output_weights", "output_bias"}
  with pytest.raises(ValueError, match="unknown stage-1 group"):
    optimization.stage1_train_scope(["everything"])


def test_stage2_updates_everything_in_the_successor_graph():
  t = Trainer(suc_layers=2, finetune_suc=True)
  assert not any("/layer_" in n for n in t.model_vars)  # predecessor layers are not there
  before = t.snapshot()
  t.step(random_inputs(), [0, 1, 1])
  changed = changed_names(before, t.snapshot())
  assert {"bert/embeddings/word_embeddings", "bert/embeddings/LayerNorm/gamma",
          "bert/pooler/dense/kernel", "output_weights", "output_bias"} <= changed
  assert {n for n in before if "/suc_layer_" in n} <= changed
  assert changed == set(before)


def test_plain_finetuning_updates_every_variable():
  t = Trainer(suc_layers=0)
  before = t.snapshot()
  t.step(random_inputs(), [0, 1, 1])
  assert changed_names(before, t.snapshot()) == set(before)


def test_finetune_suc_without_successor_raises():
  with pytest.raises(ValueError, match="successor"):
    Trainer(suc_layers=0, finetune_suc=True)


def test_gradient_accumulation_equals_one_big_batch(tmp_path):
  rng = np.random.RandomState(0)
  ids = rng.randint(1, 60, size=(4, 6)).astype(np.int32)
  mask = np.ones_like(ids)
  mask[3, 4:] = 0
  segments = np.zeros_like(ids)
  labels = np.array([0, 1, 1, 0], np.int32)

  big = Trainer(suc_layers=0, lr=1e-2)
  ckpt = big.saver.save(big.sess, str(tmp_path / "init.ckpt"))
  big.step((ids, mask, segments), labels)
  after_big = big.snapshot()

  accumulated = Trainer(suc_layers=0, lr=1e-2, accumulation=2)
  accumulated.saver.restore(accumulated.sess, ckpt)
  initial = accumulated.snapshot()
  accumulated.step((ids[:2], mask[:2], segments[:2]), labels[:2])
  assert accumulated.sess.run(accumulated.global_step) == 0
  assert not changed_names(initial, accumulated.snapshot())  # no update after one micro-batch
  accumulated.step((ids[2:], mask[2:], segments[2:]), labels[2:])
  assert accumulated.sess.run(accumulated.global_step) == 1
  after_acc = accumulated.snapshot()
  assert changed_names(initial, after_acc)
  for name in after_big:
    np.testing.assert_allclose(after_acc[name], after_big[name], atol=2e-6, rtol=1e-5,
                               err_msg=name)


def test_learning_rate_warmup_and_decay():
  with tf.Graph().as_default():
    step = tf1.placeholder(tf.int64, [])
    lr = optimization.learning_rate_schedule(step, 1.0, num_train_steps=100, num_warmup_steps=10)
    with tf1.Session() as sess:
      values = [float(sess.run(lr, {step: s})) for s in (0, 5, 10, 55, 100, 150)]
  np.testing.assert_allclose(values, [0.0, 0.5, 0.9, 0.45, 0.0, 0.0], atol=1e-6)


def _trainer_weights(checkpoint, suc_layers, finetune_suc, accumulation, batches, lr):
  """Model variables and Adam slots after the trainer's update (theseus/training/update.py,
  with trainer.make_model_fn and the classification head) on `batches`, from `checkpoint`."""
  from theseus.config import groups  # pylint: disable=g-import-not-at-top
  from theseus.stage import Stage  # pylint: disable=g-import-not-at-top
  from theseus.tasks.classifier import datasets, head  # pylint: disable=g-import-not-at-top
  from theseus.training import distribute, trainer, update  # pylint: disable=g-import-not-at-top
  stage = Stage.of(suc_layers, finetune_suc)
  task = head.make_task(datasets.get_processor("mrpc"), [])
  with tf.Graph().as_default() as graph:
    features = {name: tf1.placeholder(tf.int32, [None, None])
                for name in ("input_ids", "input_mask", "segment_ids")}
    features["label_ids"] = tf1.placeholder(tf.int32, [None, 1])
    model_fn = trainer.make_model_fn(tiny_config(), task, stage, 1.0 if suc_layers else None,
                                     tf.float32, groups.DistillationSettings(), None)
    hyper = update.Hyperparameters(learning_rate=lr, num_train_steps=10, num_warmup_steps=0,
                                   accumulation=accumulation, clip_norm=1.0,
                                   weight_decay_rate=0.01)
    step = update.build_train_step(distribute.local_cluster(), features, model_fn, stage, hyper,
                                   seed=0)
    variables = {v.op.name: v for v in tf1.global_variables()}
    saver = tf1.train.Saver([v for n, v in variables.items()])
    with tf1.Session(graph=graph) as sess:
      sess.run(tf1.local_variables_initializer())
      saver.restore(sess, checkpoint)
      for i, (ids, mask, segments, labels) in enumerate(batches):
        feed = {features["input_ids"]: ids, features["input_mask"]: mask,
                features["segment_ids"]: segments, features["label_ids"]: labels[:, None],
                step.micro_batch: i % accumulation}
        sess.run(step.micro_batch_op if accumulation > 1 else step.update_op, feed)
        if accumulation > 1 and i % accumulation == accumulation - 1:
          sess.run(step.update_op)
      return sess.run(variables)


@pytest.mark.parametrize("suc_layers, finetune_suc, accumulation", [
    (0, False, 1), (2, False, 2), (2, True, 1)])
def test_the_google_style_faces_update_as_the_trainer_does(tmp_path, suc_layers, finetune_suc,
                                                           accumulation):
  """create_optimizer_for_bert_theseus (and create_optimizer, its defaults) is a face over the
  trainer's update: from the same weights and batches, the same weights and Adam slots."""
  rng = np.random.RandomState(5)
  batches = []
  for i in range(4):
    ids, mask, segments = random_inputs(seed=i)
    batches.append((ids, mask, segments, rng.randint(0, 2, size=3).astype(np.int32)))
  face = Trainer(suc_layers=suc_layers, finetune_suc=finetune_suc, rate=1.0,
                 accumulation=accumulation, lr=1e-2,
                 first_token_only=True)  # the graph the trainer builds for a classifier
  checkpoint = face.saver.save(face.sess, str(tmp_path / "start.ckpt"))
  for ids, mask, segments, labels in batches:
    face.step((ids, mask, segments), labels)
  with face.graph.as_default():
    by_face = face.sess.run({v.op.name: v for v in tf1.global_variables()})
  by_trainer = _trainer_weights(checkpoint, suc_layers, finetune_suc, accumulation, batches, 1e-2)
  assert by_face["global_step"] == by_trainer["global_step"] == 4 // accumulation
  compared = [n for n in by_trainer if n != "global_step"]
  assert any("adam_m" in n for n in compared) and any("output_weights" == n for n in compared)
  start = tf.train.load_checkpoint(checkpoint)
  assert any(not np.array_equal(by_trainer[n], start.get_tensor(n)) for n in compared)
  for name in compared:
    np.testing.assert_allclose(by_face[name], by_trainer[name], rtol=1e-5, atol=1e-7,
                               err_msg=name)


def _adam_weight_decay_by_hand(var, grads, lr, rate, beta_1=0.9, beta_2=0.999, epsilon=1e-6):
  """google-research/bert's AdamWeightDecay in float64 numpy: (var, m, v) after `grads`."""
  var = var.astype(np.float64)
  m, v = np.zeros_like(var), np.zeros_like(var)
  for grad in grads:
    m = beta_1 * m + (1 - beta_1) * grad
    v = beta_2 * v + (1 - beta_2) * grad ** 2
    var = var - lr * (m / (np.sqrt(v) + epsilon) + rate * var)
  return var, m, v


@pytest.mark.parametrize("apply_update", [None, True])
def test_adam_weight_decay_steps_equal_a_hand_computation(apply_update):
  """Three steps of the optimizer's update (the fused kernel; the element-wise ops when an fp16
  update may be skipped) on a decayed and an excluded variable equal numpy's."""
  from theseus.training import optimizer as optimizer_lib  # pylint: disable=g-import-not-at-top
  rng = np.random.RandomState(0)
  start = {"w": rng.randn(3, 4).astype(np.float32), "LayerNorm/beta": rng.randn(4).astype(
      np.float32)}
  grads = {name: [rng.randn(*value.shape).astype(np.float32) for _ in range(3)]
           for name, value in start.items()}
  with tf.Graph().as_default():
    opt = optimizer_lib.AdamWeightDecayOptimizer(0.1, weight_decay_rate=0.2,
                                                 exclude_from_weight_decay=["LayerNorm"])
    variables = {name: tf1.get_variable(name, initializer=value, use_resource=True)
                 for name, value in start.items()}
    opt.create_slots(list(variables.values()))
    feeds = {name: tf1.placeholder(tf.float32, value.shape) for name, value in start.items()}
    flag = None if apply_update is None else tf.constant(apply_update)
    step = tf.group([opt.update_variable(var, feeds[name], *opt.slots(var), apply_update=flag)
                     for name, var in variables.items()])
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      for i in range(3):
        sess.run(step, {feeds[name]: grads[name][i] for name in start})
      got = sess.run({name: (var,) + opt.slots(var) for name, var in variables.items()})
  for name in start:
    want = _adam_weight_decay_by_hand(start[name], grads[name], 0.1,
                                      0.0 if "LayerNorm" in name else 0.2)
    for got_value, want_value in zip(got[name], want):
      np.testing.assert_allclose(got_value, want_value, rtol=1e-5, atol=1e-6, err_msg=name)
