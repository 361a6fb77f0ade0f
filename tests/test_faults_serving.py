# coding=utf-8
"""Bad input and faults of the serving side, through the command lines: predict.py on bad bytes,
bad flags and damaged or untrained exports, the converter on damaged weights (and its TFLite
files for an existing export), and a seeded fuzz of both. Every case ends with exit 0 and a result, or exit 2 and one `error:` line; never a
traceback, a signal or a hang.

The export: a tiny 4-layer BERT (the real uncased vocab) fine-tuned a few steps on a real MRPC
slice (a sentence-pair task), exported with --export_tflite.
"""

import json
import os
import random
import shutil
import subprocess
import sys

import pytest

from conftest import REPO_ROOT
from test_classifier_e2e import make_task_dir
from test_resume_weights import TINY_CONFIG

TIMEOUT_S = 300


def run(script, args, stdin=None, timeout=TIMEOUT_S):
  """Runs a command line; returns (exit code, stdout, stderr) as bytes-decoded text."""
  proc = subprocess.run([sys.executable, os.path.join(REPO_ROOT, script)] + list(args),
                        cwd=REPO_ROOT, input=stdin, capture_output=True, timeout=timeout)
  return (proc.returncode, proc.stdout.decode("utf-8", "replace"),
          proc.stderr.decode("utf-8", "replace"))


def one_error_line(code, stderr, expected_code=2):
  """Asserts the one-line failure; returns the line."""
  assert code == expected_code, (code, stderr[-3000:])
  assert "Traceback" not in stderr, stderr[-3000:]
  lines = stderr.rstrip("\n").splitlines()
  errors = [line for line in lines if line.startswith("error:")]
  assert len(errors) == 1 and lines[-1] == errors[0], stderr[-3000:]
  return errors[0]


@pytest.fixture(scope="module")
def world(tmp_path_factory, shared_data_dir, minilm_dir):
  root = tmp_path_factory.mktemp("serving_faults")
  config = root / "bert_config.json"
  config.write_text(json.dumps(TINY_CONFIG))
  data = make_task_dir(shared_data_dir, root, "mrpc")
  common = ["--task_name=mrpc", "--data_dir=" + data, "--bert_config_file=" + str(config),
            "--vocab_file=" + os.path.join(minilm_dir, "vocab.txt"), "--max_seq_length=64",
            "--train_batch_size=8", "--num_threads=1"]
  code, _, err = run("run_classifier.py", common + [
      "--output_dir=" + str(root / "run"), "--do_train", "--num_train_steps=3",
      "--save_checkpoints_steps=3", "--do_export", "--export_tflite"])
  assert code == 0, err[-3000:]
  return {"root": root, "export": str(root / "run" / "export"), "common": common,
          "config": str(config)}


def copy_export(world, name):
  target = str(world["root"] / name)
  shutil.rmtree(target, ignore_errors=True)
  shutil.copytree(world["export"], target)
  return target


@pytest.mark.parametrize("args, stdin, message", [
    ([], b"first\tpair\n\xff second\tpair\n", "error: <stdin>:2: bytes that are not valid utf-8"),
    (["--batch_size=-1", "a\tb"], None, "error: --batch_size must be >= 1, got -1"),
    (["--batch_size=0", "a\tb"], None, "error: --batch_size must be >= 1, got 0"),
    (["--num_threads=-2", "a\tb"], None, "error: --num_threads must be >= 0, got -2"),
])
def test_predict_checks_its_input_before_anything_loads(world, args, stdin, message):
  code, out, err = run("predict.py", ["--export_dir=" + world["export"]] + args, stdin=stdin)
  assert one_error_line(code, err).startswith(message)
  assert out == ""  # nothing half-written, in particular no JSON line with raw bytes


def test_predict_refuses_an_argument_that_is_not_utf8(world):
  proc = subprocess.run([sys.executable.encode(), os.path.join(REPO_ROOT, "predict.py").encode(),
                         b"--export_dir=" + world["export"].encode(), b"fine\tpair",
                         b"caf\xe9\tpair"], cwd=REPO_ROOT, capture_output=True,
                        timeout=TIMEOUT_S)
  line = one_error_line(proc.returncode, proc.stderr.decode("utf-8", "replace"))
  assert line == "error: argument 2 is not valid UTF-8"


def test_predict_keeps_the_input_lines(world, tmp_path):
  lines = ["a film\tanother film", "", "one more\tpair", "", ""]
  path = tmp_path / "pairs.txt"
  path.write_text("\n".join(lines) + "\n", encoding="utf-8")
  code, out, err = run("predict.py", ["--export_dir=" + world["export"],
                                      "--input_file=" + str(path)])
  assert code == 0, err[-2000:]
  got = out.split("\n")[:-1]
  assert len(got) == len(lines)
  assert [bool(g) for g in got] == [bool(line) for line in lines]
  code, out, _ = run("predict.py", ["--export_dir=" + world["export"], "--format=json"],
                     stdin=("\n".join(lines) + "\n").encode())
  records = [json.loads(line) for line in out.splitlines()]
  assert [r["line"] for r in records] == [1, 2, 3, 4, 5]
  assert [bool(r.get("empty")) for r in records] == [not line for line in lines]
  # A pair task's line without a tab is named by its file and line.
  path.write_text("a\tb\n\nc\td\nno tab here\n", encoding="utf-8")
  code, _, err = run("predict.py", ["--export_dir=" + world["export"],
                                    "--input_file=" + str(path)])
  assert one_error_line(code, err) == (
      "error: %s:4: this task reads sentence pairs: two texts separated by one tab" % path)


def _truncate(path, fraction=0.5):
  with open(path, "rb") as f:
    data = f.read()
  with open(path, "wb") as f:
    f.write(data[:int(len(data) * fraction)])


@pytest.mark.parametrize("damage, backend, message", [
    (lambda e: _truncate(os.path.join(e, "model.tflite")), "tflite",
     "model.tflite: damaged: its content is not what the export wrote"),
    (lambda e: open(os.path.join(e, "model.tflite"), "wb").close(), "auto",
     "model.tflite: damaged: its content is not what the export wrote"),
    (lambda e: _truncate(os.path.join(e, "saved_model", "saved_model.pb")), "saved_model",
     "saved_model.pb: damaged: its content is not what the export wrote"),
    (lambda e: open(os.path.join(e, "export_info.json"), "w").write("{"), "auto",
     "export_info.json: export_info.json is not valid JSON"),
    (lambda e: open(os.path.join(e, "classifier_task.json"), "w").write('{"labels": ["0"]}'),
     "tflite", "classifier_task.json: task file lacks 'is_regression'"),
])
def test_a_damaged_export_is_one_line(world, damage, backend, message):
  export = copy_export(world, "damaged")
  damage(export)
  code, out, err = run("predict.py", ["--export_dir=" + export, "--backend=" + backend,
                                      "a\tb"])
  assert message in one_error_line(code, err)
  assert out == ""


def test_an_older_export_without_digests_is_probed_in_a_child(world):
  export = copy_export(world, "legacy")
  info_path = os.path.join(export, "export_info.json")
  with open(info_path) as f:
    info = json.load(f)
  del info["sha256"]
  with open(info_path, "w") as f:
    json.dump(info, f)
  _truncate(os.path.join(export, "model.tflite"))
  code, _, err = run("predict.py", ["--export_dir=" + export, "--backend=tflite", "a\tb"])
  line = one_error_line(code, err)
  assert "model.tflite: damaged: the TFLite runtime cannot read it (exit code" in line


def test_auto_serves_batches_from_tflite_when_the_saved_model_is_gone(world):
  export = copy_export(world, "no_saved_model")
  shutil.rmtree(os.path.join(export, "saved_model"))
  code, out, err = run("predict.py", ["--export_dir=" + export, "a\tb", "c\td"])
  assert code == 0, err[-2000:]
  assert len(out.splitlines()) == 2


def test_the_converter_writes_the_tflite_files_of_an_existing_export(world):
  """convert_checkpoint.py --mode=tflite converts the export's own SavedModel (its LayerNorms in
  the fused form, theseus/layer_norm.py): files recorded with their digests, same predictions."""
  export = copy_export(world, "reconverted")
  for name in ("model.tflite", "model_int8.tflite"):
    os.remove(os.path.join(export, name))
  code, _, err = run("convert_checkpoint.py", ["--mode=tflite", "--export_dir=" + export])
  assert code == 0, err[-3000:]
  with open(os.path.join(export, "export_info.json")) as f:
    info = json.load(f)
  for name in ("model.tflite", "model_int8.tflite"):
    assert info["tflite_bytes"][name] == os.path.getsize(os.path.join(export, name))
    assert name in info["sha256"]
  from theseus.export import serving  # pylint: disable=g-import-not-at-top
  pairs = ["a fine film\tanother fine film", "the market fell\tshares rose", "yes\tno"]
  probabilities = {}
  for backend in ("saved_model", "tflite"):
    predictor = serving.Predictor(export, backend=backend)
    probabilities[backend] = [r["probabilities"] for r in predictor.predict(pairs)]
    predictor.close()
  assert len(probabilities["tflite"]) == len(pairs)
  for tflite, saved in zip(probabilities["tflite"], probabilities["saved_model"]):
    assert sorted(tflite) == sorted(saved)
    assert max(abs(tflite[label] - saved[label]) for label in saved) < 1e-5


def test_an_untrained_head_is_refused_unless_allowed(world, tmp_path):
  import modeling_theseus as modeling  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf1 = tf.compat.v1
  bare = str(tmp_path / "bare" / "bert_model.ckpt")  # a BERT with no task head
  with tf.Graph().as_default():
    ids = tf1.placeholder(tf.int32, [None, None])
    modeling.BertModel(modeling.BertConfig.from_dict(TINY_CONFIG), False, ids, ids, ids)
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      tf1.train.Saver().save(sess, bare, write_meta_graph=False)
  out_dir = str(tmp_path / "out")
  code, _, err = run("run_classifier.py", world["common"] + [
      "--output_dir=" + out_dir, "--do_export", "--init_checkpoint=" + bare])
  assert code == 0, err[-2000:]
  export = os.path.join(out_dir, "export")
  with open(os.path.join(export, "export_info.json")) as f:
    assert json.load(f)["untrained_variables"] == ["output_bias", "output_weights"]
  code, out, err = run("predict.py", ["--export_dir=" + export, "a\tb"])
  line = one_error_line(code, err)
  assert line.startswith("error: %s: output_bias, output_weights did not come from a "
                         "checkpoint" % export) and "--allow_untrained" in line
  code, out, err = run("predict.py", ["--export_dir=" + export, "--allow_untrained", "a\tb"])
  assert code == 0 and len(out.splitlines()) == 1, err[-2000:]


def test_a_closed_pipe_ends_predict_quietly(world):
  proc = subprocess.run("printf 'a\\tb\\nc\\td\\ne\\tf\\n' | %s %s --export_dir=%s | head -c 1" % (
      sys.executable, os.path.join(REPO_ROOT, "predict.py"), world["export"]), shell=True,
                        cwd=REPO_ROOT, capture_output=True, timeout=TIMEOUT_S)
  assert b"Traceback" not in proc.stderr and b"Error" not in proc.stderr, proc.stderr[-2000:]


def _fuzz_cases(seed):
  """(name, damage function of an export dir or an HF dir) cases, drawn from `seed`."""
  rng = random.Random(seed)
  targets = ["model.tflite", "model_int8.tflite", os.path.join("saved_model", "saved_model.pb"),
             os.path.join("saved_model", "variables", "variables.data-00000-of-00001")]
  cases = []
  for i in range(16):
    target = rng.choice(targets)
    if rng.random() < 0.5:
      fraction = rng.random()
      cases.append(("truncate %s to %.2f" % (target, fraction),
                    lambda e, t=target, f=fraction: _truncate(os.path.join(e, t), f)))
    else:
      offset = rng.random()
      cases.append(("flip a byte of %s at %.2f" % (target, offset),
                    lambda e, t=target, o=offset: _flip(os.path.join(e, t), o)))
  return cases


def _flip(path, offset):
  with open(path, "r+b") as f:
    data = bytearray(f.read())
    position = min(len(data) - 1, int(offset * len(data)))
    data[position] ^= 0xFF
    f.seek(0)
    f.write(bytes(data))


def _assert_clean(code, out, err, what):
  assert code in (0, 2), (what, code, err[-2000:])
  assert "Traceback" not in err, (what, err[-2000:])
  if code == 2:
    assert err.rstrip("\n").splitlines()[-1].startswith("error:"), (what, err[-2000:])


def test_fuzz_predict_on_damaged_model_files(world):
  for name, damage in _fuzz_cases(seed=11):
    export = copy_export(world, "fuzz")
    damage(export)
    backend = "tflite_int8" if "int8" in name else (
        "tflite" if "tflite" in name else "saved_model")
    code, out, err = run("predict.py", ["--export_dir=" + export, "--backend=" + backend,
                                        "a\tb"], timeout=120)
    _assert_clean(code, out, err, name)
    assert code == 2, (name, out)  # every damage is found: the digests cover every model file


def test_fuzz_predict_on_random_bytes(world):
  rng = random.Random(5)
  for i in range(4):
    text = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
    code, out, err = run("predict.py", ["--export_dir=" + world["export"], "--format=json"],
                         stdin=text, timeout=120)
    _assert_clean(code, out, err, "random bytes %d" % i)
    for line in out.splitlines():
      json.loads(line)  # whatever was printed is valid UTF-8 JSON


def test_fuzz_converter_on_damaged_safetensors(minilm_dir, tmp_path):
  rng = random.Random(3)
  for i in range(8):
    hf_dir = str(tmp_path / ("hf%d" % i))
    shutil.copytree(minilm_dir, hf_dir, ignore=shutil.ignore_patterns("*.bin", "*.onnx"))
    path = os.path.join(hf_dir, "model.safetensors")
    if i % 2:
      _truncate(path, rng.random())
    else:
      _flip(path, rng.random() * 0.001)  # inside the header
    code, out, err = run("convert_checkpoint.py", ["--mode=hf_to_tf", "--hf_dir=" + hf_dir,
                                                   "--output_dir=" + str(tmp_path / "out")],
                         timeout=300)
    _assert_clean(code, out, err, "safetensors case %d" % i)


def test_every_task_file_is_known_as_one_before_tensorflow_loads():
  from theseus.export import layout  # pylint: disable=g-import-not-at-top
  from theseus.tasks import registry  # pylint: disable=g-import-not-at-top
  for kind in registry.TASKS:
    assert registry.task_module(kind).SERVING.TASK_FILE.endswith(layout.TASK_FILE_SUFFIX), kind
