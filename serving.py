# coding=utf-8
"""Serving an export: raw text in, labels with probabilities (or NER entities) out.

`Predictor(export_dir)` reads what the export says about its task (classifier_task.json, or
ner_task.json + ner_queries.json), builds the export's own tokenizer (its vocab, its
do_lower_case), loads one model file, and `predict(examples)` turns raw text into the results
predict.py prints. The model file is the SavedModel or one of the TFLite files (--export_tflite);
all have the same inputs (input_ids, input_mask, segment_ids [batch, length], any length) and
outputs, so the rest does not depend on which one runs.
"""

from __future__ import absolute_import
from __future__ import division
from __future__ import print_function

import json
import os
import warnings

import numpy as np
import tensorflow as tf

import classifier_task
from errors import InputDataError
import export
import ner_mrc_task
import tokenization

tf1 = tf.compat.v1

BACKENDS = ("auto", "saved_model", "tflite", "tflite_int8")
BACKEND_FILES = {"saved_model": "saved_model", "tflite": "model.tflite",
                 "tflite_int8": "model_int8.tflite"}
# `auto` runs the fastest exact backend measured for the call (benchmarks/serving.py, BENCHMARKS.md
# "Serving"): for one short example (batch 1, up to this many word pieces) the float32 TFLite file,
# when the export has it (4.9 ms against 5.8 for the SavedModel, 3-layer successor, SST-2 dev);
# for batches and long examples the SavedModel (380 sentences/s at batch 32 against 170).
AUTO_TFLITE_MAX_LENGTH = 64


class SavedModelRunner(object):
  """The export's SavedModel in a session: inputs dict -> outputs dict of arrays."""

  def __init__(self, saved_model_dir, num_threads=0):
    config = tf1.ConfigProto()
    if num_threads:
      config.intra_op_parallelism_threads = config.inter_op_parallelism_threads = num_threads
    self.sess, self._predict = export.load_saved_model_predictor(saved_model_dir, config)

  def __call__(self, inputs):
    return self._predict(inputs)

  def close(self):
    self.sess.close()


class TFLiteRunner(object):
  """A TFLite file's serving_default signature: inputs dict -> outputs dict of arrays."""

  def __init__(self, path, num_threads=0):
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")  # tf.lite.Interpreter's notice about LiteRT
      self.interpreter = tf.lite.Interpreter(model_path=path, num_threads=num_threads or None)
    self._run = self.interpreter.get_signature_runner(export.SIGNATURE_KEY)

  def __call__(self, inputs):
    return self._run(**inputs)

  def close(self):
    pass


def make_runner(export_dir, backend, num_threads=0):
  """The runner of one backend (not auto) of an export.

  Raises:
    InputDataError: the export has no such model file.
  """
  if backend not in BACKEND_FILES:
    raise InputDataError("unknown backend %r (choose from %s)" % (backend, ", ".join(BACKENDS)))
  path = os.path.join(export_dir, BACKEND_FILES[backend])
  if not os.path.exists(path):
    raise InputDataError("the export has no %s (export with --export_tflite, or run "
                         "convert_checkpoint.py --mode=tflite --export_dir=...)"
                         % BACKEND_FILES[backend], export_dir)
  if backend == "saved_model":
    return SavedModelRunner(path, num_threads)
  return TFLiteRunner(path, num_threads)


def pad_batch(features):
  """Model inputs of feature dicts, padded to the longest: input_ids / input_mask / segment_ids."""
  length = max(len(f["input_ids"]) for f in features)
  batch = {name: np.zeros((len(features), length), np.int32) for name in export.INPUT_NAMES}
  for i, feature in enumerate(features):
    n = len(feature["input_ids"])
    batch["input_ids"][i, :n] = feature["input_ids"]
    batch["input_mask"][i, :n] = 1
    batch["segment_ids"][i, :n] = feature["segment_ids"]
  return batch


def _read_json(path):
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except ValueError as e:
    raise InputDataError("not valid JSON (%s)" % e, path)


def _export_tokenizer(export_dir, do_lower_case):
  """The tokenizer of the vocab file the export carries (vocab.txt or a SentencePiece .model)."""
  models = [n for n in os.listdir(export_dir) if n.endswith(".model")]
  if models:
    return tokenization.SentencePieceTokenizer(os.path.join(export_dir, models[0]), do_lower_case)
  return tokenization.FullTokenizer(os.path.join(export_dir, "vocab.txt"), do_lower_case)


class Predictor(object):
  """An export loaded once; predict(examples) for as many batches as needed.

  Args:
    export_dir: the export directory.
    backend: one of BACKENDS ("auto": per call, the fastest exact one the export has).
    num_threads: threads of the runtime (0: its choice).

  Raises:
    InputDataError: not an export of run_classifier.py / run_ner_mrc.py, or no such model file.
  """

  def __init__(self, export_dir, backend="auto", num_threads=0):
    if not os.path.isdir(export_dir):
      raise InputDataError("export directory not found", export_dir)
    classifier_file = os.path.join(export_dir, classifier_task.EXPORT_TASK_FILE)
    ner_file = os.path.join(export_dir, ner_mrc_task.EXPORT_TASK_FILE)
    if os.path.exists(classifier_file):
      self.kind, self.task = "classifier", _read_json(classifier_file)
    elif os.path.exists(ner_file):
      self.kind, self.task = "ner", _read_json(ner_file)
      self.queries = ner_mrc_task.load_queries(
          os.path.join(export_dir, ner_mrc_task.EXPORT_QUERIES_FILE))
    else:
      raise InputDataError("not an export of run_classifier.py or run_ner_mrc.py (no %s or %s)"
                           % (classifier_task.EXPORT_TASK_FILE, ner_mrc_task.EXPORT_TASK_FILE),
                           export_dir)
    self.tokenizer = _export_tokenizer(export_dir, self.task["do_lower_case"])
    if backend not in BACKENDS:
      raise InputDataError("unknown backend %r (choose from %s)" % (backend, ", ".join(BACKENDS)))
    self.export_dir, self.backend, self.num_threads = export_dir, backend, num_threads
    self.runners = {}  # backend -> runner, loaded on first use
    if backend != "auto":
      self._runner(backend)
    self.last_backend = None

  def _runner(self, backend):
    if backend not in self.runners:
      self.runners[backend] = make_runner(self.export_dir, backend, self.num_threads)
    return self.runners[backend]

  def run(self, batch):
    """Model outputs of a padded batch, from the backend chosen for it (see AUTO_TFLITE_*)."""
    backend = self.backend
    if backend == "auto":
      ids = batch["input_ids"]
      short_single = ids.shape[0] == 1 and ids.shape[1] <= AUTO_TFLITE_MAX_LENGTH
      has_tflite = os.path.exists(os.path.join(self.export_dir, BACKEND_FILES["tflite"]))
      backend = "tflite" if short_single and has_tflite else "saved_model"
    self.last_backend = backend
    return self._runner(backend)(batch)

  def predict(self, examples):
    """A list of raw-text examples -> a list of prediction dicts (see predict.py)."""
    if self.kind == "ner":
      return self._recognize(examples)
    return self._classify(examples)

  def _classify(self, examples):
    task = self.task
    labels = task["labels"]
    parsed = [self._classifier_example(i, text) for i, text in enumerate(examples)]
    features = [classifier_task.convert_single_example(
        i, example, labels, task["max_seq_length"], self.tokenizer, task["is_regression"])
                for i, example in enumerate(parsed)]
    outputs = self.run(pad_batch(features))
    results = []
    for i, example in enumerate(parsed):
      result = {"text": example.text_a}
      if example.text_b is not None:
        result["text_b"] = example.text_b
      if task["is_regression"]:
        result["value"] = float(outputs["predictions"][i])
      else:
        probabilities = outputs["probabilities"][i]
        result["label"] = labels[int(np.argmax(probabilities))]
        result["probabilities"] = {label: float(p) for label, p in zip(labels, probabilities)}
      results.append(result)
    return results

  def _classifier_example(self, index, text):
    """An InputExample of one raw line: a sentence, or a tab-separated pair for pair tasks."""
    parts = text.split("\t")
    if self.task.get("text_pairs"):
      if len(parts) != 2 or not all(p.strip() for p in parts):
        raise InputDataError("example %d: this task reads sentence pairs: two texts separated "
                             "by one tab" % (index + 1))
      return classifier_task.InputExample("predict-%d" % index, parts[0], parts[1])
    if not text.strip():
      raise InputDataError("example %d is empty" % (index + 1))
    return classifier_task.InputExample("predict-%d" % index, " ".join(parts))

  def _recognize(self, texts):
    """Entities of plain sentences (words by spaces; characters for the Chinese formats)."""
    task = self.task
    words_by_space = task["data_format"] == "conll2003"
    sentences = []
    for i, text in enumerate(texts):
      tokens = text.split() if words_by_space else [c for c in text if not c.isspace()]
      if not tokens:
        raise InputDataError("example %d is empty" % (i + 1))
      sentences.append(ner_mrc_task.NerSentence(tokens, ["O"] * len(tokens), i + 1))
    features, metas = ner_mrc_task.convert_sentences_to_features(
        sentences, self.queries, self.tokenizer, task["max_seq_length"], task["doc_stride"])
    outputs = self.run(pad_batch(features))
    lengths = [len(f["input_ids"]) for f in features]
    tags = ner_mrc_task.decode_sentence_predictions(
        sentences, metas, [p[:n] for p, n in zip(outputs["start_probs"], lengths)],
        [p[:n] for p, n in zip(outputs["end_probs"], lengths)],
        threshold=task["span_threshold"], max_span_length=task["max_span_length"] or None,
        entity_types=list(self.queries))
    joiner = " " if words_by_space else ""
    return [{"text": text, "tokens": sentence.tokens,
             "entities": [{"type": t, "start": s, "end": e,
                           "text": joiner.join(sentence.tokens[s:e + 1])}
                          for t, s, e in ner_mrc_task.bio_to_spans(sentence_tags)]}
            for text, sentence, sentence_tags in zip(texts, sentences, tags)]

  def close(self):
    for runner in self.runners.values():
      runner.close()
