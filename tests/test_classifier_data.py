# coding=utf-8
"""Tests for the data half of run_classifier.py: processors, features, metrics, writers.

Real files come from the shared data dir (see ../shared/data/SOURCES.md; the tests skip when
it is absent). Tasks that are not in the shared data are tested on small files written here
in the real GLUE layout.
"""

import collections
import json
import logging as std_logging
import math
import os

import numpy as np
import pytest

from theseus.tasks.classifier import datasets as classifier_datasets
from theseus.tasks.classifier import features as classifier_features
from theseus.tasks.classifier import metrics as classifier_metrics
from theseus.tasks.classifier import reader as classifier_reader
from theseus.tasks.classifier import task as classifier_task
from theseus import errors

# ---- helpers ---------------------------------------------------------------------------------


def _write(path, text, encoding="utf-8"):
  path = str(path)
  with open(path, "wb") as f:
    f.write(text.encode(encoding) if isinstance(text, str) else text)
  return path


def _tsv(*rows):
  return "".join("\t".join(row) + "\n" for row in rows)


def _label_counts(examples):
  return dict(collections.Counter(e.label for e in examples))


class _WhitespaceTokenizer(object):
  """Splits on whitespace; every token gets a stable id (enough to test feature layout)."""

  def __init__(self):
    self.vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3}

  def tokenize(self, text):
    return text.split()

  def convert_tokens_to_ids(self, tokens):
    for token in tokens:
      self.vocab.setdefault(token, len(self.vocab))
    return [self.vocab[t] for t in tokens]


# ---- real data (shared data dir) --------------------------------------------------------------


def test_sst2_real_files(shared_data_dir):
  data_dir = os.path.join(shared_data_dir, "glue", "SST-2")
  processor = classifier_datasets.PROCESSORS["sst-2"]()
  train = processor.get_train_examples(data_dir)
  dev = processor.get_dev_examples(data_dir)
  assert len(train) == 67349
  assert _label_counts(train) == {"1": 37569, "0": 29780}
  assert len(dev) == 872
  assert _label_counts(dev) == {"1": 444, "0": 428}
  assert dev[0].text_a.strip() == "it 's a charming and often affecting journey ."
  assert dev[0].label == "1" and dev[0].text_b is None
  assert dev[0].guid == "dev-0" and dev[0].line == 2
  assert processor.num_skipped_rows == 0
  assert not processor.is_regression and processor.main_metric == "accuracy"


def test_mrpc_real_files_with_bom(shared_data_dir):
  data_dir = os.path.join(shared_data_dir, "glue", "MRPC")
  processor = classifier_datasets.PROCESSORS["mrpc"]()
  train = processor.get_train_examples(data_dir)
  dev = processor.get_dev_examples(data_dir)
  assert len(train) == 3668
  assert _label_counts(train) == {"1": 2474, "0": 1194}
  assert len(dev) == 408
  assert _label_counts(dev) == {"1": 279, "0": 129}
  assert dev[0].text_a.startswith("He said the foodservice pie business")
  assert dev[0].text_b.startswith('" The foodservice pie business does not fit')
  assert processor.num_skipped_rows == 0
  assert processor.main_metric == "f1"


def test_rte_real_files(shared_data_dir):
  data_dir = os.path.join(shared_data_dir, "glue", "RTE")
  processor = classifier_datasets.PROCESSORS["rte"]()
  train = processor.get_train_examples(data_dir)
  dev = processor.get_dev_examples(data_dir)
  assert len(train) == 2490
  assert _label_counts(train) == {"entailment": 1249, "not_entailment": 1241}
  assert len(dev) == 277
  assert _label_counts(dev) == {"entailment": 146, "not_entailment": 131}
  assert train[0].text_b == "Weapons of Mass Destruction Found in Iraq."
  assert train[0].label == "not_entailment"


def test_lcqmc_real_dev_both_formats(shared_data_dir):
  data_dir = os.path.join(shared_data_dir, "lcqmc")
  tsv_dev = classifier_datasets.PROCESSORS["lcqmc"]().get_dev_examples(data_dir)
  csv_processor = classifier_datasets.LcqmcProcessor(file_format="csv")
  csv_dev = csv_processor.get_dev_examples(data_dir)
  for dev in (tsv_dev, csv_dev):
    assert len(dev) == 8802
    assert _label_counts(dev) == {"1": 4402, "0": 4400}
  # The two copies hold the same rows; the CSV's CRLF leaves no "\r" behind.
  assert [(e.text_a, e.text_b, e.label) for e in tsv_dev] == [
      (e.text_a, e.text_b, e.label) for e in csv_dev]
  assert not any("\r" in e.text_a + e.text_b for e in csv_dev)
  test = csv_processor.get_test_examples(data_dir)
  assert len(test) == 12500
  assert _label_counts(test) == {"1": 6250, "0": 6250}


def test_lcqmc_missing_split_names_both_forms(shared_data_dir):
  data_dir = os.path.join(shared_data_dir, "lcqmc")
  with pytest.raises(errors.InputDataError) as e:
    classifier_datasets.LcqmcProcessor().get_train_examples(data_dir)
  assert "train.tsv" in str(e.value) and "LCQMC_train.csv" in str(e.value)


# ---- GLUE tasks not in the shared data: small files in the real layout --------------------------

COLA_TRAIN = _tsv(
    ["gj04", "1", "", "Our friends won't buy this analysis, let alone the next one we propose."],
    ["gj04", "0", "*", "They drank the pub."],
    ["cj99", "1", "", 'The "more" you read, the less you know.'],
)
COLA_TEST = _tsv(["index", "sentence"], ["0", "Bill whistled past the house."],
                 ["1", "The car honked its way down the road."])


def test_cola_files(tmp_path):
  _write(tmp_path / "train.tsv", COLA_TRAIN)
  _write(tmp_path / "dev.tsv", COLA_TRAIN)
  _write(tmp_path / "test.tsv", COLA_TEST)
  processor = classifier_datasets.PROCESSORS["cola"]()
  train = processor.get_train_examples(str(tmp_path))
  assert [e.label for e in train] == ["1", "0", "1"]
  assert train[1].text_a == "They drank the pub."
  assert train[2].text_a == 'The "more" you read, the less you know.'
  assert train[0].line == 1  # no header
  assert len(processor.get_dev_examples(str(tmp_path))) == 3
  test = processor.get_test_examples(str(tmp_path))
  assert [e.text_a for e in test] == ["Bill whistled past the house.",
                                      "The car honked its way down the road."]
  assert all(e.label is None for e in test)
  assert processor.main_metric == "mcc"


def test_qnli_files(tmp_path):
  _write(tmp_path / "train.tsv", _tsv(
      ["index", "question", "sentence", "label"],
      ["0", "When did the third Digimon series begin?",
       "Unlike the two seasons before it, it begins in the real world.", "not_entailment"],
      ["1", "Which missile batteries often have individual launchers?",
       "When MANPADS is operated by specialists, batteries may have several dozen teams.",
       "entailment"]))
  _write(tmp_path / "test.tsv", _tsv(["index", "question", "sentence"],
                                     ["0", "What is it?", "It is a test."]))
  processor = classifier_datasets.PROCESSORS["qnli"]()
  train = processor.get_train_examples(str(tmp_path))
  assert [e.label for e in train] == ["not_entailment", "entailment"]
  assert train[0].text_a == "When did the third Digimon series begin?"
  assert train[1].text_b.startswith("When MANPADS")
  test = processor.get_test_examples(str(tmp_path))
  assert (test[0].text_a, test[0].text_b, test[0].label) == ("What is it?", "It is a test.", None)


def test_qqp_files(tmp_path):
  _write(tmp_path / "dev.tsv", _tsv(
      ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
      ["201359", "303345", "303346", "Why are African-Americans so beautiful?",
       "Why are hispanics so beautiful?", "0"],
      ["263843", "69383", "380476", "I want to pursue PhD in Computer Science.",
       "I handle social media for a non-profit. What should I do?", "1"]))
  _write(tmp_path / "test.tsv", _tsv(["id", "question1", "question2"],
                                     ["0", "Is it raining?", "Does it rain?"]))
  processor = classifier_datasets.PROCESSORS["qqp"]()
  dev = processor.get_dev_examples(str(tmp_path))
  assert [e.label for e in dev] == ["0", "1"]
  assert dev[0].text_b == "Why are hispanics so beautiful?"
  test = processor.get_test_examples(str(tmp_path))
  assert (test[0].text_a, test[0].text_b, test[0].label) == (
      "Is it raining?", "Does it rain?", None)
  assert processor.main_metric == "f1"


_MNLI_HEAD = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse",
              "sentence2_binary_parse", "sentence1_parse", "sentence2_parse", "sentence1",
              "sentence2"]


def _mnli_row(index, s1, s2, labels):
  return [str(index), "31193", "31193n", "government", "( ( x ) )", "( ( y ) )", "(ROOT x)",
          "(ROOT y)", s1, s2] + labels


def test_mnli_files(tmp_path):
  _write(tmp_path / "train.tsv", _tsv(
      _MNLI_HEAD + ["label1", "gold_label"],
      _mnli_row(0, "Conceptually cream skimming has two basic dimensions.",
                "Product and geography are what make cream skimming work.",
                ["neutral", "neutral"]),
      _mnli_row(1, "you know during the season", "You lose the things.",
                ["entailment", "entailment"])))
  five = ["neutral", "contradiction", "contradiction", "contradiction", "contradiction"]
  _write(tmp_path / "dev_matched.tsv", _tsv(
      _MNLI_HEAD + ["label1", "label2", "label3", "label4", "label5", "gold_label"],
      _mnli_row(0, "The new rights are nice enough", "Everyone really likes the rights.",
                five + ["contradiction"])))
  _write(tmp_path / "dev_mismatched.tsv", _tsv(
      _MNLI_HEAD + ["label1", "label2", "label3", "label4", "label5", "gold_label"],
      _mnli_row(0, "Your contribution helped.", "Your contribution was pointless.",
                five + ["contradiction"]),
      _mnli_row(1, "The answer is yes.", "It is yes.", five[:4] + ["entailment"] +
                ["entailment"])))
  _write(tmp_path / "test_matched.tsv", _tsv(_MNLI_HEAD, _mnli_row(0, "A b.", "C d.", [])))
  _write(tmp_path / "test_mismatched.tsv", _tsv(_MNLI_HEAD, _mnli_row(0, "E f.", "G h.", [])))
  processor = classifier_datasets.PROCESSORS["mnli"]()
  train = processor.get_train_examples(str(tmp_path))
  assert [e.label for e in train] == ["neutral", "entailment"]
  assert train[0].text_a == "Conceptually cream skimming has two basic dimensions."
  assert train[0].text_b == "Product and geography are what make cream skimming work."
  matched = processor.get_dev_examples(str(tmp_path))
  mismatched = processor.get_dev_mismatched_examples(str(tmp_path))
  assert [e.label for e in matched] == ["contradiction"]
  assert [e.label for e in mismatched] == ["contradiction", "entailment"]
  assert mismatched[0].guid.startswith("dev_mismatched")
  sets = processor.get_dev_sets(str(tmp_path))
  assert [name for name, _ in sets] == ["dev_matched", "dev_mismatched"]
  assert [len(examples) for _, examples in sets] == [1, 2]
  test = processor.get_test_examples(str(tmp_path))
  assert (test[0].text_a, test[0].text_b, test[0].label) == ("A b.", "C d.", None)
  assert processor.get_test_mismatched_examples(str(tmp_path))[0].text_a == "E f."
  assert processor.get_labels() == ["contradiction", "entailment", "neutral"]


_STSB_HEAD = ["index", "genre", "filename", "year", "old_index", "source1", "source2",
              "sentence1", "sentence2"]


def test_stsb_files(tmp_path):
  _write(tmp_path / "train.tsv", _tsv(
      _STSB_HEAD + ["score"],
      ["0", "main-captions", "MSRvid", "2012test", "0001", "none", "none",
       "A plane is taking off.", "An air plane is taking off.", "5.000"],
      ["1", "main-captions", "MSRvid", "2012test", "0004", "none", "none",
       "A man is playing a large flute.", "A man is playing a flute.", "3.800"],
      ["2", "main-news", "MSRpar", "2012train", "0005", "none", "none",
       'He said "no".', "She said yes.", "0"]))
  _write(tmp_path / "test.tsv", _tsv(
      _STSB_HEAD, ["0", "main-captions", "MSRvid", "2012test", "0024", "none", "none",
                   "A girl is styling her hair.", "A girl is brushing her hair."]))
  for name in ("sts-b", "stsb"):
    processor = classifier_datasets.PROCESSORS[name]()
    assert processor.is_regression and processor.main_metric == "pearson"
    train = processor.get_train_examples(str(tmp_path))
    assert [e.label for e in train] == [5.0, 3.8, 0.0]
    assert train[2].text_a == 'He said "no".'
    test = processor.get_test_examples(str(tmp_path))
    assert test[0].text_b == "A girl is brushing her hair." and test[0].label is None


def test_glue_test_files_sst2_mrpc_rte(tmp_path):
  sst = tmp_path / "sst"
  mrpc = tmp_path / "mrpc"
  rte = tmp_path / "rte"
  for d in (sst, mrpc, rte):
    d.mkdir()
  _write(sst / "test.tsv", _tsv(["index", "sentence"], ["0", "uneasy mishmash of styles ."]))
  _write(mrpc / "test.tsv", u"\ufeff" + _tsv(
      ["index", "#1 ID", "#2 ID", "#1 String", "#2 String"],
      ["1", "1089874", "1089925", "PCCW 's chief operating officer", "Chief operating officer"]))
  _write(rte / "test.tsv", _tsv(["index", "sentence1", "sentence2"],
                                ["0", "Mangla was summoned.", "Mangla was summoned to court."]))
  assert classifier_datasets.PROCESSORS["sst2"]().get_test_examples(str(sst))[0].text_a == (
      "uneasy mishmash of styles .")
  ex = classifier_datasets.PROCESSORS["mrpc"]().get_test_examples(str(mrpc))[0]
  assert (ex.text_a, ex.text_b, ex.label) == (
      "PCCW 's chief operating officer", "Chief operating officer", None)
  ex = classifier_datasets.PROCESSORS["rte"]().get_test_examples(str(rte))[0]
  assert (ex.text_b, ex.label) == ("Mangla was summoned to court.", None)


def test_lcqmc_tsv_test_without_labels(tmp_path):
  _write(tmp_path / "test.tsv", _tsv([u"谁有狂三这张高清的", u"这张高清图，谁有"],
                                     [u"英雄联盟什么英雄最好", u"英雄联盟最好英雄是什么"]))
  test = classifier_datasets.LcqmcProcessor().get_test_examples(str(tmp_path))
  assert [(e.text_a, e.label) for e in test] == [(u"谁有狂三这张高清的", None),
                                                (u"英雄联盟什么英雄最好", None)]
  # A test file that carries labels keeps them.
  _write(tmp_path / "test.tsv", _tsv([u"你好", u"您好", "1"], [u"再见", u"你好", "0"]))
  test = classifier_datasets.LcqmcProcessor().get_test_examples(str(tmp_path))
  assert [e.label for e in test] == ["1", "0"]


def test_generic_tsv_csv_and_regression(tmp_path):
  _write(tmp_path / "train.tsv", _tsv(["id", "text", "label"], ["1", "good film", "pos"],
                                      ["2", "bad film", "neg"]))
  _write(tmp_path / "test.tsv", _tsv(["id", "text"], ["1", "fine film"]))
  processor = classifier_datasets.PROCESSORS["generic"](labels=["neg", "pos"], text_a_column=1,
                                                   label_column=2)
  train = processor.get_train_examples(str(tmp_path))
  assert [(e.text_a, e.label) for e in train] == [("good film", "pos"), ("bad film", "neg")]
  test = processor.get_test_examples(str(tmp_path))
  assert (test[0].text_a, test[0].label) == ("fine film", None)

  # CSV with quoting, a pair task, no header, CRLF line endings.
  _write(tmp_path / "pairs.csv", 'a,"first, with comma",yes\r\nb,"say ""hi""",no\r\n')
  processor = classifier_datasets.GenericProcessor(
      labels=["no", "yes"], text_a_column=0, text_b_column=1, label_column=2, delimiter=",",
      has_header=False, train_file="pairs.csv")
  train = processor.get_train_examples(str(tmp_path))
  assert [(e.text_a, e.text_b, e.label) for e in train] == [
      ("a", "first, with comma", "yes"), ("b", 'say "hi"', "no")]
  assert train[1].line == 2

  _write(tmp_path / "reg.tsv", _tsv(["s", "y"], ["one", "0.5"], ["two", "-2"]))
  processor = classifier_datasets.GenericProcessor(is_regression=True, train_file="reg.tsv")
  assert [e.label for e in processor.get_train_examples(str(tmp_path))] == [0.5, -2.0]
  assert processor.main_metric == "pearson"

  with pytest.raises(ValueError):
    classifier_datasets.GenericProcessor(labels=None)


_XNLI_HEAD = ["language", "gold_label", "sentence1_binary_parse", "sentence2_binary_parse",
              "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "promptID",
              "pairID", "genre"]


def _xnli_row(language, label, s1, s2):
  return [language, label, "( x )", "( y )", "(ROOT x)", "(ROOT y)", s1, s2, "1", "1", "fiction"]


def test_xnli_files_read_one_language(tmp_path):
  (tmp_path / "multinli").mkdir()
  _write(tmp_path / "multinli" / "multinli.train.zh.tsv", _tsv(
      ["premise", "hypo", "label"], ["\u4f60\u597d", "\u518d\u89c1", "contradictory"],
      ["\u5929\u6c14", "\u4e0b\u96e8", "entailment"]))
  _write(tmp_path / "xnli.dev.tsv", _tsv(
      _XNLI_HEAD, _xnli_row("en", "neutral", "A man.", "A person."),
      _xnli_row("zh", "entailment", "\u4e00", "\u4e8c"),
      _xnli_row("zh", "contradiction", "\u4e09", "\u56db")))
  _write(tmp_path / "xnli.test.tsv", _tsv(
      _XNLI_HEAD, _xnli_row("zh", "neutral", "\u4e94", "\u516d"),
      _xnli_row("de", "neutral", "Ein Mann.", "Eine Person.")))
  processor = classifier_datasets.get_processor("xnli")
  assert processor.language == "zh"  # google-research/bert's default
  train = processor.get_train_examples(str(tmp_path))
  assert [(e.text_a, e.label) for e in train] == [
      ("\u4f60\u597d", "contradiction"), ("\u5929\u6c14", "entailment")]
  dev = processor.get_dev_examples(str(tmp_path))
  assert [(e.text_a, e.text_b, e.label) for e in dev] == [
      ("\u4e00", "\u4e8c", "entailment"), ("\u4e09", "\u56db", "contradiction")]
  assert [e.guid for e in dev] == ["dev-0", "dev-1"]
  assert [e.label for e in processor.get_test_examples(str(tmp_path))] == ["neutral"]
  german = classifier_datasets.get_processor("xnli", language="de")
  assert [e.text_a for e in german.get_test_examples(str(tmp_path))] == ["Ein Mann."]
  assert processor.get_labels() == ["contradiction", "entailment", "neutral"]


def test_registry_and_aliases():
  for alias, name in (("sst2", "sst-2"), ("stsb", "sts-b")):
    assert classifier_datasets.PROCESSORS[alias] is classifier_datasets.PROCESSORS[name]
  assert all(k == k.lower() for k in classifier_datasets.PROCESSORS)
  assert isinstance(classifier_datasets.get_processor("MRPC"), classifier_datasets.MrpcProcessor)
  with pytest.raises(errors.InputDataError) as e:
    classifier_datasets.get_processor("nope")
  assert "nope" in str(e.value) and "mrpc" in str(e.value)
  expected = {"sst-2": "accuracy", "mrpc": "f1", "rte": "accuracy", "cola": "mcc",
              "qnli": "accuracy", "qqp": "f1", "mnli": "accuracy", "sts-b": "pearson",
              "lcqmc": "accuracy", "xnli": "accuracy"}
  for name, metric in expected.items():
    processor = classifier_datasets.PROCESSORS[name]()
    assert processor.main_metric == metric
    assert metric in processor.metric_names


# ---- bad input ---------------------------------------------------------------------------------

SST_HEAD = ["sentence", "label"]

# (name, processor key, file name, file content, expected line, message fragment,
#  number of good rows that survive with skip_bad_rows)
BAD_CASES = [
    ("wrong_columns", "sst-2", "train.tsv",
     _tsv(SST_HEAD, ["good", "1"], ["bad", "0", "extra"], ["fine", "0"]), 3, "columns", 2),
    ("too_few_columns", "rte", "train.tsv",
     _tsv(["index", "sentence1", "sentence2", "label"], ["0", "a", "b", "entailment"],
          ["1", "only one sentence"]), 3, "columns", 1),
    ("unknown_label", "sst-2", "train.tsv",
     _tsv(SST_HEAD, ["good", "2"], ["fine", "1"]), 2, "label '2'", 1),
    ("empty_text", "mrpc", "train.tsv",
     _tsv(["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
          ["1", "1", "2", "a", "b"], ["0", "3", "4", "  ", "c"]), 3, "empty text", 1),
    ("missing_header", "sst-2", "train.tsv",
     _tsv(["good", "1"], ["fine", "0"]), 1, "missing header", 1),
    ("wrong_header", "rte", "train.tsv",
     _tsv(["index", "premise", "hypothesis", "label"], ["0", "a", "b", "entailment"]),
     1, "unexpected header", 1),
    ("unexpected_header", "cola", "train.tsv",
     _tsv(["source", "label", "mark", "sentence"], ["gj04", "1", "", "It works."]),
     1, "unexpected header", 1),
    ("unexpected_header_lcqmc", "lcqmc", "dev.tsv",
     _tsv(["text_a", "text_b", "label"], [u"你好", u"您好", "1"]), 1, "unexpected header", 1),
    ("stsb_not_a_number", "sts-b", "train.tsv",
     _tsv(_STSB_HEAD + ["score"], ["0", "g", "f", "y", "1", "n", "n", "a", "b", "4.2"],
          ["1", "g", "f", "y", "2", "n", "n", "a", "b", "high"]), 3, "not a number", 1),
    ("stsb_out_of_range", "sts-b", "train.tsv",
     _tsv(_STSB_HEAD + ["score"], ["0", "g", "f", "y", "1", "n", "n", "a", "b", "5.5"],
          ["1", "g", "f", "y", "2", "n", "n", "a", "b", "1"]), 2, "outside", 1),
    ("cola_missing_column", "cola", "train.tsv",
     _tsv(["gj04", "1", "", "Fine."], ["gj04", "0", "Missing the mark column."]), 2,
     "columns", 1),
]


def _read_split(processor, data_dir, file_name):
  if file_name.startswith("dev"):
    return processor.get_dev_examples(data_dir)
  return processor.get_train_examples(data_dir)


@pytest.mark.parametrize("case", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_rows_raise_with_file_and_line(tmp_path, case):
  _, task, file_name, content, line, fragment, _ = case
  path = _write(tmp_path / file_name, content)
  with pytest.raises(errors.InputDataError) as e:
    _read_split(classifier_datasets.PROCESSORS[task](), str(tmp_path), file_name)
  message = str(e.value)
  assert "\n" not in message
  assert message.startswith("%s:%d: " % (path, line)), message
  assert fragment in message, message
  assert e.value.path == path and e.value.line == line


@pytest.mark.parametrize("case", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_rows_skipped_and_counted(tmp_path, case, caplog):
  _, task, file_name, content, _, _, num_good = case
  path = _write(tmp_path / file_name, content)
  processor = classifier_datasets.PROCESSORS[task](skip_bad_rows=True)
  with caplog.at_level(std_logging.INFO):
    examples = _read_split(processor, str(tmp_path), file_name)
  assert len(examples) == num_good
  assert processor.num_skipped_rows == 1
  assert processor.skipped_rows_by_file == {path: 1}
  assert [e.guid for e in examples] == ["%s-%d" % (file_name[:-4], i)
                                        for i in range(num_good)]
  assert "1 bad rows skipped" in caplog.text


def test_skip_count_accumulates_and_zero_is_logged(tmp_path, caplog):
  _write(tmp_path / "train.tsv", _tsv(SST_HEAD, ["a", "1"], ["b", "x"], ["c", "y"]))
  _write(tmp_path / "dev.tsv", _tsv(SST_HEAD, ["a", "1"], ["b", "x"]))
  processor = classifier_datasets.Sst2Processor(skip_bad_rows=True)
  processor.get_train_examples(str(tmp_path))
  processor.get_dev_examples(str(tmp_path))
  assert processor.num_skipped_rows == 3
  clean_dir = tmp_path / "clean"
  clean_dir.mkdir()
  _write(clean_dir / "dev.tsv", _tsv(SST_HEAD, ["a", "1"]))
  with caplog.at_level(std_logging.INFO):
    classifier_datasets.Sst2Processor().get_dev_examples(str(clean_dir))
  assert "0 bad rows skipped" in caplog.text


def test_csv_wrong_columns_names_line(tmp_path):
  path = _write(tmp_path / "LCQMC_dev.csv",
                "sentence1,sentence2,label\r\na,b,1\r\n\"c, d\",e\r\nf,g,0\r\n")
  with pytest.raises(errors.InputDataError) as e:
    classifier_datasets.LcqmcProcessor(file_format="csv").get_dev_examples(str(tmp_path))
  assert str(e.value).startswith("%s:3: " % path)
  processor = classifier_datasets.LcqmcProcessor(file_format="csv", skip_bad_rows=True)
  assert len(processor.get_dev_examples(str(tmp_path))) == 2
  assert processor.num_skipped_rows == 1


@pytest.mark.parametrize("content,fragment,line", [
    (b"", "empty", None),
    (b"  \n\n", "empty", None),
    (b"sentence\tlabel\n", "no data rows", None),
    (b"sentence\tlabel\ngood\t1\nbad \xff\xfe\t0\n", "not valid utf-8", 3),
], ids=["empty", "blank", "header_only", "non_utf8"])
def test_bad_files(tmp_path, content, fragment, line):
  path = _write(tmp_path / "train.tsv", content)
  for skip in (False, True):
    with pytest.raises(errors.InputDataError) as e:
      classifier_datasets.Sst2Processor(skip_bad_rows=skip).get_train_examples(str(tmp_path))
    message = str(e.value)
    assert message.startswith(path + (":%d: " % line if line else ": ")), message
    assert fragment in message.lower()


def test_missing_file_and_all_rows_bad(tmp_path):
  with pytest.raises(errors.InputDataError) as e:
    classifier_datasets.RteProcessor().get_dev_examples(str(tmp_path))
  assert str(e.value).startswith(os.path.join(str(tmp_path), "dev.tsv"))
  assert "not found" in str(e.value)
  _write(tmp_path / "dev.tsv", _tsv(["index", "sentence1", "sentence2", "label"],
                                    ["0", "a", "b", "maybe"]))
  with pytest.raises(errors.InputDataError) as e:
    classifier_datasets.RteProcessor(skip_bad_rows=True).get_dev_examples(str(tmp_path))
  assert "no usable data rows (1 bad rows skipped)" in str(e.value)


# ---- metrics -----------------------------------------------------------------------------------


def test_accuracy_and_f1():
  result = classifier_metrics.compute_metrics("mrpc", [1, 1, 0, 1, 0], [1, 0, 0, 1, 1])
  # tp = 2, fp = 1, fn = 1: precision = recall = 2/3.
  assert result["accuracy"] == pytest.approx(3 / 5)
  assert result["f1"] == pytest.approx(2 / 3)
  assert result["eval_examples"] == 5
  # Probabilities are reduced with argmax.
  probs = [[0.2, 0.8], [0.4, 0.6], [0.9, 0.1], [0.3, 0.7], [0.6, 0.4]]
  assert classifier_metrics.compute_metrics("mrpc", probs, [1, 0, 0, 1, 1]) == result
  assert classifier_metrics.compute_metrics("sst-2", [0, 1, 1, 0], [0, 1, 0, 0]) == {
      "accuracy": 0.75, "eval_examples": 4}
  # No positive predicted nor present: F1 0.
  assert classifier_metrics.compute_metrics("qqp", [0, 0], [0, 0])["f1"] == 0.0


def test_f1_uses_positive_label_position():
  processor = classifier_datasets.GenericProcessor(labels=["1", "0"], metric_names=["f1"])
  # Label "1" is id 0 here.
  result = classifier_metrics.compute_metrics(processor, [0, 0, 1], [0, 1, 1])
  # tp = 1, fp = 1, fn = 0 -> precision 1/2, recall 1, F1 2/3.
  assert result["f1"] == pytest.approx(2 / 3)


def test_mcc():
  labels = [1, 1, 1, 0, 0, 0, 1, 0]
  preds = [1, 1, 0, 0, 0, 1, 1, 0]
  # tp = 3, tn = 3, fp = 1, fn = 1: (9 - 1) / sqrt(4 * 4 * 4 * 4) = 0.5.
  result = classifier_metrics.compute_metrics("cola", preds, labels)
  assert result["mcc"] == pytest.approx(0.5)
  assert result["accuracy"] == pytest.approx(0.75)
  # Perfect and inverted.
  assert classifier_metrics.compute_metrics("cola", labels, labels)["mcc"] == pytest.approx(1.0)
  inverted = [1 - x for x in labels]
  assert classifier_metrics.compute_metrics("cola", inverted, labels)["mcc"] == pytest.approx(-1.0)
  # Degenerate: all predictions (or all labels) one class -> 0, not NaN.
  assert classifier_metrics.compute_metrics("cola", [1] * 8, labels)["mcc"] == 0.0
  assert classifier_metrics.compute_metrics("cola", preds, [0] * 8)["mcc"] == 0.0


def test_pearson_spearman():
  result = classifier_metrics.compute_metrics("sts-b", [1.0, 2.0, 3.0], [1.0, 3.0, 2.0])
  # Centred: (-1, 0, 1) and (-1, 1, 0): 1 / (sqrt 2 * sqrt 2) = 0.5.
  assert result["pearson"] == pytest.approx(0.5)
  assert result["spearman"] == pytest.approx(0.5)
  assert result["eval_examples"] == 3
  # Ties: ranks (1, 2.5, 2.5, 4) vs (1, 3, 2, 4): 4.5 / sqrt(4.5 * 5) = sqrt(0.9).
  result = classifier_metrics.compute_metrics("stsb", [[1.0], [2.0], [2.0], [3.0]],
                                          [1.0, 3.0, 2.0, 4.0])
  assert result["spearman"] == pytest.approx(math.sqrt(0.9))
  # Monotone but not linear: Spearman 1, Pearson below 1.
  result = classifier_metrics.compute_metrics("sts-b", [1, 2, 3, 4], [1, 4, 9, 100])
  assert result["spearman"] == pytest.approx(1.0) and result["pearson"] < 0.99
  # Constant predictions: 0, not NaN.
  assert classifier_metrics.compute_metrics("sts-b", [2, 2, 2], [1, 2, 3])["pearson"] == 0.0


def test_metrics_against_scipy_reference():
  stats = pytest.importorskip("scipy.stats", reason="scipy not installed (reference only)")
  rng = np.random.RandomState(0)
  x = rng.randint(0, 6, size=200).astype(float)
  y = x + rng.randint(-2, 3, size=200)
  result = classifier_metrics.compute_metrics("sts-b", x, y)
  assert result["pearson"] == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-12)
  assert result["spearman"] == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)
  np.testing.assert_allclose(classifier_metrics._rankdata(x), stats.rankdata(x))


def test_metrics_input_errors():
  with pytest.raises(ValueError):
    classifier_metrics.compute_metrics("sst-2", [0, 1], [0])
  with pytest.raises(ValueError):
    classifier_metrics.compute_metrics("sst-2", [], [])
  with pytest.raises(ValueError):
    classifier_metrics.compute_metrics("no-such-task", [0], [0])


# ---- features ----------------------------------------------------------------------------------


def test_single_sentence_truncation_and_layout():
  tokenizer = _WhitespaceTokenizer()
  example = classifier_reader.InputExample("train-0", " ".join("w%d" % i for i in range(10)),
                                        label="1")
  feature = classifier_features.convert_single_example(7, example, ["0", "1"], 6, tokenizer)
  assert len(feature["input_ids"]) == 6
  tokens = [{v: k for k, v in tokenizer.vocab.items()}[i] for i in feature["input_ids"]]
  assert tokens == ["[CLS]", "w0", "w1", "w2", "w3", "[SEP]"]
  assert feature["segment_ids"] == [0] * 6
  assert feature["label_ids"] == [1]
  assert feature["example_index"] == [7]
  assert feature["has_label"] == [1]
  assert "label_values" not in feature
  # Short: no padding.
  short = classifier_reader.InputExample("train-1", "a b", label="0")
  feature = classifier_features.convert_single_example(0, short, ["0", "1"], 128, tokenizer)
  assert len(feature["input_ids"]) == 4 and feature["label_ids"] == [0]


def test_pair_truncation_pops_longer_side():
  tokenizer = _WhitespaceTokenizer()
  example = classifier_reader.InputExample(
      "dev-0", " ".join("a%d" % i for i in range(8)), " ".join("b%d" % i for i in range(3)),
      label="entailment")
  feature = classifier_features.convert_single_example(
      0, example, ["entailment", "not_entailment"], 10, tokenizer)
  inv = {v: k for k, v in tokenizer.vocab.items()}
  tokens = [inv[i] for i in feature["input_ids"]]
  assert tokens == ["[CLS]", "a0", "a1", "a2", "a3", "[SEP]", "b0", "b1", "b2", "[SEP]"]
  assert feature["segment_ids"] == [0] * 6 + [1] * 4
  # Both long: each side keeps about half.
  tokens_a = list("abcdefghij")
  tokens_b = list("klmnopq")
  classifier_features._truncate_seq_pair(tokens_a, tokens_b, 9)
  assert (len(tokens_a), len(tokens_b)) == (5, 4)


def test_features_for_every_length_stay_within_max():
  tokenizer = _WhitespaceTokenizer()
  examples = []
  for n_a in range(0, 9, 2):
    for n_b in (None, 0, 1, 5, 12):
      text_b = None if n_b is None else " ".join(["y"] * n_b)
      examples.append(classifier_reader.InputExample(
          "t-%d" % len(examples), " ".join(["x"] * n_a), text_b, label="0"))
  for max_len in (3, 4, 7, 16):
    features = classifier_features.convert_examples_to_features(
        examples, ["0", "1"], max_len, tokenizer)
    assert len(features) == len(examples)
    for i, (example, feature) in enumerate(zip(examples, features)):
      ids = feature["input_ids"]
      assert len(ids) <= max_len and len(ids) == len(feature["segment_ids"])
      assert feature["example_index"] == [i]
      assert ids[0] == tokenizer.vocab["[CLS]"] and ids[-1] == tokenizer.vocab["[SEP]"]
      num_sep = ids.count(tokenizer.vocab["[SEP]"])
      assert num_sep == (1 if example.text_b is None else 2)
      first_sep = ids.index(tokenizer.vocab["[SEP]"])
      assert feature["segment_ids"] == [0] * (first_sep + 1) + [1] * (len(ids) - first_sep - 1)


def test_regression_and_unlabeled_features():
  tokenizer = _WhitespaceTokenizer()
  example = classifier_reader.InputExample("train-0", "a b", "c", label=3.8)
  feature = classifier_features.convert_single_example(0, example, [None], 16, tokenizer,
                                                  is_regression=True)
  assert feature["label_values"] == [3.8] and "label_ids" not in feature
  unlabeled = classifier_reader.InputExample("test-0", "a", "b")
  feature = classifier_features.convert_single_example(0, unlabeled, ["neg", "pos"], 16, tokenizer)
  assert feature["label_ids"] == [0] and feature["has_label"] == [0]
  feature = classifier_features.convert_single_example(0, unlabeled, [None], 16, tokenizer, True)
  assert feature["label_values"] == [0.0] and feature["has_label"] == [0]
  with pytest.raises(ValueError):
    classifier_features.convert_single_example(
        0, classifier_reader.InputExample("x", "a", label="maybe"), ["0", "1"], 16, tokenizer)
  with pytest.raises(ValueError):
    classifier_features.convert_single_example(0, example, [None], 2, tokenizer, True)


def test_features_with_full_tokenizer(tmp_path):
  import tokenization  # pylint: disable=g-import-not-at-top
  vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "cat", "sat", "on", "mat", "un",
           "##want", "##ed", ",", "."]
  vocab_file = _write(tmp_path / "vocab.txt", "".join(t + "\n" for t in vocab))
  tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=True)
  example = classifier_reader.InputExample("dev-0", "The cat sat, UNwanted.", "on the mat",
                                        label="1")
  feature = classifier_features.convert_single_example(0, example, ["0", "1"], 32, tokenizer)
  ids = [vocab.index(t) for t in ["[CLS]", "the", "cat", "sat", ",", "un", "##want", "##ed",
                                  ".", "[SEP]", "on", "the", "mat", "[SEP]"]]
  assert feature["input_ids"] == ids
  assert feature["segment_ids"] == [0] * 10 + [1] * 4
  assert feature["label_ids"] == [1]
  # Truncated to 8 (5 text tokens): the longer first text loses tokens from its end until
  # both have 3, then (a tie) the second text loses one.
  feature = classifier_features.convert_single_example(0, example, ["0", "1"], 8, tokenizer)
  assert feature["input_ids"] == [vocab.index(t) for t in [
      "[CLS]", "the", "cat", "sat", "[SEP]", "on", "the", "[SEP]"]]
  assert feature["segment_ids"] == [0] * 5 + [1] * 3


# ---- prediction writers ------------------------------------------------------------------------


def test_write_predictions_tsv_and_json(tmp_path):
  processor = classifier_datasets.RteProcessor()
  examples = [classifier_reader.InputExample("test-0", "a", "b"),
              classifier_reader.InputExample("test-1", u"ç", "d", label="entailment")]
  probs = np.array([[0.25, 0.75], [0.9, 0.1]], dtype=np.float32)
  path = str(tmp_path / "out" / "test_results.tsv")
  assert classifier_task.write_predictions_tsv(path, processor, examples, probs) == 2
  with open(path) as f:
    rows = [line.rstrip("\n").split("\t") for line in f]
  assert len(rows) == 2 and all(len(r) == 2 for r in rows)
  np.testing.assert_allclose(np.array(rows, dtype=np.float64), probs, rtol=1e-7)

  json_path = str(tmp_path / "out" / "test_results.json")
  classifier_task.write_predictions_json(json_path, processor, examples, probs)
  with open(json_path, encoding="utf-8") as f:
    records = json.load(f)
  assert [r["prediction"] for r in records] == ["not_entailment", "entailment"]
  assert records[1]["text_a"] == u"ç" and records[1]["label"] == "entailment"
  assert records[0]["probabilities"]["not_entailment"] == pytest.approx(0.75)

  with pytest.raises(ValueError):
    classifier_task.write_predictions_tsv(path, processor, examples, probs[:1])
  with pytest.raises(ValueError):
    classifier_task.write_predictions_tsv(path, processor, examples, np.ones((2, 3)))


def test_write_predictions_regression(tmp_path):
  processor = classifier_datasets.StsbProcessor()
  examples = [classifier_reader.InputExample("test-%d" % i, "a", "b") for i in range(3)]
  path = str(tmp_path / "test_results.tsv")
  classifier_task.write_predictions_tsv(path, processor, examples, [[1.5], [0.25], [4.0]])
  with open(path) as f:
    assert [float(line) for line in f] == [1.5, 0.25, 4.0]
  records = classifier_task.write_predictions_json(str(tmp_path / "p.json"), processor,
                                                  examples, [1.5, 0.25, 4.0])
  assert [r["prediction"] for r in records] == [1.5, 0.25, 4.0]
