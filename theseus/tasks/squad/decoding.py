"""Start / end logits of an example's windows -> its n best answers, as text of the context.

Per example, every window proposes the pairs of its `n_best_size` highest start and end logits
that make an answer: both inside the context, start <= end, at most `max_answer_length` pieces,
and the start piece in the window where it has the most context. A pair scores start + end
logit; the best distinct answer texts, with a softmax over their scores, are the n best.

v2.0: each window's [CLS] pair (start logit + end logit at position 0) scores "no answer"; the
lowest of them over the windows is the example's null score. The answer is "" when
null score - best answer's score > null_score_diff_threshold; that difference is written to
null_odds.json.

An answer's text is cut from the context itself: the words its pieces cover, narrowed to the
characters that spell the pieces (compared lower-cased and without accents when the tokenizer
lower-cases, whitespace ignored), so "(1854)," yields "1854" and "Café" keeps its accent.
"""

import collections
import unicodedata

import numpy as np

Candidate = collections.namedtuple("Candidate", ["score", "start_logit", "end_logit",
                                                 "feature", "start", "end"])


def _top_positions(logits, n):
  """The positions of the n highest logits, highest first (ties: the lower position)."""
  logits = np.asarray(logits)
  order = np.argsort(-logits, kind="stable")
  return [int(i) for i in order[:n]]


def candidates(meta, start_logits, end_logits, n_best_size, max_answer_length):
  """The valid (start, end) pairs of one feature, as Candidates."""
  found = []
  for start in _top_positions(start_logits, n_best_size):
    for end in _top_positions(end_logits, n_best_size):
      if meta.word_of_position[start] < 0 or meta.word_of_position[end] < 0:
        continue
      if not meta.max_context[start] or end < start or end - start + 1 > max_answer_length:
        continue
      found.append(Candidate(float(start_logits[start]) + float(end_logits[end]),
                             float(start_logits[start]), float(end_logits[end]), meta,
                             start, end))
  return found


def _normalized_chars(text, lower):
  """(the characters of `text` as the tokenizer sees them, whitespace dropped; for each, the
  index in `text` it came from)."""
  chars, origin = [], []
  for i, char in enumerate(text):
    if char.isspace():
      continue
    if lower:
      char = "".join(c for c in unicodedata.normalize("NFD", char.lower())
                     if unicodedata.category(c) != "Mn")
    for c in char:
      chars.append(c)
      origin.append(i)
  return "".join(chars), origin


def answer_text(example, meta, start, end, pieces_to_text, lower):
  """(text, first character, end character) in the context of the pieces [start, end]."""
  first_word, last_word = meta.word_of_position[start], meta.word_of_position[end]
  begin = example.word_char_starts[first_word]
  finish = example.word_char_starts[last_word] + len(example.doc_tokens[last_word])
  covered = example.context_text[begin:finish]
  spelled = "".join(pieces_to_text(meta.tokens[start:end + 1]).split())
  if lower:
    spelled = spelled.lower()
  normalized, origin = _normalized_chars(covered, lower)
  at = normalized.find(spelled) if spelled else -1
  if at < 0:
    return covered, begin, finish
  first, last = origin[at], origin[at + len(spelled) - 1]
  return covered[first:last + 1], begin + first, begin + last + 1


def _softmax(scores):
  scores = np.asarray(scores, dtype=np.float64)
  exp = np.exp(scores - scores.max())
  return exp / exp.sum()


def _null_score(logits):
  """(the lowest [CLS] start + end logit over an example's features, its start and end logit)."""
  best = None
  for start_logits, end_logits in logits:
    score = float(start_logits[0]) + float(end_logits[0])
    if best is None or score < best[0]:
      best = (score, float(start_logits[0]), float(end_logits[0]))
  return best


def _entry(text, begin, finish, candidate):
  return {"text": text, "start_logit": candidate.start_logit, "end_logit": candidate.end_logit,
          "char_start": begin, "char_end": finish, "score": candidate.score}


def _n_best(example, found, null, n_best_size, pieces_to_text, lower):
  """The n best distinct answer texts of an example, as nbest_predictions.json entries.

  `null` (v2.0; else None) is the no-answer Candidate: it competes, and is added after the n
  best when it did not make them. An example without any answer gets the answer "empty".
  """
  entries, seen = [], set()
  for candidate in sorted(found + ([null] if null else []), key=lambda c: c.score,
                          reverse=True):
    if len(entries) >= n_best_size:
      break
    if candidate is null:
      text, begin, finish = "", -1, -1
    else:
      text, begin, finish = answer_text(example, candidate.feature, candidate.start,
                                        candidate.end, pieces_to_text, lower)
    if text not in seen:
      seen.add(text)
      entries.append(_entry(text, begin, finish, candidate))
  if null and "" not in seen:
    entries.append(_entry("", -1, -1, null))
  if not any(e["text"] for e in entries):
    entries.insert(0, _entry("empty", -1, -1, Candidate(0.0, 0.0, 0.0, None, 0, 0)))
  for entry, probability in zip(entries, _softmax([e["score"] for e in entries])):
    entry["probability"] = float(probability)
  return entries


def decode_examples(examples, metas, start_logits, end_logits, n_best_size, max_answer_length,
                    version_2, null_score_diff_threshold, pieces_to_text, lower):
  """Answers of every example.

  Args:
    examples: the reader.SquadExamples the features were made from.
    metas: features.FeatureMetas, one per feature; start_logits, end_logits: per feature, a
      float array over its positions.
    n_best_size, max_answer_length, version_2, null_score_diff_threshold: google-research/bert's
      flags of the same names.
    pieces_to_text: the tokenizer's convert_tokens_to_string; lower: it lower-cases.

  Returns:
    (predictions {qas_id: text}, nbest {qas_id: [entries]}, null_odds {qas_id: score diff} or
    None for v1.1), OrderedDicts in the order of `examples`.
  """
  by_example = collections.defaultdict(list)
  for meta, start, end in zip(metas, start_logits, end_logits):
    by_example[meta.example_index].append((meta, (start, end)))
  predictions, nbest = collections.OrderedDict(), collections.OrderedDict()
  null_odds = collections.OrderedDict() if version_2 else None
  for index, example in enumerate(examples):
    features = by_example.get(index, [])
    found, null = [], None
    for meta, (start, end) in features:
      found.extend(candidates(meta, start, end, n_best_size, max_answer_length))
    if version_2 and features:
      null = Candidate(*_null_score([logits for _, logits in features]), None, 0, 0)
    entries = _n_best(example, found, null, n_best_size, pieces_to_text, lower)
    nbest[example.qas_id] = entries
    best = next(e for e in entries if e["text"])
    if not version_2:
      predictions[example.qas_id] = best["text"]
      continue
    diff = (null.score if null else 0.0) - best["start_logit"] - best["end_logit"]
    null_odds[example.qas_id] = diff
    predictions[example.qas_id] = "" if diff > null_score_diff_threshold else best["text"]
  return predictions, nbest, null_odds
