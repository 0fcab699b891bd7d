#!/usr/bin/env bash
# The main job: the Voilà dashboard on the default corpus, at http://127.0.0.1:${PORT:-8866}/
# Trains artifacts/default once (a few minutes, with progress) if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export ABSTRACTOR_ARTIFACT="${ABSTRACTOR_ARTIFACT:-$PWD/artifacts/default}"
if [ ! -f "$ABSTRACTOR_ARTIFACT/manifest.json" ]; then
  echo "training the default model into $ABSTRACTOR_ARTIFACT (once) ..."
  .venv/bin/abstractor train --topics 20 --out "$ABSTRACTOR_ARTIFACT"
fi
exec .venv/bin/voila notebooks/dashboard.ipynb \
  --no-browser --Voila.ip=127.0.0.1 --port="${PORT:-8866}" \
  --Voila.config_file_paths="$PWD/voila" "$@"
