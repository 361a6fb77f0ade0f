"""Augmented copies of sentence (pair) examples for distillation (--kd_augment), as TextBrewer
makes them: each copy applies one operation, drawn at random, to the words of one text:

  mask      one word becomes [MASK];
  delete    one word is dropped (a text keeps at least one word);
  ngram     a contiguous n-gram of at least half the words is kept, the rest dropped;
  reorder   two words swap places.

A copy's label is the teacher's prediction on it (distillation relabels it when it caches the
teacher's outputs). The copies of a seed are always the same: each example draws from its own
generator, keyed by (seed, example index).
"""

import random

from theseus.tasks.classifier.reader import InputExample

OPERATIONS = ("mask", "delete", "ngram", "reorder")
MASK = "[MASK]"


def _apply(operation, words, rng):
  words = list(words)
  if operation == "mask":
    words[rng.randrange(len(words))] = MASK
  elif operation == "delete" and len(words) > 1:
    del words[rng.randrange(len(words))]
  elif operation == "ngram" and len(words) > 1:
    n = rng.randint((len(words) + 1) // 2, len(words))
    start = rng.randint(0, len(words) - n)
    words = words[start:start + n]
  elif operation == "reorder" and len(words) > 1:
    i, j = rng.sample(range(len(words)), 2)
    words[i], words[j] = words[j], words[i]
  return words


def augmented_copies(examples, copies, seed, first_index):
  """`copies` augmented InputExamples of each example, in example order.

  Args:
    examples: the training InputExamples.
    copies: how many copies of each.
    seed: the run's seed.
    first_index: the index (guid suffix) of the first copy: copies follow the originals.

  Returns:
    list of InputExample (label: the original's, to be replaced by the teacher's prediction).
  """
  out = []
  for index, example in enumerate(examples):
    rng = random.Random("%d/%d" % (seed, index))
    for _ in range(copies):
      texts = [example.text_a] + ([example.text_b] if example.text_b is not None else [])
      which = rng.randrange(len(texts))
      words = texts[which].split() or [texts[which]]
      texts[which] = " ".join(_apply(rng.choice(OPERATIONS), words, rng))
      out.append(InputExample("augmented-%d" % (first_index + len(out)), texts[0],
                              texts[1] if len(texts) > 1 else None, example.label,
                              example.line))
  return out
