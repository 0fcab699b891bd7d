"""The pickle-free artifact format against the old pickled one, side by side, and the memory bound.

``python -m benchmarks.artifact_safety [--artifact artifacts/default] [--rounds 5] [--requests 10000]``

1. **Load**: a copy of the artifact is written in the old format (version 1: pickled
   preprocessor, gensim ``SaveLoad`` dictionary and LDA model, the same arrays), then each
   format is loaded in a fresh process, alternately, ``--rounds`` times: the time of the
   load itself (imports excluded; the page cache is warm after the first round, as on a
   server), with every file hashed (``verify=True``, the default) and without.
2. **Query**: ``analyze(text, n=5)`` p50 / p95 over held-out abstracts, both formats loaded
   in one process and queried in alternation (one BLAS thread).
3. **Memory**: ``--requests`` requests of 150 unique random words each into one loaded
   model (what a hostile visitor can send): RSS before and after, and the tokenizer
   cache's bytes.

Writes ``benchmarks/results/artifact_safety.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import RESULTS, load_average, log, machine_info, percentiles, write_json

ROOT = Path(__file__).resolve().parent.parent


def write_pickled_artifact(ab: Any, out: Path) -> Path:
    """Write ``ab`` the way format 1 did (pickles); for benchmarks and conversion tests only."""
    from abstractor_widgets.store import MANIFEST, DocumentTable, sha256_file

    out.mkdir(parents=True)
    with open(out / "preprocessor.pkl", "wb") as handle:
        pickle.dump(ab.model.preprocessor_, handle, protocol=pickle.HIGHEST_PROTOCOL)
    ab.model.dictionary_.save(str(out / "dictionary.gensim"))
    ab.model.lda_.save(str(out / "lda.gensim"), separately=["expElogbeta", "sstats"], sep_limit=0)
    np.save(out / "doc_topics.npy", np.ascontiguousarray(ab.model.doc_topics_, dtype=np.float32))
    np.save(out / "vectors.npy", ab.index.storage())
    DocumentTable.write([ab.documents[i] for i in range(len(ab.documents))], out)
    if ab.lexical is not None:
        ab.lexical.save(out)
    manifest = {k: v for k, v in ab.manifest.items() if k not in ("model", "documents", "lexical", "files")}
    manifest.update(format_version=1, index={"backend": "auto", "block_rows": ab.index.block_rows},
                    lexical=None if ab.lexical is None else ab.lexical.get_params(),
                    files={p.name: {"bytes": p.stat().st_size, "sha256": sha256_file(p)} for p in sorted(out.iterdir())})
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return out


def load_pickled(path: Path, verify: bool = True) -> Any:
    """Load a format-1 artifact the way the old ``store.load_artifacts`` did (runs its pickles)."""
    from gensim.corpora import Dictionary
    from gensim.models import LdaModel

    from abstractor_widgets import Abstractor
    from abstractor_widgets.fileio import ListedFiles, sha256_file
    from abstractor_widgets.index import SimilarityIndex
    from abstractor_widgets.lexical import LexicalIndex
    from abstractor_widgets.model import TopicModel
    from abstractor_widgets.store import DocumentTable

    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    for name, info in manifest["files"].items():
        if (path / name).stat().st_size != info["bytes"] or (verify and sha256_file(path / name) != info["sha256"]):
            raise RuntimeError(f"{name} modified")
    files = ListedFiles(path, manifest["files"])
    with open(path / "preprocessor.pkl", "rb") as handle:
        preprocessor = pickle.load(handle)
    dictionary = Dictionary.load(str(path / "dictionary.gensim"))
    lda = LdaModel.load(str(path / "lda.gensim"), mmap="r")
    params = {k: v for k, v in manifest["params"].items() if k != "preprocessor"}
    model = TopicModel(**params)._restore(preprocessor, dictionary, lda, manifest["labels"], files.array("doc_topics.npy"))
    index = SimilarityIndex.from_vectors(files.array("vectors.npy"), manifest["metric"]).load_extra(files, manifest["index"])
    lexical = LexicalIndex.load(files) if "lexical.json" in files else None
    ab = Abstractor(model, index, DocumentTable.open(files), manifest=manifest, lexical=lexical)
    ab.analyze("Warming up: neural networks learn representations of images and text.", n=1)
    return ab


_CHILD = """
import json, sys, time
from pathlib import Path
fmt, path, verify = sys.argv[1], Path(sys.argv[2]), sys.argv[3] == "1"
from abstractor_widgets import Abstractor
from benchmarks.artifact_safety import load_pickled
import gensim.models, gensim.corpora  # imports are not part of the load
start = time.perf_counter()
ab = load_pickled(path, verify) if fmt == "old" else Abstractor.load(path, verify=verify)
print(json.dumps({"seconds": time.perf_counter() - start, "documents": len(ab)}))
"""


def _load_once(fmt: str, path: Path, verify: bool) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", _CHILD, fmt, str(path), "1" if verify else "0"], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True, timeout=600)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])


def _random_requests(ab: Any, count: int, seed: int = 0) -> dict[str, float]:
    import psutil

    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyzéüß"))

    def request() -> None:
        words = ["".join(rng.choice(letters, size=rng.integers(5, 30))) for _ in range(150)]
        ab.analyze(" ".join(words), n=5)

    for _ in range(100):
        request()
    process = psutil.Process()
    before = process.memory_info().rss
    started = time.perf_counter()
    for _ in range(count):
        request()
    return {"requests": count, "words_per_request": 150, "rss_before_mib": before / 2**20,
            "rss_growth_mib": (process.memory_info().rss - before) / 2**20,
            "tokenizer_cache_mib": ab.model.preprocessor_.tokenizer.cache_bytes / 2**20,
            "seconds": time.perf_counter() - started}


def run(artifact: Path, rounds: int = 5, requests: int = 10_000, queries: int = 400) -> dict[str, Any]:
    """Measure both formats side by side; see the module docstring."""
    import pandas as pd
    from threadpoolctl import threadpool_limits

    from abstractor_widgets import Abstractor
    from abstractor_widgets.corpus import default_corpus_path

    started = time.time()
    new = Abstractor.load(artifact)
    tmp = Path(tempfile.mkdtemp(prefix="abstractor-v1-"))
    try:
        old_path = write_pickled_artifact(new, tmp / "v1")
        loads: dict[str, list[float]] = {f"{fmt}_{v}": [] for fmt in ("old", "new") for v in ("verify", "sizes")}
        for r in range(rounds):
            for fmt, path in (("old", old_path), ("new", artifact)) if r % 2 == 0 else (("new", artifact), ("old", old_path)):
                for verify in (True, False):
                    loads[f"{fmt}_{'verify' if verify else 'sizes'}"].append(_load_once(fmt, path, verify))
            log(f"load round {r + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in loads.items()))
        old = load_pickled(old_path)
        frame = pd.read_parquet(default_corpus_path())
        held = frame.sample(queries, random_state=7)["abstract"].tolist()
        times: dict[str, list[float]] = {"old": [], "new": []}
        with threadpool_limits(1):
            for text in held[:20]:
                old.analyze(text, n=5), new.analyze(text, n=5)
            for i, text in enumerate(held):
                for fmt in (("old", "new") if i % 2 == 0 else ("new", "old")):
                    ab = old if fmt == "old" else new
                    t0 = time.perf_counter()
                    ab.analyze(text, n=5)
                    times[fmt].append((time.perf_counter() - t0) * 1000)
        del old
        memory = _random_requests(new, requests)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "artifact": str(artifact), "documents": len(new), "rounds": rounds,
        "load_seconds": {k: {"median": float(np.median(v)), "all": v} for k, v in loads.items()},
        "analyze_ms": {k: percentiles(v) for k, v in times.items()},
        "memory": memory, "machine": machine_info(), "load_average": load_average(),
        "elapsed_s": time.time() - started,
    }


def table(result: dict[str, Any]) -> str:
    """The Markdown table of a :func:`run` result."""
    ls, q = result["load_seconds"], result["analyze_ms"]
    m = result["memory"]
    return "\n".join([
        f"Artifact: {result['artifact']} ({result['documents']:,} documents); {result['rounds']} rounds, fresh process each.",
        "",
        "| format | load, every file hashed | load, sizes only | analyze p50 | analyze p95 |",
        "|---|---|---|---|---|",
        f"| old (pickles, format 1) | {ls['old_verify']['median']:.2f} s | {ls['old_sizes']['median']:.2f} s | "
        f"{q['old']['p50']:.2f} ms | {q['old']['p95']:.2f} ms |",
        f"| new (JSON + .npy, format 2) | {ls['new_verify']['median']:.2f} s | {ls['new_sizes']['median']:.2f} s | "
        f"{q['new']['p50']:.2f} ms | {q['new']['p95']:.2f} ms |",
        "",
        f"Memory: {m['requests']:,} requests of {m['words_per_request']} unique random words: RSS "
        f"{m['rss_before_mib']:.0f} MiB → +{m['rss_growth_mib']:.1f} MiB; tokenizer cache {m['tokenizer_cache_mib']:.1f} MiB.",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifact", type=Path, default=ROOT / "artifacts" / "default")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=RESULTS / "artifact_safety.json")
    args = parser.parse_args(argv)
    result = run(args.artifact, rounds=args.rounds, requests=args.requests)
    write_json(args.out, result)
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
