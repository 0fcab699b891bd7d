"""TopicModel: scikit-learn conventions, determinism, topics, coherence and inference."""

from __future__ import annotations

import inspect
import json
import math

import numpy as np
import pytest

from abstractor_widgets.model import TopicModel
from abstractor_widgets.store import load_artifacts
from abstractor_widgets.text import Preprocessor, Tokenizer

# The parameters conftest's synthetic_artifact is trained with (Abstractor.train(corpus, 4, passes=20, random_state=1)).
SYNTHETIC_PARAMS = dict(n_topics=4, passes=20, random_state=1, progress=False, no_above=0.9)  # as in conftest


@pytest.fixture(scope="module")
def fit_record(synthetic_corpus) -> tuple[TopicModel, set[str], object]:
    """A second, independent fit with the synthetic artifact's parameters (kept in memory).

    Returns the model, its attribute names before ``fit`` and what ``fit`` returned.
    """
    model = TopicModel(**SYNTHETIC_PARAMS)
    before = set(vars(model))
    returned = model.fit(synthetic_corpus.texts)
    return model, before, returned


@pytest.fixture(scope="module")
def fitted(fit_record) -> TopicModel:
    return fit_record[0]


@pytest.fixture(scope="module")
def saved_model(synthetic_artifact) -> TopicModel:
    return load_artifacts(synthetic_artifact)[0]


# -- scikit-learn conventions -------------------------------------------------------------
def test_init_only_stores_parameters():
    names = [p for p in inspect.signature(TopicModel).parameters]
    values = dict(n_topics=7, passes=3, iterations=11, chunksize=13, alpha="auto", eta=0.1, workers=None,
                  no_below=2, no_above=0.9, keep_n=100, random_state=5, preprocessor=Preprocessor(phrases=False),
                  n_jobs=1, progress=False)
    assert sorted(values) == sorted(names)
    model = TopicModel(**values)
    assert sorted(vars(model)) == sorted(names)
    for name, value in values.items():
        assert getattr(model, name) is value
    assert not [a for a in vars(TopicModel()) if a.endswith("_")]


def test_init_accepts_invalid_parameters_and_fit_rejects_them(synthetic_corpus):
    texts = synthetic_corpus.texts[:20]
    bad = [
        dict(n_topics=1), dict(n_topics=2.5), dict(n_topics="4"), dict(passes=0), dict(iterations=-1),
        dict(chunksize=0), dict(no_below=0), dict(no_above=0), dict(no_above=1.5), dict(workers=-1),
    ]
    for params in bad:
        model = TopicModel(**params)  # storing never raises
        with pytest.raises(ValueError, match=next(iter(params))):
            model.fit(texts)
        assert not hasattr(model, "lda_")


def test_fit_needs_two_string_documents_and_enough_words():
    with pytest.raises(ValueError, match="at least 2 documents"):
        TopicModel(2, progress=False).fit(["only one text about graphs"])
    with pytest.raises(TypeError, match="text 1 must be a str"):
        TopicModel(2, progress=False).fit(["graphs and networks", None, "more graphs"])
    with pytest.raises(ValueError, match="too few for 30 topics"):
        TopicModel(30, progress=False, workers=None).fit(["graph network", "graph robot", "network robot"] * 5)


def test_fit_returns_self_and_learned_attributes_end_with_underscore(fit_record, synthetic_corpus):
    model, before, returned = fit_record
    assert returned is model
    learned = set(vars(model)) - before
    assert learned >= {"preprocessor_", "dictionary_", "lda_", "labels_", "doc_topics_", "training_words_", "n_documents_"}
    assert all(name.endswith("_") and not name.startswith("_") for name in learned), learned
    assert model.n_documents_ == len(synthetic_corpus)
    assert model.doc_topics_.shape == (len(synthetic_corpus), 4) and model.doc_topics_.dtype == np.float32


def test_unfitted_model_raises_a_clear_error():
    model = TopicModel(3)
    for call in (lambda: model.topics(), lambda: model.transform(["x"]), lambda: model.colorize("x"),
                 lambda: model.set_label(0, "x"), lambda: model.coherence()):
        with pytest.raises(RuntimeError, match="not fitted"):
            call()


def test_get_params_is_json_serialisable(fitted):
    params = fitted.get_params()
    assert json.loads(json.dumps(params)) == params
    assert params["n_topics"] == 4 and params["random_state"] == 1
    assert params["preprocessor"]["tokenizer"]["lemmatize"] is True


# -- determinism ----------------------------------------------------------------------------
def test_two_fits_with_the_same_seed_give_identical_topics(fitted, saved_model):
    assert fitted.topics(10) == saved_model.topics(10)
    np.testing.assert_array_equal(np.asarray(fitted.doc_topics_), np.asarray(saved_model.doc_topics_))
    assert dict(fitted.dictionary_.token2id) == dict(saved_model.dictionary_.token2id)


def test_the_same_text_always_gets_the_same_topics(fitted):
    text = "tissue and translation with a grasp of navigation"
    first = fitted.document_topics(text)
    for _ in range(3):
        np.testing.assert_array_equal(fitted.document_topics(text), first)
    assert fitted.colorize(text) == fitted.colorize(text)


# -- topics and labels ----------------------------------------------------------------------------
@pytest.mark.parametrize("n_terms", [1, 3, 10])
def test_topics_have_n_terms_with_descending_weights(fitted, n_terms):
    topics = fitted.topics(n_terms)
    assert len(topics) == 4
    vocabulary = set(fitted.dictionary_.token2id)
    for terms in topics:
        assert len(terms) == min(n_terms, len(vocabulary))
        weights = [w for _, w in terms]
        assert all(isinstance(w, float) and 0 <= w <= 1 for w in weights)
        assert weights == sorted(weights, reverse=True)
        assert {t for t, _ in terms} <= vocabulary


def test_labels_default_and_set_label(saved_model, synthetic_artifact):
    model = load_artifacts(synthetic_artifact)[0]  # private instance: labels are edited
    assert model.labels_ == ["Topic 0", "Topic 1", "Topic 2", "Topic 3"]
    model.set_label(np.int64(1), "  Robot   grasping ")
    assert model.labels_[1] == "Robot grasping"
    with pytest.raises(IndexError):
        model.set_label(4, "x")
    with pytest.raises(IndexError):
        model.set_label(-1, "x")
    with pytest.raises(IndexError):
        model.set_label(True, "x")
    with pytest.raises(TypeError, match="label must be a str"):
        model.set_label(0, 3)
    with pytest.raises(ValueError, match="1 to 80 characters"):
        model.set_label(0, "   ")
    with pytest.raises(ValueError, match="1 to 80 characters"):
        model.set_label(0, "x" * 81)
    assert saved_model.labels_[1] == "Topic 1"


# -- coherence ---------------------------------------------------------------------------------
@pytest.mark.parametrize("measure", ["c_v", "u_mass"])
def test_coherence_is_a_finite_float(fitted, measure):
    value = fitted.coherence(measure)
    assert isinstance(value, float) and math.isfinite(value)
    if measure == "c_v":
        assert 0.0 <= value <= 1.0
    else:
        assert value <= 0.0


def test_coherence_of_a_loaded_model_needs_texts(saved_model, synthetic_corpus):
    with pytest.raises(ValueError, match="coherence needs texts"):
        saved_model.coherence("c_v")
    words = saved_model.preprocessor_.transform(synthetic_corpus.texts[:100], n_jobs=1)
    assert math.isfinite(saved_model.coherence("u_mass", texts=words))


# -- inference -----------------------------------------------------------------------------------
def test_transform_rows_sum_to_one(fitted, synthetic_corpus):
    texts = synthetic_corpus.texts[:10] + ["", "words this model never saw", "tissue"]
    matrix = fitted.transform(texts)
    assert matrix.shape == (13, 4)
    assert (matrix >= 0).all()
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-5)
    assert fitted.transform([]).shape == (0, 4)


def test_transform_of_training_texts_matches_doc_topics(fitted, synthetic_corpus):
    np.testing.assert_allclose(fitted.transform(synthetic_corpus.texts[:20]), fitted.doc_topics_[:20], atol=1e-5)


def test_document_topics_sums_to_one_or_is_zero(fitted):
    topics = fitted.document_topics("tissue translation grasp")
    assert topics.shape == (4,)
    assert topics.sum() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(topics, fitted.transform(["tissue translation grasp"])[0], atol=1e-6)
    assert not fitted.document_topics("the of and with").any()
    assert not fitted.document_topics("").any()


def test_colorize_covers_the_text_and_unknown_words_have_no_topic(fitted):
    text = "Tissue, and an unheardof word; then translation tissue!"
    spans = fitted.colorize(text)
    assert "".join(s["text"] for s in spans) == text
    topical = [s for s in spans if s["topic"] is not None]
    assert [s["text"] for s in topical] == ["Tissue", "translation", "tissue"]
    assert topical[0]["topic"] == topical[2]["topic"]  # the same word gets the same topic
    assert all(0 < s["weight"] <= 1 for s in topical)
    for s in spans:
        if s["topic"] is None:
            assert s["weight"] == 0.0
            assert not any(w in fitted.dictionary_.token2id for w in fitted.preprocessor_.words(s["text"]))


def test_a_one_topic_text_colours_its_words_with_its_main_topic(fitted):
    text = "tissue tissue tissue"
    main = int(np.argmax(fitted.document_topics(text)))
    assert {s["topic"] for s in fitted.colorize(text) if s["topic"] is not None} == {main}


def test_analyze_returns_doc_topics_spans_and_known_tokens(fitted):
    text = "translation of an unknownword tissue"
    doc, spans, known = fitted.analyze(text)
    np.testing.assert_array_equal(doc, fitted.document_topics(text))
    assert spans == fitted.colorize(text)
    assert [t.text for t in known] == ["translation", "tissue"]
    assert [text[t.start : t.end] for t in known] == ["translation", "tissue"]


@pytest.mark.parametrize("bad", [None, 3, b"bytes", ["a list"]])
def test_non_string_text_raises_type_error(fitted, bad):
    with pytest.raises(TypeError, match="text must be a str"):
        fitted.colorize(bad)
    with pytest.raises(TypeError, match="text must be a str"):
        fitted.document_topics(bad)


def test_training_and_query_pipelines_agree(fitted, synthetic_corpus):
    texts = synthetic_corpus.texts[:30]
    pre = fitted.preprocessor_
    assert pre.transform(texts, n_jobs=1) == fitted.training_words_[:30]
    assert [pre.words(t) for t in texts] == fitted.training_words_[:30]


def test_custom_preprocessor_is_used(synthetic_corpus):
    pre = Preprocessor(Tokenizer(extra_stopwords=["tissue"]), phrases=False)
    model = TopicModel(2, passes=1, iterations=5, progress=False, workers=None, no_above=1.0, preprocessor=pre)
    model.fit(synthetic_corpus.texts[:40])
    assert model.preprocessor_ is pre
    assert "tissue" not in model.dictionary_.token2id
    assert "protein" in model.dictionary_.token2id


def test_training_progress_prints_each_refresh_once(synthetic_corpus, capsys):
    """gensim's PROGRESS log lines drive one bar; every update is drawn once, not twice."""
    import re

    TopicModel(4, passes=2, chunksize=60, random_state=1, no_above=0.9, n_jobs=1, progress=True).fit(synthetic_corpus.texts)
    err = capsys.readouterr().err
    frames = [f for f in err.replace("\r", "\n").split("\n") if f.startswith("training LDA")]
    counts = [re.search(r"\| (\d+)/(\d+) \[", f).groups() for f in frames]
    unfinished = [done for done, total in counts if done != total and done != "0"]
    assert len(unfinished) >= 4  # 240 documents in chunks of 60, twice
    assert len(unfinished) == len(set(unfinished)), f"frames drawn twice: {unfinished}"


# -- the compiled E-step (staged builds) ------------------------------------------------------
def test_compiled_estep_agrees_with_gensim(synthetic_abstractor, synthetic_corpus):
    from abstractor_widgets.model import ArrayBow, DeterministicInit, bows_to_csr, compiled_lda_class, estep

    model = synthetic_abstractor.model
    lda = model.lda_
    bows = [model.dictionary_.doc2bow(model.preprocessor_.words(doc.text)) for doc in synthetic_corpus][:80] + [[]]
    indptr, indices, counts = bows_to_csr(bows)
    lda.random_state = DeterministicInit()
    reference, _ = lda.inference(bows)
    gamma, none = estep(lda, indptr, indices, counts)
    assert none is None and gamma.shape == reference.shape and gamma.dtype == np.float32
    mixtures = gamma / gamma.sum(axis=1, keepdims=True)
    assert np.abs(mixtures - reference / reference.sum(axis=1, keepdims=True)).max() < 1e-4
    # training: the same random start as gensim's, and the M-step's statistics
    start = np.random.RandomState(5).gamma(100.0, 0.01, (len(bows), lda.num_topics)).astype(np.float32)
    lda.random_state = np.random.RandomState(5)
    reference_gamma, reference_sstats = lda.inference(bows, collect_sstats=True)
    gamma, sstats = estep(lda, indptr, indices, counts, start, collect_sstats=True)
    assert np.allclose(gamma, reference_gamma, rtol=1e-3, atol=1e-3)
    assert np.abs(sstats - reference_sstats).max() <= 1e-4 * np.abs(reference_sstats).max()
    # the LdaModel subclass reads array bags of words too, and draws its start from the model's random state
    compiled = compiled_lda_class()
    lda.__class__ = compiled
    try:
        lda.random_state = np.random.RandomState(5)
        arrays = [ArrayBow((np.array([i for i, _ in b], dtype=np.int32), np.array([c for _, c in b], dtype=np.int32))) for b in bows]
        again, again_sstats = lda.inference(arrays, collect_sstats=True)
        assert np.array_equal(again, gamma) and np.array_equal(again_sstats, sstats)
    finally:
        lda.__class__ = compiled.__mro__[1]
        lda.random_state = DeterministicInit()


def test_a_model_inferred_by_the_compiled_e_step_infers_its_queries_with_it(synthetic_artifact, synthetic_corpus, tmp_path):
    """lda.json's "e_step": saved from the LDA's class, restored at load, used by analyze; the
    mixtures stay gensim's within the E-step's tolerance; an unknown value is refused."""
    import json

    from abstractor_widgets import Abstractor
    from abstractor_widgets.model import compiled_lda_class

    plain = Abstractor.load(synthetic_artifact)
    assert getattr(plain.model.lda_, "e_step", "gensim") == "gensim"
    assert json.loads((synthetic_artifact / "lda.json").read_text()).get("e_step", "gensim") == "gensim"
    out = tmp_path / "compiled"
    out.mkdir()
    plain.model.lda_.__class__ = compiled_lda_class()
    entry = plain.model.save_files(out)
    assert json.loads((out / "lda.json").read_text())["e_step"] == "compiled"
    from abstractor_widgets.fileio import ListedFiles

    loaded = TopicModel.load_files(ListedFiles(out), plain.model.get_params(), list(plain.model.labels_))
    assert type(loaded.lda_).__name__ == "CompiledLdaModel" and entry["n_topics"] == plain.n_topics
    reference = Abstractor.load(synthetic_artifact).model
    calls = []
    import abstractor_widgets.model as model_module

    original = model_module.estep
    try:
        model_module.estep = lambda *a, **k: calls.append(1) or original(*a, **k)
        texts = [doc.text for doc in synthetic_corpus][:20]
        for text in [*texts, texts[0] + " A\u00e9\u4e2d <script>x</script> $\\alpha$", ""]:
            doc, spans, _ = loaded.analyze(text)
            expected, expected_spans, _ = reference.analyze(text)
            assert np.abs(doc - expected).max() < 1e-4
            assert [s["topic"] for s in spans] == [s["topic"] for s in expected_spans]
    finally:
        model_module.estep = original
    assert len(calls) == 21, "the compiled model did not infer with the compiled E-step"
    meta = json.loads((out / "lda.json").read_text())
    meta["e_step"] = "cuda"
    (out / "lda.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="unknown e_step"):
        TopicModel.load_files(ListedFiles(out), plain.model.get_params(), list(plain.model.labels_))
