"""The start/end pointer head of NER as MRC, its (focal) loss, and the task's TaskSpec."""

import tensorflow as tf

import modeling_theseus as modeling
from theseus.distillation import losses
from theseus.errors import TrainingError
from theseus.tasks import base
from theseus.tasks.ner_mrc import decoding
from theseus.tasks.ner_mrc.features import FEATURE_KEYS

# Names of the start/end pointer variables (a dense layer [hidden_size, 2]; column 0 scores
# "an entity starts at this word", column 1 "an entity ends at this word").
HEAD_SCOPE = "mrc/start_end"
HEAD_KERNEL_NAME = HEAD_SCOPE + "/kernel"
HEAD_BIAS_NAME = HEAD_SCOPE + "/bias"
HEAD_VARIABLE_REGEX = r"^mrc/"

LOSS_TYPES = ("ce", "focal")

# Outputs of the head (and of the SavedModel): per-position sigmoid probabilities [B, T].
OUTPUT_KEYS = ("start_probs", "end_probs")
TEACHER_OUTPUTS = {"start_logits": "teacher_start_logits", "end_logits": "teacher_end_logits"}


def create_mrc_head(sequence_output, context_mask, start_labels=None, end_labels=None,
                    loss_type="ce", focal_gamma=2.0, dropout_prob=0.0, initializer_range=0.02):
  """Start/end pointers on top of BERT's sequence output.

  One dense layer [hidden_size, 2] scores every position: column 0 is the start logit, column 1
  the end logit (variables `mrc/start_end/kernel` [H, 2], truncated normal with stddev
  `initializer_range`, and `mrc/start_end/bias` [2], zeros; made with AUTO_REUSE so that a second
  tower shares them). Works with a dynamic batch size and sequence length.

  Args:
    sequence_output: float Tensor [B, T, H] (H static).
    context_mask: int or float Tensor [B, T]; 1 where the loss (and decoding) applies.
    start_labels, end_labels: optional int Tensors [B, T] of 0/1.
    loss_type: "ce" (per-token sigmoid cross-entropy) or "focal".
    focal_gamma: the focal loss exponent (gamma = 0 gives "ce").
    dropout_prob: dropout on `sequence_output` (pass 0.0 at evaluation).
    initializer_range: stddev of the kernel initializer.

  Returns:
    (start_logits [B, T], end_logits [B, T], loss scalar or None when labels are not given).
    Probabilities are tf.sigmoid of the logits.
  """
  hidden_size = sequence_output.shape[-1]
  if hidden_size is None:
    raise ValueError("the hidden size of sequence_output must be static")
  hidden_size = int(hidden_size)
  with tf.compat.v1.variable_scope(HEAD_SCOPE, reuse=tf.compat.v1.AUTO_REUSE):
    kernel = tf.compat.v1.get_variable(
        "kernel", [hidden_size, 2],
        initializer=tf.compat.v1.truncated_normal_initializer(stddev=initializer_range))
    bias = tf.compat.v1.get_variable("bias", [2], initializer=tf.compat.v1.zeros_initializer())

  sequence_output = modeling.dropout(sequence_output, dropout_prob)
  shape = tf.shape(sequence_output)
  batch_size, seq_length = shape[0], shape[1]
  flat = tf.reshape(sequence_output, [-1, hidden_size])
  logits = tf.nn.bias_add(tf.matmul(flat, kernel), bias)
  logits = tf.reshape(logits, [batch_size, seq_length, 2])
  start_logits = logits[:, :, 0]
  end_logits = logits[:, :, 1]

  if start_labels is None or end_labels is None:
    return start_logits, end_logits, None
  loss = compute_mrc_loss(start_logits, end_logits, context_mask, start_labels, end_labels,
                          loss_type=loss_type, focal_gamma=focal_gamma)
  return start_logits, end_logits, loss


def _pointer_token_loss(logits, labels, loss_type, focal_gamma):
  """Per-position binary loss [B, T] of one pointer."""
  labels = tf.cast(labels, tf.float32)
  # Signed logit: large when the prediction agrees with the label; ce = -log(p_t) =
  # softplus(-z_signed), written this way so that it is exact and stable for any logit.
  z_signed = tf.where(labels > 0.5, logits, -logits)
  ce = tf.nn.softplus(-z_signed)
  if loss_type == "ce":
    return ce
  # Focal loss: (1 - p_t) ** gamma * ce with 1 - p_t = sigmoid(-z_signed), taken in log space
  # so that gamma = 0 gives exactly ce and saturated positions have finite gradients.
  modulator = tf.exp(focal_gamma * tf.math.log_sigmoid(-z_signed))
  return modulator * ce


def compute_mrc_loss(start_logits, end_logits, context_mask, start_labels, end_labels,
                     loss_type="ce", focal_gamma=2.0):
  """The MRC pointer loss: start loss + end loss, each averaged over context_mask positions.

  Args:
    start_logits, end_logits: float Tensors [B, T].
    context_mask: Tensor [B, T]; positions with 0 do not contribute at all (their logits and
      labels may be anything finite or not).
    start_labels, end_labels: int Tensors [B, T] of 0/1.
    loss_type: "ce" or "focal".
    focal_gamma: the focal exponent.

  Returns:
    float scalar Tensor.
  """
  if loss_type not in LOSS_TYPES:
    raise ValueError("unknown loss_type %r (expected one of %s)" % (loss_type,
                                                                   ", ".join(LOSS_TYPES)))
  mask = tf.cast(context_mask, tf.float32) > 0.5
  num_positions = tf.maximum(tf.reduce_sum(tf.cast(mask, tf.float32)), 1.0)
  total = 0.0
  for logits, labels in ((start_logits, start_labels), (end_logits, end_labels)):
    per_token = _pointer_token_loss(logits, labels, loss_type, focal_gamma)
    per_token = tf.where(mask, per_token, tf.zeros_like(per_token))
    total += tf.reduce_sum(per_token) / num_positions
  return total



def make_task(loss_type, focal_gamma, span_threshold, max_span_length, sentences, metas,
              entity_types):
  """The TaskSpec of NER-as-MRC.

  Args:
    loss_type, focal_gamma: the pointer loss (LOSS_TYPES).
    span_threshold, max_span_length: decoding (0: no length limit).
    sentences, metas: the set `decode` / `score` read (empty when nothing is scored).
    entity_types: the query map's types, in its order (ties in decoding).
  """

  def build_head(model, features, is_training):
    start_logits, end_logits, loss = create_mrc_head(
        model.get_sequence_output(), features.get("context_mask"),
        start_labels=features.get("start_labels"), end_labels=features.get("end_labels"),
        loss_type=loss_type, focal_gamma=focal_gamma,
        dropout_prob=model.config.hidden_dropout_prob if is_training else 0.0)
    outputs = {"start_probs": tf.sigmoid(start_logits), "end_probs": tf.sigmoid(end_logits),
               "start_logits": start_logits, "end_logits": end_logits}
    return loss, outputs

  def decode(rows):
    """BIO tags per sentence (rows: one per feature, in feature_index order)."""
    if len(rows) != len(metas):
      raise TrainingError("evaluation saw %d of %d features" % (len(rows), len(metas)))
    return decoding.decode_sentence_predictions(
        sentences, metas, [r["start_probs"] for r in rows], [r["end_probs"] for r in rows],
        threshold=span_threshold, max_span_length=max_span_length or None,
        entity_types=entity_types)

  def score(pred_tags):
    return decoding.flatten_metrics(decoding.ner_metrics([s.tags for s in sentences],
                                                         pred_tags))

  def soft_loss(outputs, features, temperature):
    mask = features["context_mask"]
    return sum(losses.pointer_soft_loss(outputs[name], features[TEACHER_OUTPUTS[name]], mask,
                                        temperature) for name in ("start_logits", "end_logits"))

  # input_mask is not stored: make_dataset rebuilds it from input_ids.
  int_keys = [k for k in FEATURE_KEYS if k != "input_mask"]
  return base.TaskSpec(
      int_keys=int_keys, float_keys=[], index_key="feature_index", build_head=build_head,
      decode=decode, score=score, serving_outputs=serving_outputs,
      head_variable_regex=HEAD_VARIABLE_REGEX,
      sequence_output_keys=OUTPUT_KEYS + ("start_logits", "end_logits"),
      teacher_outputs=TEACHER_OUTPUTS, soft_loss=soft_loss)


def serving_outputs(outputs):
  return {k: outputs[k] for k in OUTPUT_KEYS}
