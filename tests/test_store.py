"""Artifacts: round trip, manifest contents, corruption, interrupted saves, memory mapping."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from abstractor_widgets import store
from abstractor_widgets.corpus import Corpus, Document
from abstractor_widgets.store import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    ArtifactError,
    DocumentTable,
    atomic_write_text,
    load_artifacts,
    read_manifest,
    save_artifacts,
    save_labels,
    sha256_file,
    verify_artifacts,
)


@pytest.fixture()
def artifact(synthetic_artifact, tmp_path) -> Path:
    """A private copy of the session's synthetic artifact (nothing loaded from it yet)."""
    copy = tmp_path / "model"
    shutil.copytree(synthetic_artifact, copy)
    return copy


@pytest.fixture()
def loaded(artifact):
    return load_artifacts(artifact)


def leftovers(directory: Path) -> list[str]:
    """Temporary siblings a save may leave behind."""
    return sorted(p.name for p in directory.parent.iterdir()
                  if p.name.startswith(f".{directory.name}.") and p.name != f".{directory.name}.lock")


def flip_byte(path: Path, position: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    position = len(data) // 2 if position is None else position
    data[position] ^= 0xFF
    path.write_bytes(bytes(data))


# -- round trip ------------------------------------------------------------------------
def test_round_trip_of_model_index_documents_and_labels(loaded, tmp_path, synthetic_corpus):
    model, index, documents, manifest = loaded
    model.set_label(2, "Robots and grippers")
    out = save_artifacts(tmp_path / "again", model, index, documents, corpus_info=manifest["corpus"])
    assert out == tmp_path / "again"
    model2, index2, documents2, manifest2 = load_artifacts(out)
    assert model2.labels_ == ["Topic 0", "Topic 1", "Robots and grippers", "Topic 3"]
    assert model2.n_topics == model.n_topics == 4
    assert model2.topics(5) == model.topics(5)
    assert dict(model2.dictionary_.token2id) == dict(model.dictionary_.token2id)
    np.testing.assert_array_equal(np.asarray(model2.doc_topics_), np.asarray(model.doc_topics_))
    np.testing.assert_array_equal(np.asarray(index2.vectors_), np.asarray(index.vectors_))
    assert index2.metric == index.metric == "hellinger"
    assert model2.preprocessor_.get_params() == model.preprocessor_.get_params()
    assert [documents2[i] for i in range(len(documents2))] == list(synthetic_corpus)
    text = "image pixel segmentation with a robot gripper and torque"
    np.testing.assert_array_equal(model2.document_topics(text), model.document_topics(text))
    assert model2.colorize(text) == model.colorize(text)
    assert leftovers(out) == []


def test_manifest_contents(artifact, synthetic_corpus):
    import gensim

    manifest = json.loads((artifact / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["format"] == FORMAT == "abstractor-artifacts"
    assert manifest["format_version"] == FORMAT_VERSION == 2
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", manifest["created"])
    versions = manifest["versions"]
    assert versions["gensim"] == gensim.__version__
    assert versions["numpy"] == np.__version__
    assert {"abstractor_widgets", "python"} <= set(versions)
    assert manifest["corpus"]["size"] == len(synthetic_corpus) == manifest["n_documents"]
    assert manifest["corpus"]["sha256"] == synthetic_corpus.content_hash()
    assert manifest["n_topics"] == 4 and manifest["metric"] == "hellinger"
    params = manifest["params"]
    assert (params["n_topics"], params["passes"], params["random_state"]) == (4, 20, 1)
    assert params["preprocessor"]["tokenizer"]["min_length"] == 3
    assert manifest["labels"] == [f"Topic {k}" for k in range(4)]
    on_disk = sorted(p.name for p in artifact.iterdir() if p.name != MANIFEST)
    assert sorted(manifest["files"]) == on_disk
    for name, info in manifest["files"].items():
        assert info["bytes"] == (artifact / name).stat().st_size
        assert info["sha256"] == sha256_file(artifact / name)
        assert re.fullmatch(r"[0-9a-f]{64}", info["sha256"])


def test_save_refuses_mismatched_index_and_documents(loaded, tmp_path):
    model, index, documents, _ = loaded
    with pytest.raises(ValueError, match="the index has 240 rows but there are 1 documents"):
        save_artifacts(tmp_path / "x", model, index, [documents[0]])
    assert not (tmp_path / "x").exists()


def test_extra_files_are_listed_and_verified(loaded, tmp_path):
    model, index, documents, _ = loaded
    out = save_artifacts(tmp_path / "x", model, index, documents, extra_files={"notes.txt": b"hello"},
                         extra_manifest={"note": "kept"})
    manifest = read_manifest(out)
    assert manifest["note"] == "kept"
    assert manifest["files"]["notes.txt"]["bytes"] == 5
    flip_byte(out / "notes.txt", 0)
    with pytest.raises(ArtifactError, match="notes.txt: checksum mismatch"):
        load_artifacts(out)


# -- memory mapping ------------------------------------------------------------------------
def mapped(array) -> bool:
    """A memory map, or a plain view of one (the same shared pages, not a private copy)."""
    return isinstance(array, np.memmap) or isinstance(array.base, np.memmap)


def test_large_arrays_are_memory_mapped_after_load(loaded):
    model, index, documents, _ = loaded
    assert mapped(model.doc_topics_)
    assert mapped(index.vectors_)
    assert mapped(model.lda_.expElogbeta)
    for field in ("id", "text"):
        assert mapped(documents._blobs[field])
        assert mapped(documents._offsets[field])
    assert mapped(documents._id_order)


def test_per_query_arrays_are_plain_views_of_the_maps(loaded):
    """Slicing np.memmap costs Python-level work per slice; the hot arrays are plain ndarray views."""
    model, index, documents, _ = loaded
    arrays = [model.doc_topics_, index.vectors_, documents._id_order]
    arrays += [documents._blobs[f] for f in ("id", "title")] + [documents._offsets[f] for f in ("id", "title")]
    for array in arrays:
        assert type(array) is np.ndarray and isinstance(array.base, np.memmap)


def test_topic_word_statistics_are_memory_mapped_too(loaded):
    """sstats is K x V like expElogbeta (the manifest's save asks for it separately): it must be shared too."""
    model = loaded[0]
    assert mapped(model.lda_.state.sstats)


def test_load_without_mmap_gives_plain_arrays(artifact):
    model, index, documents, _ = load_artifacts(artifact, mmap=False)
    assert not mapped(model.doc_topics_)
    assert not mapped(index.vectors_)
    assert documents[0].id == "2401.00000"


def test_memory_mapped_arrays_are_read_only(loaded):
    model, index, _, _ = loaded
    with pytest.raises(ValueError):
        model.doc_topics_[0, 0] = 1.0
    with pytest.raises(ValueError):
        index.vectors_[0, 0] = 1.0


# -- document table ------------------------------------------------------------------------
def test_document_table_lookups(tmp_path):
    docs = [Document("b", "Bé", "texte ünïcode 😀", "cs.LG", "2024-01-01"), Document("a", "", "x"),
            Document("c", "C", "surrogate-free \u0301 text")]
    table = DocumentTable.from_documents(docs)
    assert len(table) == 3
    assert [table[i] for i in range(3)] == docs
    assert table[-1] == docs[-1]
    assert table.ids() == ["b", "a", "c"]
    assert [table.position(i) for i in ("a", "b", "c")] == [1, 0, 2]
    assert "a" in table and "zz" not in table
    with pytest.raises(KeyError, match="unknown document id 'zz'"):
        table.position("zz")
    with pytest.raises(IndexError):
        table[3]


# -- corruption ------------------------------------------------------------------------------
def test_missing_directory(tmp_path):
    with pytest.raises(ArtifactError, match=r"no such model directory"):
        load_artifacts(tmp_path / "nothing-here")


def test_missing_manifest(artifact):
    (artifact / MANIFEST).unlink()
    with pytest.raises(ArtifactError, match=rf"^{re.escape(str(artifact))}: not a model directory \(no manifest.json\)"):
        load_artifacts(artifact)


def test_unparsable_manifest(artifact):
    (artifact / MANIFEST).write_text('{"format": "abstractor-artifacts", ', encoding="utf-8")
    with pytest.raises(ArtifactError, match=r"manifest.json: unreadable manifest"):
        load_artifacts(artifact)


def test_manifest_of_another_format(artifact):
    (artifact / MANIFEST).write_text('["a list"]', encoding="utf-8")
    with pytest.raises(ArtifactError, match=r"not an abstractor-artifacts manifest"):
        load_artifacts(artifact)


@pytest.mark.parametrize("version", [0, 3, 999, "2", None])
def test_wrong_format_version_is_incompatible(artifact, version):
    manifest = json.loads((artifact / MANIFEST).read_text(encoding="utf-8"))
    manifest["format_version"] = version
    (artifact / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ArtifactError, match=r"format version .* is incompatible"):
        load_artifacts(artifact)


def test_manifest_lacking_a_key(artifact):
    manifest = json.loads((artifact / MANIFEST).read_text(encoding="utf-8"))
    del manifest["labels"]
    (artifact / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ArtifactError, match=r"manifest lacks 'labels'"):
        load_artifacts(artifact)


@pytest.mark.parametrize("name", ["vectors.npy", "lda.json", "preprocessor.json", "docs.text.bin"])
def test_missing_file(artifact, name):
    (artifact / name).unlink()
    with pytest.raises(ArtifactError, match=rf"{re.escape(name)}: missing file"):
        load_artifacts(artifact)


@pytest.mark.parametrize("name", ["doc_topics.npy", "lda.expElogbeta.npy", "docs.text.bin", "dictionary.json"])
def test_truncated_file(artifact, name):
    path = artifact / name
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(size // 2)
    with pytest.raises(ArtifactError, match=rf"{re.escape(name)}: truncated or modified \({size // 2} bytes, expected {size}\)"):
        load_artifacts(artifact)


@pytest.mark.parametrize("name", ["vectors.npy", "preprocessor.json", "docs.title.bin", "lda.sstats.npy"])
def test_tampered_file_same_size_is_a_checksum_mismatch(artifact, name):
    path = artifact / name
    size = path.stat().st_size
    flip_byte(path)
    assert path.stat().st_size == size
    with pytest.raises(ArtifactError, match=rf"{re.escape(name)}: checksum mismatch"):
        load_artifacts(artifact)


def test_unsafe_file_name_in_manifest(artifact):
    manifest = json.loads((artifact / MANIFEST).read_text(encoding="utf-8"))
    manifest["files"]["../outside"] = {"bytes": 1, "sha256": "0" * 64}
    (artifact / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ArtifactError, match=r"unsafe file name"):
        verify_artifacts(artifact)


def test_verify_false_still_checks_sizes(artifact):
    flip_byte(artifact / "docs.title.bin")
    load_artifacts(artifact, verify=False)  # same size: accepted without checksums
    with open(artifact / "vectors.npy", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ArtifactError, match="vectors.npy: truncated or modified"):
        load_artifacts(artifact, verify=False)


def test_inconsistent_shapes_are_reported(loaded, tmp_path):
    model, index, documents, manifest = loaded
    out = save_artifacts(tmp_path / "x", model, index, documents)
    m = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    m["n_topics"] = 5
    m["labels"].append("Topic 4")  # valid labels: the shapes are what disagrees
    (out / MANIFEST).write_text(json.dumps(m), encoding="utf-8")
    with pytest.raises(ArtifactError, match="inconsistent shapes"):
        load_artifacts(out)


# -- interrupted saves -----------------------------------------------------------------------
def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_save_failing_midway_keeps_the_old_artifact(loaded, artifact, monkeypatch):
    model, index, documents, _ = loaded
    before = _snapshot(artifact)
    real_save = np.save
    calls = []

    def failing_save(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 3:  # while writing the model's arrays, halfway through the save
            raise OSError("disk full")
        return real_save(*args, **kwargs)

    monkeypatch.setattr(np, "save", failing_save)
    model.set_label(0, "Never saved")
    with pytest.raises(OSError, match="disk full"):
        save_artifacts(artifact, model, index, documents)
    monkeypatch.undo()
    assert len(calls) == 3
    assert _snapshot(artifact) == before
    assert leftovers(artifact) == []  # no .partial directory left
    model2, _, documents2, manifest2 = load_artifacts(artifact)
    assert manifest2["labels"][0] == "Topic 0"
    assert len(documents2) == 240


def test_lda_save_failing_keeps_the_old_artifact(loaded, artifact, monkeypatch):
    model, index, documents, _ = loaded
    before = _snapshot(artifact)

    def broken(self, *args, **kwargs):
        raise RuntimeError("lda save crashed")

    monkeypatch.setattr(type(model), "save_files", broken)
    with pytest.raises(RuntimeError, match="lda save crashed"):
        save_artifacts(artifact, model, index, documents)
    monkeypatch.undo()
    assert _snapshot(artifact) == before
    assert leftovers(artifact) == []
    load_artifacts(artifact)


def test_first_save_failing_leaves_nothing(loaded, tmp_path, monkeypatch):
    model, index, documents, _ = loaded
    monkeypatch.setattr(np, "save", lambda *a, **k: (_ for _ in ()).throw(OSError("no space")))
    with pytest.raises(OSError):
        save_artifacts(tmp_path / "fresh", model, index, documents)
    monkeypatch.undo()
    assert not (tmp_path / "fresh").exists()
    assert leftovers(tmp_path / "fresh") == []


def test_crash_between_the_two_renames_is_recovered_on_load(artifact):
    before = _snapshot(artifact)
    stale = artifact.parent / f".{artifact.name}.old-12345-1700000000000000000"
    os.replace(artifact, stale)  # the old artifact moved aside, the new one never renamed in
    model, _, documents, manifest = load_artifacts(artifact)
    assert artifact.is_dir() and not stale.exists()
    assert _snapshot(artifact) == before
    assert len(documents) == 240 and manifest["n_topics"] == 4


def test_failure_of_the_second_rename_is_recovered_on_load(loaded, artifact, monkeypatch):
    model, index, documents, _ = loaded
    before = _snapshot(artifact)
    real_replace = os.replace
    calls = []

    def second_rename_fails(src, dst):
        calls.append((Path(src).name, Path(dst).name))
        if Path(src).name.endswith(".partial"):
            raise OSError("power cut")
        return real_replace(src, dst)

    monkeypatch.setattr(store.os, "replace", second_rename_fails)
    with pytest.raises(OSError, match="power cut"):
        save_artifacts(artifact, model, index, documents)
    monkeypatch.undo()
    assert not artifact.exists()
    assert [p for p in leftovers(artifact) if p.endswith(".partial")] == []
    load_artifacts(artifact)
    assert _snapshot(artifact) == before
    assert leftovers(artifact) == []


def test_successful_save_over_an_existing_artifact_leaves_no_old_copy(loaded, artifact):
    model, index, documents, _ = loaded
    model.set_label(1, "Replaced")
    save_artifacts(artifact, model, index, documents)
    assert leftovers(artifact) == []
    assert read_manifest(artifact)["labels"][1] == "Replaced"
    assert load_artifacts(artifact)[0].labels_[1] == "Replaced"


# -- labels -------------------------------------------------------------------------------------
def test_save_labels_round_trip_keeps_the_artifact_valid(artifact):
    labels = ["Vision", "Language", "Robotics ü", "Biology"]
    save_labels(artifact, labels)
    assert read_manifest(artifact)["labels"] == labels
    verify_artifacts(artifact)
    assert load_artifacts(artifact)[0].labels_ == labels
    assert sorted(p.name for p in artifact.iterdir() if p.name.startswith(".")) == []  # no temp file


def test_save_labels_wrong_count(artifact):
    with pytest.raises(ValueError, match="expected 4 labels, got 2"):
        save_labels(artifact, ["a", "b"])


def test_save_labels_is_atomic(artifact, monkeypatch):
    before = (artifact / MANIFEST).read_bytes()

    def crash(src, dst):
        raise OSError("crash before the rename")

    monkeypatch.setattr(store.os, "replace", crash)
    with pytest.raises(OSError, match="crash before the rename"):
        save_labels(artifact, ["w", "x", "y", "z"])
    monkeypatch.undo()
    assert (artifact / MANIFEST).read_bytes() == before
    assert sorted(p.name for p in artifact.iterdir() if p.name.startswith(".")) == []


def test_atomic_write_text_replaces_or_keeps(tmp_path, monkeypatch):
    target = tmp_path / "f.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text(encoding="utf-8") == "two"
    monkeypatch.setattr(store.os, "replace", lambda *a: (_ for _ in ()).throw(OSError("no")))
    with pytest.raises(OSError):
        atomic_write_text(target, "three")
    monkeypatch.undo()
    assert target.read_text(encoding="utf-8") == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]


# -- appending documents without decoding the old ones (updates of big models) -------------
def test_appended_documents_are_written_as_a_whole_table_would_be(tmp_path, synthetic_corpus):
    from abstractor_widgets.corpus import Document
    from abstractor_widgets.store import DocumentTable

    docs = list(synthetic_corpus)
    table = DocumentTable.from_documents(docs[:50])
    # new ids that sort before, between and after the old ones; non-ASCII and hostile text kept as is
    new = [Document("0000.00001", "first", "α β γ <script>x</script>", "cs.LG", "2020-01-01"),
           Document(docs[10].id + "a", "between", "text between", "stat.ML", "2021-01-01"),
           Document("zzzz/9999999", "last", "$\\frac{a}{b}$ LaTeX", "math.ST", "")]
    appended = table.appended(new)
    assert len(appended) == 53
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    names = appended.write(tmp_path / "a")
    assert names == DocumentTable.write(docs[:50] + new, tmp_path / "b")
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    reopened = DocumentTable.open(tmp_path / "a")
    assert reopened.position("0000.00001") == 50 and reopened.position(docs[10].id + "a") == 51
    assert reopened[52].text == "$\\frac{a}{b}$ LaTeX"
    full = Corpus.from_documents(docs[:50] + new)
    assert appended.content_hash() == full.content_hash() == reopened.content_hash()
    assert table.content_hash() == Corpus.from_documents(docs[:50]).content_hash()
