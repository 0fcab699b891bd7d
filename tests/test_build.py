"""The staged, resumable build (``abstractor_widgets.build``) on a generated arXiv snapshot.

The CI-sized run of the 2.7M path (``docs/scale.md``): 50,000 records of every category,
built once without interruption; built again with the process killed (SIGKILL) in the
middle of the inference stage and resumed; the two artifacts must be identical file by
file. Then the resumed model is queried (the sublinear candidate stage against the exact
ranking) and updated with papers that came later.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from abstractor_widgets import Abstractor
from abstractor_widgets.build import STAGES, BuildError, BuildSettings, StagedBuild, default_work_dir
from abstractor_widgets.store import read_manifest
from benchmarks import make_snapshot

ROOT = Path(__file__).resolve().parent.parent
N_BUILD = 50_000
N_UPDATE = 1_000
#: Small samples: the stages' logic at CI cost (the 2.7M build uses the defaults).
SETTINGS = BuildSettings(lda_sample=20_000, phrase_sample=10_000, lsa_sample=10_000, map_sample=3_000, jobs=2)
#: Manifest keys that legitimately differ between two builds of the same data.
VOLATILE = ("created", "corpus")


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory) -> Path:
    """N_BUILD + N_UPDATE records in the snapshot's format; the build reads the first N_BUILD."""
    path = tmp_path_factory.mktemp("snapshot") / "arxiv-metadata-oai-snapshot.json"
    make_snapshot.write_snapshot(path, N_BUILD + N_UPDATE, seed=3, pool=make_snapshot.load_pool(limit=20_000))
    return path


@pytest.fixture(scope="module")
def settings() -> BuildSettings:
    return BuildSettings(**{**SETTINGS.__dict__, "limit": N_BUILD})


@pytest.fixture(scope="module")
def reference(tmp_path_factory, snapshot, settings) -> Path:
    """An uninterrupted build."""
    out = tmp_path_factory.mktemp("reference") / "model"
    StagedBuild(snapshot, out, settings, progress=False).run()
    return out


@pytest.fixture(scope="module")
def resumed(tmp_path_factory, snapshot, settings) -> dict:
    """A build killed during inference (after its first shard), then resumed in this process."""
    out = tmp_path_factory.mktemp("resumed") / "model"
    work = default_work_dir(out)
    code = (
        "import json, abstractor_widgets.build as b; b.SHARD_ROWS = 5000; "
        f"s = b.BuildSettings(**json.loads({json.dumps(json.dumps(settings.__dict__))})); "
        f"b.StagedBuild({str(snapshot)!r}, {str(out)!r}, s, progress=False).run()"
    )
    process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    killed_in = None
    while time.monotonic() < deadline and process.poll() is None:
        if list(work.glob("topics.rows-*.npy")):
            process.send_signal(signal.SIGKILL)
            killed_in = "inference"
            break
        time.sleep(0.05)
    process.wait(timeout=60)
    assert killed_in == "inference", process.stderr.read().decode()[-2000:]
    finished = StagedBuild(snapshot, out, settings, progress=False).finished_stages()
    shards = sorted(p.name for p in work.glob("topics.rows-*.npy"))
    artifact_after_kill = out.exists()
    build = StagedBuild(snapshot, out, settings, progress=False)
    build.run()  # with the default shard size: the killed run's smaller shards are reused as they are
    return {"out": out, "finished": finished, "shards": shards, "artifact_after_kill": artifact_after_kill,
            "timings": build.timings, "work": work}


def _timeless(entry):
    """A manifest entry without its timings (the map records how long its layout took)."""
    return {k: v for k, v in entry.items() if k != "fit_seconds"} if isinstance(entry, dict) else entry


# -- interrupt and resume -----------------------------------------------------------------
def test_a_killed_build_leaves_no_artifact_and_resumes_from_its_last_finished_stage(resumed):
    assert not resumed["artifact_after_kill"]
    assert resumed["finished"] == list(STAGES[: STAGES.index("inference")])
    assert resumed["shards"], "the killed run had finished at least one inference shard"
    # the resumed run did only what was left
    assert set(resumed["timings"]) == set(STAGES[STAGES.index("inference"):])
    assert not resumed["work"].exists(), "the work directory is removed once the artifact is in place"


def test_the_resumed_artifact_equals_an_uninterrupted_build(reference, resumed):
    a, b = read_manifest(reference), read_manifest(resumed["out"])
    assert a["files"].keys() == b["files"].keys()
    differing = [name for name in a["files"] if a["files"][name]["sha256"] != b["files"][name]["sha256"]]
    assert differing == []
    for key in set(a) | set(b):
        if key not in VOLATILE:
            assert _timeless(a.get(key)) == _timeless(b.get(key)), key
    assert a["corpus"]["sha256"] == b["corpus"]["sha256"] and a["corpus"]["size"] == N_BUILD


def test_the_build_keeps_every_record_of_every_category(reference, snapshot):
    model = Abstractor.load(reference)
    assert len(model) == N_BUILD
    with open(snapshot, encoding="utf-8") as handle:
        first = [json.loads(next(handle)) for _ in range(3)]
    for record in first:
        doc = model.document(record["id"])
        assert doc.title == " ".join(record["title"].split())
        assert doc.categories == record["categories"]
    archives = {model.documents.field("categories", row).split()[0].split(".")[0] for row in range(0, N_BUILD, 50)}
    assert len(archives) > 10, archives
    assert model.lexical is not None and model.corpus_map is not None and len(model.corpus_map) == N_BUILD


# -- query ----------------------------------------------------------------------------------
def test_the_built_model_answers_queries(reference):
    model = Abstractor.load(reference)
    # its queries are inferred by the E-step that inferred its documents (the compiled one)
    assert type(model.model.lda_).__name__ == "CompiledLdaModel"
    for row in (0, 1234, N_BUILD - 1):
        doc = model.documents[row]
        hits = model.similar(doc.text, n=5)
        assert hits[0]["id"] == doc.id
        # a paper's own text infers its stored mixture again
        assert np.abs(model.model.analyze(doc.text)[0] - model.model.doc_topics_[row]).max() < 1e-3
        spans = model.colorize(doc.text)
        assert any(span["topic"] is not None for span in spans)


def test_the_candidate_stage_recalls_the_exact_hybrid_ranking(reference):
    """Top-10 of the default (sublinear) ranking against the exhaustive candidates' ranking."""
    model = Abstractor.load(reference)
    lexical = model.lexical
    exact_lexical = replace_lexical(lexical, max_query_terms=None, posting_depth=None)
    rng = np.random.default_rng(0)
    recalls = []
    for row in rng.choice(N_BUILD, 60, replace=False):
        text = model.documents[int(row)].text
        fast = [hit["id"] for hit in model.similar(text, n=10)]
        model.ranker.lexical = exact_lexical
        try:
            exact = [hit["id"] for hit in model.similar(text, n=10)]
        finally:
            model.ranker.lexical = lexical
        recalls.append(len(set(fast) & set(exact)) / len(exact))
    assert np.mean(recalls) >= 0.95, np.mean(recalls)


def replace_lexical(lexical, **params):
    """A shallow copy of a loaded lexical index with other query parameters (same arrays)."""
    import copy

    clone = copy.copy(lexical)
    for name, value in params.items():
        setattr(clone, name, value)
    return clone


# -- update ---------------------------------------------------------------------------------
def test_update_adds_the_later_papers(tmp_path, resumed, snapshot):
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(resumed["out"], copy)
    with open(snapshot, encoding="utf-8") as handle:
        lines = handle.readlines()[N_BUILD:]
    later = tmp_path / "later.jsonl"
    later.write_text("".join(lines), encoding="utf-8")
    model = Abstractor.load(copy)
    added = model.update(later)
    assert added == N_UPDATE
    reloaded = Abstractor.load(copy)
    assert len(reloaded) == N_BUILD + N_UPDATE
    record = json.loads(lines[-1])
    doc = reloaded.document(record["id"])
    assert reloaded.similar(doc.text, n=3)[0]["id"] == doc.id
    assert len(reloaded.corpus_map) == N_BUILD + N_UPDATE


# -- small builds: settings, checkpoints, bad input -------------------------------------------
@pytest.fixture(scope="module")
def small_snapshot(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("small") / "snapshot.json"
    make_snapshot.write_snapshot(path, 3000, seed=5, pool=make_snapshot.load_pool(limit=3000))
    return path


SMALL = BuildSettings(lda_sample=2000, phrase_sample=1000, lsa_sample=1000, map_sample=500, passes=2, jobs=2, layout=False)


def test_a_rerun_with_other_settings_is_refused(tmp_path, small_snapshot):
    out = tmp_path / "model"
    StagedBuild(small_snapshot, out, SMALL, progress=False, stop_after="tokens").run()
    other = BuildSettings(**{**SMALL.__dict__, "n_topics": 7})
    with pytest.raises(BuildError, match="n_topics"):
        StagedBuild(small_snapshot, out, other, progress=False)._open_state()
    # --restart discards the old work directory
    assert StagedBuild(small_snapshot, out, other, progress=False, restart=True).finished_stages() == []


def test_an_interrupted_lda_resumes_from_its_last_pass(tmp_path, small_snapshot, monkeypatch):
    """Ctrl-C after pass 1 of 2: the rerun starts at pass 2 and ends with the same topics."""
    whole = StagedBuild(small_snapshot, tmp_path / "whole", SMALL, progress=False)
    whole.run()
    saved = StagedBuild._save_checkpoint
    calls = []

    def interrupted(self, p, lda):
        saved(self, p, lda)
        calls.append(p)
        if p == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(StagedBuild, "_save_checkpoint", interrupted)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        StagedBuild(small_snapshot, out, SMALL, progress=False).run()
    assert StagedBuild(small_snapshot, out, SMALL, progress=False).finished_stages() == list(STAGES[:STAGES.index("lda")])
    StagedBuild(small_snapshot, out, SMALL, progress=False).run()
    assert calls == [1, 2]  # pass 1 was not trained again
    a, b = read_manifest(tmp_path / "whole"), read_manifest(out)
    for name in ("lda.sstats.npy", "lda.expElogbeta.npy", "doc_topics.npy", "lexical.data.npy"):
        assert a["files"][name]["sha256"] == b["files"][name]["sha256"], name


def test_ctrl_c_on_the_command_line_says_how_to_resume(tmp_path, small_snapshot):
    out = tmp_path / "model"
    arguments = ["train", "--corpus", str(small_snapshot), "--out", str(out), "--staged", "--topics", "5",
                 "--lda-sample", "2000", "--jobs", "1"]
    # Ctrl-C as in a terminal: a job started in the background of a script inherits SIGINT ignored
    code = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "from abstractor_widgets.cli import main; raise SystemExit(main(sys.argv[1:]))")
    command = [sys.executable, "-c", code, *arguments]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    work = default_work_dir(out)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if (work / "state.json").is_file() and "records" in json.loads((work / "state.json").read_text())["done"]:
            process.send_signal(signal.SIGINT)
            break
        time.sleep(0.05)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-2000:]
    assert "Rerun the same command to resume" in stderr and "records" in stderr
    assert not out.exists()
    result = subprocess.run(command + ["--no-coherence"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resuming the build" in result.stderr and "staged build" in result.stdout
    assert read_manifest(out)["n_documents"] == 3000


def test_an_empty_or_missing_corpus_is_a_clear_error(tmp_path):
    from abstractor_widgets.corpus import CorpusError

    with pytest.raises(CorpusError, match="no such file"):
        StagedBuild(tmp_path / "missing.json", tmp_path / "out", SMALL)
    empty = tmp_path / "empty.json"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="usable document"):
        StagedBuild(empty, tmp_path / "out", SMALL, progress=False).run()
    assert not (tmp_path / "out").exists()


def test_hostile_and_broken_records_are_kept_as_text_or_skipped(tmp_path):
    lines = [make_snapshot.record_line({"id": f"2101.{i:05d}", "title": f"<script>alert({i})</script> title",
                                        "abstract": f"  Neural <b>networks</b> $\\alpha_{i}$ learn representations {i}\n",
                                        "categories": "cs.LG"}) for i in range(40)]
    lines.insert(5, "{not json")
    lines.append(make_snapshot.record_line({"id": "2101.00000", "title": "duplicate", "abstract": "again", "categories": "cs.LG"}))
    path = tmp_path / "hostile.json"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    settings = BuildSettings(n_topics=2, lda_sample=100, phrase_sample=100, lsa_sample=100, no_below=1, no_above=1.0, jobs=1,
                             layout=False)
    with pytest.warns(Warning):
        StagedBuild(path, tmp_path / "out", settings, progress=False).run()
    model = Abstractor.load(tmp_path / "out")
    assert len(model) == 40
    assert model.documents[0].title.startswith("<script>")  # kept as text; the front ends never render it as HTML
    manifest = read_manifest(tmp_path / "out")
    assert manifest["corpus"]["build"]["dropped"]["duplicate_ids"] == 1
