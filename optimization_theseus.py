"""Optimisation for BERT-of-Theseus: AdamWeightDecay, warmup + linear decay, gradient clipping,
gradient accumulation, and the choice of variables each stage updates.

Stages (the README's "How it works"):
  * plain fine-tuning (no `suc_layer_*` variables in the graph): every trainable variable;
  * stage 1 (the Theseus graph, finetune_suc=False): only `bert/encoder/suc_layer_*`;
  * stage 2 (finetune_suc=True, the successor-only graph): every trainable variable of that graph.
`train_scope` (a regular expression) overrides the default choice, e.g. to add the head in stage 1.
"""

from __future__ import absolute_import
from __future__ import division
from __future__ import print_function

import collections
import re

import tensorflow as tf

tf1 = tf.compat.v1

SUCCESSOR_SCOPE_RE = r"^bert/encoder/suc_layer_\d+/"

# Extra groups a user may train in stage 1 besides the successor modules.
STAGE1_EXTRA_SCOPES = collections.OrderedDict([
    ("embeddings", r"^bert/embeddings/"),
    ("pooler", r"^bert/pooler/"),
    ("head", r"^(output_weights|output_bias|mrc/)"),
])

OptimizerOps = collections.namedtuple(
    "OptimizerOps", ["train_op", "learning_rate", "train_vars", "grad_norm"])


def stage1_train_scope(extra_groups):
  """Regex for stage 1 training the successor plus `extra_groups` (names in STAGE1_EXTRA_SCOPES)."""
  parts = [SUCCESSOR_SCOPE_RE]
  for group in extra_groups:
    if group not in STAGE1_EXTRA_SCOPES:
      raise ValueError("unknown stage-1 group %r (choose from %s)"
                       % (group, ", ".join(STAGE1_EXTRA_SCOPES)))
    parts.append(STAGE1_EXTRA_SCOPES[group])
  return "|".join("(?:%s)" % p for p in parts)


def select_train_variables(tvars, finetune_suc=False, train_scope=None):
  """Chooses the variables a stage updates (see the module docstring).

  Raises:
    ValueError: finetune_suc on a graph without successor variables, or nothing to train.
  """
  names = [v.op.name for v in tvars]
  has_successor = any(re.match(SUCCESSOR_SCOPE_RE, n) for n in names)
  if finetune_suc and not has_successor:
    raise ValueError("finetune_suc needs a graph with successor (suc_layer_*) variables")
  if train_scope:
    selected = [v for v in tvars if re.search(train_scope, v.op.name)]
  elif has_successor and not finetune_suc:
    selected = [v for v in tvars if re.match(SUCCESSOR_SCOPE_RE, v.op.name)]
  else:
    selected = list(tvars)
  if not selected:
    raise ValueError("no trainable variables selected (train_scope=%r)" % (train_scope,))
  return selected


def learning_rate_schedule(global_step, init_lr, num_train_steps, num_warmup_steps):
  """Linear warmup to init_lr over num_warmup_steps, then linear decay to 0 at num_train_steps.

  Returns a float32 scalar Tensor.
  """
  if num_train_steps <= 0:
    raise ValueError("num_train_steps must be > 0, got %r" % (num_train_steps,))
  if num_warmup_steps < 0 or num_warmup_steps > num_train_steps:
    raise ValueError("num_warmup_steps must be in [0, num_train_steps], got %r" % (num_warmup_steps,))
  step = tf.cast(global_step, tf.float32)
  decayed = init_lr * tf.maximum(0.0, 1.0 - step / float(num_train_steps))
  if num_warmup_steps == 0:
    return decayed
  warmup = init_lr * step / float(num_warmup_steps)
  return tf.where(step < float(num_warmup_steps), warmup, decayed)


# Variables google-research/bert's create_optimizer exempts from weight decay (by name).
NO_WEIGHT_DECAY = ("LayerNorm", "layer_norm", "bias")


class AdamWeightDecayOptimizer(object):
  """Adam with decoupled weight decay, as in google-research/bert (no bias correction).

  Slots are `{var}/adam_m` and `{var}/adam_v`. google-research/bert's interface and defaults:
  apply_gradients creates the slots it needs (create_slots makes them ahead of time, outside any
  control flow) and does not increment global_step, which its caller does (create_optimizer).
  """

  def __init__(self, learning_rate, weight_decay_rate=0.0, beta_1=0.9, beta_2=0.999,
               epsilon=1e-6, exclude_from_weight_decay=None, name="AdamWeightDecayOptimizer"):
    self.learning_rate = learning_rate
    self.weight_decay_rate = weight_decay_rate
    self.beta_1 = beta_1
    self.beta_2 = beta_2
    self.epsilon = epsilon
    self.exclude_from_weight_decay = exclude_from_weight_decay
    self.name = name
    self._slots = {}

  def create_slots(self, variables):
    """Creates the m / v slots of `variables` that do not exist yet (outside control flow)."""
    for var in variables:
      name = var.op.name
      if name in self._slots:
        continue
      with tf1.variable_scope(tf1.get_variable_scope(), reuse=tf1.AUTO_REUSE):
        m = tf1.get_variable(name + "/adam_m", shape=var.shape.as_list(), dtype=tf.float32,
                             trainable=False, initializer=tf1.zeros_initializer())
        v = tf1.get_variable(name + "/adam_v", shape=var.shape.as_list(), dtype=tf.float32,
                             trainable=False, initializer=tf1.zeros_initializer())
      self._slots[name] = (m, v)

  def _use_weight_decay(self, name):
    if not self.weight_decay_rate:
      return False
    return not any(re.search(r, name) for r in self.exclude_from_weight_decay or ())

  def apply_gradients(self, grads_and_vars, global_step=None, name=None):
    """Returns an op applying one Adam update to every variable with a gradient.

    global_step is accepted for google-research/bert's signature and left alone.
    """
    del global_step
    grads_and_vars = [(g, v) for g, v in grads_and_vars if g is not None]
    self.create_slots([v for _, v in grads_and_vars])
    updates = []
    for grad, var in grads_and_vars:
      m, v = self._slots[var.op.name]
      updates.append(self.update_variable(var, grad, m, v))
    return tf.group(*updates, name=name)

  def slots(self, var):
    """The (m, v) slots of `var` (create_slots made them)."""
    return self._slots[var.op.name]

  def update_variable(self, var, grad, m, v, apply_update=None):
    """The op of one Adam step of `var` with slots `m`, `v` (e.g. one replica's copies).

    apply_update: optional bool scalar Tensor; where False, var, m and v keep their values (an
    update skipped for an overflowed fp16 gradient).
    """
    grad = tf.convert_to_tensor(grad)
    next_m = self.beta_1 * m + (1.0 - self.beta_1) * grad
    next_v = self.beta_2 * v + (1.0 - self.beta_2) * tf.square(grad)
    update = next_m / (tf.sqrt(next_v) + self.epsilon)
    if self._use_weight_decay(var.op.name):
      update += self.weight_decay_rate * var
    next_var = var - self.learning_rate * update
    if apply_update is not None:
      next_var = tf.where(apply_update, next_var, var)
      next_m = tf.where(apply_update, next_m, m)
      next_v = tf.where(apply_update, next_v, v)
    return tf.group(var.assign(next_var), m.assign(next_m), v.assign(next_v))


def _apply_and_count(optimizer, grads_and_vars, global_step):
  """One update, then global_step + 1 (an op)."""
  update = optimizer.apply_gradients(grads_and_vars, global_step)
  with tf.control_dependencies([update]):
    return global_step.assign_add(1)


def create_optimizer(loss, init_lr, num_train_steps, num_warmup_steps, use_tpu=False):
  """google-research/bert's create_optimizer: the train op of one update of the stage's variables.

  Warmup + linear decay, AdamWeightDecay (decay 0.01, not on LayerNorm and biases), global-norm
  clipping at 1.0, and global_step + 1, as in google-research/bert; the variables updated are
  those of create_optimizer_for_bert_theseus (all of them in a plain BERT graph).

  Raises:
    ValueError: use_tpu=True (the project runs on CPUs and GPUs).
  """
  if use_tpu:
    raise ValueError("use_tpu=True is not supported: this project trains on CPUs and GPUs "
                     "(TPUs need TPUEstimator, which current TensorFlow no longer has)")
  return create_optimizer_for_bert_theseus(loss, init_lr, num_train_steps,
                                           num_warmup_steps).train_op


def create_optimizer_for_bert_theseus(loss, init_lr, num_train_steps, num_warmup_steps,
                                      finetune_suc=False, clip_norm=1.0,
                                      gradient_accumulation_steps=1, train_scope=None,
                                      weight_decay_rate=0.01):
  """Builds the train op for a stage.

  Each run of `train_op` consumes one micro-batch. With gradient_accumulation_steps = k > 1 the
  gradients of k micro-batches are averaged and applied once; global_step counts optimizer
  updates, so the learning rate and replace-rate schedules advance once per k micro-batches.

  Args:
    loss: float scalar Tensor (the mean over the micro-batch).
    init_lr: peak learning rate.
    num_train_steps, num_warmup_steps: in optimizer updates.
    finetune_suc: stage 2 (see select_train_variables).
    clip_norm: global-norm clip on the (averaged) gradients; None or 0 disables it.
    gradient_accumulation_steps: k >= 1.
    train_scope: optional regex overriding the variables to train.
    weight_decay_rate: decoupled weight decay.

  Returns:
    OptimizerOps(train_op, learning_rate, train_vars, grad_norm).
  """
  if not isinstance(gradient_accumulation_steps, int) or gradient_accumulation_steps < 1:
    raise ValueError("gradient_accumulation_steps must be an integer >= 1, got %r"
                     % (gradient_accumulation_steps,))
  global_step = tf1.train.get_or_create_global_step()
  learning_rate = learning_rate_schedule(global_step, init_lr, num_train_steps, num_warmup_steps)
  tvars = select_train_variables(tf1.trainable_variables(), finetune_suc, train_scope)
  optimizer = AdamWeightDecayOptimizer(learning_rate, weight_decay_rate=weight_decay_rate,
                                       exclude_from_weight_decay=NO_WEIGHT_DECAY)
  optimizer.create_slots(tvars)
  grads = tf.gradients(loss, tvars)
  grads = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g) for g, v in zip(grads, tvars)]

  def clip(gradients):
    if clip_norm:
      return tf.clip_by_global_norm(gradients, clip_norm)
    return gradients, tf.linalg.global_norm(gradients)

  k = gradient_accumulation_steps
  if k == 1:
    clipped, grad_norm = clip(grads)
    train_op = _apply_and_count(optimizer, zip(clipped, tvars), global_step)
    return OptimizerOps(tf.group(train_op), learning_rate, tvars, grad_norm)

  # Accumulators are local variables: checkpoints are written only between updates, when they
  # are zero, so they need not be saved.
  accumulators = []
  for var in tvars:
    accumulators.append(tf1.get_variable(
        var.op.name + "/grad_accum", shape=var.shape.as_list(), dtype=tf.float32,
        trainable=False, initializer=tf1.zeros_initializer(),
        collections=[tf1.GraphKeys.LOCAL_VARIABLES]))
  micro_step = tf1.get_variable("gradient_accumulation_micro_step", shape=[], dtype=tf.int64,
                                trainable=False, initializer=tf1.zeros_initializer(),
                                collections=[tf1.GraphKeys.LOCAL_VARIABLES])
  accumulate = [acc.assign_add(g) for acc, g in zip(accumulators, grads)]
  with tf.control_dependencies(accumulate):
    new_micro_step = micro_step.assign_add(1)

  def apply_update():
    averaged = [acc.read_value() / float(k) for acc in accumulators]
    clipped, norm = clip(averaged)
    step = _apply_and_count(optimizer, zip(clipped, tvars), global_step)
    with tf.control_dependencies([step]):
      reset = tf.group([acc.assign(tf.zeros_like(acc)) for acc in accumulators])
    with tf.control_dependencies([reset]):
      return tf.identity(norm)

  def skip_update():
    return tf.constant(-1.0)  # no update this micro-batch

  grad_norm = tf.cond(tf.equal(new_micro_step % k, 0), apply_update, skip_update)
  return OptimizerOps(tf.group(grad_norm), learning_rate, tvars, grad_norm)
