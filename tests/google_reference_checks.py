"""Checks against google-research/bert's modeling.py, in classic TF1 mode (run by test_tf1_mode.py).

Not collected on its own (the name has no test_ prefix): it switches the process to classic TF1
mode at import, which google-research/bert's modeling.py needs. test_tf1_mode.py runs it in a
subprocess, with THESEUS_EXPORT_DIRS naming the exports to check (os.pathsep-separated).

* A checkpoint written by Google's BertModel gives the same outputs in modeling_theseus's.
* Every export's bert_config.json builds in Google's modeling.py, and its checkpoint loads there
  with Google's own assignment map; where both compute the same GELU, Google's graph gives the
  SavedModel's probabilities.
* google-research/bert's helper functions (embedding_lookup, embedding_postprocessor,
  attention_layer, transformer_model, create_attention_mask_from_input_mask, ...) give Google's
  results with the same variables, and use_one_hot_embeddings changes nothing.
"""

import json
import os
import sys

import numpy as np
import pytest

import tensorflow.compat.v1 as tf

tf.disable_v2_behavior()

from conftest import REPO_ROOT, assign_variables  # noqa: E402  pylint: disable=g-import-not-at-top
from theseus.export import serving  # noqa: E402  pylint: disable=g-import-not-at-top
import modeling_theseus as modeling  # noqa: E402  pylint: disable=g-import-not-at-top

sys.path.insert(0, os.path.join(REPO_ROOT, os.pardir, "shared", "peer_tests",
                                "google-research-bert", "reference"))
import google_modeling  # noqa: E402  pylint: disable=g-import-not-at-top

CONFIG = {"vocab_size": 50, "hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 4,
          "intermediate_size": 48, "hidden_act": "gelu", "hidden_dropout_prob": 0.0,
          "attention_probs_dropout_prob": 0.0, "max_position_embeddings": 40,
          "type_vocab_size": 2, "initializer_range": 0.2}


def _inputs(vocab_size=50, batch=3, length=9, seed=0):
  rng = np.random.RandomState(seed)
  ids = rng.randint(1, vocab_size, size=(batch, length)).astype(np.int32)
  mask = np.ones((batch, length), np.int32)
  mask[1, 6:] = 0
  segments = np.zeros((batch, length), np.int32)
  segments[:, 5:] = 1
  return ids, mask, segments


def _run_bert(model_module, config, ids, mask, segments, checkpoint=None, save_to=None,
              one_hot=False):
  """(sequence_output, pooled_output) of model_module.BertModel, loaded from `checkpoint`."""
  with tf.Graph().as_default():
    tf.set_random_seed(1)
    model = model_module.BertModel(config, False, tf.constant(ids), tf.constant(mask),
                                   tf.constant(segments), use_one_hot_embeddings=one_hot)
    saver = tf.train.Saver()
    with tf.Session() as sess:
      sess.run(tf.global_variables_initializer())
      if checkpoint:
        saver.restore(sess, checkpoint)
      if save_to:
        saver.save(sess, save_to)
      return sess.run([model.get_sequence_output(), model.get_pooled_output()])


def test_a_google_checkpoint_runs_as_trained(tmp_path):
  ids, mask, segments = _inputs()
  ckpt = str(tmp_path / "google" / "bert_model.ckpt")
  google_seq, google_pooled = _run_bert(google_modeling, google_modeling.BertConfig.from_dict(
      CONFIG), ids, mask, segments, save_to=ckpt)
  ours_seq, ours_pooled = _run_bert(modeling, modeling.BertConfig.from_dict(CONFIG), ids, mask,
                                    segments, checkpoint=ckpt)
  real = mask.astype(bool)
  assert np.abs(ours_seq[real] - google_seq[real]).max() < 1e-5
  assert np.abs(ours_pooled - google_pooled).max() < 1e-5
  # One-hot word lookup (Google's TPU path) gives the same numbers.
  one_hot_seq, _ = _run_bert(modeling, modeling.BertConfig.from_dict(CONFIG), ids, mask, segments,
                             checkpoint=ckpt, one_hot=True)
  assert np.abs(one_hot_seq - ours_seq).max() < 1e-6


def _google_probabilities(export_dir, ids, mask, segments):
  """Google's BertModel + run_classifier's head, from the export's own config and checkpoint."""
  config = google_modeling.BertConfig.from_json_file(os.path.join(export_dir, "bert_config.json"))
  checkpoint = os.path.join(export_dir, "bert_model.ckpt")
  with tf.Graph().as_default():
    model = google_modeling.BertModel(config, False, tf.constant(ids), tf.constant(mask),
                                      tf.constant(segments))
    pooled = model.get_pooled_output()
    num_labels = tf.train.load_checkpoint(checkpoint).get_tensor("output_bias").shape[0]
    weights = tf.get_variable("output_weights", [num_labels, config.hidden_size])
    bias = tf.get_variable("output_bias", [num_labels])
    probabilities = tf.nn.softmax(tf.matmul(pooled, weights, transpose_b=True) + bias)
    tvars = tf.trainable_variables()
    assignment, initialized = google_modeling.get_assignment_map_from_checkpoint(tvars,
                                                                                 checkpoint)
    assert all(v.name in initialized for v in tvars), [v.name for v in tvars
                                                       if v.name not in initialized]
    tf.train.init_from_checkpoint(checkpoint, assignment)
    with tf.Session() as sess:
      sess.run(tf.global_variables_initializer())
      return sess.run(probabilities)


def _export_dirs():
  dirs = [d for d in os.environ.get("THESEUS_EXPORT_DIRS", "").split(os.pathsep) if d]
  if not dirs:
    pytest.fail("THESEUS_EXPORT_DIRS names no export (run this file through test_tf1_mode.py)")
  return dirs


def test_every_export_builds_and_loads_in_google_modeling():
  for export_dir in _export_dirs():
    with open(os.path.join(export_dir, "bert_config.json")) as f:
      config = json.load(f)
    with open(os.path.join(export_dir, "vocab.txt")) as f:
      vocab_size = len(f.read().splitlines())
    ids, mask, segments = _inputs(vocab_size=vocab_size)
    google = _google_probabilities(export_dir, ids, mask, segments)
    sess, predict = serving.load_saved_model_predictor(os.path.join(export_dir, "saved_model"))
    ours = predict({"input_ids": ids, "input_mask": mask, "segment_ids": segments})
    sess.close()
    diff = np.abs(google - ours["probabilities"]).max()
    if config.get(modeling.GELU_APPROXIMATE_FIELD) == "none":
      # Google's modeling.py computes the tanh GELU; the export the exact one it was trained with.
      assert 0 < diff < 1e-2, (export_dir, diff)
    else:
      assert diff < 1e-5, (export_dir, diff)


def _copy_scope(sess, source_scope, target_scope):
  """Gives every variable under target_scope/ the value of its namesake under source_scope/."""
  by_name = {v.op.name: v for v in tf.global_variables()}
  targets = [var for name, var in by_name.items() if name.startswith(target_scope + "/")]
  sources = sess.run([by_name[source_scope + v.op.name[len(target_scope):]] for v in targets])
  assign_variables(sess, dict(zip(targets, sources)))


def test_googles_helper_functions_match_google():
  ids, mask, segments = _inputs()
  rng = np.random.RandomState(3)
  results = {}
  with tf.Graph().as_default():
    tf.set_random_seed(2)
    for scope, m in (("google", google_modeling), ("ours", modeling)):
      with tf.variable_scope(scope):
        words, table = m.embedding_lookup(tf.constant(ids), 50, embedding_size=32,
                                          initializer_range=0.5)
        embedded = m.embedding_postprocessor(
            words, use_token_type=True, token_type_ids=tf.constant(segments),
            token_type_vocab_size=2, initializer_range=0.5, max_position_embeddings=40,
            dropout_prob=0.0)
        attention_mask = m.create_attention_mask_from_input_mask(embedded, tf.constant(mask))
        with tf.variable_scope("attention"):
          attended = m.attention_layer(embedded, embedded, attention_mask, num_attention_heads=4,
                                       size_per_head=8, initializer_range=0.5)
        layers = m.transformer_model(embedded, attention_mask, hidden_size=32,
                                     num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=48, hidden_dropout_prob=0.0,
                                     attention_probs_dropout_prob=0.0, initializer_range=0.5,
                                     do_return_all_layers=True)
        results[scope] = [table, words, embedded, attention_mask, attended] + layers
        assert m.get_shape_list(embedded) == [3, 9, 32]
        assert m.reshape_to_matrix(embedded).shape.as_list() == [27, 32]
    assert ([v.op.name[len("ours/"):] for v in tf.global_variables() if v.op.name.startswith("ours/")]
            == [v.op.name[len("google/"):] for v in tf.global_variables()
                if v.op.name.startswith("google/")])
    with tf.Session() as sess:
      sess.run(tf.global_variables_initializer())
      norms = [var for var in tf.global_variables()
               if var.op.name.startswith("google/") and "LayerNorm" in var.op.name]
      assign_variables(sess, {var: value + rng.normal(0, 0.2, value.shape)
                              for var, value in zip(norms, sess.run(norms))})
      _copy_scope(sess, "google", "ours")
      google, ours = sess.run([results["google"], results["ours"]])
  # float32 rounding, relative to the output's scale: with weights at initializer_range 0.5 the
  # layer outputs reach |x| ~ 3, and oneDNN's kernels (chosen by the CPU's instruction set) sum in
  # another order than the reference graph, e.g. 1.3e-5 apart on an AMD EPYC.
  for i, (g, o) in enumerate(zip(google, ours)):
    assert g.shape == o.shape, i
    tolerance = 1e-5 * max(1.0, float(np.abs(g).max()))
    assert np.abs(g - o).max() < tolerance, (i, np.abs(g - o).max(), tolerance)
