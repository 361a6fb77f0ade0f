"""What run_classifier.py and run_ner_mrc.py do alike: the order of train / eval / predict / export.

A task library gives `run` a task run object (classifier_task.ClassifierRun,
ner_mrc_task.NerMrcRun) with these methods:

  check_config()           validates and completes the task's own flags (before anything else);
  read_data(tokenizer)     reads and validates every data file the flags need, before any long
                           work;
  train_inputs()           -> (TaskSpec, train feature cache, number of features, dev feature
                           cache or None for --evaluate_during_training);
  eval_sets()              -> list of task_spec.FeatureSet to evaluate (--do_eval);
  eval_metrics(feature_set, rows)
                           -> metrics of one evaluated set (and writes what the task writes
                           besides, e.g. predicted tags);
  predict_set()            -> the FeatureSet of --do_predict;
  write_predictions(feature_set, rows, checkpoint, seconds) -> the prediction results;
  export_task(), export_files()
                           -> the TaskSpec of the export and the extra files it carries.
"""

from __future__ import absolute_import
from __future__ import division
from __future__ import print_function

from absl import logging
import tensorflow as tf

import checkpoints
import cli
import distillation
import distribute
import evaluation
import export
import run_config
import trainer

tf1 = tf.compat.v1

def run(cfg, task_run):
  """Train / evaluate / predict / export as cfg says. Returns a dict of results."""
  task_run.check_config()
  bert_config = run_config.check_run_config(cfg)
  distillation.check_config(cfg, bert_config)
  task_run.read_data(run_config.make_tokenizer(cfg))
  results = {}
  if cfg.do_train:
    task, train_path, num_features, eval_path = task_run.train_inputs()
    results["train"] = trainer.train(cfg, bert_config, task, train_path, num_features, eval_path)
  if not (cfg.do_eval or cfg.do_predict or cfg.do_export):
    return results
  if not distribute.is_chief(cfg):
    logging.info("Evaluation, prediction and export are the chief's (worker 0) work")
    return results
  checkpoint = checkpoints.checkpoint_for_inference(cfg)
  logging.info("Inference checkpoint: %s", checkpoint)
  if cfg.do_eval:
    for i, feature_set in enumerate(task_run.eval_sets()):
      rows, loss, seconds = evaluation.infer(cfg, bert_config, feature_set.task, feature_set.path,
                                             checkpoint, cfg.eval_batch_size)
      metrics = task_run.eval_metrics(feature_set, rows)
      metrics.update(eval_loss=loss, checkpoint=checkpoint, eval_seconds=seconds)
      metrics.update(evaluation.google_result_keys(metrics, checkpoint))
      logging.info("***** Eval results (%s) *****", feature_set.name)
      for key in sorted(metrics):
        logging.info("  %s = %s", key, metrics[key])
      # The task's main dev set (MNLI: matched) writes eval_results.txt, as google-research/bert.
      name = "eval" if i == 0 else "eval_" + feature_set.name
      evaluation.write_eval_results(cfg.output_dir, name, metrics)
      results[feature_set.name] = metrics
  if cfg.do_predict:
    feature_set = task_run.predict_set()
    rows, _, seconds = evaluation.infer(cfg, bert_config, feature_set.task, feature_set.path,
                                        checkpoint, cfg.predict_batch_size)
    results["predict"] = task_run.write_predictions(feature_set, rows, checkpoint, seconds)
  if cfg.do_export:
    results["export"] = export.export_model(cfg, bert_config, task_run.export_task(), checkpoint,
                                            cfg.export_dir, task_run.export_files(),
                                            tflite=cfg.export_tflite)
  return results


def absl_main(make_task_run, flag_values):
  """The `main` of a run script: `app.run(lambda argv: absl_main(ClassifierRun, FLAGS))`."""
  logging.set_verbosity(logging.INFO)
  tf1.disable_eager_execution()
  cfg = run_config.RunConfig.from_flags(flag_values)
  if not cfg.tf_verbose:
    cli.quiet_tensorflow_python_logs()
  cli.run_main(lambda argv: run(cfg, make_task_run(cfg)), None)
  if cfg.distribute == "multi_worker":
    cli.exit_now(0)  # TensorFlow's teardown would wait on the cluster's server
