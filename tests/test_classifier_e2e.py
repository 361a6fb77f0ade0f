"""End-to-end tests of run_classifier.py on real slices of MRPC and SST-2 (tiny model).

Every stage through the real command line on MRPC: fine-tune predecessor -> stage 1 -> stage 2 ->
eval -> predict -> export -> reload the export as a plain BERT; SST-2 through one run; plus
resume, and the bucketed pipeline.
"""

import csv
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO_ROOT
from conftest import read_task_run

tf1 = tf.compat.v1
tf1.disable_eager_execution()

TINY_CONFIG = {"vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 4,
               "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 128,
               "type_vocab_size": 2, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
               "attention_probs_dropout_prob": 0.1}


def _read_rows(path):
  with open(path, encoding="utf-8-sig") as f:
    return f.read().split("\n")


def make_task_dir(shared_data_dir, tmp_path, task):
  """A small GLUE-format copy: 64 train rows, 40 dev rows, and 24 dev rows as test.tsv."""
  src = os.path.join(shared_data_dir, "glue", {"mrpc": "MRPC", "sst-2": "SST-2"}[task])
  out = tmp_path / task
  out.mkdir()
  train = _read_rows(os.path.join(src, "train.tsv"))
  dev = _read_rows(os.path.join(src, "dev.tsv"))
  (out / "train.tsv").write_text("\n".join(train[:65]) + "\n", encoding="utf-8")
  (out / "dev.tsv").write_text("\n".join(dev[:41]) + "\n", encoding="utf-8")
  test_rows = []
  for i, row in enumerate(dev[41:65]):
    cols = row.split("\t")
    if task == "mrpc":  # index, #1 ID, #2 ID, #1 String, #2 String
      test_rows.append("\t".join([str(i)] + cols[1:5]))
    else:  # index, sentence
      test_rows.append("%d\t%s" % (i, cols[0]))
  header = ("index\t#1 ID\t#2 ID\t#1 String\t#2 String" if task == "mrpc" else "index\tsentence")
  (out / "test.tsv").write_text(header + "\n" + "\n".join(test_rows) + "\n", encoding="utf-8")
  return str(out)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, minilm_dir):
  d = tmp_path_factory.mktemp("tiny_model")
  config = d / "bert_config.json"
  config.write_text(json.dumps(TINY_CONFIG))
  return str(config), os.path.join(minilm_dir, "vocab.txt")


def run_cli(args, expect_ok=True):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  proc = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "run_classifier.py")] + args,
                        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
  if expect_ok and proc.returncode != 0:
    raise AssertionError("run_classifier failed (%d):\n%s" % (proc.returncode, proc.stderr[-4000:]))
  return proc


def read_json(path):
  with open(path) as f:
    return json.load(f)


def test_single_sentence_task_trains_evaluates_and_predicts(shared_data_dir, tmp_path,
                                                            tiny_model):
  """SST-2 (one sentence per example) through one run; its stages, export and serving are
  the pair task's below and test_serving.py's."""
  config, vocab = tiny_model
  out = str(tmp_path / "run")
  run_cli(["--task_name=sst-2", "--data_dir=" + make_task_dir(shared_data_dir, tmp_path, "sst-2"),
           "--vocab_file=" + vocab, "--bert_config_file=" + config, "--output_dir=" + out,
           "--max_seq_length=64", "--train_batch_size=8", "--eval_batch_size=16",
           "--predict_batch_size=16", "--num_train_steps=2", "--learning_rate=1e-3",
           "--do_train", "--do_eval", "--do_predict"])
  assert read_json(os.path.join(out, "eval_results.json"))["eval_examples"] == 40
  with open(os.path.join(out, "test_results.tsv")) as f:
    rows = list(csv.reader(f, delimiter="\t"))
  assert len(rows) == 24 and all(len(r) == 2 for r in rows)
  assert len(read_json(os.path.join(out, "test_results.json"))) == 24


def test_every_stage_then_reload_export(shared_data_dir, tmp_path, tiny_model):
  task = "mrpc"
  config, vocab = tiny_model
  data_dir = make_task_dir(shared_data_dir, tmp_path, task)
  common = ["--task_name=" + task, "--data_dir=" + data_dir, "--vocab_file=" + vocab,
            "--max_seq_length=64", "--train_batch_size=8", "--eval_batch_size=16",
            "--predict_batch_size=16", "--num_train_steps=4", "--save_checkpoints_steps=2",
            "--log_every_n_steps=1", "--learning_rate=1e-3", "--seed=3"]
  pred_dir, s1_dir, s2_dir, reload_dir = (str(tmp_path / n) for n in ("pred", "s1", "s2", "rl"))

  # google-research/bert's TPU flags, as its command lines pass them.
  run_cli(common + ["--bert_config_file=" + config, "--output_dir=" + pred_dir, "--do_train",
                    "--do_eval", "--evaluate_during_training", "--use_tpu=False",
                    "--tpu_name=none", "--iterations_per_loop=1000", "--num_tpu_cores=8"])
  pred_eval = read_json(os.path.join(pred_dir, "eval_results.json"))
  assert pred_eval["eval_examples"] == 40
  # eval_results.txt holds google-research/bert's keys besides the project's.
  with open(os.path.join(pred_dir, "eval_results.txt")) as f:
    google_keys = dict(line.split(" = ", 1) for line in f.read().splitlines())
  assert float(google_keys["eval_accuracy"]) == pytest.approx(pred_eval["accuracy"])
  assert float(google_keys["eval_loss"]) == float(google_keys["loss"]) == pytest.approx(
      pred_eval["eval_loss"])
  assert int(google_keys["global_step"]) == int(os.path.basename(
      pred_eval["checkpoint"]).split("-")[-1])
  assert os.path.isdir(os.path.join(pred_dir, "best"))

  proc = run_cli(common + ["--bert_config_file=" + config, "--output_dir=" + s1_dir,
                           "--do_train", "--suc_layers=2", "--scheduler_type=linear",
                           "--replacing_rate=0.3", "--scheduler_linear_k=0.2",
                           "--init_checkpoint=" + pred_eval["checkpoint"]])
  # Every update is logged (--log_every_n_steps=1) with the linear schedule's rate
  # p = min(1, 0.3 + 0.2 * step), the share of modules drawn as successors and the draw.
  logged = re.findall(r"step (\d)/4 \|.*\| replace rate ([0-9.]+) \(replaced ([0-9.]+), "
                      r"drew ([01]{2})\)", proc.stderr)
  assert [int(step) for step, _, _, _ in logged] == [1, 2, 3, 4], proc.stderr[-3000:]
  for step, rate, replaced, drew in logged:
    allowed = [round(min(1.0, 0.3 + 0.2 * s), 3) for s in (int(step) - 1, int(step))]
    assert float(rate) in allowed, (step, rate)
    assert float(replaced) == drew.count("1") / 2.0, (replaced, drew)
  assert read_json(os.path.join(s1_dir, "train_results.json"))["replace_rate"] == pytest.approx(1.0)
  s1_ckpt = tf.train.latest_checkpoint(s1_dir)
  s1_names = {n for n, _ in tf.train.list_variables(s1_ckpt)}
  assert "bert/encoder/suc_layer_1/output/dense/kernel" in s1_names
  assert "bert/encoder/layer_3/output/dense/kernel" in s1_names
  # Predecessor layers are frozen in stage 1: identical to the predecessor's.
  pred_reader = tf.train.load_checkpoint(pred_eval["checkpoint"])
  s1_reader = tf.train.load_checkpoint(s1_ckpt)
  for name in ("bert/encoder/layer_2/attention/self/query/kernel",
               "bert/embeddings/word_embeddings", "output_weights"):
    np.testing.assert_array_equal(pred_reader.get_tensor(name), s1_reader.get_tensor(name))

  run_cli(common + ["--bert_config_file=" + config, "--output_dir=" + s2_dir, "--do_train",
                    "--do_eval", "--do_predict", "--do_export", "--suc_layers=2",
                    "--finetune_suc", "--init_checkpoint=" + s1_ckpt])
  s2_eval = read_json(os.path.join(s2_dir, "eval_results.json"))
  s2_names = {n for n, _ in tf.train.list_variables(tf.train.latest_checkpoint(s2_dir))}
  assert not any("/layer_" in n for n in s2_names)  # the stage-2 graph has no predecessor layers

  export_dir = os.path.join(s2_dir, "export")
  export_config = read_json(os.path.join(export_dir, "bert_config.json"))
  assert export_config["num_hidden_layers"] == 2
  export_names = {n for n, _ in tf.train.list_variables(os.path.join(export_dir,
                                                                      "bert_model.ckpt"))}
  assert "bert/encoder/layer_1/output/LayerNorm/gamma" in export_names
  assert not any("suc_layer" in n or "adam" in n or "layer_2" in n for n in export_names)

  # Reload the export as a plain 2-layer BERT: same metric, same predictions.
  run_cli(common + ["--bert_config_file=" + os.path.join(export_dir, "bert_config.json"),
                    "--output_dir=" + reload_dir, "--do_eval", "--do_predict", "--suc_layers=0",
                    "--init_checkpoint=" + os.path.join(export_dir, "bert_model.ckpt")])
  reload_eval = read_json(os.path.join(reload_dir, "eval_results.json"))
  for key in ("accuracy", "f1") if task == "mrpc" else ("accuracy",):
    assert reload_eval[key] == s2_eval[key], key
  assert abs(reload_eval["eval_loss"] - s2_eval["eval_loss"]) < 1e-5
  s2_pred = read_json(os.path.join(s2_dir, "test_results.json"))
  reload_pred = read_json(os.path.join(reload_dir, "test_results.json"))
  assert len(s2_pred) == 24
  with open(os.path.join(s2_dir, "test_results.tsv")) as f:
    tsv_rows = list(csv.reader(f, delimiter="\t"))
  assert len(tsv_rows) == 24 and all(len(r) == 2 for r in tsv_rows)

  def probs(records):
    return np.array([[r["probabilities"][label] for label in ("0", "1")] for r in records])

  np.testing.assert_allclose(probs(reload_pred), probs(s2_pred), atol=1e-5)

  # The SavedModel gives the script's predictions for the same inputs.
  from theseus.export import serving  # pylint: disable=g-import-not-at-top
  from theseus.tasks.classifier import datasets as classifier_datasets  # pylint: disable=g-import-not-at-top
  from theseus.tasks.classifier import features as classifier_features  # pylint: disable=g-import-not-at-top
  import tokenization  # pylint: disable=g-import-not-at-top
  processor = classifier_datasets.get_processor(task)
  examples = processor.get_test_examples(data_dir)
  features = classifier_features.convert_examples_to_features(
      examples, processor.get_labels(), 64, tokenization.FullTokenizer(vocab, True))
  sess, predict = serving.load_saved_model_predictor(os.path.join(export_dir, "saved_model"))
  width = max(len(f["input_ids"]) for f in features)
  ids = np.zeros((len(features), width), np.int32)
  mask = np.zeros_like(ids)
  segments = np.zeros_like(ids)
  for i, f in enumerate(features):
    n = len(f["input_ids"])
    ids[i, :n], mask[i, :n], segments[i, :n] = f["input_ids"], 1, f["segment_ids"]
  served = predict({"input_ids": ids, "input_mask": mask, "segment_ids": segments})
  sess.close()
  np.testing.assert_allclose(served["probabilities"], probs(s2_pred), atol=1e-5)
  np.testing.assert_array_equal(served["predictions"], probs(s2_pred).argmax(axis=1))


class _StopAfterFirstCheckpoint(Exception):
  pass


def read_classifier_run(settings, sets):
  """(the ClassifierRun of `settings` with the data of `sets` read, the BertConfig)."""
  from theseus.tasks.classifier import task as classifier_task  # pylint: disable=g-import-not-at-top
  return read_task_run(classifier_task.ClassifierRun, settings, sets)


def test_resume_evaluates_a_checkpoint_whose_evaluation_was_lost(shared_data_dir, tmp_path,
                                                                   tiny_model):
  """A run stopped after saving a checkpoint but before recording its evaluation evaluates it
  when resumed, also when that checkpoint is the last one of the run."""
  from theseus.app import runner  # pylint: disable=g-import-not-at-top
  from theseus.tasks.classifier import task as classifier_task  # pylint: disable=g-import-not-at-top
  from theseus.tasks.classifier import head as classifier_head  # pylint: disable=g-import-not-at-top
  config, vocab = tiny_model
  data_dir = make_task_dir(shared_data_dir, tmp_path, "mrpc")
  output_dir = str(tmp_path / "run")
  cfg = runner.settings_of(
      classifier_task.ClassifierRun, task_name="mrpc", data_dir=data_dir, bert_config_file=config,
      vocab_file=vocab, output_dir=output_dir, do_train=True, max_seq_length=64,
      train_batch_size=8, eval_batch_size=16, num_train_steps=4, save_checkpoints_steps=2,
      evaluate_during_training=True, max_eval_examples=16, seed=5)
  task_run, bert_config = read_classifier_run(cfg, {"train", "dev"})
  train_path, n = task_run.feature_cache("train", task_run.processor.get_train_examples(data_dir),
                                         False)
  dev_examples = task_run.processor.get_dev_sets(data_dir)[0][1][:16]
  eval_path, _ = task_run.feature_cache("dev", dev_examples, True)
  task = classifier_head.make_task(task_run.processor, dev_examples)
  history = os.path.join(output_dir, "eval_history.jsonl")

  def evaluated_steps():
    with open(history) as f:
      return [json.loads(line)["global_step"] for line in f]

  def drop_last_evaluation():
    with open(history) as f:
      lines = f.readlines()
    with open(history, "w") as f:
      f.writelines(lines[:-1])

  def stop(step):
    raise _StopAfterFirstCheckpoint(step)

  with pytest.raises(_StopAfterFirstCheckpoint):
    runner.train(cfg, bert_config, task, train_path, n, eval_path, on_checkpoint=stop)
  drop_last_evaluation()  # as if the run had died while evaluating checkpoint 2
  assert os.path.exists(history) and evaluated_steps() == []
  runner.train(cfg, bert_config, task, train_path, n, eval_path)
  assert evaluated_steps() == [2, 4]
  drop_last_evaluation()  # the last checkpoint's evaluation lost: the finished run evaluates it
  result = runner.train(cfg, bert_config, task, train_path, n, eval_path)
  assert result["global_step"] == 4 and evaluated_steps() == [2, 4]
  # Nothing is missing now: a finished run started again does nothing more.
  again = runner.train(cfg, bert_config, task, train_path, n, eval_path)
  assert again.get("resumed") and evaluated_steps() == [2, 4]


def test_bucketed_pipeline_pads_to_longest_and_loses_nothing(tmp_path):
  from theseus.training import input_pipeline  # pylint: disable=g-import-not-at-top
  rng = np.random.RandomState(0)
  lengths = rng.randint(3, 60, size=203)
  features = [{"input_ids": list(range(1, n + 1)), "segment_ids": [0] * n, "example_index": [i]}
              for i, n in enumerate(lengths)]
  keys = ["input_ids", "segment_ids", "example_index"]
  path = str(tmp_path / "f.tfrecord")
  input_pipeline.write_feature_tfrecord(path, features, keys)
  for is_training in (False, True):
    # Evaluation also asks for a key the records lack ("augmented", which only training copies
    # of --kd_augment carry): a zero-width feature, not a crash.
    asked = keys if is_training else keys + ["augmented"]
    with tf.Graph().as_default():
      batch = tf1.data.make_one_shot_iterator(input_pipeline.make_dataset(
          path, asked, [], batch_size=16, is_training=is_training, seed=1)).get_next()
      seen = []
      with tf1.Session() as sess:
        for _ in range(13 if not is_training else 30):
          try:
            b = sess.run(batch)
          except tf.errors.OutOfRangeError:
            break
          real = b["input_mask"].sum(axis=1)
          # The batch is exactly as long as its longest example, and the mask marks real ids.
          assert b["input_ids"].shape[1] == real.max()
          for row, n, index in zip(b["input_ids"], real, b["example_index"][:, 0]):
            assert n == lengths[index]
            np.testing.assert_array_equal(row[:n], np.arange(1, n + 1))
            assert not row[n:].any()
          seen.extend(b["example_index"][:, 0].tolist())
          if not is_training:
            assert b["augmented"].shape == (len(real), 0)
        if not is_training:
          with pytest.raises(tf.errors.OutOfRangeError):
            sess.run(batch)
    if not is_training:
      assert sorted(seen) == list(range(len(features)))  # every example exactly once
    else:
      assert len(seen) == 30 * 16  # training batches are full (the data repeats)


def test_feature_cache_key_follows_vocab_length_and_data(tmp_path):
  from theseus.training import input_pipeline  # pylint: disable=g-import-not-at-top
  calls = []

  def build():
    calls.append(1)
    return [{"input_ids": [1, 2], "example_index": [0]}]

  keys = ["input_ids", "example_index"]
  base = {"examples": "a", "vocab": "v1", "max_seq_length": 128}
  p1, _ = input_pipeline.cached_features(str(tmp_path), "train", base, build, keys)
  p2, _ = input_pipeline.cached_features(str(tmp_path), "train", dict(base), build, keys)
  assert p1 == p2 and len(calls) == 1  # reused
  for change in ({"vocab": "v2"}, {"max_seq_length": 64}, {"examples": "b"}):
    p, _ = input_pipeline.cached_features(str(tmp_path), "train", dict(base, **change), build, keys)
    assert p != p1
  assert len(calls) == 4


def test_use_tpu_is_refused_in_one_line(tmp_path, tiny_model):
  config, vocab = tiny_model
  proc = run_cli(["--task_name=mrpc", "--bert_config_file=" + config, "--vocab_file=" + vocab,
                  "--output_dir=" + str(tmp_path / "out"), "--do_eval", "--use_tpu=True",
                  "--data_dir=" + str(tmp_path)], expect_ok=False)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1].startswith("error: --use_tpu=True is not supported")


def test_mnli_writes_eval_results_for_matched_and_mismatched(tmp_path, tiny_model):
  from theseus.app import runner  # pylint: disable=g-import-not-at-top
  from theseus.tasks.classifier import task as classifier_task  # pylint: disable=g-import-not-at-top
  from test_classifier_data import _MNLI_HEAD, _mnli_row, _tsv  # pylint: disable=g-import-not-at-top
  config, vocab = tiny_model
  data = tmp_path / "mnli"
  data.mkdir()
  labels = ["neutral", "entailment", "contradiction"]
  (data / "train.tsv").write_text(_tsv(_MNLI_HEAD + ["label1", "gold_label"], *[
      _mnli_row(i, "a sentence %d" % i, "another %d" % i, [labels[i % 3]] * 2) for i in range(6)]))
  for name, n in (("dev_matched.tsv", 3), ("dev_mismatched.tsv", 4)):
    (data / name).write_text(_tsv(_MNLI_HEAD + ["label%d" % k for k in range(1, 6)] +
                                  ["gold_label"], *[
        _mnli_row(i, "dev %d" % i, "hyp %d" % i, [labels[i % 3]] * 6) for i in range(n)]))
  out = str(tmp_path / "out")
  cfg = runner.settings_of(
      classifier_task.ClassifierRun, task_name="mnli", data_dir=str(data), bert_config_file=config,
      vocab_file=vocab, output_dir=out, do_train=True, do_eval=True, num_train_steps=1,
      train_batch_size=4, max_seq_length=32)
  runner.run_task(classifier_task.ClassifierRun, cfg)
  matched = read_json(os.path.join(out, "eval_results.json"))
  mismatched = read_json(os.path.join(out, "eval_dev_mismatched_results.json"))
  assert matched["eval_examples"] == 3 and mismatched["eval_examples"] == 4
  assert matched["global_step"] == mismatched["global_step"] == 1
  assert os.path.isfile(os.path.join(out, "eval_results.txt"))
