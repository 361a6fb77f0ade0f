"""TFLite files of an export: model.tflite (float32) and model_int8.tflite (dynamic-range int8
weights), with the SavedModel's `serving_default` signature (same inputs and outputs, batch and
length dynamic).

TensorFlow's converter keeps the signature only when it runs eagerly, and the run scripts build
graphs with eager execution off, so a run converts in a child Python process (`convert_in_child`:
`python -m theseus.export.tflite EXPORT_DIR [SAVED_MODEL_DIR]`) that ends with its parent;
convert_checkpoint.py --mode=tflite converts in its own process. An export converts a SavedModel
with element-wise LayerNorms (theseus/layer_norm.py), written for the conversion alone.
"""

import collections
import ctypes
import json
import os
import signal
import subprocess
import sys

from absl import logging

from theseus import files
from theseus.errors import TrainingError
from theseus.export.layout import SIGNATURE_KEY
from theseus.export.layout import TFLITE_FILES

_PR_SET_PDEATHSIG = 1
_RESULT_PREFIX = "tflite sizes: "


def write_tflite(export_dir, saved_model_dir=None):
  """Converts `saved_model_dir` (default `<export_dir>/saved_model`) into the TFLITE_FILES in
  export_dir (eager only).

  Returns:
    dict file name -> size in bytes.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if not tf.executing_eagerly():
    raise RuntimeError("the TFLite conversion needs eager execution: run it in a process of its "
                       "own (convert_checkpoint.py --mode=tflite --export_dir=...)")
  sizes = collections.OrderedDict()
  for name, quantized in TFLITE_FILES.items():
    converter = tf.lite.TFLiteConverter.from_saved_model(
        saved_model_dir or os.path.join(export_dir, "saved_model"),
        signature_keys=[SIGNATURE_KEY])
    if quantized:
      converter.optimizations = [tf.lite.Optimize.DEFAULT]
    model = converter.convert()
    files.atomic_write_bytes(os.path.join(export_dir, name), model)
    sizes[name] = len(model)
    logging.info("Wrote %s (%.1f MB)", os.path.join(export_dir, name), len(model) / 1e6)
  return sizes


def _die_with_parent(parent_pid):
  """Linux: this process gets SIGKILL when its parent dies (also if it died just before).

  Runs between fork and exec (`preexec_fn`), so it holds from the child's first instruction.
  """
  try:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
  except (OSError, AttributeError):
    return
  if os.getppid() != parent_pid:
    os._exit(1)  # pylint: disable=protected-access


def convert_in_child(export_dir, saved_model_dir=None):
  """write_tflite(export_dir, saved_model_dir) in a fresh Python process, which ends when this
  process ends.

  Returns:
    dict file name -> size in bytes.

  Raises:
    TrainingError: the conversion failed (its last lines are in the message).
  """
  package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
  parent_pid = os.getpid()
  result = subprocess.run(
      [sys.executable, "-m", "theseus.export.tflite", export_dir] + (
          [saved_model_dir] if saved_model_dir else []), env=env,
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
      preexec_fn=lambda: _die_with_parent(parent_pid))
  lines = result.stdout.strip().splitlines()
  if result.returncode == 0 and lines and lines[-1].startswith(_RESULT_PREFIX):
    return json.loads(lines[-1][len(_RESULT_PREFIX):], object_pairs_hook=collections.OrderedDict)
  tail = " | ".join(result.stderr.strip().splitlines()[-3:]) or (
      "the converter process ended with code %s" % result.returncode)
  raise TrainingError("the TFLite conversion of %s failed: %s" % (export_dir, tail))


def _main(argv):
  sizes = write_tflite(*argv[1:3])
  print(_RESULT_PREFIX + json.dumps(sizes))


if __name__ == "__main__":
  logging.set_verbosity(logging.WARNING)
  _main(sys.argv)
