"""The ranking object (abstractor_widgets/ranking.py): methods, signals, fusion, validation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from abstractor_widgets.index import SimilarityIndex
from abstractor_widgets.lexical import LexicalIndex
from abstractor_widgets.ranking import DEFAULT_PARAMS, METHODS, HybridParams, Query, Ranker, fuse


def hybrid(index, lexical, topics, row, n, exclude=(), params=DEFAULT_PARAMS):
    """The hybrid ranking of one query, validated as the facade does."""
    ranker = Ranker(index, lexical, params)
    return ranker.rank(Query(np.asarray(topics, dtype=np.float32), row, tuple(exclude)), ranker.check_n(n, minimum=0))


@pytest.fixture(scope="module")
def toy():
    """Six documents: two topics, words that overlap within a topic."""
    words = [
        ["graph", "node", "edge", "network"],
        ["graph", "node", "kernel"],
        ["graph", "edge", "spectral"],
        ["image", "pixel", "network"],
        ["image", "pixel", "segmentation"],
        ["protein", "cell"],
    ]
    topics = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.2, 0.8], [0.1, 0.9], [0.5, 0.5]], dtype=np.float32)
    lexical = LexicalIndex(min_df=1, max_df=1.0, n_components=3).fit(words)
    return words, topics, lexical, SimilarityIndex(topics)


def test_hybrid_scores_sorted_in_unit_interval(toy):
    words, topics, lexical, index = toy
    flat = LexicalIndex(min_df=1, max_df=1.0, n_components=0).fit(words)
    for params, lex in itertools.product(
        (DEFAULT_PARAMS, HybridParams(pool=2, topic_weight=0.0, semantic_weight=0.0), HybridParams(topic_weight=1.0, semantic_weight=0.0),
         HybridParams(semantic_weight=1.0, topic_weight=0.0), HybridParams(feedback_docs=2, feedback_weight=1.0),
         HybridParams(feedback_docs=0)),
        (lexical, flat),
    ):
        for q in range(len(words)):
            ranked = hybrid(index, lex, topics[q], lex.row(q), 4, exclude=(q,), params=params)
            scores = [s for _, s in ranked]
            assert all(0.0 <= s <= 1.0 for s in scores)
            assert scores == sorted(scores, reverse=True)
            assert q not in [r for r, _ in ranked]
            assert len({r for r, _ in ranked}) == len(ranked) == 4  # topic ranking fills up to n


def test_hybrid_combines_signals(toy):
    words, topics, lexical, index = toy
    ranked = hybrid(index, lexical, topics[0], lexical.row(0), 2, exclude=(0,))
    assert {r for r, _ in ranked} == {1, 2}
    # with only the lexical signal, the score is the lexical score
    only_lexical = HybridParams(topic_weight=0.0, semantic_weight=0.0)
    ranked = hybrid(index, lexical, topics[0], lexical.row(0), 1, exclude=(0,), params=only_lexical)
    assert ranked[0][1] == pytest.approx(float(lexical.scores(lexical.row(0))[ranked[0][0]]), rel=1e-5)
    # with only the topic signal, the score is the Hellinger similarity
    only_topic = HybridParams(topic_weight=1.0, semantic_weight=0.0, feedback_docs=0)
    ranked = hybrid(index, lexical, topics[0], lexical.row(0), 1, exclude=(0,), params=only_topic)
    expected = index.query(topics[0], n=1, exclude_rows=(0,))[0]
    assert ranked[0][0] == expected[0] and ranked[0][1] == pytest.approx(expected[1], rel=1e-5)
    # with only the semantic signal, the score is the cosine of the semantic vectors
    only_semantic = HybridParams(topic_weight=0.0, semantic_weight=1.0, feedback_docs=0)
    row, score = hybrid(index, lexical, topics[0], lexical.row(0), 1, exclude=(0,), params=only_semantic)[0]
    assert score == pytest.approx(max(0.0, float(lexical.vectors_[row] @ lexical.embed(lexical.row(0)))), abs=1e-5)


def test_hybrid_fallbacks(toy):
    words, topics, lexical, index = toy
    no_words = lexical.transform_query(["unknown"])
    ranked = hybrid(index, lexical, topics[3], no_words, 3)
    assert [r for r, _ in ranked] == [r for r, _ in index.query(topics[3], n=3)]  # topics only
    assert hybrid(index, lexical, np.zeros(2), no_words, 3) == []  # nothing to go on
    assert hybrid(index, lexical, topics[0], lexical.row(0), 0) == []
    everything = hybrid(index, lexical, topics[0], lexical.row(0), 100, exclude=(0,))
    assert len(everything) == len(words) - 1
    with pytest.raises(ValueError):
        Ranker(SimilarityIndex(topics[:3]), lexical)
    with pytest.raises(TypeError):
        hybrid(index, lexical, topics[0], lexical.row(0), "3")


def test_rank_by_method(toy):
    words, topics, lexical, index = toy
    assert set(METHODS) == {"hybrid", "lexical", "lda"}
    ranker = Ranker(index, lexical)
    query = Query(topics[0], lexical.row(0), (0,))
    assert ranker.rank(Query(topics[0], None, (0,)), 3, "lda") == index.query(topics[0], n=3, exclude_rows=(0,))
    lex = ranker.rank(query, 3, "lexical")
    assert [r for r, _ in lex] == lexical.top(lexical.row(0), 3, exclude_rows=(0,))[0].tolist()
    assert ranker.rank(Query(topics[0], lexical.row(0)), 3) == hybrid(index, lexical, topics[0], lexical.row(0), 3)
    with pytest.raises(ValueError, match="method"):
        ranker.check_method("bm25")
    topics_only = Ranker(index)
    assert topics_only.methods == ("lda",) and topics_only.default_method == "lda"
    with pytest.raises(ValueError, match="lexical index"):
        topics_only.check_method("hybrid")
    with pytest.raises(ValueError, match="lexical row"):
        topics_only.rank(Query(topics[0]), 3, "hybrid")


def test_validation_happens_once_in_check_n_and_check_method(toy):
    words, topics, lexical, index = toy
    ranker = Ranker(index, lexical)
    assert ranker.check_method(None) == "hybrid" and ranker.methods == METHODS
    assert ranker.check_n(3) == 3 and ranker.check_n(1000) == len(words)  # clamped to the corpus
    assert ranker.check_n(0, minimum=0) == 0
    with pytest.raises(ValueError, match="at least 1"):
        ranker.check_n(0)
    for bad in ("3", 2.0, True, None):
        with pytest.raises(TypeError):
            ranker.check_n(bad)


def test_query_building_and_explain(toy):
    words, topics, lexical, index = toy
    ranker = Ranker(index, lexical)
    query = ranker.query(topics[0], words=["graph", "edge", "unknown"])
    assert query.lexical_row.nnz == 2 and ranker.has_words(query)
    assert ranker.query(topics[0], words=["graph"], method="lda").lexical_row is None
    assert not ranker.has_words(ranker.query(topics[0], words=["unknown"]))
    own = ranker.query_for_row(2, topics[2])
    assert own.exclude_rows == (2,) and 2 not in [r for r, _ in ranker.rank(own, 5)]
    explained = ranker.explain(query, [0, 2, 5])
    assert explained[0][:2] and set(explained[0]) <= {"graph", "edge"} and set(explained[1]) <= {"graph", "edge"}
    assert explained[2] == []  # document 5 shares no word
    assert ranker.explain(Query(topics[0]), [0, 1]) == [[], []]


def test_params_validation_and_fuse():
    with pytest.raises(ValueError):
        HybridParams(pool=0)
    with pytest.raises(ValueError):
        HybridParams(topic_weight=1.5)
    with pytest.raises(ValueError):
        HybridParams(feedback_docs=-1)
    with pytest.raises(ValueError):
        HybridParams(feedback_weight=-0.1)
    with pytest.raises(ValueError):
        HybridParams(topic_weight=0.6, semantic_weight=0.6)
    assert HybridParams().with_(pool=7).pool == 7
    assert set(DEFAULT_PARAMS.to_dict()) == {"pool", "topic_weight", "semantic_weight", "feedback_docs", "feedback_weight",
                                             "static_weight", "static_candidates"}
    assert DEFAULT_PARAMS.lexical_weight == pytest.approx(1 - DEFAULT_PARAMS.topic_weight - DEFAULT_PARAMS.semantic_weight)
    params = HybridParams(topic_weight=0.25, semantic_weight=0.25, feedback_docs=2, feedback_weight=0.5)
    signals = {"lexical": np.array([1.0, 0.0]), "topic": np.array([0.0, 1.0]), "topic_feedback": np.array([1.0, 1.0]),
               "semantic": np.array([0.5, 0.0]), "semantic_feedback": np.array([0.5, 1.0])}
    np.testing.assert_allclose(fuse(signals, params), [0.5 + 0.25 * 0.5 + 0.25 * 0.5, 0.25 + 0.25 * 0.5])
    # without semantic vectors their weight goes to the lexical signal
    np.testing.assert_allclose(fuse(signals, params, has_semantic=False), [0.75 + 0.25 * 0.5, 0.25])
    # no feedback documents: the feedback signals are ignored
    np.testing.assert_allclose(fuse(signals, params.with_(feedback_docs=0)), [0.5 + 0.125, 0.25])


def test_candidate_signals(toy):
    words, topics, lexical, index = toy
    sig = Ranker(index, lexical).signals(Query(topics[0], lexical.row(0), (0,)), pool=10, feedback_docs=2)
    rows = sig["rows"]
    assert 0 not in rows.tolist() and len(rows) == 3  # the documents sharing a word with document 0
    for name in ("lexical", "topic", "semantic", "topic_feedback", "semantic_feedback"):
        assert sig[name].shape == rows.shape and np.all((sig[name] >= 0) & (sig[name] <= 1))
    np.testing.assert_allclose(sig["topic"], index.scores(topics[0])[rows], rtol=1e-5)
    centroid = topics[rows[:2]].mean(axis=0)
    np.testing.assert_allclose(sig["topic_feedback"], index.scores(centroid)[rows], rtol=1e-4)


def test_topic_similarity_matches_index(toy):
    _, topics, _, index = toy
    rows = np.array([1, 4])
    expected = index.scores(topics[0])[rows]
    np.testing.assert_allclose(Ranker(index).topic_similarity(topics[0], rows), expected, rtol=1e-5)
    assert Ranker(index).topic_similarity(topics[0], np.array([], dtype=int)).shape == (0,)


def test_feedback_signals_equal_those_of_the_candidates(toy):
    words, topics, lexical, index = toy
    ranker = Ranker(index, lexical)
    sig = ranker.signals(Query(topics[0], lexical.row(0), (0,)), pool=10, feedback_docs=2)
    again = ranker.feedback(sig["rows"], 2)
    for name in ("topic_feedback", "semantic_feedback"):
        np.testing.assert_allclose(again[name], sig[name], rtol=1e-6)
