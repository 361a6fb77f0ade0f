"""Shipping the small model: TFLite exports and predict.py, checked against the SavedModel and
against run_classifier.py / run_ner_mrc.py's own predictions, on real SST-2 / MRPC / CoNLL text.

One real run: the embedded all-MiniLM-L6-v2 fine-tuned briefly on SST-2 and exported with
--export_tflite, so that the predictions are those of a model that has learned something (an
untrained head's near-ties would make any int8 agreement figure meaningless). The NER export's
TFLite file and predictor are checked in test_ner_mrc_e2e.py, compressed successors' exports in
test_classifier_e2e.py and test_tf1_mode.py.
"""

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from conftest import REPO_ROOT

SST2_TRAIN = 800


def _run(script, args, timeout=900):
  proc = subprocess.run([sys.executable, os.path.join(REPO_ROOT, script)] + args, cwd=REPO_ROOT,
                        capture_output=True, text=True, timeout=timeout)
  assert proc.returncode == 0, proc.stderr[-4000:]
  return proc


def _dev_sentences(shared_data_dir, n):
  with open(os.path.join(shared_data_dir, "glue", "SST-2", "dev.tsv"), encoding="utf-8") as f:
    rows = f.read().splitlines()[1:n + 1]
  return [row.split("\t")[0] for row in rows]


@pytest.fixture(scope="module")
def sst2_export(shared_data_dir, minilm_dir, tmp_path_factory):
  """(export dir, run dir, data dir) of a fine-tuned SST-2 model with its TFLite files."""
  import convert_checkpoint  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp("serving")
  model = convert_checkpoint.convert_embedded_default(str(root / "minilm"))
  data = root / "sst2"
  data.mkdir()
  src = os.path.join(shared_data_dir, "glue", "SST-2")
  with open(os.path.join(src, "train.tsv"), encoding="utf-8") as f:
    (data / "train.tsv").write_text("\n".join(f.read().splitlines()[:SST2_TRAIN + 1]) + "\n")
  dev = _dev_sentences(shared_data_dir, 200)
  (data / "test.tsv").write_text("index\tsentence\n" + "".join(
      "%d\t%s\n" % (i, s) for i, s in enumerate(dev)))
  common = ["--task_name=sst-2", "--data_dir=" + str(data), "--vocab_file=" + model.vocab_file,
            "--bert_config_file=" + model.bert_config_file, "--max_seq_length=64",
            "--train_batch_size=16", "--learning_rate=1e-4", "--save_checkpoints_steps=1000"]
  run_dir = str(root / "run")
  _run("run_classifier.py", common + [
      "--output_dir=" + run_dir, "--do_train", "--do_predict", "--do_export", "--export_tflite",
      "--num_train_steps=40", "--init_checkpoint=" + model.init_checkpoint])
  return os.path.join(run_dir, "export"), run_dir, str(data)


def test_tflite_float_equals_the_saved_model_and_int8_agrees(sst2_export, shared_data_dir):
  from theseus.export import serving  # pylint: disable=g-import-not-at-top
  export_dir, _, _ = sst2_export
  with open(os.path.join(export_dir, "export_info.json")) as f:
    info = json.load(f)
  assert sorted(info["tflite_bytes"]) == ["model.tflite", "model_int8.tflite"]
  assert info["tflite_bytes"]["model_int8.tflite"] < 0.45 * info["tflite_bytes"]["model.tflite"]
  sentences = _dev_sentences(shared_data_dir, 200)
  probabilities = {}
  for backend in ("saved_model", "tflite", "tflite_int8"):
    predictor = serving.Predictor(export_dir, backend=backend)
    assert predictor.backend == backend
    probabilities[backend] = np.array([[r["probabilities"][l] for l in ("0", "1")]
                                       for batch in range(0, 200, 32)
                                       for r in predictor.predict(sentences[batch:batch + 32])])
    predictor.close()
  assert np.abs(probabilities["tflite"] - probabilities["saved_model"]).max() < 1e-5
  # auto: the float32 TFLite file for one short example; for a batch, what this CPU runs fastest.
  predictor = serving.Predictor(export_dir)
  predictor.predict(sentences[:1])
  assert predictor.last_backend == "tflite"
  predictor.predict(sentences[:2])
  assert predictor.last_backend == ("saved_model" if serving.cpu_has_avx512() else "tflite")
  predictor.close()
  reference = probabilities["saved_model"].argmax(-1)
  assert 0.2 < reference.mean() < 0.8  # a model that answers both classes
  agreement = np.mean(probabilities["tflite_int8"].argmax(-1) == reference)
  assert agreement >= 0.98, agreement


def test_the_saved_model_has_fused_layer_norms_and_the_tflite_file_element_wise_ones(sst2_export):
  """theseus/layer_norm.py: the form oneDNN fuses where TensorFlow serves, the form TFLite's
  converter keeps small in the TFLite files (the fused one would add FILL, REDUCE_PROD, ...)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  export_dir, _, _ = sst2_export
  assert not os.path.exists(os.path.join(export_dir, "tflite_source"))
  with tf.Graph().as_default() as graph, tf.compat.v1.Session() as sess:
    tf.compat.v1.saved_model.loader.load(sess, ["serve"], os.path.join(export_dir, "saved_model"))
    kinds = [op.type for op in graph.get_operations()]
  assert kinds.count("FusedBatchNormV3") == 13  # the embeddings' and 2 in each of 6 layers
  for name in ("model.tflite", "model_int8.tflite"):
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")  # tf.lite.Interpreter's notice about LiteRT
      interpreter = tf.lite.Interpreter(model_path=os.path.join(export_dir, name))
    ops = interpreter._get_ops_details()  # pylint: disable=protected-access
    builtins = {op["op_name"] for op in ops}
    assert "SQUARED_DIFFERENCE" in builtins and not builtins & {"FILL", "REDUCE_PROD"}, builtins


def test_predict_py_labels_equal_run_classifier_do_predict(sst2_export, shared_data_dir, tmp_path):
  export_dir, run_dir, _ = sst2_export
  with open(os.path.join(run_dir, "test_results.json"), encoding="utf-8") as f:
    expected = json.load(f)
  sentences = [record["text_a"] for record in expected]
  input_file = tmp_path / "sentences.txt"
  input_file.write_text("\n".join(sentences) + "\n", encoding="utf-8")
  # The default backend (auto) serves these batches (the SavedModel or TFLite, by CPU).
  proc = _run("predict.py", ["--export_dir=" + export_dir, "--input_file=" + str(input_file),
                             "--format=json"])
  got = [json.loads(line) for line in proc.stdout.splitlines()]
  assert [g["text"] for g in got] == sentences
  assert [g["label"] for g in got] == [r["prediction"] for r in expected]
  diff = max(abs(g["probabilities"][k] - r["probabilities"][k])
             for g, r in zip(got, expected) for k in ("0", "1"))
  assert diff < 1e-5, diff
  assert proc.stderr.strip() == ""  # TensorFlow's own messages stay out of the way
  # Raw text on the command line and stdin, as a user types it; text output.
  proc = _run("predict.py", ["--export_dir=" + export_dir, sentences[0], sentences[1]])
  assert [line.split("\t")[0] for line in proc.stdout.splitlines()] == [
      expected[0]["prediction"], expected[1]["prediction"]]


def test_predict_py_bad_input_is_one_line(sst2_export, tmp_path):
  export_dir, _, _ = sst2_export
  for args, message in (([], "error: --export_dir is required"),
                        (["--export_dir=" + str(tmp_path)], "error: %s: not an export" % tmp_path),
                        (["--export_dir=" + export_dir, "--backend=tflite_int8", "  "],
                         "error: example 1 is empty")):
    proc = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "predict.py")] + args,
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].startswith(message), proc.stderr[-500:]


def test_auto_picks_the_backend_measured_fastest_on_the_cpu(tmp_path):
  from theseus.export import serving  # pylint: disable=g-import-not-at-top
  both = ("saved_model", "tflite")
  # AVX-512: TFLite for one example of up to 64 word pieces, the SavedModel for the rest.
  assert serving.auto_backend(1, 64, both, avx512=True) == "tflite"
  assert serving.auto_backend(1, 65, both, avx512=True) == "saved_model"
  assert serving.auto_backend(2, 16, both, avx512=True) == "saved_model"
  # Other CPUs: TFLite for every shape.
  for batch_size, length in ((1, 16), (1, 512), (32, 128)):
    assert serving.auto_backend(batch_size, length, both, avx512=False) == "tflite"
  # Whatever the export has, when it has one of the two.
  for avx512 in (True, False):
    assert serving.auto_backend(32, 128, ["tflite"], avx512) == "tflite"
    assert serving.auto_backend(1, 16, ["saved_model"], avx512) == "saved_model"
  cpuinfo = tmp_path / "cpuinfo"
  cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n")
  assert serving.cpu_has_avx512(str(cpuinfo))
  cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512_vnni_like\n")
  assert not serving.cpu_has_avx512(str(cpuinfo))
  assert not serving.cpu_has_avx512(str(tmp_path / "missing"))


def test_tflite_runs_on_every_usable_core_unless_told(monkeypatch):
  """The TFLite interpreter's own default is one thread; num_threads=0 means every usable core,
  as it does for TensorFlow's sessions."""
  from theseus.export import serving  # pylint: disable=g-import-not-at-top
  asked = []

  class FakeInterpreter(object):

    def __init__(self, model_path, num_threads=None):
      del model_path
      asked.append(num_threads)

    def get_signature_runner(self, key):
      del key
      return lambda **inputs: inputs

  monkeypatch.setattr(serving.tf.lite, "Interpreter", FakeInterpreter)
  monkeypatch.setattr(serving.cli, "usable_cores", lambda: 7)
  serving.TFLiteRunner("model.tflite")
  serving.TFLiteRunner("model.tflite", num_threads=3)
  assert asked == [7, 3]
  monkeypatch.undo()
  assert serving.cli.usable_cores() >= 1
