#!/usr/bin/env bash
# Create .venv (if missing) and install advshield into it.
#   bash scripts/install.sh [extras]      e.g. bash scripts/install.sh test
# torch is installed first and pinned (TORCH_SPEC, default torch==2.13.0), so that
# the project's own "torch>=2.1" is already met and pip never swaps in another build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
"${PIP[@]}" install "${TORCH_SPEC:-torch==2.13.0}"
extras="${1:-}"
"${PIP[@]}" install -e ".${extras:+[$extras]}"
# torchattacks (the test suite's cross-checks of APGD, Square, FAB and AutoAttack) declares torchvision, which
# would replace the pinned torch: install it without its dependencies. It imports only torch, numpy and scipy.
case ",$extras," in
    *,test,*|*,bench,*) "${PIP[@]}" install scipy && "${PIP[@]}" install --no-deps "torchattacks>=3.5,<4" ;;
esac
