# coding=utf-8
"""Sentence (pair) classification and regression: the task's settings, its part of a run, its
prediction files and its serving (run_classifier.py is its command line).

Importing it defines no flags. Every data problem raises InputDataError with a one-line message
naming the file and the line; --skip_bad_rows skips such rows instead and counts them.
"""

import dataclasses
import json
import os
from typing import Optional, Tuple

from absl import logging
import numpy as np

from theseus import files
from theseus.config import declare
from theseus.config.declare import setting
from theseus.errors import InputDataError
from theseus.tasks import base
from theseus.tasks.classifier import augment
from theseus.tasks.classifier import datasets
from theseus.tasks.classifier import features
from theseus.tasks.classifier import head
from theseus.tasks.classifier.reader import InputExample
from theseus.training import input_pipeline

KIND = "classifier"
# Written into every export (see ClassifierRun.export_files).
EXPORT_TASK_FILE = "classifier_task.json"


@dataclasses.dataclass(frozen=True)
class ClassifierSettings:
  """The task's own flags: which data set, and how to read a generic one."""
  task_name: Optional[str] = setting(None, "Task: " + ", ".join(sorted(datasets.PROCESSORS)))
  generic_labels: Tuple[str, ...] = setting((), "generic task: the label list.")
  generic_text_a_column: int = setting(0, "generic task: column of text_a.", minimum=0)
  generic_text_b_column: int = setting(-1, "generic task: column of text_b (-1: none).",
                                       minimum=-1)
  generic_label_column: int = setting(1, "generic task: column of the label.", minimum=0)
  generic_delimiter: str = setting("\t", "generic task: column delimiter.")
  generic_has_header: bool = setting(True, "generic task: files start with a header.")
  generic_use_csv: bool = setting(False, "generic task: parse with the csv module.")
  xnli_language: str = setting("zh", "xnli task: the language trained and evaluated on.")


def make_processor(settings, skip_bad_rows):
  """The processor --task_name (with --generic_* or --xnli_language) asks for."""
  name = (settings.task_name or "").lower()
  if not name:
    raise InputDataError("--task_name is required (one of %s)"
                         % ", ".join(sorted(datasets.PROCESSORS)))
  if name == "generic":
    if not settings.generic_labels:
      raise InputDataError("--task_name=generic needs --generic_labels")
    text_b = settings.generic_text_b_column
    return datasets.get_processor(
        name, labels=list(settings.generic_labels), text_a_column=settings.generic_text_a_column,
        text_b_column=None if text_b < 0 else text_b,
        label_column=settings.generic_label_column, delimiter=settings.generic_delimiter,
        has_header=settings.generic_has_header, use_csv=settings.generic_use_csv,
        skip_bad_rows=skip_bad_rows)
  if name == "xnli":
    return datasets.get_processor(name, language=settings.xnli_language,
                                  skip_bad_rows=skip_bad_rows)
  return datasets.get_processor(name, skip_bad_rows=skip_bad_rows)


# ---- Prediction files ------------------------------------------------------------------------


def _write(path, text):
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  files.atomic_write_text(path, text)


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


def write_predictions_tsv(path, processor, examples, probabilities_or_values):
  """Writes predictions like google-research/bert's test_results.tsv.

  One line per example, in example order, no header: the class probabilities (in
  get_labels() order) separated by tabs; for regression the predicted value.

  Returns:
    the number of lines written.
  """
  values = _prediction_rows(processor, examples, probabilities_or_values)
  if processor.is_regression:
    text = "".join("%s\n" % repr(float(row)) for row in values)
  else:
    text = "".join("\t".join(repr(float(p)) for p in row) + "\n" for row in values)
  _write(path, text)
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
  _write(path, json.dumps(records, ensure_ascii=False, indent=1) + "\n")
  logging.info("Wrote %d predictions to %s", len(records), path)
  return records




# ---- The task in a run -----------------------------------------------------------------------


class ClassifierRun(base.TaskRun):
  """The classification task's part of a run (see base.TaskRun)."""

  KIND = KIND
  SETTINGS = ClassifierSettings

  def __init__(self, settings, model, data, output_dir):
    super(ClassifierRun, self).__init__(settings, model, data, output_dir)
    self.processor = self.tokenizer = None
    self.train_examples, self.dev_sets, self.test_examples = None, [], None

  def check_settings(self):
    declare.check_ranges(self.settings)  # --task_name is checked in read_data

  def read_data(self, tokenizer, sets):
    """Reads (and validates) the files of `sets` ("train", "dev", "test")."""
    self.tokenizer = tokenizer
    self.processor = make_processor(self.settings, self.data.skip_bad_rows)
    data_dir = self.data.data_dir
    if "train" in sets:
      self.train_examples = self.processor.get_train_examples(data_dir)
      if self.data.max_train_examples:
        self.train_examples = self.train_examples[:self.data.max_train_examples]
    if "dev" in sets:
      self.dev_sets = self.processor.get_dev_sets(data_dir)
      if self.data.max_eval_examples:
        self.dev_sets = [(n, ex[:self.data.max_eval_examples]) for n, ex in self.dev_sets]
    if "test" in sets:
      self.test_examples = self.processor.get_test_examples(data_dir)
    if self.processor.num_skipped_rows:
      logging.warning("skipped %d bad rows (--skip_bad_rows)", self.processor.num_skipped_rows)

  def feature_cache(self, name, examples, sort_by_length, num_augmented=0):
    """(tfrecord path, number of features) of `examples`, built once per content.

    num_augmented: the last examples are augmented copies (their features carry
    "augmented" = 1).
    """
    task = head.make_task(self.processor, examples, augmented=num_augmented > 0)
    key = {"name": name, "examples": features.examples_fingerprint(examples),
           "vocab": files.file_digest(self.model.vocab_path),
           "max_seq_length": self.model.max_seq_length,
           "do_lower_case": self.model.do_lower_case, "task": self.settings.task_name}
    if num_augmented:
      key["augmented"] = num_augmented

    def build():
      built = features.convert_examples_to_features(
          examples, self.processor.get_labels(), self.model.max_seq_length, self.tokenizer,
          self.processor.is_regression)
      if num_augmented:
        for i, feature in enumerate(built):
          feature["augmented"] = [1 if i >= len(built) - num_augmented else 0]
      return built

    return input_pipeline.cached_features(self.data.cache_dir, name, key, build, task.int_keys,
                                          task.float_keys, sort_by_length=sort_by_length)

  def _feature_set(self, name, examples, sort_by_length):
    path, _ = self.feature_cache(name, examples, sort_by_length)
    return base.FeatureSet(name, head.make_task(self.processor, examples), path, examples)

  def train_inputs(self, with_dev, augment_copies=0, seed=0):
    copies = augment.augmented_copies(self.train_examples, augment_copies, seed,
                                      len(self.train_examples)) if augment_copies else []
    train_path, num_features = self.feature_cache("train", self.train_examples + copies, False,
                                                   len(copies))
    eval_path = None
    if with_dev:
      eval_path = self._feature_set(self.dev_sets[0][0], self.dev_sets[0][1], True).path
    task = head.make_task(self.processor, self.dev_sets[0][1] if self.dev_sets else [],
                          augmented=bool(copies))
    return task, train_path, num_features, eval_path

  def eval_sets(self):
    return [self._feature_set(name, examples, True) for name, examples in self.dev_sets]

  def eval_outputs(self, feature_set, predictions):
    return {}

  def predict_set(self):
    return self._feature_set("test", self.test_examples, True)

  def write_predictions(self, feature_set, rows, checkpoint, seconds):
    """test_results.tsv (google-research/bert's layout) and test_results.json."""
    del checkpoint, seconds
    values = feature_set.task.decode(rows)
    for name, writer in (("test_results.tsv", write_predictions_tsv),
                         ("test_results.json", write_predictions_json)):
      writer(os.path.join(self.output_dir, name), self.processor, feature_set.data, values)
    return values

  def export_spec(self):
    return head.make_task(self.processor, [])

  def export_files(self):
    """classifier_task.json: what predict.py needs to turn text into features and labels."""
    task = {"task_name": self.settings.task_name, "labels": self.processor.get_labels(),
            "is_regression": self.processor.is_regression,
            "text_pairs": self.processor.has_text_pairs(),
            "max_seq_length": self.model.max_seq_length,
            "do_lower_case": self.model.do_lower_case}
    return {EXPORT_TASK_FILE: json.dumps(task, indent=1) + "\n"}


# ---- Serving ---------------------------------------------------------------------------------


class ClassifierServing(base.ServingTask):
  """Raw sentences (pairs: two texts separated by a tab) -> labels with their probabilities."""

  TASK_FILE = EXPORT_TASK_FILE
  REQUIRED_KEYS = ("labels", "is_regression", "text_pairs", "max_seq_length", "do_lower_case")

  def features(self, texts, locations=None):
    info = self.task_info
    examples = [self._example(i, text, locations) for i, text in enumerate(texts)]
    feature_list = [features.convert_single_example(
        i, example, info["labels"], info["max_seq_length"], self.tokenizer, info["is_regression"])
                    for i, example in enumerate(examples)]
    return feature_list, examples

  def _example(self, index, text, locations):
    """An InputExample of one raw line: a sentence, or a tab-separated pair for pair tasks."""
    parts = text.split("\t")
    if self.task_info.get("text_pairs"):
      if len(parts) != 2 or not all(p.strip() for p in parts):
        raise base.example_error(": this task reads sentence pairs: two texts separated by "
                                 "one tab", index, locations)
      return InputExample("predict-%d" % index, parts[0], parts[1])
    if not text.strip():
      raise base.example_error(" is empty", index, locations)
    return InputExample("predict-%d" % index, " ".join(parts))

  def results(self, texts, examples, outputs):
    labels = self.task_info["labels"]
    results = []
    for i, example in enumerate(examples):
      result = {"text": example.text_a}
      if example.text_b is not None:
        result["text_b"] = example.text_b
      if self.task_info["is_regression"]:
        result["value"] = float(outputs["predictions"][i])
      else:
        probabilities = outputs["probabilities"][i]
        result["label"] = labels[int(np.argmax(probabilities))]
        result["probabilities"] = {label: float(p) for label, p in zip(labels, probabilities)}
      results.append(result)
    return results


# The registry's names (theseus/tasks/__init__.py).
RUN = ClassifierRun
SERVING = ClassifierServing
