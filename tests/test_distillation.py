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

from conftest import assign_variables
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
  world["teacher2"] = _perturbed_copy(world["teacher"], str(root / "teacher2" / "model.ckpt"))
  return world


def _perturbed_copy(checkpoint, path, scale=0.2):
  """A second teacher: `checkpoint`'s weights with noise of `scale` x their spread, under the
  same names (a training run of its own would cost as much as the tests that use it)."""
  from theseus.training import checkpoints  # pylint: disable=g-import-not-at-top
  rng = np.random.RandomState(9)
  tensors = checkpoints.read_checkpoint(checkpoint)
  for name, value in tensors.items():
    if value.dtype == np.float32:
      tensors[name] = value + scale * (value.std() + 1e-3) * rng.randn(*value.shape).astype(
          np.float32)
  os.makedirs(os.path.dirname(path))
  checkpoints.write_checkpoint(tensors, path)
  return path


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
  # The module losses alone; every other kind at once (soft labels, hidden matching and the
  # listed matches; test_the_teacher_is_frozen trains with soft labels and hidden matching).
  for name, kd in (("module", dict(kd_module_weight=1.0, kd_module_attention_weight=0.5)),
                   ("taught", dict(kd_alpha=0.5, kd_temperature=2.0, kd_hidden_weight=1.0,
                                   kd_matches=("3:1:hidden:cosine:1",
                                               "1:0:attention:attention_kl:0.5",
                                               "1:0:value_relation:kl:0.5"),
                                   kd_weight_schedule="linear_decay"))):
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
    return teacher_lib.teacher_logits_cache([teacher], bert_config, task, path, 64,
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
  path = teacher_lib.teacher_logits_cache([world["teacher"]], bert_config, task, path, 64,
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
    for var, value in zip(teacher_vars, sess.run(teacher_vars)):
      np.testing.assert_array_equal(value, expected[var.op.name[len("teacher/"):]])
  # No gradient reaches the teacher (in a graph of its own: the training one is finalized).
  from theseus.tasks import base  # pylint: disable=g-import-not-at-top
  with tf.Graph().as_default():
    ids = tf.constant([[101, 2023, 2003, 102]])
    features = {"input_ids": ids, "input_mask": tf.ones_like(ids),
                "segment_ids": tf.zeros_like(ids), "label_ids": tf.constant([[1]]),
                "teacher_logits": tf.constant([[0.3, -0.2]])}
    model, hard, outputs = base.build_model(bert_config, task, features, True, stage, 0.5,
                                            all_tokens=True)  # as the trainer does
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

  config = tmp_path / "bert_config.json"  # two layers: what is checked is the NER cache
  config.write_text(json.dumps(dict(TINY_CONFIG, num_hidden_layers=2)))

  def cfg(name, **changes):
    return runner.settings_of(
        ner_task.NerMrcRun, data_dir=str(data), bert_config_file=str(config),
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
  student = cfg("student", suc_layers=1, init_checkpoint=teacher, kd_alpha=0.5,
                kd_temperature=2.0, kd_hidden_weight=1.0)
  bert_config, task, path = train(student)
  cache = teacher_lib.teacher_logits_cache([teacher], bert_config, task, path, 64,
                                           tf1.ConfigProto())
  for record in tf1.io.tf_record_iterator(cache):
    feature = tf.train.Example.FromString(record).features.feature
    length = len(feature["input_ids"].int64_list.value)
    assert len(feature["teacher_start_logits"].float_list.value) == length
    assert len(feature["teacher_end_logits"].float_list.value) == length
  assert tf.train.latest_checkpoint(str(tmp_path / "student")).endswith("-3")


# ----------------------------------------------------------------------------------------------
# The toolbox: intermediate losses, module distillation, matches, schedules, several teachers,
# augmentation.


def _np_rows(mask):
  return mask.reshape(-1).astype(np.float64)


def _np_masked_mean(per_row, mask):
  return float((per_row * mask).sum() / max(mask.sum(), 1.0))


@pytest.mark.parametrize("kind", ["mse", "nmse", "cosine", "pkd"])
def test_hidden_losses_by_hand(kind):
  from theseus.distillation import losses  # pylint: disable=g-import-not-at-top
  rng = np.random.RandomState(3)
  s, t = rng.normal(size=(6, 5)), rng.normal(size=(6, 5)) * 3.0
  mask = np.array([1, 1, 0, 1, 0, 1])
  unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
  expected = {
      "mse": _np_masked_mean(((s - t) ** 2).mean(-1), mask),
      "nmse": _np_masked_mean(((s - t) ** 2).mean(-1), mask) / _np_masked_mean(
          (t ** 2).mean(-1), mask),
      "cosine": _np_masked_mean(1.0 - (unit(s) * unit(t)).sum(-1), mask),
      "pkd": _np_masked_mean(((unit(s) - unit(t)) ** 2).mean(-1), mask)}[kind]
  with tf.Graph().as_default():
    got = _run(losses.hidden_loss(kind, tf.constant(s, tf.float32), tf.constant(t, tf.float32),
                                  tf.constant(mask)))
  assert got == pytest.approx(expected, rel=1e-5)
  if kind == "nmse":  # scale-free: the same loss for both states scaled alike
    with tf.Graph().as_default():
      scaled = _run(losses.hidden_loss(kind, tf.constant(10 * s, tf.float32),
                                       tf.constant(10 * t, tf.float32), tf.constant(mask)))
    assert scaled == pytest.approx(expected, rel=1e-5)


def _softmax(x):
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def test_attention_and_value_relation_losses_by_hand():
  from theseus.distillation import losses  # pylint: disable=g-import-not-at-top
  rng = np.random.RandomState(4)
  batch, heads, length, depth = 2, 3, 4, 5
  token_mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]])
  bias = (1.0 - token_mask)[:, None, None, :] * -10000.0
  s = _softmax(rng.normal(size=(batch, heads, length, length)) + bias)
  t = _softmax(rng.normal(size=(batch, heads, length, length)) + bias)
  rows = np.repeat(token_mask[:, None, :], heads, axis=1).reshape(-1)
  kl = (t * (np.log(t + 1e-12) - np.log(s + 1e-12))).sum(-1).reshape(-1)
  mse = ((s - t) ** 2).mean(-1).reshape(-1)
  vs, vt = rng.normal(size=(batch, heads, length, depth)), rng.normal(size=(batch, heads, length,
                                                                            depth))
  relation = lambda v: _softmax(v @ v.transpose(0, 1, 3, 2) / np.sqrt(depth) + bias)  # noqa
  rs, rt = relation(vs), relation(vt)
  vr = (rt * (np.log(rt + 1e-12) - np.log(rs + 1e-12))).sum(-1).reshape(-1)
  with tf.Graph().as_default():
    c = lambda x: tf.constant(x, tf.float32)  # noqa: E731
    got = _run([losses.attention_loss("attention_kl", c(s), c(t), tf.constant(token_mask)),
                losses.attention_loss("attention_mse", c(s), c(t), tf.constant(token_mask)),
                losses.value_relation_loss(c(vs), c(vt), tf.constant(token_mask))])
  assert got[0] == pytest.approx(_np_masked_mean(kl, rows), rel=1e-4)
  assert got[1] == pytest.approx(_np_masked_mean(mse, rows), rel=1e-4)
  assert got[2] == pytest.approx(_np_masked_mean(vr, rows), rel=1e-4)


def _stage1_model(rate, seed_counter, module_loss="nmse", attention_weight=1.0):
  """A 2 -> 2 Theseus graph (groups of one layer) with the module teacher on."""
  import modeling_theseus as modeling  # pylint: disable=g-import-not-at-top
  from test_modeling import random_inputs, tiny_config  # pylint: disable=g-import-not-at-top
  from theseus.distillation import intermediate  # pylint: disable=g-import-not-at-top
  ids, mask, segments = random_inputs()
  mask_t = tf.constant(mask)
  return modeling.BertModel(
      tiny_config(num_hidden_layers=2), True, tf.constant(ids), mask_t, tf.constant(segments),
      suc_layers=2, replace_rate_prob=rate,
      replace_draw_seed=modeling.replace_draw_seed(7, seed_counter),
      module_teacher=intermediate.module_teacher(module_loss, attention_weight, mask_t))


def _session_with_copied_successors(perturb):
  """A session of the default graph whose successors copy the predecessor layers (+ noise)."""
  sess = tf1.Session()
  sess.run(tf1.global_variables_initializer())
  by_name = {v.op.name: v for v in tf1.global_variables()}
  rng = np.random.RandomState(1)
  successors = [var for name, var in sorted(by_name.items()) if "/suc_layer_" in name]
  sources = sess.run([by_name[v.op.name.replace("suc_layer_", "layer_")] for v in successors])
  assign_variables(sess, {var: source + perturb * rng.normal(size=source.shape)
                          for var, source in zip(successors, sources)})
  return sess


def test_module_loss_is_zero_when_the_successor_is_its_group_and_counts_drawn_modules_only():
  from theseus.distillation import intermediate  # pylint: disable=g-import-not-at-top
  with tf.Graph().as_default():
    model = _stage1_model(rate=1.0, seed_counter=0)
    total = intermediate.module_distillation_loss(model.extras["module_losses"],
                                                  model.replaced_modules)
    sess = _session_with_copied_successors(perturb=0.0)
    losses_, total = sess.run([model.extras["module_losses"], total])
    assert max(abs(x) for x in losses_) < 1e-6 and abs(total) < 1e-6
  for counter in (1, 3):  # p = 0.5, draws 10 and 01: each module's loss only when it drew
    with tf.Graph().as_default():
      model = _stage1_model(rate=0.5, seed_counter=counter)
      module_losses = model.extras["module_losses"]
      total = intermediate.module_distillation_loss(module_losses, model.replaced_modules)
      # The group that teaches module j runs behind stop_gradient: module j's loss sends it no
      # gradient (the successor it teaches gets one).
      group_grads, successor_grads = [], []
      for j, loss in enumerate(module_losses):
        scope = lambda kind, j=j: [v for v in tf1.trainable_variables()  # noqa: E731
                                   if "/%s_%d/" % (kind, j) in v.op.name]
        group_grads.append([g for g in tf.gradients(loss, scope("layer")) if g is not None])
        successor_grads.append(tf.gradients(loss, scope("suc_layer")))
      sess = _session_with_copied_successors(perturb=0.05)
      drew, values, mean, to_groups, to_successors = sess.run(
          [model.replaced_modules, module_losses, total, group_grads, successor_grads])
      for j, (d, v) in enumerate(zip(drew, values)):
        assert (v > 1e-6) if d else (v == 0.0), (counter, j, drew, values)
        assert not any(np.any(g) for g in to_groups[j]), (counter, j)
        assert any(np.any(g) for g in to_successors[j]) == bool(d), (counter, j)
      assert mean == pytest.approx(sum(values) / max(1, int(drew.sum())), rel=1e-5)


def test_hidden_matching_builds_the_teacher_from_its_own_config(world, tmp_path):
  """A 4-layer teacher and a 2-layer plain student: the trainer builds 4 teacher layers, and
  student layer j is matched with teacher layer 2j + 1."""
  import modeling_theseus as modeling  # pylint: disable=g-import-not-at-top
  from theseus.distillation import teacher as teacher_lib  # pylint: disable=g-import-not-at-top
  from theseus.tasks import base  # pylint: disable=g-import-not-at-top
  from theseus.training import trainer  # pylint: disable=g-import-not-at-top
  student_config = tmp_path / "student_config.json"
  student_config.write_text(json.dumps(dict(TINY_CONFIG, num_hidden_layers=2)))
  cfg = _cfg(world, str(tmp_path / "student"), bert_config_file=str(student_config),
             kd_hidden_weight=1.0, teacher_checkpoint=(world["teacher"],),
             teacher_bert_config_file=world["config"])
  bert_config, task, path, n = _inputs(world, cfg)
  plan = trainer.plan_training(cfg.training, cfg.actions.output_dir, cfg.replacing.stage(), n)
  g = trainer.build_train_graph(cfg.model, cfg.training, cfg.replacing, cfg.distillation,
                                cfg.scale, bert_config, task, path, plan)
  with g.graph.as_default():
    teacher_layers = {v.op.name.split("/")[3] for v in tf1.global_variables()
                      if v.op.name.startswith("teacher/bert/encoder/")}
  assert teacher_layers == {"layer_0", "layer_1", "layer_2", "layer_3"}
  teacher_config = teacher_lib.teacher_config(cfg.distillation, bert_config)
  with tf.Graph().as_default():
    ids = tf.constant([[101, 2023, 2003, 1037, 102], [101, 2307, 102, 0, 0]])
    mask = tf.constant([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    features = {"input_ids": ids, "input_mask": mask, "segment_ids": tf.zeros_like(ids),
                "label_ids": tf.constant([[1], [0]])}
    with pytest.raises(ValueError, match="every token"):
      with tf1.variable_scope("first_token_only"):
        fast = base.build_model(bert_config, task, features, False, cfg.replacing.stage())
        teacher_lib.student_loss(cfg.distillation, task, *fast, features, teacher_config)
    student, hard, outputs = base.build_model(bert_config, task, features, False,
                                              cfg.replacing.stage(), all_tokens=True)
    _, terms = teacher_lib.student_loss(cfg.distillation, task, student, hard, outputs,
                                        features, teacher_config)
    with tf1.variable_scope("reference"):
      reference = modeling.BertModel(teacher_config, False, ids, mask, tf.zeros_like(ids))
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      for var in tf1.global_variables():
        if var.op.name.startswith(("teacher/", "reference/")):
          var.load(tf.train.load_checkpoint(world["teacher"]).get_tensor(
              var.op.name.split("/", 1)[1]), sess)
      got, s_layers, r_layers = sess.run([terms["hidden"], student.get_all_encoder_layers(),
                                          reference.get_all_encoder_layers()])
  m = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], np.float64)[:, :, None]
  pairs = [(s_layers[0], r_layers[1]), (s_layers[1], r_layers[3])]
  expected = np.mean([((s - t) ** 2 * m).sum() / (m.sum() * 32) for s, t in pairs])
  assert got == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("kind, at_0, at_60", [
    ("constant", (0.8, 4.0), (0.8, 4.0)), ("linear_growth", (0.0, 1.0), (0.48, 2.8)),
    ("linear_decay", (0.8, 4.0), (0.32, 2.2))])
def test_schedules_follow_global_step_also_after_a_resume(tmp_path, kind, at_0, at_60):
  """A weight 0.8 and a temperature 4 over 100 updates, at step 0 and at step 60 restored from a
  checkpoint (a resumed run)."""
  from theseus.distillation import schedules  # pylint: disable=g-import-not-at-top
  with tf.Graph().as_default():
    step = tf1.train.get_or_create_global_step()
    done = schedules.progress(step, 100)
    values = [tf.convert_to_tensor(schedules.weight(kind, 0.8, done)),
              tf.convert_to_tensor(schedules.temperature(kind, 4.0, done))]
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      assert sess.run(values) == pytest.approx(list(at_0))
      sess.run(step.assign(60))
      saved = tf1.train.Saver([step]).save(sess, str(tmp_path / "ckpt"))
  with tf.Graph().as_default():
    step = tf1.train.get_or_create_global_step()
    done = schedules.progress(step, 100)
    values = [tf.convert_to_tensor(schedules.weight(kind, 0.8, done)),
              tf.convert_to_tensor(schedules.temperature(kind, 4.0, done))]
    with tf1.Session() as sess:
      tf1.train.Saver([step]).restore(sess, saved)
      assert sess.run(values) == pytest.approx(list(at_60))


def _cached(path, name):
  return np.array([list(tf.train.Example.FromString(r).features.feature[name].float_list.value)
                   for r in tf1.io.tf_record_iterator(path)])


def test_two_teachers_soft_labels_are_the_mean_of_their_caches(world):
  from theseus.distillation import teacher as teacher_lib  # pylint: disable=g-import-not-at-top
  cfg = _cfg(world, str(world["root"] / "two"), suc_layers=2, kd_alpha=0.5,
             init_checkpoint=world["teacher"])
  bert_config, task, path, _ = _inputs(world, cfg)

  def cache(teachers):
    return teacher_lib.teacher_logits_cache(teachers, bert_config, task, path, 64,
                                            tf1.ConfigProto())

  first, second = cache([world["teacher"]]), cache([world["teacher2"]])
  both = cache([world["teacher"], world["teacher2"]])
  assert len({first, second, both}) == 3
  np.testing.assert_allclose(_cached(both, "teacher_logits"),
                             (_cached(first, "teacher_logits") +
                              _cached(second, "teacher_logits")) / 2, rtol=1e-6, atol=1e-7)


def test_augmented_copies_are_deterministic_and_labelled_by_the_teacher(world):
  from theseus.distillation import teacher as teacher_lib  # pylint: disable=g-import-not-at-top
  from theseus.tasks.classifier import augment  # pylint: disable=g-import-not-at-top
  cfg = _cfg(world, str(world["root"] / "augment"), suc_layers=2, kd_alpha=0.5,
             init_checkpoint=world["teacher"])
  task_run, bert_config = read_task_run_for(cfg)
  examples = task_run.train_examples
  copies = augment.augmented_copies(examples, 2, 5, len(examples))
  assert [c.text_a for c in copies] == [c.text_a for c in augment.augmented_copies(
      examples, 2, 5, len(examples))]
  assert [c.text_a for c in copies] != [c.text_a for c in augment.augmented_copies(
      examples, 2, 6, len(examples))]
  changed = sum((c.text_a, c.text_b) != (e.text_a, e.text_b)
                for c, e in zip(copies, [e for e in examples for _ in range(2)]))
  assert changed > 0.9 * len(copies)
  task, path, n, _ = task_run.train_inputs(False, augment_copies=2, seed=5)
  assert n == 3 * len(examples)
  cache = teacher_lib.teacher_logits_cache([world["teacher"]], bert_config, task, path, 64,
                                           tf1.ConfigProto())
  records = [tf.train.Example.FromString(r).features.feature
             for r in tf1.io.tf_record_iterator(cache)]
  # The teacher's own graph on one augmented copy's features.
  import modeling_theseus as modeling  # pylint: disable=g-import-not-at-top
  augmented = [r for r in records if r["augmented"].int64_list.value[0]]
  assert len(augmented) == 2 * len(examples)
  with tf.Graph().as_default():
    ph_ids = tf1.placeholder(tf.int32, [1, None])
    ph_segments = tf1.placeholder(tf.int32, [1, None])
    model = modeling.BertModel(bert_config, False, ph_ids, tf.ones_like(ph_ids), ph_segments)
    logits = tf.matmul(model.get_pooled_output(), tf1.get_variable("output_weights", [2, 32]),
                       transpose_b=True) + tf1.get_variable("output_bias", [2])
    with tf1.Session() as sess:
      tf1.train.Saver().restore(sess, world["teacher"])
      for record in augmented[:8]:
        direct = sess.run(logits, {ph_ids: [record["input_ids"].int64_list.value],
                                   ph_segments: [record["segment_ids"].int64_list.value]})[0]
        cached = np.array(record["teacher_logits"].float_list.value)
        assert np.abs(cached - direct).max() < 1e-5
        assert record["label_ids"].int64_list.value[0] == int(np.argmax(direct))
  originals = [r for r in records if not r["augmented"].int64_list.value[0]]
  gold = sorted(task_run.processor.get_labels().index(e.label) for e in examples)
  assert sorted(r["label_ids"].int64_list.value[0] for r in originals) == gold


def read_task_run_for(cfg):
  from conftest import read_task_run  # pylint: disable=g-import-not-at-top
  from theseus.tasks.classifier import task as classifier_task  # pylint: disable=g-import-not-at-top
  return read_task_run(classifier_task.ClassifierRun, cfg, {"train"})


@pytest.mark.parametrize("changes, message", [
    (dict(kd_module_weight=1.0), "--kd_module_weight needs stage 1"),
    (dict(kd_augment=2), "--kd_augment needs --kd_alpha > 0"),
    (dict(kd_matches=("3:1:hidden",)), "is not teacher_layer:student_layer:feature:loss:weight"),
    (dict(kd_matches=("3:1:attention:cosine:1",)), "a attention match takes the loss"),
    (dict(kd_matches=("9:1:hidden:mse:1",)), "the teacher has 4 layers, no layer 9"),
    (dict(kd_matches=("3:x:hidden:mse:1",)), "a layer is an index >= 0 or 'embeddings'"),
    (dict(kd_matches=("3:1:hidden:mse:-1",)), "the weight must be a finite number >= 0"),
    (dict(teacher_checkpoint=("/nonexistent/teacher.ckpt",), kd_alpha=0.5),
     "teacher checkpoint not found"),
])
def test_distillation_settings_that_cannot_work_are_one_line(world, changes, message):
  from theseus import errors  # pylint: disable=g-import-not-at-top
  from theseus.app import runner  # pylint: disable=g-import-not-at-top
  from theseus.tasks.classifier import task as classifier_task  # pylint: disable=g-import-not-at-top
  cfg = _cfg(world, str(world["root"] / "bad"), init_checkpoint=world["teacher"], **changes)
  with pytest.raises(errors.InputDataError) as e:
    runner.check(cfg, runner.make_task_run(classifier_task.ClassifierRun, cfg))
  assert message in str(e.value) and "\n" not in str(e.value), str(e.value)
