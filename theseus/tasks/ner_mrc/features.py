"""MRC features of NER sentences: one per sentence, entity type and window.

Each word (English) or character (Chinese) of the context is tokenized on its own; only the
FIRST word piece of a word carries the word's start/end labels and takes part in the loss and in
decoding (`context_mask` = 1 there, 0 on the query, [CLS], [SEP], continuation pieces and
padding). A word that tokenizes to nothing (e.g. a control character) becomes one "[UNK]" piece,
so that every word has a position.

Windows. A context longer than `max_seq_length` is cut into windows of whole words; a window
takes as many words as fit and the next window starts `doc_stride` words later (never later
than the end of the previous window, so no word is left out). All entity types of a sentence
use the same windows.
"""

import collections
import hashlib
import json

from theseus.errors import InputDataError
from theseus.tasks.ner_mrc.tags import bio_to_spans

# Keys of the feature dicts made by `convert_sentences_to_features` (all int lists).
FEATURE_KEYS = ("input_ids", "input_mask", "segment_ids", "context_mask", "start_labels",
                "end_labels", "feature_index")

# Bumped whenever convert_sentences_to_features changes its output: old caches are rebuilt.
FEATURES_VERSION = 1

FeatureMeta = collections.namedtuple("FeatureMeta", [
    "feature_index", "sentence_index", "entity_type", "window_start_word", "window_end_word",
    "num_words", "word_index_of_piece", "tokens"
])
FeatureMeta.__doc__ = """Python-side companion of one MRC feature (not written to TFRecords).

  feature_index: index of the feature (equals its "feature_index" value).
  sentence_index: index of the sentence in the list given to convert_sentences_to_features.
  entity_type: the entity type the feature's query asks for.
  window_start_word, window_end_word: the words [start, end) of the sentence in this window.
  num_words: number of words of the whole sentence.
  word_index_of_piece: list, one entry per position of input_ids: the sentence-level index of
    the word whose FIRST piece sits there, else -1 (query, [CLS]/[SEP], continuation pieces).
  tokens: the word pieces of the feature (for debugging and display).
"""


def check_entity_types(sentences, entity_types, path=None):
  """Raises InputDataError when a gold entity has a type without a query."""
  known = set(entity_types)
  for sentence in sentences:
    for entity_type, _, _ in bio_to_spans(sentence.tags):
      if entity_type not in known:
        raise InputDataError(
            "entity type %r has no query (query types: %s)" % (entity_type,
                                                              ", ".join(entity_types)),
            path, sentence.source_line)


def make_windows(piece_counts, budget, doc_stride):
  """Cuts a sentence into windows of whole words.

  Args:
    piece_counts: list, number of word pieces of each word (a word counts at most `budget`).
    budget: the most context pieces a window may hold (>= 1).
    doc_stride: words from the start of one window to the start of the next (>= 1); the next
      window never starts after the end of the previous one.

  Returns:
    list of (start_word, end_word_exclusive); [(0, 0)] for an empty sentence.
  """
  n = len(piece_counts)
  if n == 0:
    return [(0, 0)]
  windows = []
  start = 0
  while True:
    end = start
    used = 0
    while end < n and used + min(piece_counts[end], budget) <= budget:
      used += min(piece_counts[end], budget)
      end += 1
    windows.append((start, end))
    if end >= n:
      return windows
    start = max(start + 1, min(start + doc_stride, end))


def _tokenize_word(tokenizer, word, cache):
  pieces = cache.get(word)
  if pieces is None:
    pieces = tokenizer.tokenize(word) or ["[UNK]"]
    cache[word] = pieces
  return pieces


def _feature_pieces(query_tokens, word_pieces, window_start, window_end):
  """`[CLS] query [SEP] words[window_start:window_end] [SEP]` of one feature.

  Returns:
    (tokens, segment_ids, word_index_of_piece): lists of one length; word_index_of_piece holds
    the sentence-level word index at each word's first piece, else -1.
  """
  tokens = ["[CLS]"] + query_tokens + ["[SEP]"]
  segment_ids = [0] * len(tokens)
  word_index_of_piece = [-1] * len(tokens)
  for w in range(window_start, window_end):
    for k, piece in enumerate(word_pieces[w]):
      tokens.append(piece)
      segment_ids.append(1)
      word_index_of_piece.append(w if k == 0 else -1)
  tokens.append("[SEP]")
  segment_ids.append(1)
  word_index_of_piece.append(-1)
  return tokens, segment_ids, word_index_of_piece


def convert_sentences_to_features(sentences, queries, tokenizer, max_seq_length, doc_stride):
  """Makes the MRC features: one per sentence, entity type and window.

  A feature reads `[CLS] query [SEP] context [SEP]` (segment ids 0 for `[CLS] query [SEP]`, 1
  for the context and the last [SEP]). See the module docstring for labels and windows.

  Args:
    sentences: list of NerSentence.
    queries: OrderedDict entity_type -> query text (from `load_queries`).
    tokenizer: a tokenization.FullTokenizer (or anything with tokenize/convert_tokens_to_ids).
    max_seq_length: the most word pieces of a feature, specials included.
    doc_stride: words from one window start to the next when a sentence needs several.

  Returns:
    (features, metas): `features` is a list of dicts with the FEATURE_KEYS, each an unpadded
    int list of length L <= max_seq_length ("feature_index" is [i]):
      input_ids: word piece ids; input_mask: all 1 (real positions);
      segment_ids: 0 on `[CLS] query [SEP]`, 1 after;
      context_mask: 1 on the first piece of each context word, else 0;
      start_labels / end_labels: 1 on the first piece of the first / last word of an entity
        of the feature's type, else 0.
    `metas` is the parallel list of FeatureMeta. Features come sentence by sentence, window by
    window, entity type by entity type (in the order of `queries`).

  Raises:
    InputDataError: a gold entity type has no query, or max_seq_length leaves no room
      for the context after the longest query.
    ValueError: doc_stride < 1.
  """
  if doc_stride < 1:
    raise ValueError("doc_stride must be >= 1, got %d" % doc_stride)
  entity_types = list(queries.keys())
  check_entity_types(sentences, entity_types)
  query_tokens = collections.OrderedDict(
      (t, tokenizer.tokenize(q) or ["[UNK]"]) for t, q in queries.items())
  budget = _context_budget(query_tokens, max_seq_length)
  cache = {}
  features = []
  metas = []
  for sentence_index, sentence in enumerate(sentences):
    word_pieces = [_tokenize_word(tokenizer, w, cache)[:budget] for w in sentence.tokens]
    windows = make_windows([len(p) for p in word_pieces], budget, doc_stride)
    spans = bio_to_spans(sentence.tags)
    for window_start, window_end in windows:
      for entity_type in entity_types:
        starts = set(s for t, s, _ in spans if t == entity_type)
        ends = set(e for t, _, e in spans if t == entity_type)
        tokens, segment_ids, word_index_of_piece = _feature_pieces(
            query_tokens[entity_type], word_pieces, window_start, window_end)
        assert len(tokens) <= max_seq_length
        features.append(_feature(tokenizer, tokens, segment_ids, word_index_of_piece, starts,
                                 ends, len(features)))
        metas.append(FeatureMeta(
            feature_index=len(metas), sentence_index=sentence_index,
            entity_type=entity_type, window_start_word=window_start,
            window_end_word=window_end, num_words=len(sentence.tokens),
            word_index_of_piece=word_index_of_piece, tokens=tokens))
  return features, metas


def _context_budget(query_tokens, max_seq_length):
  """The most context pieces a window holds after the longest query and 3 specials."""
  longest_type = max(query_tokens, key=lambda t: len(query_tokens[t]))
  budget = max_seq_length - len(query_tokens[longest_type]) - 3
  if budget < 1:
    raise InputDataError(
        "max_seq_length=%d leaves no room for the context after the query of %r (%d word "
        "pieces)" % (max_seq_length, longest_type, len(query_tokens[longest_type])))
  return budget


def _feature(tokenizer, tokens, segment_ids, word_index_of_piece, starts, ends, feature_index):
  """The feature dict of one window's pieces (see convert_sentences_to_features)."""
  return {
      "input_ids": tokenizer.convert_tokens_to_ids(tokens),
      "input_mask": [1] * len(tokens),
      "segment_ids": segment_ids,
      "context_mask": [1 if w >= 0 else 0 for w in word_index_of_piece],
      "start_labels": [1 if w >= 0 and w in starts else 0 for w in word_index_of_piece],
      "end_labels": [1 if w >= 0 and w in ends else 0 for w in word_index_of_piece],
      "feature_index": [feature_index],
  }


def sentences_fingerprint(sentences):
  """sha1 over tokens and tags: a changed data file (or slice) rebuilds the feature cache."""
  h = hashlib.sha1()
  for sentence in sentences:
    h.update(json.dumps([sentence.tokens, sentence.tags], ensure_ascii=False).encode("utf-8"))
    h.update(b"\n")
  return h.hexdigest()

