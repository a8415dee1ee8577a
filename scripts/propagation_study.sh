#!/usr/bin/env bash
# The propagation study on CIFAR-10 (perturbation-propagation.txt; writes docs/reproductions/propagation-cifar10):
# the paper's five architectures and Table 7's two modified DenseNet-201s analysed on the paper's five
# adversarial sets (Table 2), crafted on resnet20 (the paper's ResNet-18) and stopped on inception-resnet-v2
# (its Inception-ResNet V2), without and with the U-Net and FusionNet denoisers trained on the paper's mix.
#   bash scripts/propagation_study.sh <data-root> [out-folder]
# The preset propagation-cifar10 is the study; the zoo ships the classifiers and the denoisers; RETRAIN=1 trains the
# three CPU classifiers and the U-Net again first (about 45 min on two CPU cores; the GPU-trained DenseNet-201s,
# SENet-154 and FusionNet have their commands in scripts/train_zoo.py and configs/propagation-fusionnet-cifar10.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${1:?usage: propagation_study.sh <data-root> [out]}"
OUT="${2:-runs/reproduce/propagation-cifar10-full}"  # the run (with its adversarial-set store); then the report
# is collected into the committed folder, without the store
PY="${PYTHON:-python3}"
if [ "${RETRAIN:-0}" = 1 ]; then
  "$PY" scripts/train_zoo.py --data-root "$DATA" --only vgg19,resnet-v2-50,inception-resnet-v2
  "$PY" -m advshield train-defense --config configs/propagation-unet-cifar10.yaml --data-root "$DATA" \
    --out runs/propagation-study/defenses/unet
  "$PY" scripts/ship_restorers.py runs/propagation-study
fi
"$PY" -m advshield reproduce propagation-cifar10 --full --data-root "$DATA" --out "$OUT"
if [ -z "${2:-}" ]; then
  rm -rf docs/reproductions/propagation-cifar10
  "$PY" scripts/collect_reproduction.py "$OUT" docs/reproductions/propagation-cifar10
fi
