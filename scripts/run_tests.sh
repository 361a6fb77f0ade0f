#!/usr/bin/env bash
# Installs the project and its test-only references, then runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --test
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
exec ${PYTHON:-python3} -m pytest -q -rs tests "$@"
