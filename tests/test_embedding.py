"""Static sentence embeddings (abstractor_widgets.embedding): reading a distilled model
safely, saving it with the artifact, and the hybrid's fourth signal.

The static model here is made by the test itself (no PyTorch, no download): a word-level
``tokenizers`` tokenizer over the synthetic corpus's words and a token table in which each
synthetic topic's words point the same way, plus two synonyms ("feline" and "kitten") that
share no letters but have the same vector.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from synthetic_data import DIM, make_static_model

from abstractor_widgets import Abstractor
from abstractor_widgets.cli import main as cli_main
from abstractor_widgets.embedding import (
    DOCUMENTS_FILE,
    MAX_TOKENS,
    EmbeddingError,
    StaticEmbedding,
    document_text,
)
from abstractor_widgets.ranking import DEFAULT_PARAMS, Query, Ranker, fuse
from abstractor_widgets.store import ArtifactError, artifact_digest, read_manifest



@pytest.fixture(scope="module")
def static_dir(tmp_path_factory) -> Path:
    return make_static_model(tmp_path_factory.mktemp("static") / "model")


@pytest.fixture()
def embedded(synthetic_abstractor, static_dir) -> Abstractor:
    """The synthetic model with static embeddings, saved and loaded again."""
    synthetic_abstractor.add_embedding(static_dir, progress=False)
    return Abstractor.load(synthetic_abstractor.path)


# -- reading a static model ----------------------------------------------------------------
def test_reads_a_model2vec_directory_and_encodes_unit_vectors(static_dir):
    embedding = StaticEmbedding.from_pretrained(static_dir)
    assert embedding.dim == DIM
    vectors = embedding.encode(["robot gripper torque", "protein genome enzyme", ""])
    assert vectors.shape == (3, DIM) and vectors.dtype == np.float32
    assert np.linalg.norm(vectors[:2], axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)
    assert not vectors[2].any()  # no token: zeros, not NaN
    same_topic = embedding.encode_one("robot actuator joint") @ vectors[0]
    other_topic = embedding.encode_one("protein molecule cell") @ vectors[0]
    assert same_topic > other_topic + 0.3
    assert embedding.encode_one("feline") @ embedding.encode_one("kitten") == pytest.approx(1.0, abs=1e-5)
    assert embedding.encode([]).shape == (0, DIM)


@pytest.mark.parametrize("text", [
    "<script>alert('x')</script><img src=x onerror=alert(1)> robot",
    r"We prove $\mathcal{O}(n \log n)$ bounds \cite{x} for \textbf{robot} arms \\ \begin{align}x\end{align}",
    "Нейронные сети 神经网络 ニューラル ネットワーク 🚀 شبكة",
    "robot " * 10_000,
])
def test_any_text_gives_a_finite_vector(static_dir, text):
    vector = StaticEmbedding.from_pretrained(static_dir).encode_one(text)
    assert vector.shape == (DIM,) and np.isfinite(vector).all()
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5) or not vector.any()


def test_long_texts_are_truncated_to_the_token_limit(static_dir):
    embedding = StaticEmbedding.from_pretrained(static_dir)
    head = "robot " * MAX_TOKENS
    assert embedding.encode_one(head + "protein " * 5000) == pytest.approx(embedding.encode_one(head), abs=1e-6)


def test_document_text_joins_title_and_abstract():
    assert document_text("A title", "The abstract.") == "A title. The abstract."
    assert document_text("", "The abstract.") == "The abstract."


def test_a_broken_static_model_is_refused_with_a_clear_error(static_dir, tmp_path):
    with pytest.raises(EmbeddingError, match="distill_static"):
        StaticEmbedding.from_pretrained(tmp_path)  # empty directory
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(EmbeddingError, match="model.safetensors"):
        StaticEmbedding.from_pretrained(pickled)  # a pickle-only model is never opened
    for name, payload in [("tokenizer.json", b"{not json"), ("model.safetensors", b"\x00" * 40), ("config.json", b"[")]:
        broken = tmp_path / f"broken-{name}"
        shutil.copytree(static_dir, broken)
        (broken / name).write_bytes(payload)
        with pytest.raises(EmbeddingError):
            StaticEmbedding.from_pretrained(broken)


def test_a_token_table_that_does_not_fit_the_tokenizer_is_refused(static_dir):
    embedding = StaticEmbedding.from_pretrained(static_dir)
    with pytest.raises(EmbeddingError, match="rows"):
        StaticEmbedding(np.zeros((3, DIM), dtype=np.float32), embedding.model.tokenizer)
    with pytest.raises(EmbeddingError, match="float16 or float32"):
        StaticEmbedding(np.zeros((len(embedding.model.embedding), DIM), dtype=np.int64), embedding.model.tokenizer)


# -- the artifact ----------------------------------------------------------------------------
def test_embeddings_are_saved_pickle_free_and_memory_mapped(embedded):
    manifest = read_manifest(embedded.path)
    entry = manifest["embedding"]
    assert entry["kind"] == "model2vec" and entry["dim"] == DIM and entry["n_documents"] == len(embedded)
    assert set(entry["files"]) <= set(manifest["files"])
    for name in entry["files"]:
        payload = (embedded.path / name).read_bytes()
        assert b"\x80\x04" not in payload[:2] and b"cnumpy" not in payload  # no pickle opcodes / globals
    documents = embedded.embedding.documents_
    assert documents.dtype == np.float16 and documents.shape == (len(embedded), DIM)
    assert isinstance(documents.base, np.memmap) or not documents.flags.owndata
    first = embedded.documents[0]
    assert embedded.embedding.vectors([0])[0] == pytest.approx(
        embedded.embedding.encode_one(document_text(first.title, first.text)), abs=2e-3)


def test_the_digest_covers_the_embeddings(embedded, synthetic_artifact):
    assert artifact_digest(embedded.path) != artifact_digest(synthetic_artifact)
    path = embedded.path / DOCUMENTS_FILE
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="checksum"):
        Abstractor.load(embedded.path)


def test_an_object_array_in_place_of_the_embeddings_is_refused(embedded):
    """A crafted pickle inside a .npy is never unpickled, even with the manifest rewritten to match."""
    from abstractor_widgets.fileio import sha256_file

    marker = embedded.path.parent / "pwned"
    payload = np.array([_Boom(str(marker))], dtype=object)
    np.save(embedded.path / DOCUMENTS_FILE, payload, allow_pickle=True)
    manifest = json.loads((embedded.path / "manifest.json").read_text())
    target = embedded.path / DOCUMENTS_FILE
    manifest["files"][DOCUMENTS_FILE] = {"bytes": target.stat().st_size, "sha256": sha256_file(target)}
    (embedded.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="static embeddings"):
        Abstractor.load(embedded.path)
    assert not marker.exists()


class _Boom:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_model_without_embeddings_loads_and_ranks_as_before(synthetic_abstractor):
    assert synthetic_abstractor.embedding is None
    hits = synthetic_abstractor.similar("robot gripper torque navigation", n=3)
    assert len(hits) == 3 and all("semantic" not in hit for hit in hits)


def test_update_embeds_the_new_papers(embedded, synthetic_frame):
    from abstractor_widgets.corpus import Corpus

    fresh = synthetic_frame.iloc[:5].assign(id=[f"2402.{i:05d}" for i in range(5)])
    before = len(embedded)
    assert embedded.update(Corpus.from_frame(fresh)) == 5
    reloaded = Abstractor.load(embedded.path)
    assert len(reloaded.embedding) == before + 5 == len(reloaded)
    added = reloaded.embedding.vectors([before])[0]
    assert added == pytest.approx(reloaded.embedding.encode_one(document_text(fresh.title.iloc[0], fresh.abstract.iloc[0])),
                                  abs=2e-3)


def test_training_with_a_static_model(synthetic_corpus, static_dir, tmp_path):
    ab = Abstractor.train(synthetic_corpus, 4, out=tmp_path / "m", passes=5, progress=False, random_state=1,
                          no_above=0.9, static_model=static_dir)
    assert ab.embedding is not None and len(ab.embedding) == len(synthetic_corpus)
    assert read_manifest(tmp_path / "m")["embedding"]["n_documents"] == len(synthetic_corpus)


def test_an_interrupted_embed_leaves_the_artifact_intact(synthetic_abstractor, static_dir, monkeypatch):
    digest = artifact_digest(synthetic_abstractor.path)

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(StaticEmbedding, "save_files", fail)
    with pytest.raises(KeyboardInterrupt):
        synthetic_abstractor.add_embedding(static_dir, progress=False)
    assert artifact_digest(synthetic_abstractor.path) == digest
    assert Abstractor.load(synthetic_abstractor.path).embedding is None


# -- ranking ---------------------------------------------------------------------------------
def test_the_static_signal_changes_the_fused_score_by_its_weight():
    n = 4
    signals = {key: np.full(n, 0.5, dtype=np.float32) for key in
               ("lexical", "topic", "semantic", "topic_feedback", "semantic_feedback")}
    signals["static"] = np.array([0.0, 0.2, 0.6, 1.0], dtype=np.float32)
    signals["static_feedback"] = signals["static"]
    base = fuse(signals, DEFAULT_PARAMS, True, False)
    both = fuse(signals, DEFAULT_PARAMS, True, True)
    w = DEFAULT_PARAMS.static_weight
    assert base == pytest.approx(np.full(n, 0.5))
    assert both == pytest.approx((1 - w) * 0.5 + w * signals["static"])
    assert fuse(signals, DEFAULT_PARAMS.with_(static_weight=0.0), True, True) == pytest.approx(base)


def test_a_paper_close_in_meaning_but_sharing_no_word_is_found_and_marked(embedded):
    """Query "kitten ..."; one paper says "feline" instead: no shared word, same static vector.
    With static candidates the hybrid finds it and marks it "semantically close"."""
    from abstractor_widgets.corpus import Corpus

    import pandas as pd

    paper = pd.DataFrame([{"id": "2403.00001", "title": "On felines", "abstract": "Feline feline feline behaviour.",
                           "categories": "q-bio.PE", "published": "2024-03-01"}])
    embedded.update(Corpus.from_frame(paper))
    ab = Abstractor.load(embedded.path)
    ab.hybrid_params = DEFAULT_PARAMS.with_(static_candidates=5, static_weight=0.6, feedback_weight=0.0)
    hits = ab.similar("kitten kitten kitten robot", n=10)
    found = [h for h in hits if h["id"] == "2403.00001"]
    assert found and found[0]["semantic"] is True and found[0]["shared_terms"] == []
    assert not hits[0]["semantic"] or hits[0]["id"] == "2403.00001"
    # a hit is flagged exactly when the other signals alone would not have ranked it in the top n
    query = ab.ranker.query(ab.model.document_topics("kitten kitten kitten robot"), ["kitten", "kitten", "kitten", "robot"],
                            text="kitten kitten kitten robot")
    ranked, carried = ab.ranker.rank_explained(query, 10)
    plain = Ranker(ab.index, ab.lexical, ab.hybrid_params.with_(static_weight=0.0, static_candidates=0))
    without_static = {r for r, _ in plain.rank(query, 10)}
    assert [r not in without_static for r, _ in ranked] == carried
    without = Abstractor.load(embedded.path)
    without.hybrid_params = DEFAULT_PARAMS.with_(static_weight=0.0)
    assert "2403.00001" not in [h["id"] for h in without.similar("kitten kitten kitten robot", n=10)]


def test_ranker_uses_the_static_signal_only_when_present_and_weighted(embedded):
    query_text = "robot gripper torque navigation"
    ranker = embedded.ranker
    query = ranker.query(embedded.model.document_topics(query_text), query_text.split(), "hybrid", text=query_text)
    assert query.embedding is not None and ranker.has_static
    plain = Ranker(embedded.index, embedded.lexical, DEFAULT_PARAMS)
    assert plain.query(query.topics, query_text.split(), "hybrid", text=query_text).embedding is None
    signals = ranker.signals(query, DEFAULT_PARAMS.pool)
    assert signals["static"].shape == signals["rows"].shape and (signals["static"] >= 0).all()
    assert signals["static"].max() > 0.5
    assert ranker.query(query.topics, query_text.split(), "lda", text=query_text).embedding is None
    ranked, carried = ranker.rank_explained(query, 5)
    assert len(ranked) == len(carried) == 5
    row = embedded.documents.position(embedded.documents[7].id)
    own = ranker.query_for_row(row, embedded.model.doc_topics_[row])
    assert own.embedding is not None and row not in [r for r, _ in ranker.rank(own, 5)]
    assert Query(query.topics).embedding is None


def test_the_embedding_must_cover_every_document(embedded):
    import copy

    short = copy.copy(embedded.embedding)
    short.documents_ = np.asarray(embedded.embedding.documents_)[:3]
    with pytest.raises(ValueError, match="static embedding"):
        Ranker(embedded.index, embedded.lexical, DEFAULT_PARAMS, short)


def test_nearest_is_an_exact_scan(embedded):
    embedding = embedded.embedding
    query = embedding.encode_one("protein genome enzyme molecule")
    top = embedding.nearest(query, 5, exclude_rows=(0,))
    scores = np.asarray(embedding.documents_, dtype=np.float32) @ query
    scores[0] = -np.inf
    assert top.tolist() == np.argsort(-scores, kind="stable")[:5].tolist()
    assert embedding.nearest(np.zeros(DIM, dtype=np.float32), 5).size == 0
    assert embedding.nearest(query, 0).size == 0


# -- the command line --------------------------------------------------------------------------
def test_cli_embed_and_info(synthetic_abstractor, static_dir, tmp_path, capsys):
    copy = tmp_path / "with-embedding"
    assert cli_main(["embed", str(synthetic_abstractor.path), "--static-model", str(static_dir), "--copy-to", str(copy)]) == 0
    assert "static embeddings of" in capsys.readouterr().out
    assert "embedding" not in read_manifest(synthetic_abstractor.path)  # the original is unchanged
    assert cli_main(["info", str(copy)]) == 0
    assert f"static embeddings: {DIM} dimensions" in capsys.readouterr().out
    assert cli_main(["info", str(synthetic_abstractor.path)]) == 0
    assert "abstractor embed" in capsys.readouterr().out
    assert cli_main(["embed", str(synthetic_abstractor.path), "--static-model", str(tmp_path / "nope")]) == 2
    assert "distill_static" in capsys.readouterr().err


def test_the_distill_script_installs_the_distill_extra():
    """scripts/distill_static.sh installs the `distill` extra's requirements without the package:
    the two lists must not drift apart."""
    import re
    import tomllib

    root = Path(__file__).resolve().parent.parent
    extra = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]["distill"]
    script = (root / "scripts" / "distill_static.sh").read_text()
    installed = set(re.findall(r'"([a-z0-9][a-z0-9_.\-\[\]]*[<>=][^"]*)"', script))
    assert set(extra) <= installed, set(extra) - installed
    assert "torch==" in script  # the CPU build, never an unpinned (CUDA) torch


def test_filtered_ranking_uses_the_static_signal_too(embedded):
    """The explorer's filtered list ranks like the plain one, restricted to the kept papers."""
    from abstractor_widgets.explore import filtered_analyze

    for i in range(len(embedded)):  # a text whose list has a paper the embedding brought in
        text = embedded.documents[i].text
        plain = embedded.similar(text, n=5)
        if any(h["semantic"] for h in plain):
            break
    else:
        pytest.fail("no synthetic abstract has a semantically close hit")
    mask = np.ones(len(embedded), dtype=bool)
    out = next(i for i in range(len(embedded)) if embedded.documents[i].id not in {h["id"] for h in plain})
    mask[out] = False  # a real filter: one paper out, not among this text's hits
    filtered = filtered_analyze(embedded, text, 5, None, mask).similar
    assert [h["id"] for h in filtered] == [h["id"] for h in plain]
    assert [h["semantic"] for h in filtered] == [h["semantic"] for h in plain]


# -- the query path's shortcut (ASCII text, BERT WordPiece tokenizer) ---------------------------
def _bert_static_model(directory: Path) -> Path:
    """A tiny BERT-style Model2Vec model: lower-casing BertNormalizer, BertPreTokenizer, WordPiece."""
    from model2vec import StaticModel
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    pieces = ["[UNK]", "[PAD]", "net", "##work", "##s", "neural", "graph", "learn", "##ing", "a", "b", "##b",
              "x", "1", "##2", "!", ".", ",", "(", ")", "$", "\\", "_", "-", "<", ">", "/", "'", "\""]
    tokenizer = Tokenizer(models.WordPiece({p: i for i, p in enumerate(pieces)}, unk_token="[UNK]",
                                           max_input_chars_per_word=20))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    vectors = np.random.default_rng(3).normal(size=(len(pieces), 8)).astype(np.float32)
    StaticModel(vectors=vectors, tokenizer=tokenizer, normalize=True).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def bert_embedding(tmp_path_factory) -> StaticEmbedding:
    return StaticEmbedding.from_pretrained(_bert_static_model(tmp_path_factory.mktemp("bert") / "model"))


def test_the_shortcut_is_taken_only_for_a_plain_bert_tokenizer(bert_embedding, static_dir):
    assert bert_embedding._fast
    assert not StaticEmbedding.from_pretrained(static_dir)._fast  # word-level: the library's path


@pytest.mark.parametrize("text", [
    "Neural networks learning graphs!", "NETWORKS, networks.networks", "a_b c\x0bd e\tf\x00g\r\nh\x7f(x12)",
    "<script>alert('x')</script> $\\alpha$ -- 'quoted' \"double\"", "", "   \n\t ", "b" * 30 + " graph",
    "learning " * 600, "ab bb abb x12x 12 1 2",
])
def test_the_shortcut_gives_the_library_s_vector(bert_embedding, text):
    expected = bert_embedding.encode([text])[0]
    assert bert_embedding.encode_one(text) == pytest.approx(expected, abs=1e-6)


def test_the_shortcut_matches_the_library_on_any_ascii_text(bert_embedding):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=300, deadline=None)
    @given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127), max_size=200))
    def check(text):
        assert bert_embedding.encode_one(text) == pytest.approx(bert_embedding.encode([text])[0], abs=1e-6)

    check()


def test_the_word_cache_is_bounded(bert_embedding, monkeypatch):
    import abstractor_widgets.embedding as module

    monkeypatch.setattr(module, "WORD_CACHE_MAX", 5)
    bert_embedding._word_pieces.clear()
    bert_embedding.encode_one(" ".join(f"w{i}" for i in range(50)))
    assert len(bert_embedding._word_pieces) == 5


def test_the_dashboard_header_says_meaning_counts(embedded):
    from abstractor_widgets.dashboard import header_html

    assert "shared words, topics and meaning" in header_html(embedded)
    embedded.embedding = None
    assert "shared words + topics" in header_html(embedded)
