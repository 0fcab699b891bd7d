#!/usr/bin/env bash
# Create .venv and install the package with everything the notebooks and tests need.
# Idempotent: re-running only installs what changed. Builds the widget's JS bundle (npm).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.abstractor-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ js/package-lock.json -nt "$stamp" ] \
   || [ ! -f abstractor_widgets/static/widget.js ] \
   || [ -n "$(find js/src -newer abstractor_widgets/static/widget.js -print -quit)" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  # the build hook runs `npm install && npm run build` in js/ to make abstractor_widgets/static/
  .venv/bin/python -m pip install --quiet -e ".[dev]"
  touch "$stamp"
fi
