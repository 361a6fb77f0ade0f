# coding=utf-8
"""Question answering on SQuAD v1.1 / v2.0: the task's settings, its part of a run, its
prediction files and its serving (run_squad.py is its command line).

The model reads `[CLS] question [SEP] context window [SEP]` and scores every position as the
answer's start and end (head.py, google-research/bert's head); decoding.py turns the scores of an
example's windows into answer texts; metrics.py scores them as the official scripts do.
Importing it defines no flags.
"""

import dataclasses
import json
import os
from typing import Optional

from absl import logging

from theseus import files
from theseus.config import declare
from theseus.config.declare import setting
from theseus.errors import InputDataError
from theseus.errors import TrainingError
from theseus.tasks import base
from theseus.tasks.squad import decoding
from theseus.tasks.squad import features as features_lib
from theseus.tasks.squad import head
from theseus.tasks.squad import metrics
from theseus.tasks.squad import reader
from theseus.training import evaluation
from theseus.training import input_pipeline

KIND = "squad"
EXPORT_TASK_FILE = "squad_task.json"  # written into every export (SquadRun.export_files)
# The files of answers google-research/bert's run_squad.py writes (null_odds: v2.0 only).
PREDICTIONS_FILE, NBEST_FILE, NULL_ODDS_FILE = ("predictions.json", "nbest_predictions.json",
                                                "null_odds.json")


@dataclasses.dataclass(frozen=True)
class SquadSettings:
  """google-research/bert's run_squad.py flags (same names, defaults and meanings)."""
  train_file: Optional[str] = setting(None, "SQuAD json for training, e.g. train-v1.1.json.")
  predict_file: Optional[str] = setting(
      None, "SQuAD json for predictions (and --do_eval, which needs its answers), e.g. "
      "dev-v1.1.json.")
  doc_stride: int = setting(128, "When splitting up a long document into chunks, how much "
                            "stride to take between chunks (word pieces).", minimum=1)
  max_query_length: int = setting(64, "The maximum number of word pieces of a question; "
                                  "longer ones are truncated.", minimum=1)
  n_best_size: int = setting(20, "The total number of n-best predictions to generate in "
                             "nbest_predictions.json.", minimum=1)
  max_answer_length: int = setting(30, "The maximum length of an answer that can be generated "
                                   "(word pieces).", minimum=1)
  version_2_with_negative: bool = setting(False, "The SQuAD examples may have no answer "
                                          "(SQuAD 2.0).")
  null_score_diff_threshold: float = setting(0.0, "If null_score - best_non_null is greater "
                                             "than the threshold, predict null (SQuAD 2.0).")
  verbose_logging: bool = setting(False, "google-research/bert's flag: log the first features "
                                  "made.")


# The defaults run_squad.py gives shared flags (google-research/bert's run_squad.py).
FLAG_DEFAULTS = {"max_seq_length": 384}


def write_answers(output_dir, answers):
  """predictions.json, nbest_predictions.json and (v2.0) null_odds.json; their paths."""
  predictions, nbest, null_odds = answers
  written = []
  for name, value in ((PREDICTIONS_FILE, predictions), (NBEST_FILE, nbest),
                      (NULL_ODDS_FILE, null_odds)):
    if value is None:
      continue
    path = os.path.join(output_dir, name)
    files.atomic_write_text(path, json.dumps(value, ensure_ascii=False, indent=2) + "\n")
    written.append(path)
  logging.info("Wrote the answers to %d questions to %s", len(predictions), written[0])
  return written


class SquadRun(base.TaskRun):
  """SQuAD's part of a run (see base.TaskRun). Its data files are --train_file and
  --predict_file (no --data_dir); --max_train_examples / --max_eval_examples count questions."""

  KIND = KIND
  SETTINGS = SquadSettings
  NEEDS_DATA_DIR = False
  FLAG_DEFAULTS = FLAG_DEFAULTS

  def __init__(self, settings, model, data, output_dir):
    super(SquadRun, self).__init__(settings, model, data, output_dir)
    self.tokenizer = None
    self.examples = {}  # "train" / "dev" / "test" -> SquadExamples

  def check_settings(self):
    declare.check_ranges(self.settings)
    room = self.model.max_seq_length - self.settings.max_query_length - 3
    if room < 1:
      raise InputDataError("--max_seq_length=%d leaves no room for the context after "
                           "--max_query_length=%d and 3 special tokens"
                           % (self.model.max_seq_length, self.settings.max_query_length))

  def _read(self, flag, need_answers, limit):
    path = getattr(self.settings, flag)
    if not path:
      raise InputDataError("--%s is required with %s" % (
          flag, "--do_train" if flag == "train_file" else "--do_eval / --do_predict"))
    examples, skipped, version = reader.read_squad_file(path, need_answers,
                                                        self.data.skip_bad_rows, limit)
    for problem in skipped[:5]:
      logging.warning("Skipping bad question: %s", problem)
    impossible = [e for e in examples if e.is_impossible]
    if impossible and not self.settings.version_2_with_negative:
      raise InputDataError("question %s is unanswerable (is_impossible): this is a SQuAD 2.0 "
                           "file; pass --version_2_with_negative" % impossible[0].qas_id, path)
    logging.info("Read %d questions from %s (SQuAD %s%s)", len(examples), path, version or "?",
                 ", %d bad ones skipped" % len(skipped) if skipped else "")
    return examples

  def read_data(self, tokenizer, sets):
    """Reads (and validates) --train_file for "train", --predict_file for "dev" and "test"."""
    self.tokenizer = tokenizer
    if "train" in sets:
      self.examples["train"] = self._read("train_file", True, self.data.max_train_examples)
    if "dev" in sets:
      self.examples["dev"] = self._read("predict_file", True, self.data.max_eval_examples)
    if "test" in sets:
      self.examples["test"] = self._read("predict_file", False, 0)

  def decode(self, examples, metas, rows):
    """(predictions, nbest, null_odds) of the evaluated rows of `examples`' features."""
    if len(rows) != len(metas):
      raise TrainingError("evaluation saw %d of %d features" % (len(rows), len(metas)))
    s = self.settings
    return decoding.decode_examples(
        examples, metas, [r["start_logits"] for r in rows], [r["end_logits"] for r in rows],
        s.n_best_size, s.max_answer_length, s.version_2_with_negative,
        s.null_score_diff_threshold, self.tokenizer.convert_tokens_to_string,
        self.model.do_lower_case)

  def score(self, examples, answers):
    """The official scripts' figures, "exact_match" and "f1" in percent; main metric f1."""
    predictions, _, null_odds = answers
    if self.settings.version_2_with_negative:
      result = dict(metrics.squad_v2_metrics(examples, predictions, null_odds))
      result["exact_match"] = result["exact"]
    else:
      result = metrics.squad_v1_metrics(examples, predictions)
    result["main_metric"] = "f1"
    return result

  def make_task(self, examples=(), metas=()):
    examples, metas = list(examples), list(metas)
    return head.make_task(lambda rows: self.decode(examples, metas, rows),
                          lambda answers: self.score(examples, answers))

  def feature_cache(self, name, examples, sort_by_length, with_metas):
    """(tfrecord path, number of features, metas or None) of `examples`; the cache is keyed by
    what the features depend on, the metas (python-side) are rebuilt when asked for."""
    s = self.settings
    key = {"name": name, "examples": features_lib.examples_fingerprint(examples),
           "vocab": files.file_digest(self.model.vocab_path),
           "do_lower_case": self.model.do_lower_case,
           "max_seq_length": self.model.max_seq_length, "doc_stride": s.doc_stride,
           "max_query_length": s.max_query_length,
           "features_version": features_lib.FEATURES_VERSION}

    def convert():
      features, metas = features_lib.convert_examples_to_features(
          examples, self.tokenizer, self.model.max_seq_length, s.doc_stride, s.max_query_length)
      if s.verbose_logging:
        for meta in metas[:5]:
          logging.info("feature %d (question %s, window %d): %s", meta.feature_index,
                       examples[meta.example_index].qas_id, meta.window_index,
                       " ".join(meta.tokens))
      return features, metas

    task = self.make_task()
    path, n, built = input_pipeline.cached_features_with_metas(
        self.data.cache_dir, name, key, convert, task.int_keys, task.float_keys, sort_by_length,
        with_metas)
    return path, n, built[1] if built else None

  def _feature_set(self, name):
    examples = self.examples[name]
    path, _, metas = self.feature_cache(name, examples, True, True)
    return base.FeatureSet(name, self.make_task(examples, metas), path, examples)

  def train_inputs(self, with_dev, augment_copies=0, seed=0):
    del seed
    if augment_copies:
      raise InputDataError("--kd_augment: SQuAD has no text augmentation (a changed context "
                           "would move its answers); use it with a classification task")
    train_path, num_features, _ = self.feature_cache("train", self.examples["train"], False,
                                                     False)
    if not with_dev:
      return self.make_task(), train_path, num_features, None
    dev = self._feature_set("dev")
    return dev.task, train_path, num_features, dev.path

  def eval_sets(self):
    return [self._feature_set("dev")]

  def eval_outputs(self, feature_set, predictions):
    """Writes predictions.json, nbest_predictions.json (and null_odds.json)."""
    write_answers(self.output_dir, predictions)
    return {"num_questions": len(feature_set.data)}

  def predict_set(self):
    return self._feature_set("test")

  def write_predictions(self, feature_set, rows, checkpoint, seconds):
    """google-research/bert's answer files; test_results when every question has answers."""
    answers = feature_set.task.decode(rows)
    written = write_answers(self.output_dir, answers)
    results = {"predictions_file": written[0], "predict_seconds": seconds}
    if all(e.gold_answers or e.is_impossible for e in feature_set.data):
      scores = feature_set.task.score(answers)
      scores.update(checkpoint=checkpoint, predict_seconds=seconds)
      evaluation.write_eval_results(self.output_dir, "test", scores)
      results["metrics"] = scores
    return results

  def export_spec(self):
    return self.make_task()

  def export_files(self):
    """squad_task.json: what predict.py needs to answer questions as run_squad.py does."""
    s = self.settings
    task = {"max_seq_length": self.model.max_seq_length, "doc_stride": s.doc_stride,
            "max_query_length": s.max_query_length, "n_best_size": s.n_best_size,
            "max_answer_length": s.max_answer_length,
            "version_2_with_negative": s.version_2_with_negative,
            "null_score_diff_threshold": s.null_score_diff_threshold,
            "do_lower_case": self.model.do_lower_case,
            "serving_outputs": list(head.OUTPUT_KEYS)}
    return {EXPORT_TASK_FILE: json.dumps(task, indent=1) + "\n"}


class SquadServing(base.ServingTask):
  """`question<TAB>context` lines -> the answer, cut from the context, with its probability."""

  TASK_FILE = EXPORT_TASK_FILE
  REQUIRED_KEYS = ("max_seq_length", "doc_stride", "max_query_length", "n_best_size",
                   "max_answer_length", "version_2_with_negative", "null_score_diff_threshold",
                   "do_lower_case")

  def features(self, texts, locations=None):
    info = self.task_info
    examples = []
    for i, text in enumerate(texts):
      parts = text.split("\t")
      if len(parts) != 2 or not all(p.strip() for p in parts):
        raise base.example_error(": a question and its context separated by one tab", i,
                                 locations)
      words, starts, _ = reader.split_words(parts[1])
      examples.append(reader.SquadExample(str(i), parts[0], parts[1], words, starts, None, -1,
                                          -1, False, []))
    feature_list, metas = features_lib.convert_examples_to_features(
        examples, self.tokenizer, info["max_seq_length"], info["doc_stride"],
        info["max_query_length"])
    return feature_list, (examples, feature_list, metas)

  def results(self, texts, state, outputs):
    examples, feature_list, metas = state
    info = self.task_info
    lengths = [len(f["input_ids"]) for f in feature_list]
    _, nbest, null_odds = decoding.decode_examples(
        examples, metas, [l[:n] for l, n in zip(outputs["start_logits"], lengths)],
        [l[:n] for l, n in zip(outputs["end_logits"], lengths)], info["n_best_size"],
        info["max_answer_length"], info["version_2_with_negative"],
        info["null_score_diff_threshold"], self.tokenizer.convert_tokens_to_string,
        info["do_lower_case"])
    results = []
    for example in examples:
      best = next(e for e in nbest[example.qas_id] if e["text"])
      result = {"question": example.question_text, "answer": best["text"],
                "start": best["char_start"], "end": best["char_end"],
                "probability": best["probability"]}
      if null_odds is not None:
        result["null_odds"] = null_odds[example.qas_id]
        if null_odds[example.qas_id] > info["null_score_diff_threshold"]:
          result.update(answer="", start=-1, end=-1)
      results.append(result)
    return results


# The registry's names (theseus/tasks/registry.py).
RUN = SquadRun
SERVING = SquadServing
