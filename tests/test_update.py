"""Online update: documents added without retraining, atomically, and seen by a reloaded widget."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from abstractor_widgets import Abstractor, AbstractorWidget
from abstractor_widgets.cli import main
from abstractor_widgets.store import read_manifest
from synthetic_data import make_synthetic_frame


@pytest.fixture()
def new_frame() -> pd.DataFrame:
    frame = make_synthetic_frame(40, seed=7)
    frame["id"] = [f"2501.{i:05d}" for i in range(len(frame))]
    frame["title"] = [f"New paper {i}" for i in range(len(frame))]
    return frame


def test_added_documents_are_found_and_old_ones_still_are(synthetic_abstractor, new_frame):
    ab = synthetic_abstractor
    before = len(ab)
    old_doc = ab.document("2401.00005")
    assert ab.update(new_frame) == len(new_frame)
    assert len(ab) == before + len(new_frame)
    assert ab.document("2501.00003").title == "New paper 3"
    # a new paper's own abstract finds it among the top hits, an old one still finds itself
    for doc_id in ("2501.00003", "2501.00010"):
        text = ab.document(doc_id).text
        assert doc_id in [h["id"] for h in ab.similar(text, n=10)]
    assert old_doc.id in [h["id"] for h in ab.similar(old_doc.text, n=10)]
    # persisted: a fresh load sees the new documents and the update history
    reloaded = Abstractor.load(ab.path)
    assert len(reloaded) == before + len(new_frame)
    manifest = read_manifest(ab.path)
    assert manifest["corpus"]["size"] == before + len(new_frame)
    assert manifest["updates"][-1]["added"] == len(new_frame)


def test_update_tokenizes_each_new_abstract_once(synthetic_abstractor, new_frame, monkeypatch):
    """The online LDA update and the lexical index share one tokenization of the abstracts."""
    ab = synthetic_abstractor
    preprocessor = ab.model.preprocessor_
    seen: list[str] = []
    original = preprocessor.transform

    def transform(texts, *args, **kwargs):
        texts = list(texts)
        seen.extend(texts)
        return original(texts, *args, **kwargs)

    monkeypatch.setattr(preprocessor, "transform", transform)
    assert ab.update(new_frame, save=False) == len(new_frame)
    for abstract in new_frame["abstract"]:
        assert sum(abstract in text for text in seen) == 1
    assert ab.lexical is not None and len(ab.lexical) == len(ab)


def test_model_update_checks_its_word_lists(synthetic_abstractor):
    with pytest.raises(ValueError, match="2 word lists for 1 texts"):
        synthetic_abstractor.model.update(["one text"], words=[["a"], ["b"]])


def test_update_skips_ids_already_indexed(synthetic_abstractor, synthetic_frame):
    assert synthetic_abstractor.update(synthetic_frame.iloc[:5]) == 0


def test_interrupted_update_leaves_the_previous_model_intact(synthetic_abstractor, new_frame, monkeypatch):
    ab = synthetic_abstractor
    path = ab.path
    n_before = len(ab)
    before_files = {p.name: p.read_bytes() for p in path.iterdir()}

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("power cut while saving")

    monkeypatch.setattr("abstractor_widgets.store.AppendedDocuments.write", crash)  # the update's documents writer
    with pytest.raises(KeyboardInterrupt):
        ab.update(new_frame)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before_files
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".partial")]
    assert len(Abstractor.load(path)) == n_before


def test_update_cli_and_widget_reload(synthetic_abstractor, new_frame, tmp_path, capsys):
    widget = AbstractorWidget(synthetic_abstractor, text=new_frame["abstract"][2], n_similar=50)
    assert "2501.00002" not in [h["id"] for h in widget.similar]
    corpus = tmp_path / "new.parquet"
    new_frame.to_parquet(corpus)
    assert main(["update", str(synthetic_abstractor.path), "--corpus", str(corpus)]) == 0
    assert f"added {len(new_frame)} documents" in capsys.readouterr().out
    widget.reload()
    assert "2501.00002" in [h["id"] for h in widget.similar]
    assert len(widget.abstractor) == len(synthetic_abstractor) + len(new_frame)


def test_update_keeps_topic_vectors_well_formed(synthetic_abstractor, new_frame):
    ab = synthetic_abstractor
    ab.update(new_frame)
    mix = np.asarray(ab.model.doc_topics_)
    assert mix.shape == (len(ab), ab.n_topics)
    np.testing.assert_allclose(mix.sum(axis=1), 1.0, atol=1e-4)
