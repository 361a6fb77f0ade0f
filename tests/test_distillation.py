"""Knowledge distillation (theseus/distillation): the losses against hand computations, the teacher
logits cache against the teacher's own graph, a frozen teacher, and alpha = 0 = no distillation.

Runs: a tiny 4-layer BERT fine-tuned a few steps on a real MRPC slice (the teacher), then
stage 1 (4 -> 2) from it, in-process through runner.train.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from test_classifier_e2e import make_task_dir

tf1 = tf.compat.v1

TINY_CONFIG = {"vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 4,
               "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 128,
               "type_vocab_size": 2, "hidden_act": "gelu", "hidden_dropout_prob": 0.0,
               "attention_probs_dropout_prob": 0.0, "initializer_range": 0.02}


def _run(fetches, feed=None):
  with tf1.Session() as sess:
    return sess.run(fetches, feed)


def _log_softmax(x):
  x = x - x.max(axis=-1, keepdims=True)
  return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_softmax_soft_loss_is_t2_times_cross_entropy(temperature):
  from theseus.distillation import losses  # pylint: disable=g-import-not-at-top
  student = np.array([[1.0, -0.5, 0.2], [0.3, 0.3, 2.0]], np.float32)
  teacher = np.array([[2.0, 0.0, -1.0], [-0.4, 1.2, 0.1]], np.float32)
  targets = np.exp(_log_softmax(teacher / temperature))
  expected = temperature ** 2 * np.mean(-(targets * _log_softmax(student / temperature)).sum(-1))
  with tf.Graph().as_default():
    got = _run(losses.softmax_soft_loss(tf.constant(student), tf.constant(teacher),
                                        temperature))
  assert got == pytest.approx(expected, rel=1e-5)
  # The same as the KL divergence plus the teacher's (constant) entropy.
  kl = np.mean((targets * (np.log(targets) - _log_softmax(student / temperature))).sum(-1))
  entropy = np.mean(-(targets * np.log(targets)).sum(-1))
  assert got == pytest.approx(temperature ** 2 * (kl + entropy), rel=1e-5)


def test_pointer_and_regression_soft_losses_by_hand():
  from theseus.distillation import losses  # pylint: disable=g-import-not-at-top
  student = np.array([[0.5, -1.0, 2.0, 9.0]], np.float32)
  teacher = np.array([[1.0, 0.0, -2.0, -9.0]], np.float32)
  mask = np.array([[1, 1, 1, 0]], np.int32)  # the last position (e.g. the query) does not count
  t = 2.0
  p = 1.0 / (1.0 + np.exp(-teacher / t))
  q = 1.0 / (1.0 + np.exp(-student / t))
  per_token = -(p * np.log(q) + (1 - p) * np.log(1 - q))
  expected = t * t * (per_token * mask).sum() / mask.sum()
  with tf.Graph().as_default():
    got = _run(losses.pointer_soft_loss(tf.constant(student), tf.constant(teacher),
                                        tf.constant(mask), t))
    regression = _run(losses.regression_soft_loss(tf.constant([1.0, 2.0]),
                                                  tf.constant([[0.5], [3.0]])))
  assert got == pytest.approx(expected, rel=1e-5)
  assert regression == pytest.approx((0.25 + 1.0) / 2)


@pytest.fixture(scope="module")
def world(shared_data_dir, minilm_dir, tmp_path_factory):
  """The data, config and two trained tiny teacher checkpoints."""
  root = tmp_path_factory.mktemp("kd")
  config = root / "bert_config.json"
  config.write_text(json.dumps(TINY_CONFIG))
  world = {"root": root, "data": make_task_dir(shared_data_dir, root, "mrpc"),
           "config": str(config), "vocab": os.path.join(minilm_dir, "vocab.txt")}
  world["teacher"] = _train(world, "teacher", suc_layers=0, learning_rate=1e-3)
  world["teacher2"] = _train(world, "teacher2", suc_layers=0, learning_rate=1e-3, seed=9)
  return world


def _cfg(world, output_dir, **changes):
  from theseus.app import runner  # pylint: disable=g-import-not-at-top
  from theseus.tasks.classifier import task as classifier_task  # pylint: disable=g-import-not-at-top
  values = dict(task_name="mrpc", data_dir=world["data"], bert_config_file=world["config"],
                vocab_file=world["vocab"], output_dir=output_dir, do_train=True,
                max_seq_length=64, train_batch_size=8, num_train_steps=4,
                save_checkpoints_steps=4, seed=5)
  values.update(changes)
  return runner.settings_of(classifier_task.ClassifierRun, **values)


def _inputs(world, cfg):
  from test_classifier_e2e import read_classifier_run  # pylint: disable=g-import-not-at-top
  task_run, bert_config = read_classifier_run(cfg, {"train"})
  task, path, n, _ = task_run.train_inputs(False)
  return bert_config, task, path, n


def _train(world, name, **changes):
  from theseus.app import runner  # pylint: disable=g-import-not-at-top
  cfg = _cfg(world, str(world["root"] / name), **changes)
  bert_config, task, path, n = _inputs(world, cfg)
  runner.train(cfg, bert_config, task, path, n)
  return tf.train.latest_checkpoint(cfg.actions.output_dir)


def _tensors(checkpoint):
  reader = tf.train.load_checkpoint(checkpoint)
  return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()}


def test_alpha_zero_is_the_plain_run_and_distillation_changes_training(world):
  stage1 = dict(suc_layers=2, init_checkpoint=world["teacher"])
  plain = _tensors(_train(world, "plain", **stage1))
  zero = _tensors(_train(world, "alpha0", kd_alpha=0.0, kd_temperature=2.0, **stage1))
  assert sorted(plain) == sorted(zero)
  assert all(np.array_equal(plain[n], zero[n]) for n in plain)
  for name, kd in (("soft", dict(kd_alpha=0.5, kd_temperature=2.0)),
                   ("hidden", dict(kd_hidden_weight=1.0))):
    taught = _tensors(_train(world, name, **dict(stage1, **kd)))
    assert sorted(taught) == sorted(plain)  # the teacher is not saved with the run
    changed = [n for n in plain if not np.array_equal(plain[n], taught[n])]
    assert any("/suc_layer_" in n for n in changed), name


def test_cached_teacher_logits_equal_the_teacher_graph_and_follow_the_teacher(world):
  import modeling_theseus as modeling  # pylint: disable=g-import-not-at-top
  cfg = _cfg(world, str(world["root"] / "cache"), suc_layers=2, kd_alpha=0.5,
             init_checkpoint=world["teacher"])
  bert_config, task, path, _ = _inputs(world, cfg)

  def teacher_logits_cache(teacher):
    from theseus.distillation import teacher as teacher_lib  # pylint: disable=g-import-not-at-top
    return teacher_lib.teacher_logits_cache(teacher, bert_config, task, path, 64,
                                            tf1.ConfigProto())

  cache = teacher_logits_cache(world["teacher"])
  records = [tf.train.Example.FromString(r) for r in tf1.io.tf_record_iterator(cache)]
  ids = [list(r.features.feature["input_ids"].int64_list.value) for r in records]
  segments = [list(r.features.feature["segment_ids"].int64_list.value) for r in records]
  cached = np.array([list(r.features.feature["teacher_logits"].float_list.value)
                     for r in records])
  # The teacher's own graph, one example at a time (no padding at all).
  with tf.Graph().as_default():
    ph_ids, ph_segments = tf1.placeholder(tf.int32, [1, None]), tf1.placeholder(tf.int32, [1, None])
    model = modeling.BertModel(bert_config, False, ph_ids, tf.ones_like(ph_ids), ph_segments)
    weights = tf1.get_variable("output_weights", [2, 32])
    bias = tf1.get_variable("output_bias", [2])
    logits = tf.matmul(model.get_pooled_output(), weights, transpose_b=True) + bias
    with tf1.Session() as sess:
      tf1.train.Saver().restore(sess, world["teacher"])
      direct = np.concatenate([sess.run(logits, {ph_ids: [i], ph_segments: [s]})
                               for i, s in zip(ids, segments)])
  assert cached.shape == (64, 2)
  assert np.abs(cached - direct).max() < 1e-5
  # The same teacher again: the cache is reused; another teacher: rebuilt, other values.
  assert teacher_logits_cache(world["teacher"]) == cache
  other = teacher_logits_cache(world["teacher2"])
  assert other != cache
  other_values = np.array([list(tf.train.Example.FromString(r).features.feature[
      "teacher_logits"].float_list.value) for r in tf1.io.tf_record_iterator(other)])
  assert np.abs(other_values - cached).max() > 1e-3


def test_the_teacher_is_frozen_and_gets_no_gradient(world):
  from theseus.distillation import teacher as teacher_lib  # pylint: disable=g-import-not-at-top
  from theseus.training import trainer  # pylint: disable=g-import-not-at-top
  cfg = _cfg(world, str(world["root"] / "frozen"), suc_layers=2, kd_hidden_weight=1.0,
             kd_alpha=0.5, init_checkpoint=world["teacher"])
  bert_config, task, path, n = _inputs(world, cfg)
  path = teacher_lib.teacher_logits_cache(world["teacher"], bert_config, task, path, 64,
                                          tf1.ConfigProto())
  stage = cfg.replacing.stage()
  plan = trainer.plan_training(cfg.training, cfg.actions.output_dir, stage, n)
  g = trainer.build_train_graph(cfg.model, cfg.training, cfg.replacing, cfg.distillation,
                                cfg.scale, bert_config, task, path, plan)
  with g.graph.as_default():
    teacher_vars = [v for v in tf1.global_variables() if teacher_lib.is_teacher_variable(v)]
    assert teacher_vars and not any(v.trainable for v in teacher_vars)
    assert not any(teacher_lib.is_teacher_variable(v) for v in tf1.trainable_variables())
  expected = _tensors(world["teacher"])
  with tf1.Session(graph=g.graph) as sess:
    sess.run(g.init_ops)
    for _ in range(3):
      sess.run(g.fetches)  # three updates with soft labels and hidden matching
    for var in teacher_vars:
      np.testing.assert_array_equal(sess.run(var), expected[var.op.name[len("teacher/"):]])
  # No gradient reaches the teacher (in a graph of its own: the training one is finalized).
  from theseus.tasks import base  # pylint: disable=g-import-not-at-top
  with tf.Graph().as_default():
    ids = tf.constant([[101, 2023, 2003, 102]])
    features = {"input_ids": ids, "input_mask": tf.ones_like(ids),
                "segment_ids": tf.zeros_like(ids), "label_ids": tf.constant([[1]]),
                "teacher_logits": tf.constant([[0.3, -0.2]])}
    model, hard, outputs = base.build_model(bert_config, task, features, True, stage, 0.5)
    total, terms = teacher_lib.student_loss(cfg.distillation, task, model, hard, outputs,
                                            features, bert_config)
    assert sorted(terms) == ["hard", "hidden", "soft"]
    teacher_vars = [v for v in tf1.global_variables() if teacher_lib.is_teacher_variable(v)]
    assert teacher_vars
    assert all(grad is None for grad in tf.gradients(total, teacher_vars))


def test_ner_soft_labels_cover_every_position_and_train(world, shared_data_dir, tmp_path):
  from conftest import read_task_run  # pylint: disable=g-import-not-at-top
  from theseus.app import runner  # pylint: disable=g-import-not-at-top
  from theseus.tasks.ner_mrc import task as ner_task  # pylint: disable=g-import-not-at-top
  from theseus.distillation import teacher as teacher_lib  # pylint: disable=g-import-not-at-top
  data = tmp_path / "conll"
  data.mkdir()
  with open(os.path.join(shared_data_dir, "conll2003", "train.txt"), encoding="utf-8") as f:
    (data / "train.txt").write_text("\n\n".join(f.read().split("\n\n")[:12]) + "\n")

  def cfg(name, **changes):
    return runner.settings_of(
        ner_task.NerMrcRun, data_dir=str(data), bert_config_file=world["config"],
        vocab_file=world["vocab"], output_dir=str(tmp_path / name), do_train=True,
        max_seq_length=64, train_batch_size=8, num_train_steps=3, save_checkpoints_steps=3,
        **changes)

  def train(c):
    task_run, bert_config = read_task_run(ner_task.NerMrcRun, c, {"train"})
    task, path, n, _ = task_run.train_inputs(False)
    runner.train(c, bert_config, task, path, n)
    return bert_config, task, path

  train(cfg("teacher"))
  teacher = tf.train.latest_checkpoint(str(tmp_path / "teacher"))
  student = cfg("student", suc_layers=2, init_checkpoint=teacher, kd_alpha=0.5,
                kd_temperature=2.0, kd_hidden_weight=1.0)
  bert_config, task, path = train(student)
  cache = teacher_lib.teacher_logits_cache(teacher, bert_config, task, path, 64,
                                           tf1.ConfigProto())
  for record in tf1.io.tf_record_iterator(cache):
    feature = tf.train.Example.FromString(record).features.feature
    length = len(feature["input_ids"].int64_list.value)
    assert len(feature["teacher_start_logits"].float_list.value) == length
    assert len(feature["teacher_end_logits"].float_list.value) == length
  assert tf.train.latest_checkpoint(str(tmp_path / "student")).endswith("-3")
