"""SQuAD's exact match and F1, computed as the official evaluation scripts compute them.

An answer is normalised (lower case, punctuation and the articles a / an / the removed,
whitespace collapsed), then compared with each gold answer; a question scores the maximum over
its gold answers, and a set the mean, in percent.

* v1.1 (evaluate-v1.1.py): every gold answer counts; F1 is 0 when no token is shared (also
  when both are empty).
* v2.0 (evaluate-v2.0.py): gold answers that normalise to nothing are dropped, an unanswerable
  question has the one gold answer "" (the empty prediction is right), and F1 of an empty
  answer is 1 if both are empty, else 0. Adds the HasAns / NoAns splits and, given each
  question's no-answer score (null_odds.json), the best threshold on it.
"""

import collections
import re
import string

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(text):
  """Lower case, no punctuation, no articles, single spaces."""
  text = "".join(char for char in text.lower() if char not in _PUNCTUATION)
  return " ".join(_ARTICLES.sub(" ", text).split())


def exact_score(prediction, gold):
  return int(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction, gold, version_2=False):
  """Token-bag F1 of two answers (the v2.0 rule for empty answers with version_2)."""
  predicted = normalize_answer(prediction).split() if prediction or not version_2 else []
  expected = normalize_answer(gold).split() if gold or not version_2 else []
  if version_2 and (not predicted or not expected):
    return int(predicted == expected)
  shared = sum((collections.Counter(predicted) & collections.Counter(expected)).values())
  if shared == 0:
    return 0
  precision, recall = shared / len(predicted), shared / len(expected)
  return 2 * precision * recall / (precision + recall)


def gold_answers(answers, version_2):
  """The gold answers a question is scored against (v2.0: [""] when none is left)."""
  if not version_2:
    return list(answers)
  kept = [a for a in answers if normalize_answer(a)]
  return kept or [""]


def question_scores(examples, predictions, version_2):
  """{qas_id: (exact, f1)} of the questions that have a prediction."""
  scores = collections.OrderedDict()
  for example in examples:
    if example.qas_id not in predictions:
      continue
    prediction = predictions[example.qas_id]
    golds = gold_answers(example.gold_answers, version_2)
    scores[example.qas_id] = (max(exact_score(prediction, g) for g in golds),
                              max(f1_score(prediction, g, version_2) for g in golds))
  return scores


def squad_v1_metrics(examples, predictions):
  """{"exact_match", "f1"} in percent; a question without a prediction scores 0."""
  scores = question_scores(examples, predictions, False)
  total = len(examples)
  return {"exact_match": 100.0 * sum(e for e, _ in scores.values()) / total,
          "f1": 100.0 * sum(f for _, f in scores.values()) / total}


def _mean(scores, ids):
  return (100.0 * sum(scores[i][0] for i in ids) / len(ids),
          100.0 * sum(scores[i][1] for i in ids) / len(ids))


def _best_threshold(scores, has_answer, predictions, null_odds, which):
  """evaluate-v2.0.py's best score (percent) and threshold on the no-answer scores."""
  current = best = sum(1 for answered in has_answer.values() if not answered)
  threshold = 0.0
  for qas_id in sorted(null_odds, key=lambda k: null_odds[k]):
    if qas_id not in scores:
      continue
    if has_answer[qas_id]:
      current += scores[qas_id][which]
    else:
      current += -1 if predictions[qas_id] else 0
    if current > best:
      best, threshold = current, null_odds[qas_id]
  return 100.0 * best / len(scores), threshold


def squad_v2_metrics(examples, predictions, null_odds=None):
  """evaluate-v2.0.py's figures: exact, f1, total, HasAns_* / NoAns_* of the answers as
  predicted (the script without a no-answer file) and, with `null_odds` ({qas_id: no-answer
  score}, in the order written), best_exact(_thresh), best_f1(_thresh) (the script with
  null_odds.json as its --na-prob-file)."""
  scores = question_scores(examples, predictions, True)
  has_answer = {e.qas_id: bool(e.gold_answers) and not e.is_impossible for e in examples}
  metrics = collections.OrderedDict()
  metrics["exact"], metrics["f1"] = _mean(scores, list(scores))
  metrics["total"] = len(scores)
  for prefix, wanted in (("HasAns", True), ("NoAns", False)):
    ids = [i for i in scores if has_answer[i] == wanted]
    if ids:
      exact, f1 = _mean(scores, ids)
      metrics.update({prefix + "_exact": exact, prefix + "_f1": f1, prefix + "_total": len(ids)})
  if null_odds is not None:
    metrics["best_exact"], metrics["best_exact_thresh"] = _best_threshold(
        scores, has_answer, predictions, null_odds, 0)
    metrics["best_f1"], metrics["best_f1_thresh"] = _best_threshold(
        scores, has_answer, predictions, null_odds, 1)
  return metrics
