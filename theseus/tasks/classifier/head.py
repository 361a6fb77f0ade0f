"""The classification (or regression) head on BERT's pooled output, and the task's TaskSpec."""

import numpy as np
import tensorflow as tf

import modeling_theseus as modeling
from theseus import names
from theseus.distillation import losses
from theseus.errors import TrainingError
from theseus.tasks import base
from theseus.tasks.classifier import metrics

tf1 = tf.compat.v1

HEAD_VARIABLE_REGEX = names.CLASSIFIER_HEAD_RE
TEACHER_OUTPUTS = {"logits": "teacher_logits"}


def create_classifier_head(pooled_output, num_labels, is_regression, labels=None,
                           dropout_prob=0.0):
  """The classification (or regression) layer on BERT's pooled [CLS] output.

  Variables `output_weights` [num_labels, hidden_size] (truncated normal, stddev 0.02) and
  `output_bias` [num_labels] (zeros), as in google-research/bert.

  Args:
    pooled_output: float Tensor [B, H].
    num_labels: C (1 for regression).
    is_regression: the output is one value, trained with the squared error.
    labels: optional Tensor [B] (or [B, 1]): int32 label ids (classification) or float values
      (regression).
    dropout_prob: dropout on pooled_output (0.0 when not training).

  Returns:
    (loss scalar or None without labels, outputs): classification {"probabilities": [B, C],
    "predictions": int32 [B], "logits": [B, C]}; regression {"predictions": [B], "logits":
    [B, 1]}.
  """
  hidden_size = pooled_output.shape[-1]
  weights = tf1.get_variable(names.CLASSIFIER_WEIGHTS, [num_labels, hidden_size],
                             initializer=tf1.truncated_normal_initializer(stddev=0.02))
  bias = tf1.get_variable(names.CLASSIFIER_BIAS, [num_labels],
                          initializer=tf1.zeros_initializer())
  pooled_output = modeling.dropout(pooled_output, dropout_prob)
  logits = tf.nn.bias_add(tf.matmul(pooled_output, weights, transpose_b=True), bias)  # [B, C]
  if labels is not None:
    labels = tf.reshape(labels, [-1])
  if is_regression:
    predictions = logits[:, 0]
    loss = None
    if labels is not None:
      loss = tf.reduce_mean(tf.square(predictions - labels))
    return loss, {"predictions": predictions, "logits": logits}
  outputs = {"probabilities": tf.nn.softmax(logits, axis=-1),
             "predictions": tf.argmax(logits, axis=-1, output_type=tf.int32), "logits": logits}
  loss = None
  if labels is not None:
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels,
                                                                         logits=logits))
  return loss, outputs



def make_task(processor, examples, augmented=False):
  """The TaskSpec of sentence (pair) classification / regression; `score` scores `examples`.

  augmented: the features carry "augmented" (1 on copies the teacher labels).
  """
  label_list = processor.get_labels()
  num_labels = 1 if processor.is_regression else len(label_list)
  label_key = "label_values" if processor.is_regression else "label_ids"

  def build_head(model, features, is_training):
    return create_classifier_head(
        model.get_pooled_output(), num_labels, processor.is_regression,
        labels=features.get(label_key),
        dropout_prob=model.config.hidden_dropout_prob if is_training else 0.0)

  def decode(rows):
    """Class probabilities [N, C] (regression: values [N]), one row per example."""
    key = "predictions" if processor.is_regression else "probabilities"
    return np.array([r[key] for r in rows])

  def score(predictions):
    if len(predictions) != len(examples):
      raise TrainingError("evaluation saw %d of %d examples" % (len(predictions), len(examples)))
    if processor.is_regression:
      labels = np.array([float(ex.label) for ex in examples])
    else:
      labels = np.array([label_list.index(ex.label) for ex in examples])
    result = metrics.compute_metrics(processor, predictions, labels)
    result["main_metric"] = processor.main_metric
    return result

  def soft_loss(outputs, features, temperature):
    if processor.is_regression:
      return losses.regression_soft_loss(outputs["logits"][:, 0],
                                         features["teacher_logits"][:, 0])
    return losses.softmax_soft_loss(outputs["logits"], features["teacher_logits"], temperature)

  def teacher_label(row):
    if processor.is_regression:
      return {"label_values": [float(row["logits"][0])]}
    return {"label_ids": [int(np.argmax(row["logits"]))]}

  return base.TaskSpec(
      int_keys=["input_ids", "segment_ids", "example_index"] + (
          [] if processor.is_regression else ["label_ids"]) + (["augmented"] if augmented else []),
      float_keys=["label_values"] if processor.is_regression else [],
      index_key="example_index", build_head=build_head, decode=decode, score=score,
      serving_outputs=serving_outputs, head_variable_regex=HEAD_VARIABLE_REGEX,
      teacher_outputs=TEACHER_OUTPUTS, soft_loss=soft_loss, teacher_label=teacher_label,
      reads_first_token_only=True)


def serving_outputs(outputs):
  """The SavedModel's outputs: probabilities and predictions (regression: predictions)."""
  return {k: v for k, v in outputs.items() if k != "logits"}
