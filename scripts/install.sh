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
