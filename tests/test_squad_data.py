# coding=utf-8
"""SQuAD's reader, features, decoding and scores, against hand-worked cases and the official
evaluation scripts (../shared/peer_tests/squad, run from there)."""

import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT
from conftest import skip_or_fail
import tokenization
from theseus.errors import InputDataError
from theseus.tasks.squad import decoding
from theseus.tasks.squad import features
from theseus.tasks.squad import metrics
from theseus.tasks.squad import reader

PEER_DIR = os.path.join(REPO_ROOT, os.pardir, "shared", "peer_tests", "squad")


@pytest.fixture(scope="module")
def tokenizer(minilm_dir):
  return tokenization.FullTokenizer(os.path.join(minilm_dir, "vocab.txt"), do_lower_case=True)


def squad_file(tmp_path, paragraphs, version="1.1", name="data.json"):
  path = str(tmp_path / name)
  with open(path, "w", encoding="utf-8") as f:
    json.dump({"version": version, "data": [{"title": "t", "paragraphs": paragraphs}]}, f,
              ensure_ascii=False)
  return path


def qa(qas_id, question, context, answer, occurrence=0):
  """A question whose answer is the `occurrence`-th appearance of `answer` in `context`."""
  start = -1
  for _ in range(occurrence + 1):
    start = context.index(answer, start + 1)
  return {"id": qas_id, "question": question,
          "answers": [{"text": answer, "answer_start": start}]}


def one_example(tmp_path, context, question, answer, occurrence=0):
  path = squad_file(tmp_path, [{"context": context,
                                "qas": [qa("q1", question, context, answer, occurrence)]}])
  examples, _, _ = reader.read_squad_file(path, need_answers=True)
  return examples[0]


# ------------------------------------------------------------------------------------ features

TEN = "one two three four five six seven eight nine ten"


def test_a_long_question_is_cut_to_max_query_length(tokenizer, tmp_path):
  question = "what is the name of the river that flows through the old city"
  example = one_example(tmp_path, TEN, question, "four")
  feats, metas = features.convert_examples_to_features([example], tokenizer, 64, 16, 5)
  assert metas[0].tokens[:7] == ["[CLS]", "what", "is", "the", "name", "of", "[SEP]"]
  assert feats[0]["segment_ids"][:7] == [0] * 7 and feats[0]["segment_ids"][7] == 1


def test_windows_max_context_and_an_answer_across_a_window_border(tokenizer, tmp_path):
  # Query "why" (1 piece): [CLS] why [SEP] leaves 6 of 10 positions for the context; windows
  # start every 3 pieces: pieces [0, 6), [3, 9), [6, 10).
  example = one_example(tmp_path, TEN, "why", "five six seven")
  feats, metas = features.convert_examples_to_features([example], tokenizer, 10, 3, 64)
  assert [m.tokens[3:-1] for m in metas] == [TEN.split()[0:6], TEN.split()[3:9],
                                            TEN.split()[6:10]]
  # Worked by hand: score = min(left, right) + 0.01 * length; ties go to the earlier window.
  # "four" (3): w0 min(3,2)=2.06, w1 min(0,5)=0.06 -> w0; "five" (4): 1.06 vs 1.06 -> w0;
  # "six" (5): 0.06 vs 2.06 -> w1; "seven" (6): w1 min(3,2)=2.06, w2 min(0,3)=0.04 -> w1;
  # "eight" (7): w1 1.06, w2 1.04 -> w1; "nine" (8): w1 0.06, w2 min(2,1)=1.04 -> w2.
  assert [m.max_context[3:-1] for m in metas] == [
      [True, True, True, True, True, False],
      [False, False, True, True, True, False],
      [False, False, True, True]]
  # The answer (pieces 4-6) lies whole only in window 1; the others point at [CLS].
  assert [(f["start_positions"][0], f["end_positions"][0]) for f in feats] == [
      (0, 0), (3 + 1, 3 + 3), (0, 0)]
  assert [m.word_of_position[4] for m in metas] == [1, 4, 7]


def test_an_answer_inside_a_word_is_tightened_and_decoded_from_the_context(tokenizer,
                                                                           tmp_path):
  context = "It opened in 1854 (revised 1901), then closed."
  example = one_example(tmp_path, context, "when was it revised?", "1901")
  assert example.doc_tokens[example.start_word] == "1901),"
  feats, metas = features.convert_examples_to_features([example], tokenizer, 64, 16, 64)
  start, end = feats[0]["start_positions"][0], feats[0]["end_positions"][0]
  assert metas[0].tokens[start:end + 1] == ["1901"]
  text, first, last = decoding.answer_text(example, metas[0], start, end,
                                           tokenizer.convert_tokens_to_string, True)
  assert text == "1901" and context[first:last] == "1901"


@pytest.mark.parametrize("answer", ["Zürich", "crème brûlée", "Müller"])
def test_accents_and_non_ascii_are_cut_from_the_original_text(tokenizer, tmp_path, answer):
  context = "The café Müller in Zürich serves crème brûlée."
  example = one_example(tmp_path, context, "what?", answer)
  feats, metas = features.convert_examples_to_features([example], tokenizer, 64, 16, 64)
  start, end = feats[0]["start_positions"][0], feats[0]["end_positions"][0]
  assert start > 0 and end >= start
  text, first, last = decoding.answer_text(example, metas[0], start, end,
                                           tokenizer.convert_tokens_to_string, True)
  assert text == answer and context[first:last] == answer


def _peaked(length, start, end, height=8.0):
  start_logits, end_logits = np.zeros(length), np.zeros(length)
  start_logits[start], end_logits[end] = height, height
  return start_logits, end_logits


def test_decoding_takes_the_window_with_the_most_context(tokenizer, tmp_path):
  example = one_example(tmp_path, TEN, "why", "five six seven")
  feats, metas = features.convert_examples_to_features([example], tokenizer, 10, 3, 64)
  # Window 0 is sure of "six" (piece 5, its last position), which has its most context in
  # window 1; window 1 proposes "eight" (piece 7) with less confidence: "eight" wins.
  logits = [_peaked(len(f["input_ids"]), 3 + piece - start, 3 + piece - start, height)
            for f, start, piece, height in zip(feats, [0, 3, 6], [5, 7, 6], [9.0, 6.0, 1.0])]
  predictions, nbest, _ = decoding.decode_examples(
      [example], metas, [l[0] for l in logits], [l[1] for l in logits], 5, 30, False, 0.0,
      tokenizer.convert_tokens_to_string, True)
  assert predictions["q1"] == "eight"
  assert "six" not in [e["text"] for e in nbest["q1"]]
  assert abs(sum(e["probability"] for e in nbest["q1"]) - 1.0) < 1e-9


def test_decoding_v2_prefers_no_answer_above_the_threshold(tokenizer, tmp_path):
  example = one_example(tmp_path, TEN, "why", "four")
  feats, metas = features.convert_examples_to_features([example], tokenizer, 32, 8, 64)
  start_logits, end_logits = _peaked(len(feats[0]["input_ids"]), 6, 6)  # "four"
  start_logits[0], end_logits[0] = 5.0, 5.0  # [CLS]: null score 10 vs best 16
  for threshold, expected in ((0.0, "four"), (-7.0, "")):
    predictions, _, null_odds = decoding.decode_examples(
        [example], metas, [start_logits], [end_logits], 20, 30, True, threshold,
        tokenizer.convert_tokens_to_string, True)
    assert null_odds["q1"] == pytest.approx(10.0 - 16.0)
    assert predictions["q1"] == expected


def test_answers_longer_than_max_answer_length_are_not_proposed(tokenizer, tmp_path):
  example = one_example(tmp_path, TEN, "why", "four")
  feats, metas = features.convert_examples_to_features([example], tokenizer, 32, 8, 64)
  start_logits, end_logits = _peaked(len(feats[0]["input_ids"]), 3, 8)  # 6 pieces
  predictions, _, _ = decoding.decode_examples(
      [example], metas, [start_logits], [end_logits], 3, 3, False, 0.0,
      tokenizer.convert_tokens_to_string, True)
  assert len(predictions["q1"].split()) <= 3


# ------------------------------------------------------------------------------- bad input


def _read_error(tmp_path, document, need_answers=True):
  path = str(tmp_path / "bad.json")
  with open(path, "w", encoding="utf-8") as f:
    f.write(document if isinstance(document, str) else json.dumps(document))
  with pytest.raises(InputDataError) as e:
    reader.read_squad_file(path, need_answers)
  return str(e.value).replace(path, "<file>")


def _doc(context="Some context here.", **question):
  entry = {"id": "q7", "question": "what?",
           "answers": [{"text": "context", "answer_start": 5}]}
  entry.update(question)
  return {"version": "1.1", "data": [{"title": "t", "paragraphs": [
      {"context": context, "qas": [{k: v for k, v in entry.items() if v is not None}]}]}]}


@pytest.mark.parametrize("document, message", [
    ("{not json", "<file>: SQuAD file is not valid JSON"),
    ({"version": "1.1"}, "<file>: the file has no 'data'"),
    (_doc(question=None), "<file>: question q7 has no 'question'"),
    (_doc(answers=[{"text": "context", "answer_start": 3}]),
     "<file>: question q7: answer_start 3 does not point at its text 'context' (the text is at "
     "5)"),
    (_doc(answers=[{"text": "context", "answer_start": "5"}]),
     "<file>: question q7: 'answer_start' is str, expected int"),
    (_doc(context="  "), "<file>: article 0 paragraph 0: empty context"),
])
def test_a_bad_file_is_one_line_naming_the_question(tmp_path, document, message):
  assert _read_error(tmp_path, document).startswith(message)


def test_answers_are_needed_for_training_and_eval_only(tmp_path):
  document = _doc(answers=[])
  assert "question q7: no answers (training and --do_eval need them" in _read_error(
      tmp_path, document)
  path = str(tmp_path / "ok.json")
  with open(path, "w") as f:
    json.dump(document, f)
  examples, _, _ = reader.read_squad_file(path, need_answers=False)
  assert examples[0].answer_text is None and examples[0].gold_answers == []


def test_skip_bad_rows_skips_and_reports_bad_questions(tmp_path):
  document = _doc(answers=[{"text": "context", "answer_start": 3}])
  document["data"][0]["paragraphs"][0]["qas"].append(
      {"id": "q8", "question": "ok?", "answers": [{"text": "context", "answer_start": 5}]})
  path = str(tmp_path / "mixed.json")
  with open(path, "w") as f:
    json.dump(document, f)
  examples, skipped, _ = reader.read_squad_file(path, True, skip_bad=True)
  assert [e.qas_id for e in examples] == ["q8"] and len(skipped) == 1 and "q7" in skipped[0]


# -------------------------------------------------------------- scores vs the official scripts


def _official(script, data_path, predictions, tmp_path, na_probs=None):
  if not os.path.isfile(os.path.join(PEER_DIR, script)):
    skip_or_fail("%s not found in %s" % (script, PEER_DIR))
  pred_path = str(tmp_path / "predictions.json")
  with open(pred_path, "w", encoding="utf-8") as f:
    json.dump(predictions, f)
  args = [sys.executable, script, data_path, pred_path]
  if na_probs is not None:
    with open(str(tmp_path / "na.json"), "w") as f:
      json.dump(na_probs, f)
    args += ["--na-prob-file", str(tmp_path / "na.json")]
  proc = subprocess.run(args, cwd=PEER_DIR, capture_output=True, text=True, check=True)
  return json.loads(proc.stdout.strip().splitlines()[-1] if script.endswith("1.1.py")
                    else proc.stdout)


def _perturbed_predictions(examples, seed):
  """Per question one of: a gold answer, one with articles / punctuation / case changed, a
  part of it, another question's answer, "", or no prediction at all."""
  rng = random.Random(seed)
  predictions = {}
  for example in examples:
    gold = rng.choice(example.gold_answers) if example.gold_answers else "nothing"
    kind = rng.randrange(6)
    if kind == 5:
      continue
    predictions[example.qas_id] = [
        gold, "The " + gold.upper() + "!", " ".join(gold.split()[:1]),
        rng.choice(examples).context_text[:rng.randrange(1, 40)], "", gold][kind]
  return predictions


def test_v1_scores_equal_the_official_script(shared_data_dir, tmp_path):
  path = os.path.join(shared_data_dir, "squad", "dev.json")
  examples, _, _ = reader.read_squad_file(path, need_answers=True)
  predictions = _perturbed_predictions(examples, seed=1)
  ours = metrics.squad_v1_metrics(examples, predictions)
  official = _official("evaluate-v1.1.py", path, predictions, tmp_path)
  assert 0 < ours["exact_match"] < ours["f1"] < 100
  for key in ("exact_match", "f1"):
    assert abs(ours[key] - official[key]) < 1e-6, (key, ours[key], official[key])


def make_v2_file(shared_data_dir, tmp_path, num_paragraphs=12):
  """A SQuAD 2.0 file: real dev paragraphs, each with its questions and two unanswerable ones
  (questions of another article, "is_impossible": true)."""
  with open(os.path.join(shared_data_dir, "squad", "dev.json"), encoding="utf-8") as f:
    articles = json.load(f)["data"]
  paragraphs = [p for p in articles[0]["paragraphs"][:num_paragraphs]]
  strangers = [q for p in articles[1]["paragraphs"] for q in p["qas"]]
  for i, paragraph in enumerate(paragraphs):
    for k in range(2):
      stranger = strangers[2 * i + k]
      paragraph["qas"].append({"id": "neg-%d-%d" % (i, k), "question": stranger["question"],
                               "answers": [], "plausible_answers": stranger["answers"],
                               "is_impossible": True})
  return squad_file(tmp_path, paragraphs, version="v2.0", name="v2.json")


def test_v2_scores_equal_the_official_script(shared_data_dir, tmp_path):
  path = make_v2_file(shared_data_dir, tmp_path)
  examples, _, _ = reader.read_squad_file(path, need_answers=True)
  assert sum(e.is_impossible for e in examples) == 24
  rng = random.Random(4)
  predictions = _perturbed_predictions(examples, seed=2)
  predictions.update({e.qas_id: "" for e in examples if rng.random() < 0.3})
  for e in examples:
    predictions.setdefault(e.qas_id, "")  # v2.0's script skips questions without one
  null_odds = {e.qas_id: round(rng.uniform(-5, 5), 1) for e in examples}  # with ties
  ours = metrics.squad_v2_metrics(examples, predictions, null_odds)
  # The answers as predicted: the script without a no-answer file; the best thresholds: with
  # null_odds.json as that file (as google-research/bert's README runs it).
  official = _official("evaluate-v2.0.py", path, predictions, tmp_path)
  with_odds = _official("evaluate-v2.0.py", path, predictions, tmp_path, null_odds)
  official.update({k: v for k, v in with_odds.items() if k.startswith("best_")})
  assert set(official) == set(ours) and 0 < ours["NoAns_exact"] < 100
  for key in official:
    assert abs(ours[key] - official[key]) < 1e-6, (key, ours[key], official[key])


# ------------------------------------------------------------------------- the run's checks


def _squad_settings(minilm_dir, tmp_path, **values):
  from theseus.app import runner  # pylint: disable=g-import-not-at-top
  from theseus.tasks.squad import task  # pylint: disable=g-import-not-at-top
  config = str(tmp_path / "bert_config.json")
  with open(config, "w") as f:
    json.dump({"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2,
               "num_hidden_layers": 2, "max_position_embeddings": 512, "type_vocab_size": 2,
               "vocab_size": 30522, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
               "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02}, f)
  return runner.settings_of(
      task.SquadRun, bert_config_file=config,
      vocab_file=os.path.join(minilm_dir, "vocab.txt"), output_dir=str(tmp_path / "out"),
      **values)


def test_the_run_refuses_a_v2_file_without_the_flag_and_a_length_without_room(
    minilm_dir, shared_data_dir, tmp_path):
  from conftest import read_task_run  # pylint: disable=g-import-not-at-top
  from theseus.tasks.squad import task  # pylint: disable=g-import-not-at-top
  v2 = make_v2_file(shared_data_dir, tmp_path, num_paragraphs=1)
  settings = _squad_settings(minilm_dir, tmp_path, do_eval=True, predict_file=v2)
  assert settings.model.max_seq_length == 384  # run_squad.py's default
  with pytest.raises(InputDataError) as e:
    read_task_run(task.SquadRun, settings, {"dev"})
  assert str(e.value).startswith("%s: question neg-0-0 is unanswerable (is_impossible): this "
                                 "is a SQuAD 2.0 file; pass --version_2_with_negative" % v2)
  read_task_run(task.SquadRun, settings.replace(version_2_with_negative=True), {"dev"})
  with pytest.raises(InputDataError) as e:
    read_task_run(task.SquadRun, settings.replace(max_seq_length=64, version_2_with_negative=True),
                  {"dev"})
  assert str(e.value) == ("--max_seq_length=64 leaves no room for the context after "
                          "--max_query_length=64 and 3 special tokens")
