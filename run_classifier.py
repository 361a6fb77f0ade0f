# coding=utf-8
"""BERT-of-Theseus fine-tuning and compression for sentence (pair) classification and regression.

  python run_classifier.py --task_name=mrpc --data_dir=$GLUE_DIR/MRPC \
    --bert_config_file=CFG --vocab_file=VOCAB --init_checkpoint=CKPT --output_dir=OUT \
    --do_train --do_eval [--suc_layers=n [--finetune_suc]] [--do_predict] [--do_export]

The task (data sets, features, metrics, head, serving) is theseus/tasks/classifier; the run
(checks, training, evaluation, prediction, export) is theseus/app/runner.py's.
Outputs in --output_dir: checkpoints and TensorBoard summaries, eval_results.{txt,json}
(eval_<set>_results for MNLI's two dev sets), with --do_predict test_results.tsv (one line of
class probabilities per example, as google-research/bert writes it) and test_results.json, and
with --do_export <export_dir> (see theseus/export/writer.py).
"""

import sys

from theseus import cli

if __name__ == "__main__":
  # Run as a script: oneDNN on and TensorFlow's start-up messages quiet (unless --tf_verbose),
  # set before TensorFlow is imported below. Importing this file changes nothing.
  cli.prepare_process(sys.argv[1:])

from theseus.app import runner  # noqa: E402
from theseus.config import groups  # noqa: E402
from theseus.tasks.classifier import task  # noqa: E402

## Required parameters: --task_name, --data_dir, --bert_config_file, --vocab_file, --output_dir.
## Other parameters: the groups every application shares (theseus/config/groups.py: model, data,
## actions, training, replacing, distillation, scale, export, google-research/bert's TPU flags)
## and the task's own (task.ClassifierSettings: --generic_*, --xnli_language).
groups.define_flags(task.ClassifierSettings)


if __name__ == "__main__":
  runner.main(task.ClassifierRun)
