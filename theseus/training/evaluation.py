"""Evaluation and prediction: the successor-only graph over a feature cache, and the results file.

The `Evaluator` builds its graph once and is pointed at one checkpoint after another (the
training loop evaluates every saved checkpoint with it). With suc_layers > 0 the graph is the
successor alone, as it will be shipped, with the LayerNorm form the export's SavedModel has
(theseus/layer_norm.py).
"""

import json
import os
import time

import tensorflow as tf

from theseus import files
from theseus import layer_norm
from theseus.errors import InputDataError
from theseus.tasks import base
from theseus.training import checkpoints
from theseus.training import input_pipeline

tf1 = tf.compat.v1


class Evaluator(object):
  """The inference graph of a stage (the successor alone when there is one), built once,
  reloaded per checkpoint."""

  def __init__(self, bert_config, task, path, batch_size, stage, suc_init, session_config):
    """Builds the graph over the feature cache `path` (a TFRecord of task.int_keys / float_keys).

    Args:
      bert_config: the predecessor's BertConfig.
      task: TaskSpec.
      path, batch_size: the feature cache and the batch size.
      stage: the run's Stage; its inference graph is built.
      suc_init: the rule of successor modules read from a plain checkpoint (restore).
      session_config: tf1.ConfigProto.
    """
    self.task, self.suc_init = task, suc_init
    self.graph = tf.Graph()
    with self.graph.as_default():
      dataset = input_pipeline.make_dataset(path, task.int_keys, task.float_keys, batch_size,
                                            is_training=False)
      self.iterator = tf1.data.make_initializable_iterator(dataset)
      features = self.iterator.get_next()
      with layer_norm.fused_layer_norms():
        _, self.loss, self.outputs = base.build_model(bert_config, task, features, False,
                                                      stage.inference_stage)
      self.fetch = dict(self.outputs)
      self.fetch["__index"] = features[task.index_key][:, 0]
      self.fetch["__length"] = tf.reduce_sum(features["input_mask"], axis=1)
      self.variables = tf1.global_variables()
      self.saver = tf1.train.Saver(self.variables)
    self.sess = tf1.Session(graph=self.graph, config=session_config)

  def restore(self, checkpoint):
    """Loads `checkpoint`: a run checkpoint by name, or any BERT checkpoint by the Theseus rules."""
    missing = checkpoints.restore_variables(self.sess, self.saver, self.variables, checkpoint,
                                            self.suc_init)
    if missing:
      raise InputDataError("checkpoint lacks %d model variables, e.g. %s" %
                           (len(missing), ", ".join(missing[:3])), checkpoint)

  def run(self):
    """Returns (outputs per example ordered by index, mean loss or None, seconds)."""
    start = time.time()
    self.sess.run(self.iterator.initializer)
    rows, losses = {}, []
    fetch = dict(self.fetch)
    if self.loss is not None:
      fetch["__loss"] = self.loss
    while True:
      try:
        batch = self.sess.run(fetch)
      except tf.errors.OutOfRangeError:
        break
      if "__loss" in batch:
        losses.append((float(batch["__loss"]), len(batch["__index"])))
      for i, index in enumerate(batch["__index"]):
        rows[int(index)] = self._row(batch, i)
    ordered = [rows[i] for i in sorted(rows)]
    loss = (sum(l * n for l, n in losses) / sum(n for _, n in losses)) if losses else None
    return ordered, loss, time.time() - start

  def _row(self, batch, i):
    """The outputs of example i of a batch, sequence outputs trimmed to its length."""
    row = {}
    for key in self.outputs:
      value = batch[key][i]
      if key in self.task.sequence_output_keys:
        value = value[:batch["__length"][i]]
      row[key] = value
    return row

  def close(self):
    self.sess.close()


def infer(bert_config, task, path, checkpoint, batch_size, stage, suc_init, session_config):
  """Runs `checkpoint` over the feature cache `path` once: (rows by index, mean loss, seconds).

  The arguments are Evaluator's.
  """
  evaluator = Evaluator(bert_config, task, path, batch_size, stage, suc_init, session_config)
  try:
    evaluator.restore(checkpoint)
    return evaluator.run()
  finally:
    evaluator.close()


def google_result_keys(metrics, checkpoint):
  """The keys google-research/bert writes to eval_results.txt, which users' tooling parses.

  eval_accuracy (classification), eval_loss and loss (the mean loss over the set), and
  global_step (of the checkpoint evaluated; 0 for one without, e.g. an export).
  """
  names = checkpoints.variable_names(checkpoint)
  keys = {"global_step": checkpoints.global_step_of(checkpoint) if "global_step" in names else 0}
  if "accuracy" in metrics:
    keys["eval_accuracy"] = metrics["accuracy"]
  if metrics.get("eval_loss") is not None:
    keys["loss"] = metrics["eval_loss"]
  return keys


def write_eval_results(output_dir, name, metrics):
  """<name>_results.txt as google-research/bert writes it (`key = value` lines), plus JSON."""
  lines = ["%s = %s" % (k, metrics[k]) for k in sorted(metrics) if not isinstance(metrics[k], dict)]
  files.atomic_write_text(os.path.join(output_dir, "%s_results.txt" % name),
                          "\n".join(lines) + "\n")
  files.atomic_write_text(os.path.join(output_dir, "%s_results.json" % name),
                          json.dumps(metrics, indent=2, sort_keys=True, default=float) + "\n")
