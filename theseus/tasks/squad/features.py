"""SQuAD features: `[CLS] question [SEP] context window [SEP]`, with the answer as positions.

* The question is cut to `max_query_length` word pieces.
* Each context word (reader.split_words) is tokenized on its own (a word that tokenizes to
  nothing becomes one "[UNK]" piece, so every word has a position); a context longer than the
  room left after the question is cut into windows of pieces, each starting `doc_stride` pieces
  after the previous one, the last one ending at the context's end.
* The answer's words become the pieces from the first piece of its first word to the last piece
  of its last word, then tightened to the pieces of the annotated text where the tokenizer allows
  (an answer "1854" inside the word "(1854)" points at "1854", not at the parentheses).
* A training window that does not hold the whole answer, and a v2.0 unanswerable question, point
  at [CLS] (position 0): "no answer in this window".
* A piece that several windows hold is decoded only in the window where it has the most context:
  the highest min(pieces before it, pieces after it in the window) + 0.01 * the window's length,
  the earlier window on equal scores.
"""

import collections
import hashlib
import json

from theseus.errors import InputDataError

# Keys of the feature dicts (all int lists); input_mask is rebuilt from input_ids in the graph.
FEATURE_KEYS = ("input_ids", "segment_ids", "start_positions", "end_positions", "feature_index")

# Bumped whenever convert_examples_to_features changes its output: old caches are rebuilt.
FEATURES_VERSION = 1

FeatureMeta = collections.namedtuple("FeatureMeta", [
    "feature_index", "example_index", "window_index", "tokens", "word_of_position",
    "max_context"
])
FeatureMeta.__doc__ = """Python-side companion of one feature (not written to the TFRecords).

  feature_index: index of the feature (its "feature_index" value).
  example_index: index of its example in the list given to convert_examples_to_features.
  window_index: which window of the example's context it holds (0, 1, ...).
  tokens: its word pieces.
  word_of_position: per position, the context word whose piece sits there, else -1.
  max_context: per position, whether this window is where that context piece has the most
    context (False outside the context).
"""


def tokenize_words(tokenizer, words):
  """(pieces, the word of each piece, the first piece of each word) of a context's words."""
  pieces, word_of_piece, first_piece = [], [], []
  cache = {}
  for w, word in enumerate(words):
    word_pieces = cache.get(word)
    if word_pieces is None:
      word_pieces = cache[word] = tokenizer.tokenize(word) or ["[UNK]"]
    first_piece.append(len(pieces))
    pieces.extend(word_pieces)
    word_of_piece.extend([w] * len(word_pieces))
  return pieces, word_of_piece, first_piece


def answer_pieces(tokenizer, answer_text, pieces, start_piece, end_piece):
  """The tightest [start, end] inside [start_piece, end_piece] whose pieces are exactly those of
  `answer_text` tokenized; the span itself when none is."""
  target = tokenizer.tokenize(answer_text)
  width = len(target)
  for start in range(start_piece, end_piece - width + 2):
    if pieces[start:start + width] == target:
      return start, start + width - 1
  return start_piece, end_piece


def make_windows(num_pieces, budget, doc_stride):
  """[(start, length)] of the windows over `num_pieces` context pieces (at least one)."""
  windows, start = [], 0
  while True:
    length = min(num_pieces - start, budget)
    windows.append((start, length))
    if start + length >= num_pieces:
      return windows
    start += min(length, doc_stride)


def best_window(windows, piece):
  """The index of the window in which context piece `piece` has the most context."""
  best, best_score = None, None
  for index, (start, length) in enumerate(windows):
    if not start <= piece < start + length:
      continue
    score = min(piece - start, start + length - 1 - piece) + 0.01 * length
    if best_score is None or score > best_score:
      best, best_score = index, score
  return best


def _query_pieces(tokenizer, question, max_query_length):
  return tokenizer.tokenize(question)[:max_query_length]


def _answer_span(tokenizer, example, pieces, first_piece):
  """The answer's [start, end] context pieces, or None (no answer / unanswerable)."""
  if example.is_impossible or example.start_word < 0:
    return None
  start = first_piece[example.start_word]
  end = (first_piece[example.end_word + 1] - 1 if example.end_word + 1 < len(first_piece)
         else len(pieces) - 1)
  return answer_pieces(tokenizer, example.answer_text, pieces, start, end)


def _window_feature(tokenizer, query, pieces, word_of_piece, windows, w, answer):
  """(feature dict without feature_index, tokens, word_of_position, max_context) of window w."""
  start, length = windows[w]
  tokens = ["[CLS]"] + query + ["[SEP]"]
  offset = len(tokens)
  tokens += pieces[start:start + length] + ["[SEP]"]
  segment_ids = [0] * offset + [1] * (length + 1)
  word_of_position = [-1] * offset + word_of_piece[start:start + length] + [-1]
  max_context = [False] * offset + [best_window(windows, p) == w
                                    for p in range(start, start + length)] + [False]
  start_position = end_position = 0
  if answer is not None and start <= answer[0] and answer[1] < start + length:
    start_position, end_position = answer[0] - start + offset, answer[1] - start + offset
  feature = {"input_ids": tokenizer.convert_tokens_to_ids(tokens), "segment_ids": segment_ids,
             "start_positions": [start_position], "end_positions": [end_position]}
  return feature, tokens, word_of_position, max_context


def convert_examples_to_features(examples, tokenizer, max_seq_length, doc_stride,
                                 max_query_length):
  """The features of SquadExamples: one per example and context window (module docstring).

  Args:
    examples: list of reader.SquadExample.
    tokenizer: a tokenization.FullTokenizer (or anything with tokenize / convert_tokens_to_ids).
    max_seq_length, doc_stride, max_query_length: as google-research/bert's flags.

  Returns:
    (features, metas): features are dicts with FEATURE_KEYS, unpadded int lists of length
    <= max_seq_length (start_positions / end_positions / feature_index: one value); metas the
    parallel FeatureMetas. Features come example by example, window by window.

  Raises:
    InputDataError: max_seq_length leaves no room for the context after a question.
  """
  features, metas = [], []
  for example_index, example in enumerate(examples):
    query = _query_pieces(tokenizer, example.question_text, max_query_length)
    budget = max_seq_length - len(query) - 3
    if budget < 1:
      raise InputDataError("--max_seq_length=%d leaves no room for the context after the %d "
                           "question pieces of question %s (lower --max_query_length)"
                           % (max_seq_length, len(query), example.qas_id))
    pieces, word_of_piece, first_piece = tokenize_words(tokenizer, example.doc_tokens)
    answer = _answer_span(tokenizer, example, pieces, first_piece)
    windows = make_windows(len(pieces), budget, doc_stride)
    for w in range(len(windows)):
      feature, tokens, word_of_position, max_context = _window_feature(
          tokenizer, query, pieces, word_of_piece, windows, w, answer)
      feature["feature_index"] = [len(features)]
      metas.append(FeatureMeta(len(features), example_index, w, tokens, word_of_position,
                               max_context))
      features.append(feature)
  return features, metas


def examples_fingerprint(examples):
  """sha1 over what the features depend on: a changed file (or slice) rebuilds the cache."""
  h = hashlib.sha1()
  for e in examples:
    h.update(json.dumps([e.qas_id, e.question_text, e.context_text, e.answer_text,
                         e.start_word, e.end_word, e.is_impossible], ensure_ascii=False
                        ).encode("utf-8"))
    h.update(b"\n")
  return h.hexdigest()
