"""Export: the successor as a plain n-layer BERT (+ task head) and a SavedModel, and loading one.

An export directory holds `bert_model.ckpt.*` (successor variables under the plain `layer_{j}`
names, so google-research/bert-compatible code loads it), `bert_config.json` with
num_hidden_layers = n, the vocab, `saved_model/` (signature `serving_default`: input_ids,
input_mask, segment_ids -> the task's outputs), `export_info.json`, the task's own files (what
predict.py needs to tokenize and decode), and with tflite=True `model.tflite` (float32) and
`model_int8.tflite` (dynamic-range int8 weights), with the SavedModel's signature. It is written
in a temporary directory and published in one rename: a crash never leaves a half-written
export, and a previous export survives until the new one is complete.
"""

from __future__ import absolute_import
from __future__ import division
from __future__ import print_function

import collections
import json
import os
import re
import shutil
import subprocess
import sys

from absl import logging
import numpy as np
import tensorflow as tf

import checkpoints
from errors import TrainingError
import files
import modeling_theseus as modeling
import task_spec

tf1 = tf.compat.v1

SIGNATURE_KEY = "serving_default"
INPUT_NAMES = ("input_ids", "input_mask", "segment_ids")
# TFLite files of an export: name -> whether the weights are quantized to int8 (dynamic range).
TFLITE_FILES = collections.OrderedDict([("model.tflite", False), ("model_int8.tflite", True)])


def exported_variable_name(name):
  """suc_layer_j -> layer_j; everything else keeps its name."""
  return name.replace("bert/encoder/suc_layer_", "bert/encoder/layer_")


def export_model(cfg, bert_config, task, checkpoint, export_dir, extra_files=None,
                 tflite=False):
  """Writes export_dir with bert_model.ckpt.*, bert_config.json, vocab, saved_model/.

  Args:
    cfg: RunConfig (suc_layers, finetune_suc, suc_init, vocab_file / spm_model_file).
    bert_config: the predecessor's BertConfig.
    task: TaskSpec (head and serving outputs).
    checkpoint: the checkpoint to export (a run's, or any BERT by the Theseus rules).
    export_dir: the directory to (re)place.
    extra_files: optional dict file name -> text, written into the export too.
    tflite: also write model.tflite and model_int8.tflite (see write_tflite).

  Returns:
    dict describing the export (also written as export_info.json).
  """
  values = _inference_values(cfg, bert_config, task, checkpoint)
  num_layers = cfg.suc_layers or bert_config.num_hidden_layers
  export_config = modeling.BertConfig.from_dict(dict(bert_config.to_dict(),
                                                     num_hidden_layers=num_layers))
  tmp = files.make_temp_dir_beside(export_dir)
  with open(os.path.join(tmp, "bert_config.json"), "w") as f:
    f.write(export_config.to_json_string())
  vocab = cfg.spm_model_file or cfg.vocab_file
  shutil.copy2(vocab, os.path.join(tmp, os.path.basename(vocab)))
  checkpoint_prefix = os.path.join(tmp, "bert_model.ckpt")
  checkpoints.write_checkpoint(values, checkpoint_prefix)
  serving = _write_saved_model(export_config, task, checkpoint_prefix,
                               os.path.join(tmp, "saved_model"))
  info = {"num_hidden_layers": num_layers, "source_checkpoint": checkpoint,
          "parameters": int(sum(np.prod(v.shape) for v in values.values())),
          "serving_outputs": sorted(serving)}
  if tflite:
    info["tflite_bytes"] = write_tflite_in_child_process(tmp)
  for name, text in dict(extra_files or {}, **{
      "export_info.json": json.dumps(info, indent=1)}).items():
    with open(os.path.join(tmp, name), "w", encoding="utf-8") as f:
      f.write(text)
  files.publish_dir(tmp, export_dir)
  logging.info("Exported a %d-layer BERT to %s", num_layers, export_dir)
  return info


def _inference_values(cfg, bert_config, task, checkpoint):
  """The inference graph's model variables read from `checkpoint`, under their exported names.

  Returns:
    OrderedDict exported name -> np.ndarray (successor modules as plain layers, the head).
  """
  graph = tf.Graph()
  with graph.as_default():
    ids = tf1.placeholder(tf.int32, [None, None], "input_ids")
    features = {"input_ids": ids, "input_mask": ids, "segment_ids": ids}
    task_spec.build_model(bert_config, task, features, False, cfg.suc_layers, cfg.finetune_suc)
    model_vars = [v for v in tf1.global_variables()
                  if v.op.name.startswith("bert/") or re.search(task.head_variable_regex, v.op.name)]
    saver = tf1.train.Saver(model_vars)
    with tf1.Session() as sess:
      missing = checkpoints.restore_variables(sess, saver, model_vars, checkpoint, cfg.suc_init)
      if missing:
        logging.warning("%s lacks %d exported variables, left to their initializers: %s",
                        checkpoint, len(missing), ", ".join(missing))
      return collections.OrderedDict(
          (exported_variable_name(v.op.name), sess.run(v)) for v in model_vars)


def _write_saved_model(export_config, task, checkpoint_prefix, saved_model_dir):
  """The plain export_config BERT + head, restored from checkpoint_prefix, as a SavedModel.

  Returns the dict of serving outputs (name -> Tensor) of the signature.
  """
  graph = tf.Graph()
  with graph.as_default():
    inputs = {name: tf1.placeholder(tf.int32, [None, None], name) for name in INPUT_NAMES}
    _, _, outputs = task_spec.build_model(export_config, task, dict(inputs), False)
    serving = task.serving_outputs(outputs)
    saver = tf1.train.Saver(tf1.global_variables())
    with tf1.Session() as sess:
      saver.restore(sess, checkpoint_prefix)
      builder = tf1.saved_model.Builder(saved_model_dir)
      signature = tf1.saved_model.signature_def_utils.predict_signature_def(
          inputs=inputs, outputs=serving)
      builder.add_meta_graph_and_variables(
          sess, [tf1.saved_model.tag_constants.SERVING],
          signature_def_map={SIGNATURE_KEY: signature}, strip_default_attrs=True)
      builder.save()
  return serving


def write_tflite(export_dir):
  """Converts `<export_dir>/saved_model` into the TFLITE_FILES next to it.

  TensorFlow's converter keeps the `serving_default` signature (same input and output names,
  batch and length dynamic) only when it runs eagerly, so this must be called in a process that
  has not disabled eager execution (convert_checkpoint.py --mode=tflite is one).

  Returns:
    dict file name -> size in bytes.
  """
  if not tf.executing_eagerly():
    raise RuntimeError("the TFLite conversion needs eager execution: run it in a process of its "
                       "own (convert_checkpoint.py --mode=tflite --export_dir=...)")
  sizes = collections.OrderedDict()
  for name, quantized in TFLITE_FILES.items():
    converter = tf.lite.TFLiteConverter.from_saved_model(
        os.path.join(export_dir, "saved_model"), signature_keys=[SIGNATURE_KEY])
    if quantized:
      converter.optimizations = [tf.lite.Optimize.DEFAULT]
    model = converter.convert()
    files.atomic_write_bytes(os.path.join(export_dir, name), model)
    sizes[name] = len(model)
    logging.info("Wrote %s (%.1f MB)", os.path.join(export_dir, name), len(model) / 1e6)
  return sizes


def write_tflite_in_child_process(export_dir):
  """write_tflite in a fresh process (the run scripts build graphs with eager off).

  Raises:
    TrainingError: the conversion failed (its last lines are in the message).
  """
  script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "convert_checkpoint.py")
  proc = subprocess.run([sys.executable, script, "--mode=tflite", "--export_dir=" + export_dir],
                        capture_output=True, text=True)
  if proc.returncode != 0:
    tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
    raise TrainingError("the TFLite conversion of %s failed: %s" % (export_dir, tail))
  return collections.OrderedDict(
      (name, os.path.getsize(os.path.join(export_dir, name))) for name in TFLITE_FILES)


def load_saved_model_predictor(saved_model_dir, session_config=None):
  """Returns (session, predict_fn(feed_dict name -> array) -> dict) for an exported SavedModel."""
  graph = tf.Graph()
  sess = tf1.Session(graph=graph, config=session_config)
  with graph.as_default():
    meta = tf1.saved_model.loader.load(sess, [tf1.saved_model.tag_constants.SERVING],
                                       saved_model_dir)
  signature = meta.signature_def[SIGNATURE_KEY]
  input_names = {k: v.name for k, v in signature.inputs.items()}
  output_names = {k: v.name for k, v in signature.outputs.items()}

  def predict(inputs):
    feed = {input_names[k]: v for k, v in inputs.items()}
    return sess.run(output_names, feed)

  return sess, predict
