#!/usr/bin/env bash
# The main job: the Voilà dashboard on the default corpus, at http://127.0.0.1:${PORT:-8866}/
# Trains artifacts/default once (a few minutes, with progress) if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# absolute: Voilà's kernels run in notebooks/ (a relative path is taken from the repository)
export ABSTRACTOR_ARTIFACT="$(realpath -m "${ABSTRACTOR_ARTIFACT:-artifacts/default}")"
if [ ! -f "$ABSTRACTOR_ARTIFACT/manifest.json" ]; then
  echo "training the default model into $ABSTRACTOR_ARTIFACT (once) ..."
  .venv/bin/abstractor train --topics 20 --out "$ABSTRACTOR_ARTIFACT"
fi
# voila/voila.json: kernel preheating (a pooled kernel has already run the notebook, with
# this environment), kernel culling. voila/share: the "abstractor" template (no CDN).
export JUPYTER_PATH="$PWD/voila/share${JUPYTER_PATH:+:$JUPYTER_PATH}"
exec .venv/bin/voila notebooks/dashboard.ipynb \
  --no-browser --Voila.ip=127.0.0.1 --port="${PORT:-8866}" \
  --Voila.config_file_paths="$PWD/voila" --template=abstractor "$@"
