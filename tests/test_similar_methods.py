"""The ranking methods of ``Abstractor.similar``: hybrid (default), lexical, lda.

The lexical index is built at training time, saved with the artifact (checksummed,
memory-mapped on load), grows with ``update`` and explains every hit by its shared terms.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from abstractor_widgets import Abstractor
from abstractor_widgets.lexical import PREFIX, LexicalIndex
from abstractor_widgets.ranking import METHODS
from abstractor_widgets.store import MANIFEST, ArtifactError, read_manifest
from synthetic_data import make_synthetic_frame

ROBOTICS = "We grasp the tissue with an actuator, plan the navigation and control the gripper."


@pytest.fixture(scope="module")
def ab(synthetic_artifact) -> Abstractor:
    return Abstractor.load(synthetic_artifact)


def test_trained_artifact_has_a_memory_mapped_lexical_index(ab, synthetic_artifact):
    manifest = read_manifest(synthetic_artifact)
    assert set(LexicalIndex.file_names()) <= set(manifest["files"])  # every file checksummed
    assert manifest["lexical"]["scheme"] == "bm25"
    assert isinstance(ab.lexical, LexicalIndex) and len(ab.lexical) == len(ab)
    assert ab.default_method == "hybrid" and ab.methods == METHODS
    assert isinstance(ab.lexical.postings_.data.base, np.memmap) or isinstance(ab.lexical.postings_.data, np.memmap)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_ranks_the_right_field_first(ab, method):
    hits = ab.similar(ROBOTICS, n=5, method=method)
    assert hits.reason is None and len(hits) == 5
    assert all(hit["categories"] == "cs.RO" for hit in hits), [h["categories"] for h in hits]
    scores = [hit["score"] for hit in hits]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)


def test_default_is_hybrid_and_differs_from_lda_scores(ab):
    default = ab.similar(ROBOTICS, n=5)
    assert [h["id"] for h in default] == [h["id"] for h in ab.similar(ROBOTICS, n=5, method="hybrid")]
    lda = ab.similar(ROBOTICS, n=5, method="lda")
    assert [h["score"] for h in default] != [h["score"] for h in lda]


def test_hits_explain_themselves_by_shared_terms(ab):
    query_words = set(ab.model.preprocessor_.words(ROBOTICS))
    for method in ("hybrid", "lexical"):
        for hit in ab.similar(ROBOTICS, n=5, method=method):
            assert 1 <= len(hit["shared_terms"]) <= 5
            doc_words = set(ab.model.preprocessor_.words(hit["title"] + " " + hit["abstract"]))
            assert set(hit["shared_terms"]) <= query_words & doc_words
    assert all(hit["shared_terms"] == [] for hit in ab.similar(ROBOTICS, n=5, method="lda"))


def test_analyze_uses_the_method(ab):
    analysis = ab.analyze(ROBOTICS, n=3, method="lexical")
    assert len(analysis.similar) == 3 and analysis.similar[0]["shared_terms"]
    assert [h["id"] for h in analysis.similar] == [h["id"] for h in ab.similar(ROBOTICS, n=3, method="lexical")]


@pytest.mark.parametrize("method", METHODS)
def test_similar_to_excludes_the_paper_itself(ab, method):
    doc = ab.documents[7]
    hits = ab.similar_to(doc.id, n=5, method=method)
    assert len(hits) == 5 and doc.id not in [h["id"] for h in hits]
    assert all(h["categories"] == doc.categories for h in hits)


def test_unknown_method_is_a_clear_error(ab):
    with pytest.raises(ValueError, match="method must be one of"):
        ab.similar(ROBOTICS, method="tfidf")
    with pytest.raises(ValueError, match="method must be one of"):
        ab.similar_to(ab.documents[0].id, method="bm25")


@pytest.mark.parametrize("text", ["", "   ", "the of and", "<script>alert(1)</script>", "Über die Größe 東京"])
def test_texts_without_known_words_give_a_reason_not_an_error(ab, text):
    for method in METHODS:
        hits = ab.similar(text, n=5, method=method)
        assert hits == [] and hits.reason


def test_lexical_only_words_still_find_papers(ab):
    """A word the lexical index knows but the topic model dropped still ranks papers."""
    lexical_only = [t for t in ab.lexical.terms_ if t not in ab.model.dictionary_.token2id]
    if not lexical_only:
        pytest.skip("every lexical term is in the topic model's dictionary")
    word = lexical_only[0]
    hits = ab.similar(word, n=3, method="lexical")
    assert hits and all(word in ab.model.preprocessor_.words(h["title"] + " " + h["abstract"]) for h in hits)


# -- artifacts ----------------------------------------------------------------------------
def _copy(artifact, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(artifact, copy)
    return copy


def test_artifact_without_lexical_index_falls_back_to_lda(synthetic_artifact, tmp_path):
    """Artifacts saved before lexical indexes existed load and rank by topics."""
    copy = _copy(synthetic_artifact, tmp_path)
    manifest = json.loads((copy / MANIFEST).read_text())
    for name in list(manifest["files"]):
        if name.startswith(PREFIX):
            del manifest["files"][name]
            (copy / name).unlink()
    manifest.pop("lexical")
    (copy / MANIFEST).write_text(json.dumps(manifest))
    old = Abstractor.load(copy)
    assert old.lexical is None and old.default_method == "lda" and old.methods == ("lda",)
    hits = old.similar(ROBOTICS, n=5)
    assert len(hits) == 5 and all(h["shared_terms"] == [] for h in hits)
    with pytest.raises(ValueError, match="needs a lexical index"):
        old.similar(ROBOTICS, method="hybrid")
    # saving it again keeps it loadable, still without a lexical index
    old.save(tmp_path / "resaved")
    assert Abstractor.load(tmp_path / "resaved").lexical is None


@pytest.mark.parametrize("name", ["lexical.t_data.npy", "lexical.json", "lexical.vectors.npy"])
def test_corrupt_lexical_file_is_an_artifact_error(synthetic_artifact, tmp_path, name):
    copy = _copy(synthetic_artifact, tmp_path)
    path = copy / name
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="checksum"):
        Abstractor.load(copy)


def test_inconsistent_lexical_index_is_an_artifact_error(synthetic_artifact, tmp_path):
    """Files that pass their checksums (verify=False) but disagree with the documents."""
    copy = _copy(synthetic_artifact, tmp_path)
    meta = json.loads((copy / "lexical.json").read_text())
    meta["n_documents"] += 1
    (copy / "lexical.json").write_text(json.dumps(meta))
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["files"]["lexical.json"]["bytes"] = (copy / "lexical.json").stat().st_size
    (copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="lexical index"):
        Abstractor.load(copy, verify=False)


def test_train_without_lexical_index(synthetic_corpus):
    ab = Abstractor.train(synthetic_corpus, 4, lexical=False, passes=2, progress=False, no_above=0.9)
    assert ab.lexical is None and ab.default_method == "lda"


def test_train_in_memory_then_save_keeps_the_lexical_index(synthetic_corpus, tmp_path):
    ab = Abstractor.train(synthetic_corpus, 4, lexical={"n_components": 8}, passes=2, progress=False, no_above=0.9)
    assert ab.lexical is not None and ab.lexical.vectors_.shape == (len(ab), 8)
    before = [h["id"] for h in ab.similar(ROBOTICS, n=5)]
    ab.save(tmp_path / "saved")
    loaded = Abstractor.load(tmp_path / "saved")
    assert [h["id"] for h in loaded.similar(ROBOTICS, n=5)] == before


def test_update_grows_the_lexical_index(synthetic_abstractor):
    ab = synthetic_abstractor
    frame = make_synthetic_frame(12, seed=11)
    frame["id"] = [f"2502.{i:05d}" for i in range(len(frame))]
    frame["title"] = [f"Zygomorphic gripper design {i}" for i in range(len(frame))]
    frame.loc[:, "abstract"] = frame["abstract"] + " Zygomorphic grippers."
    before = len(ab.lexical)
    assert ab.update(pd.DataFrame(frame)) == len(frame)
    assert len(ab.lexical) == before + len(frame) == len(ab)
    reloaded = Abstractor.load(ab.path)
    assert len(reloaded.lexical) == len(reloaded)
    # the new papers are found by the lexical ranking (their words are in the fixed vocabulary)
    new_ids = set(frame["id"])
    text = reloaded.document("2502.00004").text
    assert "2502.00004" in [h["id"] for h in reloaded.similar(text, n=5, method="lexical")]
    assert new_ids & {h["id"] for h in reloaded.similar(text, n=5)}


# -- the HNSW graph travels with the artifact ---------------------------------------------
def test_hnsw_graph_is_saved_loaded_and_updated_with_the_artifact(synthetic_corpus, tmp_path):
    pytest.importorskip("hnswlib")
    from abstractor_widgets.index import SimilarityIndex

    trained = Abstractor.train(synthetic_corpus, 4, passes=2, progress=False, no_above=0.9, random_state=1)
    exact = trained.index
    trained.index = SimilarityIndex(trained.model.doc_topics_, metric=exact.metric, backend="hnsw")
    assert trained.index.active_backend == "hnsw"
    path = trained.save(tmp_path / "ann")
    manifest = read_manifest(path)
    assert "ann.hnsw" in manifest["files"] and manifest["index"]["backend"] == "hnsw"
    loaded = Abstractor.load(path)
    assert loaded.index.active_backend == "hnsw"  # loaded, not rebuilt
    query = loaded.model.document_topics(ROBOTICS)
    assert loaded.index.query(query, n=5) == exact.query(query, n=5)
    # online update grows the graph and saves it again
    frame = make_synthetic_frame(20, seed=5)
    frame["id"] = [f"2503.{i:05d}" for i in range(len(frame))]
    assert loaded.update(frame) == 20
    again = Abstractor.load(path)
    assert again.index.active_backend == "hnsw" and again.index._ann.get_current_count() == len(again) == 260
    text = again.document("2503.00003").text
    assert "2503.00003" in [h["id"] for h in again.similar(text, n=5, method="lda")]


def test_corrupt_hnsw_graph_is_an_artifact_error(synthetic_corpus, tmp_path):
    pytest.importorskip("hnswlib")
    from abstractor_widgets.index import SimilarityIndex

    ab = Abstractor.train(synthetic_corpus, 4, passes=2, progress=False, no_above=0.9, lexical=False)
    ab.index = SimilarityIndex(ab.model.doc_topics_, metric=ab.index.metric, backend="hnsw")
    path = ab.save(tmp_path / "ann")
    graph = path / "ann.hnsw"
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="checksum"):
        Abstractor.load(path)
