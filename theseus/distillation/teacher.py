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
from theseus.config import checks
from theseus.distillation import intermediate
from theseus.distillation import losses
from theseus.distillation import schedules
from theseus.errors import InputDataError
from theseus.stage import Stage
from theseus.training import evaluation
from theseus.training import input_pipeline

tf1 = tf.compat.v1

TEACHER_SCOPE = "teacher"
TEACHER_CACHE_VERSION = 1


def teacher_checkpoints(kd, init_checkpoint):
  """The teachers: --teacher_checkpoint, else --init_checkpoint (a list)."""
  return list(kd.teacher_checkpoint) or ([init_checkpoint] if init_checkpoint else [])


def teacher_config(kd, bert_config):
  """The teacher's BertConfig: --teacher_bert_config_file, else the run's own."""
  if not kd.teacher_bert_config_file:
    return bert_config
  config = modeling.BertConfig.from_json_file(kd.teacher_bert_config_file)
  config.validate()
  return config


def check(kd, stage, init_checkpoint, bert_config, bert_config_file, vocab_path, do_train):
  """Checks the distillation settings before any long work (InputDataError with one line), and
  warns about a flag that has no effect without another.

  Args:
    kd: DistillationSettings (their ranges are checked with the other settings).
    stage: the run's Stage.
    init_checkpoint, bert_config, bert_config_file, vocab_path: the run's own model.
    do_train: the run trains (the teachers are needed).
  """
  _warn_without_effect(kd)
  if not (kd.any and do_train):
    return
  if kd.kd_module_weight and not stage.trains_only_successor:
    raise InputDataError("--kd_module_weight needs stage 1 (--suc_layers=n without "
                         "--finetune_suc): it matches each drawn successor to its group")
  if kd.kd_augment and not kd.soft_labels:
    raise InputDataError("--kd_augment needs --kd_alpha > 0: its copies teach through the "
                         "teacher's soft labels")
  try:
    teacher = teacher_config(kd, bert_config)
  except ValueError as e:
    raise InputDataError(str(e), kd.teacher_bert_config_file)
  if teacher.vocab_size != bert_config.vocab_size:
    raise InputDataError("the teacher's vocabulary has %d entries but the student's %d: both "
                         "must read the same token ids" % (teacher.vocab_size,
                                                           bert_config.vocab_size),
                         kd.teacher_bert_config_file)
  for checkpoint in teacher_checkpoints(kd, init_checkpoint) or [None]:
    _check_teacher_checkpoint(checkpoint, teacher, vocab_path)
  student_layers = stage.suc_layers or bert_config.num_hidden_layers
  if kd.hidden_matching and (teacher.hidden_size != bert_config.hidden_size or
                             teacher.num_hidden_layers % student_layers):
    raise InputDataError("--kd_hidden_weight: the teacher's %d layers of width %d do not match "
                         "%d student layers of width %d (the layer count must divide)"
                         % (teacher.num_hidden_layers, teacher.hidden_size, student_layers,
                            bert_config.hidden_size),
                         kd.teacher_bert_config_file or bert_config_file)
  try:
    intermediate.check_matches(intermediate.parse_matches(kd.kd_matches),
                               teacher.num_hidden_layers, student_layers)
  except ValueError as e:
    raise InputDataError(str(e))


def _check_teacher_checkpoint(checkpoint, config, vocab_path):
  """The teacher checkpoint exists, fits its config, and reads the student's vocabulary (a
  vocab.txt beside it, when there is one, must be the student's)."""
  if not checkpoint:
    raise InputDataError("distillation needs a teacher: --teacher_checkpoint (or "
                         "--init_checkpoint)")
  if not tf.io.gfile.exists(checkpoint + ".index"):
    raise InputDataError("teacher checkpoint not found (expected %s.index)" % checkpoint,
                         checkpoint)
  checks.check_checkpoint_shapes(checkpoint, config)
  beside = os.path.join(os.path.dirname(checkpoint), os.path.basename(vocab_path))
  if (os.path.isfile(beside) and os.path.abspath(beside) != os.path.abspath(vocab_path) and
      files.file_digest(beside) != files.file_digest(vocab_path)):
    raise InputDataError("the teacher's vocabulary (%s beside it) is not the student's (%s)"
                         % (beside, vocab_path), checkpoint)


def _warn_without_effect(kd):
  """A warning line for each distillation flag that another one must switch on."""
  needs = [("--kd_temperature", kd.kd_temperature != 1.0, kd.soft_labels, "--kd_alpha"),
           ("--kd_embeddings", kd.kd_embeddings, kd.hidden_matching, "--kd_hidden_weight"),
           ("--kd_module_attention_weight", kd.kd_module_attention_weight > 0,
            kd.kd_module_weight > 0, "--kd_module_weight"),
           ("--teacher_checkpoint", bool(kd.teacher_checkpoint), kd.any, "a distillation flag"),
           ("--teacher_bert_config_file", bool(kd.teacher_bert_config_file), kd.any,
            "a distillation flag")]
  for flag, given, needed, other in needs:
    if given and not needed:
      logging.warning("%s has no effect without %s", flag, other)


def describe(kd, checkpoints):
  """The log line saying how this run is taught."""
  parts = []
  if kd.soft_labels:
    parts.append("soft labels (alpha %g, T %g) from teacher logits cached once" %
                 (kd.kd_alpha, kd.kd_temperature))
  if kd.hidden_matching:
    parts.append("hidden matching (weight %g%s) with the teacher run forward every step, frozen"
                 % (kd.kd_hidden_weight, ", embeddings too" if kd.kd_embeddings else ""))
  if kd.kd_matches:
    parts.append("intermediate matches %s" % ", ".join(kd.kd_matches))
  if kd.kd_module_weight:
    parts.append("module distillation (weight %g, %s%s) of each drawn successor by its group"
                 % (kd.kd_module_weight, kd.kd_module_loss,
                    ", attention %g" % kd.kd_module_attention_weight
                    if kd.kd_module_attention_weight else ""))
  if kd.kd_augment:
    parts.append("%d augmented copies of each example, labelled by the teacher" % kd.kd_augment)
  if "constant" not in (kd.kd_temperature_schedule, kd.kd_weight_schedule) or (
      kd.kd_temperature_schedule != kd.kd_weight_schedule):
    parts.append("schedules: temperature %s, weights %s" % (kd.kd_temperature_schedule,
                                                            kd.kd_weight_schedule))
  return "Distillation from %s: %s" % (", ".join(checkpoints), "; ".join(parts))


def build_teacher(config, features, expose_attention=False):
  """The frozen teacher on the same inputs: a plain BertModel under teacher/, not trainable."""

  def frozen(getter, *args, **kwargs):
    kwargs["trainable"] = False
    return getter(*args, **kwargs)

  with tf1.variable_scope(TEACHER_SCOPE, custom_getter=frozen):
    return modeling.BertModel(config, False, features["input_ids"], features["input_mask"],
                              features["segment_ids"], expose_attention=expose_attention)


def student_loss(kd, task, student, hard_loss, outputs, features, config, done=None):
  """The training loss with the distillation terms, and the terms for TensorBoard.

  Builds the teacher (for hidden matching and matches) after the student, so the student's ops
  and random seeds are those of a run without distillation.

  Args:
    kd: DistillationSettings.
    task: TaskSpec (its soft_loss).
    student: the run's BertModel (with its attention exposed when matches need it, and stage
      1's module losses with --kd_module_weight); hard_loss, outputs: its head's.
    features: the batch (with the cached teacher outputs when kd.soft_labels).
    config: the teacher's BertConfig.
    done: the run's progress (schedules.progress), for schedules other than constant.

  Returns:
    (loss, dict term name -> scalar Tensor).
  """
  terms = {"hard": hard_loss}
  loss = hard_loss
  scheduled = lambda value: schedules.weight(kd.kd_weight_schedule, value, done)  # noqa: E731
  if kd.soft_labels:
    if task.soft_loss is None:
      raise ValueError("this task has no soft labels")
    terms["soft"] = task.soft_loss(outputs, features, schedules.temperature(
        kd.kd_temperature_schedule, kd.kd_temperature, done))
    alpha = scheduled(kd.kd_alpha)
    loss = (1.0 - alpha) * hard_loss + alpha * terms["soft"]
  matches = intermediate.parse_matches(kd.kd_matches)
  if kd.runs_teacher:
    teacher = build_teacher(config, features, intermediate.needs_attention(matches))
  if kd.hidden_matching:
    terms["hidden"] = losses.hidden_matching_loss(student, teacher, features["input_mask"],
                                                  kd.kd_embeddings)
    loss += scheduled(kd.kd_hidden_weight) * terms["hidden"]
  if matches:
    terms["matches"] = intermediate.matches_loss(matches, student, teacher,
                                                 features["input_mask"], scheduled)
    loss += terms["matches"]
  if kd.kd_module_weight:
    terms["module"] = intermediate.module_distillation_loss(student.extras["module_losses"],
                                                            student.replaced_modules)
    loss += scheduled(kd.kd_module_weight) * terms["module"]
  return loss, terms


def module_teacher(kd, stage, features):
  """The encoder's stage-1 module teacher for --kd_module_weight (None when not asked)."""
  if not kd.kd_module_weight or not stage.trains_only_successor:
    return None
  return intermediate.module_teacher(kd.kd_module_loss, kd.kd_module_attention_weight,
                                     features["input_mask"])


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


def teacher_logits_cache(checkpoints, config, task, train_path, batch_size, session_config):
  """The training feature cache with the teachers' outputs added; built once per teacher set.

  The key is the source cache (its name, which is the hash of what its features depend on) and
  each teacher checkpoint's content (its .index file, which holds every tensor's checksum) and
  the config: a cache built with other teachers is rebuilt. With several teachers each output is
  the mean of theirs.

  Args:
    checkpoints, config: the teachers' checkpoints (a list) and their BertConfig.
    task: TaskSpec (teacher_outputs: which head outputs, under which feature names).
    train_path: the training feature cache.
    batch_size, session_config: of the teachers' forward passes.

  Returns:
    the path of the TFRecord cache (train_path's features + the teachers' outputs).
  """
  digests = [files.file_digest(c + ".index") for c in checkpoints]
  key = {"features": os.path.basename(train_path),
         "teacher": digests[0] if len(digests) == 1 else digests,
         "teacher_config": config.to_json_string(), "version": TEACHER_CACHE_VERSION}
  path = "%s-teacher-%s.tfrecord" % (train_path[:-len(".tfrecord")],
                                     input_pipeline.cache_key(key))
  if os.path.exists(path + ".json"):
    logging.info("Using cached teacher logits: %s", path)
    return path
  outputs, seconds = _mean_teacher_outputs(checkpoints, config, task, train_path, batch_size,
                                           session_config)
  records = []
  for record in tf1.io.tf_record_iterator(train_path):
    example = tf.train.Example.FromString(record)
    index = example.features.feature[task.index_key].int64_list.value[0]
    for output, feature in task.teacher_outputs.items():
      example.features.feature[feature].float_list.value.extend(
          outputs[output][index].reshape(-1).tolist())
    if _is_augmented(example):  # a copy --kd_augment made: the teacher's prediction is its label
      _relabel(example, task.teacher_label({o: outputs[o][index] for o in task.teacher_outputs}))
    records.append(example.SerializeToString())
  input_pipeline.write_records(path, records)
  files.atomic_write_text(path + ".json", json.dumps(dict(
      key, num_features=len(records), teacher_checkpoint=list(checkpoints))))
  logging.info("Teacher logits of %d features from %s in %.1fs: %s", len(records),
               ", ".join(checkpoints), seconds, path)
  return path


def _is_augmented(example):
  values = example.features.feature["augmented"].int64_list.value if (
      "augmented" in example.features.feature) else []
  return bool(values and values[0])


def _relabel(example, labels):
  """Replaces the label features of a tf.train.Example with `labels` {name: values}."""
  for name, values in labels.items():
    feature = example.features.feature[name]
    kind = feature.WhichOneof("kind")
    target = feature.int64_list if kind == "int64_list" else feature.float_list
    del target.value[:]
    target.value.extend(values)


def _mean_teacher_outputs(checkpoints, config, task, train_path, batch_size, session_config):
  """({output: list by feature index of the teachers' mean value}, seconds)."""
  sums, seconds = None, 0.0
  for checkpoint in checkpoints:
    rows, _, spent = evaluation.infer(config, task, train_path, checkpoint, batch_size,
                                      Stage.of(0), "first", session_config)
    seconds += spent
    values = {name: [row[name] for row in rows] for name in task.teacher_outputs}
    sums = values if sums is None else {
        name: [a + b for a, b in zip(sums[name], values[name])] for name in values}
  return {name: [v / float(len(checkpoints)) for v in vs] for name, vs in sums.items()}, seconds
