"""BIO (IOB2) tags and entity spans: parsing, the stray I- repair, spans <-> tags, counts."""

import collections

NerSentence = collections.namedtuple("NerSentence", ["tokens", "tags", "source_line"])
NerSentence.__doc__ = """One sentence of a NER file.

  tokens: list of words (CoNLL) or characters (Chinese char-level files).
  tags: list of BIO (IOB2) tags, one per token, after the stray I- repair of the readers.
  source_line: 1-based line number in the file where the sentence starts.
"""


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

