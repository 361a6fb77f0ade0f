# coding=utf-8
"""End-to-end runs of the run_ner_mrc.py command line on small real slices.

For CoNLL-2003 (English) the real CLI runs, with a tiny random BERT (2 layers, hidden 32) and the
real uncased vocab, through every stage:

  plain fine-tuning (evaluation during training)
  -> stage 1 (--suc_layers=1, from the best plain checkpoint)
  -> stage 2 (--finetune_suc, from the stage-1 checkpoint) + eval + predict + export.

MSRA (Chinese, char-level BIO, focal loss) goes through one plain run with eval + predict +
export: its format is what it adds, the stages are the same code. The two run side by side (one
TensorFlow thread each). The checks: files are written, metrics are present and in range, the
predictions file holds the input's sentences and tokens in the input's format, the export is a
plain BERT + head (1 layer after the stages, 2 from MSRA's run), and the SavedModel's (and
CoNLL's TFLite file's) start/end probabilities equal the script's for the same inputs.
"""

import glob
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from conftest import skip_or_fail

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO_ROOT, "run_ner_mrc.py")

TINY_CONFIG = {
    "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
    "hidden_size": 32, "initializer_range": 0.02, "intermediate_size": 64,
    "max_position_embeddings": 128, "num_attention_heads": 2, "num_hidden_layers": 2,
    "type_vocab_size": 2, "vocab_size": 30522,
}

# name -> (source dir in shared data, data_format, flagfile, {target file: (source file,
# first sentence, number of sentences)}, extra flags).
DATASETS = {
    "conll2003": ("conll2003", "conll2003", "ner_conll2003.flags", {
        "train.txt": ("train.txt", 0, 24),
        "valid.txt": ("valid.txt", 0, 12),
        "test.txt": ("valid.txt", 12, 12),
    }, []),
    "msra": ("msra_ner", "char_bio", "ner_msra.flags", {
        "train_data": ("train_data", 0, 16),
        "test_data": ("test_data", 0, 12),
    }, ["--doc_stride=12"]),
}


def _sentence_blocks(path):
  """The file's lines grouped into blank-line-separated blocks (CoNLL -DOCSTART- kept)."""
  with open(path, encoding="utf-8") as f:
    lines = f.read().split("\n")
  blocks, cur = [], []
  for line in lines:
    if line.strip():
      cur.append(line)
    elif cur:
      blocks.append(cur)
      cur = []
  if cur:
    blocks.append(cur)
  return blocks


def _write_slice(src, dst, first, count):
  blocks = [b for b in _sentence_blocks(src) if not b[0].startswith("-DOCSTART-")]
  with open(dst, "w", encoding="utf-8", newline="\n") as f:
    f.write("".join("\n".join(b) + "\n\n" for b in blocks[first:first + count]))


def _run_cli(args, log_path):
  cmd = [sys.executable, SCRIPT] + args
  env = dict(os.environ, CUDA_VISIBLE_DEVICES="-1", TF_CPP_MIN_LOG_LEVEL="2")
  proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, timeout=300)
  text = proc.stdout.decode("utf-8", "replace")
  with open(log_path, "a", encoding="utf-8") as f:
    f.write("$ %s\n%s\n" % (" ".join(cmd), text))
  if proc.returncode != 0:
    raise AssertionError("exit code %d: %s\n%s" % (proc.returncode, " ".join(args),
                                                    text[-4000:]))
  return text


def _latest_checkpoint(directory):
  indexes = sorted(glob.glob(os.path.join(directory, "model.ckpt-*.index")),
                   key=lambda p: int(p.rsplit("-", 1)[1].split(".")[0]))
  assert indexes, "no checkpoint in %s" % directory
  return indexes[-1][:-len(".index")]


def _chain(name, root, vocab_file, config_file):
  """Plain fine-tune -> stage 1 -> stage 2 (+ eval, predict, export); MSRA: one plain run with
  them. Returns the dirs."""
  _, data_format, flagfile, _, extra = DATASETS[name]
  data_dir = os.path.join(root, "data")
  log = os.path.join(root, "log.txt")
  common = ["--flagfile=" + os.path.join(REPO_ROOT, "configs", flagfile),
            "--data_dir=" + data_dir, "--bert_config_file=" + config_file,
            "--vocab_file=" + vocab_file, "--data_format=" + data_format,
            "--max_seq_length=64", "--train_batch_size=8", "--eval_batch_size=32",
            "--predict_batch_size=32", "--num_train_steps=4", "--save_checkpoints_steps=2",
            "--log_every_n_steps=2", "--num_threads=1", "--learning_rate=1e-3"] + extra
  dirs = {k: os.path.join(root, k) for k in ("pred", "stage1", "stage2")}
  outputs = ["--do_eval", "--do_predict", "--do_export", "--export_tflite",
             "--write_probabilities"]
  if name == "msra":  # one plain run; its outputs where the other chain's stage 2 has them
    # (no TFLite file: the conversion does not depend on the language, CoNLL's run has one)
    _run_cli(common + ["--output_dir=" + dirs["stage2"], "--do_train", "--loss=focal",
                       "--focal_gamma=2"] + [o for o in outputs if o != "--export_tflite"], log)
    return {"stage2": dirs["stage2"]}
  _run_cli(common + ["--output_dir=" + dirs["pred"], "--do_train", "--do_eval",
                     "--evaluate_during_training"], log)
  _run_cli(common + ["--output_dir=" + dirs["stage1"], "--do_train", "--suc_layers=1",
                     "--evaluate_during_training=false",
                     "--init_checkpoint=" + _latest_checkpoint(os.path.join(dirs["pred"],
                                                                            "best"))], log)
  _run_cli(common + ["--output_dir=" + dirs["stage2"], "--do_train", "--suc_layers=1",
                     "--finetune_suc", "--init_checkpoint=" + _latest_checkpoint(dirs["stage1"])]
           + outputs, log)
  return dirs


@pytest.fixture(scope="module")
def runs(shared_data_dir, minilm_dir, tmp_path_factory):
  """Runs both chains (in parallel) once for the module. Returns name -> dict of paths."""
  vocab_file = os.path.join(minilm_dir, "vocab.txt")
  base = tmp_path_factory.mktemp("ner_e2e")
  config_file = str(base / "bert_config.json")
  with open(config_file, "w") as f:
    json.dump(TINY_CONFIG, f)
  prepared = {}
  for name, (src_dir, data_format, _, files, _) in DATASETS.items():
    root = str(base / name)
    os.makedirs(os.path.join(root, "data"))
    for target, (source, first, count) in files.items():
      src = os.path.join(shared_data_dir, src_dir, source)
      if not os.path.isfile(src):
        skip_or_fail("%s not found" % src)
      _write_slice(src, os.path.join(root, "data", target), first, count)
    prepared[name] = root

  results, errors = {}, {}

  def work(name):
    try:
      results[name] = _chain(name, prepared[name], vocab_file, config_file)
    except BaseException as e:  # pylint: disable=broad-except
      errors[name] = e

  threads = [threading.Thread(target=work, args=(name,)) for name in prepared]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  out = {}
  for name, root in prepared.items():
    out[name] = {"root": root, "data": os.path.join(root, "data"), "error": errors.get(name)}
    out[name].update(results.get(name, {}))
  return out


def _ok(runs, name):
  run = runs[name]
  if run["error"] is not None:
    raise run["error"]
  return run


def _check_metrics(path):
  assert os.path.isfile(path), path
  with open(path) as f:
    metrics = json.load(f)
  assert metrics["main_metric"] == "f1"
  for key in ("precision", "recall", "f1"):
    assert 0.0 <= metrics[key] <= 1.0, (key, metrics[key])
  assert metrics["num_gold"] > 0
  for entity_type, values in metrics["per_type"].items():
    assert 0.0 <= metrics["f1_" + entity_type] == values["f1"] <= 1.0
  return metrics


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_stages_write_checkpoints_and_metrics(runs, name):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  run = _ok(runs, name)
  if name == "msra":  # its one run
    assert _check_metrics(os.path.join(run["stage2"], "eval_results.json"))["num_sentences"] == 12
    _check_metrics(os.path.join(run["stage2"], "test_results.json"))
    return
  # Plain fine-tuning: evaluation during training kept a best checkpoint.
  assert os.path.isfile(os.path.join(run["pred"], "best", "best_metric.json"))
  with open(os.path.join(run["pred"], "eval_history.jsonl")) as f:
    history = [json.loads(line) for line in f]
  assert [h["global_step"] for h in history] == [2, 4]
  _check_metrics(os.path.join(run["pred"], "eval_results.json"))
  # Stage 1 holds successor modules next to the frozen predecessor.
  names = {n for n, _ in tf.train.list_variables(_latest_checkpoint(run["stage1"]))}
  assert "bert/encoder/suc_layer_0/output/dense/kernel" in names
  assert "bert/encoder/layer_1/output/dense/kernel" in names
  assert "mrc/start_end/kernel" in names
  # Stage 2: metrics of the successor on dev (and test, whose gold tags are known).
  metrics = _check_metrics(os.path.join(run["stage2"], "eval_results.json"))
  assert metrics["num_sentences"] == 12
  assert os.path.isfile(os.path.join(run["stage2"], "eval_results.txt"))
  _check_metrics(os.path.join(run["stage2"], "test_results.json"))


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_predictions_keep_the_input_format(runs, name):
  from theseus.tasks.ner_mrc import readers as ner_readers  # pylint: disable=g-import-not-at-top
  from theseus.tasks.ner_mrc import tags as ner_tags  # pylint: disable=g-import-not-at-top
  run = _ok(runs, name)
  _, data_format, _, _, _ = DATASETS[name]
  test_file = "test.txt" if data_format == "conll2003" else "test_data"
  gold, _ = ner_readers.read_ner_file(os.path.join(run["data"], test_file), data_format)
  path = os.path.join(run["stage2"], "test_predictions.txt")
  if data_format == "conll2003":
    # `token TAG` per line, a blank line after each sentence.
    predicted = [[line.split(" ") for line in block] for block in _sentence_blocks(path)]
    assert all(len(fields) == 2 for block in predicted for fields in block)
    tokens = [[fields[0] for fields in block] for block in predicted]
    tags = [[fields[1] for fields in block] for block in predicted]
  else:
    # Same layout as the input: the readers read it back.
    sentences, _ = ner_readers.read_ner_file(path, data_format)
    tokens = [s.tokens for s in sentences]
    tags = [s.tags for s in sentences]
  assert tokens == [s.tokens for s in gold]
  entity_types = set(ner_readers.load_queries(os.path.join(
      run["stage2"], "export", "ner_queries.json")))
  for sentence_tags in tags:
    for entity_type, _, _ in ner_tags.bio_to_spans(sentence_tags):
      assert entity_type in entity_types
  with open(os.path.join(run["stage2"], "test_predictions.json"), encoding="utf-8") as f:
    records = json.load(f)
  assert [r["tokens"] for r in records] == tokens
  assert [r["tags"] for r in records] == tags
  assert os.path.isfile(os.path.join(run["stage2"], "eval_predictions.txt"))


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_export_is_plain_successor_and_saved_model_matches(runs, name):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from theseus.export import serving  # pylint: disable=g-import-not-at-top
  run = _ok(runs, name)
  export_dir = os.path.join(run["stage2"], "export")
  layers = 1 if name == "conll2003" else 2  # MSRA's one run exports the plain model
  with open(os.path.join(export_dir, "bert_config.json")) as f:
    assert json.load(f)["num_hidden_layers"] == layers
  names = {n for n, _ in tf.train.list_variables(os.path.join(export_dir, "bert_model.ckpt"))}
  assert "bert/encoder/layer_%d/output/dense/kernel" % (layers - 1) in names
  assert "bert/encoder/layer_%d/output/dense/kernel" % layers not in names
  assert not any("suc_layer" in n for n in names)
  assert {"mrc/start_end/kernel", "mrc/start_end/bias"} <= names
  for extra in ("vocab.txt", "ner_queries.json", "ner_task.json", "export_info.json"):
    assert os.path.isfile(os.path.join(export_dir, extra)), extra

  data = np.load(os.path.join(run["stage2"], "test_probabilities.npz"))
  feed, lengths = _npz_feed(data)
  n = len(lengths)
  sess, predict = serving.load_saved_model_predictor(os.path.join(export_dir, "saved_model"))
  try:
    out = predict(feed)
  finally:
    sess.close()
  assert set(out) == {"start_probs", "end_probs"}
  for key in ("start_probs", "end_probs"):
    served = np.concatenate([out[key][i, :lengths[i]] for i in range(n)])
    np.testing.assert_allclose(served, data[key], atol=1e-5, rtol=0)


def _npz_feed(data):
  """The SavedModel inputs of every feature in a test_probabilities.npz, padded; and lengths."""
  lengths = data["lengths"]
  offsets = np.concatenate([[0], np.cumsum(lengths)])
  n, width = len(lengths), int(lengths.max())
  feed = {k: np.zeros((n, width), np.int32) for k in ("input_ids", "input_mask", "segment_ids")}
  for i in range(n):
    a, b = offsets[i], offsets[i + 1]
    feed["input_ids"][i, :lengths[i]] = data["input_ids"][a:b]
    feed["segment_ids"][i, :lengths[i]] = data["segment_ids"][a:b]
    feed["input_mask"][i, :lengths[i]] = 1
  return feed, lengths


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_tflite_and_the_ner_predictor_match_run_ner_mrc(runs, name, tmp_path):
  from theseus.export import serving  # pylint: disable=g-import-not-at-top
  run = _ok(runs, name)
  export_dir = os.path.join(run["stage2"], "export")
  data = np.load(os.path.join(run["stage2"], "test_probabilities.npz"))
  feed, lengths = _npz_feed(data)
  backends = ("saved_model", "tflite") if name == "conll2003" else ("saved_model",)
  if "tflite" in backends:
    out = serving.TFLiteRunner(os.path.join(export_dir, "model.tflite"))(feed)
    for key in ("start_probs", "end_probs"):
      served = np.concatenate([out[key][i, :n] for i, n in enumerate(lengths)])
      np.testing.assert_allclose(served, data[key], atol=1e-5, rtol=0)
  # The predictor, on the test sentences as plain text, finds the entities run_ner_mrc.py wrote.
  with open(os.path.join(run["stage2"], "test_predictions.json"), encoding="utf-8") as f:
    records = json.load(f)
  joiner = " " if name == "conll2003" else ""
  texts = [joiner.join(r["tokens"]) for r in records]
  for backend in backends:
    predictor = serving.Predictor(export_dir, backend=backend)
    got = predictor.predict(texts)
    predictor.close()
    assert [g["tokens"] for g in got] == [r["tokens"] for r in records]
    assert [g["entities"] for g in got] == [r["entities"] for r in records], backend
  # The tiny model finds few entities at its 0.5 threshold: at one its probabilities cross more
  # often, the predictor's spans equal run_ner_mrc.py's decoding of its own probabilities.
  threshold, expected = _decode_probabilities(export_dir, records, data, lengths)
  assert sum(len(spans) for spans in expected) >= 3
  low = _export_with_threshold(export_dir, threshold, str(tmp_path / "low"))
  got = serving.Predictor(low, backend=backends[-1]).predict(texts)
  assert [[(e["type"], e["start"], e["end"]) for e in g["entities"]] for g in got] == expected


def _decode_probabilities(export_dir, records, data, lengths):
  """run_ner_mrc.py's span decoding of its test_probabilities.npz at a lower threshold.

  Returns (the threshold: the 80th percentile over words of min(start, end) probability, the
  spans per sentence).
  """
  from theseus.tasks.ner_mrc import decoding as ner_decoding  # pylint: disable=g-import-not-at-top
  from theseus.tasks.ner_mrc import features as ner_features  # pylint: disable=g-import-not-at-top
  from theseus.tasks.ner_mrc import readers as ner_readers  # pylint: disable=g-import-not-at-top
  from theseus.tasks.ner_mrc import tags as ner_tags  # pylint: disable=g-import-not-at-top
  from theseus.tasks.ner_mrc import task as ner_task  # pylint: disable=g-import-not-at-top
  import tokenization  # pylint: disable=g-import-not-at-top
  with open(os.path.join(export_dir, ner_task.EXPORT_TASK_FILE)) as f:
    task = json.load(f)
  queries = ner_readers.load_queries(os.path.join(export_dir, ner_task.EXPORT_QUERIES_FILE))
  tokenizer = tokenization.FullTokenizer(os.path.join(export_dir, "vocab.txt"), True)
  sentences = [ner_tags.NerSentence(r["tokens"], ["O"] * len(r["tokens"]), i)
               for i, r in enumerate(records)]
  _, metas = ner_features.convert_sentences_to_features(
      sentences, queries, tokenizer, task["max_seq_length"], task["doc_stride"])
  assert len(metas) == len(lengths)
  offsets = np.concatenate([[0], np.cumsum(lengths)])
  split = {k: [data[k][offsets[i]:offsets[i + 1]] for i in range(len(lengths))]
           for k in ("start_probs", "end_probs")}
  words = ner_decoding.word_level_probs(metas, split["start_probs"], split["end_probs"],
                                        len(sentences))
  threshold = float(np.percentile(np.concatenate(
      [np.minimum(start, end) for per_type in words for start, end in per_type.values()]), 80))
  tags = ner_decoding.decode_sentence_predictions(
      sentences, metas, split["start_probs"], split["end_probs"], threshold=threshold,
      max_span_length=task["max_span_length"] or None, entity_types=list(queries))
  return threshold, [list(ner_tags.bio_to_spans(t)) for t in tags]


def _export_with_threshold(export_dir, threshold, target):
  """A copy of the export whose ner_task.json has another span_threshold."""
  import shutil  # pylint: disable=g-import-not-at-top
  shutil.copytree(export_dir, target)
  path = os.path.join(target, "ner_task.json")
  with open(path) as f:
    task = json.load(f)
  task["span_threshold"] = threshold
  with open(path, "w") as f:
    json.dump(task, f)
  return target


# ------------------------------------------------------------------------------------------
# Flag checks and defaults (in-process, before any long work)
# ------------------------------------------------------------------------------------------


@pytest.fixture
def ner_cfg(minilm_dir, tmp_path):
  """make(**overrides) -> the RunSettings of run_ner_mrc.py's flag defaults + a tiny model."""
  from theseus.app import runner  # pylint: disable=g-import-not-at-top
  from theseus.tasks.ner_mrc import task as ner_task  # pylint: disable=g-import-not-at-top
  config_file = str(tmp_path / "bert_config.json")
  with open(config_file, "w") as f:
    json.dump(TINY_CONFIG, f)
  data_dir = tmp_path / "data"
  data_dir.mkdir()

  def make(**overrides):
    values = dict(data_dir=str(data_dir), bert_config_file=config_file,
                  vocab_file=os.path.join(minilm_dir, "vocab.txt"),
                  output_dir=str(tmp_path / "out"), max_seq_length=64, do_train=True,
                  do_eval=True)
    values.update(overrides)
    return runner.settings_of(ner_task.NerMrcRun, **values)

  make.data_dir = str(data_dir)
  return make


def test_file_and_query_defaults_follow_the_format(ner_cfg):
  from theseus.tasks.ner_mrc import task as ner_task  # pylint: disable=g-import-not-at-top
  settings = ner_task.resolve_settings(ner_cfg(data_format="char_bio").task)
  assert (settings.train_file, settings.dev_file, settings.test_file) == (
      "train_data", "test_data", "test_data")
  assert settings.query_file.endswith(os.path.join("queries", "ner_queries_msra.json"))
  settings = ner_task.resolve_settings(ner_cfg(data_format="conll2003", dev_file="my_dev.txt").task)
  assert (settings.train_file, settings.dev_file, settings.test_file) == (
      "train.txt", "my_dev.txt", "test.txt")
  assert settings.query_file.endswith(os.path.join("queries", "ner_queries_conll2003.json"))


@pytest.mark.parametrize("overrides, message", [
    ({"doc_stride": 0}, "--doc_stride"),
    ({"max_span_length": -1}, "--max_span_length"),
    ({"span_threshold": 1.0}, "--span_threshold"),
    ({"focal_gamma": -0.5}, "--focal_gamma"),
])
def test_bad_ner_flags_fail_early(ner_cfg, overrides, message):
  from theseus.app import runner  # pylint: disable=g-import-not-at-top
  from theseus.tasks.ner_mrc import task as ner_task  # pylint: disable=g-import-not-at-top
  from theseus import errors  # pylint: disable=g-import-not-at-top
  with pytest.raises(errors.InputDataError, match=message):
    runner.run_task(ner_task.NerMrcRun, ner_cfg(**overrides))


def test_missing_dev_file_and_unknown_entity_type_are_named(ner_cfg):
  from theseus.app import runner  # pylint: disable=g-import-not-at-top
  from theseus.tasks.ner_mrc import task as ner_task  # pylint: disable=g-import-not-at-top
  from theseus import errors  # pylint: disable=g-import-not-at-top
  with open(os.path.join(ner_cfg.data_dir, "train_data"), "w", encoding="utf-8") as f:
    f.write("李\tB-PER\n白\tI-PER\n好\tO\n")
  with pytest.raises(errors.InputDataError, match="test_data: file not found"):
    runner.run_task(ner_task.NerMrcRun, ner_cfg(data_format="char_bio"))
  with open(os.path.join(ner_cfg.data_dir, "test_data"), "w", encoding="utf-8") as f:
    f.write("\n北\tB-GPE\n京\tI-GPE\n")
  with pytest.raises(errors.InputDataError, match=r"test_data:2: .*'GPE' has no query"):
    runner.run_task(ner_task.NerMrcRun, ner_cfg(data_format="char_bio"))
