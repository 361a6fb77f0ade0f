"""Intermediate distillation: the module distillation of stage 1, and TextBrewer-style matches.

* Module distillation (--kd_module_weight, stage 1 only): replacing can teach each successor
  module by the very group it replaces. When module j draws the successor, predecessor group j
  runs on the same input (dropout off, no gradient) and the successor module's output is matched
  to the group's output (--kd_module_loss: nmse, cosine, pkd or mse), with
  --kd_module_attention_weight also MiniLM's targets: the attention distributions and the value
  relation of the group's last layer. The loss is averaged over the modules that drew the
  successor only; it costs a forward pass of the drawn groups and no backward pass.
* Matches (--kd_matches, any stage): a list of `teacher_layer:student_layer:feature:loss:weight`
  entries between the frozen teacher and the student (layers count from 0; `embeddings` for the
  embedding output), feature `hidden` (loss mse / nmse / cosine / pkd), `attention`
  (attention_kl / attention_mse) or `value_relation` (kl), as TextBrewer's intermediate matches.
"""

import collections

import tensorflow as tf

from theseus.distillation import losses

FEATURES = ("hidden", "attention", "value_relation")
EMBEDDINGS = "embeddings"

Match = collections.namedtuple("Match", ["teacher_layer", "student_layer", "feature", "loss",
                                         "weight"])
Match.__doc__ = """One intermediate match: layers (int, or "embeddings" for hidden), feature,
loss and weight."""


def parse_matches(entries):
  """The Matches of --kd_matches entries (`t:s:feature:loss:weight`); ValueError on a bad one."""
  matches = []
  for entry in entries:
    parts = entry.split(":")
    if len(parts) != 5:
      raise ValueError("--kd_matches entry %r is not teacher_layer:student_layer:feature:loss:"
                       "weight" % entry)
    teacher_layer, student_layer, feature, loss, weight = parts
    layers = [_layer(teacher_layer, entry), _layer(student_layer, entry)]
    allowed = {"hidden": losses.HIDDEN_LOSSES, "attention": losses.ATTENTION_LOSSES,
               "value_relation": ("kl",)}
    if feature not in allowed:
      raise ValueError("--kd_matches entry %r: feature must be one of %s"
                       % (entry, ", ".join(FEATURES)))
    if loss not in allowed[feature]:
      raise ValueError("--kd_matches entry %r: a %s match takes the loss %s"
                       % (entry, feature, " / ".join(allowed[feature])))
    if EMBEDDINGS in layers and feature != "hidden":
      raise ValueError("--kd_matches entry %r: the embeddings have hidden states only" % entry)
    try:
      weight = float(weight)
    except ValueError:
      weight = -1.0
    if not weight >= 0.0 or weight == float("inf"):
      raise ValueError("--kd_matches entry %r: the weight must be a finite number >= 0" % entry)
    matches.append(Match(layers[0], layers[1], feature, loss, weight))
  return matches


def _layer(text, entry):
  if text == EMBEDDINGS:
    return text
  if not text.isdigit():
    raise ValueError("--kd_matches entry %r: a layer is an index >= 0 or %r, got %r"
                     % (entry, EMBEDDINGS, text))
  return int(text)


def check_matches(matches, teacher_layers, student_layers):
  """ValueError when a match names a layer the teacher or the student does not have."""
  for match in matches:
    for layer, count, who in ((match.teacher_layer, teacher_layers, "teacher"),
                              (match.student_layer, student_layers, "student")):
      if layer != EMBEDDINGS and layer >= count:
        raise ValueError("--kd_matches: the %s has %d layers, no layer %d"
                         % (who, count, layer))


def needs_attention(matches):
  return any(m.feature != "hidden" for m in matches)


def _hidden_rows(model, layer):
  """[B * T, H] rows of a model's layer (or embedding output)."""
  states = model.get_embedding_output() if layer == EMBEDDINGS else (
      model.get_all_encoder_layers()[layer])
  return tf.reshape(states, [-1, states.shape[-1]])


def match_loss(match, student, teacher, token_mask):
  """One match's loss (unweighted) between two BertModels on the same inputs."""
  losses.check_every_token(student)
  if match.feature == "hidden":
    return losses.hidden_loss(match.loss, _hidden_rows(student, match.student_layer),
                              tf.stop_gradient(_hidden_rows(teacher, match.teacher_layer)),
                              tf.reshape(token_mask, [-1]))
  key = "attention_probs" if match.feature == "attention" else "values"
  s = student.extras[key][match.student_layer]
  t = tf.stop_gradient(teacher.extras[key][match.teacher_layer])
  if match.feature == "attention":
    return losses.attention_loss(match.loss, s, t, token_mask)
  return losses.value_relation_loss(s, t, token_mask)


def matches_loss(matches, student, teacher, token_mask, scheduled):
  """sum of scheduled(weight) * loss over the matches; scheduled: the weight schedule."""
  return tf.add_n([scheduled(m.weight) * match_loss(m, student, teacher, token_mask)
                   for m in matches])


def module_teacher(hidden_loss, attention_weight, token_mask):
  """The stage-1 module loss (modeling_theseus's `module_teacher`) of one successor module.

  Args:
    hidden_loss: one of losses.HIDDEN_LOSSES, between the module's and the group's outputs.
    attention_weight: weight of MiniLM's attention and value-relation KL (0: none).
    token_mask: [B, T] 0/1.

  Returns:
    callable(j, student, teacher) -> float32 scalar, student / teacher = (output [B * T, H],
    attention probabilities [B, heads, T, T], values [B, heads, T, D]).
  """
  rows = tf.reshape(token_mask, [-1])

  def loss(j, student, teacher):
    del j
    value = losses.hidden_loss(hidden_loss, student[0], teacher[0], rows)
    if attention_weight:
      value += attention_weight * (
          losses.attention_loss("attention_kl", student[1], teacher[1], token_mask) +
          losses.value_relation_loss(student[2], teacher[2], token_mask))
    return value

  return loss


def module_distillation_loss(module_losses, replaced):
  """The mean module loss over the modules that drew the successor (0 when none did).

  module_losses: list of n float32 scalars (0 for a module that drew its group); replaced: bool
  Tensor [n].
  """
  drew = tf.cast(replaced, tf.float32)
  return tf.reduce_sum(tf.stack(module_losses) * drew) / tf.maximum(tf.reduce_sum(drew), 1.0)
