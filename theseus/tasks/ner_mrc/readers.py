# coding=utf-8
"""NER files: readers for CoNLL-2003 (`token POS chunk NER`), char-level BIO (`char\\tTAG`, MSRA)
and the "characters line / tags line" layout, the writer of predictions in the input's layout,
and the query maps (JSON object entity type -> query text).

The readers return `NerSentence`s and a `ReadStats`; every problem is an InputDataError naming
the file and the line.
"""

import collections
import json
import os

from absl import logging

from theseus import files
from theseus.errors import InputDataError
from theseus.tasks.ner_mrc.tags import NerSentence
from theseus.tasks.ner_mrc.tags import parse_tag
from theseus.tasks.ner_mrc.tags import repair_bio_tags

# Input formats of the NER readers (and of `write_bio_predictions`).
DATA_FORMATS = ("conll2003", "char_bio", "chars_tags_lines")


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
  files.atomic_write_text(path, "".join(out))

