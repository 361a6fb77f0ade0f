# coding=utf-8
"""Predictions on raw text from an export directory (run_classifier.py / run_ner_mrc.py --do_export).

  python predict.py --export_dir=EXPORT "a sentence" "another one"
  python predict.py --export_dir=EXPORT --input_file=sentences.txt --format=json
  printf 'first\\tsecond\\n' | python predict.py --export_dir=EXPORT      # a sentence pair

One example per argument or line: a sentence, or for pair tasks two sentences separated by a tab;
for an NER export a plain sentence (words separated by spaces; for the character-level formats,
its characters). The text is tokenized with the export's own vocab and do_lower_case. Output: a
line per example, `label<TAB>probability` (regression: the value; NER: `TYPE: words [start-end]`
per entity), or JSON lines with --format=json.

From Python, load once and predict many (theseus/export/serving.py):

  predictor = serving.Predictor("output/sst2_demo/stage2/export")
  predictor.predict(["a gripping film", "a dull one"])   # [{"label": "1", ...}, ...]

Backends: the SavedModel (`saved_model`) or the TFLite files (`tflite`: model.tflite,
`tflite_int8`: model_int8.tflite, from --export_tflite). `auto` (the default) takes, per call,
the fastest exact path measured (BENCHMARKS.md, Serving): TFLite float32 for a single short
example when the export has it, the SavedModel for batches. int8 is never chosen by itself: it
changes some predictions.
"""

import json
import sys

from theseus import cli

if __name__ == "__main__":
  # Run as a script: oneDNN on and TensorFlow's start-up messages quiet (unless --tf_verbose),
  # set before TensorFlow is imported below. Importing this file changes nothing.
  cli.prepare_process(sys.argv[1:])

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402

from theseus.errors import InputDataError  # noqa: E402
from theseus.export import serving  # noqa: E402

FLAGS = flags.FLAGS

## Required parameters
flags.DEFINE_string("export_dir", None, "An export directory (--do_export).")

## Other parameters
flags.DEFINE_string("input_file", None, "Examples one per line (default: the arguments, else "
                    "stdin).")
flags.DEFINE_enum("backend", "auto", list(serving.BACKENDS), "Which model file runs: auto "
                  "(the fastest exact one for each call), saved_model, tflite or tflite_int8.")
flags.DEFINE_enum("format", "text", ["text", "json"], "Output: text lines or JSON lines.")
flags.DEFINE_integer("batch_size", 32, "Examples per model call.")
flags.DEFINE_integer("num_threads", 0, "Threads of the runtime (0: its choice).")
flags.DEFINE_bool(cli.VERBOSE_FLAG, False, "Show TensorFlow's own start-up messages.")


def read_examples(args, input_file):
  """The examples: the arguments, else the lines of input_file, else of stdin (blank skipped)."""
  if args:
    return list(args)
  if input_file:
    from theseus import files  # pylint: disable=g-import-not-at-top
    lines = files.read_text_lines(input_file)
  else:
    lines = [line.rstrip("\r\n") for line in sys.stdin]
  return [line for line in lines if line.strip()]


def format_text(prediction):
  """One output line of a prediction dict."""
  if "entities" in prediction:
    return " | ".join("%s: %s [%d-%d]" % (e["type"], e["text"], e["start"], e["end"])
                      for e in prediction["entities"]) or "-"
  if "value" in prediction:
    return "%.6g" % prediction["value"]
  return "%s\t%.4f" % (prediction["label"], prediction["probabilities"][prediction["label"]])


def main(argv):
  if not FLAGS.export_dir:
    raise InputDataError("--export_dir is required")
  if not FLAGS.tf_verbose:
    cli.quiet_tensorflow_python_logs()
    logging.set_verbosity(logging.WARNING)  # no per-example feature logs
  predictor = serving.Predictor(FLAGS.export_dir, backend=FLAGS.backend,
                                num_threads=FLAGS.num_threads)
  examples = read_examples(argv[1:], FLAGS.input_file)
  if not examples:
    raise InputDataError("no examples: give them as arguments, in --input_file or on stdin")
  for start in range(0, len(examples), FLAGS.batch_size):
    for prediction in predictor.predict(examples[start:start + FLAGS.batch_size]):
      if FLAGS.format == "json":
        print(json.dumps(prediction, ensure_ascii=False))
      else:
        print(format_text(prediction))
  sys.stdout.flush()


if __name__ == "__main__":
  app.run(lambda argv: cli.run_main(main, argv))
