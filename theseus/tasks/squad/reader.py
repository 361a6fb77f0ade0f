"""SQuAD JSON files (v1.1 and v2.0) -> SquadExamples, every field checked.

The file is the official format: {"data": [{"title", "paragraphs": [{"context", "qas": [{"id",
"question", "answers": [{"text", "answer_start"}], "is_impossible" (v2.0)}]}]}]}. The context is
split into words on whitespace, as google-research/bert does; each answer's character offset
becomes a (first word, last word) span. A bad question is one line naming the file and its id.
"""

import collections

from theseus import files
from theseus.errors import InputDataError

SquadExample = collections.namedtuple("SquadExample", [
    "qas_id", "question_text", "context_text", "doc_tokens", "word_char_starts",
    "answer_text", "start_word", "end_word", "is_impossible", "gold_answers"
])
SquadExample.__doc__ = """One question about one context.

  qas_id: the question's "id".
  question_text, context_text: as in the file.
  doc_tokens: the context's whitespace-separated words.
  word_char_starts: the character offset in context_text where each word starts.
  answer_text, start_word, end_word: the first answer and its words [start, end] (inclusive);
    None (and -1, -1) for a question without answers or an unanswerable one.
  is_impossible: v2.0's unanswerable question.
  gold_answers: every answer text (for scoring; [] for an unanswerable question).
"""


def is_whitespace(char):
  """SQuAD's word separators: spaces, tabs, line ends and the narrow no-break space."""
  return char in " \t\r\n" or ord(char) == 0x202F


def split_words(text):
  """(words, the character offset of each word's start, the word of each character)."""
  words, starts, word_of_char = [], [], []
  previous_space = True
  for i, char in enumerate(text):
    if is_whitespace(char):
      previous_space = True
    else:
      if previous_space:
        words.append(char)
        starts.append(i)
      else:
        words[-1] += char
      previous_space = False
    word_of_char.append(len(words) - 1)
  return words, starts, word_of_char


def _field(obj, key, kind, path, where):
  if not isinstance(obj, dict) or key not in obj:
    raise InputDataError("%s has no %r" % (where, key), path)
  value = obj[key]
  if not isinstance(value, kind):
    raise InputDataError("%s: %r is %s, expected %s" % (
        where, key, type(value).__name__, kind.__name__ if isinstance(kind, type) else
        " or ".join(k.__name__ for k in kind)), path)
  return value


def _answer_span(answer, context, word_of_char, path, where):
  """(text, start word, end word) of one answer, checked against the context."""
  text = _field(answer, "text", str, path, where)
  start = _field(answer, "answer_start", int, path, where)
  if not text.strip():
    raise InputDataError("%s: empty answer text" % where, path)
  if start < 0 or context[start:start + len(text)] != text:
    found = context.find(text)
    hint = (" (the text is at %d)" % found) if found >= 0 else " (the text is not in the context)"
    raise InputDataError("%s: answer_start %d does not point at its text %r%s" % (
        where, start, text[:60], hint), path)
  end = start + len(text) - 1
  while end > start and is_whitespace(context[end]):
    end -= 1
  first = start
  while first < end and is_whitespace(context[first]):
    first += 1
  return text, word_of_char[first], word_of_char[end]


_Skipped = collections.namedtuple("_Skipped", ["problem"])  # a bad question --skip_bad_rows skips


def _example(qa, context, words, starts, word_of_char, path, need_answers, skip_bad):
  """The SquadExample of one question (a _Skipped when skip_bad skips a bad one)."""
  where = "question %s" % (qa.get("id") if isinstance(qa, dict) else "?")
  try:
    qas_id = _field(qa, "id", (str, int), path, "a question")
    where = "question %s" % qas_id
    question = _field(qa, "question", str, path, where)
    if not question.strip():
      raise InputDataError("%s: empty question" % where, path)
    impossible = bool(qa.get("is_impossible", False))
    answers = _field(qa, "answers", list, path, where) if ("answers" in qa or need_answers) \
        else []
    spans = [_answer_span(a, context, word_of_char, path, where)
             for a in (answers if not impossible else [])]
    if need_answers and not spans and not impossible:
      raise InputDataError("%s: no answers (training and --do_eval need them; a v2.0 "
                           "unanswerable question says \"is_impossible\": true)" % where, path)
  except InputDataError as e:
    if not skip_bad:
      raise
    return _Skipped(str(e))
  text, start_word, end_word = spans[0] if spans else (None, -1, -1)
  return SquadExample(str(qas_id), question, context, words, starts, text, start_word, end_word,
                      impossible, [s[0] for s in spans])


def read_squad_file(path, need_answers, skip_bad=False, limit=0):
  """The examples of a SQuAD JSON file, in the file's order.

  Args:
    path: the file.
    need_answers: every question must have an answer or be unanswerable (training, --do_eval).
    skip_bad: skip (and count) bad questions instead of failing (--skip_bad_rows).
    limit: if > 0, the first `limit` questions only.

  Returns:
    (list of SquadExample, the one-line problems of the bad questions skipped, the file's
    "version").

  Raises:
    InputDataError: one line naming the file and, for a bad question, its id.
  """
  document = files.read_json_object(path, "SQuAD file")
  articles = _field(document, "data", list, path, "the file")
  examples, skipped, seen = [], [], set()
  for a, article in enumerate(articles):
    for p, paragraph in enumerate(_field(article, "paragraphs", list, path,
                                         "article %d" % a)):
      where = "article %d paragraph %d" % (a, p)
      context = _field(paragraph, "context", str, path, where)
      if not context.strip():
        raise InputDataError("%s: empty context" % where, path)
      words, starts, word_of_char = split_words(context)
      for qa in _field(paragraph, "qas", list, path, where):
        example = _example(qa, context, words, starts, word_of_char, path, need_answers,
                           skip_bad)
        if isinstance(example, _Skipped):
          skipped.append(example.problem)
          continue
        if example.qas_id in seen:
          raise InputDataError("question %s appears twice" % example.qas_id, path)
        seen.add(example.qas_id)
        examples.append(example)
        if limit and len(examples) >= limit:
          return examples, skipped, str(document.get("version", ""))
  if not examples:
    raise InputDataError("no questions%s" % (" left (%d bad ones skipped)" % len(skipped)
                                             if skipped else ""), path)
  return examples, skipped, str(document.get("version", ""))
