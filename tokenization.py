# coding=utf-8
"""Tokenizers for BERT-of-Theseus: WordPiece (Google vocab.txt) and SentencePiece.

`FullTokenizer` reproduces the google-research/bert tokenization: text clean-up, one token per
CJK character, optional lower-casing with accent stripping, splitting on punctuation and then
greedy longest-match-first WordPiece against a vocab.txt. `SentencePieceTokenizer` offers the
same interface for ALBERT-style `.model` files. `create_tokenizer` picks one of the two from the
command line flags.

Both tokenizers expose `vocab` (token -> id), `inv_vocab` (id -> token), `vocab_size`,
`tokenize(text)`, `convert_tokens_to_ids(tokens)`, `convert_ids_to_tokens(ids)` and
`convert_tokens_to_string(tokens)`.
"""

import collections
import logging
import os
import unicodedata

import sentencepiece as spm

from theseus import files
from theseus.errors import InputDataError

logger = logging.getLogger(__name__)

# SentencePiece marks the start of a word with this character (U+2581).
SPIECE_UNDERLINE = u"\u2581"

# Checkpoint directory names of the Google releases, by the casing their vocab expects.
_UNCASED_MODELS = frozenset([
    "uncased_l-24_h-1024_a-16",
    "uncased_l-12_h-768_a-12",
    "wwm_uncased_l-24_h-1024_a-16",
    "multilingual_l-12_h-768_a-12",
    "chinese_l-12_h-768_a-12",
    "all-minilm-l6-v2",
])
_CASED_MODELS = frozenset([
    "cased_l-12_h-768_a-12",
    "cased_l-24_h-1024_a-16",
    "wwm_cased_l-24_h-1024_a-16",
    "multi_cased_l-12_h-768_a-12",
])


def validate_case_matches_checkpoint(do_lower_case, init_checkpoint):
  """Checks that `do_lower_case` agrees with the casing of a known checkpoint.

  The checkpoint is recognised by the name of the directory that holds it (for example
  `.../uncased_L-12_H-768_A-12/bert_model.ckpt`). A mismatch with one of the released Google
  models (or all-MiniLM-L6-v2) raises; a directory name that merely contains "uncased" or
  "cased" only logs a warning. Unknown names are accepted silently.

  Args:
    do_lower_case: bool, the value of the --do_lower_case flag.
    init_checkpoint: str or None, checkpoint path prefix (or the directory holding it).

  Raises:
    InputDataError: (a ValueError) the flag contradicts a known checkpoint.
  """
  if not init_checkpoint:
    return
  path = os.path.normpath(str(init_checkpoint))
  if not os.path.isdir(path):
    path = os.path.dirname(path)
  model_name = os.path.basename(path).lower()
  if not model_name:
    return

  if model_name in _UNCASED_MODELS and not do_lower_case:
    raise InputDataError(
        "do_lower_case=False, but the checkpoint %r is an uncased model; "
        "pass --do_lower_case=True" % model_name, init_checkpoint)
  if model_name in _CASED_MODELS and do_lower_case:
    raise InputDataError(
        "do_lower_case=True, but the checkpoint %r is a cased model; "
        "pass --do_lower_case=False" % model_name, init_checkpoint)
  if model_name in _UNCASED_MODELS or model_name in _CASED_MODELS:
    return

  looks_uncased = "uncased" in model_name
  looks_cased = not looks_uncased and "cased" in model_name
  if looks_uncased and not do_lower_case:
    logger.warning("do_lower_case=False but the checkpoint directory %r looks uncased.",
                   model_name)
  elif looks_cased and do_lower_case:
    logger.warning("do_lower_case=True but the checkpoint directory %r looks cased.",
                   model_name)


def convert_to_unicode(text):
  """Returns `text` as `str`, decoding UTF-8 bytes (invalid bytes are dropped)."""
  if isinstance(text, str):
    return text
  if isinstance(text, (bytes, bytearray)):
    return bytes(text).decode("utf-8", "ignore")
  raise ValueError("Unsupported string type: %s" % type(text))


def printable_text(text):
  """Returns `text` as a `str` suitable for logging."""
  return convert_to_unicode(text)


def read_vocab_tokens(vocab_file):
  """The tokens of a vocab.txt in id order: one a line, trailing blank lines dropped.

  Raises:
    InputDataError: (a ValueError) the file is missing, empty or not UTF-8.
  """
  lines = files.read_text_lines(vocab_file, what="vocab file")
  while lines and not lines[-1].strip():
    lines.pop()
  if not lines:
    raise InputDataError("vocab file is empty", vocab_file)
  return [line.strip() for line in lines]


def load_vocab(vocab_file):
  """Loads a vocab.txt (one token a line, id = line index) into an OrderedDict.

  Args:
    vocab_file: path of the vocabulary file (UTF-8).

  Returns:
    collections.OrderedDict mapping token -> id.

  Raises:
    InputDataError: (a ValueError) the file is missing, empty or not UTF-8, or a token appears
      twice (the message names the line).
  """
  vocab = collections.OrderedDict()
  for index, token in enumerate(read_vocab_tokens(vocab_file)):
    if token in vocab:
      raise InputDataError(
          "duplicate token %r (first seen on line %d)" % (token, vocab[token] + 1),
          vocab_file, index + 1)
    vocab[token] = index
  return vocab


def convert_by_vocab(vocab, items):
  """Maps every item through `vocab` (a dict); raises KeyError for a missing item."""
  return [vocab[item] for item in items]


def convert_tokens_to_ids(vocab, tokens):
  """google-research/bert's module-level helper: tokens -> ids through `vocab`."""
  return convert_by_vocab(vocab, tokens)


def convert_ids_to_tokens(inv_vocab, ids):
  """google-research/bert's module-level helper: ids -> tokens through `inv_vocab`."""
  return convert_by_vocab(inv_vocab, ids)


def whitespace_tokenize(text):
  """Strips `text` and splits it on runs of whitespace."""
  text = text.strip()
  if not text:
    return []
  return text.split()


def _ids_to_tokens(inv_vocab, ids, source):
  """Maps ids to tokens; an id outside `inv_vocab` raises an error naming it and `source`."""
  tokens = []
  for token_id in ids:
    token = inv_vocab.get(int(token_id))
    if token is None:
      raise InputDataError(
          "id %r is outside the vocabulary (size %d)" % (token_id, len(inv_vocab)), source)
    tokens.append(token)
  return tokens


class FullTokenizer(object):
  """WordPiece tokenization end to end: BasicTokenizer then WordpieceTokenizer."""

  def __init__(self, vocab_file, do_lower_case=True):
    self.vocab_file = vocab_file
    self.do_lower_case = do_lower_case
    self.vocab = load_vocab(vocab_file)
    self.inv_vocab = {v: k for k, v in self.vocab.items()}
    self.basic_tokenizer = BasicTokenizer(do_lower_case=do_lower_case)
    self.wordpiece_tokenizer = WordpieceTokenizer(vocab=self.vocab)

  @property
  def vocab_size(self):
    return len(self.vocab)

  def tokenize(self, text):
    """Splits `text` into WordPiece tokens (strings of the vocabulary or "[UNK]")."""
    split_tokens = []
    for token in self.basic_tokenizer.tokenize(text):
      split_tokens.extend(self.wordpiece_tokenizer.tokenize(token))
    return split_tokens

  def convert_tokens_to_ids(self, tokens):
    """Maps tokens to ids; a token missing from the vocab raises a ValueError naming it."""
    ids = []
    for token in tokens:
      token_id = self.vocab.get(token)
      if token_id is None:
        raise InputDataError(
            "token %r is not in the vocabulary" % (token,), self.vocab_file)
      ids.append(token_id)
    return ids

  def convert_ids_to_tokens(self, ids):
    """Maps ids to tokens; an id outside the vocab raises a ValueError naming it."""
    return _ids_to_tokens(self.inv_vocab, ids, self.vocab_file)

  def convert_tokens_to_string(self, tokens):
    """Joins WordPiece tokens back into (normalised) text, gluing "##" continuations."""
    return " ".join(tokens).replace(" ##", "").strip()


class BasicTokenizer(object):
  """Text clean-up, CJK and punctuation splitting, optional lower-casing."""

  def __init__(self, do_lower_case=True):
    """Constructs a BasicTokenizer.

    Args:
      do_lower_case: whether to lower-case the input and strip its accents.
    """
    self.do_lower_case = do_lower_case

  def tokenize(self, text):
    """Splits `text` into words and punctuation characters."""
    text = convert_to_unicode(text)
    text = self._clean_text(text)
    # Each CJK ideograph becomes its own word. Multilingual and Chinese models need this;
    # English vocabularies hold few such characters, so it does no harm there.
    text = self._tokenize_chinese_chars(text)

    split_tokens = []
    for token in whitespace_tokenize(text):
      if self.do_lower_case:
        token = token.lower()
        token = self._run_strip_accents(token)
      split_tokens.extend(self._run_split_on_punc(token))
    return whitespace_tokenize(" ".join(split_tokens))

  def _run_strip_accents(self, text):
    """Removes accents: NFD decomposition, then drops the non-spacing marks (Mn)."""
    text = unicodedata.normalize("NFD", text)
    return "".join(c for c in text if unicodedata.category(c) != "Mn")

  def _run_split_on_punc(self, text):
    """Splits `text` so that every punctuation character is a token of its own."""
    pieces = []
    current = []
    for char in text:
      if _is_punctuation(char):
        if current:
          pieces.append("".join(current))
          current = []
        pieces.append(char)
      else:
        current.append(char)
    if current:
      pieces.append("".join(current))
    return pieces

  def _tokenize_chinese_chars(self, text):
    """Puts spaces around every CJK ideograph."""
    output = []
    for char in text:
      if self._is_chinese_char(ord(char)):
        output.append(" ")
        output.append(char)
        output.append(" ")
      else:
        output.append(char)
    return "".join(output)

  def _is_chinese_char(self, cp):
    """Whether code point `cp` is in a CJK Unified Ideographs block.

    These are the blocks of https://en.wikipedia.org/wiki/CJK_Unified_Ideographs_(Unicode_block)
    (and its extensions and compatibility blocks). Hangul, Hiragana and Katakana are not
    included: those scripts separate words with spaces or are handled by WordPiece.
    """
    return ((0x4E00 <= cp <= 0x9FFF) or
            (0x3400 <= cp <= 0x4DBF) or
            (0x20000 <= cp <= 0x2A6DF) or
            (0x2A700 <= cp <= 0x2B73F) or
            (0x2B740 <= cp <= 0x2B81F) or
            (0x2B820 <= cp <= 0x2CEAF) or
            (0xF900 <= cp <= 0xFAFF) or
            (0x2F800 <= cp <= 0x2FA1F))

  def _clean_text(self, text):
    """Drops NUL, U+FFFD and control characters; maps every whitespace to a space."""
    output = []
    for char in text:
      cp = ord(char)
      if cp == 0 or cp == 0xFFFD or _is_control(char):
        continue
      output.append(" " if _is_whitespace(char) else char)
    return "".join(output)


class WordpieceTokenizer(object):
  """Greedy longest-match-first WordPiece tokenization."""

  def __init__(self, vocab, unk_token="[UNK]", max_input_chars_per_word=200):
    self.vocab = vocab
    self.unk_token = unk_token
    self.max_input_chars_per_word = max_input_chars_per_word

  def tokenize(self, text):
    """Splits already basic-tokenized text into word pieces.

    Each whitespace-separated word is cut from the left into the longest pieces found in the
    vocabulary; pieces after the first carry the "##" prefix. A word that cannot be covered
    completely, or that is longer than `max_input_chars_per_word`, becomes `unk_token`.

    For example, "unaffable" gives ["un", "##aff", "##able"].

    Args:
      text: a single word or whitespace-separated words, already passed through
        `BasicTokenizer`.

    Returns:
      A list of word piece tokens.
    """
    text = convert_to_unicode(text)
    output_tokens = []
    for token in whitespace_tokenize(text):
      if len(token) > self.max_input_chars_per_word:
        output_tokens.append(self.unk_token)
        continue

      sub_tokens = []
      start = 0
      while start < len(token):
        end = len(token)
        match = None
        while start < end:
          piece = token[start:end]
          if start > 0:
            piece = "##" + piece
          if piece in self.vocab:
            match = piece
            break
          end -= 1
        if match is None:
          sub_tokens = None
          break
        sub_tokens.append(match)
        start = end

      if sub_tokens is None:
        output_tokens.append(self.unk_token)
      else:
        output_tokens.extend(sub_tokens)
    return output_tokens


class SentencePieceTokenizer(object):
  """ALBERT-style SentencePiece tokenization with the FullTokenizer interface.

  The text is normalised as ALBERT does before encoding (whitespace runs collapsed, ``/''
  turned into ", accents stripped, lower-cased when `do_lower_case`); the pieces are the
  tokens and the model's piece ids are the token ids. A piece the model does not know maps to
  the model's unknown id.
  """

  def __init__(self, model_file, do_lower_case=True, keep_accents=False):
    """Loads a SentencePiece model.

    Args:
      model_file: path of the `.model` file.
      do_lower_case: lower-case the text before encoding.
      keep_accents: keep accents instead of stripping them (ALBERT strips them).

    Raises:
      InputDataError: (a ValueError) the file is missing or is not a SentencePiece model.
    """
    if not model_file or not os.path.isfile(model_file):
      raise InputDataError("SentencePiece model file not found", model_file)
    self.model_file = model_file
    self.do_lower_case = do_lower_case
    self.keep_accents = keep_accents
    self.sp_model = spm.SentencePieceProcessor()
    try:
      self.sp_model.Load(model_file)
    except (OSError, RuntimeError) as e:
      raise InputDataError(
          "not a valid SentencePiece model (%s)" % str(e).strip(), model_file)
    self.vocab = collections.OrderedDict(
        (self.sp_model.IdToPiece(i), i) for i in range(self.sp_model.GetPieceSize()))
    self.inv_vocab = {v: k for k, v in self.vocab.items()}
    self.unk_id = self.sp_model.unk_id()

  @property
  def vocab_size(self):
    return len(self.vocab)

  def preprocess_text(self, text):
    """Normalises `text` the way ALBERT does before SentencePiece encoding."""
    text = " ".join(convert_to_unicode(text).strip().split())
    text = text.replace("``", '"').replace("''", '"')
    if not self.keep_accents:
      text = unicodedata.normalize("NFKD", text)
      text = "".join(c for c in text if not unicodedata.combining(c))
    if self.do_lower_case:
      text = text.lower()
    return text

  def tokenize(self, text):
    """Splits `text` into SentencePiece pieces."""
    pieces = self.sp_model.EncodeAsPieces(self.preprocess_text(text))
    output = []
    for piece in pieces:
      # As in ALBERT: a piece such as "1999," is re-encoded without its comma, so that numbers
      # followed by a comma are tokenized like numbers on their own.
      if len(piece) > 1 and piece[-1] == "," and piece[-2].isdigit():
        sub_pieces = self.sp_model.EncodeAsPieces(piece[:-1].replace(SPIECE_UNDERLINE, ""))
        if (piece[0] != SPIECE_UNDERLINE and sub_pieces and
            sub_pieces[0].startswith(SPIECE_UNDERLINE)):
          if len(sub_pieces[0]) == 1:
            sub_pieces = sub_pieces[1:]
          else:
            sub_pieces[0] = sub_pieces[0][1:]
        output.extend(sub_pieces)
        output.append(piece[-1])
      else:
        output.append(piece)
    return output

  def convert_tokens_to_ids(self, tokens):
    """Maps pieces to ids; unknown pieces map to the unknown id."""
    return [self.vocab.get(token, self.unk_id) for token in tokens]

  def convert_ids_to_tokens(self, ids):
    """Maps ids to pieces; an id outside the model raises a ValueError naming it."""
    return _ids_to_tokens(self.inv_vocab, ids, self.model_file)

  def convert_tokens_to_string(self, tokens):
    """Decodes pieces back into text."""
    return self.sp_model.DecodePieces(list(tokens))


def create_tokenizer(vocab_file, do_lower_case=True, spm_model_file=None):
  """Returns a SentencePieceTokenizer when `spm_model_file` is set, else a FullTokenizer."""
  if spm_model_file:
    return SentencePieceTokenizer(spm_model_file, do_lower_case=do_lower_case)
  return FullTokenizer(vocab_file, do_lower_case=do_lower_case)


def _is_whitespace(char):
  """Whether `char` is a whitespace character (space, tab, newline, CR or category Zs)."""
  if char in (" ", "\t", "\n", "\r"):
    return True
  return unicodedata.category(char) == "Zs"


def _is_control(char):
  """Whether `char` is a control character (Cc or Cf); tab, newline and CR are whitespace."""
  if char in ("\t", "\n", "\r"):
    return False
  return unicodedata.category(char) in ("Cc", "Cf")


def _is_punctuation(char):
  """Whether `char` is punctuation: any ASCII non-alphanumeric symbol, or Unicode P*."""
  cp = ord(char)
  # ASCII characters such as "^", "$" and "`" are not Unicode punctuation, but BERT treats
  # them as punctuation anyway.
  if (33 <= cp <= 47) or (58 <= cp <= 64) or (91 <= cp <= 96) or (123 <= cp <= 126):
    return True
  return unicodedata.category(char).startswith("P")
