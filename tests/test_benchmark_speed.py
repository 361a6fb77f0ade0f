"""Tests for benchmarks/speed.py's arithmetic: which targets a run meets, the stage-1 ratios, the
calls timed per round, and the report printed again from a saved JSON. No timing runs here."""

import collections
import json
import os
import sys

import pytest

from conftest import REPO_ROOT

BENCHMARKS = os.path.join(REPO_ROOT, "benchmarks")


@pytest.fixture(scope="module")
def speed():
  sys.path.insert(0, BENCHMARKS)
  try:
    import speed as module  # pylint: disable=g-import-not-at-top
    import speed_report  # pylint: disable=g-import-not-at-top
    yield module, speed_report
  finally:
    sys.path.remove(BENCHMARKS)


def rounds(*per_round):
  """A worker's raw timings: one dict of figures per round."""
  return {"rounds": [dict(r) for r in per_round], "call_ms": [1.0], "replaced": []}


def inference_entry(seq_per_s):
  """A workload's entry: each model's sequences/s and its speed relative to TF's 6 layers."""
  return {"models": collections.OrderedDict(
      (name, {"sequences_per_s": v, "speedup_vs_tf_predecessor": v / seq_per_s["tf_6L"]})
      for name, v in seq_per_s.items())}


def test_targets_are_tf_over_pytorch_and_successor_over_predecessor(speed):
  _, report = speed
  results = {
      "inference": {
          "len128_b32": inference_entry({"tf_6L": 100.0, "tf_3L": 190.0, "tf_2L": 250.0,
                                         "torch_6L": 80.0}),
          "sst2dev_b1": inference_entry({"tf_6L": 100.0, "torch_6L": 90.0}),
      },
      "training": {"predecessor_6L": {"tokens_per_s": 3000.0},
                   "torch_finetune_6L": {"tokens_per_s": 2000.0}},
      "training_ratios": {"stage1 / both": 0.56},
      "training_target_keys": ["stage1 / both"],
  }
  report.check_targets(results, 128, 6)
  got = {t["what"]: (round(t["measured"], 4), t["met"]) for t in results["targets"]}
  assert got == {
      "inference speedup 6 -> 3, batch 32, length 128": (1.9, True),
      "inference speedup 6 -> 2, batch 32, length 128": (2.5, False),
      "stage1 / both": (0.56, False),
      "TF predecessor train step vs PyTorch (tokens/s ratio)": (1.5, True),
      "TF 6L inference vs PyTorch, len128_b32 (seq/s ratio)": (1.25, True),
      "TF 6L inference vs PyTorch, sst2dev_b1 (seq/s ratio)": (1.1111, False),
  }
  train_target = "TF predecessor train step vs PyTorch (tokens/s ratio)"
  assert [t["detail"] for t in results["targets"] if t["what"] == train_target] == [None]
  # With the TF step's profile, the detail says what the target leaves the non-matmul ops.
  results["training"]["torch_finetune_6L"]["ms_per_step_p50"] = 2400.0
  results["profiles"] = {"train_predecessor_6L": {"matmul_ms": 1400.0, "other_ms": 450.0}}
  report.check_targets(results, 128, 6)
  assert [t["detail"] for t in results["targets"] if t["what"] == train_target] == [
      "a 1600 ms step; the traced step's matrix products take 1400 ms, leaving 200 ms for the "
      "other ops, which take 450"]
  # The speedup targets are defined at length 128 only.
  report.check_targets(results, 64, 6)
  assert not any("speedup" in t["what"] for t in results["targets"])


def test_inference_targets_follow_the_backend_auto_runs(speed):
  """With TFLite timed, each workload also gets TF / PyTorch for the backend predict.py's auto
  picks there: the TFLite file, the SavedModel, or none when its batches would mix the two."""
  _, report = speed
  inference = {
      "len128_b1": inference_entry({"tf_6L": 100.0, "tflite_6L": 150.0, "torch_6L": 100.0}),
      "len128_b32": inference_entry({"tf_6L": 100.0, "tflite_6L": 90.0, "torch_6L": 50.0}),
      "sst2dev_b1": inference_entry({"tf_6L": 100.0, "tflite_6L": 300.0, "torch_6L": 200.0}),
  }
  auto = {"len128_b1": "tflite", "len128_b32": "saved_model", "sst2dev_b1": "mixed"}
  got = {t["what"]: round(t["measured"], 4)
         for t in report.inference_targets(inference, auto, 6)}
  assert got == {
      "TF 6L inference vs PyTorch, len128_b1 (seq/s ratio)": 1.0,
      "TF 6L inference as predict.py runs it (auto: tflite) vs PyTorch, len128_b1 (seq/s ratio)":
          1.5,
      "TF 6L inference vs PyTorch, len128_b32 (seq/s ratio)": 2.0,
      "TF 6L inference as predict.py runs it (auto: saved_model) vs PyTorch, len128_b32 "
      "(seq/s ratio)": 2.0,
      "TF 6L inference vs PyTorch, sst2dev_b1 (seq/s ratio)": 0.5,
  }


def test_stage1_ratios_pair_rounds_and_expect_the_mean_step_from_the_extremes(speed):
  module, _ = speed
  raw = {"stage1_6to3_p0.25": rounds({"ms_per_call": 5.0}, {"ms_per_call": 6.0},
                                    {"ms_per_call": 9.0}),
         "both_branches_6to3_p0.25": rounds({"ms_per_call": 10.0}, {"ms_per_call": 10.0},
                                           {"ms_per_call": 10.0})}
  training = {"stage1_6to3_p0": {"ms_per_step_mean": 8.0},
              "stage1_6to3_p1": {"ms_per_step_mean": 4.0},
              "both_branches_6to3_p0.25": {"ms_per_step_mean": 12.0}}
  ratios, keys = module.stage1_ratios(raw, training, 6, [3], 0.25, extremes=True)
  assert keys == ["stage1_6to3_p0.25 / both_branches_6to3_p0.25 (step time)"]
  assert ratios[keys[0]] == pytest.approx(0.6)  # median of 0.5, 0.6, 0.9
  assert ratios["stage1 6to3 mean ms at p=0.25 expected from p=0 and p=1"] == pytest.approx(7.0)
  assert ratios["stage1 6to3 expected from p=0 and p=1 / both_branches_6to3_p0.25 "
                "(mean step time)"] == pytest.approx(7.0 / 12.0)


def test_calls_per_round_repeat_a_fixed_batch_and_spread_over_the_dev_set(speed):
  module, _ = speed
  assert module.calls_per_round(1, iters=4, warmup=2, real_max_batches=0) == ([0] * 4, [0] * 2)
  assert module.calls_per_round(28, iters=4, warmup=3, real_max_batches=0) == (
      list(range(28)), [0, 1, 2])
  timed, warm = module.calls_per_round(28, iters=4, warmup=3, real_max_batches=4)
  assert timed == [0, 9, 18, 27] and warm == [0, 1, 2]


def test_a_saved_run_prints_again(speed, capsys):
  _, report = speed
  path = os.path.join(BENCHMARKS, "results", "speed_amx_fused_layer_norm.json")
  with open(path) as f:
    results = json.load(f)
  report.report(results, path)
  out = capsys.readouterr().out
  assert "INFERENCE through the exported SavedModel" in out
  assert "[MISSED] TF 6L inference vs PyTorch, sst2dev_b1 (seq/s ratio): measured 0.850" in out
  assert out.rstrip().endswith("JSON: %s" % path)


def test_a_traced_step_runs_its_ops_one_at_a_time(tmp_path):
  """Two independent matrix products would run side by side in the session's inter-op pool; the
  profile's traced step runs them one after the other, so no two op intervals overlap."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  sys.path.insert(0, BENCHMARKS)
  try:
    import speed_workers  # pylint: disable=g-import-not-at-top
  finally:
    sys.path.remove(BENCHMARKS)
  tf1 = tf.compat.v1
  graph = tf.Graph()
  with graph.as_default():
    x = tf1.placeholder(tf.float32, [256, 256])
    products = [tf.matmul(tf.matmul(x + i, x), x) for i in range(4)]
    total = tf.add_n(products)
  config = tf1.ConfigProto(intra_op_parallelism_threads=1, inter_op_parallelism_threads=4)
  with tf1.Session(graph=graph, config=config) as sess:
    path = str(tmp_path / "timeline.json")
    prof = speed_workers._trace(sess, total, {x: np.ones([256, 256], np.float32)}, path)
  assert prof["top_ops"][0]["op"] in ("MatMul", "_MklMatMul")
  matmuls = sum(o["ms"] for o in prof["top_ops"] if "MatMul" in o["op"])
  assert prof["matmul_ms"] == pytest.approx(matmuls) and matmuls > 0
  assert prof["matmul_ms"] + prof["other_ms"] == pytest.approx(prof["op_time_ms_sum"])
  with open(path) as f:
    events = sorted((e["ts"], e["ts"] + e["dur"]) for e in json.load(f)["traceEvents"]
                    if e.get("ph") == "X" and e.get("args", {}).get("op"))
  assert len(events) >= 8
  for (_, end), (start, _) in zip(events, events[1:]):
    assert start >= end


def test_the_pytorch_step_profile_splits_matrix_products_from_the_rest(tmp_path):
  """The PyTorch worker's traced training step counts aten::mm / addmm / bmm as matrix products
  (the figure the TF step's is compared with) and everything else as the rest."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  transformers = pytest.importorskip("transformers", reason="PyTorch reference not installed")
  sys.path.insert(0, BENCHMARKS)
  try:
    import speed_workers  # pylint: disable=g-import-not-at-top
  finally:
    sys.path.remove(BENCHMARKS)
  config = transformers.BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=2,
                                   num_attention_heads=2, intermediate_size=32)
  transformers.BertForSequenceClassification(config).save_pretrained(str(tmp_path / "hf"))
  batch = (np.ones([2, 8], np.int32), np.ones([2, 8], np.int32), np.zeros([2, 8], np.int32))
  runner = speed_workers.TorchRunner({"hf_dir": str(tmp_path / "hf"), "threads": 1,
                                      "mode": "train", "workloads": {"train": [batch]}})
  prof = runner.profile("train", str(tmp_path / "profiles" / "torch.json"))
  assert os.path.getsize(prof["timeline"]) > 0
  top = {o["op"]: o["ms"] for o in prof["top_ops"]}
  assert prof["matmul_ms"] >= top.get("aten::mm", 0) + top.get("aten::addmm", 0) > 0
  assert prof["matmul_ms"] + prof["other_ms"] == pytest.approx(prof["op_time_ms_sum"])
  assert prof["other_ms"] > 0
