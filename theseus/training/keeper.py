"""What the training loop keeps and tells: checkpoints (and their evaluation), and progress.

* `CheckpointKeeper`: writes checkpoints (never one with NaN / Inf weights), evaluates them with
  --evaluate_during_training, keeps the best in <output_dir>/best and the evaluation history in
  <output_dir>/eval_history.jsonl;
* `ProgressLog`: steps/s, examples/s, tokens/s, loss, learning rate, replace rate and ETA.
"""

import glob
import json
import os
import shutil
import time

from absl import logging
import numpy as np
import tensorflow as tf

from theseus.errors import TrainingError
from theseus.errors import short_error
from theseus.training import checkpoints

tf1 = tf.compat.v1

EVAL_HISTORY = "eval_history.jsonl"


def evaluated_steps(output_dir):
  """The global_step of every evaluation recorded in <output_dir>/eval_history.jsonl (a set)."""
  path = os.path.join(output_dir, EVAL_HISTORY)
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


class CheckpointKeeper(object):
  """Saves checkpoints, evaluates them, keeps the best one and the evaluation history."""

  def __init__(self, output_dir, saver, weights_finite, graph, evaluator=None, task=None,
               is_chief=True):
    """A keeper that is not the chief's (another worker of a cluster) writes nothing.

    Args:
      output_dir: the run's directory.
      saver, weights_finite: the train graph's Saver and its all-weights-finite check.
      graph: the train graph for TensorBoard (the run's first start), or None.
      evaluator: an evaluation.Evaluator of the dev set (--evaluate_during_training), or None.
      task: the TaskSpec that scores the evaluator's rows.
      is_chief: whether this process writes (worker 0 of a cluster; a lone process).
    """
    self.output_dir, self.task, self.is_chief = output_dir, task, is_chief
    self.saver, self.weights_finite = saver, weights_finite
    self.prefix = os.path.join(output_dir, "model.ckpt")
    self.evaluator = evaluator
    self.best_value = None
    best_meta = os.path.join(output_dir, checkpoints.BEST_DIR, "best_metric.json")
    if os.path.exists(best_meta):
      with open(best_meta) as f:
        self.best_value = json.load(f).get("value")
    self.writer = tf1.summary.FileWriter(output_dir, graph) if is_chief else _NoSummaries()

  def save(self, sess, step, with_meta_graph=False):
    """Writes the checkpoint of `step` and returns its path (TrainingError when it cannot).

    with_meta_graph: also write model.ckpt-<step>.meta, the training graph (the run's last
    checkpoint has one; writing it with every checkpoint cost a serialisation of the whole
    graph each time). Another worker than the chief writes nothing and returns None.
    """
    if not self.is_chief:
      return None
    if not sess.run(self.weights_finite):
      raise TrainingError("weights are NaN / Inf after the update of step %d; stopping without "
                          "saving it. %s" % (step, checkpoints.kept_checkpoint_note(
                              self.output_dir)))
    try:
      path = self.saver.save(sess, self.prefix, global_step=step,
                             write_meta_graph=with_meta_graph)
    except (tf.errors.OpError, OSError) as e:
      # Only this save's temporary files go; earlier checkpoints and the state file are intact.
      for partial in glob.glob("%s-%d*tempstate*" % (self.prefix, step)):
        if os.path.isdir(partial):
          shutil.rmtree(partial, ignore_errors=True)
        else:
          os.remove(partial)
      raise TrainingError("step %d: could not write checkpoint in %s (%s). %s"
                          % (step, self.output_dir, short_error(e),
                             checkpoints.kept_checkpoint_note(self.output_dir)))
    logging.info("Saved checkpoint %s", path)
    return path

  def evaluate(self, path, step):
    """With an evaluator: scores `path`, records it, keeps it if it is the best."""
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
    with open(os.path.join(self.output_dir, EVAL_HISTORY), "a") as f:
      f.write(json.dumps(metrics, default=float) + "\n")
    value = metrics[metrics["main_metric"]]
    if self.best_value is None or value > self.best_value:
      self.best_value = value
      checkpoints.copy_checkpoint(path, os.path.join(self.output_dir, checkpoints.BEST_DIR), {
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

  def __init__(self, log_every_n_steps, num_train_steps, accumulation, has_replaced,
               worker_prefix=""):
    self.log_every_n_steps, self.num_train_steps = log_every_n_steps, num_train_steps
    self.accumulation, self.has_replaced, self.prefix = accumulation, has_replaced, worker_prefix
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
    if step % self.log_every_n_steps != 0 and step != self.num_train_steps:
      return
    w = self.window
    elapsed = time.time() - w["start"]
    updates = max(1, w["n"] // self.accumulation)
    eta = ((time.time() - self.run_start) / self.updates_this_run *
           (self.num_train_steps - step))
    logging.info(
        "%sstep %d/%d | %.2f steps/s | %.1f examples/s | %.0f tokens/s | loss %.4f | lr %.3g | "
        "replace rate %.3f%s%s | ETA %s", self.prefix, step, self.num_train_steps,
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
