#!/usr/bin/env bash
# The main job: the Voilà dashboard on the default corpus, at http://127.0.0.1:${PORT:-8866}/
# Trains artifacts/default once (a few minutes, with progress) if it is missing, with the
# static embeddings distilled once into artifacts/static-minilm (scripts/distill_static.sh;
# ABSTRACTOR_NO_STATIC=1 skips them).
# Extra arguments go to `abstractor dashboard` (--max-kernels N, --edit-labels, --host,
# --voila ARGS... for Voilà itself, e.g. --voila --theme=dark).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ARTIFACT="$(realpath -m "${ABSTRACTOR_ARTIFACT:-artifacts/default}")"
if [ -f "$ARTIFACT/manifest.json" ] && ! .venv/bin/abstractor info "$ARTIFACT" >/dev/null 2>&1; then
  # e.g. a model of the old pickled format: never loaded; kept aside, and a new one is trained
  aside="$ARTIFACT.unreadable-$(date +%Y%m%d-%H%M%S)"
  echo "$ARTIFACT cannot be read by this version ($(.venv/bin/abstractor info "$ARTIFACT" 2>&1 | head -c 300 || true));"
  echo "moving it to $aside and training a new default model"
  mv "$ARTIFACT" "$aside"
fi
STATIC="${ABSTRACTOR_STATIC_MODEL:-artifacts/static-minilm}"
if [ "${ABSTRACTOR_NO_STATIC:-0}" != 1 ] && ! grep -q '"embedding"' "$ARTIFACT/manifest.json" 2>/dev/null; then
  # the hybrid's fourth signal: a static embedding model distilled once (PyTorch in its own venv)
  bash scripts/distill_static.sh "$STATIC" \
    || echo "warning: the static embedding model could not be built (see above); the dashboard ranks by three signals" >&2
fi
use_static=0
if [ "${ABSTRACTOR_NO_STATIC:-0}" != 1 ] && [ -f "$STATIC/model.safetensors" ]; then use_static=1; fi
if [ ! -f "$ARTIFACT/manifest.json" ]; then
  echo "training the default model into $ARTIFACT (once) ..."
  if [ "$use_static" = 1 ]; then
    .venv/bin/abstractor train --topics 20 --out "$ARTIFACT" --static-model "$STATIC"
  else
    .venv/bin/abstractor train --topics 20 --out "$ARTIFACT"
  fi
elif [ "$use_static" = 1 ] && ! grep -q '"embedding"' "$ARTIFACT/manifest.json"; then
  echo "adding static embeddings to $ARTIFACT (once) ..."
  .venv/bin/abstractor embed "$ARTIFACT" --static-model "$STATIC"
fi
# the packaged dashboard (abstractor_widgets/voila: notebook, Voilà config and template):
# the artifact's checksums are verified once here, its kernels load it with the digest pinned
exec .venv/bin/abstractor dashboard "$ARTIFACT" --port "${PORT:-8866}" "$@"
