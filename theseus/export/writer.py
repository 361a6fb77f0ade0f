"""Export: the successor as a plain n-layer BERT (+ task head) and a SavedModel.

An export directory holds `bert_model.ckpt.*` (successor variables under the plain `layer_{j}`
names, so google-research/bert-compatible code loads it), `bert_config.json` with
num_hidden_layers = n, the vocab, `saved_model/` (signature `serving_default`: input_ids,
input_mask, segment_ids -> the task's outputs), `export_info.json` (which names the task, by its
registry name), the task's own files (what serving needs to tokenize and decode), and with
TFLite files (tflite.py) `model.tflite` (float32) and `model_int8.tflite` (dynamic-range int8
weights), with the SavedModel's signature. It is written in a temporary directory and published
in one rename: a crash never leaves a half-written export, and a previous export survives until
the new one is complete.
"""

import collections
import contextlib
import json
import os
import re
import shutil

from absl import logging
import numpy as np
import tensorflow as tf

import modeling_theseus as modeling
from theseus import files
from theseus import layer_norm
from theseus import names
from theseus.export import tflite
from theseus.export.layout import EXPORT_INFO_FILE
from theseus.export.layout import INPUT_NAMES
from theseus.export.layout import SIGNATURE_KEY
from theseus.stage import Stage
from theseus.tasks import base
from theseus.training import checkpoints

tf1 = tf.compat.v1



def export_model(bert_config, task, task_kind, stage, suc_init, vocab_path, checkpoint,
                 export_dir, extra_files=None, with_tflite=False):
  """Writes export_dir with bert_model.ckpt.*, bert_config.json, vocab, saved_model/.

  Args:
    bert_config: the predecessor's BertConfig.
    task: TaskSpec (head and serving outputs); task_kind: its registry name.
    stage: the run's Stage (its inference graph is exported); suc_init: the rule of successor
      modules read from a plain checkpoint.
    vocab_path: the vocab.txt (or SentencePiece .model) copied into the export.
    checkpoint: the checkpoint to export (a run's, or any BERT by the Theseus rules).
    export_dir: the directory to (re)place.
    extra_files: optional dict file name -> text, written into the export too.
    with_tflite: also write model.tflite and model_int8.tflite (tflite.py).

  Returns:
    dict describing the export (also written as export_info.json).
  """
  inference = stage.inference_stage
  values, untrained = _inference_values(bert_config, task, inference, suc_init, checkpoint)
  num_layers = inference.suc_layers or bert_config.num_hidden_layers
  export_config = modeling.BertConfig.from_dict(dict(bert_config.to_dict(),
                                                     num_hidden_layers=num_layers))
  tmp = files.make_temp_dir_beside(export_dir)
  with open(os.path.join(tmp, "bert_config.json"), "w") as f:
    f.write(export_config.to_json_string())
  shutil.copy2(vocab_path, os.path.join(tmp, os.path.basename(vocab_path)))
  checkpoint_prefix = os.path.join(tmp, "bert_model.ckpt")
  checkpoints.write_checkpoint(values, checkpoint_prefix)
  serving = _write_saved_model(export_config, task, checkpoint_prefix,
                               os.path.join(tmp, "saved_model"), fused_layer_norms=True)
  info = {"task": task_kind, "num_hidden_layers": num_layers, "source_checkpoint": checkpoint,
          "parameters": int(sum(np.prod(v.shape) for v in values.values())),
          "serving_outputs": sorted(serving), "untrained_variables": untrained}
  if with_tflite:
    # TFLite's converter turns the fused LayerNorm form into more ops than the element-wise one:
    # it converts a SavedModel of its own, removed once the files are written.
    source = os.path.join(tmp, "tflite_source")
    _write_saved_model(export_config, task, checkpoint_prefix, source, fused_layer_norms=False)
    info["tflite_bytes"] = tflite.convert_in_child(tmp, source)
    shutil.rmtree(source)
  for name, text in (extra_files or {}).items():
    with open(os.path.join(tmp, name), "w", encoding="utf-8") as f:
      f.write(text)
  write_export_info(tmp, info)
  files.publish_dir(tmp, export_dir)
  logging.info("Exported a %d-layer BERT to %s", num_layers, export_dir)
  return info


def write_export_info(export_dir, info):
  """export_info.json: `info` and the sha256 of every model file (serving checks them before a
  native loader reads one, so a damaged file is one error line, not a crash)."""
  digests = {}
  for root, _, names_ in os.walk(export_dir):
    for name in names_:
      path = os.path.join(root, name)
      relative = os.path.relpath(path, export_dir)
      if relative.startswith(("saved_model", "model")):
        digests[relative] = files.file_digest(path, "sha256")
  files.atomic_write_text(os.path.join(export_dir, EXPORT_INFO_FILE), json.dumps(
      dict(info, sha256=dict(sorted(digests.items()))), indent=1))


def _inference_values(bert_config, task, stage, suc_init, checkpoint):
  """The inference graph's model variables read from `checkpoint`, under their exported names.

  Returns:
    (OrderedDict exported name -> np.ndarray (successor modules as plain layers, the head),
    the exported names the checkpoint had no value for: left to their initializers).
  """
  graph = tf.Graph()
  with graph.as_default():
    ids = tf1.placeholder(tf.int32, [None, None], "input_ids")
    features = {"input_ids": ids, "input_mask": ids, "segment_ids": ids}
    base.build_model(bert_config, task, features, False, stage)
    model_vars = [v for v in tf1.global_variables()
                  if v.op.name.startswith(names.BERT_SCOPE + "/") or
                  re.search(task.head_variable_regex, v.op.name)]
    saver = tf1.train.Saver(model_vars)
    with tf1.Session() as sess:
      missing = checkpoints.restore_variables(sess, saver, model_vars, checkpoint, suc_init)
      if missing:
        logging.warning("%s lacks %d exported variables, left to their initializers (the export "
                        "records them; predict.py refuses such an export unless told): %s",
                        checkpoint, len(missing), ", ".join(missing))
      values = sess.run(model_vars)  # one run: a run per variable would optimise a graph each
      return collections.OrderedDict(
          (names.exported_name(v.op.name), value) for v, value in zip(model_vars, values)), sorted(
              names.exported_name(n) for n in missing)


def _write_saved_model(export_config, task, checkpoint_prefix, saved_model_dir,
                       fused_layer_norms):
  """The plain export_config BERT + head, restored from checkpoint_prefix, as a SavedModel, its
  LayerNorms in the form oneDNN fuses or not (theseus/layer_norm.py).

  Returns the dict of serving outputs (name -> Tensor) of the signature.
  """
  graph = tf.Graph()
  with graph.as_default():
    inputs = {name: tf1.placeholder(tf.int32, [None, None], name) for name in INPUT_NAMES}
    with layer_norm.fused_layer_norms() if fused_layer_norms else contextlib.nullcontext():
      _, _, outputs = base.build_model(export_config, task, dict(inputs), False, Stage.of(0))
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
