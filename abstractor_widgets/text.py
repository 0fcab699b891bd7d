"""Text preprocessing that keeps character offsets into the original text.

The same :class:`Preprocessor` runs at training and at query time, so a word is
coloured exactly as it was counted when the model learned its topics.

What a token is
---------------
A run of letters (any script: accents, Greek, Cyrillic, CJK) optionally followed by
letters or digits and joined by hyphens or apostrophes (``self-supervised``,
``resnet50``, ``model's``). Nothing inside LaTeX math (``$...$``, ``$$...$$``,
``\\(...\\)``, ``\\[...\\]``), URLs, e-mail addresses, citation brackets (``[12]``,
``[3, 4]``) or LaTeX command names (``\\textit``) becomes a token; the braces'
content of a command outside math (``\\emph{robust}``) does. Pure numbers never
become tokens. Offsets always index the original string, whatever lowercasing or
lemmatisation does to the token's text.

Examples
--------
>>> tok = Tokenizer()
>>> [(t.text, t.start, t.end) for t in tok.tokenize("Training $\\alpha$-stable networks")]
[('training', 0, 8), ('stable', 18, 24), ('network', 25, 33)]
"""

from __future__ import annotations

import logging
import os
import re
import sys
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

logger = logging.getLogger(__name__)

#: The one input limit of the package (characters): the Python API, the widget, the CLI
#: and the HTTP service refuse longer texts with :class:`TextTooLongError`. A long
#: abstract has ~3,000 characters; the limit leaves room for a whole introduction.
MAX_TEXT_CHARS = 50_000


class TextTooLongError(ValueError):
    """A text is longer than :data:`MAX_TEXT_CHARS` (the HTTP service answers 413)."""

    def __init__(self, length: int, limit: int = MAX_TEXT_CHARS) -> None:
        super().__init__(f"the text has {length:,} characters; the limit is {limit:,}")
        self.length = length
        self.limit = limit


def check_text(text: object) -> str:
    """``text`` if it is a ``str`` within :data:`MAX_TEXT_CHARS`.

    Raises
    ------
    TypeError
        If ``text`` is not a ``str``.
    TextTooLongError
        If it is longer than the limit.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, not {type(text).__name__}")
    if len(text) > MAX_TEXT_CHARS:
        raise TextTooLongError(len(text))
    return text


#: Estimated bytes the tokenizer's word cache may hold (per process); see
#: :meth:`Tokenizer.normalize`. The 60k corpus's surface forms fit in about 30 MB.
CACHE_MAX_BYTES = 16 * 2**20
#: Words longer than this are neither lemmatised nor cached.
MAX_LEMMATIZED_CHARS = 40
# dict slot + its share of the table's growth, beyond the key and value objects
_CACHE_ENTRY_BYTES = 100


#: Words that are frequent in abstracts but say nothing about their topic.
ABSTRACT_STOPWORDS = frozenset(
    """
    paper propose proposed approach method methods result results show shows shown
    present presents presented study work works use used using based new novel
    existing demonstrate demonstrates achieve achieves achieved furthermore moreover
    respectively significantly significant state art outperform outperforms
    experiment experiments experimental extensive effectiveness effective superior
    introduce introduces introduced address addresses challenge challenges issue
    include includes including provide provides enable enables key recent recently
    specifically various different improve improves improved improvement performance
    """.split()
)

# Regions whose characters never become tokens. Order matters: $$ before $.
_MASK_PARTS = r"""
      \$\$.*?\$\$                       # display math
    | (?<!\\)\$(?:\\.|[^$\\])+\$        # inline math $...$
    | \\\(.*?\\\) | \\\[.*?\\\]         # \( ... \) and \[ ... \]
    | \\begin\{(equation|align|eqnarray|math)\*?\}.*?\\end\{\1\*?\}
    | (?:https?|ftp)://\S+ | www\.\S+   # URLs
    | \\[A-Za-z]+\*?                    # LaTeX command names
    | \[\s*\d+(?:\s*[,–-]\s*\d+)*\s*\]  # numeric citations [1], [2, 3], [4-6]
"""
# The leading look-ahead rejects most positions with one character-class test.
_MASK = re.compile(r"(?=[$\\\[hfw])(?:" + _MASK_PARTS + ")", re.VERBOSE | re.DOTALL)
# E-mail addresses can start at any word character, so that branch only runs on texts with an @.
_MASK_WITH_EMAIL = re.compile(
    r"(?:(?=[$\\\[hfw])(?:" + _MASK_PARTS + r")|(?<![\w.+-])[\w.+-]++@[\w-]+\.[\w.-]+)",
    re.VERBOSE | re.DOTALL,
)
# Combining marks (accents written as separate code points, Indic vowel signs ...) belong
# to their word; \w does not include them.
_MARKS = (
    "\u0300-\u036f\u0483-\u0489\u0591-\u05c7\u0610-\u061a\u064b-\u065f\u0900-\u0957"
    "\u0981-\u09d7\u0e31-\u0e4e\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\u3099-\u309a"
    "\ufe00-\ufe0f\ufe20-\ufe2f"
)
_LETTER_OR_DIGIT = rf"(?:[^\W_]|[{_MARKS}])"
# A word starts at a word boundary, may start with digits ("2nd-order") but must
# contain a letter (pure numbers are never tokens), and may join parts with hyphens
# or apostrophes. Possessive quantifiers: no backtracking.
_WORD = re.compile(rf"(?<![^\W_{_MARKS}])\d*+[^\W\d_]{_LETTER_OR_DIGIT}*+(?:['’\-‐]{_LETTER_OR_DIGIT}++)*+")
_POSSESSIVE = re.compile(r"['’]s?$")


class Token(NamedTuple):
    """A normalised word and where it stands in the original text.

    Attributes
    ----------
    text : str
        The normalised form (lowercased, lemmatised; ``a_b`` for a phrase).
    start, end : int
        ``original[start:end]`` is the word (or phrase) as written.
    """

    text: str
    start: int
    end: int


class Tokenizer:
    """Split text into normalised tokens with character offsets.

    Parameters
    ----------
    min_length : int
        Tokens shorter than this (in characters, after normalisation) are dropped.
    stopwords : iterable of str, optional
        The base stopword list; gensim's English list when ``None``.
    extra_stopwords : iterable of str
        Added to the base list; :data:`ABSTRACT_STOPWORDS` by default.
    lemmatize : bool
        Reduce words to their lemma with simplemma (offline; its data ships with it).
    language : str
        simplemma language code.
    """

    def __init__(
        self,
        min_length: int = 3,
        stopwords: Iterable[str] | None = None,
        extra_stopwords: Iterable[str] = ABSTRACT_STOPWORDS,
        lemmatize: bool = True,
        language: str = "en",
    ) -> None:
        self.min_length = min_length
        self.stopwords = stopwords
        self.extra_stopwords = extra_stopwords
        self.lemmatize = lemmatize
        self.language = language
        self._setup()

    def _setup(self) -> None:
        if self.min_length < 1:
            raise ValueError(f"min_length must be at least 1, not {self.min_length}")
        if self.stopwords is None:
            from gensim.parsing.preprocessing import STOPWORDS

            base: Iterable[str] = STOPWORDS
        else:
            base = self.stopwords
        self._stop = frozenset(w.lower() for w in base) | frozenset(w.lower() for w in self.extra_stopwords)
        self._cache: dict[str, str | None] = {}
        self._cache_bytes = 0
        self._lemmatizer = None
        if self.lemmatize:
            import simplemma

            self._lemmatizer = simplemma.lemmatize

    def get_params(self) -> dict:
        """Constructor parameters (stopword lists as sorted lists), for manifests."""
        return {
            "min_length": self.min_length,
            "stopwords": None if self.stopwords is None else sorted(self.stopwords),
            "extra_stopwords": sorted(self.extra_stopwords),
            "lemmatize": self.lemmatize,
            "language": self.language,
        }

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._setup()

    def normalize(self, word: str) -> str | None:
        """The normalised form of one word as written, or ``None`` if it is not kept.

        Results are cached (the same surface form recurs constantly), within
        :data:`CACHE_MAX_BYTES`: a full cache is emptied and refills with the words in
        use, so no input can grow it without bound. Words longer than
        :data:`MAX_LEMMATIZED_CHARS` are lowercased but neither lemmatised nor cached
        (no dictionary word is that long; the lemmatizer's own cache stays small too).
        """
        cached = self._cache.get(word)
        if cached is not None or word in self._cache:
            return cached
        norm = _POSSESSIVE.sub("", unicodedata.normalize("NFC", word).lower()).replace("’", "'").replace("‐", "-")
        long_word = len(word) > MAX_LEMMATIZED_CHARS
        if self._lemmatizer is not None and not long_word:
            if norm.isalpha():
                norm = self._lemmatizer(norm, self.language).lower()
            elif "-" in norm:
                head, _, last = norm.rpartition("-")
                if last.isalpha():
                    norm = f"{head}-{self._lemmatizer(last, self.language).lower()}"
        keep = len(norm) >= self.min_length and norm not in self._stop and word.lower() not in self._stop
        result = norm if keep else None
        if not long_word:
            cost = _CACHE_ENTRY_BYTES + sys.getsizeof(word) + (sys.getsizeof(result) if result is not None else 0)
            if self._cache_bytes + cost > CACHE_MAX_BYTES:
                self._cache.clear()
                self._cache_bytes = 0
            self._cache[word] = result
            self._cache_bytes += cost
        return result

    @property
    def cache_bytes(self) -> int:
        """Estimated bytes held by the word cache (at most :data:`CACHE_MAX_BYTES`)."""
        return self._cache_bytes

    def tokenize(self, text: str) -> list[Token]:
        """Tokens of ``text`` in order, with offsets into ``text``.

        Raises
        ------
        TypeError
            If ``text`` is not a ``str``.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, not {type(text).__name__}")
        tokens: list[Token] = []
        for start, end in _unmasked(text):
            _words(text, start, end, self, tokens)
        return tokens

    def words(self, text: str) -> list[str]:
        """The normalised words of ``text`` without offsets: ``[t.text for t in tokenize(text)]``,
        about twice as fast (no match or Token objects; what training and indexing need).

        Raises
        ------
        TypeError
            If ``text`` is not a ``str``.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, not {type(text).__name__}")
        pieces = []
        for start, end in _unmasked(text):
            pieces += _WORD.findall(text, start, end)
        cached, normalize, out = self._cache.get, self.normalize, []
        for word in pieces:
            norm = cached(word, _MISSING)
            if norm is _MISSING:
                norm = normalize(word)
            if norm is not None:
                out.append(norm)
        return out


_MISSING = object()
_new_token = tuple.__new__


def _unmasked(text: str) -> Iterator[tuple[int, int]]:
    """The ``(start, end)`` stretches of ``text`` between masked spans (LaTeX, URLs, citations, e-mail)."""
    position = 0
    for masked in (_MASK_WITH_EMAIL if "@" in text else _MASK).finditer(text):
        yield position, masked.start()
        position = masked.end()
    yield position, len(text)


def _words(text: str, start: int, end: int, tokenizer: Tokenizer, out: list[Token]) -> None:
    cached = tokenizer._cache.get
    for match in _WORD.finditer(text, start, end):
        word = match.group()
        norm = cached(word, _MISSING)
        if norm is _MISSING:
            norm = tokenizer.normalize(word)
        if norm is not None:
            out.append(_new_token(Token, (norm, match.start(), match.end())))


class Preprocessor:
    """Tokenizer plus learned bigram phrases: the one text pipeline of the package.

    Parameters
    ----------
    tokenizer : Tokenizer, optional
        Defaults to ``Tokenizer()``.
    phrases : bool
        Learn bigram phrases (gensim ``Phrases``) in :meth:`fit`. A phrase token's span
        covers both words (and what stands between them). Off by default: on the 60k
        arXiv corpus, K=20 topics without phrases are more coherent (c_v 0.551 / 0.532 /
        0.573 vs 0.533 / 0.512 / 0.517 with phrases, seeds 0-2; ``docs/relevance.md``).
    phrase_min_count : int
        Minimum count of a bigram to become a phrase.
    phrase_threshold : float
        gensim's default scorer threshold.

    Attributes
    ----------
    phrases_ : gensim.models.phrases.FrozenPhrases or None
        The learned phrases after :meth:`fit`.
    """

    def __init__(
        self,
        tokenizer: Tokenizer | None = None,
        phrases: bool = False,
        phrase_min_count: int = 20,
        phrase_threshold: float = 10.0,
    ) -> None:
        self.tokenizer = tokenizer if tokenizer is not None else Tokenizer()
        self.phrases = phrases
        self.phrase_min_count = phrase_min_count
        self.phrase_threshold = phrase_threshold
        self.phrases_ = None

    def get_params(self) -> dict:
        """Parameters of the pipeline, for manifests."""
        return {
            "tokenizer": self.tokenizer.get_params(),
            "phrases": self.phrases,
            "phrase_min_count": self.phrase_min_count,
            "phrase_threshold": self.phrase_threshold,
        }

    # -- persistence: plain JSON, never a pickle ---------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The pipeline as JSON-able data: its parameters and the learned phrases.

        :meth:`from_dict` rebuilds an identical pipeline from it (the artifact store
        saves it as ``preprocessor.json``).
        """
        state: dict[str, Any] = {**self.get_params(), "phrasegrams": None}
        if self.phrases_ is not None:
            frozen = self.phrases_
            state["phrasegrams"] = {
                "delimiter": frozen.delimiter,
                "threshold": float(frozen.threshold),
                "min_count": float(frozen.min_count),
                "scoring": "npmi" if getattr(frozen.scoring, "__name__", frozen.scoring) in ("npmi", "npmi_scorer") else "default",
                "connector_words": sorted(frozen.connector_words),
                "scores": {phrase: float(score) for phrase, score in frozen.phrasegrams.items()},
            }
        return state

    @classmethod
    def from_dict(cls, state: Any) -> Preprocessor:
        """Rebuild a pipeline saved by :meth:`to_dict`, checking every value's type.

        Raises
        ------
        ValueError
            If ``state`` is not what :meth:`to_dict` writes.
        """
        if not isinstance(state, dict) or not isinstance(state.get("tokenizer"), dict):
            raise ValueError("preprocessor state must be an object with a 'tokenizer' object")
        tok = state["tokenizer"]
        stopwords = tok.get("stopwords")
        if not (_is_int(tok.get("min_length")) and isinstance(tok.get("lemmatize"), bool)
                and (stopwords is None or _is_str_list(stopwords)) and _is_str_list(tok.get("extra_stopwords"))
                and isinstance(tok.get("language"), str) and _LANGUAGE.fullmatch(tok["language"])):
            raise ValueError(f"invalid tokenizer settings in the preprocessor state: {sorted(tok)}")
        tokenizer = Tokenizer(min_length=tok["min_length"], stopwords=stopwords, extra_stopwords=frozenset(tok["extra_stopwords"]),
                              lemmatize=tok["lemmatize"], language=tok["language"])
        if not (isinstance(state.get("phrases"), bool) and _is_int(state.get("phrase_min_count"))
                and isinstance(state.get("phrase_threshold"), (int, float))):
            raise ValueError("invalid phrase settings in the preprocessor state")
        pre = cls(tokenizer, phrases=state["phrases"], phrase_min_count=state["phrase_min_count"],
                  phrase_threshold=float(state["phrase_threshold"]))
        grams = state.get("phrasegrams")
        if grams is not None:
            pre.phrases_ = _frozen_phrases(grams)
        return pre

    def fit(self, texts: Sequence[str], n_jobs: int | None = None, progress: bool = False) -> list[list[str]]:
        """Tokenize ``texts`` and learn phrases from them.

        Returns
        -------
        list of list of str
            The normalised words of every text, phrases applied: training needs them,
            so they are returned instead of being computed twice.
        """
        words = tokenize_many(self.tokenizer, texts, n_jobs=n_jobs, progress=progress, desc="tokenizing")
        if not self.phrases:
            self.phrases_ = None
            return words
        from gensim.models.phrases import Phrases

        learner = Phrases(words, min_count=self.phrase_min_count, threshold=self.phrase_threshold, connector_words=frozenset())
        self.phrases_ = learner.freeze()
        logger.info("learned %d phrases", len(self.phrases_.phrasegrams))
        return [self.phrases_[w] for w in words]

    def _merge(self, tokens: list[Token]) -> list[Token]:
        if self.phrases_ is None or len(tokens) < 2:
            return tokens
        merged: list[Token] = []
        i = 0
        for word, score in self.phrases_.analyze_sentence([t.text for t in tokens]):
            if score is None:
                merged.append(tokens[i])
                i += 1
            else:
                width = word.count("_") + 1
                merged.append(Token(word, tokens[i].start, tokens[i + width - 1].end))
                i += width
        return merged

    def tokens(self, text: str) -> list[Token]:
        """Tokens of one text, phrases merged, with offsets into ``text``."""
        return self._merge(self.tokenizer.tokenize(text))

    def words(self, text: str) -> list[str]:
        """The normalised words of one text (what the model counts)."""
        return [t.text for t in self.tokens(text)]

    def transform(self, texts: Sequence[str], n_jobs: int | None = None, progress: bool = False) -> list[list[str]]:
        """Normalised words of many texts (phrases applied), in parallel when ``n_jobs`` > 1."""
        words = tokenize_many(self.tokenizer, texts, n_jobs=n_jobs, progress=progress, desc="tokenizing")
        return words if self.phrases_ is None else [self.phrases_[w] for w in words]


_LANGUAGE = re.compile(r"[a-z]{2,3}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _frozen_phrases(grams: Any) -> Any:
    """gensim ``FrozenPhrases`` rebuilt from the data of :meth:`Preprocessor.to_dict`.

    gensim only builds one from a trained ``Phrases`` model (or unpickles one); the
    attributes set here are all that its phrase detection reads.
    """
    from gensim.models.phrases import FrozenPhrases

    if not (isinstance(grams, dict) and isinstance(grams.get("delimiter"), str)
            and isinstance(grams.get("threshold"), (int, float)) and isinstance(grams.get("min_count"), (int, float))
            and grams.get("scoring") in ("default", "npmi") and _is_str_list(grams.get("connector_words"))
            and isinstance(grams.get("scores"), dict)
            and all(isinstance(k, str) and isinstance(v, (int, float)) for k, v in grams["scores"].items())):
        raise ValueError("invalid phrase table in the preprocessor state")
    frozen = FrozenPhrases.__new__(FrozenPhrases)
    frozen.threshold = float(grams["threshold"])
    frozen.min_count = float(grams["min_count"])
    frozen.delimiter = grams["delimiter"]
    frozen.scoring = grams["scoring"]
    frozen.connector_words = frozenset(grams["connector_words"])
    frozen.phrasegrams = {k: float(v) for k, v in grams["scores"].items()}
    return frozen


def _words_of_chunk(args: tuple[Tokenizer, list[str]]) -> list[list[str]]:
    tokenizer, texts = args
    return [tokenizer.words(text) for text in texts]


def tokenize_many(
    tokenizer: Tokenizer,
    texts: Sequence[str],
    n_jobs: int | None = None,
    progress: bool = False,
    desc: str = "tokenizing",
) -> list[list[str]]:
    """Normalised words of many texts, over ``n_jobs`` processes (all cores when ``None``).

    Workers send back words only (offsets are not needed for training), which keeps
    the inter-process traffic small. Small inputs (under 2,000 texts) run in-process:
    forking costs more than it saves.
    """
    from tqdm.auto import tqdm

    n_jobs = (os.cpu_count() or 1) if n_jobs is None else max(1, int(n_jobs))
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"text {i} must be a str, not {type(t).__name__}")
    bar = tqdm(total=len(texts), desc=desc, unit="doc", disable=not progress)
    size = 500
    chunks = [(tokenizer, texts[i : i + size]) for i in range(0, len(texts), size)]
    out: list[list[str]] = []
    if n_jobs == 1 or len(texts) < 2000:
        for chunk in chunks:
            out.extend(_words_of_chunk(chunk))
            bar.update(len(chunk[1]))
    else:
        import multiprocessing

        context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
        with context.Pool(n_jobs) as pool:
            for result in pool.imap(_words_of_chunk, chunks):
                out.extend(result)
                bar.update(len(result))
    bar.close()
    return out
