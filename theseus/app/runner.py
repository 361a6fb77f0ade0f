"""What every application does alike: the checks, then train / evaluate / predict / export.

An application (run_classifier.py, run_ner_mrc.py, run_squad.py) is a thin absl script: its
flags (theseus/config/groups.py and its task's settings), then `main(TaskRun)`. The run
flows one way:

  flags -> RunSettings (groups by concern) -> checks before any long work -> the task reads its
  data -> trainer (update, checkpoints, evaluation during training) -> evaluation / prediction
  on the inference graph -> export (+ TFLite) -> serving (predict.py).

This module alone holds a whole RunSettings; every function it calls receives the groups it uses.
"""

from absl import app
from absl import flags
from absl import logging
import tensorflow as tf

from theseus import cli
from theseus import files
from theseus.config import checks
from theseus.config import groups
from theseus.distillation import teacher as teacher_lib
from theseus.export import writer
from theseus.training import checkpoints
from theseus.training import distribute
from theseus.training import evaluation
from theseus.training import trainer

tf1 = tf.compat.v1


def settings_of(task_run_class, **values):
  """The RunSettings of the flags' defaults (the task's FLAG_DEFAULTS among them) with
  `values` (for running in process)."""
  return groups.RunSettings.from_values(task_run_class.SETTINGS,
                                        **dict(task_run_class.FLAG_DEFAULTS, **values))


def run_task(task_run_class, settings):
  """Train / evaluate / predict / export a task as `settings` (a RunSettings) say."""
  return run(settings, make_task_run(task_run_class, settings))


def make_task_run(task_run_class, settings):
  """The task's part of the run `settings` describe."""
  return task_run_class(settings.task, settings.model, settings.data,
                        settings.actions.output_dir)


def check(settings, task_run):
  """Every check before any long work (InputDataError); returns (BertConfig, Stage)."""
  task_run.check_settings()
  checks.check_required(settings.actions, settings.tpu, settings.data, settings.model,
                        task_run.NEEDS_DATA_DIR)
  bert_config = checks.load_bert_config(settings.model)
  stage = checks.check_replacing(settings.replacing)
  checks.check_model(settings.model, bert_config, stage.suc_layers)
  checks.check_ranges(settings.data, settings.actions, settings.training, settings.scale,
                      settings.tpu, settings.distillation)
  distribute.check_distribution(settings.scale.distribute, settings.scale.mirrored_devices)
  if settings.model.init_checkpoint:
    checks.check_init_checkpoint(settings.model.init_checkpoint, bert_config, stage,
                                 settings.model.do_lower_case)
  checks.warn_if_random_start(settings.model.init_checkpoint, settings.actions.do_train,
                              checkpoints.find_latest_checkpoint(settings.actions.output_dir))
  checks.check_writable_dir(settings.actions.output_dir)
  teacher_lib.check(settings.distillation, stage, settings.model.init_checkpoint, bert_config,
                    settings.model.bert_config_file, settings.model.vocab_path,
                    settings.actions.do_train)
  return bert_config, stage


def data_sets(actions, evaluate_during_training):
  """The data sets a run reads: train, dev and test as its actions need them."""
  sets = set()
  if actions.do_train:
    sets.add("train")
  if actions.do_eval or (actions.do_train and evaluate_during_training):
    sets.add("dev")
  if actions.do_predict:
    sets.add("test")
  return sets


def train(settings, bert_config, task, train_path, num_features, eval_path=None,
          on_checkpoint=None):
  """trainer.train with the groups of `settings` it uses."""
  return trainer.train(settings.actions.output_dir, settings.model, settings.training,
                       settings.replacing, settings.distillation, settings.scale,
                       settings.actions.eval_batch_size, bert_config, task, train_path,
                       num_features, eval_path, on_checkpoint)


def run(settings, task_run):
  """Train / evaluate / predict / export as `settings` say. Returns a dict of results.

  The output directory is held by this run alone (files.DirectoryLock; in a cluster, by the
  chief, which alone writes there).
  """
  bert_config, stage = check(settings, task_run)
  lock = None
  if distribute.is_chief(settings.scale.distribute):
    lock = files.DirectoryLock(settings.actions.output_dir).acquire()
  try:
    return _run(settings, task_run, bert_config, stage)
  finally:
    if lock is not None:
      lock.release()


def _run(settings, task_run, bert_config, stage):
  """run's work once the checks are done and the output directory is held."""
  actions = settings.actions
  task_run.read_data(checks.make_tokenizer(settings.model),
                     data_sets(actions, settings.training.evaluate_during_training))
  results = {}
  if actions.do_train:
    task, train_path, num_features, eval_path = task_run.train_inputs(
        settings.training.evaluate_during_training, settings.distillation.kd_augment,
        settings.training.seed)
    results["train"] = train(settings, bert_config, task, train_path, num_features, eval_path)
  if not (actions.do_eval or actions.do_predict or actions.do_export):
    return results
  if not distribute.is_chief(settings.scale.distribute):
    logging.info("Evaluation, prediction and export are the chief's (worker 0) work")
    return results
  checkpoint = checkpoints.checkpoint_for_inference(
      actions.output_dir, settings.training.evaluate_during_training,
      settings.model.init_checkpoint)
  logging.info("Inference checkpoint: %s", checkpoint)

  def infer(feature_set, batch_size):
    return evaluation.infer(bert_config, feature_set.task, feature_set.path, checkpoint,
                            batch_size, stage, settings.replacing.suc_init,
                            distribute.session_config(settings.scale.num_threads,
                                                      settings.scale.xla))

  if actions.do_eval:
    for i, feature_set in enumerate(task_run.eval_sets()):
      results[feature_set.name] = _evaluate(task_run, feature_set, infer, checkpoint, i,
                                            actions)
  if actions.do_predict:
    feature_set = task_run.predict_set()
    rows, _, seconds = infer(feature_set, actions.predict_batch_size)
    results["predict"] = task_run.write_predictions(feature_set, rows, checkpoint, seconds)
  if actions.do_export:
    results["export"] = writer.export_model(
        bert_config, task_run.export_spec(), task_run.KIND, stage, settings.replacing.suc_init,
        settings.model.vocab_path, checkpoint, settings.export.export_dir,
        task_run.export_files(), with_tflite=settings.export.export_tflite)
  return results


def _evaluate(task_run, feature_set, infer, checkpoint, index, actions):
  """Scores one dev set and writes its results (the first set: eval_results.txt)."""
  rows, loss, seconds = infer(feature_set, actions.eval_batch_size)
  predictions = feature_set.task.decode(rows)
  metrics = feature_set.task.score(predictions)
  metrics.update(task_run.eval_outputs(feature_set, predictions))
  metrics.update(eval_loss=loss, checkpoint=checkpoint, eval_seconds=seconds)
  metrics.update(evaluation.google_result_keys(metrics, checkpoint))
  logging.info("***** Eval results (%s) *****", feature_set.name)
  for key in sorted(metrics):
    logging.info("  %s = %s", key, metrics[key])
  # The task's main dev set (MNLI: matched) writes eval_results.txt, as google-research/bert.
  name = "eval" if index == 0 else "eval_" + feature_set.name
  evaluation.write_eval_results(actions.output_dir, name, metrics)
  return metrics


def main(task_run_class):
  """Runs an application as a script: `runner.main(task.ClassifierRun)` (its flags defined;
  the task's FLAG_DEFAULTS become theirs)."""
  for name, value in task_run_class.FLAG_DEFAULTS.items():
    flags.FLAGS.set_default(name, value)
  app.run(lambda argv: absl_main(task_run_class, flags.FLAGS))


def absl_main(task_run_class, flag_values):
  """The `main` of a run script, once absl has parsed `flag_values`."""
  logging.set_verbosity(logging.INFO)
  tf1.disable_eager_execution()
  settings = groups.RunSettings.from_flags(flag_values, task_run_class.SETTINGS)
  if not settings.actions.tf_verbose:
    cli.quiet_tensorflow_python_logs()
  cli.run_main(lambda argv: run(settings, make_task_run(task_run_class, settings)), None)
