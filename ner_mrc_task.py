# coding=utf-8
"""Named entity recognition as machine reading comprehension (MRC) on BERT-of-Theseus.

Every sentence is asked one question per entity type ("which words are person names?"): the
model reads `[CLS] query [SEP] context [SEP]` and two binary pointers mark, for every context
word, whether an entity of that type starts there and whether one ends there. Spans are decoded
by pairing each predicted start with the nearest predicted end at or after it, the per-type
spans of a sentence are merged into one BIO sequence and scored conlleval-style.

This task library (behind run_ner_mrc.py; importing it defines no flags) holds:

  * readers for CoNLL-2003 (`token POS chunk NER`), char-level BIO (`char\\tTAG`, MSRA) and the
    "characters line / tags line" layout, all returning `NerSentence`s plus a `ReadStats`;
  * the query maps (`load_queries`, JSON object entity type -> query text);
  * `convert_sentences_to_features`: MRC features (variable length, padded per batch later) and
    the python-side `FeatureMeta` decoding needs;
  * `create_mrc_head` / `compute_mrc_loss`: the start/end pointer layer and its (focal) loss;
  * decoding (`decode_spans`, `resolve_overlaps`, `decode_sentence_predictions`), the metric
    (`ner_metrics`) and `write_bio_predictions`;
  * the TaskSpec the shared loop runs (`make_task`) and `NerMrcRun`, the task's part of a run
    (see runner.py).

Word pieces and labels. Each word (English) or character (Chinese) of the context is tokenized
on its own; only the FIRST word piece of a word carries the word's start/end labels and takes
part in the loss and in decoding (`context_mask` = 1 there, 0 on the query, [CLS], [SEP],
continuation pieces and padding). A word that tokenizes to nothing (e.g. a control character)
becomes one "[UNK]" piece, so that every word has a position.

Windows. A context longer than `max_seq_length` is cut into windows of whole words; a window
takes as many words as fit and the next window starts `doc_stride` words later (never later
than the end of the previous window, so no word is left out). All entity types of a sentence
use the same windows. At decoding every word takes its start/end probabilities from the window
in which it is most central (BERT-SQuAD's "max context" rule, counted in words:
min(words to its left, words to its right) + 0.01 * window length; ties go to the earlier
window); spans are then decoded on the whole sentence, so an entity may cross windows.
"""

from __future__ import absolute_import
from __future__ import division
from __future__ import print_function

import collections
import hashlib
import json
import os

from absl import logging
import numpy as np
import tensorflow as tf

from errors import InputDataError
from errors import TrainingError
import evaluation
import files
import input_pipeline
import task_spec

# Input formats of the NER readers (and of `write_bio_predictions`).
DATA_FORMATS = ("conll2003", "char_bio", "chars_tags_lines")

# Names of the start/end pointer variables (a dense layer [hidden_size, 2]; column 0 scores
# "an entity starts at this word", column 1 "an entity ends at this word").
HEAD_SCOPE = "mrc/start_end"
HEAD_KERNEL_NAME = HEAD_SCOPE + "/kernel"
HEAD_BIAS_NAME = HEAD_SCOPE + "/bias"

LOSS_TYPES = ("ce", "focal")

# Keys of the feature dicts made by `convert_sentences_to_features` (all int lists).
FEATURE_KEYS = ("input_ids", "input_mask", "segment_ids", "context_mask", "start_labels",
                "end_labels", "feature_index")

REPO_DIR = os.path.dirname(os.path.abspath(__file__))

# Bumped whenever convert_sentences_to_features changes its output: old caches are rebuilt.
FEATURES_VERSION = 1

# Per input format: default file names (relative to --data_dir) and query map.
# MSRA has no dev split, so its dev set defaults to the test file (as published MSRA results do).
DEFAULT_FILES = {
    "conll2003": {"train": "train.txt", "dev": "valid.txt", "test": "test.txt"},
    "char_bio": {"train": "train_data", "dev": "test_data", "test": "test_data"},
    "chars_tags_lines": {"train": "train.txt", "dev": "dev.txt", "test": "test.txt"},
}
DEFAULT_QUERY_FILES = {
    "conll2003": os.path.join("configs", "ner_queries_conll2003.json"),
    "char_bio": os.path.join("configs", "ner_queries_msra.json"),
    "chars_tags_lines": os.path.join("configs", "ner_queries_msra.json"),
}

# Written into every export (see NerMrcRun.export_files): the settings and the query map.
EXPORT_TASK_FILE = "ner_task.json"
EXPORT_QUERIES_FILE = "ner_queries.json"

# Outputs of the head (and of the SavedModel): per-position sigmoid probabilities [B, T].
OUTPUT_KEYS = ("start_probs", "end_probs")

NerSentence = collections.namedtuple("NerSentence", ["tokens", "tags", "source_line"])
NerSentence.__doc__ = """One sentence of a NER file.

  tokens: list of words (CoNLL) or characters (Chinese char-level files).
  tags: list of BIO (IOB2) tags, one per token, after the stray I- repair of the readers.
  source_line: 1-based line number in the file where the sentence starts.
"""

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


class ReadStats(object):
  """What a NER reader saw: counts and the stray I- tags it repaired.

  A stray `I-X` is an inside tag that starts a span (first tag of a sentence, after `O` or after
  an entity of another type). The readers turn it into `B-X` (the entity then starts there, as
  conlleval also reads it) and count it here per entity type.
  """

  def __init__(self, path):
    self.path = path
    self.num_sentences = 0
    self.num_tokens = 0
    self.repairs = collections.Counter()  # entity type -> number of I- tags made B-
    self.repair_lines = []  # 1-based line numbers of the repaired tags

  @property
  def num_repairs(self):
    return sum(self.repairs.values())

  def log(self):
    logging.info("Read %s: %d sentences, %d tokens", self.path, self.num_sentences,
                 self.num_tokens)
    if self.num_repairs:
      logging.warning(
          "%s: %d stray I- tags started a span and were read as B- (%s); first lines: %s",
          self.path, self.num_repairs,
          ", ".join("%s %d" % (t, n) for t, n in sorted(self.repairs.items())),
          ", ".join(str(n) for n in self.repair_lines[:10]))

  def __repr__(self):
    return "ReadStats(%r, sentences=%d, tokens=%d, repairs=%r)" % (
        self.path, self.num_sentences, self.num_tokens, dict(self.repairs))


# ------------------------------------------------------------------------------------------
# Tags and spans
# ------------------------------------------------------------------------------------------


def parse_tag(tag):
  """Splits a BIO tag into (prefix, entity_type).

  Args:
    tag: "O", "B-<type>" or "I-<type>".

  Returns:
    ("O", None) for "O", else ("B", type) or ("I", type).

  Raises:
    ValueError: the tag has another shape.
  """
  if tag == "O":
    return "O", None
  if len(tag) > 2 and tag[0] in "BI" and tag[1] == "-" and not any(c.isspace() for c in tag):
    return tag[0], tag[2:]
  raise ValueError("unknown tag %r: expected O, B-<type> or I-<type> (BIO / IOB2)" % (tag,))


def repair_bio_tags(tags):
  """Turns every stray I-X (one that does not continue an X span) into B-X.

  Args:
    tags: list of valid BIO tags.

  Returns:
    (repaired tags: list, positions that were changed: list of int).
  """
  out = []
  changed = []
  prev_type = None
  for i, tag in enumerate(tags):
    prefix, entity_type = parse_tag(tag)
    if prefix == "I" and entity_type != prev_type:
      tag = "B-" + entity_type
      changed.append(i)
    out.append(tag)
    prev_type = entity_type
  return out, changed


def bio_to_spans(tags):
  """Reads the entities of a BIO tag sequence (conlleval rules).

  An entity starts at B-X, or at I-X that does not continue an X entity (a stray I-), and goes
  on over the following I-X tags.

  Args:
    tags: list of length n of BIO tags.

  Returns:
    list of (entity_type, start, end_inclusive) in order of start.
  """
  spans = []
  cur_type = None
  cur_start = None
  for i, tag in enumerate(tags):
    prefix, entity_type = parse_tag(tag)
    if prefix == "I" and entity_type == cur_type:
      continue
    if cur_type is not None:
      spans.append((cur_type, cur_start, i - 1))
    cur_type = entity_type
    cur_start = i if entity_type is not None else None
  if cur_type is not None:
    spans.append((cur_type, cur_start, len(tags) - 1))
  return spans


def spans_to_bio(spans, length):
  """Writes entities as BIO tags.

  Args:
    spans: iterable of (entity_type, start, end_inclusive); they must not overlap.
    length: number of tokens n.

  Returns:
    list of length n of BIO tags.

  Raises:
    ValueError: a span is out of range, empty or overlaps another.
  """
  tags = ["O"] * length
  for span in spans:
    entity_type, start, end = span[0], span[1], span[2]
    if not 0 <= start <= end < length:
      raise ValueError("span %r out of range for %d tokens" % (tuple(span), length))
    if any(tags[i] != "O" for i in range(start, end + 1)):
      raise ValueError("span %r overlaps another span" % (tuple(span),))
    tags[start] = "B-" + entity_type
    for i in range(start + 1, end + 1):
      tags[i] = "I-" + entity_type
  return tags


def entity_counts(tag_seqs):
  """Returns a Counter entity_type -> number of entities over BIO tag sequences."""
  counts = collections.Counter()
  for tags in tag_seqs:
    for entity_type, _, _ in bio_to_spans(tags):
      counts[entity_type] += 1
  return counts


# ------------------------------------------------------------------------------------------
# Readers
# ------------------------------------------------------------------------------------------


def _check_tag(tag, path, line):
  try:
    parse_tag(tag)
  except ValueError as e:
    raise InputDataError(str(e), path, line)


def _add_sentence(sentences, stats, tokens, tags, tag_lines):
  """Repairs stray I- tags of one sentence and appends it (no-op for an empty sentence)."""
  if not tokens:
    return
  tags, changed = repair_bio_tags(tags)
  for i in changed:
    stats.repairs[tags[i][2:]] += 1
    stats.repair_lines.append(tag_lines[i])
  sentences.append(NerSentence(tokens=list(tokens), tags=tags, source_line=tag_lines[0]))
  stats.num_sentences += 1
  stats.num_tokens += len(tokens)


def _finish(sentences, stats, path):
  if not sentences:
    raise InputDataError("no sentences found", path)
  stats.log()
  return sentences, stats


def read_conll2003(path):
  """Reads a CoNLL-2003 file: `token POS chunk NER` per line, blank line between sentences.

  `-DOCSTART-` lines are skipped (they also end a sentence). NER tags are BIO (IOB2); a stray
  I-X is read as B-X and counted in the stats.

  Args:
    path: the file.

  Returns:
    (list of NerSentence, ReadStats).

  Raises:
    InputDataError: missing / empty / non-UTF-8 file, a line without exactly 4
      whitespace-separated columns, or a NER tag that is not O, B-X or I-X (file and line named).
  """
  lines = files.read_text_lines(path)
  sentences = []
  stats = ReadStats(path)
  tokens, tags, tag_lines = [], [], []
  for line_no, line in enumerate(lines, 1):
    fields = line.split()
    if not fields or fields[0] == "-DOCSTART-":
      _add_sentence(sentences, stats, tokens, tags, tag_lines)
      tokens, tags, tag_lines = [], [], []
      continue
    if len(fields) != 4:
      raise InputDataError(
          "expected 4 space-separated columns 'token POS chunk NER', found %d" % len(fields),
          path, line_no)
    _check_tag(fields[3], path, line_no)
    tokens.append(fields[0])
    tags.append(fields[3])
    tag_lines.append(line_no)
  _add_sentence(sentences, stats, tokens, tags, tag_lines)
  return _finish(sentences, stats, path)


def read_char_bio(path):
  """Reads a char-level BIO file (MSRA): `char<TAB>TAG` per line, blank line between sentences.

  A line without a tab may separate the two fields by other whitespace. A stray I-X is read as
  B-X and counted in the stats.

  Args:
    path: the file.

  Returns:
    (list of NerSentence, ReadStats).

  Raises:
    InputDataError: missing / empty / non-UTF-8 file, a line that is not two fields, or
      a tag that is not O, B-X or I-X (file and line named).
  """
  lines = files.read_text_lines(path)
  sentences = []
  stats = ReadStats(path)
  tokens, tags, tag_lines = [], [], []
  for line_no, line in enumerate(lines, 1):
    if not line.strip():
      _add_sentence(sentences, stats, tokens, tags, tag_lines)
      tokens, tags, tag_lines = [], [], []
      continue
    fields = line.split("\t")
    if len(fields) != 2 or not fields[0] or not fields[1]:
      fields = line.split()
    if len(fields) != 2:
      raise InputDataError(
          "expected 'char<TAB>TAG', found %d fields" % len(fields), path, line_no)
    tag = fields[1].strip()
    _check_tag(tag, path, line_no)
    tokens.append(fields[0])
    tags.append(tag)
    tag_lines.append(line_no)
  _add_sentence(sentences, stats, tokens, tags, tag_lines)
  return _finish(sentences, stats, path)


def read_chars_tags_lines(path):
  """Reads the two-lines-per-sentence layout: a characters line, then its tags line.

  Non-blank lines pair up in order: line 2k holds the characters (or words) separated by
  spaces, line 2k+1 the same number of BIO tags separated by spaces. A characters line without
  spaces whose length equals the number of tags is read one character per token. Blank lines
  are ignored. A stray I-X is read as B-X and counted in the stats.

  Args:
    path: the file.

  Returns:
    (list of NerSentence, ReadStats); source_line is the characters line.

  Raises:
    InputDataError: missing / empty / non-UTF-8 file, a characters line without a tags
      line, different numbers of characters and tags, or an unknown tag (file and line named).
  """
  lines = files.read_text_lines(path)
  numbered = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
  sentences = []
  stats = ReadStats(path)
  for k in range(0, len(numbered), 2):
    chars_line_no, chars_line = numbered[k]
    if k + 1 >= len(numbered):
      raise InputDataError(
          "characters line without the tags line after it", path, chars_line_no)
    tags_line_no, tags_line = numbered[k + 1]
    tokens = chars_line.split()
    tags = tags_line.split()
    if len(tokens) == 1 and len(tags) > 1 and len(tokens[0]) == len(tags):
      tokens = list(tokens[0])
    if len(tokens) != len(tags):
      raise InputDataError(
          "%d tags for the %d characters of line %d" % (len(tags), len(tokens), chars_line_no),
          path, tags_line_no)
    for tag in tags:
      _check_tag(tag, path, tags_line_no)
    sentence_start = len(sentences)
    _add_sentence(sentences, stats, tokens, tags, [tags_line_no] * len(tags))
    if len(sentences) > sentence_start:
      sentences[-1] = sentences[-1]._replace(source_line=chars_line_no)
  return _finish(sentences, stats, path)


_READERS = {
    "conll2003": read_conll2003,
    "char_bio": read_char_bio,
    "chars_tags_lines": read_chars_tags_lines,
}


def read_ner_file(path, data_format):
  """Reads `path` with the reader of `data_format` (one of DATA_FORMATS).

  Returns:
    (list of NerSentence, ReadStats).
  """
  if data_format not in _READERS:
    raise InputDataError(
        "unknown NER data format %r (expected one of %s)" % (data_format, ", ".join(DATA_FORMATS)))
  return _READERS[data_format](path)


# ------------------------------------------------------------------------------------------
# Queries
# ------------------------------------------------------------------------------------------


def load_queries(path):
  """Reads a query map: a JSON object entity type -> query text, in the order of the file.

  The entity types of the task are exactly the keys of the file.

  Args:
    path: the JSON file (e.g. configs/ner_queries_conll2003.json).

  Returns:
    collections.OrderedDict entity_type -> query text (stripped).

  Raises:
    InputDataError: missing / empty / invalid JSON, not an object, no types, a type
      given twice, an empty or blank type name (or "O"), or a query that is not a non-empty
      string.
  """
  text = "\n".join(files.read_text_lines(path))

  def _pairs_hook(pairs):
    result = collections.OrderedDict()
    for key, value in pairs:
      if key in result:
        raise InputDataError("entity type %r is given twice" % (key,), path)
      result[key] = value
    return result

  try:
    obj = json.loads(text, object_pairs_hook=_pairs_hook)
  except json.JSONDecodeError as e:
    raise InputDataError("not valid JSON: %s" % e.msg, path, e.lineno)
  if not isinstance(obj, dict):
    raise InputDataError(
        "expected a JSON object entity type -> query text", path)
  if not obj:
    raise InputDataError("no entity types", path)
  queries = collections.OrderedDict()
  for entity_type, query in obj.items():
    if not entity_type or entity_type != entity_type.strip() or any(
        c.isspace() for c in entity_type) or entity_type == "O":
      raise InputDataError("invalid entity type name %r" % (entity_type,), path)
    if not isinstance(query, str) or not query.strip():
      raise InputDataError(
          "the query of entity type %r must be a non-empty string" % (entity_type,), path)
    queries[entity_type] = query.strip()
  return queries


# ------------------------------------------------------------------------------------------
# Features
# ------------------------------------------------------------------------------------------


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
  longest_type = max(entity_types, key=lambda t: len(query_tokens[t]))
  budget = max_seq_length - len(query_tokens[longest_type]) - 3
  if budget < 1:
    raise InputDataError(
        "max_seq_length=%d leaves no room for the context after the query of %r (%d word "
        "pieces)" % (max_seq_length, longest_type, len(query_tokens[longest_type])))

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
        feature_index = len(features)
        features.append({
            "input_ids": tokenizer.convert_tokens_to_ids(tokens),
            "input_mask": [1] * len(tokens),
            "segment_ids": segment_ids,
            "context_mask": [1 if w >= 0 else 0 for w in word_index_of_piece],
            "start_labels": [1 if w >= 0 and w in starts else 0 for w in word_index_of_piece],
            "end_labels": [1 if w >= 0 and w in ends else 0 for w in word_index_of_piece],
            "feature_index": [feature_index],
        })
        metas.append(FeatureMeta(
            feature_index=feature_index, sentence_index=sentence_index,
            entity_type=entity_type, window_start_word=window_start,
            window_end_word=window_end, num_words=len(sentence.tokens),
            word_index_of_piece=word_index_of_piece, tokens=tokens))
  return features, metas


# ------------------------------------------------------------------------------------------
# Model head
# ------------------------------------------------------------------------------------------


def create_mrc_head(sequence_output, context_mask, start_labels=None, end_labels=None,
                    loss_type="ce", focal_gamma=2.0, dropout_prob=0.0, initializer_range=0.02):
  """Start/end pointers on top of BERT's sequence output.

  One dense layer [hidden_size, 2] scores every position: column 0 is the start logit, column 1
  the end logit (variables `mrc/start_end/kernel` [H, 2], truncated normal with stddev
  `initializer_range`, and `mrc/start_end/bias` [2], zeros; made with AUTO_REUSE so that a second
  tower shares them). Works with a dynamic batch size and sequence length.

  Args:
    sequence_output: float Tensor [B, T, H] (H static).
    context_mask: int or float Tensor [B, T]; 1 where the loss (and decoding) applies.
    start_labels, end_labels: optional int Tensors [B, T] of 0/1.
    loss_type: "ce" (per-token sigmoid cross-entropy) or "focal".
    focal_gamma: the focal loss exponent (gamma = 0 gives "ce").
    dropout_prob: dropout on `sequence_output` (pass 0.0 at evaluation).
    initializer_range: stddev of the kernel initializer.

  Returns:
    (start_logits [B, T], end_logits [B, T], loss scalar or None when labels are not given).
    Probabilities are tf.sigmoid of the logits.
  """
  hidden_size = sequence_output.shape[-1]
  if hidden_size is None:
    raise ValueError("the hidden size of sequence_output must be static")
  hidden_size = int(hidden_size)
  with tf.compat.v1.variable_scope(HEAD_SCOPE, reuse=tf.compat.v1.AUTO_REUSE):
    kernel = tf.compat.v1.get_variable(
        "kernel", [hidden_size, 2],
        initializer=tf.compat.v1.truncated_normal_initializer(stddev=initializer_range))
    bias = tf.compat.v1.get_variable("bias", [2], initializer=tf.compat.v1.zeros_initializer())

  if dropout_prob and dropout_prob > 0.0:
    sequence_output = tf.nn.dropout(sequence_output, rate=dropout_prob)
  shape = tf.shape(sequence_output)
  batch_size, seq_length = shape[0], shape[1]
  flat = tf.reshape(sequence_output, [-1, hidden_size])
  logits = tf.nn.bias_add(tf.matmul(flat, kernel), bias)
  logits = tf.reshape(logits, [batch_size, seq_length, 2])
  start_logits = logits[:, :, 0]
  end_logits = logits[:, :, 1]

  if start_labels is None or end_labels is None:
    return start_logits, end_logits, None
  loss = compute_mrc_loss(start_logits, end_logits, context_mask, start_labels, end_labels,
                          loss_type=loss_type, focal_gamma=focal_gamma)
  return start_logits, end_logits, loss


def _pointer_token_loss(logits, labels, loss_type, focal_gamma):
  """Per-position binary loss [B, T] of one pointer."""
  labels = tf.cast(labels, tf.float32)
  # Signed logit: large when the prediction agrees with the label; ce = -log(p_t) =
  # softplus(-z_signed), written this way so that it is exact and stable for any logit.
  z_signed = tf.where(labels > 0.5, logits, -logits)
  ce = tf.nn.softplus(-z_signed)
  if loss_type == "ce":
    return ce
  # Focal loss: (1 - p_t) ** gamma * ce with 1 - p_t = sigmoid(-z_signed), taken in log space
  # so that gamma = 0 gives exactly ce and saturated positions have finite gradients.
  modulator = tf.exp(focal_gamma * tf.math.log_sigmoid(-z_signed))
  return modulator * ce


def compute_mrc_loss(start_logits, end_logits, context_mask, start_labels, end_labels,
                     loss_type="ce", focal_gamma=2.0):
  """The MRC pointer loss: start loss + end loss, each averaged over context_mask positions.

  Args:
    start_logits, end_logits: float Tensors [B, T].
    context_mask: Tensor [B, T]; positions with 0 do not contribute at all (their logits and
      labels may be anything finite or not).
    start_labels, end_labels: int Tensors [B, T] of 0/1.
    loss_type: "ce" or "focal".
    focal_gamma: the focal exponent.

  Returns:
    float scalar Tensor.
  """
  if loss_type not in LOSS_TYPES:
    raise ValueError("unknown loss_type %r (expected one of %s)" % (loss_type,
                                                                   ", ".join(LOSS_TYPES)))
  mask = tf.cast(context_mask, tf.float32) > 0.5
  num_positions = tf.maximum(tf.reduce_sum(tf.cast(mask, tf.float32)), 1.0)
  total = 0.0
  for logits, labels in ((start_logits, start_labels), (end_logits, end_labels)):
    per_token = _pointer_token_loss(logits, labels, loss_type, focal_gamma)
    per_token = tf.where(mask, per_token, tf.zeros_like(per_token))
    total += tf.reduce_sum(per_token) / num_positions
  return total


# ------------------------------------------------------------------------------------------
# Decoding
# ------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------
# Metric and output
# ------------------------------------------------------------------------------------------


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


def write_bio_predictions(path, sentences, pred_tags, fmt):
  """Writes predicted tags in the layout of the input file.

  Args:
    path: output file (its directory is created).
    sentences: list of NerSentence (their tokens are written).
    pred_tags: list (per sentence) of predicted BIO tag lists.
    fmt: "conll2003" (or "conll"): `token TAG` per line, blank line after each sentence
      (-DOCSTART- lines are not reproduced); "char_bio": `char<TAB>TAG` per line, blank line
      after each sentence; "chars_tags_lines": the tokens line, then the tags line.
  """
  if fmt == "conll":
    fmt = "conll2003"
  if fmt not in DATA_FORMATS:
    raise ValueError("unknown format %r (expected one of %s)" % (fmt, ", ".join(DATA_FORMATS)))
  if len(sentences) != len(pred_tags):
    raise ValueError("%d sentences but %d predictions" % (len(sentences), len(pred_tags)))
  out = []
  for sentence, tags in zip(sentences, pred_tags):
    if len(sentence.tokens) != len(tags):
      raise ValueError("sentence at line %d: %d tokens but %d tags" % (
          sentence.source_line, len(sentence.tokens), len(tags)))
    if fmt == "chars_tags_lines":
      out.append(" ".join(sentence.tokens) + "\n" + " ".join(tags) + "\n")
    else:
      sep = " " if fmt == "conll2003" else "\t"
      out.append("".join("%s%s%s\n" % (token, sep, tag)
                         for token, tag in zip(sentence.tokens, tags)) + "\n")
  directory = os.path.dirname(path)
  if directory:
    os.makedirs(directory, exist_ok=True)
  with open(path, "w", encoding="utf-8", newline="\n") as f:
    f.write("".join(out))


# ------------------------------------------------------------------------------------------
# The task in a run
# ------------------------------------------------------------------------------------------


def check_ner_config(cfg):
  """Validates the NER flags; fills in the per-format defaults of the file and query flags."""
  if cfg.data_format not in DATA_FORMATS:
    raise InputDataError("--data_format must be one of %s, got %r"
                                  % (", ".join(DATA_FORMATS), cfg.data_format))
  if cfg.doc_stride < 1:
    raise InputDataError("--doc_stride must be >= 1, got %d" % cfg.doc_stride)
  if cfg.max_span_length < 0:
    raise InputDataError("--max_span_length must be >= 0, got %d" % cfg.max_span_length)
  if not 0.0 < cfg.span_threshold < 1.0:
    raise InputDataError("--span_threshold must be in (0, 1), got %r"
                                  % cfg.span_threshold)
  if cfg.loss not in LOSS_TYPES:
    raise InputDataError("--loss must be one of %s, got %r" % (", ".join(LOSS_TYPES),
                                                                       cfg.loss))
  if cfg.focal_gamma < 0:
    raise InputDataError("--focal_gamma must be >= 0, got %r" % cfg.focal_gamma)
  if cfg.skip_bad_rows:
    logging.warning("--skip_bad_rows has no effect on NER files: a malformed line is an error")
  for split in ("train", "dev", "test"):
    name = "%s_file" % split
    if not getattr(cfg, name):
      setattr(cfg, name, DEFAULT_FILES[cfg.data_format][split])
  if not cfg.query_file:
    cfg.query_file = os.path.join(REPO_DIR, DEFAULT_QUERY_FILES[cfg.data_format])


def data_path(cfg, split):
  """The file of `split` ("train", "dev", "test"): --<split>_file, relative to --data_dir."""
  return os.path.join(cfg.data_dir or "", getattr(cfg, "%s_file" % split))


def read_split(cfg, split, queries, limit=0):
  """Reads a data file, keeps the first `limit` sentences (0: all), checks the entity types."""
  path = data_path(cfg, split)
  sentences, _ = read_ner_file(path, cfg.data_format)
  if limit:
    sentences = sentences[:limit]
  check_entity_types(sentences, list(queries), path)
  return sentences


def sentences_fingerprint(sentences):
  """sha1 over tokens and tags: a changed data file (or slice) rebuilds the feature cache."""
  h = hashlib.sha1()
  for sentence in sentences:
    h.update(json.dumps([sentence.tokens, sentence.tags], ensure_ascii=False).encode("utf-8"))
    h.update(b"\n")
  return h.hexdigest()


def flatten_metrics(metrics):
  """Adds precision_X / recall_X / f1_X / support_X for every entity type X (kept nested too)."""
  out = dict(metrics)
  for entity_type, values in metrics.get("per_type", {}).items():
    for key in ("precision", "recall", "f1", "support"):
      out["%s_%s" % (key, entity_type)] = values[key]
  out["main_metric"] = "f1"
  return out


def decode_rows(cfg, sentences, metas, rows, entity_types):
  """BIO tags per sentence from the Evaluator's rows (one per feature, in feature_index order)."""
  if len(rows) != len(metas):
    raise TrainingError("evaluation saw %d of %d features" % (len(rows), len(metas)))
  return decode_sentence_predictions(
      sentences, metas, [r["start_probs"] for r in rows], [r["end_probs"] for r in rows],
      threshold=cfg.span_threshold, max_span_length=cfg.max_span_length or None,
      entity_types=entity_types)


def make_task(cfg, sentences, metas, entity_types):
  """The TaskSpec of NER-as-MRC for the shared loop.

  `sentences` / `metas` are those of the set `evaluate` scores (empty when nothing is scored).
  """

  def build_head(model, features, is_training):
    start_logits, end_logits, loss = create_mrc_head(
        model.get_sequence_output(), features.get("context_mask"),
        start_labels=features.get("start_labels"), end_labels=features.get("end_labels"),
        loss_type=cfg.loss, focal_gamma=cfg.focal_gamma,
        dropout_prob=model.config.hidden_dropout_prob if is_training else 0.0)
    outputs = {"start_probs": tf.sigmoid(start_logits), "end_probs": tf.sigmoid(end_logits),
               "start_logits": start_logits, "end_logits": end_logits}
    return loss, outputs

  def evaluate(rows):
    pred_tags = decode_rows(cfg, sentences, metas, rows, entity_types)
    return flatten_metrics(ner_metrics([s.tags for s in sentences], pred_tags))

  def serving_outputs(outputs):
    return {k: outputs[k] for k in OUTPUT_KEYS}

  # input_mask is not stored: make_dataset rebuilds it from input_ids.
  int_keys = [k for k in FEATURE_KEYS if k != "input_mask"]
  return task_spec.TaskSpec(
      int_keys=int_keys, float_keys=[], index_key="feature_index", build_head=build_head,
      evaluate=evaluate, serving_outputs=serving_outputs, head_variable_regex=r"^mrc/",
      sequence_output_keys=OUTPUT_KEYS + ("start_logits", "end_logits"),
      soft_label_kind="pointers")


def feature_cache(cfg, name, sentences, queries, tokenizer, sort_by_length, with_metas):
  """(tfrecord path, number of features, (features, metas) or None) of `sentences`.

  The TFRecord cache is keyed by content (sentences, vocab, lower-casing, max_seq_length,
  doc_stride, queries).

  The FeatureMetas decoding needs are python-side and cheap: with `with_metas` they are rebuilt
  (deterministically, so they match the cached records); training skips them.
  """
  key = {"name": name, "sentences": sentences_fingerprint(sentences),
         "vocab": files.file_fingerprint(cfg.spm_model_file or cfg.vocab_file),
         "do_lower_case": cfg.do_lower_case, "max_seq_length": cfg.max_seq_length,
         "doc_stride": cfg.doc_stride, "queries": json.dumps(queries, ensure_ascii=False),
         "features_version": FEATURES_VERSION}
  built = {}

  def convert():
    if "features" not in built:
      built["features"], built["metas"] = convert_sentences_to_features(
          sentences, queries, tokenizer, cfg.max_seq_length, cfg.doc_stride)
    return built["features"]

  if with_metas:
    convert()
  task = make_task(cfg, [], [], list(queries))
  path, n = input_pipeline.cached_features(cfg.cache_dir, name, key, convert, task.int_keys,
                                           task.float_keys, sort_by_length=sort_by_length)
  if not with_metas:
    return path, n, None
  if len(built["metas"]) != n:
    raise TrainingError("feature cache %s holds %d features but the data gives %d; delete it"
                        % (path, n, len(built["metas"])))
  return path, n, (built["features"], built["metas"])


def write_predictions(cfg, prefix, sentences, pred_tags):
  """<prefix>_predictions.txt in the input's format and <prefix>_predictions.json."""
  text_path = os.path.join(cfg.output_dir, "%s_predictions.txt" % prefix)
  write_bio_predictions(text_path, sentences, pred_tags, cfg.data_format)
  joiner = " " if cfg.data_format == "conll2003" else ""
  records = []
  for sentence, tags in zip(sentences, pred_tags):
    records.append({
        "source_line": sentence.source_line, "tokens": sentence.tokens, "tags": tags,
        "entities": [{"type": t, "start": s, "end": e,
                      "text": joiner.join(sentence.tokens[s:e + 1])}
                     for t, s, e in bio_to_spans(tags)]})
  files.atomic_write_text(os.path.join(cfg.output_dir, "%s_predictions.json" % prefix),
                          json.dumps(records, ensure_ascii=False, indent=0) + "\n")
  logging.info("Wrote predictions of %d sentences to %s", len(sentences), text_path)
  return text_path


def write_probabilities(path, features, metas, rows):
  """Writes an .npz of flat arrays, features in feature_index order, each `lengths[i]` long.

  Keys: lengths, feature_index, sentence_index, entity_type, input_ids, segment_ids,
  start_probs, end_probs (the last four concatenated over the features).
  """
  lengths = np.array([len(r["start_probs"]) for r in rows], dtype=np.int64)
  np.savez(path, lengths=lengths,
           feature_index=np.array([m.feature_index for m in metas], dtype=np.int64),
           sentence_index=np.array([m.sentence_index for m in metas], dtype=np.int64),
           entity_type=np.array([m.entity_type for m in metas]),
           input_ids=np.concatenate([f["input_ids"] for f in features]).astype(np.int32),
           segment_ids=np.concatenate([f["segment_ids"] for f in features]).astype(np.int32),
           start_probs=np.concatenate([r["start_probs"] for r in rows]).astype(np.float32),
           end_probs=np.concatenate([r["end_probs"] for r in rows]).astype(np.float32))


class NerMrcRun(object):
  """The NER-as-MRC task's part of a run (the methods runner.run calls).

  --max_train_examples / --max_eval_examples count sentences.
  """

  def __init__(self, cfg):
    self.cfg = cfg
    self.queries = self.tokenizer = None
    self.train_sentences = self.dev_sentences = self.test_sentences = None

  @property
  def entity_types(self):
    return list(self.queries)

  def check_config(self):
    check_ner_config(self.cfg)

  def read_data(self, tokenizer):
    """Reads (and validates) the query map and every data file the run needs."""
    cfg = self.cfg
    self.tokenizer = tokenizer
    self.queries = load_queries(cfg.query_file)
    if cfg.do_train:
      self.train_sentences = read_split(cfg, "train", self.queries, cfg.max_train_examples)
    if cfg.do_eval or (cfg.do_train and cfg.evaluate_during_training):
      self.dev_sentences = read_split(cfg, "dev", self.queries, cfg.max_eval_examples)
    if cfg.do_predict:
      self.test_sentences = read_split(cfg, "test", self.queries)

  def _feature_set(self, name, sentences):
    """A set with its FeatureMetas (for decoding): data = (sentences, features, metas)."""
    path, _, (features, metas) = feature_cache(self.cfg, name, sentences, self.queries,
                                               self.tokenizer, True, True)
    task = make_task(self.cfg, sentences, metas, self.entity_types)
    return task_spec.FeatureSet(name, task, path, (sentences, features, metas))

  def train_inputs(self):
    train_path, num_features, _ = feature_cache(self.cfg, "train", self.train_sentences,
                                                self.queries, self.tokenizer, False, False)
    if not self.cfg.evaluate_during_training:
      return (make_task(self.cfg, self.dev_sentences or [], [], self.entity_types), train_path,
              num_features, None)
    dev = self._feature_set("dev", self.dev_sentences)
    return dev.task, train_path, num_features, dev.path

  def eval_sets(self):
    return [self._feature_set("dev", self.dev_sentences)]

  def eval_metrics(self, feature_set, rows):
    """Entity P / R / F1 of the dev set; writes eval_predictions.{txt,json} too."""
    sentences, _, metas = feature_set.data
    pred_tags = decode_rows(self.cfg, sentences, metas, rows, self.entity_types)
    write_predictions(self.cfg, "eval", sentences, pred_tags)
    metrics = flatten_metrics(ner_metrics([s.tags for s in sentences], pred_tags))
    metrics.update(num_sentences=len(sentences), num_features=len(metas))
    return metrics

  def predict_set(self):
    return self._feature_set("test", self.test_sentences)

  def write_predictions(self, feature_set, rows, checkpoint, seconds):
    """test_predictions.{txt,json}; test_results when the test file has gold entities."""
    sentences, features, metas = feature_set.data
    pred_tags = decode_rows(self.cfg, sentences, metas, rows, self.entity_types)
    path = write_predictions(self.cfg, "test", sentences, pred_tags)
    results = {"predictions_file": path, "predict_seconds": seconds}
    if any(bio_to_spans(s.tags) for s in sentences):
      metrics = flatten_metrics(ner_metrics([s.tags for s in sentences], pred_tags))
      metrics.update(checkpoint=checkpoint, predict_seconds=seconds)
      evaluation.write_eval_results(self.cfg.output_dir, "test", metrics)
      results["metrics"] = metrics
    if self.cfg.write_probabilities:
      write_probabilities(os.path.join(self.cfg.output_dir, "test_probabilities.npz"), features,
                          metas, rows)
    return results

  def export_task(self):
    return make_task(self.cfg, [], [], self.entity_types)

  def export_files(self):
    """What a user needs besides the model to ask it the same questions."""
    cfg = self.cfg
    ner_task = {"data_format": cfg.data_format, "entity_types": self.entity_types,
                "max_seq_length": cfg.max_seq_length, "doc_stride": cfg.doc_stride,
                "span_threshold": cfg.span_threshold, "max_span_length": cfg.max_span_length,
                "do_lower_case": cfg.do_lower_case, "serving_outputs": list(OUTPUT_KEYS)}
    with open(cfg.query_file, encoding="utf-8") as f:
      queries_text = f.read()
    return {EXPORT_QUERIES_FILE: queries_text,
            EXPORT_TASK_FILE: json.dumps(ner_task, ensure_ascii=False, indent=1) + "\n"}
