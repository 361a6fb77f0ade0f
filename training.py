"""Shared training, data-caching, checkpoint and export code for run_classifier.py and run_ner_mrc.py.

Everything both scripts need lives here once: input errors, TFRecord feature caches, the
length-bucketed tf.data pipeline, the session training loop (checkpoints, resume, summaries,
logging), evaluation during training and the successor export.
"""

from __future__ import absolute_import
from __future__ import division
from __future__ import print_function

import os


class InputDataError(ValueError):
  """Bad user input (data file, config, checkpoint, flags).

  The message is one line naming the file (and line, when known) and the problem; the command line
  entry points print it and exit with a non-zero code before any long work starts.
  """

  def __init__(self, message, path=None, line=None):
    where = ""
    if path is not None:
      where = str(path)
      if line is not None:
        where += ":%d" % line
      where += ": "
    super(InputDataError, self).__init__(where + message)
    self.path = path
    self.line = line


def read_text_lines(path, encoding="utf-8"):
  """Reads a text file as a list of lines (newline characters stripped).

  Raises InputDataError naming the file (and the line) when the file is missing, is a directory,
  is empty, or holds bytes that are not valid in `encoding`.
  """
  if not os.path.exists(path):
    raise InputDataError("file not found", path)
  if os.path.isdir(path):
    raise InputDataError("is a directory, expected a file", path)
  with open(path, "rb") as f:
    data = f.read()
  if not data.strip():
    raise InputDataError("file is empty", path)
  try:
    text = data.decode(encoding)
  except UnicodeDecodeError as e:
    line = data[:e.start].count(b"\n") + 1
    raise InputDataError("bytes that are not valid %s (byte %d)" % (encoding, e.start), path, line)
  if text.startswith("\ufeff"):
    text = text[1:]
  # Split on "\n" only: str.splitlines() would also break on U+2028, U+0085 or form feeds that
  # real text contains, shifting the line numbers errors report.
  lines = text.split("\n")
  if lines and lines[-1] == "":
    lines.pop()
  return [line[:-1] if line.endswith("\r") else line for line in lines]
