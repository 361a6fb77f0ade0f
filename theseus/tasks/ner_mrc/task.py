# coding=utf-8
"""Named entity recognition as machine reading comprehension: the task's settings, its part of a
run, its prediction files and its serving (run_ner_mrc.py is its command line).

Every sentence is asked one question per entity type ("which words are person names?"): the
model reads `[CLS] query [SEP] context [SEP]` and two binary pointers mark, for every context
word, whether an entity of that type starts there and whether one ends there (head.py); spans
are decoded and scored conlleval-style (decoding.py). Importing it defines no flags.
"""

import dataclasses
import importlib.resources
import io
import json
import os
from typing import Optional

from absl import logging
import numpy as np

from theseus import files
from theseus.config import declare
from theseus.config.declare import setting
from theseus.errors import InputDataError
from theseus.tasks import base
from theseus.tasks.ner_mrc import decoding
from theseus.tasks.ner_mrc import features as features_lib
from theseus.tasks.ner_mrc import head
from theseus.tasks.ner_mrc import readers
from theseus.tasks.ner_mrc.tags import NerSentence
from theseus.tasks.ner_mrc.tags import bio_to_spans
from theseus.training import evaluation
from theseus.training import input_pipeline

KIND = "ner_mrc"
# Per input format: default file names (relative to --data_dir) and query map (shipped in
# queries/). MSRA has no dev split, so its dev set defaults to the test file (as published MSRA
# results do).
DEFAULT_FILES = {
    "conll2003": {"train": "train.txt", "dev": "valid.txt", "test": "test.txt"},
    "char_bio": {"train": "train_data", "dev": "test_data", "test": "test_data"},
    "chars_tags_lines": {"train": "train.txt", "dev": "dev.txt", "test": "test.txt"},
}
DEFAULT_QUERY_FILES = {"conll2003": "ner_queries_conll2003.json",
                       "char_bio": "ner_queries_msra.json",
                       "chars_tags_lines": "ner_queries_msra.json"}

# Written into every export (see NerMrcRun.export_files): the settings and the query map.
EXPORT_TASK_FILE = "ner_task.json"
EXPORT_QUERIES_FILE = "ner_queries.json"


def _defaults(split):
  """The help text of a split's file flag: its default per format."""
  return "(default per format: %s)." % ", ".join(
      "%s %s" % (data_format, files_[split]) for data_format, files_ in DEFAULT_FILES.items())


@dataclasses.dataclass(frozen=True)
class NerSettings:
  """The task's own flags: the data layout and files, windows, decoding and the pointer loss."""
  data_format: str = setting(
      "conll2003", "Layout of the data files (and of the written predictions): conll2003 "
      "(`token POS chunk NER`), char_bio (`char<TAB>TAG`, MSRA) or chars_tags_lines (a "
      "characters line, then its tags line).", choices=readers.DATA_FORMATS)
  query_file: Optional[str] = setting(
      None, "JSON object entity type -> query text (default: the package's "
      "ner_queries_conll2003.json for conll2003, ner_queries_msra.json for the Chinese formats).")
  train_file: Optional[str] = setting(None, "Training file in --data_dir " + _defaults("train"))
  dev_file: Optional[str] = setting(None, "Dev file in --data_dir " + _defaults("dev"))
  test_file: Optional[str] = setting(None, "Test file in --data_dir " + _defaults("test"))
  doc_stride: int = setting(32, "Words from one window start to the next when a sentence does "
                            "not fit in max_seq_length after the query.", minimum=1)
  max_span_length: int = setting(0, "The most words (characters) of a decoded entity (0: no "
                                 "limit).", minimum=0)
  span_threshold: float = setting(0.5, "Probability above which a word is a start / end.",
                                  above=0, below=1)
  loss: str = setting("ce", "Pointer loss: sigmoid cross-entropy or focal.",
                      choices=head.LOSS_TYPES)
  focal_gamma: float = setting(2.0, "Exponent of the focal loss (--loss=focal; 0 = ce).",
                               minimum=0)
  write_probabilities: bool = setting(
      False, "--do_predict: also write test_probabilities.npz (every feature's input_ids, "
      "segment_ids and start/end probabilities).")


def default_query_file(data_format):
  """The query map shipped with the package for `data_format`."""
  return str(importlib.resources.files("theseus.tasks.ner_mrc").joinpath(
      "queries", DEFAULT_QUERY_FILES[data_format]))


def resolve_settings(settings):
  """The settings checked (InputDataError), with the per-format defaults of files and queries."""
  if settings.data_format not in readers.DATA_FORMATS:
    raise InputDataError("--data_format must be one of %s, got %r"
                         % (", ".join(readers.DATA_FORMATS), settings.data_format))
  if settings.loss not in head.LOSS_TYPES:
    raise InputDataError("--loss must be one of %s, got %r" % (", ".join(head.LOSS_TYPES),
                                                               settings.loss))
  declare.check_ranges(settings)
  defaults = DEFAULT_FILES[settings.data_format]
  return dataclasses.replace(
      settings, train_file=settings.train_file or defaults["train"],
      dev_file=settings.dev_file or defaults["dev"],
      test_file=settings.test_file or defaults["test"],
      query_file=settings.query_file or default_query_file(settings.data_format))


def write_predictions(output_dir, data_format, prefix, sentences, pred_tags):
  """<prefix>_predictions.txt in the input's format and <prefix>_predictions.json."""
  text_path = os.path.join(output_dir, "%s_predictions.txt" % prefix)
  readers.write_bio_predictions(text_path, sentences, pred_tags, data_format)
  joiner = " " if data_format == "conll2003" else ""
  records = []
  for sentence, tags in zip(sentences, pred_tags):
    records.append({
        "source_line": sentence.source_line, "tokens": sentence.tokens, "tags": tags,
        "entities": _entities(sentence.tokens, tags, joiner)})
  files.atomic_write_text(os.path.join(output_dir, "%s_predictions.json" % prefix),
                          json.dumps(records, ensure_ascii=False, indent=0) + "\n")
  logging.info("Wrote predictions of %d sentences to %s", len(sentences), text_path)
  return text_path


def _entities(tokens, tags, joiner):
  return [{"type": t, "start": s, "end": e, "text": joiner.join(tokens[s:e + 1])}
          for t, s, e in bio_to_spans(tags)]


def write_probabilities(path, features, metas, rows):
  """Writes an .npz of flat arrays, features in feature_index order, each `lengths[i]` long.

  Keys: lengths, feature_index, sentence_index, entity_type, input_ids, segment_ids,
  start_probs, end_probs (the last four concatenated over the features).
  """
  buffer = io.BytesIO()
  np.savez(buffer, lengths=np.array([len(r["start_probs"]) for r in rows], dtype=np.int64),
           feature_index=np.array([m.feature_index for m in metas], dtype=np.int64),
           sentence_index=np.array([m.sentence_index for m in metas], dtype=np.int64),
           entity_type=np.array([m.entity_type for m in metas]),
           input_ids=np.concatenate([f["input_ids"] for f in features]).astype(np.int32),
           segment_ids=np.concatenate([f["segment_ids"] for f in features]).astype(np.int32),
           start_probs=np.concatenate([r["start_probs"] for r in rows]).astype(np.float32),
           end_probs=np.concatenate([r["end_probs"] for r in rows]).astype(np.float32))
  files.atomic_write_bytes(path, buffer.getvalue())


class NerMrcRun(base.TaskRun):
  """The NER-as-MRC task's part of a run (see base.TaskRun).

  --max_train_examples / --max_eval_examples count sentences.
  """

  KIND = KIND
  SETTINGS = NerSettings

  def __init__(self, settings, model, data, output_dir):
    super(NerMrcRun, self).__init__(settings, model, data, output_dir)
    self.queries = self.tokenizer = None
    self.train_sentences = self.dev_sentences = self.test_sentences = None

  @property
  def entity_types(self):
    return list(self.queries)

  def check_settings(self):
    if self.data.skip_bad_rows:
      logging.warning("--skip_bad_rows has no effect on NER files: a malformed line is an error")
    self.settings = resolve_settings(self.settings)

  def _read_split(self, split, limit=0):
    """A data file's sentences (the first `limit`; 0: all), with their entity types checked."""
    path = os.path.join(self.data.data_dir or "", getattr(self.settings, "%s_file" % split))
    sentences, _ = readers.read_ner_file(path, self.settings.data_format)
    if limit:
      sentences = sentences[:limit]
    features_lib.check_entity_types(sentences, self.entity_types, path)
    return sentences

  def read_data(self, tokenizer, sets):
    """Reads (and validates) the query map and the files of `sets` ("train", "dev", "test")."""
    self.tokenizer = tokenizer
    self.queries = readers.load_queries(self.settings.query_file)
    if "train" in sets:
      self.train_sentences = self._read_split("train", self.data.max_train_examples)
    if "dev" in sets:
      self.dev_sentences = self._read_split("dev", self.data.max_eval_examples)
    if "test" in sets:
      self.test_sentences = self._read_split("test")

  def make_task(self, sentences=(), metas=()):
    s = self.settings
    return head.make_task(s.loss, s.focal_gamma, s.span_threshold, s.max_span_length,
                          list(sentences), list(metas), self.entity_types)

  def feature_cache(self, name, sentences, sort_by_length, with_metas):
    """(tfrecord path, number of features, (features, metas) or None) of `sentences`.

    The TFRecord cache is keyed by content (sentences, vocab, lower-casing, max_seq_length,
    doc_stride, queries). The FeatureMetas decoding needs are python-side and cheap: with
    `with_metas` they are rebuilt (deterministically, so they match the cached records);
    training skips them.
    """
    key = {"name": name, "sentences": features_lib.sentences_fingerprint(sentences),
           "vocab": files.file_digest(self.model.vocab_path),
           "do_lower_case": self.model.do_lower_case,
           "max_seq_length": self.model.max_seq_length, "doc_stride": self.settings.doc_stride,
           "queries": json.dumps(self.queries, ensure_ascii=False),
           "features_version": features_lib.FEATURES_VERSION}
    task = self.make_task()
    return input_pipeline.cached_features_with_metas(
        self.data.cache_dir, name, key,
        lambda: features_lib.convert_sentences_to_features(
            sentences, self.queries, self.tokenizer, self.model.max_seq_length,
            self.settings.doc_stride),
        task.int_keys, task.float_keys, sort_by_length, with_metas)

  def _feature_set(self, name, sentences):
    """A set with its FeatureMetas (for decoding): data = (sentences, features, metas)."""
    path, _, (features, metas) = self.feature_cache(name, sentences, True, True)
    return base.FeatureSet(name, self.make_task(sentences, metas), path,
                           (sentences, features, metas))

  def train_inputs(self, with_dev, augment_copies=0, seed=0):
    del seed
    if augment_copies:
      raise InputDataError("--kd_augment: NER-MRC has no text augmentation (a changed sentence "
                           "would move its entities); use it with a classification task")
    train_path, num_features, _ = self.feature_cache("train", self.train_sentences, False,
                                                     False)
    if not with_dev:
      return self.make_task(self.dev_sentences or []), train_path, num_features, None
    dev = self._feature_set("dev", self.dev_sentences)
    return dev.task, train_path, num_features, dev.path

  def eval_sets(self):
    return [self._feature_set("dev", self.dev_sentences)]

  def eval_outputs(self, feature_set, predictions):
    """Writes eval_predictions.{txt,json}; adds the numbers of sentences and features."""
    sentences, _, metas = feature_set.data
    write_predictions(self.output_dir, self.settings.data_format, "eval", sentences,
                      predictions)
    return {"num_sentences": len(sentences), "num_features": len(metas)}

  def predict_set(self):
    return self._feature_set("test", self.test_sentences)

  def write_predictions(self, feature_set, rows, checkpoint, seconds):
    """test_predictions.{txt,json}; test_results when the test file has gold entities."""
    sentences, features, metas = feature_set.data
    pred_tags = feature_set.task.decode(rows)
    path = write_predictions(self.output_dir, self.settings.data_format, "test", sentences,
                             pred_tags)
    results = {"predictions_file": path, "predict_seconds": seconds}
    if any(bio_to_spans(s.tags) for s in sentences):
      metrics = feature_set.task.score(pred_tags)
      metrics.update(checkpoint=checkpoint, predict_seconds=seconds)
      evaluation.write_eval_results(self.output_dir, "test", metrics)
      results["metrics"] = metrics
    if self.settings.write_probabilities:
      write_probabilities(os.path.join(self.output_dir, "test_probabilities.npz"), features,
                          metas, rows)
    return results

  def export_spec(self):
    return self.make_task()

  def export_files(self):
    """What a user needs besides the model to ask it the same questions."""
    s = self.settings
    ner_task = {"data_format": s.data_format, "entity_types": self.entity_types,
                "max_seq_length": self.model.max_seq_length, "doc_stride": s.doc_stride,
                "span_threshold": s.span_threshold, "max_span_length": s.max_span_length,
                "do_lower_case": self.model.do_lower_case,
                "serving_outputs": list(head.OUTPUT_KEYS)}
    with open(s.query_file, encoding="utf-8") as f:
      queries_text = f.read()
    return {EXPORT_QUERIES_FILE: queries_text,
            EXPORT_TASK_FILE: json.dumps(ner_task, ensure_ascii=False, indent=1) + "\n"}


class NerServing(base.ServingTask):
  """Plain sentences (words by spaces; characters for the Chinese formats) -> entities."""

  TASK_FILE = EXPORT_TASK_FILE
  REQUIRED_KEYS = ("data_format", "max_seq_length", "doc_stride", "span_threshold",
                   "max_span_length", "do_lower_case")

  def __init__(self, export_dir, task_info, tokenizer):
    super(NerServing, self).__init__(export_dir, task_info, tokenizer)
    self.queries = readers.load_queries(os.path.join(export_dir, EXPORT_QUERIES_FILE))
    self.words_by_space = task_info["data_format"] == "conll2003"

  def features(self, texts, locations=None):
    sentences = []
    for i, text in enumerate(texts):
      tokens = text.split() if self.words_by_space else [c for c in text if not c.isspace()]
      if not tokens:
        raise base.example_error(" is empty", i, locations)
      sentences.append(NerSentence(tokens, ["O"] * len(tokens), i + 1))
    feature_list, metas = features_lib.convert_sentences_to_features(
        sentences, self.queries, self.tokenizer, self.task_info["max_seq_length"],
        self.task_info["doc_stride"])
    return feature_list, (sentences, feature_list, metas)

  def results(self, texts, state, outputs):
    sentences, feature_list, metas = state
    info = self.task_info
    lengths = [len(f["input_ids"]) for f in feature_list]
    tags = decoding.decode_sentence_predictions(
        sentences, metas, [p[:n] for p, n in zip(outputs["start_probs"], lengths)],
        [p[:n] for p, n in zip(outputs["end_probs"], lengths)],
        threshold=info["span_threshold"], max_span_length=info["max_span_length"] or None,
        entity_types=list(self.queries))
    joiner = " " if self.words_by_space else ""
    return [{"text": text, "tokens": sentence.tokens,
             "entities": _entities(sentence.tokens, sentence_tags, joiner)}
            for text, sentence, sentence_tags in zip(texts, sentences, tags)]


# The registry's names (theseus/tasks/__init__.py).
RUN = NerMrcRun
SERVING = NerServing
