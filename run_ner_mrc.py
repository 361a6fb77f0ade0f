# coding=utf-8
"""BERT-of-Theseus for named entity recognition as machine reading comprehension.

  python run_ner_mrc.py --flagfile=configs/ner_conll2003.flags --data_dir=DATA \
    --bert_config_file=CFG --vocab_file=VOCAB --init_checkpoint=CKPT --output_dir=OUT \
    --do_train --do_eval [--suc_layers=n [--finetune_suc]] [--do_predict] [--do_export]

The same stages and shared flags as run_classifier.py (run_config.py), plus --data_format,
--query_file, --train_file / --dev_file / --test_file (defaults per format), --doc_stride,
--max_span_length, --span_threshold, --loss / --focal_gamma and --write_probabilities.
--max_train_examples / --max_eval_examples count sentences. The task (readers, features, head,
decoding, metric) is ner_mrc_task.py.

Outputs in --output_dir: eval_results.{txt,json} (entity P/R/F1, micro and per type as
f1_<TYPE> ...), eval_predictions.{txt,json}; with --do_predict test_predictions.txt (the input's
layout: `token TAG` lines for conll2003, `char<TAB>TAG` for char_bio, tokens line + tags line
for chars_tags_lines), test_predictions.json (tokens, tags, entities) and, when the test file
has gold entities, test_results.{txt,json}; with --do_export <export_dir> holds the plain
n-layer BERT + `mrc/start_end` head, a SavedModel (inputs input_ids / input_mask / segment_ids,
outputs start_probs / end_probs [batch, length]), ner_queries.json and ner_task.json.
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

import ner_mrc_task  # noqa: E402
import run_config  # noqa: E402
import runner  # noqa: E402

FLAGS = flags.FLAGS

## Required parameters: --data_dir, --bert_config_file, --vocab_file, --output_dir (see
## run_config.py, which also defines the other parameters both run scripts share)
run_config.define_common_flags()

## Other parameters
flags.DEFINE_enum("data_format", "conll2003", list(ner_mrc_task.DATA_FORMATS),
                  "Layout of the data files (and of the written predictions): conll2003 "
                  "(`token POS chunk NER`), char_bio (`char<TAB>TAG`, MSRA) or chars_tags_lines "
                  "(a characters line, then its tags line).")
flags.DEFINE_string("query_file", None,
                    "JSON object entity type -> query text (default: "
                    "configs/ner_queries_conll2003.json for conll2003, "
                    "configs/ner_queries_msra.json for the Chinese formats).")
flags.DEFINE_string("train_file", None, "Training file in --data_dir (default per format: "
                    "conll2003 train.txt, char_bio train_data, chars_tags_lines train.txt).")
flags.DEFINE_string("dev_file", None, "Dev file in --data_dir (default per format: conll2003 "
                    "valid.txt, char_bio test_data (MSRA has no dev split), chars_tags_lines "
                    "dev.txt).")
flags.DEFINE_string("test_file", None, "Test file in --data_dir for --do_predict (default per "
                    "format: conll2003 test.txt, char_bio test_data, chars_tags_lines test.txt).")
flags.DEFINE_integer("doc_stride", 32, "Words from one window start to the next when a sentence "
                     "does not fit in max_seq_length after the query.")
flags.DEFINE_integer("max_span_length", 0, "The most words (characters) of a decoded entity "
                     "(0: no limit).")
flags.DEFINE_float("span_threshold", 0.5, "Probability above which a word is a start / end.")
flags.DEFINE_enum("loss", "ce", list(ner_mrc_task.LOSS_TYPES),
                  "Pointer loss: sigmoid cross-entropy or focal.")
flags.DEFINE_float("focal_gamma", 2.0, "Exponent of the focal loss (--loss=focal; 0 = ce).")
flags.DEFINE_bool("write_probabilities", False,
                  "--do_predict: also write test_probabilities.npz (every feature's input_ids, "
                  "segment_ids and start/end probabilities).")


def run(cfg):
  """Train / evaluate / predict / export as `cfg` (a run_config.RunConfig) says."""
  return runner.run(cfg, ner_mrc_task.NerMrcRun(cfg))


if __name__ == "__main__":
  app.run(lambda argv: runner.absl_main(ner_mrc_task.NerMrcRun, FLAGS))
