"""The session training loop every stage runs (plain fine-tuning, stage 1, stage 2).

`train` reads top to bottom: plan the run (updates, warmup, where to resume), build the train
graph, start the session, then step until the last update, saving (and evaluating) every
--save_checkpoints_steps updates. The helpers it calls have one job each:

* `plan_training`: the number of updates, the warmup, and the checkpoint a run resumes from;
* `build_train_graph`: data, model, replace rate, the update (update.py, under the run's
  tf.distribute strategy: distribute.py), summaries and the saver, with the model initialised
  from --init_checkpoint by the Theseus rules on a fresh run;
* `run_update`: the micro-batches of one update, then the update;
* keeper.py's `CheckpointKeeper` and `ProgressLog`: checkpoints, their evaluation, the best copy,
  and the progress line.
"""

import collections
import json
import math
import os
import time

from absl import logging
import numpy as np
import tensorflow as tf

import modeling_theseus as modeling
from theseus import files
from theseus import stage as stage_lib
from theseus.distillation import intermediate
from theseus.distillation import schedules
from theseus.distillation import teacher as teacher_lib
from theseus.errors import InputDataError
from theseus.errors import TrainingError
from theseus.tasks import base
from theseus.training import agreement
from theseus.training import checkpoints
from theseus.training import distribute
from theseus.training import evaluation
from theseus.training import input_pipeline
from theseus.training import keeper as keeper_lib
from theseus.training import optimizer as optimizer_lib
from theseus.training import update

tf1 = tf.compat.v1

TrainPlan = collections.namedtuple("TrainPlan", [
    "num_train_steps", "num_warmup_steps", "accumulation", "latest", "resumed_step", "stage"])

TrainGraph = collections.namedtuple("TrainGraph", [
    "graph", "fetches", "update_op", "micro_batch", "global_step", "final", "saver",
    "weights_finite", "init_ops", "has_replaced", "restored_state"])


def train(output_dir, model, training, replacing, kd, scale, eval_batch_size, bert_config, task,
          train_path, num_train_examples, eval_path=None, on_checkpoint=None):
  """Trains the run's stage on the feature cache `train_path`.

  Resumes from the newest checkpoint in output_dir (same global_step, learning rate and replace
  rate, and the same data order: consumed batches are skipped); otherwise initialises from
  --init_checkpoint by the Theseus rules. Saves every save_checkpoints_steps updates and at the
  end, logs progress every log_every_n_steps updates, writes TensorBoard summaries, evaluates at
  each checkpoint with --evaluate_during_training (keeping the best in <output_dir>/best), and
  stops with TrainingError on a NaN / Inf loss without saving the bad state.

  Args:
    output_dir: the run's directory.
    model, training, replacing, kd, scale: the run's ModelSettings, TrainingSettings,
      ReplacingSettings, DistillationSettings and ScaleSettings.
    eval_batch_size: the batch of evaluations during training.
    bert_config: the predecessor's BertConfig.
    task: TaskSpec (its evaluate scores the set of `eval_path`).
    train_path, num_train_examples: the training feature cache and its size.
    eval_path: the dev feature cache (used with --evaluate_during_training).
    on_checkpoint: optional callable(step) run after each checkpoint (tests stop a run there).
  Returns:
    dict with global_step, replace_rate, learning_rate and the final loss.
  """
  stage, eval_path = replacing.stage(), eval_path if training.evaluate_during_training else None
  plan = plan_training(training, output_dir, stage, num_train_examples)
  missed_eval = _missed_evaluation(output_dir, plan, eval_path)
  if plan.resumed_step >= plan.num_train_steps and not missed_eval:
    logging.info("  already trained: %s is at step %d", plan.latest, plan.resumed_step)
    return {"global_step": plan.resumed_step, "resumed": True}
  session_config = distribute.session_config(scale.num_threads, scale.xla)
  train_path = _with_teacher_outputs(kd, model.init_checkpoint, bert_config, task, train_path,
                                     eval_batch_size, session_config)
  cluster = distribute.make_cluster(scale.distribute, scale.mirrored_devices,
                                    training.train_batch_size, session_config,
                                    scale.cluster_timeout_s, scale.step_timeout_s)
  g = build_train_graph(model, training, replacing, kd, scale, bert_config, task, train_path,
                        plan, cluster)
  evaluator = (evaluation.Evaluator(bert_config, task, eval_path, eval_batch_size, stage,
                                    replacing.suc_init, session_config)
               if eval_path and cluster.is_chief else None)
  keeper = keeper_lib.CheckpointKeeper(output_dir, g.saver, g.weights_finite,
                                       g.graph if not plan.latest else None, evaluator, task,
                                       cluster.is_chief)
  sess = tf1.Session(cluster.target, graph=g.graph, config=cluster.session_config)
  progress = keeper_lib.ProgressLog(
      training.log_every_n_steps, plan.num_train_steps, plan.accumulation, g.has_replaced,
      "worker %d: " % cluster.worker_index if cluster.num_workers > 1 else "")
  try:
    _start(sess, g, plan, keeper, missed_eval, cluster)
    final = _train_loop(sess, g, plan, training, output_dir, keeper, progress, on_checkpoint)
  except tf.errors.OpError as e:
    if cluster.mode != "multi_worker":
      raise
    raise _worker_gone(e, sess, g.global_step, scale.step_timeout_s) from None
  finally:
    keeper.close()
    if cluster.mode != "multi_worker":
      sess.close()  # on a gRPC server target close() does not return; the process exits instead
  return _write_train_results(output_dir, plan, final, progress, cluster.is_chief)


def _worker_gone(error, sess, global_step, step_timeout_s):
  """The TrainingError naming the unreachable worker(s) after a failed cluster step."""
  workers, index = distribute.read_tf_config()
  try:
    step = int(sess.run(global_step, options=tf1.RunOptions(timeout_in_ms=10000))) + 1
  except tf.errors.OpError:
    step = None
  return agreement.worker_gone(error, workers, index, step, step_timeout_s)


def _with_teacher_outputs(kd, init_checkpoint, bert_config, task, train_path, batch_size,
                          session_config):
  """The training feature cache, with the teachers' outputs when distillation uses them."""
  teachers = teacher_lib.teacher_checkpoints(kd, init_checkpoint)
  if kd.any:
    logging.info(teacher_lib.describe(kd, teachers))
  if not kd.soft_labels:
    return train_path
  return teacher_lib.teacher_logits_cache(teachers, teacher_lib.teacher_config(kd, bert_config),
                                          task, train_path, batch_size, session_config)


def _start(sess, g, plan, keeper, missed_eval, cluster):
  """Initialises the variables, restores a resumed run (every replica must then hold the same
  model), evaluates what a crash left out."""
  sess.run(g.init_ops)
  if plan.latest:
    g.saver.restore(sess, plan.latest)
    logging.info("Resumed from %s at step %d", plan.latest, plan.resumed_step)
  agreement.check_restored(sess, g.restored_state,
                           lambda value: distribute.local_values(cluster, value),
                           cluster.worker_index, cluster.num_replicas, plan.latest)
  if missed_eval:
    logging.info("%s was saved but not evaluated before the run stopped; evaluating it now",
                 plan.latest)
    keeper.evaluate(plan.latest, plan.resumed_step)


def _train_loop(sess, g, plan, training, output_dir, keeper, progress, on_checkpoint):
  """Updates until the last one, saving and evaluating; returns the final step's values."""
  step = plan.resumed_step
  while step < plan.num_train_steps:
    out = run_update(sess, g, plan, training.log_every_n_steps, output_dir, step, progress)
    step = int(sess.run(g.global_step))
    if "summary" in out:
      keeper.writer.add_summary(out["summary"], step)
    progress.maybe_log(step, out)
    if step % training.save_checkpoints_steps == 0 or step == plan.num_train_steps:
      keeper.evaluate(keeper.save(sess, step, step == plan.num_train_steps), step)
      if on_checkpoint is not None:
        on_checkpoint(step)
  return sess.run(g.final)


def run_update(sess, g, plan, log_every_n_steps, output_dir, step, progress):
  """Runs the micro-batches of update `step + 1` and the update; returns the last fetched values.

  Raises TrainingError on a NaN / Inf loss (no checkpoint holds that update).
  """
  for micro_batch in range(plan.accumulation):
    # Every micro-batch fetches the same list, the scalar summaries included (written only every
    # log_every_n_steps updates): another list would cost the session another optimisation of
    # the whole step's graph (about a second for a tiny model's, more for BERT-base).
    out = sess.run(g.fetches, {g.micro_batch: micro_batch})
    if not np.isfinite(out["loss_everywhere"]):  # any replica's: they all stop at this step
      where = "" if not np.isfinite(out["loss"]) else " on another replica"
      raise TrainingError("loss is %s%s at step %d; stopping. %s" % (
          out["loss_everywhere"], where, step + 1, checkpoints.kept_checkpoint_note(output_dir)))
    progress.add(out)
  if g.update_op is not None:
    sess.run(g.update_op)
  if (step + 1) % log_every_n_steps:
    del out["summary"]
  return out


def plan_training(training, output_dir, stage, num_train_examples):
  """The run's updates and warmup, and the checkpoint it resumes from (logged)."""
  if training.num_train_steps > 0:
    num_train_steps = training.num_train_steps
  else:
    per_update = training.train_batch_size * training.gradient_accumulation_steps
    num_train_steps = max(1, int(math.ceil(num_train_examples * training.num_train_epochs /
                                           per_update)))
  latest = checkpoints.find_latest_checkpoint(output_dir)
  plan = TrainPlan(num_train_steps=num_train_steps,
                   num_warmup_steps=int(num_train_steps * training.warmup_proportion),
                   accumulation=training.gradient_accumulation_steps, latest=latest,
                   resumed_step=checkpoints.global_step_of(latest) if latest else 0, stage=stage)
  logging.info("***** Training: %s *****", stage.description)
  logging.info("  examples = %d, micro-batch = %d, accumulation = %d, updates = %d, warmup = %d",
               num_train_examples, training.train_batch_size, plan.accumulation,
               num_train_steps, plan.num_warmup_steps)
  return plan


def _missed_evaluation(output_dir, plan, eval_path):
  """Whether the resumed checkpoint was saved but its evaluation not recorded (a crash between)."""
  if not (plan.resumed_step and eval_path):
    return False
  return plan.resumed_step not in keeper_lib.evaluated_steps(output_dir)


def build_train_graph(model, training, replacing, kd, scale, bert_config, task, train_path, plan,
                      cluster=None):
  """The finalized training graph of the run's stage, and the tensors the loop fetches.

  cluster: the distribute.Cluster it trains on (default: one process, one device).
  """
  cluster = cluster or distribute.local_cluster()
  graph = tf.Graph()
  with graph.as_default():
    tf1.set_random_seed(training.seed)
    dataset = input_pipeline.make_dataset(
        train_path, task.int_keys, teacher_lib.train_float_keys(kd, task),
        training.train_batch_size, is_training=True, seed=training.seed,
        skip_batches=plan.resumed_step * plan.accumulation, shard_index=cluster.worker_index,
        num_shards=cluster.num_workers)
    # This worker's rows of the global batch (all of it in one process).
    features = tf1.data.make_one_shot_iterator(dataset).get_next()
    with cluster.strategy.scope():
      step, rate = _build_step(model, training, replacing, kd, scale, bert_config, task, plan,
                               cluster, features)
      state = agreement.restored_state(cluster.strategy, tf1.train.get_global_step(),
                                       tf1.trainable_variables())
      g = _train_graph(training.keep_checkpoint_max, graph, features, step, rate, state)
  graph.finalize()
  return g


def make_model_fn(bert_config, task, stage, replace_rate, compute_dtype, kd, teacher_config,
                  num_train_steps=1, encoder_fn=None):
  """The update's model_fn: (features, draw_seed) -> (loss, loss terms, modules drawn).

  teacher_config: the BertConfig of the teacher that runs in the step (hidden matching,
  matches); num_train_steps: the run's, for the distillation schedules.
  """
  expose = intermediate.needs_attention(intermediate.parse_matches(kd.kd_matches))

  def model_fn(replica_features, draw_seed):
    model, hard_loss, outputs = base.build_model(
        bert_config, task, replica_features, True, stage, replace_rate, encoder_fn=encoder_fn,
        replace_draw_seed=draw_seed, compute_dtype=compute_dtype, expose_attention=expose,
        module_teacher=teacher_lib.module_teacher(kd, stage, replica_features),
        all_tokens=kd.runs_teacher)  # hidden matching and matches read every token
    done = None
    if (kd.kd_temperature_schedule, kd.kd_weight_schedule) != ("constant", "constant"):
      done = schedules.progress(tf1.train.get_global_step(), num_train_steps)
    loss, loss_terms = teacher_lib.student_loss(kd, task, model, hard_loss, outputs,
                                                replica_features, teacher_config, done)
    return loss, loss_terms, model.replaced_modules

  return model_fn


def _build_step(model, training, replacing, kd, scale, bert_config, task, plan, cluster,
                features):
  """The TrainStep of the stage (model, losses, optimizer) and its replace-rate Tensor."""
  stage = plan.stage
  global_step = tf1.train.get_or_create_global_step()
  replace_rate = None
  if stage.kind == stage_lib.REPLACING:
    replace_rate = modeling.get_replace_rate(
        global_step, replacing.scheduler_type, replacing.replacing_rate,
        replacing.scheduler_linear_k, replacing.steps_for_replacing)
  model_fn = make_model_fn(bert_config, task, stage, replace_rate,
                           modeling.COMPUTE_DTYPES[scale.precision], kd,
                           teacher_lib.teacher_config(kd, bert_config), plan.num_train_steps)
  train_scope = None
  if stage.kind == stage_lib.REPLACING and replacing.stage1_also_train:
    train_scope = optimizer_lib.stage1_train_scope(replacing.stage1_also_train,
                                                   task.head_variable_regex)
  hyper = update.Hyperparameters(training.learning_rate, plan.num_train_steps,
                                 plan.num_warmup_steps, plan.accumulation, training.clip_norm,
                                 training.weight_decay_rate)
  loss_scaling = None
  if scale.precision == "fp16":
    loss_scaling = update.LossScaling(scale.fp16_initial_loss_scale,
                                      scale.fp16_loss_scale_window)
  step = update.build_train_step(cluster, features, model_fn, stage, hyper, training.seed,
                                 train_scope, loss_scaling)
  rate = replace_rate if replace_rate is not None else tf.constant(
      0.0 if stage.kind == stage_lib.PLAIN else 1.0)
  if not plan.latest and model.init_checkpoint:
    _init_from_checkpoint(model.init_checkpoint, replacing.suc_init)
  if kd.runs_teacher:  # every start: the teacher is not in the run's checkpoints
    teacher_lib.init_teacher(teacher_lib.teacher_checkpoints(kd, model.init_checkpoint)[0])
  logging.info("  parameters: %d trained of %d in the graph; %d replica(s), %s",
               modeling.count_parameters(step.train_vars),
               modeling.count_parameters(tf1.trainable_variables()), cluster.num_replicas,
               scale.precision)
  return step, rate


def _train_graph(keep_checkpoint_max, graph, features, step, rate, restored_state):
  """The TrainGraph: fetches, summaries, saver and checks around the TrainStep."""
  global_step = tf1.train.get_global_step()
  _scalar_summary("loss", step.loss)
  if len(step.loss_terms) > 1:  # TensorBoard shows each distillation term too
    for name, term in sorted(step.loss_terms.items()):
      _scalar_summary("loss/" + name, term)
  _scalar_summary("learning_rate", step.learning_rate)
  _scalar_summary("replace_rate", rate)
  fetches = {"train": step.micro_batch_op if step.micro_batch_op is not None else step.update_op,
             "loss": step.loss, "loss_everywhere": step.loss_everywhere, "rate": rate,
             "lr": step.learning_rate,
             "tokens": tf.reduce_sum(features["input_mask"]),
             "examples": tf.shape(features["input_ids"])[0], "draw": step.replaced}
  if step.loss_scale is not None:
    _scalar_summary("loss_scale", step.loss_scale)
    fetches["loss_scale"] = step.loss_scale
  fetches["summary"] = tf1.summary.merge_all()
  model_vars = [v for v in tf1.global_variables() if not teacher_lib.is_teacher_variable(v)]
  return TrainGraph(
      graph=graph, fetches=fetches,
      update_op=step.update_op if step.micro_batch_op is not None else None,
      micro_batch=step.micro_batch, global_step=global_step,
      # Functions of global_step only: the values a resumed run must end with too.
      final={"step": global_step, "lr": step.learning_rate, "rate": rate},
      saver=tf1.train.Saver(model_vars, max_to_keep=keep_checkpoint_max),
      # Checked before each save: a checkpoint on disk never holds NaN / Inf weights.
      weights_finite=tf.reduce_all([tf.reduce_all(tf.math.is_finite(v))
                                    for v in tf1.trainable_variables()]),
      init_ops=[tf1.global_variables_initializer(), tf1.local_variables_initializer()],
      has_replaced=step.replaced.shape[0] != 0, restored_state=restored_state)


def _scalar_summary(tag, value):
  """A TensorBoard scalar tagged `tag` exactly (tf1.summary.scalar derives the tag from a unique
  op name, so it wrote the stage-1 rate, whose op is named replace_rate, as replace_rate_1)."""
  tf1.add_to_collection(tf1.GraphKeys.SUMMARIES, tf.raw_ops.ScalarSummary(
      tags=tag, values=value, name=tag.replace("/", "_") + "_summary"))


def _init_from_checkpoint(init_checkpoint, suc_init):
  """Initialisers of the model variables from --init_checkpoint (a fresh run only).

  Model variables only: never global_step or optimizer slots of the source run.
  """
  model_vars = tf1.trainable_variables()
  try:
    initialized = modeling.init_from_checkpoint_for_theseus(model_vars, init_checkpoint, suc_init)
  except ValueError as e:  # e.g. a task head of another shape: one line, not a traceback
    raise InputDataError(str(e).splitlines()[0])
  fresh = [v.op.name for v in model_vars if v.op.name not in initialized]
  logging.info("Initialised %d of %d model variables from %s", len(model_vars) - len(fresh),
               len(model_vars), init_checkpoint)
  if fresh:
    logging.info("  left to their initialisers: %s", ", ".join(fresh))


def _write_train_results(output_dir, plan, final, progress, is_chief=True):
  """Logs the end of training, writes train_results.json (the chief) and returns its values."""
  logging.info("Training done: step %d, learning rate %.3g, replace rate %.4f, %.1fs",
               final["step"], final["lr"], final["rate"], time.time() - progress.run_start)
  if is_chief:
    files.atomic_write_text(os.path.join(output_dir, "train_results.json"), json.dumps({
        "global_step": int(final["step"]), "learning_rate": float(final["lr"]),
        "replace_rate": float(final["rate"]), "last_loss": progress.last_loss,
        "resumed_from_step": plan.resumed_step, "num_train_steps": plan.num_train_steps},
        indent=1) + "\n")
  return {"global_step": int(final["step"]), "replace_rate": float(final["rate"]),
          "learning_rate": float(final["lr"]), "loss": progress.last_loss}
