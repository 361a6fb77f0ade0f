"""One optimizer update of any stage on tf.distribute, for one process or many replicas.

`build_train_step` builds, under the run's strategy (distribute.py), the one update every run
takes (the trainer's, and optimization_theseus's google-research/bert faces):

1. the forward pass and gradients on each replica's share of the global batch, with the
   stage-1 draw keyed by (--seed, update * k + micro-batch) so every replica draws the same
   modules (modeling_theseus.draw_replacements);
2. with gradient accumulation k > 1, per-replica sums of the k micro-batches' gradients;
3. one all-reduce (mean over replicas) per update, after accumulation, before clipping;
4. with --precision=fp16, dynamic loss scaling: the loss is multiplied by `loss_scale` before
   the gradients and the reduced gradients divided by it; an update whose gradients are not all
   finite is skipped (weights and Adam slots keep their values, global_step still advances) and
   halves the scale; `loss_scale_window` finite updates in a row double it;
5. clipping and the AdamWeightDecay update on every replica's copy of the weights, then
   global_step + 1.

With k = 1 `update_op` does it all; with k > 1 the loop runs `micro_batch_op` (1 and 2) for each
micro-batch, feeding its index to `micro_batch`, then `update_op` (3 to 5) once.
"""

import collections

import tensorflow as tf

import modeling_theseus as modeling
from theseus import dropout as dropout_lib
from theseus import names
from theseus.training import agreement
from theseus.training import distribute
from theseus.training import optimizer as optimizer_lib

tf1 = tf.compat.v1

TrainStep = collections.namedtuple("TrainStep", [
    "micro_batch_op", "update_op", "micro_batch", "loss", "loss_everywhere", "loss_terms",
    "replaced", "learning_rate", "grad_norm", "loss_scale", "train_vars", "make_update"])
TrainStep.__doc__ += """: micro_batch_op (None for k = 1) and update_op (None when deferred)
are the ops the loop runs; loss_everywhere is the loss summed over every replica of the cluster
(NaN / Inf when any replica's is); make_update() builds the update's ops (where the caller
wants them, e.g. in a conditional) and returns (update op, gradient norm)."""

Hyperparameters = collections.namedtuple("Hyperparameters", [
    "learning_rate", "num_train_steps", "num_warmup_steps", "accumulation", "clip_norm",
    "weight_decay_rate"])
Hyperparameters.__doc__ = """The update's numbers: the peak learning rate and its schedule (in
updates), gradient accumulation k, the global-norm clip (0: none) and the decoupled weight decay."""

LossScaling = collections.namedtuple("LossScaling", ["initial_scale", "window"])


def build_train_step(cluster, global_batch, model_fn, stage, hyper, seed, train_scope=None,
                     loss_scaling=None, defer_update=False):
  """The ops of one update (see the module docstring); call under cluster.strategy.scope().

  Args:
    cluster: distribute.Cluster.
    global_batch: dict of [batch, ...] Tensors: this worker's rows of the global batch (all of
      it in one process); every replica of the worker takes its share.
    model_fn: callable(features, draw_seed) -> (loss, loss_terms dict, replaced or None), run in
      replica context; draw_seed is the int64 [2] key of the stage-1 draw.
    stage: the run's Stage (which variables it trains).
    hyper: Hyperparameters.
    seed: the run's seed (keys the stage-1 draw).
    train_scope: optional regex overriding the stage's choice of variables.
    loss_scaling: LossScaling for fp16, or None.
    defer_update: leave update_op None; the caller builds it with make_update().

  Returns:
    TrainStep; loss, replaced and loss_scale (the scale this micro-batch's gradients used) are
    this process's first replica's values.
  """
  strategy, k = cluster.strategy, hyper.accumulation
  global_step = tf1.train.get_or_create_global_step()
  micro_batch = tf1.placeholder_with_default(tf.constant(0, tf.int64), [], name="micro_batch")
  scale = _loss_scale_variables(loss_scaling) if loss_scaling else None

  def train_vars():
    return optimizer_lib.select_train_variables(tf1.trainable_variables(), stage, train_scope)

  forward = strategy.extended.call_for_each_replica(
      _replica_gradients, args=(global_batch, cluster.num_replicas, cluster.num_workers,
                                model_fn, global_step, micro_batch, seed, k, train_vars, scale))
  loss, everywhere, terms, replaced, grads, used_scale = forward
  tvars = train_vars()
  learning_rate = optimizer_lib.learning_rate_schedule(
      global_step, hyper.learning_rate, hyper.num_train_steps, hyper.num_warmup_steps)
  optimizer = optimizer_lib.AdamWeightDecayOptimizer(
      learning_rate, weight_decay_rate=hyper.weight_decay_rate,
      exclude_from_weight_decay=names.NO_WEIGHT_DECAY)
  optimizer.create_slots(tvars)
  if k == 1:
    micro_batch_op, read_sums, reset = None, lambda: grads, None
  else:
    micro_batch_op, read_sums, reset = _accumulators(strategy, tvars, grads)

  def make_update():
    return _update(strategy, optimizer, tvars, read_sums(), k, hyper.clip_norm, scale,
                   loss_scaling, global_step, reset)

  update_op, grad_norm = (None, None) if defer_update else make_update()
  first = lambda value: distribute.first_local_value(cluster, value)  # noqa: E731
  return TrainStep(
      micro_batch_op=micro_batch_op, update_op=update_op, micro_batch=micro_batch,
      loss=first(loss), loss_everywhere=first(everywhere),
      loss_terms={name: first(t) for name, t in terms.items()},
      replaced=first(replaced), learning_rate=learning_rate,
      grad_norm=first(grad_norm) if grad_norm is not None else None,
      loss_scale=first(used_scale) if scale else None, train_vars=tvars, make_update=make_update)


def _replica_gradients(global_batch, num_replicas, num_workers, model_fn, global_step,
                       micro_batch, seed, k, train_vars, scale):
  """Replica context: (loss, loss summed over the replicas, loss_terms, replaced, gradients of
  the scaled loss, the scale)."""
  features = distribute.replica_share(global_batch, num_replicas, num_workers)
  draw_counter = tf.cast(global_step, tf.int64) * k + micro_batch
  # Dropout keyed like the draw, and by the replica (a worker's replicas count on from its first).
  replica = tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.int64)
  with dropout_lib.dropout_key(modeling.replace_draw_seed(seed * 1009 + replica, draw_counter)):
    loss, terms, replaced = model_fn(features, modeling.replace_draw_seed(seed, draw_counter))
  if replaced is None:
    replaced = tf.zeros([0], tf.bool)
  tvars = train_vars()
  used_scale = scale[0].read_value() if scale else tf.constant(1.0)
  grads = tf.gradients(loss * used_scale if scale else loss, tvars)
  grads = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
           for g, v in zip(grads, tvars)]
  return (loss, agreement.loss_everywhere(loss, num_replicas), terms, replaced, grads,
          used_scale)


def _loss_scale_variables(loss_scaling):
  """(loss_scale, loss_scale_good_steps): saved in checkpoints, so a resumed run goes on."""
  scale = tf1.get_variable("loss_scale", [], tf.float32, trainable=False,
                           initializer=tf1.constant_initializer(loss_scaling.initial_scale))
  good_steps = tf1.get_variable("loss_scale_good_steps", [], tf.int64, trainable=False,
                                initializer=tf1.zeros_initializer())
  return scale, good_steps


def _accumulators(strategy, tvars, grads):
  """(op adding this micro-batch's gradients, fn reading the per-replica sums, a reset fn) for
  k > 1.

  The sums are per-replica local variables: checkpoints are written between updates, when they
  are zero, so they are not saved.
  """
  sums = []
  for var in tvars:
    sums.append(tf1.get_variable(
        var.op.name + "/grad_accum", shape=var.shape.as_list(), dtype=tf.float32,
        trainable=False, initializer=tf1.zeros_initializer(),
        collections=[tf1.GraphKeys.LOCAL_VARIABLES],
        synchronization=tf.VariableSynchronization.ON_READ,
        aggregation=tf.VariableAggregation.SUM))

  def add(replica_grads):
    return tf.group([acc.assign_add(g) for acc, g in zip(sums, replica_grads)])

  def read():
    return [acc.read_value() for acc in sums]

  def reset(after):
    def replica_reset(after):
      with tf.control_dependencies([after]):
        return tf.group([acc.assign(tf.zeros_like(acc)) for acc in sums])
    return strategy.extended.call_for_each_replica(replica_reset, args=(after,))

  micro_batch_op = tf.group(strategy.experimental_local_results(
      strategy.extended.call_for_each_replica(add, args=(grads,))))
  return micro_batch_op, lambda: strategy.extended.call_for_each_replica(read), reset


def _update(strategy, optimizer, tvars, gradient_sums, k, clip_norm, scale, loss_scaling,
            global_step, reset):
  """All-reduce, unscale, check, clip and apply; then global_step + 1 (and reset the sums)."""
  reduced = strategy.extended.batch_reduce_to(
      tf.distribute.ReduceOp.MEAN, [(g, v) for g, v in zip(gradient_sums, tvars)])

  def finish(reduced_grads):  # replica context: the same values on every replica
    divisor = float(k) * scale[0] if scale else float(k)
    grads = [g / divisor if (scale or k > 1) else g for g in reduced_grads]
    finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads]) if scale else None
    if clip_norm:
      grads, norm = tf.clip_by_global_norm(grads, clip_norm)
    else:
      norm = tf.linalg.global_norm(grads)
    return grads, norm, finite

  grads, grad_norm, finite = strategy.extended.call_for_each_replica(finish, args=(reduced,))
  updates = []
  for var, grad in zip(tvars, grads):
    m, v = optimizer.slots(var)
    updates.append(strategy.extended.update(
        var, optimizer.update_variable, args=(grad, m, v, finite), group=True))
  if scale:
    updates.append(strategy.extended.update(
        scale[0], _next_loss_scale, args=(scale[1], finite, loss_scaling.window), group=True))
  with tf.control_dependencies(updates):
    step = global_step.assign_add(1)
  if reset is None:
    return tf.group(step), grad_norm
  return tf.group(strategy.experimental_local_results(reset(step))), grad_norm


def _next_loss_scale(scale, good_steps, finite, window):
  """Halves `scale` after an overflow (not below 1); doubles it after `window` clean updates."""
  good = tf.where(finite, good_steps + 1, tf.zeros_like(good_steps))
  grow = tf.logical_and(finite, good >= window)
  next_scale = tf.where(finite, tf.where(grow, scale * 2.0, scale), tf.maximum(scale * 0.5, 1.0))
  return tf.group(scale.assign(next_scale),
                  good_steps.assign(tf.where(grow, tf.zeros_like(good), good)))
