#!/usr/bin/env bash
# Installs the project and its test-only references, then runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --test
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
# Two worker processes (one per core of the CI machine), each test file on one of them: most of
# a test's time is single-threaded (TensorFlow's start-up, graph building), so two share the
# cores well. THESEUS_TEST_WORKERS=0 runs everything in this process.
WORKERS=${THESEUS_TEST_WORKERS:-2}
if [ "$WORKERS" = "0" ]; then
  exec ${PYTHON:-python3} -m pytest -q -rs --durations=10 tests "$@"
fi
exec ${PYTHON:-python3} -m pytest -q -rs --durations=10 -n "$WORKERS" --dist loadfile tests "$@"
