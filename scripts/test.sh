#!/usr/bin/env bash
# Install advshield with its test extras, then run the test suite (7-9 minutes on 2 cores, depending on the host).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh test,docs
exec .venv/bin/python -m pytest -q "$@"
