"""Knowledge distillation in every stage (plain fine-tuning, stage 1, stage 2), for every task.

Two kinds of teaching, mixed with the task's own (hard-label) loss:

  loss = (1 - kd_alpha) * hard + kd_alpha * soft + kd_hidden_weight * hidden

* Soft labels (--kd_alpha > 0): the teacher's outputs on every training feature (the task's
  TaskSpec.teacher_outputs) are computed once, by a forward pass over the training set, and
  cached next to the features (`teacher_logits_cache`, keyed by the teacher checkpoint's
  content), so they cost the student nothing per step. `soft` is the task's TaskSpec.soft_loss
  at temperature T (--kd_temperature): theseus/distillation/losses.py.
* Hidden matching (--kd_hidden_weight > 0): losses.hidden_matching_loss between student layer j
  (successor module j, in stage 1 whichever branch ran) and the teacher's last layer of group j;
  with --kd_embeddings also the embedding outputs. It needs the teacher's hidden states, so the
  teacher runs forward in the same step: a frozen BertModel under `teacher/` (variables not
  trainable, outputs behind stop_gradient, loaded from the teacher checkpoint on every start,
  never saved in the run's checkpoints).

The teacher is --teacher_checkpoint (default: --init_checkpoint, the predecessor a stage starts
from) with --teacher_bert_config_file (default: --bert_config_file).
"""

import json
import os

from absl import logging
import tensorflow as tf

import modeling_theseus as modeling
from theseus import files
from theseus import names
from theseus.distillation import losses
from theseus.errors import InputDataError
from theseus.stage import Stage
from theseus.training import evaluation
from theseus.training import input_pipeline

tf1 = tf.compat.v1

TEACHER_SCOPE = "teacher"
TEACHER_CACHE_VERSION = 1


def teacher_checkpoint(kd, init_checkpoint):
  """--teacher_checkpoint, else --init_checkpoint."""
  return kd.teacher_checkpoint or init_checkpoint


def teacher_config(kd, bert_config):
  """The teacher's BertConfig: --teacher_bert_config_file, else the run's own."""
  if not kd.teacher_bert_config_file:
    return bert_config
  config = modeling.BertConfig.from_json_file(kd.teacher_bert_config_file)
  config.validate()
  return config


def check_teacher(kd, init_checkpoint, bert_config, bert_config_file, student_layers):
  """Raises InputDataError when distillation cannot work (before any long work).

  Args:
    kd: DistillationSettings (their ranges are checked with the other settings).
    init_checkpoint, bert_config, bert_config_file: the run's own model.
    student_layers: the layers the student has (n in stages 1 and 2).
  """
  checkpoint = teacher_checkpoint(kd, init_checkpoint)
  if not checkpoint:
    raise InputDataError("distillation needs a teacher: --teacher_checkpoint (or "
                         "--init_checkpoint)")
  if not tf.io.gfile.exists(checkpoint + ".index"):
    raise InputDataError("teacher checkpoint not found (expected %s.index)" % checkpoint,
                         checkpoint)
  try:
    teacher = teacher_config(kd, bert_config)
  except ValueError as e:
    raise InputDataError(str(e), kd.teacher_bert_config_file)
  if kd.hidden_matching and (teacher.hidden_size != bert_config.hidden_size or
                             teacher.num_hidden_layers % student_layers):
    raise InputDataError("--kd_hidden_weight: the teacher's %d layers of width %d do not match "
                         "%d student layers of width %d (the layer count must divide)"
                         % (teacher.num_hidden_layers, teacher.hidden_size, student_layers,
                            bert_config.hidden_size),
                         kd.teacher_bert_config_file or bert_config_file)


def describe(kd, checkpoint):
  """The log line saying how this run is taught."""
  parts = []
  if kd.soft_labels:
    parts.append("soft labels (alpha %g, T %g) from teacher logits cached once" %
                 (kd.kd_alpha, kd.kd_temperature))
  if kd.hidden_matching:
    parts.append("hidden matching (weight %g%s) with the teacher run forward every step, frozen"
                 % (kd.kd_hidden_weight, ", embeddings too" if kd.kd_embeddings else ""))
  return "Distillation from %s: %s" % (checkpoint, "; ".join(parts))


def build_teacher(config, features):
  """The frozen teacher on the same inputs: a plain BertModel under teacher/, not trainable."""

  def frozen(getter, *args, **kwargs):
    kwargs["trainable"] = False
    return getter(*args, **kwargs)

  with tf1.variable_scope(TEACHER_SCOPE, custom_getter=frozen):
    return modeling.BertModel(config, False, features["input_ids"], features["input_mask"],
                              features["segment_ids"])


def student_loss(kd, task, student, hard_loss, outputs, features, config):
  """The training loss with the distillation terms, and the terms for TensorBoard.

  Builds the teacher (for hidden matching) after the student, so the student's ops and random
  seeds are those of a run without distillation.

  Args:
    kd: DistillationSettings.
    task: TaskSpec (its soft_loss).
    student: the run's BertModel; hard_loss, outputs: its head's loss and outputs.
    features: the batch (with the cached teacher outputs when kd.soft_labels).
    config: the BertConfig the teacher is built with.

  Returns:
    (loss, dict term name -> scalar Tensor).
  """
  terms = {"hard": hard_loss}
  loss = hard_loss
  if kd.soft_labels:
    if task.soft_loss is None:
      raise ValueError("this task has no soft labels")
    terms["soft"] = task.soft_loss(outputs, features, kd.kd_temperature)
    loss = (1.0 - kd.kd_alpha) * hard_loss + kd.kd_alpha * terms["soft"]
  if kd.hidden_matching:
    teacher = build_teacher(config, features)
    terms["hidden"] = losses.hidden_matching_loss(student, teacher, features["input_mask"],
                                                  kd.kd_embeddings)
    loss += kd.kd_hidden_weight * terms["hidden"]
  return loss, terms


def init_teacher(checkpoint):
  """Initialisers of the teacher/ variables from the teacher checkpoint (every start)."""
  tf1.train.init_from_checkpoint(checkpoint, {names.BERT_SCOPE + "/": TEACHER_SCOPE + "/" + names.BERT_SCOPE + "/"})


def is_teacher_variable(var):
  return var.op.name.startswith(TEACHER_SCOPE + "/")


# ----------------------------------------------------------------------------------------------
# The cache of teacher outputs.

def train_float_keys(kd, task):
  """The float features the training pipeline reads: the task's, plus the teacher's."""
  extra = list(task.teacher_outputs.values()) if kd.soft_labels else []
  return list(task.float_keys) + extra


def teacher_logits_cache(checkpoint, config, task, train_path, batch_size, session_config):
  """The training feature cache with the teacher's outputs added; built once per teacher.

  The key is the source cache (its name, which is the hash of what its features depend on) and
  the teacher checkpoint's content (its .index file, which holds every tensor's checksum) and
  config: a cache built with another teacher is rebuilt.

  Args:
    checkpoint, config: the teacher's checkpoint and BertConfig.
    task: TaskSpec (teacher_outputs: which head outputs, under which feature names).
    train_path: the training feature cache.
    batch_size, session_config: of the teacher's forward pass.

  Returns:
    the path of the TFRecord cache (train_path's features + the teacher's outputs).
  """
  key = {"features": os.path.basename(train_path),
         "teacher": files.file_digest(checkpoint + ".index"),
         "teacher_config": config.to_json_string(), "version": TEACHER_CACHE_VERSION}
  path = "%s-teacher-%s.tfrecord" % (train_path[:-len(".tfrecord")],
                                     input_pipeline.cache_key(key))
  if os.path.exists(path + ".json"):
    logging.info("Using cached teacher logits: %s", path)
    return path
  rows, _, seconds = evaluation.infer(config, task, train_path, checkpoint, batch_size,
                                      Stage.of(0), "first", session_config)
  records = []
  for record in tf1.io.tf_record_iterator(train_path):
    example = tf.train.Example.FromString(record)
    row = rows[example.features.feature[task.index_key].int64_list.value[0]]
    for output, feature in task.teacher_outputs.items():
      example.features.feature[feature].float_list.value.extend(row[output].reshape(-1).tolist())
    records.append(example.SerializeToString())
  input_pipeline.write_records(path, records)
  files.atomic_write_text(path + ".json", json.dumps(dict(key, num_features=len(records),
                                                          teacher_checkpoint=checkpoint)))
  logging.info("Teacher logits of %d features from %s in %.1fs: %s", len(records), checkpoint,
               seconds, path)
  return path
