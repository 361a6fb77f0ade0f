# coding=utf-8
"""BERT-of-Theseus fine-tuning and compression for sentence (pair) classification and regression.

  python run_classifier.py --task_name=mrpc --data_dir=$GLUE_DIR/MRPC \
    --bert_config_file=CFG --vocab_file=VOCAB --init_checkpoint=CKPT --output_dir=OUT \
    --do_train --do_eval [--suc_layers=n [--finetune_suc]] [--do_predict] [--do_export]

The task (processors, features, metrics, head) is classifier_task.py; the flags both run scripts
share are run_config.py's; the order of train / eval / predict / export is runner.py's.
Outputs in --output_dir: checkpoints and TensorBoard summaries, eval_results.{txt,json}
(eval_<set>_results for MNLI's two dev sets), with --do_predict test_results.tsv (one line of
class probabilities per example, as google-research/bert writes it) and test_results.json, and
with --do_export <export_dir> (see export.py).
"""

from __future__ import absolute_import
from __future__ import division
from __future__ import print_function

import sys

import cli

if __name__ == "__main__":
  # Run as a script: oneDNN on and TensorFlow's start-up messages quiet (unless --tf_verbose),
  # set before TensorFlow is imported below. Importing this file changes nothing.
  cli.prepare_process(sys.argv[1:])

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

import classifier_task  # noqa: E402
import run_config  # noqa: E402
import runner  # noqa: E402

FLAGS = flags.FLAGS

## Required parameters (with --data_dir, --bert_config_file, --vocab_file, --output_dir: see
## run_config.py, which also defines the other parameters both run scripts share)
run_config.define_common_flags()
flags.DEFINE_string("task_name", None, "Task: " + ", ".join(sorted(classifier_task.PROCESSORS)))

## Other parameters
flags.DEFINE_list("generic_labels", [], "generic task: the label list.")
flags.DEFINE_integer("generic_text_a_column", 0, "generic task: column of text_a.")
flags.DEFINE_integer("generic_text_b_column", -1, "generic task: column of text_b (-1: none).")
flags.DEFINE_integer("generic_label_column", 1, "generic task: column of the label.")
flags.DEFINE_string("generic_delimiter", "\t", "generic task: column delimiter.")
flags.DEFINE_bool("generic_has_header", True, "generic task: files start with a header.")
flags.DEFINE_bool("generic_use_csv", False, "generic task: parse with the csv module.")
flags.DEFINE_string("xnli_language", "zh", "xnli task: the language trained and evaluated on.")


def run(cfg):
  """Train / evaluate / predict / export as `cfg` (a run_config.RunConfig) says."""
  return runner.run(cfg, classifier_task.ClassifierRun(cfg))


if __name__ == "__main__":
  app.run(lambda argv: runner.absl_main(classifier_task.ClassifierRun, FLAGS))
