# coding=utf-8
"""BERT-of-Theseus for named entity recognition as machine reading comprehension.

  python run_ner_mrc.py --flagfile=configs/ner_conll2003.flags --data_dir=DATA \
    --bert_config_file=CFG --vocab_file=VOCAB --init_checkpoint=CKPT --output_dir=OUT \
    --do_train --do_eval [--suc_layers=n [--finetune_suc]] [--do_predict] [--do_export]

The same stages and shared flags as run_classifier.py, plus the task's own (--data_format,
--query_file, --train_file / --dev_file / --test_file (defaults per format), --doc_stride,
--max_span_length, --span_threshold, --loss / --focal_gamma, --write_probabilities).
--max_train_examples / --max_eval_examples count sentences. The task (readers, features, head,
decoding, metric, serving) is theseus/tasks/ner_mrc.

Outputs in --output_dir: eval_results.{txt,json} (entity P/R/F1, micro and per type as
f1_<TYPE> ...), eval_predictions.{txt,json}; with --do_predict test_predictions.txt (the input's
layout: `token TAG` lines for conll2003, `char<TAB>TAG` for char_bio, tokens line + tags line
for chars_tags_lines), test_predictions.json (tokens, tags, entities) and, when the test file
has gold entities, test_results.{txt,json}; with --do_export <export_dir> holds the plain
n-layer BERT + `mrc/start_end` head, a SavedModel (inputs input_ids / input_mask / segment_ids,
outputs start_probs / end_probs [batch, length]), ner_queries.json and ner_task.json.
"""

import sys

from theseus import cli

if __name__ == "__main__":
  # Run as a script: oneDNN on and TensorFlow's start-up messages quiet (unless --tf_verbose),
  # set before TensorFlow is imported below. Importing this file changes nothing.
  cli.prepare_process(sys.argv[1:])

from theseus.app import runner  # noqa: E402
from theseus.config import groups  # noqa: E402
from theseus.tasks.ner_mrc import task  # noqa: E402

## Required parameters: --data_dir, --bert_config_file, --vocab_file, --output_dir.
## Other parameters: the groups every application shares (theseus/config/groups.py) and the
## task's own (task.NerSettings: --data_format, --query_file, --train_file, --dev_file,
## --test_file, --doc_stride, --max_span_length, --span_threshold, --loss, --focal_gamma,
## --write_probabilities).
groups.define_flags(task.NerSettings)


if __name__ == "__main__":
  runner.main(task.NerMrcRun)
