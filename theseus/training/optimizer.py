"""The optimizer's math: AdamWeightDecay, warmup + linear decay, and which variables a stage trains.

theseus/training/update.py builds the one update every run takes from these pieces;
optimization_theseus.py (google-research/bert's `optimization` API) is a face over that update.

Variables a stage updates (`select_train_variables`):
  * PLAIN: every trainable variable;
  * REPLACING (stage 1): only `bert/encoder/suc_layer_*`, plus the groups of --stage1_also_train
    (`stage1_train_scope`: embeddings, pooler, the task's head);
  * SUCCESSOR (stage 2): every trainable variable of the successor-only graph.
"""

import re

import tensorflow as tf

from theseus import names

tf1 = tf.compat.v1

# Groups a user may also train in stage 1, besides the successor modules; "head" is the task's
# own head (its TaskSpec.head_variable_regex).
STAGE1_GROUP_SCOPES = {"embeddings": names.EMBEDDINGS_SCOPE_RE, "pooler": names.POOLER_SCOPE_RE}


def stage1_train_scope(extra_groups, head_variable_regex=names.CLASSIFIER_HEAD_RE):
  """Regex of stage 1 training the successor plus `extra_groups` (embeddings, pooler, head:
  the variables of `head_variable_regex`, a task's TaskSpec.head_variable_regex)."""
  parts = [names.SUCCESSOR_SCOPE_RE]
  for group in extra_groups:
    if group == "head":
      parts.append(head_variable_regex)
    elif group in STAGE1_GROUP_SCOPES:
      parts.append(STAGE1_GROUP_SCOPES[group])
    else:
      raise ValueError("unknown stage-1 group %r (choose from embeddings, pooler, head)"
                       % (group,))
  return "|".join("(?:%s)" % p for p in parts)


def select_train_variables(tvars, stage, train_scope=None):
  """The variables `stage` updates (see the module docstring); `train_scope`, a regex, overrides.

  Raises:
    ValueError: nothing to train.
  """
  if train_scope:
    selected = [v for v in tvars if re.search(train_scope, v.op.name)]
  elif stage.trains_only_successor:
    selected = [v for v in tvars if names.is_successor(v.op.name)]
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
    raise ValueError("num_warmup_steps must be in [0, num_train_steps], got %r"
                     % (num_warmup_steps,))
  step = tf.cast(global_step, tf.float32)
  decayed = init_lr * tf.maximum(0.0, 1.0 - step / float(num_train_steps))
  if num_warmup_steps == 0:
    return decayed
  warmup = init_lr * step / float(num_warmup_steps)
  return tf.where(step < float(num_warmup_steps), warmup, decayed)


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
    if apply_update is None and _is_float32_resource(var, m, v):
      return self._fused_update(var, grad, m, v)
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

  def _fused_update(self, var, grad, m, v):
    """update_variable's step as TensorFlow's fused Adam kernel: one pass over var, m and v
    instead of a dozen element-wise ops each allocating a tensor of var's size.

    The kernel's bias correction is switched off (beta powers 0, so its step size is the
    learning rate); the decoupled weight decay, var -= lr * rate * var, runs first, on the
    value Adam's step then starts from: var - lr * (adam + rate * var) as above, once the
    gradient exists, as the element-wise path's assignment is.
    """
    learning_rate = tf.cast(self.learning_rate, tf.float32)
    before = []  # the kernel takes grad as an input: it runs after the gradient anyway
    if self._use_weight_decay(var.op.name):
      # Not before the gradient: the step's other readers of var (the backward pass) would see
      # the decayed value, depending on thread timing.
      with tf.control_dependencies([grad]):
        before = [var.assign_sub(learning_rate * self.weight_decay_rate * var.read_value(),
                                 read_value=False)]
    no_bias_correction = tf.constant(0.0)
    with tf.control_dependencies(before):
      return tf.raw_ops.ResourceApplyAdam(
          var=var.handle, m=m.handle, v=v.handle, beta1_power=no_bias_correction,
          beta2_power=no_bias_correction, lr=learning_rate, beta1=tf.constant(self.beta_1),
          beta2=tf.constant(self.beta_2), epsilon=tf.constant(self.epsilon), grad=grad)


def _is_float32_resource(*variables):
  """Whether the fused kernel can update `variables`: float32 resource variables."""
  return all(getattr(x, "handle", None) is not None and x.dtype.base_dtype == tf.float32
             for x in variables)
