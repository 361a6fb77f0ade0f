"""Checkpoints: the one writer of a checkpoint from arrays, restoring, the best copy, lookup.

* `write_checkpoint`: {variable name: array} -> a TF checkpoint (the converter, the export and the
  benchmarks all write through it).
* `restore_variables`: loads a graph's variables from a checkpoint by name, or, when the names do
  not all match (a predecessor or exported BERT for a Theseus / successor graph), by the Theseus
  assignment rules of modeling_theseus.
* `copy_checkpoint`, `best_checkpoint`, `checkpoint_for_inference`: the `<output_dir>/best` copy
  kept with --evaluate_during_training, and which checkpoint evaluation, prediction and export use.
"""

import glob
import json
import os
import shutil

import numpy as np
import tensorflow as tf

import modeling_theseus as modeling
from theseus import files
from theseus import names
from theseus.errors import InputDataError

tf1 = tf.compat.v1

BEST_DIR = "best"


def write_state_file(checkpoint_prefix):
  """Writes the `checkpoint` state file next to a checkpoint, with a relative path.

  The directory can then be moved and `tf.train.latest_checkpoint` still finds it.
  """
  base = os.path.basename(checkpoint_prefix)
  with open(os.path.join(os.path.dirname(checkpoint_prefix), "checkpoint"), "w") as f:
    f.write('model_checkpoint_path: "%s"\nall_model_checkpoint_paths: "%s"\n' % (base, base))


def write_checkpoint(tensors, checkpoint_prefix):
  """Writes {variable name: np.ndarray} as a TF checkpoint (tf.compat.v1 Saver) + state file.

  The values are fed through placeholders, so the graph holds no copy of them and checkpoints
  over the 2 GB graph limit work.

  Args:
    tensors: dict of variable name -> array (any dtype TensorFlow knows).
    checkpoint_prefix: path prefix, e.g. `<dir>/bert_model.ckpt`.
  """
  graph = tf.Graph()
  with graph.as_default():
    var_list, feed = {}, {}
    for i, name in enumerate(sorted(tensors)):
      value = np.asarray(tensors[name])
      ph = tf1.placeholder(tf.as_dtype(value.dtype), value.shape, name="value_%d" % i)
      var_list[name] = tf1.Variable(ph, name="var_%d" % i, trainable=False)
      feed[ph] = value
    saver = tf1.train.Saver(var_list=var_list, max_to_keep=None)
    with tf1.Session(graph=graph) as sess:
      sess.run(tf1.global_variables_initializer(), feed_dict=feed)
      saver.save(sess, checkpoint_prefix, write_meta_graph=False, write_state=False)
  write_state_file(checkpoint_prefix)


def read_checkpoint(checkpoint, keep=None):
  """{name: np.ndarray} of a checkpoint's variables (those for which keep(name) is true)."""
  reader = tf.train.load_checkpoint(checkpoint)
  return {name: reader.get_tensor(name) for name in sorted(reader.get_variable_to_shape_map())
          if keep is None or keep(name)}


def variable_names(checkpoint):
  return {name for name, _ in tf.train.list_variables(checkpoint)}


def restore_variables(sess, saver, variables, checkpoint, suc_init="first"):
  """Loads `variables` of sess.graph from `checkpoint`.

  A checkpoint that holds every variable by name (a run's own) is restored with `saver`. Any
  other BERT checkpoint (a predecessor for the successor graph, an export) goes through
  modeling_theseus.init_from_checkpoint_for_theseus; the graph must then not be finalized.

  Args:
    sess: the Session whose graph holds `variables`.
    saver: a tf1.train.Saver over (at least) `variables`.
    variables: the variables to load.
    checkpoint: checkpoint path prefix.
    suc_init: the rule for successor modules read from plain layers.

  Returns:
    list of the names of `variables` the checkpoint had no value for (left to their
    initializers).
  """
  if {v.op.name for v in variables} <= variable_names(checkpoint):
    saver.restore(sess, checkpoint)
    return []
  with sess.graph.as_default():
    initialized = modeling.init_from_checkpoint_for_theseus(variables, checkpoint, suc_init)
    sess.run(tf1.variables_initializer(variables))
  return [v.op.name for v in variables if v.op.name not in initialized]


def find_latest_checkpoint(directory):
  """The newest checkpoint in `directory` (None when there is none, or no directory).

  The state file's entry is read by its file name in `directory`: a run directory that was
  copied or moved (or is mounted elsewhere on another machine) resumes from its own files, not
  from the absolute path TensorFlow recorded.
  """
  if not directory or not tf.io.gfile.isdir(directory):
    return None
  state = tf.train.get_checkpoint_state(directory)
  if state and state.model_checkpoint_path:
    local = os.path.join(directory, os.path.basename(state.model_checkpoint_path))
    if tf.io.gfile.exists(local + ".index"):
      return local
  return tf.train.latest_checkpoint(directory)


def global_step_of(checkpoint):
  return int(tf.train.load_checkpoint(checkpoint).get_tensor(names.GLOBAL_STEP))


def copy_checkpoint(checkpoint, target_dir, extra_files=None):
  """Copies a checkpoint (and `extra_files`, name -> text) into target_dir atomically."""
  tmp = files.make_temp_dir_beside(target_dir)
  for path in glob.glob(checkpoint + ".*"):
    shutil.copy2(path, os.path.join(tmp, os.path.basename(path)))
  write_state_file(os.path.join(tmp, os.path.basename(checkpoint)))
  for name, text in (extra_files or {}).items():
    with open(os.path.join(tmp, name), "w") as f:
      f.write(text)
  files.publish_dir(tmp, target_dir)


def best_checkpoint(output_dir):
  best = os.path.join(output_dir, BEST_DIR)
  files.recover_dir(best)
  return find_latest_checkpoint(best)


def checkpoint_for_inference(output_dir, evaluate_during_training, init_checkpoint):
  """The checkpoint eval / predict / export use.

  The best one (with --evaluate_during_training), else the newest in output_dir, else
  --init_checkpoint.
  """
  if evaluate_during_training:
    best = best_checkpoint(output_dir)
    if best:
      return best
  latest = find_latest_checkpoint(output_dir)
  if latest:
    return latest
  if init_checkpoint:
    return init_checkpoint
  raise InputDataError("no checkpoint in output_dir and no --init_checkpoint to evaluate",
                       output_dir)


def kept_checkpoint_note(output_dir):
  """What a user still has after a fault: the newest checkpoint, or none."""
  latest = find_latest_checkpoint(output_dir)
  if latest:
    return "The last good checkpoint is kept: %s" % latest
  return "No checkpoint had been written yet."


def truncate_bert(checkpoint, bert_config_file, keep_layers, out_dir):
  """The first `keep_layers` layers of a BERT (+ embeddings, pooler, head) as a plain BERT.

  Writes out_dir/bert_model.ckpt (optimizer slots and global_step dropped) and a
  bert_config.json with num_hidden_layers = keep_layers, unless they are there already.

  Returns:
    (checkpoint prefix, bert_config.json path).
  """
  prefix = os.path.join(out_dir, "bert_model.ckpt")
  config_path = os.path.join(out_dir, "bert_config.json")
  if os.path.exists(prefix + ".index") and os.path.exists(config_path):
    return prefix, config_path
  os.makedirs(out_dir, exist_ok=True)

  def keep(name):
    return (not names.OPTIMIZER_SLOT_RE.search(name) and name != names.GLOBAL_STEP and
            not names.beyond_layer(name, keep_layers))

  write_checkpoint(read_checkpoint(checkpoint, keep), prefix)
  with open(bert_config_file) as f:
    config = json.load(f)
  config["num_hidden_layers"] = keep_layers
  files.atomic_write_text(config_path, json.dumps(config, indent=2))
  return prefix, config_path

