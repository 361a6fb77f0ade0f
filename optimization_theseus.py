"""google-research/bert's `optimization` API for BERT-of-Theseus graphs.

`create_optimizer` (Google's signature) and `create_optimizer_for_bert_theseus` (a stage's
variables, clipping, gradient accumulation) return a train op built by the one update every run
takes (theseus/training/update.py): the same gradients, clipping and AdamWeightDecay step as
run_classifier.py's training, on the default (single-device) strategy.
`AdamWeightDecayOptimizer` and `learning_rate_schedule` are the update's own pieces.

Variables updated (theseus/training/optimizer.py): every trainable one in a plain BERT graph;
only `bert/encoder/suc_layer_*` in the Theseus graph of stage 1; everything in the successor-only
graph of stage 2 (finetune_suc=True). `train_scope` (a regular expression) overrides the choice,
e.g. `stage1_train_scope(["head"], r"^output_(weights|bias)$")` to train the head in stage 1.
"""

import collections

import tensorflow as tf

from theseus import names
from theseus.stage import Stage
from theseus.training import distribute
from theseus.training import optimizer as optimizer_lib
from theseus.training import update

# The update's pieces, under google-research/bert's names.
AdamWeightDecayOptimizer = optimizer_lib.AdamWeightDecayOptimizer
learning_rate_schedule = optimizer_lib.learning_rate_schedule
stage1_train_scope = optimizer_lib.stage1_train_scope
NO_WEIGHT_DECAY = names.NO_WEIGHT_DECAY

tf1 = tf.compat.v1

OptimizerOps = collections.namedtuple(
    "OptimizerOps", ["train_op", "learning_rate", "train_vars", "grad_norm"])


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


def _graph_stage(variables, finetune_suc):
  """The Stage of the default graph: its successor modules, and finetune_suc."""
  _, num_successors = names.layer_counts([v.op.name for v in variables])
  return Stage.of(num_successors, finetune_suc)


def create_optimizer_for_bert_theseus(loss, init_lr, num_train_steps, num_warmup_steps,
                                      finetune_suc=False, clip_norm=1.0,
                                      gradient_accumulation_steps=1, train_scope=None,
                                      weight_decay_rate=0.01):
  """Builds the train op of a stage on the default graph.

  Each run of `train_op` consumes one micro-batch. With gradient_accumulation_steps = k > 1 the
  gradients of k micro-batches are averaged and applied once; global_step counts optimizer
  updates, so the learning rate and replace-rate schedules advance once per k micro-batches.

  Args:
    loss: float scalar Tensor (the mean over the micro-batch).
    init_lr: peak learning rate.
    num_train_steps, num_warmup_steps: in optimizer updates.
    finetune_suc: stage 2 (see the module docstring).
    clip_norm: global-norm clip on the (averaged) gradients; None or 0 disables it.
    gradient_accumulation_steps: k >= 1.
    train_scope: optional regex overriding the variables to train.
    weight_decay_rate: decoupled weight decay.

  Returns:
    OptimizerOps(train_op, learning_rate, train_vars, grad_norm); grad_norm is -1 on a
    micro-batch that does not end an update.
  """
  k = gradient_accumulation_steps
  if not isinstance(k, int) or k < 1:
    raise ValueError("gradient_accumulation_steps must be an integer >= 1, got %r" % (k,))
  stage = _graph_stage(tf1.trainable_variables(), finetune_suc)
  hyper = update.Hyperparameters(init_lr, num_train_steps, num_warmup_steps, k,
                                 clip_norm or 0.0, weight_decay_rate)
  step = update.build_train_step(
      distribute.local_cluster(), {}, lambda features, draw_seed: (loss, {}, None), stage, hyper,
      seed=0, train_scope=train_scope, defer_update=k > 1)
  if k == 1:
    return OptimizerOps(step.update_op, step.learning_rate, step.train_vars, step.grad_norm)
  micro_step = tf1.get_variable("gradient_accumulation_micro_step", shape=[], dtype=tf.int64,
                                trainable=False, initializer=tf1.zeros_initializer(),
                                collections=[tf1.GraphKeys.LOCAL_VARIABLES])
  with tf.control_dependencies([step.micro_batch_op]):
    count = micro_step.assign_add(1)

  def apply_update():
    update_op, norm = step.make_update()
    with tf.control_dependencies([update_op]):
      return tf.identity(norm)

  grad_norm = tf.cond(tf.equal(count % k, 0), apply_update, lambda: tf.constant(-1.0))
  return OptimizerOps(tf.group(grad_norm), step.learning_rate, step.train_vars, grad_norm)
