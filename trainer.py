"""The session training loop every stage runs (plain fine-tuning, stage 1, stage 2).

`train` reads top to bottom: plan the run (updates, warmup, where to resume), build the train
graph, start the session, then step until the last update, saving (and evaluating) every
--save_checkpoints_steps updates. The helpers it calls have one job each:

* `plan_training`: the number of updates, the warmup, and the checkpoint a run resumes from;
* `build_train_graph`: data, model, replace rate, the update (train_step.py, under the run's
  tf.distribute strategy: distribute.py), summaries and the saver, with the model initialised
  from --init_checkpoint by the Theseus rules on a fresh run;
* `run_update`: the micro-batches of one update, then the update;
* `CheckpointKeeper`: writes checkpoints (never one with NaN / Inf weights), evaluates them with
  --evaluate_during_training and keeps the best in <output_dir>/best;
* `ProgressLog`: steps/s, examples/s, tokens/s, loss, learning rate, replace rate and ETA.
"""

from __future__ import absolute_import
from __future__ import division
from __future__ import print_function

import collections
import glob
import json
import math
import os
import shutil
import time

from absl import logging
import numpy as np
import tensorflow as tf

import checkpoints
import distillation
import distribute
from errors import InputDataError
from errors import TrainingError
from errors import short_error
import evaluation
import files
import input_pipeline
import modeling_theseus as modeling
import optimization_theseus as optimization
import run_config
import task_spec
import train_step

tf1 = tf.compat.v1

TrainPlan = collections.namedtuple("TrainPlan", [
    "num_train_steps", "num_warmup_steps", "accumulation", "latest", "resumed_step", "stage"])

TrainGraph = collections.namedtuple("TrainGraph", [
    "graph", "fetches", "update_op", "micro_batch", "summary_op", "global_step", "final", "saver",
    "weights_finite", "init_ops", "has_replaced"])


def train(cfg, bert_config, task, train_path, num_train_examples, eval_path=None,
          on_checkpoint=None):
  """Trains the run's stage on the feature cache `train_path`.

  Resumes from the newest checkpoint in output_dir (same global_step, learning rate and replace
  rate, and the same data order: consumed batches are skipped); otherwise initialises from
  --init_checkpoint by the Theseus rules. Saves every save_checkpoints_steps updates and at the
  end, logs progress every log_every_n_steps updates, writes TensorBoard summaries, evaluates at
  each checkpoint with --evaluate_during_training (keeping the best in <output_dir>/best), and
  stops with TrainingError on a NaN / Inf loss without saving the bad state.

  Args:
    cfg: RunConfig.
    bert_config: the predecessor's BertConfig.
    task: TaskSpec (its evaluate scores the set of `eval_path`).
    train_path, num_train_examples: the training feature cache and its size.
    eval_path: the dev feature cache (used with --evaluate_during_training).
    on_checkpoint: optional callable(step) run after each checkpoint (tests stop a run there).

  Returns:
    dict with global_step, replace_rate, learning_rate and the final loss.
  """
  plan = plan_training(cfg, num_train_examples)
  missed_eval = _missed_evaluation(cfg, plan, eval_path)
  if plan.resumed_step >= plan.num_train_steps and not missed_eval:
    logging.info("  already trained: %s is at step %d", plan.latest, plan.resumed_step)
    return {"global_step": plan.resumed_step, "resumed": True}
  if distillation.soft_labels_on(cfg) or distillation.hidden_matching_on(cfg):
    logging.info(distillation.describe(cfg))
  if distillation.soft_labels_on(cfg):
    train_path = distillation.teacher_logits_cache(cfg, bert_config, task, train_path)
  cluster = distribute.make_cluster(cfg, run_config.session_config(cfg))
  g = build_train_graph(cfg, bert_config, task, train_path, plan, cluster)
  keeper = CheckpointKeeper(cfg, bert_config, task, eval_path, g, write_graph=not plan.latest,
                            is_chief=cluster.is_chief)
  sess = tf1.Session(cluster.target, graph=g.graph, config=cluster.session_config)
  progress = ProgressLog(cfg, plan, g.has_replaced, cluster)
  try:
    sess.run(g.init_ops)
    if plan.latest:
      g.saver.restore(sess, plan.latest)
      logging.info("Resumed from %s at step %d", plan.latest, plan.resumed_step)
    if missed_eval:
      logging.info("%s was saved but not evaluated before the run stopped; evaluating it now",
                   plan.latest)
      keeper.evaluate(plan.latest, plan.resumed_step)
    step = plan.resumed_step
    while step < plan.num_train_steps:
      out = run_update(sess, g, plan, cfg, step, progress)
      step = int(sess.run(g.global_step))
      if "summary" in out:
        keeper.writer.add_summary(out["summary"], step)
      progress.maybe_log(step, out)
      if step % cfg.save_checkpoints_steps == 0 or step == plan.num_train_steps:
        keeper.evaluate(keeper.save(sess, step), step)
        if on_checkpoint is not None:
          on_checkpoint(step)
    final = sess.run(g.final)
  finally:
    keeper.close()
    if cluster.mode != "multi_worker":
      sess.close()  # on a gRPC server target close() does not return; the process exits instead
  return _write_train_results(cfg, plan, final, progress, cluster.is_chief)


def run_update(sess, g, plan, cfg, step, progress):
  """Runs the micro-batches of update `step + 1` and the update; returns the last fetched values.

  Raises TrainingError on a NaN / Inf loss (no checkpoint holds that update).
  """
  with_summary = (step + 1) % cfg.log_every_n_steps == 0
  for micro_batch in range(plan.accumulation):
    fetches = g.fetches
    if with_summary and micro_batch == plan.accumulation - 1:
      fetches = dict(fetches, summary=g.summary_op)
    out = sess.run(fetches, {g.micro_batch: micro_batch})
    if not np.isfinite(out["loss"]):
      raise TrainingError("loss is %s at step %d; stopping. %s" % (
          out["loss"], step + 1, checkpoints.kept_checkpoint_note(cfg.output_dir)))
    progress.add(out)
  if g.update_op is not None:
    sess.run(g.update_op)
  return out


def plan_training(cfg, num_train_examples):
  """The run's updates and warmup, and the checkpoint it resumes from (logged)."""
  if cfg.num_train_steps > 0:
    num_train_steps = cfg.num_train_steps
  else:
    per_update = cfg.train_batch_size * cfg.gradient_accumulation_steps
    num_train_steps = max(1, int(math.ceil(num_train_examples * cfg.num_train_epochs /
                                           per_update)))
  latest = checkpoints.find_latest_checkpoint(cfg.output_dir)
  stage = ("plain fine-tuning" if cfg.suc_layers == 0 else
           "stage 2 (successor fine-tuning)" if cfg.finetune_suc else "stage 1 (replacing)")
  plan = TrainPlan(num_train_steps=num_train_steps,
                   num_warmup_steps=int(num_train_steps * cfg.warmup_proportion),
                   accumulation=cfg.gradient_accumulation_steps, latest=latest,
                   resumed_step=checkpoints.global_step_of(latest) if latest else 0, stage=stage)
  logging.info("***** Training: %s *****", stage)
  logging.info("  examples = %d, micro-batch = %d, accumulation = %d, updates = %d, warmup = %d",
               num_train_examples, cfg.train_batch_size, plan.accumulation, num_train_steps,
               plan.num_warmup_steps)
  return plan


def _missed_evaluation(cfg, plan, eval_path):
  """Whether the resumed checkpoint was saved but its evaluation not recorded (a crash between)."""
  if not (plan.resumed_step and cfg.evaluate_during_training and eval_path):
    return False
  return plan.resumed_step not in _evaluated_steps(cfg.output_dir)


def _evaluated_steps(output_dir):
  """The global_step of every evaluation recorded in <output_dir>/eval_history.jsonl (a set)."""
  path = os.path.join(output_dir, "eval_history.jsonl")
  if not os.path.exists(path):
    return set()
  steps = set()
  with open(path) as f:
    for line in f:
      try:
        steps.add(int(json.loads(line)["global_step"]))
      except (ValueError, KeyError, TypeError):
        continue  # a line cut short by a crash
  return steps


def build_train_graph(cfg, bert_config, task, train_path, plan, cluster=None):
  """The finalized training graph of the run's stage, and the tensors the loop fetches.

  cluster: the distribute.Cluster it trains on (default: one process, one device).
  """
  cluster = cluster or distribute.local_cluster()
  graph = tf.Graph()
  with graph.as_default():
    tf1.set_random_seed(cfg.seed)
    dataset = input_pipeline.make_dataset(
        train_path, task.int_keys, distillation.train_float_keys(cfg, task), cfg.train_batch_size,
        is_training=True, seed=cfg.seed, skip_batches=plan.resumed_step * plan.accumulation)
    features = tf1.data.make_one_shot_iterator(dataset).get_next()  # the global batch
    if cluster.worker_index:  # every worker its own dropout; the same data order and draws
      tf1.set_random_seed(cfg.seed + 7919 * cluster.worker_index)
    with cluster.strategy.scope():
      step, rate = _build_step(cfg, bert_config, task, plan, cluster, features)
      g = _train_graph(cfg, graph, features, step, rate)
  graph.finalize()
  return g


def _build_step(cfg, bert_config, task, plan, cluster, features):
  """The TrainStep of the stage (model, losses, optimizer) and its replace-rate Tensor."""
  global_step = tf1.train.get_or_create_global_step()
  replace_rate = None
  if cfg.suc_layers and not cfg.finetune_suc:
    replace_rate = modeling.get_replace_rate(
        global_step, cfg.scheduler_type, cfg.replacing_rate, cfg.scheduler_linear_k,
        cfg.steps_for_replacing)
  compute_dtype = modeling.COMPUTE_DTYPES[cfg.precision]

  def model_fn(replica_features, draw_seed):
    model, hard_loss, outputs = task_spec.build_model(
        bert_config, task, replica_features, True, cfg.suc_layers, cfg.finetune_suc,
        replace_rate, replace_draw_seed=draw_seed, compute_dtype=compute_dtype)
    loss, loss_terms = distillation.student_loss(cfg, task, model, hard_loss, outputs,
                                                 replica_features, bert_config)
    return loss, loss_terms, model.replaced_modules

  train_scope = None
  if cfg.suc_layers and not cfg.finetune_suc and cfg.stage1_also_train:
    train_scope = optimization.stage1_train_scope(cfg.stage1_also_train)
  settings = dict(seed=cfg.seed, learning_rate=cfg.learning_rate,
                  num_train_steps=plan.num_train_steps, num_warmup_steps=plan.num_warmup_steps,
                  accumulation=plan.accumulation, finetune_suc=cfg.finetune_suc,
                  train_scope=train_scope, clip_norm=cfg.clip_norm,
                  weight_decay_rate=cfg.weight_decay_rate)
  loss_scaling = None
  if cfg.precision == "fp16":
    loss_scaling = train_step.LossScaling(cfg.fp16_initial_loss_scale, cfg.fp16_loss_scale_window)
  step = train_step.build_train_step(cluster, features, model_fn, settings, loss_scaling)
  rate = replace_rate if replace_rate is not None else tf.constant(
      0.0 if cfg.suc_layers == 0 else 1.0)
  if not plan.latest and cfg.init_checkpoint:
    _init_from_checkpoint(cfg)
  if distillation.hidden_matching_on(cfg):
    distillation.init_teacher(cfg)  # every start: the teacher is not in the run's checkpoints
  logging.info("  parameters: %d trained of %d in the graph; %d replica(s), %s",
               modeling.count_parameters(step.train_vars),
               modeling.count_parameters(tf1.trainable_variables()), cluster.num_replicas,
               cfg.precision)
  return step, rate


def _train_graph(cfg, graph, features, step, rate):
  """The TrainGraph: fetches, summaries, saver and checks around the TrainStep."""
  global_step = tf1.train.get_global_step()
  tf1.summary.scalar("loss", step.loss)
  if len(step.loss_terms) > 1:  # TensorBoard shows each distillation term too
    for name, term in sorted(step.loss_terms.items()):
      tf1.summary.scalar("loss/" + name, term)
  tf1.summary.scalar("learning_rate", step.learning_rate)
  tf1.summary.scalar("replace_rate", rate)
  fetches = {"train": step.micro_batch_op if step.micro_batch_op is not None else step.update_op,
             "loss": step.loss, "rate": rate, "lr": step.learning_rate,
             "tokens": tf.reduce_sum(features["input_mask"]),
             "examples": tf.shape(features["input_ids"])[0], "draw": step.replaced}
  if step.loss_scale is not None:
    tf1.summary.scalar("loss_scale", step.loss_scale)
    fetches["loss_scale"] = step.loss_scale
  model_vars = [v for v in tf1.global_variables() if not distillation.is_teacher_variable(v)]
  return TrainGraph(
      graph=graph, fetches=fetches,
      update_op=step.update_op if step.micro_batch_op is not None else None,
      micro_batch=step.micro_batch, summary_op=tf1.summary.merge_all(), global_step=global_step,
      # Functions of global_step only: the values a resumed run must end with too.
      final={"step": global_step, "lr": step.learning_rate, "rate": rate},
      saver=tf1.train.Saver(model_vars, max_to_keep=cfg.keep_checkpoint_max),
      # Checked before each save: a checkpoint on disk never holds NaN / Inf weights.
      weights_finite=tf.reduce_all([tf.reduce_all(tf.math.is_finite(v))
                                    for v in tf1.trainable_variables()]),
      init_ops=[tf1.global_variables_initializer(), tf1.local_variables_initializer()],
      has_replaced=step.replaced.shape[0] != 0)


def _init_from_checkpoint(cfg):
  """Initialisers of the model variables from --init_checkpoint (a fresh run only).

  Model variables only: never global_step or optimizer slots of the source run.
  """
  model_vars = tf1.trainable_variables()
  try:
    initialized = modeling.init_from_checkpoint_for_theseus(model_vars, cfg.init_checkpoint,
                                                            cfg.suc_init)
  except ValueError as e:  # e.g. a task head of another shape: one line, not a traceback
    raise InputDataError(str(e).splitlines()[0])
  fresh = [v.op.name for v in model_vars if v.op.name not in initialized]
  logging.info("Initialised %d of %d model variables from %s", len(model_vars) - len(fresh),
               len(model_vars), cfg.init_checkpoint)
  if fresh:
    logging.info("  left to their initialisers: %s", ", ".join(fresh))


class CheckpointKeeper(object):
  """Saves checkpoints, evaluates them, keeps the best one and the evaluation history."""

  def __init__(self, cfg, bert_config, task, eval_path, train_graph, write_graph, is_chief=True):
    """A keeper that is not the chief's (another worker of a cluster) writes nothing."""
    self.cfg, self.task, self.is_chief = cfg, task, is_chief
    self.saver, self.weights_finite = train_graph.saver, train_graph.weights_finite
    self.prefix = os.path.join(cfg.output_dir, "model.ckpt")
    self.evaluator = None
    if cfg.evaluate_during_training and eval_path and is_chief:
      self.evaluator = evaluation.Evaluator(cfg, bert_config, task, eval_path,
                                            cfg.eval_batch_size)
    self.best_value = None
    best_meta = os.path.join(cfg.output_dir, checkpoints.BEST_DIR, "best_metric.json")
    if os.path.exists(best_meta):
      with open(best_meta) as f:
        self.best_value = json.load(f).get("value")
    # TensorBoard gets the graph once, on the run's first start (write_graph).
    self.writer = (tf1.summary.FileWriter(cfg.output_dir,
                                          train_graph.graph if write_graph else None)
                   if is_chief else _NoSummaries())

  def save(self, sess, step):
    """Writes the checkpoint of `step` and returns its path (TrainingError when it cannot).

    Another worker than the chief writes nothing and returns None.
    """
    if not self.is_chief:
      return None
    if not sess.run(self.weights_finite):
      raise TrainingError("weights are NaN / Inf after the update of step %d; stopping without "
                          "saving it. %s" % (step, checkpoints.kept_checkpoint_note(
                              self.cfg.output_dir)))
    try:
      path = self.saver.save(sess, self.prefix, global_step=step)
    except (tf.errors.OpError, OSError) as e:
      # Only this save's temporary files go; earlier checkpoints and the state file are intact.
      for partial in glob.glob("%s-%d*tempstate*" % (self.prefix, step)):
        if os.path.isdir(partial):
          shutil.rmtree(partial, ignore_errors=True)
        else:
          os.remove(partial)
      raise TrainingError("step %d: could not write checkpoint in %s (%s). %s"
                          % (step, self.cfg.output_dir, short_error(e),
                             checkpoints.kept_checkpoint_note(self.cfg.output_dir)))
    logging.info("Saved checkpoint %s", path)
    return path

  def evaluate(self, path, step):
    """With --evaluate_during_training: scores `path`, records it, keeps it if it is the best."""
    if self.evaluator is None:
      return
    self.evaluator.restore(path)
    rows, eval_loss, seconds = self.evaluator.run()
    metrics = self.task.evaluate(rows)
    if eval_loss is not None:
      metrics["eval_loss"] = eval_loss
    metrics["global_step"] = step
    numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    logging.info("Eval at step %d (%.1fs): %s", step, seconds,
                 ", ".join("%s = %.4f" % (k, v) for k, v in sorted(numbers.items())))
    self.writer.add_summary(tf1.Summary(value=[
        tf1.Summary.Value(tag="eval/" + k, simple_value=float(v)) for k, v in numbers.items()]),
                            step)
    with open(os.path.join(self.cfg.output_dir, "eval_history.jsonl"), "a") as f:
      f.write(json.dumps(metrics, default=float) + "\n")
    value = metrics[metrics["main_metric"]]
    if self.best_value is None or value > self.best_value:
      self.best_value = value
      checkpoints.copy_checkpoint(path, os.path.join(self.cfg.output_dir, checkpoints.BEST_DIR), {
          "best_metric.json": json.dumps({"metric": metrics["main_metric"], "value": value,
                                          "global_step": step, "metrics": metrics},
                                         default=float, indent=1)})
      logging.info("New best %s = %.4f at step %d", metrics["main_metric"], value, step)

  def close(self):
    self.writer.close()
    if self.evaluator is not None:
      self.evaluator.close()


class _NoSummaries(object):
  """The summary writer of a worker that is not the chief."""

  def add_summary(self, *args):
    del args

  def close(self):
    pass


class ProgressLog(object):
  """Averages over the micro-batches since the last progress line, and writes that line.

  The line: step, steps/s, examples/s and tokens/s of the global batch, mean loss (of this
  worker's replicas), learning rate, replace rate; in stage 1 the share of modules replaced and
  the modules the last micro-batch drew (1 = successor, module 0 first); with fp16 the loss scale;
  in a cluster the worker it comes from.
  """

  def __init__(self, cfg, plan, has_replaced, cluster=None):
    self.cfg, self.plan, self.has_replaced = cfg, plan, has_replaced
    self.prefix = ("worker %d: " % cluster.worker_index
                   if cluster is not None and cluster.num_workers > 1 else "")
    self.run_start = time.time()
    self.updates_this_run = 0
    self.last_loss, self.last_rate, self.last_draw, self.loss_scale = None, None, "", None
    self._reset()

  def _reset(self):
    self.window = {"loss": 0.0, "n": 0, "examples": 0, "tokens": 0, "replaced": 0.0,
                   "start": time.time()}

  def add(self, out):
    """Counts one micro-batch's fetched values."""
    w = self.window
    w["loss"] += float(out["loss"])
    w["n"] += 1
    w["examples"] += int(out["examples"])
    w["tokens"] += int(out["tokens"])
    w["replaced"] += float(np.mean(out["draw"])) if len(out["draw"]) else 0.0
    self.last_loss, self.last_rate = float(out["loss"]), float(out["rate"])
    self.last_draw = "".join("1" if d else "0" for d in out["draw"])
    self.loss_scale = out.get("loss_scale")

  def maybe_log(self, step, out):
    """After update `step`: logs every log_every_n_steps updates and at the last one."""
    self.updates_this_run += 1
    if step % self.cfg.log_every_n_steps != 0 and step != self.plan.num_train_steps:
      return
    w = self.window
    elapsed = time.time() - w["start"]
    updates = max(1, w["n"] // self.plan.accumulation)
    eta = ((time.time() - self.run_start) / self.updates_this_run *
           (self.plan.num_train_steps - step))
    logging.info(
        "%sstep %d/%d | %.2f steps/s | %.1f examples/s | %.0f tokens/s | loss %.4f | lr %.3g | "
        "replace rate %.3f%s%s | ETA %s", self.prefix, step, self.plan.num_train_steps,
        updates / elapsed, w["examples"] / elapsed, w["tokens"] / elapsed, w["loss"] / w["n"],
        out["lr"], self.last_rate,
        (" (replaced %.2f, drew %s)" % (w["replaced"] / w["n"], self.last_draw))
        if self.has_replaced else "",
        " | loss scale %g" % self.loss_scale if self.loss_scale is not None else "",
        _format_eta(eta))
    self._reset()


def _format_eta(seconds):
  seconds = int(max(0, seconds))
  return "%d:%02d:%02d" % (seconds // 3600, (seconds // 60) % 60, seconds % 60)


def _write_train_results(cfg, plan, final, progress, is_chief=True):
  """Logs the end of training, writes train_results.json (the chief) and returns its values."""
  logging.info("Training done: step %d, learning rate %.3g, replace rate %.4f, %.1fs",
               final["step"], final["lr"], final["rate"], time.time() - progress.run_start)
  if is_chief:
    files.atomic_write_text(os.path.join(cfg.output_dir, "train_results.json"), json.dumps({
        "global_step": int(final["step"]), "learning_rate": float(final["lr"]),
        "replace_rate": float(final["rate"]), "last_loss": progress.last_loss,
        "resumed_from_step": plan.resumed_step, "num_train_steps": plan.num_train_steps},
        indent=1) + "\n")
  return {"global_step": int(final["step"]), "replace_rate": float(final["rate"]),
          "learning_rate": float(final["lr"]), "loss": progress.last_loss}
