# coding=utf-8
"""The data sets of sentence (pair) classification and regression: GLUE, XNLI, LCQMC, generic.

A processor describes a data set (its files, their layouts, its labels and metrics) in the
google-research/bert interface (get_train_examples(data_dir), get_labels(), ...); reader.py
reads and validates the files. `PROCESSORS` maps --task_name to a processor class;
`make_processor` builds the one a run's ClassifierSettings ask for.
"""

import math
import os

from theseus.errors import InputDataError
from theseus.tasks.classifier.reader import BadRow
from theseus.tasks.classifier.reader import FileFormat
from theseus.tasks.classifier.reader import glue_format
from theseus.tasks.classifier.reader import TableReader


class DataProcessor(object):
  """Base class for data converters for sequence classification data sets.

  Subclasses describe their files with `FileFormat`s and their labels; reader.TableReader reads
  every row and validates it (a label outside get_labels(), for regression not a number or out
  of range, is a bad row).

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

  def _labeled_format(self, set_type):
    """The `FileFormat` of the train and dev files."""
    raise NotImplementedError()

  def _test_format(self):
    """The `FileFormat` of the test file."""
    raise NotImplementedError()

  def check_label(self, value):
    """Returns the normalised label or raises BadRow."""
    value = value.strip()
    if self.is_regression:
      try:
        number = float(value)
      except ValueError:
        raise BadRow("label %r is not a number" % (value,))
      if math.isnan(number) or math.isinf(number):
        raise BadRow("label %r is not a finite number" % (value,))
      low, high = self._label_range()
      if (low is not None and number < low) or (high is not None and number > high):
        raise BadRow("label %s is outside [%s, %s]" % (value, low, high))
      return number
    labels = self.get_labels()
    if value not in labels:
      raise BadRow("label %r is not one of %s" % (value, ", ".join(repr(l) for l in labels)))
    return value

  def _label_range(self):
    """(low, high) allowed for a regression label (None: unbounded)."""
    return (None, None)

  def _create_examples(self, path, set_type, fmt):
    """Reads and validates the rows of `path` (see reader.TableReader.read); counts skips."""
    reader = TableReader(self.check_label, [] if self.is_regression else self.get_labels(),
                         self.skip_bad_rows)
    examples, skipped = reader.read(path, set_type, fmt)
    self.num_skipped_rows += skipped
    self.skipped_rows_by_file[path] = self.skipped_rows_by_file.get(path, 0) + skipped
    return examples


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
  labeled_layout = glue_format(0, label=1, header={0: "sentence", 1: "label"})
  test_layout = glue_format(1, header={0: "index", 1: "sentence"})


class MrpcProcessor(_GlueProcessor):
  """MRPC (GLUE, UTF-8 with BOM): `Quality\t#1 ID\t#2 ID\t#1 String\t#2 String`."""
  metric_names, main_metric = ("accuracy", "f1"), "f1"
  labeled_layout = glue_format(3, 4, 0, {0: "Quality", 3: "#1 String", 4: "#2 String"})
  test_layout = glue_format(3, 4, header={0: "index", 3: "#1 String", 4: "#2 String"})


class RteProcessor(_GlueProcessor):
  """RTE (GLUE): `index\tsentence1\tsentence2\tlabel`."""
  labels = ("entailment", "not_entailment")
  labeled_layout = glue_format(1, 2, 3, {0: "index", 1: "sentence1", 2: "sentence2", 3: "label"})
  test_layout = glue_format(1, 2, header={0: "index", 1: "sentence1", 2: "sentence2"})


class QnliProcessor(_GlueProcessor):
  """QNLI (GLUE): `index\tquestion\tsentence\tlabel`."""
  labels = RteProcessor.labels
  labeled_layout = glue_format(1, 2, 3, {0: "index", 1: "question", 2: "sentence", 3: "label"})
  test_layout = glue_format(1, 2, header={0: "index", 1: "question", 2: "sentence"})


class QqpProcessor(_GlueProcessor):
  """QQP (GLUE): `id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate`; test:
  `id\tquestion1\tquestion2`. The GLUE train file holds a few malformed rows: use
  skip_bad_rows to drop them."""
  metric_names, main_metric = MrpcProcessor.metric_names, MrpcProcessor.main_metric
  labeled_layout = glue_format(3, 4, 5, {3: "question1", 4: "question2", 5: "is_duplicate"})
  test_layout = glue_format(1, 2, header={1: "question1", 2: "question2"})


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
  labeled_layout = glue_format(8, 9, -1, {8: "sentence1", 9: "sentence2", -1: "gold_label"})
  test_layout = glue_format(8, 9, header={8: "sentence1", 9: "sentence2"})

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
    self.labeled_layout = glue_format(0, 1, 2, {0: "premise", 1: "hypo", 2: "label"})
    self.test_layout = FileFormat(
        has_header=True, text_a_column=6, text_b_column=7, label_column=1,
        header_names={0: "language", 1: "gold_label", 6: "sentence1", 7: "sentence2"},
        keep_row=lambda fields: fields[0].strip() == language)

  def _labeled_format(self, set_type):
    return self.labeled_layout if set_type == "train" else self.test_layout

  def check_label(self, value):
    return super(XnliProcessor, self).check_label(
        "contradiction" if value.strip() == "contradictory" else value)


class StsbProcessor(_GlueProcessor):
  """STS-B (GLUE): regression, the similarity score in [0, 5].

  `index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore`.
  """

  is_regression = True
  metric_names = ("pearson", "spearman")
  main_metric = "pearson"
  labels = (None,)
  labeled_layout = glue_format(7, 8, -1, {7: "sentence1", 8: "sentence2", -1: "score"})
  test_layout = glue_format(7, 8, header={7: "sentence1", 8: "sentence2"})

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
    return FileFormat(has_header=False, text_a_column=3, label_column=1, num_columns=4)

  def _test_format(self):
    return FileFormat(has_header=True, text_a_column=1, label_column=None,
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
      fmt = FileFormat(has_header=True, text_a_column=0, text_b_column=1, label_column=2,
                       header_names={0: "sentence1", 1: "sentence2", 2: "label"},
                       num_columns=3, delimiter=",", use_csv=True)
      return self._create_examples(csv_path, split, fmt)
    if split == "test":
      fmt = FileFormat(has_header=False, text_a_column=0, text_b_column=1, label_column=2,
                       label_optional=True, num_columns=(2, 3))
      return self._create_examples(tsv_path, split, fmt)
    fmt = FileFormat(has_header=False, text_a_column=0, text_b_column=1, label_column=2,
                     num_columns=3)
    return self._create_examples(tsv_path, split, fmt)

  def get_train_examples(self, data_dir):
    return self._read_split(data_dir, "train")

  def get_dev_examples(self, data_dir):
    return self._read_split(data_dir, "dev")

  def get_test_examples(self, data_dir):
    return self._read_split(data_dir, "test")



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
    return FileFormat(has_header=self.has_header, text_a_column=self.text_a_column,
                      text_b_column=self.text_b_column, label_column=self.label_column,
                      delimiter=self.delimiter, use_csv=self.use_csv)

  def _test_format(self):
    return FileFormat(has_header=self.has_header, text_a_column=self.test_text_a_column,
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

