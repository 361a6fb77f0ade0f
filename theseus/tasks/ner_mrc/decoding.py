"""From pointer probabilities to entities, and the entity-level metric.

Every word takes its start/end probabilities from the window in which it is most central
(BERT-SQuAD's "max context" rule, counted in words: min(words to its left, words to its right) +
0.01 * window length; ties go to the earlier window); spans are decoded on the whole sentence
(each predicted start paired with the nearest predicted end at or after it), so an entity may
cross windows; the per-type spans of a sentence are merged into one BIO sequence
(`resolve_overlaps`) and scored conlleval-style (`ner_metrics`).
"""

import collections

import numpy as np

from theseus.tasks.ner_mrc.tags import bio_to_spans
from theseus.tasks.ner_mrc.tags import spans_to_bio


def sigmoid(x):
  """Numerically stable logistic function on numpy arrays."""
  x = np.asarray(x, dtype=np.float64)
  return np.where(x >= 0, 1.0 / (1.0 + np.exp(-np.abs(x))),
                  np.exp(-np.abs(x)) / (1.0 + np.exp(-np.abs(x))))


def decode_spans(start_probs, end_probs, context_mask=None, threshold=0.5,
                 max_span_length=None):
  """Pairs predicted starts with the nearest predicted end (one entity type).

  Only positions with context_mask 1 are considered; they are the "words", in order. A word is
  a predicted start when start_prob > threshold, a predicted end when end_prob > threshold. Each
  start pairs with the nearest end at or after it that keeps the span within
  `max_span_length` words; a start without such an end is dropped. Spans of one type may
  overlap here (two starts before one end); `resolve_overlaps` settles that.

  Args:
    start_probs, end_probs: float arrays [T].
    context_mask: optional int array [T] (None: all positions).
    threshold: probability threshold.
    max_span_length: the most words of a span (None: no limit).

  Returns:
    list of (start, end_inclusive, score) in positions of the input arrays, score =
    start_prob * end_prob, in order of start.
  """
  start_probs = np.asarray(start_probs, dtype=np.float64)
  end_probs = np.asarray(end_probs, dtype=np.float64)
  if context_mask is None:
    positions = np.arange(len(start_probs))
  else:
    positions = np.nonzero(np.asarray(context_mask)[:len(start_probs)])[0]
  is_start = start_probs[positions] > threshold
  is_end = end_probs[positions] > threshold
  end_words = np.nonzero(is_end)[0]
  spans = []
  for k in np.nonzero(is_start)[0]:
    j = np.searchsorted(end_words, k)
    if j >= len(end_words):
      continue
    e = end_words[j]
    if max_span_length is not None and e - k + 1 > max_span_length:
      continue
    start, end = int(positions[k]), int(positions[e])
    spans.append((start, end, float(start_probs[start] * end_probs[end])))
  return spans


def resolve_overlaps(typed_spans, entity_types=None):
  """Keeps a set of non-overlapping spans out of the candidates of all entity types.

  Greedy: candidates are taken by higher score (start_prob * end_prob), then earlier start,
  then shorter span, then the order of `entity_types` (else the type name); a candidate that
  overlaps one already kept is dropped.

  Args:
    typed_spans: iterable of (entity_type, start, end_inclusive, score).
    entity_types: optional list giving the type order for ties.

  Returns:
    list of (entity_type, start, end_inclusive, score) in order of start.
  """
  order = {t: i for i, t in enumerate(entity_types or [])}

  def _key(span):
    entity_type, start, end, score = span
    return (-score, start, end - start, order.get(entity_type, len(order)), entity_type)

  kept = []
  taken = set()
  for span in sorted(typed_spans, key=_key):
    positions = range(span[1], span[2] + 1)
    if any(p in taken for p in positions):
      continue
    taken.update(positions)
    kept.append(tuple(span))
  return sorted(kept, key=lambda s: (s[1], s[2]))


def _max_context_score(word, window_start, window_end):
  return min(word - window_start, window_end - 1 - word) + 0.01 * (window_end - window_start)


def word_level_probs(metas, start_probs, end_probs, num_sentences=None):
  """Gathers per-window piece-level probabilities into per-sentence word-level ones.

  Every word takes the probabilities of the first piece of its window with the best
  "max context" score (see the module docstring).

  Args:
    metas: list of FeatureMeta (all or some features).
    start_probs, end_probs: sequences (or dicts) indexed by feature_index; item: float array
      [L'] with L' >= the feature's length (padding beyond it is ignored).
    num_sentences: number of sentences (default: 1 + the largest sentence_index).

  Returns:
    list (per sentence) of dicts entity_type -> (start word probs [n], end word probs [n]);
    words no feature covers keep probability 0.
  """
  if num_sentences is None:
    num_sentences = 1 + max([m.sentence_index for m in metas] or [-1])
  result = [dict() for _ in range(num_sentences)]
  best = [dict() for _ in range(num_sentences)]
  for meta in metas:
    per_type = result[meta.sentence_index]
    if meta.entity_type not in per_type:
      per_type[meta.entity_type] = (np.zeros(meta.num_words), np.zeros(meta.num_words))
      best[meta.sentence_index][meta.entity_type] = np.full(meta.num_words, -np.inf)
    word_start, word_end = per_type[meta.entity_type]
    word_best = best[meta.sentence_index][meta.entity_type]
    feature_start = np.asarray(start_probs[meta.feature_index])
    feature_end = np.asarray(end_probs[meta.feature_index])
    for position, word in enumerate(meta.word_index_of_piece):
      if word < 0:
        continue
      score = _max_context_score(word, meta.window_start_word, meta.window_end_word)
      if score > word_best[word]:
        word_best[word] = score
        word_start[word] = feature_start[position]
        word_end[word] = feature_end[position]
  return result


def decode_sentence_predictions(sentences, metas, start_probs, end_probs, threshold=0.5,
                                max_span_length=None, entity_types=None):
  """Turns the pointer probabilities of all features into BIO tags per sentence.

  Word-level probabilities come from `word_level_probs` (max-context window per word), spans
  from `decode_spans` per entity type on the whole sentence, and `resolve_overlaps` merges the
  types.

  Args:
    sentences: list of NerSentence (only their lengths are used).
    metas: list of FeatureMeta from convert_sentences_to_features.
    start_probs, end_probs: indexed by feature_index, float arrays [L'] of sigmoid(logits).
    threshold: probability threshold of a start / end.
    max_span_length: the most words of an entity (None: no limit).
    entity_types: optional type order for ties (the order of the query map).

  Returns:
    list (per sentence) of lists of BIO tags.
  """
  probs = word_level_probs(metas, start_probs, end_probs, num_sentences=len(sentences))
  predictions = []
  for sentence, per_type in zip(sentences, probs):
    candidates = []
    for entity_type, (word_start, word_end) in per_type.items():
      for start, end, score in decode_spans(word_start, word_end, None, threshold,
                                            max_span_length):
        candidates.append((entity_type, start, end, score))
    kept = resolve_overlaps(candidates, entity_types)
    predictions.append(spans_to_bio(kept, len(sentence.tokens)))
  return predictions



def _prf(num_correct, num_pred, num_gold):
  precision = num_correct / num_pred if num_pred else 0.0
  recall = num_correct / num_gold if num_gold else 0.0
  f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
  return precision, recall, f1


def ner_metrics(gold_tag_seqs, pred_tag_seqs):
  """Entity-level precision / recall / F1 (conlleval): type and both boundaries must match.

  Entities are read with `bio_to_spans` (a stray I- starts an entity, as in conlleval).
  Precision is 0 when nothing is predicted, recall 0 when there is no gold entity.

  Args:
    gold_tag_seqs, pred_tag_seqs: lists (same length) of BIO tag lists (same lengths).

  Returns:
    dict: "precision", "recall", "f1" (micro over all entities), "num_gold", "num_pred",
    "num_correct", and "per_type": {type: {"precision", "recall", "f1", "support" (number of
    gold entities), "num_pred", "num_correct"}} for every type seen in gold or predictions.
  """
  if len(gold_tag_seqs) != len(pred_tag_seqs):
    raise ValueError("%d gold sentences but %d predicted" % (len(gold_tag_seqs),
                                                             len(pred_tag_seqs)))
  gold_counts = collections.Counter()
  pred_counts = collections.Counter()
  correct_counts = collections.Counter()
  for i, (gold, pred) in enumerate(zip(gold_tag_seqs, pred_tag_seqs)):
    if len(gold) != len(pred):
      raise ValueError("sentence %d: %d gold tags but %d predicted" % (i, len(gold), len(pred)))
    gold_spans = set(bio_to_spans(gold))
    pred_spans = set(bio_to_spans(pred))
    for span in gold_spans:
      gold_counts[span[0]] += 1
    for span in pred_spans:
      pred_counts[span[0]] += 1
      if span in gold_spans:
        correct_counts[span[0]] += 1
  num_gold = sum(gold_counts.values())
  num_pred = sum(pred_counts.values())
  num_correct = sum(correct_counts.values())
  precision, recall, f1 = _prf(num_correct, num_pred, num_gold)
  per_type = {}
  for entity_type in sorted(set(gold_counts) | set(pred_counts)):
    p, r, f = _prf(correct_counts[entity_type], pred_counts[entity_type],
                   gold_counts[entity_type])
    per_type[entity_type] = {
        "precision": p, "recall": r, "f1": f, "support": gold_counts[entity_type],
        "num_pred": pred_counts[entity_type], "num_correct": correct_counts[entity_type]}
  return {"precision": precision, "recall": recall, "f1": f1, "num_gold": num_gold,
          "num_pred": num_pred, "num_correct": num_correct, "per_type": per_type}



def flatten_metrics(metrics):
  """Adds precision_X / recall_X / f1_X / support_X for every entity type X (kept nested too)."""
  out = dict(metrics)
  for entity_type, values in metrics.get("per_type", {}).items():
    for key in ("precision", "recall", "f1", "support"):
      out["%s_%s" % (key, entity_type)] = values[key]
  out["main_metric"] = "f1"
  return out

