# coding=utf-8
"""A validating reader of TSV / CSV data-set files: rows in, InputExamples out.

A `FileFormat` says how a file is laid out (header, columns, delimiter); a `TableReader` reads
one file in that format and checks every row. A row is bad when it has the wrong number of
columns, a label its checker refuses, an empty text; the first line is bad when it is not the
expected header, or a data row where a header is expected (the header is missing), or looks like
a header in a file that has none. A bad row raises InputDataError("<file>:<line>: <problem>"),
or with `skip_bad_rows` is skipped (a missing header then costs the first data row) and counted.
Blank lines are ignored. The data sets themselves are described in datasets.py.
"""

import csv

from absl import logging

from theseus import files
from theseus.errors import InputDataError


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


class FileFormat(object):
  """How one data file is laid out.

  Attributes:
    has_header: whether the first line is a header.
    header_names: dict column position -> expected header name (case-insensitive), checked
      when `has_header`. Negative positions count from the end.
    num_columns: expected number of columns of every data row: an int, a tuple of allowed
      ints, or None for "as many as the header has" (at least `min_columns` without header).
    text_a_column, text_b_column, label_column: column positions (None when absent; a label
      column is None for unlabeled test files). Negative positions count from the end.
    label_optional: the label column may be missing from a row (a test file that sometimes has
      its labels); the row is then unlabeled.
    delimiter: the column separator.
    use_csv: parse with the csv module (quoting). False: split on the delimiter only, as
      google-research/bert does for GLUE (`quotechar=None`): GLUE text holds bare quotes.
    keep_row: optional callable(fields) -> bool; data rows for which it is false are passed
      over (XNLI's dev file holds 15 languages, a run reads one).
  """

  def __init__(self, has_header, text_a_column, text_b_column=None, label_column=None,
               header_names=None, num_columns=None, delimiter="\t", use_csv=False,
               keep_row=None, label_optional=False):
    self.keep_row = keep_row
    self.has_header = has_header
    self.header_names = header_names or {}
    self.num_columns = num_columns
    self.text_a_column = text_a_column
    self.text_b_column = text_b_column
    self.label_column = label_column
    self.label_optional = label_optional
    self.delimiter = delimiter
    self.use_csv = use_csv

  @property
  def min_columns(self):
    """The fewest columns a row needs to reach every column this format reads."""
    needed = 1
    label = None if self.label_optional else self.label_column
    for column in (self.text_a_column, self.text_b_column, label):
      if column is not None:
        needed = max(needed, _reach(column))
    for column in self.header_names:
      needed = max(needed, _reach(column))
    return needed


def _reach(column):
  return column + 1 if column >= 0 else -column


class BadRow(Exception):
  """A row problem; turned into InputDataError (or a skipped row) by the reader."""


def glue_format(text_a, text_b=None, label=None, header=None):
  """The layout of a GLUE file: a header (its names checked at the positions of `header`),
  tab-separated columns; text_a / text_b / label are column positions (negative: from the end)."""
  return FileFormat(has_header=True, text_a_column=text_a, text_b_column=text_b,
                    label_column=label, header_names=header)


class TableReader(object):
  """Reads one data-set file in a FileFormat and validates every row (module docstring).

  Args:
    check_label: callable(text) -> the normalised label; raises BadRow for a bad one.
    known_labels: the label strings (empty for regression), for the hint about a header row in a
      file that has none.
    skip_bad_rows: skip (and count) bad rows instead of raising InputDataError.
  """

  def __init__(self, check_label, known_labels, skip_bad_rows=False):
    self.check_label = check_label
    self.known_labels = [str(l).lower() for l in known_labels]
    self.skip_bad_rows = skip_bad_rows

  def read(self, path, set_type, fmt):
    """(the InputExamples of `path` in file order, the number of bad rows skipped).

    Raises:
      InputDataError: the file is missing, empty, not UTF-8, has no data rows, or a row is bad
        and bad rows are not skipped.
    """
    examples, skipped = [], 0
    header_pending, header_fields, first_data_row = fmt.has_header, None, True
    for line_number, fields in self._rows(path, fmt):
      try:
        if header_pending:
          header_pending = False
          self._check_header(fields, fmt)
          header_fields = fields
          continue
        if fmt.keep_row is not None and not fmt.keep_row(fields):
          continue
        is_first_data_row, first_data_row = first_data_row, False
        examples.append(self._data_row(fields, fmt, set_type, len(examples), line_number,
                                       header_fields, is_first_data_row))
      except BadRow as e:
        if not self.skip_bad_rows:
          raise InputDataError("%s (use skip_bad_rows / --skip_bad_rows to skip such rows)" % e,
                               path, line_number)
        skipped += 1
        if skipped <= 5:
          logging.warning("Skipping bad row %s:%d: %s", path, line_number, e)
    logging.info("Read %d %s examples from %s (%d bad rows skipped)", len(examples), set_type,
                 path, skipped)
    if not examples:
      if skipped:
        raise InputDataError("no usable data rows (%d bad rows skipped)" % skipped, path)
      raise InputDataError("no data rows%s" % (" after the header" if fmt.has_header else ""),
                           path)
    return examples, skipped

  def _data_row(self, fields, fmt, set_type, index, line_number, header_fields,
                is_first_data_row):
    if (header_fields is not None and fmt.num_columns is None and
        len(fields) != len(header_fields)):
      raise BadRow("expected %d columns separated by %r (as in the header), found %d" % (
          len(header_fields), fmt.delimiter, len(fields)))
    try:
      return self.row_to_example(fields, fmt, set_type, index, line_number)
    except BadRow as e:
      if is_first_data_row and not fmt.has_header:
        raise BadRow(str(e) + self._headerless_first_row_hint(fields, fmt))
      raise

  def _rows(self, path, fmt):
    """Yields (line_number, fields) for every non-blank line of the file."""
    lines = files.read_text_lines(path)
    if not fmt.use_csv:
      for index, line in enumerate(lines):
        if line.strip():
          yield index + 1, line.split(fmt.delimiter)
      return
    reader = csv.reader(lines, delimiter=fmt.delimiter)
    while True:
      try:
        fields = next(reader)
      except StopIteration:
        return
      except csv.Error as e:
        raise InputDataError("cannot parse CSV: %s" % e, path, reader.line_num)
      if fields and any(f.strip() for f in fields):
        yield reader.line_num, fields

  def row_to_example(self, fields, fmt, set_type, index, line_number):
    """Validates one data row and returns its InputExample (raises BadRow)."""
    num_columns = fmt.num_columns
    if isinstance(num_columns, int):
      num_columns = (num_columns,)
    if num_columns is not None and len(fields) not in num_columns:
      raise BadRow("expected %s columns separated by %r, found %d" % (
          " or ".join(str(n) for n in num_columns), fmt.delimiter, len(fields)))
    if len(fields) < fmt.min_columns:
      raise BadRow("expected at least %d columns separated by %r, found %d" % (
          fmt.min_columns, fmt.delimiter, len(fields)))
    text_a = fields[fmt.text_a_column]
    if not text_a.strip():
      raise BadRow("empty text in column %d" % _column_number(fmt.text_a_column, fields))
    text_b = None
    if fmt.text_b_column is not None:
      text_b = fields[fmt.text_b_column]
      if not text_b.strip():
        raise BadRow("empty text in column %d" % _column_number(fmt.text_b_column, fields))
    label = None
    if fmt.label_column is not None and (not fmt.label_optional or
                                         len(fields) >= _reach(fmt.label_column)):
      label = self.check_label(fields[fmt.label_column])
    return InputExample(guid="%s-%d" % (set_type, index), text_a=text_a, text_b=text_b,
                        label=label, line=line_number)

  def _looks_like_data(self, fields, fmt):
    """Whether a (header) row would be a valid data row, i.e. the header is missing."""
    try:
      self.row_to_example(fields, fmt, "x", 0, 0)
    except BadRow:
      return False
    if fmt.label_column is None:
      # Without a label column only the header names can tell; a row that matches none of
      # them is taken as data.
      return not any(_header_field(fields, pos).lower() == name.lower()
                     for pos, name in fmt.header_names.items())
    return True

  def _check_header(self, fields, fmt):
    """Raises BadRow when the header row is not the expected one."""
    if self._looks_like_data(fields, fmt) and (
        fmt.label_column is not None or fmt.header_names):
      expected = ", ".join("column %d %r" % (_column_number(pos, fields), name)
                           for pos, name in sorted(fmt.header_names.items()))
      raise BadRow("missing header: the first line is a data row; expected a header%s" % (
          " with " + expected if expected else ""))
    for pos, name in sorted(fmt.header_names.items()):
      found = _header_field(fields, pos)
      if found.strip().lower() != name.lower():
        raise BadRow("unexpected header: column %d is %r, expected %r" % (
            _column_number(pos, fields), found, name))

  def _headerless_first_row_hint(self, fields, fmt):
    """A hint when the first row of a header-less file fails: it may be a header."""
    if fmt.label_column is None or len(fields) < max(fmt.min_columns,
                                                     _reach(fmt.label_column)):
      return ""
    value = fields[fmt.label_column].strip()
    if value and not _is_number(value) and value.lower() not in self.known_labels:
      return " (this file has no header: the first line looks like an unexpected header row)"
    return ""


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
