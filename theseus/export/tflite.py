"""TFLite files of an export: model.tflite (float32) and model_int8.tflite (dynamic-range int8
weights), with the SavedModel's `serving_default` signature (same inputs and outputs, batch and
length dynamic).

TensorFlow's converter keeps the signature only when it runs eagerly, and the run scripts build
graphs with eager execution off, so a run converts in a child process (`convert_in_child`) that
ends with its parent; convert_checkpoint.py --mode=tflite converts in its own process.
"""

import collections
import ctypes
import multiprocessing
import os
import signal
import sys
import traceback

from absl import logging

from theseus import files
from theseus.errors import TrainingError

SIGNATURE_KEY = "serving_default"
# TFLite files of an export: name -> whether the weights are quantized to int8 (dynamic range).
TFLITE_FILES = collections.OrderedDict([("model.tflite", False), ("model_int8.tflite", True)])
_PR_SET_PDEATHSIG = 1


def write_tflite(export_dir):
  """Converts `<export_dir>/saved_model` into the TFLITE_FILES next to it (eager only).

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
        os.path.join(export_dir, "saved_model"), signature_keys=[SIGNATURE_KEY])
    if quantized:
      converter.optimizations = [tf.lite.Optimize.DEFAULT]
    model = converter.convert()
    files.atomic_write_bytes(os.path.join(export_dir, name), model)
    sizes[name] = len(model)
    logging.info("Wrote %s (%.1f MB)", os.path.join(export_dir, name), len(model) / 1e6)
  return sizes


def _die_with_parent(parent_pid):
  """Linux: this process gets SIGKILL when its parent dies (also if it died just before)."""
  try:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
  except (OSError, AttributeError):
    return
  if os.getppid() != parent_pid:
    os._exit(1)  # pylint: disable=protected-access


def _child(export_dir, parent_pid, conn):
  _die_with_parent(parent_pid)
  try:
    conn.send(("ok", write_tflite(export_dir)))
  except BaseException:  # pylint: disable=broad-except
    conn.send(("error", traceback.format_exc()))
  finally:
    sys.stdout.flush()
    sys.stderr.flush()


def convert_in_child(export_dir):
  """write_tflite in a fresh child process, which ends when this process ends.

  Raises:
    TrainingError: the conversion failed (its last lines are in the message).
  """
  context = multiprocessing.get_context("spawn")
  parent_end, child_end = context.Pipe(duplex=False)
  process = context.Process(target=_child, args=(export_dir, os.getpid(), child_end),
                            daemon=True)
  process.start()
  child_end.close()
  try:
    status, value = parent_end.recv()
  except EOFError:
    status, value = "error", "the converter process ended with code %s" % process.exitcode
  process.join()
  if status != "ok":
    tail = " | ".join(str(value).strip().splitlines()[-3:])
    raise TrainingError("the TFLite conversion of %s failed: %s" % (export_dir, tail))
  return value
