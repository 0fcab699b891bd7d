"""Hybrid ranking and the relevance harness (benchmarks/relevance.py)."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import benchmarks.relevance as harness
from abstractor_widgets.ranking import Query, Ranker

ROOT = Path(__file__).resolve().parent.parent


# -- harness metrics -----------------------------------------------------------------------
def test_precision_at_k():
    assert harness.precision_at_k("cs.CV", ["cs.CV"] * 10) == 1.0
    assert harness.precision_at_k("cs.CV", ["cs.CV", "cs.LG"] * 5) == 0.5
    assert harness.precision_at_k("cs.CV", ["cs.CV"] * 3) == 0.3  # missing neighbours are misses
    assert harness.precision_at_k("cs.CV", ["cs.CV"] * 12 + ["x"]) == 1.0  # only the first k count
    assert harness.precision_at_k("a", ["a", "b", "a"], k=2) == 0.5
    with pytest.raises(ValueError):
        harness.precision_at_k("a", [], k=0)


def test_jaccard():
    a, b = frozenset({"cs.CV", "cs.LG"}), frozenset({"cs.LG", "stat.ML", "cs.AI"})
    assert harness.jaccard(a, b) == pytest.approx(1 / 4)
    assert harness.jaccard(a, a) == 1.0
    assert harness.jaccard(frozenset(), frozenset()) == 0.0
    assert harness.mean_jaccard(a, [a, b], k=2) == pytest.approx((1 + 0.25) / 2)
    assert harness.mean_jaccard(a, [a], k=4) == pytest.approx(0.25)


def test_chance_baselines():
    labels = ["a", "a", "a", "b"]
    # query 0 (a): 2 of the 3 others are a; query 3 (b): none
    assert harness.chance_precision(labels, [0]) == pytest.approx(2 / 3)
    assert harness.chance_precision(labels, [0, 3]) == pytest.approx(1 / 3)
    sets = [frozenset({"a"}), frozenset({"a", "b"}), frozenset({"b"})]
    assert harness.chance_jaccard(sets, [0]) == pytest.approx((0.5 + 0.0) / 2)
    # exact chance = mean over all rankings: brute force on a random toy
    rng = np.random.default_rng(0)
    labels = [str(x) for x in rng.integers(0, 3, size=30)]
    brute = np.mean([np.mean([labels[j] == labels[q] for j in range(30) if j != q]) for q in range(30)])
    assert harness.chance_precision(labels, list(range(30))) == pytest.approx(brute)


def test_query_counted_leaves_the_query_in(synthetic_corpus, synthetic_abstractor):
    """Ranking with the query kept: the measure equals (1 + hits among the next 9) / 10
    whenever the query ranks itself first, and the method's exclusion is restored."""
    report_universe = harness.build_universe(synthetic_corpus, synthetic_abstractor.model,
                                             *harness.model_words(synthetic_abstractor.model, synthetic_corpus, None, cache=False))
    lda = harness.LdaMethod(report_universe, synthetic_abstractor.model)
    queries = np.arange(30)
    out = harness.query_counted(lda, report_universe, queries)
    assert lda.exclude_query is True
    excluded = lda.rank(queries.tolist())
    labels = report_universe.labels
    lda.exclude_query = False
    kept = lda.rank(queries.tolist())
    lda.exclude_query = True
    first = [q for q in queries if kept[q][0] == q]
    assert out["query_ranked_first"] == pytest.approx(len(first) / len(queries)) and len(first) >= 20
    # (synthetic twins with the same mixture may outrank the query: ties go by row)
    assert all(q not in excluded[q] for q in queries) and all(q in kept[q] for q in queries)
    expected = np.mean([sum(labels[r] == labels[q] for r in kept[q][:10]) / 10 for q in queries])
    assert out["p_at_10_query_counted"] == pytest.approx(expected)
    assert out["p_at_10_query_counted"] >= harness.summarize(excluded, labels, report_universe.sets)["p_at_10"]


def test_summarize_and_primary():
    labels = ["a", "a", "b", "b"]
    sets = [frozenset({"a"}), frozenset({"a", "x"}), frozenset({"b"}), frozenset({"b"})]
    out = harness.summarize({0: [1, 2], 2: [3, 0]}, labels, sets, k=2)
    assert out["p_at_10"] == pytest.approx(0.5) and out["n_queries"] == 2
    assert out["jaccard"] == pytest.approx(((0.5 + 0) / 2 + (1 + 0) / 2) / 2)
    assert harness.per_category({0: [1, 2], 2: [3, 0]}, labels, k=2) == {"a": {"p_at_10": 0.5, "n": 1}, "b": {"p_at_10": 0.5, "n": 1}}
    assert harness.primary_category("cs.RO cs.LG") == "cs.RO" and harness.primary_category("") == ""
    assert harness.is_minority("cs.RO") and not harness.is_minority("cs.LG") and not harness.is_minority("")


# -- the harness end to end ----------------------------------------------------------------
def _check_report(report):
    full = report["full"]
    for name in ("tfidf-ref", "hybrid-ref-50/50", "lda", "lexical", "hybrid"):
        res = full[name]
        assert 0.0 <= res["p_at_10"] <= 1.0 and 0.0 <= res["jaccard"] <= 1.0
        assert res["n_queries"] == report["queries"]["eval"]
        assert res["query_ms_p50"] > 0
        # the query left in the index counts as a hit when it is retrieved
        assert 0.0 <= res["query_ranked_first"] <= 1.0
        assert res["p_at_10_query_counted"] >= res["p_at_10"]
    assert 0.0 <= full["chance"]["p_at_10"] <= 1.0
    e2e = report["end_to_end"]
    assert e2e["total_ms_p50"] > 0 and e2e["tfidf_ref_ms_p50"] > 0
    assert e2e["hybrid_over_tfidf"] == pytest.approx(e2e["hybrid_ms_p50"] / e2e["tfidf_ref_ms_p50"], rel=1e-2)
    assert "| hybrid |" in harness.format_table(report)


def test_harness_on_synthetic_corpus(synthetic_corpus, synthetic_abstractor):
    report = harness.run(synthetic_corpus, synthetic_abstractor, n_eval=60, n_dev=0, subset=120, timing_queries=5,
                         e2e_texts=5, cache=False, lexical_params={"min_df": 2, "max_df": 0.9, "title_weight": 0.0, "n_components": 4},
                         all_queries=True)
    _check_report(report)
    for name, res in report["population"].items():  # every paper as a query, both conventions
        assert res["p_at_10_query_counted"] >= res["p_at_10"] > report["full"]["chance"]["p_at_10"], name
        assert res["sample_mean_p5"] <= res["p_at_10"] <= res["sample_mean_p95"]
    # four well separated synthetic topics: every method beats chance by far
    chance = report["full"]["chance"]["p_at_10"]
    for name in ("lda", "lexical", "hybrid"):
        assert report["full"][name]["p_at_10"] > chance + 0.3
    assert report["subset"]["hybrid"]["n_queries"] == 60
    assert report["full"]["hybrid"]["minority_n"] == 120  # cs.RO and q-bio.BM papers


def _write_embeddings(path, ids, vectors, query_ms=42.0):
    np.savez(path, ids=np.asarray([str(i) for i in ids]), vectors=vectors.astype(np.float32), model=np.asarray("toy"),
             encode_seconds=np.asarray(1.0), query_ms_p50=np.asarray(query_ms))


def test_harness_embedding_anchor_aligns_by_id(synthetic_corpus, synthetic_abstractor, tmp_path):
    """Embeddings from benchmarks/embed.py are matched to papers by id, whatever their order:
    vectors that encode each paper's primary category rank by category (P@10 = 1)."""
    frame = synthetic_corpus.frame
    papers = frame[frame["categories"].str.strip() != ""]
    labels = [harness.primary_category(c) for c in papers["categories"]]
    names = sorted(set(labels))
    rng = np.random.default_rng(0)
    vectors = np.eye(len(names))[[names.index(label) for label in labels]] + rng.normal(0, 0.01, (len(labels), len(names)))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    order = rng.permutation(len(labels))  # stored in another order than the corpus
    path = tmp_path / "emb.npz"
    _write_embeddings(path, papers["id"].to_numpy()[order], vectors[order])
    report = harness.run(synthetic_corpus, synthetic_abstractor, n_eval=60, n_dev=0, subset=120, timing_queries=3,
                         e2e_texts=0, cache=False, embeddings=path,
                         lexical_params={"min_df": 2, "max_df": 0.9, "title_weight": 0.0, "n_components": 4})
    for part in ("full", "subset"):
        res = report[part]["embeddings"]
        assert res["p_at_10"] == pytest.approx(1.0) and res["minority_p_at_10"] == pytest.approx(1.0)
    assert report["full"]["embeddings"]["query_ms_p50"] == 42.0  # the encoding time embed.py measured
    assert report["embeddings"]["model"] == "toy"
    assert "| embeddings |" in harness.format_table(report)

    # the re-ranking experiment (dev split): w = 0 is the hybrid itself, for either source
    rerank = harness.run(synthetic_corpus, synthetic_abstractor, n_eval=40, n_dev=60, cache=False, embeddings=path,
                         rerank=True, lexical_params={"min_df": 2, "max_df": 0.9, "title_weight": 0.0, "n_components": 4})
    rows = {(r["source"], r["weight"]): r for r in rerank["embedding_rerank"]}
    assert set(rows) == {(s, w) for s in ("feedback", "query") for w in (0.0, 0.1, 0.3, 0.5, 0.7)}
    assert rows["feedback", 0.0]["dev_p_at_10"] == rows["query", 0.0]["dev_p_at_10"]
    assert rows["query", 0.7]["dev_p_at_10"] == pytest.approx(1.0)  # category vectors dominate
    assert rows["query", 0.7]["dev_p_at_10"] >= rows["query", 0.0]["dev_p_at_10"]
    with pytest.raises(ValueError, match="needs embeddings"):
        harness.run(synthetic_corpus, synthetic_abstractor, n_eval=20, n_dev=20, cache=False, rerank=True)

    _write_embeddings(tmp_path / "short.npz", papers["id"].to_numpy()[1:], vectors[1:])
    with pytest.raises(ValueError, match="no embedding"):
        harness.run(synthetic_corpus, synthetic_abstractor, n_eval=20, n_dev=0, subset=0, timing_queries=0, e2e_texts=0,
                    cache=False, embeddings=tmp_path / "short.npz")
    _write_embeddings(tmp_path / "raw.npz", papers["id"].to_numpy(), vectors * 3)
    with pytest.raises(ValueError, match="normalised"):
        harness.load_embeddings(tmp_path / "raw.npz")


def test_embed_script_writes_what_the_harness_reads(tmp_path, monkeypatch):
    """benchmarks/embed.py (run elsewhere, with torch) and the harness agree on the file:
    checked with a stand-in for sentence-transformers."""
    import types

    import pandas as pd

    class FakeModel:
        max_seq_length = 256

        def __init__(self, path, device=None):
            self.path = path

        def encode(self, texts, normalize_embeddings=False, **_kwargs):
            rng = np.random.default_rng(len(texts))
            vectors = rng.normal(size=(len(texts), 8))
            return vectors / np.linalg.norm(vectors, axis=1, keepdims=True) if normalize_embeddings else vectors

    monkeypatch.setitem(sys.modules, "sentence_transformers", types.SimpleNamespace(SentenceTransformer=FakeModel))
    frame = pd.DataFrame({"id": ["a1", "a2", "a3", "a4"], "title": ["T1", "T2", "T3", "T4"],
                          "abstract": ["x " * 30, "y " * 30, "z " * 30, "w " * 30],
                          "categories": ["cs.RO", "", "cs.LG stat.ML", "cs.CV"]})
    frame.to_parquet(tmp_path / "corpus.parquet")
    from benchmarks import embed
    out = tmp_path / "emb.npz"
    assert embed.main(["--corpus", str(tmp_path / "corpus.parquet"), "--model", str(tmp_path / "minilm"),
                       "--out", str(out), "--timing-queries", "2"]) == 0
    rows, vectors, info = harness.load_embeddings(out)
    assert rows == {"a1": 0, "a3": 1, "a4": 2}  # papers without categories are not embedded
    assert vectors.shape == (3, 8) and vectors.dtype == np.float32
    assert info["model"] == "minilm" and info["query_ms_p50"] >= 0 and not list(tmp_path.glob("*.tmp*"))


def test_harness_tuning_on_synthetic_corpus(synthetic_corpus, synthetic_abstractor):
    grid = {"lexical": [{"min_df": 2, "max_df": 0.9, "title_weight": 0.0, "n_components": 4}], "pool": [10, 20],
            "topic_weight": [0.0, 0.5], "semantic_weight": [0.0, 0.5], "feedback_docs": [0, 3], "feedback_weight": [0.5]}
    report = harness.run(synthetic_corpus, synthetic_abstractor, n_eval=40, n_dev=60, cache=False, do_tune=True, tune_grid=grid)
    rows = report["tuning"]
    assert len(rows) == 2 * 2 * 2 * 2
    assert report["selected"] in rows
    assert all(0.0 <= r["dev_p_at_10"] <= 1.0 for r in rows)


def test_harness_quick_on_shared_slice(shared_frame, shared_abstractor):
    from abstractor_widgets.corpus import Corpus

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        corpus = Corpus.from_frame(shared_frame.iloc[: len(shared_abstractor)], name="shared-head")
    report = harness.run(corpus, shared_abstractor, n_eval=100, n_dev=0, subset=0, timing_queries=5, e2e_texts=5, cache=False)
    _check_report(report)
    full = report["full"]
    assert full["hybrid"]["p_at_10"] > full["chance"]["p_at_10"] + 0.08
    assert full["lexical"]["p_at_10"] > full["chance"]["p_at_10"] + 0.08
    for name in ("tfidf-ref", "lexical", "hybrid"):  # real abstracts: each is its own best match
        assert full[name]["query_ranked_first"] >= 0.9
        assert full[name]["p_at_10_query_counted"] > full[name]["p_at_10"]


def test_build_lexical_index_from_model(synthetic_corpus, synthetic_abstractor):
    """What Abstractor.train / update do with the lexical index, on the synthetic model."""
    from abstractor_widgets.lexical import build_lexical_index, display_term, words_for_update

    ab = synthetic_abstractor
    titles = [d.title for d in synthetic_corpus]
    lexical = build_lexical_index(ab.model, titles, texts=synthetic_corpus.texts, n_components=8, min_df=2, max_df=0.9)
    assert len(lexical) == len(ab) and lexical.title_weight == 1.0
    with pytest.raises(ValueError):
        build_lexical_index(ab.model, titles)  # a loaded model keeps no training words
    text = synthetic_corpus[0].text
    query = lexical.transform_query(ab.model.preprocessor_.words(text))
    topics = ab.model.document_topics(text)
    ranker = Ranker(ab.index, lexical)
    ranked = ranker.rank(Query(topics, query), 5)
    assert ranked[0][0] == 0  # the paper itself comes first for its own abstract
    for row, score in ranked:
        terms = [display_term(t) for t in lexical.shared_terms(query, row, k=5)]
        assert 1 <= len(terms) <= 5 and all("_" not in t for t in terms)
    # similar_to: the indexed paper's own row, itself excluded
    ranked = ranker.rank(ranker.query_for_row(3, ab.model.doc_topics_[3]), 5, "hybrid")
    assert 3 not in [r for r, _ in ranked] and len(ranked) == 5
    # online update: new documents are appended with the same recipe
    new = words_for_update(ab.model, lexical, ["A robot paper"], ["Robot grasping with a gripper and torque control."])
    assert lexical.add(new).tolist() == [len(ab)]
    query = lexical.transform_query(new[0])
    assert lexical.scores(query)[len(ab)] == pytest.approx(1.0, rel=1e-5)  # the new text against itself
    np.testing.assert_allclose(lexical.row(len(ab)).toarray(), query.toarray(), rtol=1e-6)
    assert lexical.vectors_.shape[0] == len(ab) + 1


def test_harness_static_embeddings_and_title_check(synthetic_corpus, synthetic_abstractor, tmp_path):
    """--static-model adds `static` and `hybrid+static`; --title-check ranks every method by MRR@10."""
    from synthetic_data import make_static_model

    static_dir = make_static_model(tmp_path / "static")
    report = harness.run(synthetic_corpus, synthetic_abstractor, n_eval=60, n_dev=0, subset=120, timing_queries=5,
                         e2e_texts=0, cache=False, static_model=static_dir, title_check=True,
                         lexical_params={"min_df": 2, "max_df": 0.9, "title_weight": 0.0, "n_components": 4})
    chance = report["full"]["chance"]["p_at_10"]
    for name in ("static", "hybrid+static"):
        assert report["full"][name]["p_at_10"] > chance + 0.3, name  # the toy vectors separate the topics
        assert report["subset"][name]["n_queries"] == 60
        assert report["full"][name]["query_ms_p50"] > 0
    assert report["static_model"]["dim"] == 16
    check = report["title_check"]
    assert check["queries"] == len(synthetic_corpus) and check["pool"] == len(synthetic_corpus)
    for name in ("tfidf-ref", "lda", "lexical", "hybrid", "static", "hybrid+static"):
        assert 0.0 <= check[name]["mrr_at_10"] <= check[name]["hit_at_10"] <= 1.0, name
    assert "title self-retrieval" in harness.format_table(report) and "| hybrid+static |" in harness.format_table(report)


def test_title_check_finds_a_title_that_is_its_abstract(synthetic_corpus, synthetic_abstractor):
    """MRR@10 is computed against each title's own abstract: a "title" that repeats its
    abstract is found first by the lexical methods (reciprocal rank 1)."""
    words, title_words = harness.model_words(synthetic_abstractor.model, synthetic_corpus, None, cache=False)
    universe = harness.build_universe(synthetic_corpus, synthetic_abstractor.model, words, title_words)
    q = int(harness.title_pool(universe, pool=len(universe))[0])
    universe.titles[q] = universe.texts[q]
    out = harness.title_retrieval(universe, synthetic_abstractor.model, None,
                                  {"min_df": 1, "max_df": 0.9, "n_components": 4}, n_queries=1, pool=len(universe))
    assert set(out) >= {"tfidf-ref", "lda", "lexical", "hybrid"} and "static" not in out
    assert out["lexical"]["mrr_at_10"] == 1.0 and out["tfidf-ref"]["mrr_at_10"] == 1.0
    assert out["queries"] == 1


def test_harness_static_tuning(synthetic_corpus, synthetic_abstractor, tmp_path):
    from synthetic_data import make_static_model

    report = harness.run(synthetic_corpus, synthetic_abstractor, n_eval=40, n_dev=60, cache=False, tune_static=True,
                         static_model=make_static_model(tmp_path / "static"),
                         lexical_params={"min_df": 2, "max_df": 0.9, "title_weight": 0.0, "n_components": 4})
    rows = report["static_tuning"]
    assert len(rows) == 7 * 3 * 2 and report["selected"] in rows
    assert {r["static_weight"] for r in rows} == {0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6}
