"""Artifacts from another machine are hostile: nothing in them runs, and writers never lose edits.

* A crafted pickle in every kind of artifact file (with a manifest that lists its correct
  size and sha256) never runs: the marker file it would create stays absent, and the load
  fails with a clear error. The old pickled format is refused, naming the conversion.
* The loader opens only the files the manifest lists, by plain names.
* A pinned digest that does not match is refused.
* A new artifact holds no pickle stream in any file (checked on the bytes).
* Concurrent writers (two processes renaming topics, a rename racing an update) lose nothing
  and leave a valid artifact; files get the modes the umask gives.
* The tokenizer's cache stays within its byte budget whatever the input.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest

from abstractor_widgets import Abstractor
from abstractor_widgets.cli import main
from abstractor_widgets.legacy import convert_pickled_artifact
from abstractor_widgets.store import (
    DIGEST_ENV_VAR,
    MANIFEST,
    ArtifactError,
    DigestMismatchError,
    PickledArtifactError,
    artifact_digest,
    read_manifest,
    sha256_file,
    verify_artifacts,
)
from abstractor_widgets.text import CACHE_MAX_BYTES, MAX_LEMMATIZED_CHARS, MAX_TEXT_CHARS, TextTooLongError, Tokenizer


class Boom:
    """Unpickling this runs ``open(marker, 'w')``: proof that a pickle was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def crafted_pickle(marker: Path) -> bytes:
    return pickle.dumps(Boom(marker), protocol=pickle.HIGHEST_PROTOCOL)


def relist(directory: Path, name: str) -> None:
    """Make the manifest list ``name``'s current size and sha256 (what a forger would do)."""
    manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    manifest["files"][name] = {"bytes": (directory / name).stat().st_size, "sha256": sha256_file(directory / name)}
    (directory / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")


@pytest.fixture()
def artifact(synthetic_artifact, tmp_path) -> Path:
    copy = tmp_path / "model"
    shutil.copytree(synthetic_artifact, copy)
    return copy


# -- nothing from the folder executes ---------------------------------------------------------
def artifact_files(synthetic_artifact: Path) -> list[str]:
    return sorted(p.name for p in synthetic_artifact.iterdir() if p.name != MANIFEST)


def test_every_file_kind_is_covered(synthetic_artifact):
    names = artifact_files(synthetic_artifact)
    kinds = {name.rsplit(".", 1)[-1] for name in names}
    assert kinds == {"json", "npy", "bin"}
    assert {"preprocessor.json", "dictionary.json", "lda.json", "lda.expElogbeta.npy", "vectors.npy",
            "docs.text.bin", "lexical.json"} <= set(names)


def _all_names(request) -> list[str]:
    return artifact_files(request.getfixturevalue("synthetic_artifact"))


@pytest.mark.parametrize("name", [
    "preprocessor.json", "dictionary.json", "dictionary.dfs.npy", "lda.json", "lda.expElogbeta.npy",
    "lda.sstats.npy", "lda.alpha.npy", "lda.eta.npy", "doc_topics.npy", "vectors.npy", "docs.text.bin",
    "docs.id.idx.npy", "docs.id_order.npy", "lexical.json", "lexical.data.npy", "lexical.terms.npy",
])
def test_a_crafted_pickle_in_any_file_never_runs(artifact, tmp_path, name):
    marker = tmp_path / "pwned"
    (artifact / name).write_bytes(crafted_pickle(marker))
    relist(artifact, name)
    verify_artifacts(artifact)  # the checksums match: only the format protects
    with pytest.raises(ArtifactError, match=r"cannot load"):
        Abstractor.load(artifact)
    assert not marker.exists()


@pytest.mark.parametrize("mmap", [True, False])
def test_an_object_array_hiding_a_pickle_is_refused(artifact, tmp_path, mmap):
    marker = tmp_path / "pwned"
    np.save(artifact / "doc_topics.npy", np.array([Boom(marker)], dtype=object), allow_pickle=True)
    relist(artifact, "doc_topics.npy")
    with pytest.raises(ArtifactError, match=r"Object arrays cannot be loaded when allow_pickle=False|Python objects in dtype"):
        Abstractor.load(artifact, mmap=mmap)
    assert not marker.exists()


def test_old_pickled_format_is_refused_with_the_conversion_command(artifact, tmp_path):
    marker = tmp_path / "pwned"
    (artifact / "preprocessor.pkl").write_bytes(crafted_pickle(marker))
    relist(artifact, "preprocessor.pkl")
    manifest = json.loads((artifact / MANIFEST).read_text(encoding="utf-8"))
    manifest["format_version"] = 1
    (artifact / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(PickledArtifactError, match=r"old pickled format.*abstractor convert .* --trust-pickles"):
        Abstractor.load(artifact)
    assert main(["info", str(artifact)]) == 2
    assert main(["convert", str(artifact), str(tmp_path / "new")]) == 2  # no --trust-pickles: refused
    assert not marker.exists()
    with pytest.raises(PermissionError, match="trust"):
        convert_pickled_artifact(artifact, tmp_path / "new")
    assert not marker.exists() and not (tmp_path / "new").exists()


def test_info_reads_only_the_manifest(artifact, tmp_path, capsys):
    marker = tmp_path / "pwned"
    for name in artifact_files(artifact):
        (artifact / name).write_bytes(crafted_pickle(marker))  # sizes no longer match: only info may work
    assert main(["info", str(artifact)]) == 0
    assert "digest: " + artifact_digest(artifact) in capsys.readouterr().out
    assert main(["info", str(artifact), "--verify"]) == 2
    assert not marker.exists()


# -- only listed, plain names ---------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "sub/vectors.npy", "..", ".hidden", "a\\b", ""])
def test_a_manifest_naming_a_path_is_refused(artifact, bad):
    manifest = json.loads((artifact / MANIFEST).read_text(encoding="utf-8"))
    manifest["files"][bad] = {"bytes": 1, "sha256": "0" * 64}
    (artifact / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ArtifactError, match=r"unsafe file name"):
        Abstractor.load(artifact)


def test_a_file_the_manifest_does_not_list_is_never_opened(artifact):
    manifest = json.loads((artifact / MANIFEST).read_text(encoding="utf-8"))
    del manifest["files"]["lda.json"]  # the file stays on disk
    (artifact / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ArtifactError, match=r"lda.json.*(not list|not listed)"):
        Abstractor.load(artifact)


def test_the_hnsw_graph_file_name_is_not_taken_from_the_manifest(artifact):
    manifest = json.loads((artifact / MANIFEST).read_text(encoding="utf-8"))
    manifest["index"]["ann"] = {"library": "hnswlib", "space": "ip", "file": "../../etc/passwd",
                                "dim": manifest["n_topics"], "count": manifest["n_documents"]}
    (artifact / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ArtifactError, match=r"must be saved as 'ann.hnsw'"):
        Abstractor.load(artifact)


# -- pinned digest ---------------------------------------------------------------------------------
def test_pinned_digest_matches_and_mismatches(artifact, monkeypatch, capsys):
    digest = artifact_digest(artifact)
    assert Abstractor.load(artifact, expected_digest=digest, warm=False).n_topics == 4
    with pytest.raises(DigestMismatchError, match=r"pinned by expected_digest"):
        Abstractor.load(artifact, expected_digest="0" * 64)
    monkeypatch.setenv(DIGEST_ENV_VAR, "f" * 64)
    with pytest.raises(DigestMismatchError, match=r"ABSTRACTOR_ARTIFACT_SHA256"):
        Abstractor.load(artifact)
    assert main(["query", str(artifact), "robot gripper"]) == 2
    assert "digest" in capsys.readouterr().err
    monkeypatch.setenv(DIGEST_ENV_VAR, digest)
    Abstractor.load(artifact, warm=False)


def test_a_forged_file_with_a_forged_manifest_fails_the_pinned_digest(artifact, tmp_path):
    digest = artifact_digest(artifact)
    data = np.load(artifact / "doc_topics.npy")
    np.save(artifact / "doc_topics.npy", data[::-1].copy())  # another valid array, same size
    relist(artifact, "doc_topics.npy")
    Abstractor.load(artifact, warm=False)  # unpinned: the forged manifest is self-consistent
    with pytest.raises(DigestMismatchError):
        Abstractor.load(artifact, expected_digest=digest)


def test_labels_are_not_part_of_the_digest_but_are_validated(artifact):
    digest = artifact_digest(artifact)
    Abstractor.load(artifact, warm=False).label_topic(1, "Robots")
    assert artifact_digest(artifact) == digest
    manifest = json.loads((artifact / MANIFEST).read_text(encoding="utf-8"))
    manifest["labels"][0] = "x" * 10_000
    (artifact / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ArtifactError, match=r"labels must be"):
        Abstractor.load(artifact)


# -- no pickle in a new artifact ---------------------------------------------------------------------
def test_a_new_artifact_contains_no_pickle_stream(synthetic_artifact):
    import pickletools

    for path in sorted(synthetic_artifact.iterdir()):
        data = path.read_bytes()
        assert not data.startswith(b"\x80"), f"{path.name} starts like a pickle stream"
        try:
            ops = list(pickletools.genops(data))
        except Exception:
            ops = []
        assert not (ops and ops[-1][0].name == "STOP" and len(ops) > 2), f"{path.name} parses as a pickle"
        if path.suffix == ".npy":
            with open(path, "rb") as handle:
                major, _ = np.lib.format.read_magic(handle)
                read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
                _, _, dtype = read_header(handle)
            assert not dtype.hasobject, f"{path.name} is an object array"
            np.load(path, allow_pickle=False)
        elif path.suffix == ".json":
            json.loads(data.decode("utf-8"))
        else:
            assert path.suffix == ".bin"
            data.decode("utf-8", "surrogatepass")


def test_conversion_of_a_trusted_pickled_artifact_gives_the_same_answers(tmp_path, synthetic_abstractor):
    """An artifact written the old way (pickles) converts into one that answers identically."""
    from benchmarks.artifact_safety import write_pickled_artifact

    old = write_pickled_artifact(synthetic_abstractor, tmp_path / "old")
    with pytest.raises(PickledArtifactError):
        Abstractor.load(old)
    assert main(["convert", str(old), str(tmp_path / "new"), "--trust-pickles"]) == 0
    new = Abstractor.load(tmp_path / "new")
    text = "a robot gripper grasps objects while image segmentation labels pixels"
    ref = synthetic_abstractor.analyze(text, n=5)
    got = new.analyze(text, n=5)
    assert got.spans == ref.spans
    assert [h["id"] for h in got.similar] == [h["id"] for h in ref.similar]
    np.testing.assert_allclose(got.doc_topics, ref.doc_topics)
    assert read_manifest(tmp_path / "new")["converted_from"]["format_version"] == 1


# -- writers: modes, lock, merge -------------------------------------------------------------------------
def test_saved_files_and_folders_get_the_modes_the_umask_gives(synthetic_abstractor, tmp_path):
    old = os.umask(0o022)
    try:
        out = synthetic_abstractor.save(tmp_path / "public")
        synthetic_abstractor.label_topic(0, "Renamed")
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    for path in out.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path.name


def _rename_many(path: str, topic: int, prefix: str, count: int, barrier, errors) -> None:
    try:
        ab = Abstractor.load(path, warm=False)
        barrier.wait(timeout=60)
        for i in range(count):
            ab.label_topic(topic, f"{prefix} {i}")
            labels = json.loads((Path(path) / MANIFEST).read_text(encoding="utf-8"))["labels"]
            if labels[topic] not in (f"{prefix} {i}",) and not labels[topic].startswith(prefix):
                errors.put(f"{prefix}: own rename {i} lost: {labels[topic]!r}")
    except Exception as exc:  # reported to the parent
        errors.put(f"{prefix}: {type(exc).__name__}: {exc}")


def _race(*jobs: tuple, timeout: float = 180) -> list[str]:
    """Run ``(target, *args)`` jobs in forked processes released together; their reported problems."""
    ctx = multiprocessing.get_context("fork")
    barrier, errors = ctx.Barrier(len(jobs)), ctx.Queue()
    workers = [ctx.Process(target=target, args=(*args, barrier, errors)) for target, *args in jobs]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=timeout)
        assert w.exitcode == 0
    problems = []
    while not errors.empty():
        problems.append(errors.get())
    return problems


def test_two_processes_renaming_different_topics_lose_nothing(artifact):
    assert _race((_rename_many, str(artifact), 1, "alpha", 50), (_rename_many, str(artifact), 2, "beta", 50)) == []
    manifest = verify_artifacts(artifact)
    assert manifest["labels"][1] == "alpha 49" and manifest["labels"][2] == "beta 49"
    assert manifest["labels"][0] == "Topic 0" and manifest["labels"][3] == "Topic 3"


def _update_once(path: str, frame_path: str, barrier, errors) -> None:
    try:
        import pandas as pd

        ab = Abstractor.load(path, warm=False)
        barrier.wait(timeout=60)
        ab.update(pd.read_parquet(frame_path))
    except Exception as exc:
        errors.put(f"update: {type(exc).__name__}: {exc}")


def test_a_label_save_racing_an_update_leaves_a_loadable_artifact(artifact, synthetic_frame, tmp_path):
    fresh = synthetic_frame.iloc[:40].copy()
    fresh["id"] = [f"new.{i:04d}" for i in range(len(fresh))]
    frame_path = tmp_path / "new.parquet"
    fresh.to_parquet(frame_path)
    before = read_manifest(artifact)["n_documents"]
    assert _race((_update_once, str(artifact), str(frame_path)), (_rename_many, str(artifact), 3, "gamma", 30)) == []
    manifest = verify_artifacts(artifact)
    assert manifest["n_documents"] == before + 40
    assert manifest["labels"][3] == "gamma 29"
    ab = Abstractor.load(artifact)
    assert "new.0007" in ab.documents


# -- bounded memory per visitor ----------------------------------------------------------------------
def test_input_limit_is_one_constant_everywhere(synthetic_abstractor):
    from abstractor_widgets import widget

    assert widget.MAX_TEXT_CHARS == MAX_TEXT_CHARS
    with pytest.raises(TextTooLongError, match=f"{MAX_TEXT_CHARS:,}"):
        synthetic_abstractor.analyze("a" * (MAX_TEXT_CHARS + 1))
    assert synthetic_abstractor.analyze("a " * (MAX_TEXT_CHARS // 2)).spans


def test_tokenizer_cache_stays_within_its_byte_budget(monkeypatch):
    import abstractor_widgets.text as text_module

    monkeypatch.setattr(text_module, "CACHE_MAX_BYTES", 200_000)
    tok = Tokenizer()
    rng = np.random.default_rng(0)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    peak = 0
    for _ in range(200):
        words = ["".join(rng.choice(letters, size=rng.integers(4, 12))) for _ in range(100)]
        tok.tokenize(" ".join(words))
        peak = max(peak, tok.cache_bytes)
        assert tok.cache_bytes <= 200_000
    assert peak > 150_000  # the cache is used, and emptied when full
    again = Tokenizer()
    sample = "Transformers learned representations of images"
    assert [t.text for t in tok.tokenize(sample)] == [t.text for t in again.tokenize(sample)]
    assert CACHE_MAX_BYTES >= 8 * 2**20


def test_very_long_words_are_neither_cached_nor_lemmatized():
    tok = Tokenizer()
    long_word = "networks" * 10
    assert len(long_word) > MAX_LEMMATIZED_CHARS
    tokens = tok.tokenize(f"{long_word} networks")
    assert [t.text for t in tokens] == [long_word, "network"]
    assert long_word not in tok._cache and "networks" in tok._cache


def test_unique_random_words_do_not_grow_the_process_without_bound(synthetic_artifact):
    """2,000 requests of 150 unique random words each (300,000 new words) into one model."""
    psutil = pytest.importorskip("psutil")
    ab = Abstractor.load(synthetic_artifact)
    rng = np.random.default_rng(1)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyzéüß"))

    def request() -> None:
        words = ["".join(rng.choice(letters, size=rng.integers(5, 30))) for _ in range(150)]
        ab.analyze(" ".join(words), n=5)

    for _ in range(200):  # warm-up: allocator pools, lazy imports
        request()
    before = psutil.Process().memory_info().rss
    for _ in range(2000):
        request()
    grown = (psutil.Process().memory_info().rss - before) / 2**20
    assert ab.model.preprocessor_.tokenizer.cache_bytes <= CACHE_MAX_BYTES
    assert grown <= 80, f"RSS grew by {grown:.1f} MiB"  # generous: the benchmark reports the figure
