#!/usr/bin/env bash
# Produce the restorers the zoo ships: run the full CRU-Net reproductions (which train one restorer
# per target with the preset's full recipe) and copy each restorer into src/advshield/zoo/<dataset>/.
#   bash scripts/train_restorer_zoo.sh <data-root> [out-folder] [preset ...]
# A GPU is strongly recommended (the shipped ones were trained on one H100; see their cards).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${1:?usage: train_restorer_zoo.sh <data-root> [out] [preset ...]}"
OUTDIR="${2:-runs/restorer-zoo}"
shift $(( $# >= 2 ? 2 : 1 ))
PRESETS="${*:-cru-net-mnist cru-net-cifar10}"
PY="${PYTHON:-python3}"
for preset in $PRESETS; do
  "$PY" -m advshield reproduce "$preset" --full --retrain --data-root "$DATA" --out "$OUTDIR/$preset"
  "$PY" scripts/ship_restorers.py "$OUTDIR/$preset"
done
