#!/usr/bin/env bash
# Headless Chromium for tests/test_html_report.py (renders report.html, checks the DOM after its script ran,
# takes a screenshot). Idempotent: does nothing when a chromium binary is already on PATH.
set -euo pipefail
for b in chromium chromium-browser google-chrome; do
  if command -v "$b" >/dev/null 2>&1; then
    echo "install_browser: $b already present ($(command -v "$b"))"
    exit 0
  fi
done
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y chromium
command -v chromium
