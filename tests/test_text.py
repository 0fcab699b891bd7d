"""The tokenizer and the preprocessing pipeline: offsets, masking, normalisation, phrases.

The central invariant: for every token ``text[t.start:t.end]`` is the word as written
(never a fragment of it, never shifted by lowercasing or lemmatisation), and colouring a
text gives spans that cover it exactly.
"""

from __future__ import annotations

import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from abstractor_widgets.text import ABSTRACT_STOPWORDS, Preprocessor, Token, Tokenizer

from synthetic_data import FILLER, VOCABULARIES


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer()


def triples(tokens: list[Token]) -> list[tuple[str, int, int]]:
    return [(t.text, t.start, t.end) for t in tokens]


def surface(text: str, tokens: list[Token]) -> list[str]:
    return [text[t.start : t.end] for t in tokens]


def assert_offsets_sound(text: str, tokens: list[Token], tokenizer: Tokenizer) -> None:
    """Sorted, non-overlapping, non-empty, and each token is the normalisation of its slice."""
    previous_end = 0
    for t in tokens:
        assert 0 <= t.start < t.end <= len(text), t
        assert t.start >= previous_end, f"{t} overlaps or is out of order"
        previous_end = t.end
        if "_" not in t.text:  # phrases are checked separately
            assert tokenizer.normalize(text[t.start : t.end]) == t.text, (t, text[t.start : t.end])


# -- offsets on tricky text -----------------------------------------------------------------
def test_docstring_example(tok):
    assert triples(tok.tokenize("Training $\\alpha$-stable networks")) == [
        ("train", 0, 8), ("stable", 18, 24), ("network", 25, 33)
    ]


@pytest.mark.parametrize(
    "math",
    ["$x^2 + \\beta networks$", "$$\\sum_i networks_i$$", "\\(networks \\cdot models\\)", "\\[networks = models\\]",
     "\\begin{equation} networks \\end{equation}", "$\\mathbf{networks}$"],
)
def test_latex_math_is_masked_and_does_not_shift_offsets(tok, math):
    text = f"Graph {math} learning models"
    tokens = tok.tokenize(text)
    assert [t.text for t in tokens] == ["graph", "learn", "model"]
    assert surface(text, tokens) == ["Graph", "learning", "models"]
    assert tokens[1].start == text.index("learning")
    assert_offsets_sound(text, tokens, tok)


def test_latex_command_name_is_not_a_token_but_its_braces_content_is(tok):
    text = "A \\emph{robust} and \\textbf{scalable} \\textit{detector} for \\cite{smith} galaxies"
    tokens = tok.tokenize(text)
    words = [t.text for t in tokens]
    for command in ("emph", "textbf", "textit", "cite"):
        assert command not in words
    assert words == ["robust", "scalable", "detector", "smith", "galaxy"]
    assert surface(text, tokens) == ["robust", "scalable", "detector", "smith", "galaxies"]
    assert_offsets_sound(text, tokens, tok)


@pytest.mark.parametrize(
    "noise",
    ["https://github.com/networks/models?x=1", "http://arxiv.org/abs/2401.00001", "www.networks.org/models",
     "ftp://data.org/networks", "networks.models@example.org", "first.last+tag@uni-x.edu"],
)
def test_urls_and_emails_are_masked(tok, noise):
    text = f"Contact ({noise}) about graphs."
    tokens = tok.tokenize(text)
    assert [t.text for t in tokens] == ["contact", "graph"]
    assert surface(text, tokens) == ["Contact", "graphs"]


@pytest.mark.parametrize("citation", ["[12]", "[3, 4]", "[4-6]", "[ 7 ,8 ]", "[1–3]"])
def test_citations_are_masked(tok, citation):
    text = f"Transformers {citation} dominate vision {citation}."
    tokens = tok.tokenize(text)
    assert [t.text for t in tokens] == ["transformer", "dominate", "vision"]
    assert surface(text, tokens) == ["Transformers", "dominate", "vision"]


def test_pure_numbers_are_never_tokens_and_alphanumerics_are(tok):
    text = "In 2024 we trained resnet50 on 1,000,000 images (3.5% error, 10^6 steps)."
    tokens = tok.tokenize(text)
    assert [t.text for t in tokens] == ["train", "resnet50", "image", "error", "step"]
    assert surface(text, tokens) == ["trained", "resnet50", "images", "error", "steps"]


@pytest.mark.parametrize("text", ["2nd-order methods", "3D reconstruction", "Our 123abc detector", "the 4th-generation chips"])
def test_a_token_never_starts_inside_a_word_that_begins_with_digits(tok, text):
    """'2nd-order' is one word: a token may not be the fragment 'nd-order' of it."""
    for t in tok.tokenize(text):
        assert t.start == 0 or not text[t.start - 1].isalnum(), (
            f"token {t.text!r} is the fragment {text[t.start:t.end]!r} of a word in {text!r}"
        )


def test_hyphenated_words_are_one_token_with_the_last_part_lemmatised(tok):
    text = "Self-supervised vision‐language models"
    tokens = tok.tokenize(text)
    assert triples(tokens) == [("self-supervise", 0, 15), ("vision-language", 16, 31), ("model", 32, 38)]
    assert surface(text, tokens) == ["Self-supervised", "vision‐language", "models"]


def test_possessives_are_stripped_from_the_word_but_not_from_the_span(tok):
    text = "The model's output and the networks’ weights"
    tokens = tok.tokenize(text)
    assert [t.text for t in tokens] == ["model", "output", "network", "weight"]
    assert surface(text, tokens) == ["model's", "output", "networks", "weights"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Naïve café résumé", ["Naïve", "café", "résumé"]),
        ("Spectral αβγ-models and Ωmega", ["Spectral", "αβγ-models", "Ωmega"]),
        ("Нейронные сети обучение", ["Нейронные", "сети", "обучение"]),
        ("深度学习 model 😀 emoji networks", ["深度学习", "model", "emoji", "networks"]),
        ("İİİstanbul İzmir graphs", ["İİİstanbul", "İzmir", "graphs"]),
        ("ﬁnding ﬂows quickly", ["ﬁnding", "ﬂows", "quickly"]),
        ("😀😀😀 networks 👩‍🔬 graphs", ["networks", "graphs"]),
    ],
)
def test_unicode_never_shifts_offsets(tok, text, expected):
    tokens = tok.tokenize(text)
    assert surface(text, tokens) == expected
    assert_offsets_sound(text, tokens, tok)


def test_characters_whose_lowercase_is_longer_do_not_shift_later_tokens(tok):
    assert len("İ".lower()) == 2  # the premise of the test
    prefix = "İ" * 50 + " "
    text = prefix + "graphs"
    tokens = tok.tokenize(text)
    assert (tokens[-1].text, tokens[-1].start, tokens[-1].end) == ("graph", len(prefix), len(text))


@pytest.mark.parametrize("word", ["cafe\u0301", "nai\u0308ve", "re\u0301sume\u0301"])
def test_combining_marks_stay_inside_their_word(tok, word):
    """A decomposed accent (letter + combining mark) is part of the word as written."""
    text = f"The {word} graphs"
    tokens = tok.tokenize(text)
    assert surface(text, tokens) == [word, "graphs"]


def test_decomposed_and_composed_accents_give_the_same_word(tok):
    import unicodedata

    composed = "résumé"
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    assert [t.text for t in tok.tokenize(composed)] == [t.text for t in tok.tokenize(decomposed)]


def test_tokenize_rejects_non_strings(tok):
    with pytest.raises(TypeError, match="text must be a str"):
        tok.tokenize(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="text must be a str"):
        tok.tokenize(None)  # type: ignore[arg-type]


def test_empty_and_whitespace_text_give_no_tokens(tok):
    assert tok.tokenize("") == []
    assert tok.tokenize(" \n\t  ") == []


# -- stopwords, min_length, lemmas ----------------------------------------------------------
def test_default_stopwords_are_gensims_plus_abstract_words(tok):
    from gensim.parsing.preprocessing import STOPWORDS

    text = "We propose the novel method for graphs"
    assert [t.text for t in tok.tokenize(text)] == ["graph"]
    assert "the" in STOPWORDS and "propose" in ABSTRACT_STOPWORDS


def test_extra_stopwords_are_configurable():
    text = "We propose graphs for network paper"
    assert [t.text for t in Tokenizer(extra_stopwords=()).tokenize(text)] == ["propose", "graph", "network", "paper"]
    assert [t.text for t in Tokenizer(extra_stopwords=["network", "GRAPH"]).tokenize(text)] == ["propose", "paper"]


def test_base_stopword_list_is_replaceable():
    text = "the graphs of networks"
    assert [t.text for t in Tokenizer(stopwords=[], extra_stopwords=()).tokenize(text)] == ["the", "graph", "network"]
    assert [t.text for t in Tokenizer(stopwords=["graphs"], extra_stopwords=()).tokenize(text)] == ["the", "network"]


def test_min_length():
    text = "An SVM and deep nets"
    assert [t.text for t in Tokenizer(min_length=3).tokenize(text)] == ["svm", "deep", "net"]
    assert [t.text for t in Tokenizer(min_length=4).tokenize(text)] == ["deep"]
    assert [t.text for t in Tokenizer(min_length=1, stopwords=[], extra_stopwords=()).tokenize("a b")] == ["a", "b"]
    with pytest.raises(ValueError, match="min_length"):
        Tokenizer(min_length=0)


def test_lemmatisation_is_offline_and_optional(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the tokenizer tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    text = "Training networks studies mice"
    assert [t.text for t in Tokenizer(language="en").tokenize(text)] == ["train", "network", "mouse"]
    assert [t.text for t in Tokenizer(lemmatize=False).tokenize(text)] == ["training", "networks", "studies", "mice"]


def test_tokenizer_pickles_without_its_cache_and_keeps_working():
    import pickle

    tok = Tokenizer(min_length=4, extra_stopwords=["graph"])
    tok.tokenize("warm the cache with graphs and networks")
    copy = pickle.loads(pickle.dumps(tok))
    assert copy.get_params() == tok.get_params()
    assert copy.tokenize("graphs and networks") == tok.tokenize("graphs and networks")


# -- phrases and the shared pipeline ------------------------------------------------------
FILL = ("alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega rho "
        "tensor matrix vector kernel scalar field ring group lattice module").split()


@pytest.fixture(scope="module")
def phrase_preprocessor() -> tuple[Preprocessor, list[str], list[list[str]]]:
    import random

    rng = random.Random(3)
    texts = []
    for i in range(60):
        words = rng.sample(FILL, 6)
        words.insert(rng.randrange(len(words) + 1), "neural  networks")
        texts.append(" ".join(words) + ".")
    pre = Preprocessor(phrases=True, phrase_min_count=5, phrase_threshold=1.0)
    fitted = pre.fit(texts, n_jobs=1)
    return pre, texts, fitted


def test_a_repeated_bigram_becomes_a_phrase_token_covering_both_words(phrase_preprocessor):
    pre, _, _ = phrase_preprocessor
    assert pre.phrases_ is not None and "neural_network" in pre.phrases_.phrasegrams
    text = "Deep neural  networks, again."
    tokens = pre.tokens(text)
    assert [t.text for t in tokens] == ["deep", "neural_network"]
    phrase = tokens[1]
    assert (phrase.start, phrase.end) == (text.index("neural"), text.index("networks") + len("networks"))
    assert text[phrase.start : phrase.end] == "neural  networks"


def test_words_not_forming_a_phrase_stay_apart(phrase_preprocessor):
    pre, _, _ = phrase_preprocessor
    assert pre.words("networks neural") == ["network", "neural"]
    assert pre.words("tensor matrix") == ["tensor", "matrix"]


def test_training_and_query_time_pipelines_agree(phrase_preprocessor):
    pre, texts, fitted = phrase_preprocessor
    assert pre.transform(texts, n_jobs=1) == fitted
    assert [pre.words(t) for t in texts] == fitted
    assert any("neural_network" in words for words in fitted)


def test_preprocessor_without_phrases():
    pre = Preprocessor(phrases=False)
    texts = ["neural networks"] * 30
    assert pre.fit(texts, n_jobs=1) == [["neural", "network"]] * 30
    assert pre.phrases_ is None
    assert pre.words("neural networks") == ["neural", "network"]


def test_transform_rejects_non_string_texts(phrase_preprocessor):
    pre, _, _ = phrase_preprocessor
    with pytest.raises(TypeError, match="text 1 must be a str"):
        pre.transform(["fine", 3])  # type: ignore[list-item]


# -- properties ---------------------------------------------------------------------------
CORPUS_WORDS = sorted({w for vocab in VOCABULARIES.values() for w in vocab} | set(FILLER))
SPECIALS = ["$", "$$", "\\", "\\(", "\\)", "\\[", "\\]", "[", "]", "[12]", "[3, 4]", "-", "'", "’", "{", "}",
            "\\emph{", "@", "a@b.org", "http://", "www.", " ", "  ", "\n", ".", ",", "İ", "\u0301", "😀",
            "αβγ", "深度", "2nd", "42", "_", "‐"]
UNICODE = st.characters(blacklist_categories=("Cs",))  # any code point but lone surrogates
PIECE = st.one_of(
    st.sampled_from(CORPUS_WORDS),
    st.sampled_from([w.capitalize() for w in CORPUS_WORDS]),
    st.sampled_from(SPECIALS),
    st.text(UNICODE, max_size=4),
)
CORPUS_LIKE = st.lists(PIECE, max_size=40).map("".join)
ARBITRARY = st.text(UNICODE, max_size=200)
NARROW = st.text(st.sampled_from(list("$\\[]-'{} @.abcİ\u0301x1") + ["\n"]), max_size=80)
ANY_TEXT = st.one_of(ARBITRARY, CORPUS_LIKE, NARROW)


@settings(max_examples=250, deadline=None)
@given(ANY_TEXT)
def test_property_tokens_are_sorted_disjoint_and_normalise_their_slices(text):
    tok = _property_tokenizer()
    tokens = tok.tokenize(text)
    assert_offsets_sound(text, tokens, tok)


_TOKENIZER: list[Tokenizer] = []


def _property_tokenizer() -> Tokenizer:
    if not _TOKENIZER:
        _TOKENIZER.append(Tokenizer())
    return _TOKENIZER[0]


@pytest.fixture(scope="module")
def synthetic_model(synthetic_artifact):
    """The session's synthetic model, loaded once for the property tests (read-only)."""
    from abstractor_widgets.store import load_artifacts

    return load_artifacts(synthetic_artifact)[0]


def assert_spans_cover(text: str, spans: list[dict], model) -> None:
    assert "".join(s["text"] for s in spans) == text
    position = 0
    for i, s in enumerate(spans):
        assert s["start"] == position and s["end"] > s["start"], (i, s)
        assert text[s["start"] : s["end"]] == s["text"]
        position = s["end"]
        if s["topic"] is None:
            assert s["weight"] == 0.0
            assert i == 0 or spans[i - 1]["topic"] is not None, "adjacent non-topical spans are merged"
        else:
            assert 0 <= s["topic"] < model.n_topics
            assert 0.0 <= s["weight"] <= 1.0
            words = model.preprocessor_.words(s["text"])
            assert len(words) == 1 and words[0] in model.dictionary_.token2id, (s, words)
    assert position == len(text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=ANY_TEXT)
def test_property_colorize_covers_arbitrary_text_exactly(synthetic_model, text):
    assert_spans_cover(text, synthetic_model.colorize(text), synthetic_model)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=st.lists(st.sampled_from(CORPUS_WORDS + SPECIALS), min_size=1, max_size=60),
       seps=st.lists(st.sampled_from([" ", "  ", ", ", "\n", "-", "$", "'s ", " [1] "]), min_size=60, max_size=60))
def test_property_colorize_on_corpus_like_text_marks_known_words(synthetic_model, words, seps):
    text = "".join(w + s for w, s in zip(words, seps))
    spans = synthetic_model.colorize(text)
    assert_spans_cover(text, spans, synthetic_model)
    known = {t.text for t in synthetic_model.preprocessor_.tokens(text)} & set(synthetic_model.dictionary_.token2id)
    coloured = {synthetic_model.preprocessor_.words(s["text"])[0] for s in spans if s["topic"] is not None}
    assert coloured == known


@pytest.fixture(scope="module")
def shared_model(shared_phrase_abstractor):
    return shared_phrase_abstractor.model


@pytest.fixture(scope="module")
def shared_words(shared_model) -> list[str]:
    """The shared model's phrases written as two words, their parts, and some of its single words."""
    vocabulary = sorted(shared_model.dictionary_.token2id)
    normalize = shared_model.preprocessor_.tokenizer.normalize
    phrases = [w for w in vocabulary if w.count("_") == 1 and all(normalize(p) == p for p in w.split("_"))]
    assert len(phrases) >= 20
    parts = sorted({p for w in phrases for p in w.split("_")})
    return [w.replace("_", " ") for w in phrases] + parts[:100] + vocabulary[::40]


@pytest.mark.slow
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_property_colorize_with_phrases_on_the_shared_model(shared_model, shared_words, data):
    words = data.draw(st.lists(st.sampled_from(shared_words), min_size=1, max_size=50))
    seps = data.draw(st.lists(st.sampled_from([" ", "  ", ", ", " the ", "\n", " $x$ ", "-", " [2] "]),
                              min_size=len(words), max_size=len(words)))
    text = "".join(w + s for w, s in zip(words, seps))
    spans = shared_model.colorize(text)
    assert_spans_cover(text, spans, shared_model)
    tokens = shared_model.preprocessor_.tokens(text)
    assert_offsets_sound(text, tokens, shared_model.preprocessor_.tokenizer)
    for t in tokens:
        if "_" in t.text:  # a phrase token's span covers both words
            first, second = t.text.split("_")
            inner = shared_model.preprocessor_.tokenizer.tokenize(text[t.start : t.end])
            assert [x.text for x in inner] == [first, second]
            assert (inner[0].start, inner[-1].end) == (0, t.end - t.start)


# -- words without offsets (training and indexing) -------------------------------------------
@pytest.mark.parametrize("text", [
    "", "   ", "Deep neural networks learn representations of images.",
    "Write to first.last@example.org or see https://x.y/z?q=1 and $\\alpha_i^2$ \\cite{x} [1, 2-4].",
    "café naïve résumé – 2nd-order don't models’ <script>alert(1)</script>",
    "\\begin{equation} x = y \\end{equation} after the equation; \\( inline \\) words",
    "深度学习 模型 and Ünïcödé words ‐ with a non-ASCII hyphen",
])
def test_words_equal_the_tokens_texts(text):
    from abstractor_widgets.text import Tokenizer

    assert Tokenizer().words(text) == [token.text for token in Tokenizer().tokenize(text)]


def test_words_equal_the_tokens_texts_on_random_text():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from abstractor_widgets.text import Tokenizer

    tokenizer = Tokenizer()
    alphabet = st.sampled_from(list("abcdeéü XYZ09-'’‐_$\\{}[]()@.:/,;\n") + ["neural", "network", "models", "http://a.b"])

    @settings(max_examples=300, deadline=None)
    @given(st.lists(alphabet, max_size=40).map("".join))
    def check(text):
        assert tokenizer.words(text) == [token.text for token in tokenizer.tokenize(text)]

    check()
    with pytest.raises(TypeError):
        tokenizer.words(None)  # type: ignore[arg-type]
