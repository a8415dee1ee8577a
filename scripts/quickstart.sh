#!/usr/bin/env bash
# Install advshield, then run the main job: reproduce the CRU-Net MNIST tables (fast variant, a few
# minutes on a laptop CPU): zoo targets A-net and B-net, six attacks, one CRU-Net per target, white-box,
# transfer and adaptive evaluation, and a markdown report in runs/reproduce/cru-net-mnist/report.md.
# Without ADVSHIELD_DATA (or --data-root) it uses the embedded MNIST sample. Extra arguments go to
# `advshield reproduce`, e.g. --data-root <folder> --full.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/advshield reproduce cru-net-mnist "$@"
