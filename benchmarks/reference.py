"""A reference implementation of the original app's query algorithm, for the benchmark.

This is what the original (pre-package) code did for one abstract, re-written here so that
our engine can be compared with it on the same model and the same machine:

1. tokenise the whole text and build its bag of words;
2. ``lda.get_document_topics(bow, per_word_topics=True)`` for the document's topics and
   the per-word topic lists;
3. colour: for **every whitespace-split word** of the text, run the preprocessing again on
   that word alone and **scan** the per-word topic list for its id (linear search);
4. similarity: gensim ``MatrixSimilarity`` (cosine) over all documents' topic vectors,
   then ``sorted(enumerate(sims))`` over *all* documents to take the top 5;
5. re-infer the topics of each of the 5 hits from their abstracts (preprocessing +
   ``get_document_topics``).

Both implementations share the model object (whose E-step start is deterministic), so
the per-word topics must be identical.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class ReferenceEngine:
    """The original algorithm over an :class:`~abstractor_widgets.Abstractor`'s model."""

    def __init__(self, abstractor: Any) -> None:
        from gensim.similarities import MatrixSimilarity

        model = abstractor.model
        self.lda = model.lda_
        self.dictionary = model.dictionary_
        self.pre = model.preprocessor_
        self.documents = abstractor.documents
        self.k = model.n_topics
        doc_topics = np.asarray(model.doc_topics_)
        # the original kept the topic vectors of every document as gensim sparse vectors
        corpus = [[(j, float(v)) for j, v in enumerate(row) if v > 0] for row in doc_topics]
        self.index = MatrixSimilarity(corpus, num_features=self.k, num_best=None, dtype=np.float32)

    def analyze(self, text: str, n: int = 5) -> dict[str, Any]:
        """Per-word colours, document topics and the top ``n`` hits (with their topics)."""
        words = self.pre.words(text)
        bow = self.dictionary.doc2bow(words)
        doc_topics, word_topics, _phis = self.lda.get_document_topics(bow, minimum_probability=0.0, per_word_topics=True)
        colours = []
        for raw in text.split():
            topic = None
            for token in self.pre.words(raw):
                wid = self.dictionary.token2id.get(token)
                if wid is None:
                    continue
                for word_id, topics in word_topics:  # linear scan, as the original did
                    if word_id == wid:
                        topic = topics[0] if topics else None
                        break
                if topic is not None:
                    break
            colours.append((raw, topic))
        sims = self.index[doc_topics]
        ranked = sorted(enumerate(sims), key=lambda pair: -pair[1])[:n]
        hits = []
        for row, score in ranked:
            abstract = self.documents.field("text", row)
            hit_topics = self.lda.get_document_topics(self.dictionary.doc2bow(self.pre.words(abstract)))
            hits.append((row, float(score), hit_topics))
        return {
            "colours": colours,
            "word_topics": {wid: (topics[0] if topics else None) for wid, topics in word_topics},
            "doc_topics": doc_topics,
            "hits": hits,
        }


def our_word_topics(abstractor: Any, text: str, spans: list[dict]) -> dict[int, int]:
    """word id → topic, from our spans (one span per topical token, in token order)."""
    model = abstractor.model
    token2id = model.dictionary_.token2id
    known = model.analyze(text)[2]  # the dictionary's tokens that get a topic
    topical = [s for s in spans if s["topic"] is not None]
    if len(known) != len(topical):
        raise AssertionError(f"{len(known)} known tokens but {len(topical)} coloured spans")
    out: dict[int, int] = {}
    for token, span in zip(known, topical):
        if (span["start"], span["end"]) != (token.start, token.end):
            raise AssertionError(f"span {span} does not match token {token}")
        out[token2id[token.text]] = span["topic"]
    return out
