#!/usr/bin/env bash
# The committed scorecards: every zoo defense of MNIST and CIFAR-10 on the first 1000 test images under the
# standard AutoAttack ensemble, written to docs/scorecard-<dataset>.md (and runs/scorecard/<dataset>/).
#   bash scripts/scorecard.sh <data-root> [mnist|cifar10|both] [extra advshield scorecard options]
# Rows are stored by hash under runs/scorecard/<dataset>/rows/: an interrupted or extended run measures only
# the rows it lacks. Scale out with NPROC=N (torchrun, one process per GPU or gloo on CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
root="${1:?usage: bash scripts/scorecard.sh <data-root> [mnist|cifar10|both] [options]}"
which="${2:-both}"
shift $(( $# >= 2 ? 2 : 1 ))
PY="${PYTHON:-.venv/bin/python}"
if [ "${NPROC:-1}" -gt 1 ]; then
  launch=("$PY" -m torch.distributed.run --standalone --nproc_per_node "$NPROC" -m advshield)
else
  launch=("$PY" -m advshield)
fi
for ds in mnist cifar10; do
  if [ "$which" = both ] || [ "$which" = "$ds" ]; then
    "${launch[@]}" scorecard --dataset "$ds" --images "${N:-1000}" --data-root "$root" \
      --out "runs/scorecard/$ds" --markdown "docs/scorecard-$ds.md" "$@"
  fi
done
