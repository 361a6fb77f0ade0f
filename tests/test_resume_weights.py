"""A resumed run ends with the weights of an uninterrupted one, bit for bit, for both apps.

Stage 1 is deterministic, dropout included (its masks are keyed by (seed, update), like the
draw), so an interrupted run that resumes from its checkpoint, and re-reads the data from where
it stopped, must end with exactly the tensors (model, Adam slots, global_step) of a run that was
never interrupted. A resume that restarted the data from the first batch, or training from
scratch, would not. The replace rate here grows linearly from 0.2 (0.2, 0.3, ... 0.7), so the
Theseus draw changes from update to update and must also be the same after the restart: it and
the rate are functions of (seed, update), not of a random state that a new process starts
afresh. A finished run started again trains no more.
"""

import collections
import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from test_classifier_e2e import make_task_dir

TINY_CONFIG = {"vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 4,
               "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 128,
               "type_vocab_size": 2, "hidden_act": "gelu", "hidden_dropout_prob": 0.0,
               "attention_probs_dropout_prob": 0.0, "initializer_range": 0.02}
# Two predecessor layers, one module: a draw per update, and half the graph of four layers.
RUN = dict(do_train=True, max_seq_length=64, train_batch_size=8, num_train_steps=6,
           save_checkpoints_steps=2, suc_layers=1, scheduler_type="linear",
           replacing_rate=0.2, scheduler_linear_k=0.1, seed=5, log_every_n_steps=2)


class _Stop(Exception):
  pass


def _stop(step):
  raise _Stop(step)


def _train(cfg, task_run_class, on_checkpoint=None):
  from conftest import read_task_run  # pylint: disable=g-import-not-at-top
  from theseus.app import runner  # pylint: disable=g-import-not-at-top
  task_run, bert_config = read_task_run(task_run_class, cfg, {"train"})
  task, path, num_features, _ = task_run.train_inputs(False)
  return runner.train(cfg, bert_config, task, path, num_features, on_checkpoint=on_checkpoint)


def _tensors(output_dir):
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(output_dir))
  return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()}


def _assert_resume_is_exact(make_cfg, task_run_class, tmp_path):
  full_dir, resumed_dir = str(tmp_path / "full"), str(tmp_path / "resumed")
  full_result = _train(make_cfg(full_dir), task_run_class)
  with pytest.raises(_Stop):
    _train(make_cfg(resumed_dir), task_run_class, on_checkpoint=_stop)
  assert os.path.basename(tf.train.latest_checkpoint(resumed_dir)) == "model.ckpt-2"
  result = _train(make_cfg(resumed_dir), task_run_class)
  assert result["global_step"] == 6
  assert result["replace_rate"] == pytest.approx(full_result["replace_rate"]) == pytest.approx(0.8)
  with open(os.path.join(resumed_dir, "train_results.json")) as f:
    assert json.load(f)["resumed_from_step"] == 2
  full, resumed = _tensors(full_dir), _tensors(resumed_dir)
  assert sorted(full) == sorted(resumed)
  assert any("/suc_layer_" in n and "adam_" not in n for n in full)
  different = [n for n in full if not np.array_equal(full[n], resumed[n])]
  assert not different, different[:5]
  again = _train(make_cfg(resumed_dir), task_run_class)
  assert again["global_step"] == 6 and again.get("resumed")
  # The run's last checkpoint carries the training graph (.meta); the others only weights.
  assert sorted(os.path.basename(p) for p in glob.glob(os.path.join(full_dir, "*.meta"))) == [
      "model.ckpt-6.meta"]
  # TensorBoard: the scalars of every second update (--log_every_n_steps=2), under their names.
  tags = collections.Counter(value.tag for path in glob.glob(os.path.join(full_dir, "events*"))
                             for event in tf.compat.v1.train.summary_iterator(path)
                             for value in event.summary.value)
  assert tags == {"loss": 3, "learning_rate": 3, "replace_rate": 3}, tags


@pytest.fixture
def tiny_config_file(tmp_path):
  path = tmp_path / "bert_config.json"
  path.write_text(json.dumps(dict(TINY_CONFIG, num_hidden_layers=2, hidden_dropout_prob=0.1,
                                  attention_probs_dropout_prob=0.1)))
  return str(path)


def test_stage1_resume_redraws_the_same_modules(shared_data_dir, minilm_dir, tmp_path,
                                                tiny_config_file):
  from theseus.tasks.classifier import task as classifier_task  # pylint: disable=g-import-not-at-top
  from theseus.app import runner  # pylint: disable=g-import-not-at-top
  data_dir = make_task_dir(shared_data_dir, tmp_path, "mrpc")

  def make_cfg(output_dir):
    return runner.settings_of(
        classifier_task.ClassifierRun, task_name="mrpc", data_dir=data_dir,
        bert_config_file=tiny_config_file, vocab_file=os.path.join(minilm_dir, "vocab.txt"),
        output_dir=output_dir, **RUN)

  _assert_resume_is_exact(make_cfg, classifier_task.ClassifierRun, tmp_path)


def test_ner_resume_ends_with_the_uninterrupted_weights(shared_data_dir, minilm_dir, tmp_path,
                                                         tiny_config_file):
  from theseus.tasks.ner_mrc import task as ner_task  # pylint: disable=g-import-not-at-top
  from theseus.app import runner  # pylint: disable=g-import-not-at-top
  data_dir = tmp_path / "conll"
  data_dir.mkdir()
  with open(os.path.join(shared_data_dir, "conll2003", "train.txt"), encoding="utf-8") as f:
    blocks = f.read().split("\n\n")
  (data_dir / "train.txt").write_text("\n\n".join(blocks[:30]) + "\n", encoding="utf-8")

  def make_cfg(output_dir):
    return runner.settings_of(
        ner_task.NerMrcRun, data_dir=str(data_dir), bert_config_file=tiny_config_file,
        vocab_file=os.path.join(minilm_dir, "vocab.txt"), output_dir=output_dir, **RUN)

  _assert_resume_is_exact(make_cfg, ner_task.NerMrcRun, tmp_path)
