"""The span head of SQuAD (google-research/bert's run_squad.py: its variables and loss), and the
task's TaskSpec."""

import tensorflow as tf

from theseus import names
from theseus.distillation import losses
from theseus.errors import TrainingError
from theseus.tasks import base
from theseus.tasks.squad.features import FEATURE_KEYS

tf1 = tf.compat.v1

OUTPUT_KEYS = ("start_logits", "end_logits")
TEACHER_OUTPUTS = {"start_logits": "teacher_start_logits", "end_logits": "teacher_end_logits"}
_OUTSIDE = -10000.0  # added to the logits of padding positions


def create_span_head(sequence_output, input_mask):
  """Start and end logits of every position.

  Variables `cls/squad/output_weights` [2, H] (truncated normal, stddev 0.02) and
  `cls/squad/output_bias` [2] (zeros), as google-research/bert's run_squad.py, so its SQuAD
  checkpoints load unchanged; AUTO_REUSE, so a second tower shares them.

  Args:
    sequence_output: float Tensor [B, T, H] (H static).
    input_mask: int Tensor [B, T]; padding positions (0) get a logit of -10000.

  Returns:
    (start_logits, end_logits), float Tensors [B, T].
  """
  hidden_size = int(sequence_output.shape[-1])
  with tf1.variable_scope("", reuse=tf1.AUTO_REUSE):
    weights = tf1.get_variable(names.SQUAD_WEIGHTS, [2, hidden_size],
                               initializer=tf1.truncated_normal_initializer(stddev=0.02))
    bias = tf1.get_variable(names.SQUAD_BIAS, [2], initializer=tf1.zeros_initializer())
  shape = tf.shape(sequence_output)
  flat = tf.reshape(sequence_output, [-1, hidden_size])
  logits = tf.nn.bias_add(tf.matmul(flat, weights, transpose_b=True), bias)
  logits = tf.reshape(logits, [shape[0], shape[1], 2])
  logits += (1.0 - tf.cast(input_mask, logits.dtype))[:, :, None] * _OUTSIDE
  return logits[:, :, 0], logits[:, :, 1]


def span_loss(start_logits, end_logits, start_positions, end_positions):
  """(cross-entropy of the start position + that of the end position) / 2, over the positions
  of each row; positions: int Tensors [B]."""
  total = 0.0
  for logits, positions in ((start_logits, start_positions), (end_logits, end_positions)):
    total += tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=positions, logits=logits))
  return total / 2.0


def make_task(decode, score):
  """The TaskSpec of SQuAD.

  Args:
    decode: callable(rows) -> the set's answers (rows: one per feature, in feature_index order,
      with start_logits / end_logits over its positions).
    score: callable(answers) -> metrics with "main_metric".
  """

  def build_head(model, features, is_training):
    del is_training  # no dropout of its own, as google-research/bert's head
    start_logits, end_logits = create_span_head(tf.cast(model.get_sequence_output(), tf.float32),
                                                features["input_mask"])
    loss = None
    if "start_positions" in features:
      loss = span_loss(start_logits, end_logits,
                       tf.reshape(features["start_positions"], [-1]),
                       tf.reshape(features["end_positions"], [-1]))
    return loss, {"start_logits": start_logits, "end_logits": end_logits}

  def soft_loss(outputs, features, temperature):
    return sum(losses.position_soft_loss(outputs[name], features[TEACHER_OUTPUTS[name]],
                                         features["input_mask"], temperature)
               for name in OUTPUT_KEYS) / 2.0

  def checked_decode(rows):
    if not rows or "start_logits" not in rows[0]:
      raise TrainingError("evaluation returned no span logits")
    return decode(rows)

  return base.TaskSpec(
      int_keys=list(FEATURE_KEYS), float_keys=[], index_key="feature_index", build_head=build_head,
      decode=checked_decode, score=score, serving_outputs=serving_outputs,
      head_variable_regex=names.SQUAD_HEAD_RE, sequence_output_keys=OUTPUT_KEYS,
      teacher_outputs=TEACHER_OUTPUTS, soft_loss=soft_loss)


def serving_outputs(outputs):
  return {k: outputs[k] for k in OUTPUT_KEYS}
