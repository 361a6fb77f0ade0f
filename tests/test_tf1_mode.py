"""Classic TF1 mode (`tf.disable_v2_behavior()`, as google-research/bert code runs), oneDNN off.

Each check runs in a subprocess of its own, because the mode is process-wide:

* the core tests of test_modeling.py / test_optimization.py (p = 0 / p = 1 equivalence, only
  the drawn branch runs, gradients through the predecessor modules, what stage 1 updates) with
  THESEUS_TF1_MODE=1, which makes those modules switch the mode;
* google_reference_checks.py: google-research/bert's modeling.py against the project, on
  exports written here.
"""

import json
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

from conftest import REPO_ROOT, assign_variables

tf1 = tf.compat.v1

CORE_TESTS = ("test_runs_in_the_tensorflow_mode_asked_for or p0_and_successor_at_p1 or "
              "only_the_drawn_branch_runs or learns_through_the_predecessor or "
              "stage1_updates_only_successor or stage2_updates_everything")


def _pytest(args, env_changes, timeout=420):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **env_changes)
  proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE"]
                        + args, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                        timeout=timeout)
  assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
  return proc.stdout


def test_core_tests_pass_in_classic_tf1_mode_with_onednn_off():
  # The rest of the suite runs them in TF2 graph mode with oneDNN on: one run covers the other
  # mode and the other kernels.
  out = _pytest(["tests/test_modeling.py", "tests/test_optimization.py", "-k", CORE_TESTS],
                {"THESEUS_TF1_MODE": "1", "TF_ENABLE_ONEDNN_OPTS": "0"})
  assert "6 passed" in out, out[-2000:]


def _tiny_export(tmp_path, name, config_values):
  """An export of a 4 -> 2 Theseus checkpoint (random weights, MRPC head) under tmp_path/name."""
  from theseus.tasks.classifier import datasets as classifier_datasets  # pylint: disable=g-import-not-at-top
  from theseus.tasks.classifier import head as classifier_head  # pylint: disable=g-import-not-at-top
  from theseus.export import writer  # pylint: disable=g-import-not-at-top
  from theseus.stage import Stage  # pylint: disable=g-import-not-at-top
  import modeling_theseus as modeling  # pylint: disable=g-import-not-at-top
  work = tmp_path / name
  work.mkdir()
  vocab = work / "vocab.txt"
  vocab.write_text("".join("tok%d\n" % i for i in range(config_values["vocab_size"])))
  config_file = work / "bert_config.json"
  config_file.write_text(json.dumps(config_values))
  config = modeling.BertConfig.from_json_file(str(config_file))
  task = classifier_head.make_task(classifier_datasets.get_processor("mrpc"), [])
  with tf.Graph().as_default():
    tf1.set_random_seed(4)
    ids = tf.zeros([1, 4], tf.int32)
    model = modeling.BertModel(config, True, ids, ids, ids, suc_layers=2, replace_rate_prob=0.5)
    task.build_head(model, {"input_ids": ids}, False)
    with tf1.Session() as sess:
      sess.run(tf1.global_variables_initializer())
      assign_variables(sess, {  # weights far enough from zero to matter
          var: np.random.RandomState(0).normal(0, 0.3, var.shape.as_list())
          for var in tf1.trainable_variables()})
      checkpoint = tf1.train.Saver().save(sess, str(work / "theseus" / "model.ckpt"))
  export_dir = str(work / "export")
  writer.export_model(config, task, "classifier", Stage.of(2), "first", str(vocab), checkpoint,
                      export_dir)
  return export_dir


def test_google_modeling_reads_the_project_and_the_project_reads_google(tmp_path):
  base = {"vocab_size": 50, "hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 4,
          "intermediate_size": 48, "hidden_act": "gelu", "hidden_dropout_prob": 0.0,
          "attention_probs_dropout_prob": 0.0, "max_position_embeddings": 40,
          "type_vocab_size": 2, "initializer_range": 0.02}
  exports = [_tiny_export(tmp_path, "tanh", base),
             _tiny_export(tmp_path, "exact", dict(base, gelu_approximate="none",
                                                  directionality="bidi"))]
  with open(os.path.join(exports[1], "bert_config.json")) as f:
    written = json.load(f)
  assert written["gelu_approximate"] == "none" and written["directionality"] == "bidi"
  assert written["num_hidden_layers"] == 2
  out = _pytest(["tests/google_reference_checks.py"],
                {"THESEUS_EXPORT_DIRS": os.pathsep.join(exports), "TF_ENABLE_ONEDNN_OPTS": "1"})
  assert "3 passed" in out, out[-2000:]
