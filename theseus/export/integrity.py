"""The integrity of an export: its export_info.json, and every model file checked against the
sha256 the export recorded before a native loader (TFLite, SavedModel) reads it, so a damaged or
truncated file is one error line, never a crash. No TensorFlow: predict.py checks an export
before it loads TensorFlow.
"""

import os
import subprocess
import sys

from theseus import files
from theseus.errors import InputDataError
from theseus.export import layout


def export_info(export_dir):
  """export_info.json of an export ({} for one written before it existed)."""
  path = os.path.join(export_dir, layout.EXPORT_INFO_FILE)
  return files.read_json_object(path, "export_info.json") if os.path.exists(path) else {}


# Loads a TFLite file in a child process: a damaged file kills the child, not the caller.
_TFLITE_PROBE = ("import sys, warnings; warnings.simplefilter('ignore'); "
                 "import tensorflow as tf; "
                 "tf.lite.Interpreter(model_path=sys.argv[1]).get_signature_runner("
                 "'serving_default')")


_checked = set()  # (path, size, mtime) of the model files this process has checked


def check_model_file(export_dir, relative, info):
  """Raises InputDataError when a model file (or directory) of the export is missing or not what
  the export wrote: the sha256 export_info.json records for it. An export older than those
  records has its TFLite file loaded once in a child process instead."""
  path = os.path.join(export_dir, relative)
  if not os.path.exists(path):
    raise InputDataError("missing from the export", path)
  stat = os.stat(path)
  if (path, stat.st_size, stat.st_mtime) in _checked:
    return
  recorded = {name: digest for name, digest in info.get("sha256", {}).items()
              if name == relative or name.startswith(relative + os.sep)}
  for name, digest in sorted(recorded.items()):
    file_path = os.path.join(export_dir, name)
    if not os.path.isfile(file_path):
      raise InputDataError("missing from the export (export_info.json lists it)", file_path)
    if files.file_digest(file_path, "sha256") != digest:
      raise InputDataError("damaged: its content is not what the export wrote (its sha256 "
                           "differs from export_info.json's); export again", file_path)
  if not recorded and relative.endswith(".tflite"):
    probe = subprocess.run([sys.executable, "-c", _TFLITE_PROBE, path], capture_output=True,
                           timeout=600, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    if probe.returncode != 0:
      raise InputDataError("damaged: the TFLite runtime cannot read it (exit code %d)"
                           % probe.returncode, path)
  _checked.add((path, stat.st_size, stat.st_mtime))


def check_export(export_dir, backends):
  """export_info.json readable and the model files of `backends` (those the export has) intact;
  InputDataError otherwise. Returns export_info."""
  if not os.path.isdir(export_dir):
    raise InputDataError("export directory not found", export_dir)
  info = export_info(export_dir)
  if not info and not any(name.endswith(layout.TASK_FILE_SUFFIX)
                          for name in os.listdir(export_dir)):
    raise InputDataError("not an export (no export_info.json or *%s task file)"
                         % layout.TASK_FILE_SUFFIX, export_dir)
  for backend in backends:
    if os.path.exists(os.path.join(export_dir, layout.BACKEND_FILES[backend])):
      check_model_file(export_dir, layout.BACKEND_FILES[backend], info)
  return info
