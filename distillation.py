"""Knowledge distillation, for every stage (plain fine-tuning, stage 1, stage 2) and both tasks.

Two kinds of teaching, mixed with the task's own (hard-label) loss:

  loss = (1 - kd_alpha) * hard + kd_alpha * soft + kd_hidden_weight * hidden

* Soft labels (--kd_alpha > 0): the teacher's logits on every training feature are computed once,
  by a forward pass over the training set, and cached next to the features
  (`teacher_logits_cache`, keyed by the teacher checkpoint's content), so they cost the student
  nothing per step. `soft` is, at temperature T (--kd_temperature), T^2 times the cross-entropy
  between softmax(teacher / T) and softmax(student / T) for classification (the KL divergence
  plus the teacher's constant entropy: the same gradients), the squared error to the teacher's
  value for regression, and for NER-MRC the sigmoid cross-entropy of the start and end logits of
  every context word against sigmoid(teacher / T), masked and averaged as the hard loss is.
* Hidden matching (--kd_hidden_weight > 0): the mean squared error between the student's layer j
  (successor module j, in stage 1 whichever branch ran) and the teacher's layer (j + 1) r - 1,
  the last of the group it stands for (r = teacher layers / student layers), over real tokens;
  with --kd_embeddings also between the embedding outputs. It needs the teacher's hidden states,
  so the teacher runs forward in the same step: a frozen BertModel under `teacher/` (variables
  not trainable, outputs behind stop_gradient, loaded from the teacher checkpoint on every start,
  never saved in the run's checkpoints).

The teacher is --teacher_checkpoint (default: --init_checkpoint, the predecessor a stage starts
from) with --teacher_bert_config_file (default: --bert_config_file).
"""

from __future__ import absolute_import
from __future__ import division
from __future__ import print_function

import json
import os

from absl import logging
import tensorflow as tf

from errors import InputDataError
import evaluation
import files
import input_pipeline
import modeling_theseus as modeling

tf1 = tf.compat.v1

TEACHER_SCOPE = "teacher"
# Per kind of soft labels (TaskSpec.soft_label_kind): head output -> cached feature.
TEACHER_FEATURES = {
    "softmax": {"logits": "teacher_logits"},
    "regression": {"logits": "teacher_logits"},
    "pointers": {"start_logits": "teacher_start_logits", "end_logits": "teacher_end_logits"},
}
TEACHER_CACHE_VERSION = 1


def soft_labels_on(cfg):
  return cfg.kd_alpha > 0


def hidden_matching_on(cfg):
  return cfg.kd_hidden_weight > 0


def teacher_checkpoint(cfg):
  return cfg.teacher_checkpoint or cfg.init_checkpoint


def teacher_config(cfg, bert_config):
  """The teacher's BertConfig: --teacher_bert_config_file, else the run's own."""
  if not cfg.teacher_bert_config_file:
    return bert_config
  config = modeling.BertConfig.from_json_file(cfg.teacher_bert_config_file)
  config.validate()
  return config


def check_config(cfg, bert_config):
  """Raises InputDataError when the distillation flags cannot work (before any long work)."""
  if not 0.0 <= cfg.kd_alpha <= 1.0:
    raise InputDataError("--kd_alpha must be in [0, 1], got %r" % cfg.kd_alpha)
  if cfg.kd_temperature <= 0:
    raise InputDataError("--kd_temperature must be > 0, got %r" % cfg.kd_temperature)
  if cfg.kd_hidden_weight < 0:
    raise InputDataError("--kd_hidden_weight must be >= 0, got %r" % cfg.kd_hidden_weight)
  if not (soft_labels_on(cfg) or hidden_matching_on(cfg)) or not cfg.do_train:
    return
  checkpoint = teacher_checkpoint(cfg)
  if not checkpoint:
    raise InputDataError("distillation needs a teacher: --teacher_checkpoint (or --init_checkpoint)")
  if not tf.io.gfile.exists(checkpoint + ".index"):
    raise InputDataError("teacher checkpoint not found (expected %s.index)" % checkpoint, checkpoint)
  try:
    teacher = teacher_config(cfg, bert_config)
  except ValueError as e:
    raise InputDataError(str(e), cfg.teacher_bert_config_file)
  student_layers = cfg.suc_layers or bert_config.num_hidden_layers
  if hidden_matching_on(cfg) and (teacher.hidden_size != bert_config.hidden_size or
                                  teacher.num_hidden_layers % student_layers):
    raise InputDataError("--kd_hidden_weight: the teacher's %d layers of width %d do not match "
                         "%d student layers of width %d (the layer count must divide)"
                         % (teacher.num_hidden_layers, teacher.hidden_size, student_layers,
                            bert_config.hidden_size), cfg.teacher_bert_config_file or
                         cfg.bert_config_file)


def describe(cfg):
  """The log line saying how this run is taught."""
  parts = []
  if soft_labels_on(cfg):
    parts.append("soft labels (alpha %g, T %g) from teacher logits cached once" %
                 (cfg.kd_alpha, cfg.kd_temperature))
  if hidden_matching_on(cfg):
    parts.append("hidden matching (weight %g%s) with the teacher run forward every step, frozen"
                 % (cfg.kd_hidden_weight, ", embeddings too" if cfg.kd_embeddings else ""))
  return "Distillation from %s: %s" % (teacher_checkpoint(cfg), "; ".join(parts))


# ----------------------------------------------------------------------------------------------
# The losses.

def softmax_soft_loss(student_logits, teacher_logits, temperature):
  """T^2 * mean over the batch of CE(softmax(teacher / T), softmax(student / T)).

  Args:
    student_logits, teacher_logits: float Tensors [B, C].
    temperature: T > 0.
  """
  targets = tf.nn.softmax(teacher_logits / temperature, axis=-1)
  log_probs = tf.nn.log_softmax(student_logits / temperature, axis=-1)
  return temperature ** 2 * tf.reduce_mean(-tf.reduce_sum(targets * log_probs, axis=-1))


def regression_soft_loss(student_values, teacher_values):
  """Mean squared difference [B] vs [B] (or [B, 1])."""
  return tf.reduce_mean(tf.square(tf.reshape(student_values, [-1]) -
                                  tf.reshape(teacher_values, [-1])))


def pointer_soft_loss(student_logits, teacher_logits, mask, temperature):
  """T^2 * the sigmoid cross-entropy against sigmoid(teacher / T), averaged over mask positions.

  Args:
    student_logits, teacher_logits: float Tensors [B, T] (one pointer).
    mask: Tensor [B, T]; positions with 0 do not count.
  """
  mask = tf.cast(mask, tf.float32)
  per_token = tf.nn.sigmoid_cross_entropy_with_logits(
      labels=tf.sigmoid(teacher_logits / temperature), logits=student_logits / temperature)
  return (temperature ** 2 * tf.reduce_sum(per_token * mask) /
          tf.maximum(tf.reduce_sum(mask), 1.0))


def soft_label_loss(kind, outputs, features, temperature):
  """The soft-label loss of a head's outputs against the cached teacher features."""
  if kind == "softmax":
    return softmax_soft_loss(outputs["logits"], features["teacher_logits"], temperature)
  if kind == "regression":
    return regression_soft_loss(outputs["logits"][:, 0], features["teacher_logits"][:, 0])
  if kind == "pointers":
    mask = features["context_mask"]
    return sum(pointer_soft_loss(outputs[name], features[TEACHER_FEATURES[kind][name]], mask,
                                 temperature) for name in ("start_logits", "end_logits"))
  raise ValueError("this task has no soft labels (soft_label_kind %r)" % (kind,))


def build_teacher(config, features):
  """The frozen teacher on the same inputs: a plain BertModel under teacher/, not trainable."""

  def frozen(getter, *args, **kwargs):
    kwargs["trainable"] = False
    return getter(*args, **kwargs)

  with tf1.variable_scope(TEACHER_SCOPE, custom_getter=frozen):
    return modeling.BertModel(config, False, features["input_ids"], features["input_mask"],
                              features["segment_ids"])


def hidden_matching_loss(student, teacher, input_mask, include_embeddings):
  """Mean over matched layer pairs of the masked MSE (see the module docstring)."""
  student_layers = student.get_all_encoder_layers()
  teacher_layers = teacher.get_all_encoder_layers()
  group = len(teacher_layers) // len(student_layers)
  pairs = [(s, teacher_layers[(j + 1) * group - 1]) for j, s in enumerate(student_layers)]
  if include_embeddings:
    pairs.append((student.get_embedding_output(), teacher.get_embedding_output()))
  mask = tf.cast(input_mask, tf.float32)[:, :, None]  # [B, T, 1]
  width = float(student_layers[0].shape[-1])
  losses = [tf.reduce_sum(tf.square(s - tf.stop_gradient(t)) * mask) /
            (tf.maximum(tf.reduce_sum(mask), 1.0) * width) for s, t in pairs]
  return tf.add_n(losses) / float(len(losses))


def student_loss(cfg, task, student, hard_loss, outputs, features, config):
  """The training loss with the distillation terms, and the terms for TensorBoard.

  Builds the teacher (for hidden matching) after the student, so the student's ops and random
  seeds are those of a run without distillation.

  Returns:
    (loss, dict term name -> scalar Tensor).
  """
  terms = {"hard": hard_loss}
  loss = hard_loss
  if soft_labels_on(cfg):
    terms["soft"] = soft_label_loss(task.soft_label_kind, outputs, features, cfg.kd_temperature)
    loss = (1.0 - cfg.kd_alpha) * hard_loss + cfg.kd_alpha * terms["soft"]
  if hidden_matching_on(cfg):
    teacher = build_teacher(config, features)
    terms["hidden"] = hidden_matching_loss(student, teacher, features["input_mask"],
                                           cfg.kd_embeddings)
    loss += cfg.kd_hidden_weight * terms["hidden"]
  return loss, terms


def init_teacher(cfg):
  """Initialisers of the teacher/ variables from the teacher checkpoint (every start)."""
  tf1.train.init_from_checkpoint(teacher_checkpoint(cfg), {"bert/": TEACHER_SCOPE + "/bert/"})


def is_teacher_variable(var):
  return var.op.name.startswith(TEACHER_SCOPE + "/")


# ----------------------------------------------------------------------------------------------
# The cache of teacher logits.

def train_float_keys(cfg, task):
  """The float features the training pipeline reads: the task's, plus the teacher's."""
  extra = list(TEACHER_FEATURES[task.soft_label_kind].values()) if soft_labels_on(cfg) else []
  return list(task.float_keys) + extra


def teacher_logits_cache(cfg, bert_config, task, train_path):
  """The training feature cache with the teacher's outputs added; built once per teacher.

  The key is the source cache (its name, which is the hash of what its features depend on) and
  the teacher checkpoint's content (its .index file, which holds every tensor's checksum) and
  config: a cache built with another teacher is rebuilt.

  Returns:
    the path of the TFRecord cache (train_path's features + TEACHER_FEATURES of the task).
  """
  checkpoint = teacher_checkpoint(cfg)
  config = teacher_config(cfg, bert_config)
  key = {"features": os.path.basename(train_path),
         "teacher": files.file_fingerprint(checkpoint + ".index"),
         "teacher_config": config.to_json_string(), "version": TEACHER_CACHE_VERSION}
  path = "%s-teacher-%s.tfrecord" % (train_path[:-len(".tfrecord")],
                                     input_pipeline.cache_key(key))
  if os.path.exists(path + ".json"):
    logging.info("Using cached teacher logits: %s", path)
    return path
  teacher_cfg = cfg.replace(suc_layers=0, finetune_suc=False)
  rows, _, seconds = evaluation.infer(teacher_cfg, config, task, train_path, checkpoint,
                                      cfg.eval_batch_size)
  names = TEACHER_FEATURES[task.soft_label_kind]
  records = []
  for record in tf1.io.tf_record_iterator(train_path):
    example = tf.train.Example.FromString(record)
    row = rows[example.features.feature[task.index_key].int64_list.value[0]]
    for output, feature in names.items():
      example.features.feature[feature].float_list.value.extend(row[output].reshape(-1).tolist())
    records.append(example.SerializeToString())
  input_pipeline.write_records(path, records)
  files.atomic_write_text(path + ".json", json.dumps(dict(key, num_features=len(records),
                                                          teacher_checkpoint=checkpoint)))
  logging.info("Teacher logits of %d features from %s in %.1fs: %s", len(records), checkpoint,
               seconds, path)
  return path
