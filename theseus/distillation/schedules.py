"""Distillation schedules, computed from global_step in the graph like the replace rate, so a
resumed run continues them exactly.

With progress = min(1, global_step / num_train_steps):
  weights (every distillation weight: --kd_alpha, --kd_hidden_weight, --kd_module_weight and
  the --kd_matches weights): constant w; linear_growth w * progress (0 -> w); linear_decay
  w * (1 - progress) (w -> 0);
  temperature: constant T; linear_growth 1 + (T - 1) * progress (1 -> T); linear_decay
  T - (T - 1) * progress (T -> 1).
"""

import tensorflow as tf

SCHEDULES = ("constant", "linear_growth", "linear_decay")


def progress(global_step, num_train_steps):
  """min(1, global_step / num_train_steps) as a float32 scalar Tensor."""
  return tf.minimum(1.0, tf.cast(global_step, tf.float32) / float(max(1, num_train_steps)))


def weight(kind, value, done):
  """A distillation weight `value` under schedule `kind` at `done` (progress, a Tensor); a
  constant one is a Python float."""
  if kind == "constant":
    return float(value)
  if kind == "linear_growth":
    return float(value) * done
  if kind == "linear_decay":
    return float(value) * (1.0 - done)
  raise ValueError("unknown schedule %r (choose from %s)" % (kind, ", ".join(SCHEDULES)))


def temperature(kind, value, done):
  """The temperature `value` under schedule `kind` at `done` (between 1 and value); a constant
  one is a Python float."""
  if kind == "constant":
    return float(value)
  if kind == "linear_growth":
    return 1.0 + (float(value) - 1.0) * done
  if kind == "linear_decay":
    return float(value) - (float(value) - 1.0) * done
  raise ValueError("unknown schedule %r (choose from %s)" % (kind, ", ".join(SCHEDULES)))
