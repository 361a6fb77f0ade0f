# coding=utf-8
"""Predictions on raw text from an export directory (run_classifier.py / run_ner_mrc.py /
run_squad.py --do_export).

  python predict.py --export_dir=EXPORT "a sentence" "another one"
  python predict.py --export_dir=EXPORT --input_file=sentences.txt --format=json
  printf 'first\\tsecond\\n' | python predict.py --export_dir=EXPORT      # a sentence pair
  python predict.py --export_dir=SQUAD_EXPORT "$(printf 'Who won?\\tThe Broncos won.')"

One example per argument or line: a sentence, or for pair tasks two sentences separated by a tab;
for an NER export a plain sentence (words separated by spaces; for the character-level formats,
its characters); for a SQuAD export a question and its context separated by a tab. The text is
tokenized with the export's own vocab and do_lower_case. Output: a line per example,
`label<TAB>probability` (regression: the value; NER: `TYPE: words [start-end]` per entity; SQuAD:
`answer<TAB>probability`, the answer cut from the context, `-` for none), or JSON lines with
--format=json (carrying the input's "line"; SQuAD: the answer's character offsets in the
context). A blank input line
gives an empty output line, so output line n is input line n; an error names the file (or
<stdin>) and the line. An export some of whose variables did not come from a checkpoint (its
export_info.json lists them) is refused unless --allow_untrained.

From Python, load once and predict many (theseus/export/serving.py):

  predictor = serving.Predictor("output/sst2_demo/stage2/export")
  predictor.predict(["a gripping film", "a dull one"])   # [{"label": "1", ...}, ...]

Backends: the SavedModel (`saved_model`) or the TFLite files (`tflite`: model.tflite,
`tflite_int8`: model_int8.tflite, from --export_tflite). `auto` (the default) takes, per call,
the fastest exact path measured on the kind of CPU it runs on (BENCHMARKS.md, Serving): TFLite
float32 when the export has it, except on AVX-512 CPUs for batches and examples over 64 word
pieces, where the SavedModel is faster (theseus/export/serving.py, auto_backend). int8 is never
chosen by itself: it changes some predictions.
"""

import json
import os
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
from theseus.export import integrity  # noqa: E402
from theseus.export import layout  # noqa: E402

FLAGS = flags.FLAGS

## Required parameters
flags.DEFINE_string("export_dir", None, "An export directory (--do_export).")

## Other parameters
flags.DEFINE_string("input_file", None, "Examples one per line (default: the arguments, else "
                    "stdin).")
flags.DEFINE_enum("backend", "auto", list(layout.BACKENDS), "Which model file runs: auto "
                  "(the fastest exact one for each call), saved_model, tflite or tflite_int8.")
flags.DEFINE_enum("format", "text", ["text", "json"], "Output: text lines or JSON lines.")
flags.DEFINE_integer("batch_size", 32, "Examples per model call.")
flags.DEFINE_integer("num_threads", 0, "Threads of the runtime (0: every usable core).")
flags.DEFINE_bool("allow_untrained", False, "Serve an export some of whose variables did not "
                  "come from a checkpoint (e.g. a head never trained).")
flags.DEFINE_bool(cli.VERBOSE_FLAG, False, "Show TensorFlow's own start-up messages.")


def read_examples(args, input_file):
  """The examples as [(text, place)]: the arguments ("example i"), else the lines of input_file,
  else of stdin ((file, line)). A blank line is kept (its result is empty), so output line n is
  input line n."""
  if args:
    for i, arg in enumerate(args):
      try:
        arg.encode("utf-8")
      except UnicodeEncodeError:
        raise InputDataError("argument %d is not valid UTF-8" % (i + 1))
    return [(arg, "example %d" % (i + 1)) for i, arg in enumerate(args)]
  if input_file:
    from theseus import files  # pylint: disable=g-import-not-at-top
    name, lines = input_file, files.read_text_lines(input_file)
  else:
    from theseus import files  # pylint: disable=g-import-not-at-top
    name = "<stdin>"
    lines = files.decode_lines(sys.stdin.buffer.read(), name)
  return [(line, (name, number)) for number, line in enumerate(lines, 1)]


def format_text(prediction):
  """One output line of a prediction dict (an empty line for a blank input line)."""
  if prediction.get("empty"):
    return ""
  if "entities" in prediction:
    return " | ".join("%s: %s [%d-%d]" % (e["type"], e["text"], e["start"], e["end"])
                      for e in prediction["entities"]) or "-"
  if "answer" in prediction:
    return "%s\t%.4f" % (prediction["answer"] or "-", prediction["probability"])
  if "value" in prediction:
    return "%.6g" % prediction["value"]
  return "%s\t%.4f" % (prediction["label"], prediction["probabilities"][prediction["label"]])


def predictions(predictor, examples, batch_size):
  """The result of each example, in order; a blank line from a file or stdin gives
  {"empty": True}, and a line's result carries its "line"."""
  pending = [(i, text, where) for i, (text, where) in enumerate(examples)
             if not isinstance(where, tuple) or text.strip()]
  results = [{"text": text, "empty": True} for text, _ in examples]
  for start in range(0, len(pending), batch_size):
    chunk = pending[start:start + batch_size]
    got = predictor.predict([text for _, text, _ in chunk], [where for _, _, where in chunk])
    for (i, _, _), result in zip(chunk, got):
      results[i] = result
  for result, (_, where) in zip(results, examples):
    if isinstance(where, tuple):
      result["line"] = where[1]
  return results


def main(argv):
  if not FLAGS.export_dir:
    raise InputDataError("--export_dir is required")
  if FLAGS.batch_size < 1:
    raise InputDataError("--batch_size must be >= 1, got %d" % FLAGS.batch_size)
  if FLAGS.num_threads < 0:
    raise InputDataError("--num_threads must be >= 0, got %d" % FLAGS.num_threads)
  if not FLAGS.tf_verbose:
    cli.quiet_tensorflow_python_logs()
    logging.set_verbosity(logging.WARNING)  # no per-example feature logs
  backends = ("saved_model", "tflite") if FLAGS.backend == "auto" else (FLAGS.backend,)
  integrity.check_export(FLAGS.export_dir, backends)  # before TensorFlow loads
  examples = read_examples(argv[1:], FLAGS.input_file)
  if not any(text.strip() for text, _ in examples) and not argv[1:]:
    raise InputDataError("no examples: give them as arguments, in --input_file or on stdin")
  from theseus.export import serving  # pylint: disable=g-import-not-at-top  (TensorFlow)
  predictor = serving.Predictor(FLAGS.export_dir, backend=FLAGS.backend,
                                num_threads=FLAGS.num_threads,
                                allow_untrained=FLAGS.allow_untrained)
  try:
    for prediction in predictions(predictor, examples, FLAGS.batch_size):
      print(json.dumps(prediction, ensure_ascii=False) if FLAGS.format == "json" else
            format_text(prediction))
    sys.stdout.flush()
  except BrokenPipeError:  # the reader stopped (`| head -1`): nothing more to say
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


if __name__ == "__main__":
  app.run(lambda argv: cli.run_main(main, argv))
