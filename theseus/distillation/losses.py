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


def position_soft_loss(student_logits, teacher_logits, mask, temperature):
  """T^2 * the mean over the batch of CE(softmax(teacher / T), softmax(student / T)) over the
  positions of each row (a span pointer: SQuAD's start or end); positions with mask 0 take no
  part.

  Args:
    student_logits, teacher_logits: float Tensors [B, T].
    mask: Tensor [B, T] (1 on real positions).
    temperature: T > 0.
  """
  outside = (1.0 - tf.cast(mask, tf.float32)) * -10000.0
  targets = tf.nn.softmax((teacher_logits + outside) / temperature, axis=-1)
  log_probs = tf.nn.log_softmax((student_logits + outside) / temperature, axis=-1)
  return temperature ** 2 * tf.reduce_mean(-tf.reduce_sum(targets * log_probs, axis=-1))


def check_every_token(model):
  """ValueError when `model`'s last layer computed the first token only (first_token_only)."""
  if model.first_token_only:
    raise ValueError("the student's last layer computes the first token only; hidden-state "
                     "losses need every token (build it with all_tokens=True)")


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
  check_every_token(student)
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


# ----------------------------------------------------------------------------------------------
# Intermediate matches: hidden states and attention, over real tokens only. Hidden states are
# [N, H] rows (flattened [batch * length, hidden]) with a 0/1 row mask [N]; attention
# probabilities [B, heads, T, T] and values [B, heads, T, D] with a 0/1 token mask [B, T].

HIDDEN_LOSSES = ("mse", "nmse", "cosine", "pkd")
ATTENTION_LOSSES = ("attention_kl", "attention_mse")
_EPSILON = 1e-12


def _masked_mean(per_row, mask):
  """The mean of per_row [N] over rows where mask [N] is 1."""
  mask = tf.cast(mask, tf.float32)
  return tf.reduce_sum(per_row * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


def hidden_loss(kind, student, teacher, mask):
  """A hidden-state loss averaged over real rows.

  mse: mean squared difference per element; nmse: mse divided by the teacher's mean square
  per element (scale-free); cosine: 1 - cosine similarity of the two vectors; pkd: mse of the
  L2-normalised vectors (Patient KD).

  Args:
    kind: one of HIDDEN_LOSSES.
    student, teacher: float Tensors [N, H] (teacher outside the gradient).
    mask: [N] 0/1.
  """
  student, teacher = tf.cast(student, tf.float32), tf.cast(teacher, tf.float32)
  if kind == "mse":
    return _masked_mean(tf.reduce_mean(tf.square(student - teacher), -1), mask)
  if kind == "nmse":
    return (_masked_mean(tf.reduce_mean(tf.square(student - teacher), -1), mask) /
            tf.maximum(_masked_mean(tf.reduce_mean(tf.square(teacher), -1), mask), _EPSILON))
  if kind == "cosine":
    cos = tf.reduce_sum(tf.math.l2_normalize(student, -1, _EPSILON) *
                        tf.math.l2_normalize(teacher, -1, _EPSILON), -1)
    return _masked_mean(1.0 - cos, mask)
  if kind == "pkd":
    difference = (tf.math.l2_normalize(student, -1, _EPSILON) -
                  tf.math.l2_normalize(teacher, -1, _EPSILON))
    return _masked_mean(tf.reduce_mean(tf.square(difference), -1), mask)
  raise ValueError("unknown hidden loss %r (choose from %s)" % (kind, ", ".join(HIDDEN_LOSSES)))


def _query_mask(token_mask, num_heads):
  """[B * heads * T] 0/1: the real query positions of every head."""
  mask = tf.cast(token_mask, tf.float32)[:, None, :]  # [B, 1, T]
  return tf.reshape(tf.tile(mask, [1, num_heads, 1]), [-1])


def attention_loss(kind, student_probs, teacher_probs, token_mask):
  """attention_kl: KL(teacher || student) of each real query's distribution over the keys;
  attention_mse: mean squared difference of the probabilities; averaged over heads and real
  query positions.

  Args:
    student_probs, teacher_probs: [B, heads, T, T] (rows sum to 1 over real keys).
    token_mask: [B, T] 0/1.
  """
  heads = tf.shape(student_probs)[1]
  length = tf.shape(student_probs)[-1]
  s = tf.reshape(tf.cast(student_probs, tf.float32), [-1, length])
  t = tf.reshape(tf.cast(teacher_probs, tf.float32), [-1, length])
  if kind == "attention_kl":
    per_row = tf.reduce_sum(t * (tf.math.log(t + _EPSILON) - tf.math.log(s + _EPSILON)), -1)
  elif kind == "attention_mse":
    per_row = tf.reduce_mean(tf.square(s - t), -1)
  else:
    raise ValueError("unknown attention loss %r (choose from %s)"
                     % (kind, ", ".join(ATTENTION_LOSSES)))
  return _masked_mean(per_row, _query_mask(token_mask, heads))


def value_relation(values, token_mask):
  """MiniLM's value relation: softmax(V V^T / sqrt(d)) per head over real keys, [B, h, T, T].

  values: [B, heads, T, D]; token_mask: [B, T].
  """
  values = tf.cast(values, tf.float32)
  scores = tf.matmul(values, values, transpose_b=True) / tf.sqrt(
      tf.cast(tf.shape(values)[-1], tf.float32))
  bias = (1.0 - tf.cast(token_mask, tf.float32))[:, None, None, :] * -10000.0
  return tf.nn.softmax(scores + bias, -1)


def value_relation_loss(student_values, teacher_values, token_mask):
  """KL(teacher's value relation || the student's), averaged like attention_loss."""
  return attention_loss("attention_kl", value_relation(student_values, token_mask),
                        value_relation(teacher_values, token_mask), token_mask)
