#!/usr/bin/env bash
# The main job on the embedded default: convert all-MiniLM-L6-v2, fine-tune it on SST-2,
# compress 6 -> 3 layers (stage 1 + stage 2), export, and print the comparison table.
#   GLUE_DIR (default ../shared/data/glue), OUTPUT_DIR (default output/sst2_demo);
#   extra arguments go to scripts/demo_sst2.py (e.g. --train_examples=67349 for all of SST-2).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec ${PYTHON:-python3} scripts/demo_sst2.py "$@"
