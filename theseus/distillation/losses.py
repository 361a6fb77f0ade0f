"""Distillation losses: soft labels at a temperature, and hidden-state matching.

Pure functions of Tensors; a task's TaskSpec.soft_loss picks the soft-label loss of its head,
theseus/distillation/teacher.py mixes them into a run's loss.
"""

import tensorflow as tf


def softmax_soft_loss(student_logits, teacher_logits, temperature):
  """T^2 * mean over the batch of CE(softmax(teacher / T), softmax(student / T)).

  The KL divergence plus the teacher's constant entropy: the same gradients.

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
    temperature: T > 0.
  """
  mask = tf.cast(mask, tf.float32)
  per_token = tf.nn.sigmoid_cross_entropy_with_logits(
      labels=tf.sigmoid(teacher_logits / temperature), logits=student_logits / temperature)
  return (temperature ** 2 * tf.reduce_sum(per_token * mask) /
          tf.maximum(tf.reduce_sum(mask), 1.0))


def hidden_matching_loss(student, teacher, input_mask, include_embeddings):
  """Mean over matched layer pairs of the MSE over real tokens.

  Student layer j (successor module j) is matched with the teacher's layer (j + 1) r - 1, the
  last of the group it stands for (r = teacher layers / student layers); with
  include_embeddings the embedding outputs too.

  Args:
    student, teacher: BertModels on the same inputs.
    input_mask: int Tensor [B, T], 1 on real tokens.
    include_embeddings: also match the embedding outputs.
  """
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
