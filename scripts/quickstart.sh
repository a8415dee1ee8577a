#!/usr/bin/env bash
# Install advshield, then run the main job: train A-net (CRU-Net Table 1) on MNIST and print its
# clean test accuracy. Without ADVSHIELD_DATA (or --data-root) it uses the embedded MNIST sample.
# Extra arguments go to `advshield train-target`, e.g. --data-root <folder> --epochs 8.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/advshield train-target --dataset mnist --model a-net --epochs 3 --out runs/quickstart-a-net "$@"
