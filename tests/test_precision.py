"""Mixed precision: fp16 loss scaling recovers from overflows; bf16 / fp16 train as fp32 does.

Tolerances (20 updates of plain fine-tuning of the tiny config with 2 layers on 64 MRPC rows,
learning rate 1e-3, dropout off; fp32 goes from 0.696 to 0.674): every update's loss within 5e-3
of fp32's for bf16 (8 mantissa bits; measured 1.4e-4) and 5e-4 for fp16 (11 bits; measured
1.3e-5), and not equal to it (the run did compute in the lower precision).
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from test_classifier_e2e import make_task_dir
from test_resume_weights import TINY_CONFIG

tf1 = tf.compat.v1
tf1.disable_eager_execution()


def _tiny_fp16_step(initial_scale, window):
  """A tiny BertModel computing in fp16, its TrainStep with loss scaling, and its variables."""
  import modeling_theseus as modeling  # pylint: disable=g-import-not-at-top
  from theseus.stage import Stage  # pylint: disable=g-import-not-at-top
  from theseus.training import distribute  # pylint: disable=g-import-not-at-top
  from theseus.training import update  # pylint: disable=g-import-not-at-top
  config = modeling.BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2,
                               num_attention_heads=2, intermediate_size=32,
                               hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
  rng = np.random.RandomState(0)
  features = {"input_ids": tf.constant(rng.randint(1, 40, (4, 8)).astype(np.int32)),
              "input_mask": tf.ones([4, 8], tf.int32)}

  def model_fn(f, draw_seed):
    del draw_seed
    model = modeling.BertModel(config, True, f["input_ids"], f["input_mask"],
                               compute_dtype=tf.float16)
    loss = tf.reduce_mean(tf.square(model.get_pooled_output() - 0.5))
    return loss, {"hard": loss}, None

  hyper = update.Hyperparameters(learning_rate=1e-2, num_train_steps=1000, num_warmup_steps=0,
                                 accumulation=1, clip_norm=1.0, weight_decay_rate=0.0)
  tf1.set_random_seed(1)
  step = update.build_train_step(distribute.local_cluster(), features, model_fn, Stage.of(0),
                                 hyper, 1, loss_scaling=update.LossScaling(initial_scale, window))
  by_name = {v.op.name: v for v in tf1.global_variables()}
  return step, by_name


def test_fp16_overflow_skips_the_update_lowers_the_scale_and_training_goes_on():
  with tf.Graph().as_default():
    step, var = _tiny_fp16_step(initial_scale=2.0 ** 40, window=3)
    kernel = "bert/encoder/layer_0/intermediate/dense/kernel"
    watched = [var[kernel], var[kernel + "/adam_m"], var[kernel + "/adam_v"]]
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      before = sess.run(watched)
      sess.run(step.update_op)
      # 2^40 overflows fp16 in the backward pass: no change, the scale halves, the step counts.
      for old, new in zip(before, sess.run(watched)):
        np.testing.assert_array_equal(old, new)
      assert sess.run(var["loss_scale"]) == 2.0 ** 39
      assert sess.run(var["global_step"]) == 1
      scales = [2.0 ** 39]
      for _ in range(60):
        sess.run(step.update_op)
        scales.append(float(sess.run(var["loss_scale"])))
      after = sess.run(watched)
      assert not np.array_equal(before[0], after[0])  # updates were applied once it fit
      assert all(np.all(np.isfinite(x)) for x in after)
      # It came down to where fp16 gradients fit (2^15 or 2^16 for this model, by the CPU's fp16
      # kernels: native AVX512-FP16 ones round otherwise) ...
      assert min(scales) <= 2.0 ** 16
      # ... and, with a window of 3 clean updates, it was raised again at least once.
      assert any(b == 2 * a for a, b in zip(scales, scales[1:])), scales


@pytest.fixture(scope="module")
def world(tmp_path_factory, shared_data_dir, minilm_dir):
  return tiny_world(tmp_path_factory.mktemp("precision"), shared_data_dir, minilm_dir)


def tiny_world(root, shared_data_dir, minilm_dir):
  """The tiny config with 2 layers and the MRPC rows of `settings` runs, under `root`."""
  config = root / "bert_config.json"
  config.write_text(json.dumps(dict(TINY_CONFIG, num_hidden_layers=2)))
  return {"root": root, "config": str(config),
          "data_dir": make_task_dir(shared_data_dir, root, "mrpc"),
          "vocab": os.path.join(minilm_dir, "vocab.txt")}


def settings(world, name, **overrides):
  """The settings of a tiny MRPC training run in `world` (tests/test_all_reduce.py too)."""
  from theseus.app import runner  # pylint: disable=g-import-not-at-top
  from theseus.tasks.classifier import task as classifier_task  # pylint: disable=g-import-not-at-top
  values = dict(task_name="mrpc", data_dir=world["data_dir"], bert_config_file=world["config"],
                vocab_file=world["vocab"], output_dir=str(world["root"] / name), do_train=True,
                max_seq_length=64, train_batch_size=8, num_train_steps=20,
                save_checkpoints_steps=20, learning_rate=1e-3, warmup_proportion=0.0, seed=3)
  values.update(overrides)
  return runner.settings_of(classifier_task.ClassifierRun, **values)


def train_graph(cfg, cluster=None):
  """(the trainer's TrainGraph of the run `cfg` on `cluster`, built in process; its plan)."""
  from conftest import read_task_run  # pylint: disable=g-import-not-at-top
  from theseus.tasks.classifier import task as classifier_task  # pylint: disable=g-import-not-at-top
  from theseus.training import trainer  # pylint: disable=g-import-not-at-top
  task_run, bert_config = read_task_run(classifier_task.ClassifierRun, cfg, {"train"})
  task, path, num_features, _ = task_run.train_inputs(False)
  plan = trainer.plan_training(cfg.training, cfg.actions.output_dir, cfg.replacing.stage(),
                               num_features)
  return trainer.build_train_graph(cfg.model, cfg.training, cfg.replacing, cfg.distillation,
                                   cfg.scale, bert_config, task, path, plan, cluster), plan


def _losses(cfg):
  """The loss of each of the run's updates (built and run in process)."""
  g, plan = train_graph(cfg)
  with tf1.Session(graph=g.graph) as sess:
    sess.run(g.init_ops)
    return np.array([sess.run(g.fetches)["loss"] for _ in range(plan.num_train_steps)])


def test_bf16_and_fp16_losses_follow_fp32(world):
  fp32 = _losses(settings(world, "fp32"))
  assert fp32[-1] < fp32[0] - 0.01  # the loss moves: the comparison means something
  for precision, tolerance in (("bf16", 5e-3), ("fp16", 5e-4)):
    losses = _losses(settings(world, precision, precision=precision))
    gap = float(np.max(np.abs(losses - fp32)))
    assert 0 < gap <= tolerance, (precision, gap, losses, fp32)


def test_an_fp16_run_exports_an_fp32_model(world):
  from theseus.app import runner  # pylint: disable=g-import-not-at-top
  from theseus.tasks.classifier import task as classifier_task  # pylint: disable=g-import-not-at-top
  cfg = settings(world, "fp16_export", precision="fp16", num_train_steps=3, save_checkpoints_steps=3,
             suc_layers=1, replacing_rate=0.5, do_export=True)
  runner.run_task(classifier_task.ClassifierRun, cfg)
  export_dir = cfg.export.export_dir
  reader = tf.train.load_checkpoint(os.path.join(export_dir, "bert_model.ckpt"))
  dtypes = reader.get_variable_to_dtype_map()
  assert dtypes and all(d == tf.float32 for d in dtypes.values()), dtypes
  assert not any("loss_scale" in n for n in dtypes)
  loaded = tf.saved_model.load(os.path.join(export_dir, "saved_model"))
  outputs = loaded.signatures["serving_default"].structured_outputs
  assert all(spec.dtype == tf.float32 for spec in outputs.values()
             if spec.dtype.is_floating), outputs
