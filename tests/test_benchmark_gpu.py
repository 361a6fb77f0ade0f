"""benchmarks/gpu.py, the check users with GPUs run, runs end to end here in its CPU mode."""

import json
import os
import subprocess
import sys

from conftest import REPO_ROOT


def test_the_gpu_check_runs_on_the_cpu_and_says_what_needs_a_gpu(tmp_path):
  output = str(tmp_path / "gpu.json")
  proc = subprocess.run([sys.executable, os.path.join("benchmarks", "gpu.py"), "--cpu_smoke",
                         "--output=" + output], cwd=REPO_ROOT, capture_output=True, text=True,
                        timeout=600)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  with open(output.replace(".json", "_smoke.json")) as f:
    results = json.load(f)
  for name in ("placement", "draws", "fp16", "tiny/stage1/fp32"):
    assert results[name]["status"] == "ok", (name, results[name])
  assert results["tiny/stage1/fp32"]["tokens_per_second"] > 0
  assert results["placement"]["devices"] == ["/cpu:0", "/cpu:1"]  # two replicas
  assert results["draws"]["device_xla_same_draws"]
  assert "These parts need a GPU" in proc.stdout
  assert os.listdir(str(tmp_path)) == ["gpu_smoke.json"]  # nothing else left behind
