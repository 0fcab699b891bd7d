"""The Abstractor facade: queries, hits, documents, labels, bad input, and the real shared model."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from abstractor_widgets import Abstractor, Analysis
from abstractor_widgets.abstractor import MAX_TEXT_CHARS, SHARED_TOPIC_MIN
from abstractor_widgets.corpus import Document
from abstractor_widgets.lexical import display_term
from abstractor_widgets.store import read_manifest, verify_artifacts

# Words of conftest's synthetic vocabularies, which the synthetic model knows.
TOPICAL = "We cut the tissue, grasp it with an actuator and plan the navigation; translation comes later."
HIT_KEYS = {"id", "title", "score", "topics", "url", "abstract", "categories", "published", "shared_topics", "shared_terms"}


@pytest.fixture(scope="module")
def ab(synthetic_artifact) -> Abstractor:
    """The session's synthetic model, loaded once for read-only tests (labels are never edited here)."""
    return Abstractor.load(synthetic_artifact)


def assert_covers(text: str, spans: list[dict]) -> None:
    assert "".join(s["text"] for s in spans) == text
    position = 0
    for s in spans:
        assert s["start"] == position and s["end"] > s["start"]
        assert text[s["start"] : s["end"]] == s["text"]
        position = s["end"]
    assert position == len(text)


def assert_hits(ab: Abstractor, hits: list[dict], n: int) -> None:
    assert len(hits) == n
    assert len({h["id"] for h in hits}) == n
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    for hit in hits:
        assert set(hit) == HIT_KEYS
        doc = ab.document(hit["id"])
        assert hit["title"] == doc.title and hit["abstract"] == doc.text
        assert hit["categories"] == doc.categories and hit["published"] == doc.published
        assert hit["url"] == f"https://arxiv.org/abs/{hit['id']}"
        assert isinstance(hit["score"], float) and 0.0 <= hit["score"] <= 1.0
        assert len(hit["topics"]) == ab.n_topics and sum(hit["topics"]) == pytest.approx(1.0, abs=1e-3)
        strengths = []
        for shared in hit["shared_topics"]:
            assert set(shared) == {"topic", "query", "document"}
            assert 0 <= shared["topic"] < ab.n_topics
            assert shared["document"] == pytest.approx(hit["topics"][shared["topic"]], abs=1e-4)
            strengths.append(min(shared["query"], shared["document"]))
            assert strengths[-1] >= SHARED_TOPIC_MIN - 1e-4
        assert strengths == sorted(strengths, reverse=True)
        assert isinstance(hit["shared_terms"], list)


# -- topics and labels ---------------------------------------------------------------------
def test_topics_and_repr(ab):
    assert ab.n_topics == 4 and len(ab) == 240
    topics = ab.topics
    assert [t["id"] for t in topics] == [0, 1, 2, 3]
    for topic in topics:
        # unnamed topics show their three strongest terms (issue 15), not "Topic k"
        assert topic["label"] == " · ".join(term for term, _ in topic["terms"][:3])
        assert topic["terms"] and all(isinstance(term, str) and isinstance(w, float) for term, w in topic["terms"])
    assert repr(ab).startswith("Abstractor(4 topics, 240 documents from ")


def test_label_persists_across_reload(synthetic_abstractor):
    synthetic_abstractor.label_topic(2, "Robots and grippers")
    assert synthetic_abstractor.topics[2]["label"] == "Robots and grippers"
    assert read_manifest(synthetic_abstractor.path)["labels"][2] == "Robots and grippers"
    verify_artifacts(synthetic_abstractor.path)
    reloaded = Abstractor.load(synthetic_abstractor.path)
    assert reloaded.topics[2]["label"] == "Robots and grippers"
    assert read_manifest(synthetic_abstractor.path)["labels"] == ["Topic 0", "Topic 1", "Robots and grippers", "Topic 3"]
    others = [t for t in reloaded.topics if t["id"] != 2]  # unnamed: shown by their terms
    assert all(t["label"] == " · ".join(term for term, _ in t["terms"][:3]) for t in others)


def test_bad_labels_are_rejected_and_not_saved(synthetic_abstractor):
    with pytest.raises(IndexError):
        synthetic_abstractor.label_topic(9, "nope")
    with pytest.raises(ValueError):
        synthetic_abstractor.label_topic(0, "")
    assert read_manifest(synthetic_abstractor.path)["labels"] == [f"Topic {k}" for k in range(4)]


def test_save_to_a_new_place_moves_label_storage(synthetic_abstractor, tmp_path):
    out = synthetic_abstractor.save(tmp_path / "elsewhere")
    assert synthetic_abstractor.path == out
    synthetic_abstractor.label_topic(0, "Moved")
    assert Abstractor.load(out).topics[0]["label"] == "Moved"
    assert Abstractor.load(out).manifest["corpus"]["size"] == 240


# -- queries -----------------------------------------------------------------------------------
def test_colorize_covers_text_and_marks_known_words(ab):
    spans = ab.colorize(TOPICAL)
    assert_covers(TOPICAL, spans)
    assert spans.reason is None
    known = set(ab.model.dictionary_.token2id)
    for s in spans:
        words = ab.model.preprocessor_.words(s["text"])
        if s["topic"] is None:
            assert not set(words) & known
        else:
            assert len(words) == 1 and words[0] in known


def test_document_topics_sum_to_one(ab):
    mix = ab.document_topics("tissue tissue translation grasp")
    assert mix.shape == (4,) and mix.sum() == pytest.approx(1.0, abs=1e-5)
    assert not ab.document_topics("nothing topical here").any()


def test_analyze_runs_one_inference_for_everything(synthetic_abstractor):
    ab = synthetic_abstractor
    text = "tissue translation grasp navigation actuator"
    calls = []
    inference = ab.model.lda_.inference

    def counting(*args, **kwargs):
        calls.append(1)
        return inference(*args, **kwargs)

    ab.model.lda_.inference = counting
    analysis = ab.analyze(text, n=5)
    assert len(calls) == 1
    assert isinstance(analysis, Analysis)
    assert analysis.reason is None and analysis.elapsed_ms >= 0
    assert_covers(text, analysis.spans)
    assert len(analysis.doc_topics) == 4 and sum(analysis.doc_topics) == pytest.approx(1.0, abs=1e-4)
    assert_hits(ab, analysis.similar, 5)
    assert analysis.spans == ab.colorize(text)
    np.testing.assert_allclose(analysis.doc_topics, ab.document_topics(text), atol=1e-5)
    assert analysis.similar == list(ab.similar(text, n=5))


def test_analyze_with_n_zero_skips_the_search(ab):
    analysis = ab.analyze("tissue translation", n=0)
    assert analysis.similar == [] and analysis.reason is None and analysis.spans


def test_similar_hits_have_every_field(ab):
    hits = ab.similar(TOPICAL, n=5)
    assert hits.reason is None
    assert_hits(ab, hits, 5)


def test_similar_to_excludes_the_document_itself(ab):
    doc_id = ab.documents[7].id
    hits = ab.similar_to(doc_id, n=10)
    assert_hits(ab, hits, 10)
    assert doc_id not in [h["id"] for h in hits]
    with pytest.raises(KeyError, match="unknown document id"):
        ab.similar_to("0000.00000")


def test_similar_accepts_a_document_id(ab):
    """docs/architecture.md: ``ab.similar(text_or_doc_id, n=5)``."""
    doc_id = ab.documents[7].id
    hits = ab.similar(doc_id, n=5)
    assert [h["id"] for h in hits] == [h["id"] for h in ab.similar_to(doc_id, n=5)]


def test_n_larger_than_the_corpus_is_clamped(ab):
    assert len(ab.similar(TOPICAL, n=10_000)) == len(ab) == 240
    assert len(ab.similar_to(ab.documents[0].id, n=10_000)) == len(ab) - 1
    assert len(ab.analyze(TOPICAL, n=np.int64(3)).similar) == 3


@pytest.mark.parametrize("n", [0, -1, -100])
def test_n_not_positive_raises_value_error_for_similar(ab, n):
    with pytest.raises(ValueError, match="n must be"):
        ab.similar(TOPICAL, n=n)


@pytest.mark.parametrize("n", [0, -1])
def test_n_not_positive_raises_value_error_for_similar_to(ab, n):
    with pytest.raises(ValueError, match="n must be"):
        ab.similar_to(ab.documents[0].id, n=n)


@pytest.mark.parametrize("n", [2.0, "5", None, True])
def test_n_not_an_integer_raises_type_error(ab, n):
    with pytest.raises(TypeError, match="n must be an integer"):
        ab.similar(TOPICAL, n=n)


# -- documents -----------------------------------------------------------------------------------
def test_document_by_id(ab, synthetic_corpus):
    expected = synthetic_corpus[12]
    assert ab.document(expected.id) == expected
    assert isinstance(ab.document(expected.id), Document)
    with pytest.raises(KeyError, match="unknown document id"):
        ab.document("9999.99999")
    with pytest.raises(TypeError, match="doc_id must be a str"):
        ab.document(12)


def test_random_document_is_reproducible_with_a_seed(ab):
    assert ab.random_document(seed=3) == ab.random_document(seed=3)
    assert len({ab.random_document(seed=s).id for s in range(20)}) > 1
    assert isinstance(ab.random_document(), Document)
    assert ab.random_document(seed=3).id in {d.id for d in (ab.documents[i] for i in range(len(ab)))}


# -- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["", " ", "   \n\t  \r\n"])
def test_empty_or_whitespace_text_gives_an_empty_result_with_a_reason(ab, text):
    analysis = ab.analyze(text)
    assert analysis.similar == [] and analysis.reason and "empty" in analysis.reason
    assert_covers(text, analysis.spans)
    assert all(s["topic"] is None for s in analysis.spans)
    assert analysis.doc_topics == [0.0] * 4
    hits = ab.similar(text)
    assert hits == [] and hits.reason == analysis.reason
    assert ab.colorize(text).reason == analysis.reason


@pytest.mark.parametrize("text", ["The of and with we this that.", "Zorblax quuxification flimflam.", "12 345 6.7 [8] $x^2$"])
def test_stopwords_or_unknown_words_only_give_a_reason_not_an_exception(ab, text):
    hits = ab.similar(text)
    assert hits == [] and hits.reason and "topical" in hits.reason
    spans = ab.colorize(text)
    assert_covers(text, spans)
    assert all(s["topic"] is None for s in spans) and spans.reason == hits.reason
    assert not ab.document_topics(text).any()


def test_text_at_the_input_limit_completes_and_is_covered(ab, synthetic_corpus):
    text = ""
    i = 0
    while len(text) < MAX_TEXT_CHARS:
        text += synthetic_corpus.texts[i % len(synthetic_corpus)] + "\n\n"
        i += 1
    text = text[:MAX_TEXT_CHARS]
    analysis = ab.analyze(text, n=5)
    assert_covers(text, analysis.spans)
    assert sum(s["topic"] is not None for s in analysis.spans) > 1000
    assert len(analysis.similar) == 5


def test_text_over_the_limit_is_refused(ab):
    with pytest.raises(ValueError, match="limit"):
        ab.colorize("x" * (MAX_TEXT_CHARS + 1))


@pytest.mark.parametrize("bad", [None, 42, 3.5, b"tissue", ["tissue"], {"text": "tissue"}])
def test_non_string_input_raises_type_error_with_a_message(ab, bad):
    for method in (ab.colorize, ab.similar, ab.analyze, ab.document_topics):
        with pytest.raises(TypeError, match=rf"text must be a str, not {type(bad).__name__}"):
            method(bad)


TRICKY = {
    "latex": r"We bound $\|\nabla f(x)\|_2 \le \epsilon$ and $$\sum_{i=1}^n \alpha_i = 1$$ via \cite{x} "
             r"\textbf{tissue} \(\mathcal{O}(n)\) [3, 4] with translation.",
    "french": "Nous étudions la segmentation d'images et la traduction automatique des protéines à grande échelle.",
    "german": "Wir untersuchen Übersetzung, Roboter-Greifer und Gewebeproben mit größerer Genauigkeit.",
    "chinese": "我们研究图像分割和机器翻译。本文提出了一种新的蛋白质结构预测方法。",
    "russian": "Мы изучаем сегментацию изображений и машинный перевод белков.",
    "emoji": "🤖 grasp 🧬 tissue 😀 translation",
    "hostile_script": "<script>alert(1)</script> tissue translation",
    "hostile_img": '<img src=x onerror=alert(1)> grasp "quotes" & ampersands </div>',
}


@pytest.mark.parametrize("name", sorted(TRICKY))
def test_tricky_and_foreign_text_is_covered_verbatim(ab, name):
    text = TRICKY[name]
    analysis = ab.analyze(text, n=3)
    assert_covers(text, analysis.spans)
    assert len(analysis.similar) in (0, 3)
    assert (analysis.reason is None) == bool(analysis.similar)


def test_latex_words_inside_math_are_not_topical(ab):
    text = "$tissue translation$ and \\(grasp\\) but tissue"
    topical = [s for s in ab.colorize(text) if s["topic"] is not None]
    assert [(s["start"], s["text"]) for s in topical] == [(text.rindex("tissue"), "tissue")]


def test_hostile_markup_is_returned_verbatim_not_escaped(ab):
    for name in ("hostile_script", "hostile_img"):
        text = TRICKY[name]
        spans = ab.colorize(text)
        joined = "".join(s["text"] for s in spans)
        assert joined == text
        assert "&lt;" not in joined and "&amp;" not in joined
    assert spans[0]["text"].startswith("<img src=x onerror=alert(1)>")


# -- the real shared model (K=12, 3,000 arXiv abstracts) ---------------------------------------------
@pytest.mark.slow
def test_shared_held_out_abstracts_get_several_topics(shared_abstractor, held_out_texts):
    counts = []
    for text in held_out_texts[:40]:
        spans = shared_abstractor.colorize(text)
        assert_covers(text, spans)
        counts.append(len({s["topic"] for s in spans if s["topic"] is not None}))
    assert statistics.median(counts) >= 3, counts
    assert sum(c >= 3 for c in counts) >= 0.8 * len(counts), counts


@pytest.mark.slow
def test_shared_similar_returns_five_distinct_hits_in_decreasing_order(shared_abstractor, held_out_texts):
    assert shared_abstractor.default_method == "hybrid"
    words_of = shared_abstractor.model.preprocessor_.words
    for text in held_out_texts[:10]:
        query_terms = {display_term(w) for w in words_of(text)}
        for method in ("hybrid", "lexical", "lda"):
            hits = shared_abstractor.similar(text, n=5, method=method)
            assert hits.reason is None
            assert_hits(shared_abstractor, hits, 5)
            if method == "lda":
                assert hits[0]["score"] > 0.5  # 1 - Hellinger
                assert all(hit["shared_terms"] == [] for hit in hits)
                continue
            for hit in hits:
                # the key terms are words of both texts (title or abstract of the hit)
                doc = shared_abstractor.document(hit["id"])
                doc_terms = {display_term(w) for w in words_of(doc.title) + words_of(doc.text)}
                assert hit["shared_terms"], hit["id"]
                assert set(hit["shared_terms"]) <= query_terms & doc_terms
        assert [h["id"] for h in shared_abstractor.similar(text, n=5)] == [h["id"] for h in hits_of(shared_abstractor, text)]


def hits_of(ab: Abstractor, text: str) -> list[dict]:
    return ab.similar(text, n=5, method="hybrid")


@pytest.mark.slow
@pytest.mark.parametrize("which", [0, 1, 2, 3, 4])
def test_shared_training_abstract_finds_itself_first(shared_abstractor, which):
    # Documents with a mixed topic profile: an abstract that is ~98% one topic shares its mixture
    # with hundreds of others (to float32 precision), so "itself first" would be a coin toss.
    mixtures = np.asarray(shared_abstractor.model.doc_topics_)
    mixed = np.flatnonzero(mixtures.max(axis=1) < 0.8)
    assert len(mixed) >= 100
    row = int(mixed[[0, len(mixed) // 4, len(mixed) // 2, 3 * len(mixed) // 4, -1][which]])
    doc = shared_abstractor.documents[row]
    hits = shared_abstractor.similar(doc.text, method="lda")
    assert hits[0]["id"] == doc.id
    assert hits[0]["score"] == pytest.approx(1.0, abs=0.01)
    # hybrid (default): the paper was indexed with its title too, so its abstract alone is
    # a near-perfect rather than a perfect lexical and semantic match, far ahead of the rest
    hits = shared_abstractor.similar(doc.text)
    assert hits[0]["id"] == doc.id
    assert hits[0]["score"] >= 0.85 and hits[0]["score"] - hits[1]["score"] >= 0.1, hits[:2]
    assert len(hits[0]["shared_terms"]) == 5


@pytest.mark.slow
def test_shared_similar_to_excludes_itself(shared_abstractor):
    doc = shared_abstractor.documents[42]
    hits = shared_abstractor.similar_to(doc.id, n=5)
    assert_hits(shared_abstractor, hits, 5)
    assert doc.id not in [h["id"] for h in hits]


def test_phrases_are_off_by_default(shared_abstractor):
    assert shared_abstractor.model.preprocessor_.phrases is False
    assert shared_abstractor.model.preprocessor_.phrases_ is None


@pytest.mark.slow
def test_shared_phrase_span_covers_both_words(shared_phrase_abstractor):
    shared_abstractor = shared_phrase_abstractor
    model = shared_abstractor.model
    tokenizer = model.preprocessor_.tokenizer
    phrases = sorted(
        w for w in model.dictionary_.token2id
        if w.count("_") == 1 and all(tokenizer.normalize(part) == part for part in w.split("_"))
    )
    assert phrases, "the shared model learned no phrase"
    phrase = phrases[0]
    first, second = phrase.split("_")
    text = f"Results on {first}  {second} today."
    spans = shared_abstractor.colorize(text)
    assert_covers(text, spans)
    span = next(s for s in spans if s["topic"] is not None and s["text"].startswith(first))
    assert span["text"] == f"{first}  {second}"
    assert (span["start"], span["end"]) == (text.index(first), text.index(second) + len(second))


@pytest.mark.slow
@pytest.mark.parametrize("which", ["default", "phrases"])
def test_shared_training_and_query_pipelines_agree(shared_abstractor, shared_phrase_abstractor, shared_frame, which):
    pre = (shared_abstractor if which == "default" else shared_phrase_abstractor).model.preprocessor_
    texts = shared_frame["abstract"].iloc[:60].tolist()
    assert pre.transform(texts, n_jobs=1) == [pre.words(t) for t in texts]
    assert any("_" in w for words in pre.transform(texts, n_jobs=1) for w in words) == (which == "phrases")
