# coding=utf-8
"""Sentence (pair) classification and regression: the task library behind run_classifier.py.

* Processors that read the GLUE (and LCQMC, and any generic TSV/CSV) files and validate every
  row (`PROCESSORS`, `get_processor`);
* conversion of examples to unpadded features (`convert_examples_to_features`);
* the metrics, in pure numpy (`compute_metrics`), and the prediction writers;
* the head (`create_classifier_head`) and the TaskSpec the shared loop runs (`make_task`);
* `ClassifierRun`: the task's part of a run (see runner.py).

Importing it defines no flags. Every data problem raises `InputDataError` with a one-line
message naming the file and the line; `skip_bad_rows=True` (the `--skip_bad_rows` flag) skips
such rows instead and counts them.
"""

from __future__ import absolute_import
from __future__ import division
from __future__ import print_function

import csv
import hashlib
import json
import math
import os

from absl import logging
import numpy as np
import tensorflow as tf

from errors import InputDataError
from errors import TrainingError
import files
import input_pipeline
import task_spec

tf1 = tf.compat.v1


class InputExample(object):
  """A single training/test example for simple sequence classification."""

  def __init__(self, guid, text_a, text_b=None, label=None, line=None):
    """Constructs an InputExample.

    Args:
      guid: Unique id for the example ("<set_type>-<index>").
      text_a: string. The untokenized text of the first sequence. For single
        sequence tasks, only this sequence must be specified.
      text_b: (Optional) string. The untokenized text of the second sequence.
        Only must be specified for sequence pair tasks.
      label: (Optional) string. The label of the example: a member of the processor's
        get_labels() for classification, a float for regression. None for unlabeled test
        examples.
      line: (Optional) int. The line of the source file the example was read from.
    """
    self.guid = guid
    self.text_a, self.text_b = text_a, text_b
    self.label = label
    self.line = line

  def __repr__(self):
    return "InputExample(guid=%r, text_a=%r, text_b=%r, label=%r)" % (
        self.guid, self.text_a, self.text_b, self.label)


class _FileFormat(object):
  """How one data file is laid out (internal to the processors).

  Attributes:
    has_header: whether the first line is a header.
    header_names: dict column position -> expected header name (case-insensitive), checked
      when `has_header`. Negative positions count from the end.
    num_columns: expected number of columns of every data row: an int, a tuple of allowed
      ints, or None for "as many as the header has" (at least `min_columns` without header).
    text_a_column, text_b_column, label_column: column positions (None when absent; a label
      column is None for unlabeled test files). Negative positions count from the end.
    delimiter: the column separator.
    use_csv: parse with the csv module (quoting). False: split on the delimiter only, as
      google-research/bert does for GLUE (`quotechar=None`): GLUE text holds bare quotes.
    keep_row: optional callable(fields) -> bool; data rows for which it is false are passed
      over (XNLI's dev file holds 15 languages, a run reads one).
  """

  def __init__(self, has_header, text_a_column, text_b_column=None, label_column=None,
               header_names=None, num_columns=None, delimiter="\t", use_csv=False,
               keep_row=None):
    self.keep_row = keep_row
    self.has_header = has_header
    self.header_names = header_names or {}
    self.num_columns = num_columns
    self.text_a_column = text_a_column
    self.text_b_column = text_b_column
    self.label_column = label_column
    self.delimiter = delimiter
    self.use_csv = use_csv

  @property
  def min_columns(self):
    """The fewest columns a row needs to reach every column this format reads."""
    needed = 1
    for column in (self.text_a_column, self.text_b_column, self.label_column):
      if column is not None:
        needed = max(needed, column + 1 if column >= 0 else -column)
    for column in self.header_names:
      needed = max(needed, column + 1 if column >= 0 else -column)
    return needed


class _BadRow(Exception):
  """A row problem; turned into InputDataError (or a skipped row) by the reader."""


class DataProcessor(object):
  """Base class for data converters for sequence classification data sets.

  Subclasses describe their files with `_FileFormat`s; the reading and the validation of every
  row happen here once. A row is bad when it has the wrong number of columns, a label outside
  get_labels() (for regression: not a number, or out of range), an empty text; the first line
  is bad when it is not the expected header, or a data row where a header is expected (the
  header is missing), or looks like a header in a file that has none. A bad row raises
  InputDataError("<file>:<line>: <problem>"), or with `skip_bad_rows` is skipped
  (a missing header then costs the first data row) and counted. Blank lines are ignored.

  Attributes:
    is_regression: True for a regression task (one float label, e.g. STS-B).
    metric_names: the metrics `compute_metrics` reports for this task.
    main_metric: the metric used to pick the best checkpoint (higher is better).
    skip_bad_rows: skip (and count) bad rows instead of raising InputDataError.
    num_skipped_rows: how many bad rows this processor skipped, over all files read.
    skipped_rows_by_file: dict path -> number of bad rows skipped in that file.
  """

  is_regression = False
  metric_names = ("accuracy",)
  main_metric = "accuracy"
  # The label whose F1 is reported, for tasks that report "f1".
  positive_label = "1"
  train_file = "train.tsv"
  dev_file = "dev.tsv"
  test_file = "test.tsv"

  def __init__(self, skip_bad_rows=False):
    self.skip_bad_rows = skip_bad_rows
    self.num_skipped_rows = 0
    self.skipped_rows_by_file = {}

  def get_train_examples(self, data_dir):
    """Gets a collection of `InputExample`s for the train set."""
    return self._create_examples(os.path.join(data_dir, self.train_file), "train",
                                 self._labeled_format("train"))

  def get_dev_examples(self, data_dir):
    """Gets a collection of `InputExample`s for the dev set."""
    return self._create_examples(os.path.join(data_dir, self.dev_file), "dev",
                                 self._labeled_format("dev"))

  def get_test_examples(self, data_dir):
    """Gets a collection of `InputExample`s for prediction (label None when unlabeled)."""
    return self._create_examples(os.path.join(data_dir, self.test_file), "test",
                                 self._test_format())

  def get_dev_sets(self, data_dir):
    """Every evaluation set of the task as a list of (name, examples).

    One ("dev", ...) for most tasks; MNLI gives matched and mismatched.
    """
    return [("dev", self.get_dev_examples(data_dir))]

  def get_labels(self):
    """Gets the list of labels for this data set (["0"] placeholder for regression)."""
    raise NotImplementedError()

  def has_text_pairs(self):
    """Whether an example is a pair of texts (text_a, text_b)."""
    return self._labeled_format("train").text_b_column is not None

  # -- File formats (overridden by subclasses) ------------------------------------------------

  def _labeled_format(self, set_type):
    """The `_FileFormat` of the train and dev files."""
    raise NotImplementedError()

  def _test_format(self):
    """The `_FileFormat` of the test file."""
    raise NotImplementedError()

  # -- Reading ---------------------------------------------------------------------------------

  def _check_label(self, value):
    """Returns the normalised label or raises _BadRow."""
    value = value.strip()
    if self.is_regression:
      try:
        number = float(value)
      except ValueError:
        raise _BadRow("label %r is not a number" % (value,))
      if math.isnan(number) or math.isinf(number):
        raise _BadRow("label %r is not a finite number" % (value,))
      low, high = self._label_range()
      if (low is not None and number < low) or (high is not None and number > high):
        raise _BadRow("label %s is outside [%s, %s]" % (value, low, high))
      return number
    labels = self.get_labels()
    if value not in labels:
      raise _BadRow("label %r is not one of %s" % (value, ", ".join(repr(l) for l in labels)))
    return value

  def _label_range(self):
    """(low, high) allowed for a regression label (None: unbounded)."""
    return (None, None)

  def _iter_rows(self, path, fmt):
    """Yields (line_number, fields) for every non-blank line of the file."""
    lines = files.read_text_lines(path)
    if fmt.use_csv:
      reader = csv.reader(lines, delimiter=fmt.delimiter)
      while True:
        try:
          fields = next(reader)
        except StopIteration:
          return
        except csv.Error as e:
          raise InputDataError("cannot parse CSV: %s" % e, path, reader.line_num)
        if not fields or not any(f.strip() for f in fields):
          continue
        yield reader.line_num, fields
    else:
      for index, line in enumerate(lines):
        if not line.strip():
          continue
        yield index + 1, line.split(fmt.delimiter)

  def _row_to_example(self, fields, fmt, set_type, index, line_number):
    """Validates one data row and returns its InputExample (raises _BadRow)."""
    num_columns = fmt.num_columns
    if isinstance(num_columns, int):
      num_columns = (num_columns,)
    if num_columns is not None and len(fields) not in num_columns:
      raise _BadRow("expected %s columns separated by %r, found %d" % (
          " or ".join(str(n) for n in num_columns), fmt.delimiter, len(fields)))
    if len(fields) < fmt.min_columns:
      raise _BadRow("expected at least %d columns separated by %r, found %d" % (
          fmt.min_columns, fmt.delimiter, len(fields)))
    text_a = fields[fmt.text_a_column]
    if not text_a.strip():
      raise _BadRow("empty text in column %d" % _column_number(fmt.text_a_column, fields))
    text_b = None
    if fmt.text_b_column is not None:
      text_b = fields[fmt.text_b_column]
      if not text_b.strip():
        raise _BadRow("empty text in column %d" % _column_number(fmt.text_b_column, fields))
    label = None
    if fmt.label_column is not None:
      label = self._check_label(fields[fmt.label_column])
    guid = "%s-%d" % (set_type, index)
    return InputExample(guid=guid, text_a=text_a, text_b=text_b, label=label, line=line_number)

  def _looks_like_data(self, fields, fmt):
    """Whether a (header) row would be a valid data row, i.e. the header is missing."""
    try:
      self._row_to_example(fields, fmt, "x", 0, 0)
    except _BadRow:
      return False
    if fmt.label_column is None:
      # Without a label column only the header names can tell; a row that matches none of
      # them is taken as data.
      return not any(_header_field(fields, pos).lower() == name.lower()
                     for pos, name in fmt.header_names.items())
    return True

  def _check_header(self, fields, fmt):
    """Raises _BadRow when the header row is not the expected one."""
    if self._looks_like_data(fields, fmt) and (
        fmt.label_column is not None or fmt.header_names):
      expected = ", ".join("column %d %r" % (_column_number(pos, fields), name)
                           for pos, name in sorted(fmt.header_names.items()))
      raise _BadRow("missing header: the first line is a data row; expected a header%s" % (
          " with " + expected if expected else ""))
    for pos, name in sorted(fmt.header_names.items()):
      found = _header_field(fields, pos)
      if found.strip().lower() != name.lower():
        raise _BadRow("unexpected header: column %d is %r, expected %r" % (
            _column_number(pos, fields), found, name))

  def _headerless_first_row_hint(self, fields, fmt):
    """A hint when the first row of a header-less file fails: it may be a header."""
    if fmt.label_column is None or len(fields) < fmt.min_columns:
      return ""
    value = fields[fmt.label_column].strip()
    known = [] if self.is_regression else [str(l).lower() for l in self.get_labels()]
    if value and not _is_number(value) and value.lower() not in known:
      return " (this file has no header: the first line looks like an unexpected header row)"
    return ""

  def _create_examples(self, path, set_type, fmt):
    """Reads and validates the rows of `path` and returns the InputExamples.

    Args:
      path: the data file.
      set_type: "train", "dev", "test", ... (the guid prefix).
      fmt: its `_FileFormat`.

    Returns:
      list of InputExample, in file order.

    Raises:
      InputDataError: the file is missing, empty, not UTF-8, has no data rows, or a
        row is bad and `skip_bad_rows` is False.
    """
    examples = []
    skipped = 0
    header_pending = fmt.has_header
    header_fields = None
    first_data_row = True
    for line_number, fields in self._iter_rows(path, fmt):
      try:
        if header_pending:
          header_pending = False
          self._check_header(fields, fmt)
          header_fields = fields
          continue
        if fmt.keep_row is not None and not fmt.keep_row(fields):
          continue
        is_first_data_row = first_data_row
        first_data_row = False
        if (header_fields is not None and fmt.num_columns is None and
            len(fields) != len(header_fields)):
          raise _BadRow("expected %d columns separated by %r (as in the header), found %d" % (
              len(header_fields), fmt.delimiter, len(fields)))
        try:
          example = self._row_to_example(fields, fmt, set_type, len(examples), line_number)
        except _BadRow as e:
          if is_first_data_row and not fmt.has_header:
            raise _BadRow(str(e) + self._headerless_first_row_hint(fields, fmt))
          raise
        examples.append(example)
      except _BadRow as e:
        if not self.skip_bad_rows:
          raise InputDataError(
              "%s (use skip_bad_rows / --skip_bad_rows to skip such rows)" % e,
              path, line_number)
        skipped += 1
        if skipped <= 5:
          logging.warning("Skipping bad row %s:%d: %s", path, line_number, e)
    self.num_skipped_rows += skipped
    self.skipped_rows_by_file[path] = self.skipped_rows_by_file.get(path, 0) + skipped
    logging.info("Read %d %s examples from %s (%d bad rows skipped)",
                 len(examples), set_type, path, skipped)
    if not examples:
      if skipped:
        raise InputDataError(
            "no usable data rows (%d bad rows skipped)" % skipped, path)
      raise InputDataError("no data rows%s" % (
          " after the header" if fmt.has_header else ""), path)
    return examples


def _column_number(position, fields):
  """1-based column number of a (possibly negative) position, for messages."""
  return position + 1 if position >= 0 else len(fields) + position + 1


def _header_field(fields, position):
  try:
    return fields[position].strip().lstrip(u"\ufeff")
  except IndexError:
    return ""


def _is_number(text):
  try:
    float(text)
  except ValueError:
    return False
  return True


def _glue_format(text_a, text_b=None, label=None, header=None):
  """The layout of a GLUE file: a header (its names checked at the positions of `header`),
  tab-separated columns; text_a / text_b / label are column positions (negative: from the end)."""
  return _FileFormat(has_header=True, text_a_column=text_a, text_b_column=text_b,
                     label_column=label, header_names=header)


class _GlueProcessor(DataProcessor):
  """A GLUE task: a header in every file, train / dev labeled, test unlabeled.

  Subclasses set `labels` and the two layouts of the GLUE distribution (`_glue_format`).
  """

  labels = ("0", "1")
  labeled_layout = None  # train and dev
  test_layout = None

  def get_labels(self):
    return list(self.labels)

  def _labeled_format(self, set_type):
    return self.labeled_layout

  def _test_format(self):
    return self.test_layout


class Sst2Processor(_GlueProcessor):
  """SST-2 (GLUE): `sentence\tlabel`; test: `index\tsentence`."""
  labeled_layout = _glue_format(0, label=1, header={0: "sentence", 1: "label"})
  test_layout = _glue_format(1, header={0: "index", 1: "sentence"})


class MrpcProcessor(_GlueProcessor):
  """MRPC (GLUE, UTF-8 with BOM): `Quality\t#1 ID\t#2 ID\t#1 String\t#2 String`."""
  metric_names, main_metric = ("accuracy", "f1"), "f1"
  labeled_layout = _glue_format(3, 4, 0, {0: "Quality", 3: "#1 String", 4: "#2 String"})
  test_layout = _glue_format(3, 4, header={0: "index", 3: "#1 String", 4: "#2 String"})


class RteProcessor(_GlueProcessor):
  """RTE (GLUE): `index\tsentence1\tsentence2\tlabel`."""
  labels = ("entailment", "not_entailment")
  labeled_layout = _glue_format(1, 2, 3, {0: "index", 1: "sentence1", 2: "sentence2", 3: "label"})
  test_layout = _glue_format(1, 2, header={0: "index", 1: "sentence1", 2: "sentence2"})


class QnliProcessor(_GlueProcessor):
  """QNLI (GLUE): `index\tquestion\tsentence\tlabel`."""
  labels = RteProcessor.labels
  labeled_layout = _glue_format(1, 2, 3, {0: "index", 1: "question", 2: "sentence", 3: "label"})
  test_layout = _glue_format(1, 2, header={0: "index", 1: "question", 2: "sentence"})


class QqpProcessor(_GlueProcessor):
  """QQP (GLUE): `id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate`; test:
  `id\tquestion1\tquestion2`. The GLUE train file holds a few malformed rows: use
  skip_bad_rows to drop them."""
  metric_names, main_metric = MrpcProcessor.metric_names, MrpcProcessor.main_metric
  labeled_layout = _glue_format(3, 4, 5, {3: "question1", 4: "question2", 5: "is_duplicate"})
  test_layout = _glue_format(1, 2, header={1: "question1", 2: "question2"})


class MnliProcessor(_GlueProcessor):
  """MultiNLI (GLUE): matched and mismatched dev (and test) sets.

  Columns 8 and 9 are sentence1 / sentence2, the last is gold_label (train has 12 columns,
  dev 16, test 10). Dev is `dev_matched.tsv`; `get_dev_mismatched_examples` reads
  `dev_mismatched.tsv`.
  """

  labels = ("contradiction", "entailment", "neutral")
  dev_file = "dev_matched.tsv"
  dev_mismatched_file = "dev_mismatched.tsv"
  test_file = "test_matched.tsv"
  test_mismatched_file = "test_mismatched.tsv"
  labeled_layout = _glue_format(8, 9, -1, {8: "sentence1", 9: "sentence2", -1: "gold_label"})
  test_layout = _glue_format(8, 9, header={8: "sentence1", 9: "sentence2"})

  def get_dev_examples(self, data_dir):
    """The matched dev set (dev_matched.tsv)."""
    return self._read(data_dir, self.dev_file, "dev_matched", self.labeled_layout)

  def get_dev_mismatched_examples(self, data_dir):
    """The mismatched dev set (dev_mismatched.tsv)."""
    return self._read(data_dir, self.dev_mismatched_file, "dev_mismatched", self.labeled_layout)

  def get_test_examples(self, data_dir):
    """The matched test set (test_matched.tsv)."""
    return self._read(data_dir, self.test_file, "test_matched", self.test_layout)

  def get_test_mismatched_examples(self, data_dir):
    """The mismatched test set (test_mismatched.tsv)."""
    return self._read(data_dir, self.test_mismatched_file, "test_mismatched", self.test_layout)

  def _read(self, data_dir, file_name, set_type, fmt):
    return self._create_examples(os.path.join(data_dir, file_name), set_type, fmt)

  def get_dev_sets(self, data_dir):
    return [("dev_matched", self.get_dev_examples(data_dir)),
            ("dev_mismatched", self.get_dev_mismatched_examples(data_dir))]


class XnliProcessor(_GlueProcessor):
  """XNLI in one language (google-research/bert's default, Chinese: "zh").

  Train: `multinli/multinli.train.<language>.tsv` (`premise\thypo\tlabel`, "contradictory"
  read as "contradiction"); dev / test: `xnli.dev.tsv` / `xnli.test.tsv`, the rows of
  `language` (columns language, gold_label, ..., sentence1 (7th), sentence2 (8th), ...).
  """

  labels = MnliProcessor.labels

  def __init__(self, skip_bad_rows=False, language="zh"):
    super(XnliProcessor, self).__init__(skip_bad_rows=skip_bad_rows)
    self.language = language
    self.train_file = os.path.join("multinli", "multinli.train.%s.tsv" % language)
    self.dev_file, self.test_file = "xnli.dev.tsv", "xnli.test.tsv"
    self.labeled_layout = _glue_format(0, 1, 2, {0: "premise", 1: "hypo", 2: "label"})
    self.test_layout = _FileFormat(
        has_header=True, text_a_column=6, text_b_column=7, label_column=1,
        header_names={0: "language", 1: "gold_label", 6: "sentence1", 7: "sentence2"},
        keep_row=lambda fields: fields[0].strip() == language)

  def _labeled_format(self, set_type):
    return self.labeled_layout if set_type == "train" else self.test_layout

  def _check_label(self, value):
    return super(XnliProcessor, self)._check_label(
        "contradiction" if value.strip() == "contradictory" else value)


class StsbProcessor(_GlueProcessor):
  """STS-B (GLUE): regression, the similarity score in [0, 5].

  `index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore`.
  """

  is_regression = True
  metric_names = ("pearson", "spearman")
  main_metric = "pearson"
  labels = (None,)
  labeled_layout = _glue_format(7, 8, -1, {7: "sentence1", 8: "sentence2", -1: "score"})
  test_layout = _glue_format(7, 8, header={7: "sentence1", 8: "sentence2"})

  def _label_range(self):
    return (0.0, 5.0)


class ColaProcessor(DataProcessor):
  """Processor for the CoLA data set (GLUE version).

  Train and dev have NO header and 4 columns: source, label, original label mark (empty or
  "*"), sentence. Test has the header `index\\tsentence`.
  """

  metric_names = ("accuracy", "mcc")
  main_metric = "mcc"

  def get_labels(self):
    return ["0", "1"]

  def _labeled_format(self, set_type):
    return _FileFormat(has_header=False, text_a_column=3, label_column=1, num_columns=4)

  def _test_format(self):
    return _FileFormat(has_header=True, text_a_column=1, label_column=None,
                       header_names={0: "index", 1: "sentence"})


class LcqmcProcessor(DataProcessor):
  """Processor for LCQMC (Chinese question matching).

  Two layouts are accepted:
    * `train.tsv` / `dev.tsv` / `test.tsv`: `text_a\\ttext_b\\tlabel`, no header (test may
      lack the label column);
    * `LCQMC_train.csv` / `LCQMC_dev.csv` / `LCQMC_test.csv`: CSV with the header
      `sentence1,sentence2,label` (CRLF), parsed with the csv module.
  `file_format` picks one ("tsv" or "csv"); None takes the TSV when present, else the CSV.
  Test labels are kept when the file has them.
  """

  metric_names = ("accuracy", "f1")
  main_metric = "accuracy"

  def __init__(self, skip_bad_rows=False, file_format=None):
    super(LcqmcProcessor, self).__init__(skip_bad_rows=skip_bad_rows)
    if file_format not in (None, "tsv", "csv"):
      raise ValueError("file_format must be None, 'tsv' or 'csv', got %r" % (file_format,))
    self.file_format = file_format

  def get_labels(self):
    return ["0", "1"]

  def has_text_pairs(self):
    return True

  def _read_split(self, data_dir, split):
    tsv_path = os.path.join(data_dir, "%s.tsv" % split)
    csv_path = os.path.join(data_dir, "LCQMC_%s.csv" % split)
    use_csv = self.file_format == "csv" or (
        self.file_format is None and not os.path.exists(tsv_path) and os.path.exists(csv_path))
    if self.file_format is None and not os.path.exists(tsv_path) and not os.path.exists(
        csv_path):
      raise InputDataError(
          "file not found (nor the CSV form %s)" % os.path.basename(csv_path), tsv_path)
    if use_csv:
      fmt = _FileFormat(has_header=True, text_a_column=0, text_b_column=1, label_column=2,
                        header_names={0: "sentence1", 1: "sentence2", 2: "label"},
                        num_columns=3, delimiter=",", use_csv=True)
      return self._create_examples(csv_path, split, fmt)
    if split == "test":
      fmt = _FileFormat(has_header=False, text_a_column=0, text_b_column=1, label_column=None,
                        num_columns=(2, 3))
      return self._create_examples(tsv_path, split, fmt)
    fmt = _FileFormat(has_header=False, text_a_column=0, text_b_column=1, label_column=2,
                      num_columns=3)
    return self._create_examples(tsv_path, split, fmt)

  def get_train_examples(self, data_dir):
    return self._read_split(data_dir, "train")

  def get_dev_examples(self, data_dir):
    return self._read_split(data_dir, "dev")

  def get_test_examples(self, data_dir):
    return self._read_split(data_dir, "test")

  def _row_to_example(self, fields, fmt, set_type, index, line_number):
    example = super(LcqmcProcessor, self)._row_to_example(
        fields, fmt, set_type, index, line_number)
    if set_type == "test" and fmt.label_column is None and len(fields) == 3:
      example.label = self._check_label(fields[2])
    return example


class GenericProcessor(DataProcessor):
  """Any TSV/CSV classification (or regression) data set, described by arguments.

  Args:
    labels: the list of label strings (required for classification).
    text_a_column: column of the first text.
    text_b_column: column of the second text (None: single-sentence task).
    label_column: column of the label in the train and dev files.
    delimiter: column separator ("\\t" splits on tabs only, like GLUE; any other delimiter is
      parsed with the csv module, which honours quoting).
    has_header: whether every file starts with a header line.
    train_file, dev_file, test_file: file names inside the data dir.
    test_text_a_column, test_text_b_column: columns in the test file (default: as above).
    test_label_column: label column of the test file (None: unlabeled).
    is_regression: one float label per example.
    metric_names, main_metric: defaults: accuracy (classification), pearson (regression);
      "f1" uses `positive_label`.
    positive_label: label whose F1 is reported.
    use_csv: force the csv module on (True) or off (False); None: on unless delimiter is tab.
    skip_bad_rows: skip (and count) bad rows instead of raising.
  """

  def __init__(self, labels=None, text_a_column=0, text_b_column=None, label_column=1,
               delimiter="\t", has_header=True, train_file="train.tsv", dev_file="dev.tsv",
               test_file="test.tsv", test_text_a_column=None, test_text_b_column=None,
               test_label_column=None, is_regression=False, metric_names=None,
               main_metric=None, positive_label="1", use_csv=None, skip_bad_rows=False):
    super(GenericProcessor, self).__init__(skip_bad_rows=skip_bad_rows)
    self.is_regression = bool(is_regression)
    if not self.is_regression:
      if not labels:
        raise ValueError("GenericProcessor needs the list of labels for classification")
      labels = [str(l) for l in labels]
      if len(set(labels)) != len(labels):
        raise ValueError("duplicate labels in %r" % (labels,))
    self.labels = list(labels) if labels else [None]
    self.text_a_column = text_a_column
    self.text_b_column = text_b_column
    self.label_column = label_column
    self.delimiter = delimiter
    self.has_header = has_header
    self.train_file = train_file
    self.dev_file = dev_file
    self.test_file = test_file
    self.test_text_a_column = (
        text_a_column if test_text_a_column is None else test_text_a_column)
    self.test_text_b_column = (
        text_b_column if test_text_b_column is None else test_text_b_column)
    self.test_label_column = test_label_column
    self.use_csv = (delimiter != "\t") if use_csv is None else use_csv
    if metric_names is None:
      metric_names = ("pearson", "spearman") if self.is_regression else ("accuracy",)
    self.metric_names = tuple(metric_names)
    self.main_metric = main_metric or self.metric_names[0]
    if self.main_metric not in self.metric_names:
      raise ValueError("main_metric %r is not in metric_names %r" % (
          self.main_metric, self.metric_names))
    self.positive_label = str(positive_label)

  def get_labels(self):
    return list(self.labels)

  def _labeled_format(self, set_type):
    return _FileFormat(has_header=self.has_header, text_a_column=self.text_a_column,
                       text_b_column=self.text_b_column, label_column=self.label_column,
                       delimiter=self.delimiter, use_csv=self.use_csv)

  def _test_format(self):
    return _FileFormat(has_header=self.has_header, text_a_column=self.test_text_a_column,
                       text_b_column=self.test_text_b_column,
                       label_column=self.test_label_column,
                       delimiter=self.delimiter, use_csv=self.use_csv)


# Task name (lower case) -> processor class.
PROCESSORS = {
    "sst-2": Sst2Processor,
    "sst2": Sst2Processor,
    "mrpc": MrpcProcessor,
    "rte": RteProcessor,
    "cola": ColaProcessor,
    "qnli": QnliProcessor,
    "qqp": QqpProcessor,
    "mnli": MnliProcessor,
    "xnli": XnliProcessor,
    "sts-b": StsbProcessor,
    "stsb": StsbProcessor,
    "lcqmc": LcqmcProcessor,
    "generic": GenericProcessor,
}


def get_processor(task_name, **kwargs):
  """Returns the processor for `task_name` (case-insensitive), built with `kwargs`.

  Raises:
    InputDataError: unknown task name.
  """
  name = (task_name or "").strip().lower()
  if name not in PROCESSORS:
    raise InputDataError("unknown task_name %r; known tasks: %s" % (
        task_name, ", ".join(sorted(PROCESSORS))))
  return PROCESSORS[name](**kwargs)


# ---- Features --------------------------------------------------------------------------------


def _truncate_seq_pair(tokens_a, tokens_b, max_length):
  """Truncates a sequence pair in place to the maximum length.

  This is a simple heuristic which will always truncate the longer sequence one token at a
  time. This makes more sense than truncating an equal percent of tokens from each, since if
  one sequence is very short then each token that's truncated likely contains more
  information than a longer sequence.
  """
  while True:
    total_length = len(tokens_a) + len(tokens_b)
    if total_length <= max_length:
      break
    if len(tokens_a) > len(tokens_b):
      tokens_a.pop()
    else:
      tokens_b.pop()


def convert_single_example(ex_index, example, label_list, max_seq_length, tokenizer,
                           is_regression=False):
  """Converts a single `InputExample` into a feature dict (no padding).

  The sequence is `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]`, at most `max_seq_length`
  tokens (pairs are truncated by popping from the longer side, single texts from the end);
  the input pipeline pads each batch to its longest sequence.

  Args:
    ex_index: index of the example (stored as "example_index"; the first 5 are logged).
    example: InputExample.
    label_list: the processor's get_labels() (ignored for regression).
    max_seq_length: maximum number of tokens including [CLS] and [SEP]s.
    tokenizer: object with tokenize(text) and convert_tokens_to_ids(tokens).
    is_regression: the label is a float, stored as "label_values".

  Returns:
    dict with "input_ids" [int], "segment_ids" [int], "label_ids" [int] (classification) or
    "label_values" [float] (regression), "example_index" [int] and "has_label" [int]: 0 when
    the example is unlabeled (test) and carries the placeholder label (label_list[0] or 0.0).

  Raises:
    ValueError: max_seq_length too small, or a label not in label_list.
  """
  min_length = 3 if example.text_b is not None else 2
  if max_seq_length < min_length:
    raise ValueError("max_seq_length %d is too small (needs at least %d for [CLS]/[SEP])" % (
        max_seq_length, min_length))

  tokens_a = tokenizer.tokenize(example.text_a)
  tokens_b = None
  if example.text_b is not None:
    tokens_b = tokenizer.tokenize(example.text_b)
    # Account for [CLS], [SEP], [SEP] with "- 3".
    _truncate_seq_pair(tokens_a, tokens_b, max_seq_length - 3)
  elif len(tokens_a) > max_seq_length - 2:
    # Account for [CLS] and [SEP] with "- 2".
    tokens_a = tokens_a[0:(max_seq_length - 2)]

  tokens = ["[CLS]"] + tokens_a + ["[SEP]"]
  segment_ids = [0] * len(tokens)
  if tokens_b is not None:
    tokens += tokens_b + ["[SEP]"]
    segment_ids += [1] * (len(tokens_b) + 1)
  input_ids = tokenizer.convert_tokens_to_ids(tokens)
  assert len(input_ids) <= max_seq_length

  has_label = example.label is not None
  feature = {
      "input_ids": list(input_ids),
      "segment_ids": segment_ids,
      "example_index": [int(ex_index)],
      "has_label": [1 if has_label else 0],
  }
  if is_regression:
    value = float(example.label) if has_label else 0.0
    feature["label_values"] = [value]
    label_repr = value
  else:
    label = example.label if has_label else label_list[0]
    if label not in label_list:
      raise ValueError("example %s: label %r is not one of %r" % (
          example.guid, label, label_list))
    feature["label_ids"] = [label_list.index(label)]
    label_repr = "%s (id = %d)" % (label, feature["label_ids"][0])

  if ex_index < 5:
    logging.info("*** Example ***")
    logging.info("guid: %s", example.guid)
    logging.info("tokens: %s", " ".join(tokens))
    logging.info("input_ids: %s", " ".join(str(x) for x in input_ids))
    logging.info("segment_ids: %s", " ".join(str(x) for x in segment_ids))
    logging.info("label: %s%s", label_repr, "" if has_label else " (placeholder, unlabeled)")
  return feature


def convert_examples_to_features(examples, label_list, max_seq_length, tokenizer,
                                 is_regression=False):
  """Converts a list of `InputExample`s to a list of feature dicts (see convert_single_example).

  Logs progress every 10,000 examples and how many examples were truncated.
  """
  features = []
  num_truncated = 0
  for (ex_index, example) in enumerate(examples):
    if ex_index % 10000 == 0:
      logging.info("Writing example %d of %d", ex_index, len(examples))
    feature = convert_single_example(ex_index, example, label_list, max_seq_length, tokenizer,
                                     is_regression)
    if len(feature["input_ids"]) == max_seq_length:
      num_truncated += 1
    features.append(feature)
  logging.info("Converted %d examples; %d reach max_seq_length=%d (possibly truncated)",
               len(features), num_truncated, max_seq_length)
  return features


# ---- Metrics (pure numpy) --------------------------------------------------------------------


def _rankdata(values):
  """Ranks 1..n with ties given their average rank (like scipy.stats.rankdata)."""
  values = np.asarray(values, dtype=np.float64)
  order = np.argsort(values, kind="mergesort")
  sorted_values = values[order]
  n = len(values)
  ranks = np.empty(n, dtype=np.float64)
  # Boundaries of runs of equal values.
  new_run = np.concatenate([[True], sorted_values[1:] != sorted_values[:-1], [True]])
  starts = np.flatnonzero(new_run)
  for start, end in zip(starts[:-1], starts[1:]):
    ranks[order[start:end]] = (start + 1 + end) / 2.0
  return ranks


def pearson_correlation(x, y):
  """Pearson correlation coefficient; 0.0 when either input is constant."""
  x = np.asarray(x, dtype=np.float64)
  y = np.asarray(y, dtype=np.float64)
  xc = x - x.mean()
  yc = y - y.mean()
  denominator = math.sqrt(float(np.dot(xc, xc)) * float(np.dot(yc, yc)))
  if denominator == 0.0:
    return 0.0
  return float(np.clip(np.dot(xc, yc) / denominator, -1.0, 1.0))


def spearman_correlation(x, y):
  """Spearman rank correlation (Pearson of the average ranks; ties share their rank)."""
  return pearson_correlation(_rankdata(x), _rankdata(y))


def f1_score(predictions, labels, positive):
  """F1 of class `positive`; 0.0 when it is neither predicted nor present."""
  predictions = np.asarray(predictions)
  labels = np.asarray(labels)
  tp = float(np.sum((predictions == positive) & (labels == positive)))
  fp = float(np.sum((predictions == positive) & (labels != positive)))
  fn = float(np.sum((predictions != positive) & (labels == positive)))
  if tp == 0.0:
    return 0.0
  precision = tp / (tp + fp)
  recall = tp / (tp + fn)
  return 2.0 * precision * recall / (precision + recall)


def matthews_corrcoef(predictions, labels):
  """Matthews correlation coefficient (multi-class form); 0.0 when undefined.

  Undefined (a zero denominator) means all labels or all predictions are one class.
  """
  predictions = np.asarray(predictions).astype(np.int64)
  labels = np.asarray(labels).astype(np.int64)
  num_classes = int(max(predictions.max(), labels.max())) + 1
  confusion = np.zeros((num_classes, num_classes), dtype=np.float64)
  np.add.at(confusion, (labels, predictions), 1.0)
  t_sum = confusion.sum(axis=1)
  p_sum = confusion.sum(axis=0)
  n_correct = np.trace(confusion)
  n_samples = confusion.sum()
  cov_ytyp = n_correct * n_samples - np.dot(t_sum, p_sum)
  cov_ypyp = n_samples ** 2 - np.dot(p_sum, p_sum)
  cov_ytyt = n_samples ** 2 - np.dot(t_sum, t_sum)
  if cov_ypyp * cov_ytyt == 0.0:
    return 0.0
  return float(cov_ytyp / math.sqrt(cov_ytyt * cov_ypyp))


def _processor_for_metrics(task_name_or_processor):
  if isinstance(task_name_or_processor, DataProcessor):
    return task_name_or_processor
  name = str(task_name_or_processor).strip().lower()
  if name == "generic" or name not in PROCESSORS:
    raise ValueError("compute_metrics needs a known task name or a processor instance, got %r"
                     % (task_name_or_processor,))
  return PROCESSORS[name]()


def compute_metrics(task_name_or_processor, predictions, labels):
  """Computes the task's metrics.

  Main metric per task (the one that picks the best checkpoint, `processor.main_metric`):
  MRPC and QQP "f1" (of the positive class "1"), CoLA "mcc" (Matthews), STS-B "pearson",
  every other task "accuracy". Also reported: "accuracy" for every classification task,
  "f1" for MRPC/QQP/LCQMC, "spearman" for STS-B (average ranks for ties).

  Args:
    task_name_or_processor: a key of PROCESSORS or a DataProcessor instance.
    predictions: classification: class ids [N] or probabilities/logits [N, num_labels]
      (argmax taken); regression: values [N] or [N, 1].
    labels: classification: label ids [N]; regression: gold values [N].

  Returns:
    dict metric name -> float, plus "eval_examples" (int).

  Raises:
    ValueError: lengths differ or there are no examples.
  """
  processor = _processor_for_metrics(task_name_or_processor)
  predictions = np.asarray(predictions)
  labels = np.asarray(labels)
  if processor.is_regression:
    if predictions.ndim > 1:
      predictions = predictions.reshape(predictions.shape[0], -1)[:, 0]
    predictions = predictions.astype(np.float64)
    labels = labels.reshape(-1).astype(np.float64)
  else:
    if predictions.ndim == 2:
      predictions = np.argmax(predictions, axis=-1)
    predictions = predictions.reshape(-1).astype(np.int64)
    labels = labels.reshape(-1).astype(np.int64)
  if predictions.shape[0] != labels.shape[0]:
    raise ValueError("%d predictions but %d labels" % (predictions.shape[0], labels.shape[0]))
  if labels.shape[0] == 0:
    raise ValueError("no examples to evaluate")

  result = {}
  for name in processor.metric_names:
    if name == "accuracy":
      result[name] = float(np.mean(predictions == labels))
    elif name == "f1":
      positive = processor.get_labels().index(processor.positive_label)
      result[name] = f1_score(predictions, labels, positive)
    elif name == "mcc":
      result[name] = matthews_corrcoef(predictions, labels)
    elif name == "pearson":
      result[name] = pearson_correlation(predictions, labels)
    elif name == "spearman":
      result[name] = spearman_correlation(predictions, labels)
    else:
      raise ValueError("unknown metric %r" % (name,))
  result["eval_examples"] = int(labels.shape[0])
  return result


# ---- Prediction output -----------------------------------------------------------------------


def _prediction_rows(processor, examples, probabilities_or_values):
  values = np.asarray(probabilities_or_values, dtype=np.float64)
  if values.shape[0] != len(examples):
    raise ValueError("%d predictions for %d examples" % (values.shape[0], len(examples)))
  if processor.is_regression:
    if values.ndim == 2 and values.shape[1] == 1:
      values = values[:, 0]
    if values.ndim != 1:
      raise ValueError("regression predictions must have shape [N] or [N, 1], got %s" % (
          values.shape,))
  else:
    num_labels = len(processor.get_labels())
    if values.ndim != 2 or values.shape[1] != num_labels:
      raise ValueError("class probabilities must have shape [N, %d], got %s" % (
          num_labels, values.shape))
  return values


def _make_parent_dir(path):
  parent = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(parent):
    os.makedirs(parent)


def write_predictions_tsv(path, processor, examples, probabilities_or_values):
  """Writes predictions like google-research/bert's test_results.tsv.

  One line per example, in example order, no header: the class probabilities (in
  get_labels() order) separated by tabs; for regression the predicted value.

  Returns:
    the number of lines written.
  """
  values = _prediction_rows(processor, examples, probabilities_or_values)
  _make_parent_dir(path)
  with open(path, "w", encoding="utf-8") as writer:
    for row in values:
      if processor.is_regression:
        writer.write("%s\n" % repr(float(row)))
      else:
        writer.write("\t".join(repr(float(p)) for p in row) + "\n")
  logging.info("Wrote %d predictions to %s", len(values), path)
  return len(values)


def write_predictions_json(path, processor, examples, probabilities_or_values):
  """Writes the predictions as a JSON list, one object per example.

  Each object: "guid", "text_a", "text_b", "label" (gold label or null), "prediction" (label
  string, or the value for regression) and, for classification, "probabilities" (dict label
  -> probability).

  Returns:
    the list that was written.
  """
  values = _prediction_rows(processor, examples, probabilities_or_values)
  labels = processor.get_labels()
  records = []
  for example, row in zip(examples, values):
    record = {
        "guid": example.guid,
        "text_a": example.text_a,
        "text_b": example.text_b,
        "label": example.label,
    }
    if processor.is_regression:
      record["prediction"] = float(row)
    else:
      record["prediction"] = labels[int(np.argmax(row))]
      record["probabilities"] = {label: float(p) for label, p in zip(labels, row)}
    records.append(record)
  _make_parent_dir(path)
  with open(path, "w", encoding="utf-8") as writer:
    json.dump(records, writer, ensure_ascii=False, indent=1)
    writer.write("\n")
  logging.info("Wrote %d predictions to %s", len(records), path)
  return records




# ---- The task in a run -----------------------------------------------------------------------


def examples_fingerprint(examples):
  """sha1 over the examples' content: a changed data file rebuilds the feature cache."""
  h = hashlib.sha1()
  for ex in examples:
    h.update(repr((ex.guid, ex.text_a, ex.text_b, ex.label)).encode("utf-8"))
  return h.hexdigest()


def make_processor(cfg):
  """The processor --task_name (with --generic_* or --xnli_language) asks for."""
  name = (cfg.task_name or "").lower()
  if not name:
    raise InputDataError("--task_name is required (one of %s)" % ", ".join(sorted(PROCESSORS)))
  if name == "generic":
    if not cfg.generic_labels:
      raise InputDataError("--task_name=generic needs --generic_labels")
    return get_processor(
        name, labels=cfg.generic_labels, text_a_column=cfg.generic_text_a_column,
        text_b_column=None if cfg.generic_text_b_column < 0 else cfg.generic_text_b_column,
        label_column=cfg.generic_label_column, delimiter=cfg.generic_delimiter,
        has_header=cfg.generic_has_header, use_csv=cfg.generic_use_csv,
        skip_bad_rows=cfg.skip_bad_rows)
  if name == "xnli":
    return get_processor(name, language=cfg.xnli_language, skip_bad_rows=cfg.skip_bad_rows)
  return get_processor(name, skip_bad_rows=cfg.skip_bad_rows)


def create_classifier_head(pooled_output, num_labels, is_regression, labels=None,
                           dropout_prob=0.0):
  """The classification (or regression) layer on BERT's pooled [CLS] output.

  Variables `output_weights` [num_labels, hidden_size] (truncated normal, stddev 0.02) and
  `output_bias` [num_labels] (zeros), as in google-research/bert.

  Args:
    pooled_output: float Tensor [B, H].
    num_labels: C (1 for regression).
    is_regression: the output is one value, trained with the squared error.
    labels: optional Tensor [B] (or [B, 1]): int32 label ids (classification) or float values
      (regression).
    dropout_prob: dropout on pooled_output (0.0 when not training).

  Returns:
    (loss scalar or None without labels, outputs): classification {"probabilities": [B, C],
    "predictions": int32 [B], "logits": [B, C]}; regression {"predictions": [B], "logits":
    [B, 1]}.
  """
  hidden_size = pooled_output.shape[-1]
  weights = tf1.get_variable("output_weights", [num_labels, hidden_size],
                             initializer=tf1.truncated_normal_initializer(stddev=0.02))
  bias = tf1.get_variable("output_bias", [num_labels], initializer=tf1.zeros_initializer())
  if dropout_prob:
    pooled_output = tf.nn.dropout(pooled_output, rate=dropout_prob)
  logits = tf.nn.bias_add(tf.matmul(pooled_output, weights, transpose_b=True), bias)  # [B, C]
  if labels is not None:
    labels = tf.reshape(labels, [-1])
  if is_regression:
    predictions = logits[:, 0]
    loss = None
    if labels is not None:
      loss = tf.reduce_mean(tf.square(predictions - labels))
    return loss, {"predictions": predictions, "logits": logits}
  outputs = {"probabilities": tf.nn.softmax(logits, axis=-1),
             "predictions": tf.argmax(logits, axis=-1, output_type=tf.int32), "logits": logits}
  loss = None
  if labels is not None:
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels,
                                                                         logits=logits))
  return loss, outputs


def make_task(processor, examples):
  """The TaskSpec of sentence (pair) classification / regression; evaluate scores `examples`."""
  label_list = processor.get_labels()
  num_labels = 1 if processor.is_regression else len(label_list)
  label_key = "label_values" if processor.is_regression else "label_ids"

  def build_head(model, features, is_training):
    return create_classifier_head(
        model.get_pooled_output(), num_labels, processor.is_regression,
        labels=features.get(label_key),
        dropout_prob=model.config.hidden_dropout_prob if is_training else 0.0)

  def evaluate(rows):
    if len(rows) != len(examples):
      raise TrainingError("evaluation saw %d of %d examples" % (len(rows), len(examples)))
    key = "predictions" if processor.is_regression else "probabilities"
    predictions = np.array([r[key] for r in rows])
    if processor.is_regression:
      labels = np.array([float(ex.label) for ex in examples])
    else:
      labels = np.array([label_list.index(ex.label) for ex in examples])
    metrics = compute_metrics(processor, predictions, labels)
    metrics["main_metric"] = processor.main_metric
    return metrics

  return task_spec.TaskSpec(
      int_keys=["input_ids", "segment_ids", "example_index"] + (
          [] if processor.is_regression else ["label_ids"]),
      float_keys=["label_values"] if processor.is_regression else [],
      index_key="example_index", build_head=build_head, evaluate=evaluate,
      serving_outputs=serving_outputs, head_variable_regex=r"^output_(weights|bias)$",
      soft_label_kind="regression" if processor.is_regression else "softmax")


def serving_outputs(outputs):
  """The SavedModel's outputs: probabilities and predictions (regression: predictions)."""
  return {k: v for k, v in outputs.items() if k != "logits"}


def feature_cache(cfg, name, examples, processor, tokenizer, sort_by_length):
  """(tfrecord path, number of features) of `examples`, built once per content."""
  task = make_task(processor, examples)
  key = {"name": name, "examples": examples_fingerprint(examples),
         "vocab": files.file_fingerprint(cfg.spm_model_file or cfg.vocab_file),
         "max_seq_length": cfg.max_seq_length, "do_lower_case": cfg.do_lower_case,
         "task": cfg.task_name}

  def build():
    return convert_examples_to_features(examples, processor.get_labels(), cfg.max_seq_length,
                                        tokenizer, processor.is_regression)

  return input_pipeline.cached_features(cfg.cache_dir, name, key, build, task.int_keys,
                                        task.float_keys, sort_by_length=sort_by_length)


# Written into every export (see ClassifierRun.export_files).
EXPORT_TASK_FILE = "classifier_task.json"


class ClassifierRun(object):
  """The classification task's part of a run (the methods runner.run calls)."""

  def __init__(self, cfg):
    self.cfg = cfg
    self.processor = self.tokenizer = None
    self.train_examples, self.dev_sets, self.test_examples = None, [], None

  def check_config(self):
    pass  # --task_name is checked when the processor is made, in read_data

  def read_data(self, tokenizer):
    """Reads (and validates) every data file the run needs."""
    cfg = self.cfg
    self.tokenizer = tokenizer
    self.processor = make_processor(cfg)
    if cfg.do_train:
      self.train_examples = self.processor.get_train_examples(cfg.data_dir)
      if cfg.max_train_examples:
        self.train_examples = self.train_examples[:cfg.max_train_examples]
    if cfg.do_eval or (cfg.do_train and cfg.evaluate_during_training):
      self.dev_sets = self.processor.get_dev_sets(cfg.data_dir)
      if cfg.max_eval_examples:
        self.dev_sets = [(n, ex[:cfg.max_eval_examples]) for n, ex in self.dev_sets]
    if cfg.do_predict:
      self.test_examples = self.processor.get_test_examples(cfg.data_dir)
    if self.processor.num_skipped_rows:
      logging.warning("skipped %d bad rows (--skip_bad_rows)", self.processor.num_skipped_rows)

  def _feature_set(self, name, examples, sort_by_length):
    path, _ = feature_cache(self.cfg, name, examples, self.processor, self.tokenizer,
                            sort_by_length)
    return task_spec.FeatureSet(name, make_task(self.processor, examples), path, examples)

  def train_inputs(self):
    train_path, num_features = feature_cache(self.cfg, "train", self.train_examples,
                                             self.processor, self.tokenizer, False)
    eval_path = None
    if self.cfg.evaluate_during_training:
      eval_path = self._feature_set(self.dev_sets[0][0], self.dev_sets[0][1], True).path
    task = make_task(self.processor, self.dev_sets[0][1] if self.dev_sets else [])
    return task, train_path, num_features, eval_path

  def eval_sets(self):
    return [self._feature_set(name, examples, True) for name, examples in self.dev_sets]

  def eval_metrics(self, feature_set, rows):
    return feature_set.task.evaluate(rows)

  def predict_set(self):
    return self._feature_set("test", self.test_examples, True)

  def write_predictions(self, feature_set, rows, checkpoint, seconds):
    """test_results.tsv (google-research/bert's layout) and test_results.json."""
    del checkpoint, seconds
    key = "predictions" if self.processor.is_regression else "probabilities"
    values = np.array([r[key] for r in rows])
    for name, writer in (("test_results.tsv", write_predictions_tsv),
                         ("test_results.json", write_predictions_json)):
      writer(os.path.join(self.cfg.output_dir, name), self.processor, feature_set.data, values)
    return values

  def export_task(self):
    return make_task(self.processor, [])

  def export_files(self):
    """classifier_task.json: what predict.py needs to turn text into features and labels."""
    cfg = self.cfg
    task = {"task_name": cfg.task_name, "labels": self.processor.get_labels(),
            "is_regression": self.processor.is_regression,
            "text_pairs": self.processor.has_text_pairs(), "max_seq_length": cfg.max_seq_length,
            "do_lower_case": cfg.do_lower_case}
    return {EXPORT_TASK_FILE: json.dumps(task, indent=1) + "\n"}
