# coding=utf-8
"""Features of sentence (pair) examples: `[CLS] a [SEP] (b [SEP])` word-piece ids, unpadded
(the input pipeline pads each batch to its longest sequence), as google-research/bert makes them.
"""

import hashlib

from absl import logging


def _truncate_seq_pair(tokens_a, tokens_b, max_length):
  """Truncates a sequence pair in place to the maximum length.

  This is a simple heuristic which will always truncate the longer sequence one token at a
  time. This makes more sense than truncating an equal percent of tokens from each, since if
  one sequence is very short then each token that's truncated likely contains more
  information than a longer sequence.
  """
  while True:
    total_length = len(tokens_a) + len(tokens_b)
    if total_length <= max_length:
      break
    if len(tokens_a) > len(tokens_b):
      tokens_a.pop()
    else:
      tokens_b.pop()


def convert_single_example(ex_index, example, label_list, max_seq_length, tokenizer,
                           is_regression=False):
  """Converts a single `InputExample` into a feature dict (no padding).

  The sequence is `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]`, at most `max_seq_length`
  tokens (pairs are truncated by popping from the longer side, single texts from the end);
  the input pipeline pads each batch to its longest sequence.

  Args:
    ex_index: index of the example (stored as "example_index"; the first 5 are logged).
    example: InputExample.
    label_list: the processor's get_labels() (ignored for regression).
    max_seq_length: maximum number of tokens including [CLS] and [SEP]s.
    tokenizer: object with tokenize(text) and convert_tokens_to_ids(tokens).
    is_regression: the label is a float, stored as "label_values".

  Returns:
    dict with "input_ids" [int], "segment_ids" [int], "label_ids" [int] (classification) or
    "label_values" [float] (regression), "example_index" [int] and "has_label" [int]: 0 when
    the example is unlabeled (test) and carries the placeholder label (label_list[0] or 0.0).

  Raises:
    ValueError: max_seq_length too small, or a label not in label_list.
  """
  tokens, segment_ids = _tokens(example, max_seq_length, tokenizer)
  input_ids = tokenizer.convert_tokens_to_ids(tokens)
  assert len(input_ids) <= max_seq_length
  has_label = example.label is not None
  feature = {
      "input_ids": list(input_ids),
      "segment_ids": segment_ids,
      "example_index": [int(ex_index)],
      "has_label": [1 if has_label else 0],
  }
  if is_regression:
    value = float(example.label) if has_label else 0.0
    feature["label_values"] = [value]
    label_repr = value
  else:
    label = example.label if has_label else label_list[0]
    if label not in label_list:
      raise ValueError("example %s: label %r is not one of %r" % (
          example.guid, label, label_list))
    feature["label_ids"] = [label_list.index(label)]
    label_repr = "%s (id = %d)" % (label, feature["label_ids"][0])
  if ex_index < 5:
    logging.info("*** Example ***")
    logging.info("guid: %s", example.guid)
    logging.info("tokens: %s", " ".join(tokens))
    logging.info("input_ids: %s", " ".join(str(x) for x in input_ids))
    logging.info("segment_ids: %s", " ".join(str(x) for x in segment_ids))
    logging.info("label: %s%s", label_repr, "" if has_label else " (placeholder, unlabeled)")
  return feature


def _tokens(example, max_seq_length, tokenizer):
  """(`[CLS] a [SEP] (b [SEP])` word pieces, their segment ids), truncated to max_seq_length."""
  min_length = 3 if example.text_b is not None else 2
  if max_seq_length < min_length:
    raise ValueError("max_seq_length %d is too small (needs at least %d for [CLS]/[SEP])" % (
        max_seq_length, min_length))
  tokens_a = tokenizer.tokenize(example.text_a)
  tokens_b = None
  if example.text_b is not None:
    tokens_b = tokenizer.tokenize(example.text_b)
    # Account for [CLS], [SEP], [SEP] with "- 3".
    _truncate_seq_pair(tokens_a, tokens_b, max_seq_length - 3)
  elif len(tokens_a) > max_seq_length - 2:
    # Account for [CLS] and [SEP] with "- 2".
    tokens_a = tokens_a[0:(max_seq_length - 2)]
  tokens = ["[CLS]"] + tokens_a + ["[SEP]"]
  segment_ids = [0] * len(tokens)
  if tokens_b is not None:
    tokens += tokens_b + ["[SEP]"]
    segment_ids += [1] * (len(tokens_b) + 1)
  return tokens, segment_ids


def convert_examples_to_features(examples, label_list, max_seq_length, tokenizer,
                                 is_regression=False):
  """Converts a list of `InputExample`s to a list of feature dicts (see convert_single_example).

  Logs progress every 10,000 examples and how many examples were truncated.
  """
  features = []
  num_truncated = 0
  for (ex_index, example) in enumerate(examples):
    if ex_index % 10000 == 0:
      logging.info("Writing example %d of %d", ex_index, len(examples))
    feature = convert_single_example(ex_index, example, label_list, max_seq_length, tokenizer,
                                     is_regression)
    if len(feature["input_ids"]) == max_seq_length:
      num_truncated += 1
    features.append(feature)
  logging.info("Converted %d examples; %d reach max_seq_length=%d (possibly truncated)",
               len(features), num_truncated, max_seq_length)
  return features



def examples_fingerprint(examples):
  """sha1 over the examples' content: a changed data file rebuilds the feature cache."""
  h = hashlib.sha1()
  for ex in examples:
    h.update(repr((ex.guid, ex.text_a, ex.text_b, ex.label)).encode("utf-8"))
  return h.hexdigest()
