#!/usr/bin/env bash
# The propagation study on CIFAR-10 (perturbation-propagation.txt; docs/reproductions/propagation-cifar10):
# three of the paper's architectures analysed on the paper's five adversarial sets (Table 2), crafted on
# resnet20 (the paper's ResNet-18) and stopped on inception-resnet-v2 (its Inception-ResNet V2), without
# and with a U-Net denoiser trained on the paper's mix.
#   bash scripts/propagation_study.sh <data-root> [out-folder]
# The zoo ships the classifiers and the denoiser; RETRAIN=1 trains them again first (about 45 min on two
# CPU cores: classifiers, then the denoiser's pairs and training).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${1:?usage: propagation_study.sh <data-root> [out]}"
OUT="${2:-docs/reproductions/propagation-cifar10}"
PY="${PYTHON:-python3}"
MODELS="vgg19 resnet-v2-50 inception-resnet-v2"
if [ "${RETRAIN:-0}" = 1 ]; then
  "$PY" scripts/train_zoo.py --data-root "$DATA" --only vgg19,resnet-v2-50,inception-resnet-v2
  "$PY" -m advshield train-defense --config configs/propagation-unet-cifar10.yaml --data-root "$DATA" \
    --out runs/propagation-study/defenses/unet
  "$PY" scripts/ship_restorers.py runs/propagation-study
fi
for m in $MODELS; do
  "$PY" -m advshield analyze propagation --model "$m" --dataset cifar10 --attacks paper --substitute resnet20 \
    --reference inception-resnet-v2 --denoiser unet-for-inception-resnet-v2 --n 1000 --data-root "$DATA" \
    --out "$OUT/$m"
done
"$PY" -m advshield analyze propagation-report $(for m in $MODELS; do echo "$OUT/$m"; done) --out "$OUT" \
  --title "Perturbation propagation on CIFAR-10" --notes docs/propagation-notes.md
