"""google-research/bert's own unit tests, run against this project.

Its tokenization_test.py, modeling_test.py and optimization_test.py (../shared/peer_tests, the
`tensorflow.compat.v1` + `tf.disable_v2_behavior()` import being their only change) are copied
to a temporary directory beside alias modules `modeling` -> modeling_theseus and
`optimization` -> optimization_theseus, and run there by pytest in a subprocess of their own (they
switch the process to classic TF1 mode), with oneDNN on and off.
"""

import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

PEER_DIR = os.path.join(REPO_ROOT, os.pardir, "shared", "peer_tests", "google-research-bert")
PEER_FILES = ("tokenization_test.py", "modeling_test.py", "optimization_test.py")

# An alias module: importing it gives the project's module itself.
ALIAS = "import importlib\nimport sys\n\nsys.modules[__name__] = importlib.import_module(%r)\n"


@pytest.fixture(scope="module")
def peer_dir(tmp_path_factory):
  if not all(os.path.isfile(os.path.join(PEER_DIR, name)) for name in PEER_FILES):
    pytest.fail("google-research/bert's tests not found in %s" % os.path.abspath(PEER_DIR))
  work = str(tmp_path_factory.mktemp("google_bert_tests"))
  for name in PEER_FILES:
    shutil.copy(os.path.join(PEER_DIR, name), work)
  for alias, target in (("modeling", "modeling_theseus"), ("optimization", "optimization_theseus")):
    with open(os.path.join(work, alias + ".py"), "w") as f:
      f.write(ALIAS % target)
  return work


@pytest.mark.parametrize("onednn", ["1", "0"])
def test_google_research_bert_tests_pass(peer_dir, onednn):
  env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=onednn, TF_CPP_MIN_LOG_LEVEL="2",
             PYTHONPATH=os.pathsep.join([peer_dir, REPO_ROOT]))
  proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                         "-rfEs"] + list(PEER_FILES), cwd=peer_dir, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
  # 12 tests of their own (3 more that tf.test.TestCase itself defines are skipped by it).
  assert "12 passed" in proc.stdout and "failed" not in proc.stdout, proc.stdout[-2000:]
