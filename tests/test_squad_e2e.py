# coding=utf-8
"""End-to-end runs of the run_squad.py command line on small slices of the real SQuAD split.

A tiny random BERT (2 layers, hidden 32) with the real uncased vocab goes through every stage,
google-research/bert's flags as its README gives them:

  plain fine-tuning (evaluation during training)
  -> stage 1 (--suc_layers=1, soft labels from the fine-tuned model at a temperature)
  -> stage 2 (--finetune_suc) with --do_eval --do_predict --do_export.

(Resuming is the trainer's, the same for every application: test_resume_weights.py.)

The checks: the official evaluate-v1.1.py on the run's predictions.json gives eval_results'
figures; a v2.0 file (real paragraphs plus unanswerable questions) scored by evaluate-v2.0.py
likewise; predict.py on the export answers as the run did; a bad file is one line.
"""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT
from conftest import skip_or_fail
from test_squad_data import PEER_DIR
from test_squad_data import make_v2_file

TINY_CONFIG = {
    "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
    "hidden_size": 32, "initializer_range": 0.02, "intermediate_size": 64,
    "max_position_embeddings": 128, "num_attention_heads": 2, "num_hidden_layers": 2,
    "type_vocab_size": 2, "vocab_size": 30522,
}


def run(script, args, expect=0):
  env = dict(os.environ, CUDA_VISIBLE_DEVICES="-1")
  proc = subprocess.run([sys.executable, os.path.join(REPO_ROOT, script)] + args, cwd=REPO_ROOT,
                        env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == expect, (args, proc.stderr[-4000:])
  return proc


def write_slice(source, target, num_questions, skip_articles=0):
  """The first paragraphs of `source` holding about num_questions questions."""
  with open(source, encoding="utf-8") as f:
    articles = json.load(f)["data"][skip_articles:]
  paragraphs, count = [], 0
  for paragraph in articles[0]["paragraphs"]:
    if count >= num_questions:
      break
    paragraphs.append(paragraph)
    count += len(paragraph["qas"])
  with open(target, "w", encoding="utf-8") as f:
    json.dump({"version": "1.1", "data": [{"title": "slice", "paragraphs": paragraphs}]}, f,
              ensure_ascii=False)
  return target


def latest(directory):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.train.latest_checkpoint(directory)


@pytest.fixture(scope="module")
def world(shared_data_dir, minilm_dir, tmp_path_factory):
  base = tmp_path_factory.mktemp("squad_e2e")
  config = str(base / "bert_config.json")
  with open(config, "w") as f:
    json.dump(TINY_CONFIG, f)
  squad_dir = os.path.join(shared_data_dir, "squad")
  train = write_slice(os.path.join(squad_dir, "train.json"), str(base / "train.json"), 24)
  dev = write_slice(os.path.join(squad_dir, "dev.json"), str(base / "dev.json"), 16)
  common = ["--vocab_file=" + os.path.join(minilm_dir, "vocab.txt"),
            "--bert_config_file=" + config, "--max_seq_length=96", "--doc_stride=32",
            "--max_query_length=24", "--train_batch_size=8", "--eval_batch_size=32",
            "--predict_batch_size=32", "--learning_rate=1e-3", "--num_threads=1",
            "--use_tpu=False", "--save_checkpoints_steps=2", "--log_every_n_steps=2"]
  dirs = {k: str(base / k) for k in ("pred", "stage1", "stage2", "v2", "bad")}
  run("run_squad.py", common + [
      "--do_train=True", "--train_file=" + train, "--do_eval", "--predict_file=" + dev,
      "--evaluate_during_training", "--num_train_steps=4", "--output_dir=" + dirs["pred"]])
  run("run_squad.py", common + [
      "--do_train=True", "--train_file=" + train, "--suc_layers=1", "--kd_alpha=0.5",
      "--kd_temperature=2", "--num_train_steps=4", "--output_dir=" + dirs["stage1"],
      "--init_checkpoint=" + latest(os.path.join(dirs["pred"], "best"))])
  stage2 = common + ["--do_train=True", "--train_file=" + train, "--suc_layers=1",
                     "--finetune_suc", "--init_checkpoint=" + latest(dirs["stage1"]),
                     "--output_dir=" + dirs["stage2"]]
  run("run_squad.py", stage2 + ["--num_train_steps=4", "--do_eval", "--do_predict=True",
                                 "--predict_file=" + dev, "--do_export"])
  return {"dirs": dirs, "common": common, "train": train, "dev": dev, "base": base}


def official(script, data, predictions, na_probs=None):
  if not os.path.isfile(os.path.join(PEER_DIR, script)):
    skip_or_fail("%s not found in %s" % (script, PEER_DIR))
  args = [sys.executable, script, data, predictions] + (
      ["--na-prob-file", na_probs] if na_probs else [])
  out = subprocess.run(args, cwd=PEER_DIR, capture_output=True, text=True, check=True).stdout
  return json.loads(out.strip().splitlines()[-1] if script.endswith("1.1.py") else out)


def read_json(path):
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def test_stages_score_as_the_official_script(world):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  dirs = world["dirs"]
  history = [json.loads(line) for line in open(os.path.join(dirs["pred"],
                                                           "eval_history.jsonl"))]
  assert [h["global_step"] for h in history] == [2, 4]
  names = {n for n, _ in tf.train.list_variables(latest(dirs["stage1"]))}
  assert {"bert/encoder/suc_layer_0/output/dense/kernel", "bert/encoder/layer_1/output/dense/"
          "kernel", "cls/squad/output_weights"} <= names
  results = read_json(os.path.join(dirs["stage2"], "eval_results.json"))
  assert results["global_step"] == 4 and results["num_questions"] == 16
  predictions = os.path.join(dirs["stage2"], "predictions.json")
  assert len(read_json(predictions)) == 16
  assert len(read_json(os.path.join(dirs["stage2"], "nbest_predictions.json"))) == 16
  scores = official("evaluate-v1.1.py", world["dev"], predictions)
  for key in ("exact_match", "f1"):
    assert abs(results[key] - scores[key]) < 1e-6, (key, results[key], scores[key])
  with open(os.path.join(dirs["stage2"], "eval_results.txt")) as f:
    keys = {line.split(" = ")[0] for line in f}
  assert {"exact_match", "f1", "global_step"} <= keys


def test_v2_eval_scores_as_the_official_script(world, shared_data_dir):
  v2 = make_v2_file(shared_data_dir, world["base"], num_paragraphs=3)
  out = world["dirs"]["v2"]
  run("run_squad.py", world["common"] + [
      "--do_eval", "--predict_file=" + v2, "--version_2_with_negative=True",
      "--null_score_diff_threshold=-1.0", "--suc_layers=1", "--finetune_suc",
      "--init_checkpoint=" + latest(world["dirs"]["stage2"]), "--output_dir=" + out])
  results = read_json(os.path.join(out, "eval_results.json"))
  predictions, null_odds = (os.path.join(out, n) for n in ("predictions.json",
                                                          "null_odds.json"))
  scores = official("evaluate-v2.0.py", v2, predictions)
  scores.update({k: v for k, v in official("evaluate-v2.0.py", v2, predictions,
                                           null_odds).items() if k.startswith("best_")})
  assert scores["NoAns_total"] == 6
  for key, value in scores.items():
    assert abs(results[key] - value) < 1e-6, (key, results[key], value)
  assert results["exact_match"] == results["exact"]


def test_predict_py_answers_as_the_run_did(world):
  dev = read_json(world["dev"])["data"][0]["paragraphs"]
  lines = [(qa["id"], qa["question"] + "\t" + p["context"]) for p in dev for qa in p["qas"]][:4]
  export = os.path.join(world["dirs"]["stage2"], "export")
  proc = run("predict.py", ["--export_dir=" + export, "--format=json"] + [t for _, t in lines])
  got = [json.loads(line) for line in proc.stdout.splitlines()]
  expected = read_json(os.path.join(world["dirs"]["stage2"], "predictions.json"))
  assert [g["answer"] for g in got] == [expected[qas_id] for qas_id, _ in lines]
  for (_, text), g in zip(lines, got):
    context = text.split("\t")[1]
    assert g["start"] < 0 or context[g["start"]:g["end"]] == g["answer"]
  proc = run("predict.py", ["--export_dir=" + export, "a question without its context"],
             expect=2)
  assert proc.stderr.strip().splitlines()[-1] == (
      "error: example 1: a question and its context separated by one tab")


def test_a_bad_answer_is_one_line_and_nothing_is_written(world):
  document = read_json(world["train"])
  question = document["data"][0]["paragraphs"][-1]["qas"][-1]
  question["answers"][0]["answer_start"] += 1
  bad = str(world["base"] / "bad_train.json")
  with open(bad, "w", encoding="utf-8") as f:
    json.dump(document, f)
  out = world["dirs"]["bad"]
  proc = run("run_squad.py", world["common"] + ["--do_train=True", "--train_file=" + bad,
                                                "--output_dir=" + out], expect=2)
  line = proc.stderr.strip().splitlines()[-1]
  assert line.startswith("error: %s: question %s: answer_start %d does not point at its text"
                         % (bad, question["id"], question["answers"][0]["answer_start"]))
  assert not os.path.exists(out) or sorted(os.listdir(out)) in ([], ["cache"])
  proc = run("run_squad.py", world["common"] + ["--do_eval", "--output_dir=" + out], expect=2)
  assert proc.stderr.strip().splitlines()[-1] == (
      "error: --predict_file is required with --do_eval / --do_predict")
