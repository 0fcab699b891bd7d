"""The benchmark suite's quick mode runs end to end and writes well-formed JSON.

Only the structure is checked, never the timings (CI machines vary). The quick mode trains
two tiny models on the shared corpus, so the test is skipped when the corpus is absent.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: The quick mode takes about a minute on an idle 2-core machine; shared CI runners and
#: busy machines can be much slower, hence the generous limit.
TIMEOUT = int(os.environ.get("ABSTRACTOR_BENCH_TIMEOUT", "1800"))


def _percentiles_ok(p: dict) -> None:
    assert p["n"] > 0
    for key in ("p50", "p95", "p99", "mean", "min"):
        assert isinstance(p[key], float) and math.isfinite(p[key]) and p[key] >= 0
    assert p["min"] <= p["p50"] <= p["p95"] <= p["p99"]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, shared_corpus_path):
    tmp = tmp_path_factory.mktemp("bench")
    out = tmp / "quick.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ABSTRACTOR_CORPUS": str(shared_corpus_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", "query,similarity,training,service",
         "--cache", str(tmp / "cache"), "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out, proc


def test_quick_mode_writes_well_formed_json(quick_run):
    out, proc = quick_run
    payload = json.loads(out.read_text(encoding="utf-8"))
    assert payload["schema"] == 1 and payload["quick"] is True
    assert payload["machine"]["cpus"] >= 1 and "python" in payload["machine"]
    assert set(payload["sections"]) == {"query", "similarity", "training", "service"}
    for section in payload["sections"].values():
        assert section["meta"]["seconds"] >= 0 and "load_average_before" in section["meta"]

    query = payload["sections"]["query"]
    assert len(query["rows"]) == 2
    for row in query["rows"]:
        _percentiles_ok(row["ours"])
        _percentiles_ok(row["reference"])
        assert row["speedup_p50"] > 0
        assert 0.0 <= row["identical_word_topics"] <= 1.0 and row["words_compared"] > 0
        assert 0.0 <= row["top5_overlap_cosine"] <= 1.0

    similarity = payload["sections"]["similarity"]
    datasets = {r["dataset"] for r in similarity["rows"]}
    assert datasets == {"dirichlet-k20", "dirichlet-k50", "real", "real-derived"}
    for row in similarity["rows"]:
        for method in ("numpy", "blocked", "gensim"):
            _percentiles_ok(row[method])
        assert row["floor_ms"] > 0
        assert row["blocked_mismatches"] == 0  # the blocked scan is exact
        assert row["blocked_recall"] == 1.0
        for sweep in row.get("hnswlib_sweep", []):
            assert 0.0 <= sweep["recall"] <= 1.0
    assert any("hnswlib_sweep" in r for r in similarity["rows"])
    assert {r["backend"] for r in similarity["end_to_end"]} == {"exact", "hnsw"}
    assert similarity["block_sweep"]

    training = payload["sections"]["training"]
    libraries = {r["library"] for r in training["rows"]}
    assert libraries == {"gensim", "tomotopy", "sklearn"}
    for row in training["rows"]:
        assert row["seconds"] > 0 and math.isfinite(row["c_v"]) and math.isfinite(row["u_mass"])
    assert [r["n_jobs"] for r in training["preprocessing"]] == [1, 2]
    assert training["builds"] and training["builds"][0]["seconds"] > 0

    service = payload["sections"]["service"]  # `abstractor serve`, 2 workers, under load
    main = service["two_workers"]["load"]
    assert main["errors"] == 0 and main["completed"] == service["sizes"]["requests"] and main["requests_per_s"] > 0
    _percentiles_ok(main["latency_ms"])
    assert len(service["two_workers"]["memory_idle"]["worker"]) == 2
    derived = service["derived"]
    assert all(p > 0 for p in derived["worker_pss_mib"]) and derived["voila_visitors_per_gib"] > 0
    assert set(derived["goals"]) == {"zero_errors", "at_least_400_requests_per_s", "at_least_50x_voila_visitors_per_gib"}


def test_quick_mode_prints_tables_and_writes_markdown(quick_run):
    out, proc = quick_run
    assert "Query latency" in proc.stdout and "Exact top-10" in proc.stdout and "Training" in proc.stdout
    assert "Service (abstractor serve" in proc.stdout
    markdown = out.with_suffix(".md").read_text(encoding="utf-8")
    assert markdown.count("|---") >= 5


def test_unknown_section_is_an_error():
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--only", "nope"], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "unknown section" in proc.stderr
