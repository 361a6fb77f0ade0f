# coding=utf-8
"""BERT-of-Theseus for question answering on SQuAD v1.1 and v2.0 (google-research/bert's
run_squad.py command line, unchanged).

  python run_squad.py --vocab_file=VOCAB --bert_config_file=CFG --init_checkpoint=CKPT \
    --do_train=True --train_file=train-v1.1.json --do_predict=True \
    --predict_file=dev-v1.1.json --train_batch_size=12 --learning_rate=3e-5 \
    --num_train_epochs=2.0 --max_seq_length=384 --doc_stride=128 --output_dir=OUT \
    [--do_eval] [--suc_layers=n [--finetune_suc]] [--kd_alpha=...] [--do_export]

The same stages and shared flags as run_classifier.py (no --data_dir: the files are named), plus
google-research/bert's SQuAD flags: --train_file, --predict_file, --doc_stride, --max_query_length,
--n_best_size, --max_answer_length, --version_2_with_negative, --null_score_diff_threshold,
--verbose_logging; --max_seq_length defaults to 384. --max_train_examples / --max_eval_examples
count questions. The task (reader, features, head, decoding, metrics, serving) is
theseus/tasks/squad.

Outputs in --output_dir: with --do_predict (on --predict_file) predictions.json,
nbest_predictions.json and, for v2.0, null_odds.json, as google-research/bert writes them (score
with the official evaluate-v1.1.py / evaluate-v2.0.py); with --do_eval (the same file, which then
needs its answers) the same files plus eval_results.{txt,json}: exact_match and f1 as the official
scripts compute them (v2.0 adds exact, total, HasAns_* / NoAns_* and the best no-answer
thresholds); with --do_export <export_dir> the plain n-layer BERT + cls/squad head, a SavedModel
(inputs input_ids / input_mask / segment_ids, outputs start_logits / end_logits [batch, length])
and squad_task.json, which predict.py reads to answer `question<TAB>context` lines.
"""

import sys

from theseus import cli

if __name__ == "__main__":
  # Run as a script: oneDNN on and TensorFlow's start-up messages quiet (unless --tf_verbose),
  # set before TensorFlow is imported below. Importing this file changes nothing.
  cli.prepare_process(sys.argv[1:])

from theseus.app import runner  # noqa: E402
from theseus.config import groups  # noqa: E402
from theseus.tasks.squad import task  # noqa: E402

## Required parameters: --bert_config_file, --vocab_file, --output_dir, and --train_file with
## --do_train, --predict_file with --do_predict / --do_eval.
## Other parameters: the groups every application shares (theseus/config/groups.py) and the
## task's own (task.SquadSettings: --doc_stride, --max_query_length, --n_best_size,
## --max_answer_length, --version_2_with_negative, --null_score_diff_threshold,
## --verbose_logging).
groups.define_flags(task.SquadSettings)


if __name__ == "__main__":
  runner.main(task.SquadRun)
