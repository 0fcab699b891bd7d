"""Shared fixtures.

* ``synthetic_corpus`` / ``synthetic_abstractor``: a small corpus the tests make themselves
  (four topics with distinct vocabularies), trained in seconds; needs no shared data.
* ``shared_corpus_path`` / ``shared_abstractor``: the real arXiv corpus in ``../shared/data``
  (skipped with a clear message when absent), a model trained once per session on a
  few thousand of its documents and saved to a temporary artifact directory.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from abstractor_widgets.corpus import Corpus, default_corpus_path

ROOT = Path(__file__).resolve().parent.parent
TEST_OUTPUT = ROOT / "test-output"

from synthetic_data import FILLER, VOCABULARIES, make_synthetic_frame  # noqa: F401 (re-exported)


@pytest.fixture(scope="session")
def synthetic_frame() -> pd.DataFrame:
    return make_synthetic_frame()


@pytest.fixture(scope="session")
def synthetic_corpus(synthetic_frame) -> Corpus:
    return Corpus.from_frame(synthetic_frame, name="synthetic")


@pytest.fixture(scope="session")
def synthetic_artifact(tmp_path_factory, synthetic_corpus) -> Path:
    from abstractor_widgets import Abstractor

    out = tmp_path_factory.mktemp("synthetic") / "model"
    # no_above=0.9: every synthetic document mixes topics, the default 0.4 would drop most words
    Abstractor.train(synthetic_corpus, 4, out=out, passes=20, progress=False, random_state=1, no_above=0.9)
    return out


@pytest.fixture()
def synthetic_abstractor(synthetic_artifact, tmp_path):
    """A fresh copy per test: label edits and updates never leak between tests."""
    import shutil

    from abstractor_widgets import Abstractor

    copy = tmp_path / "model"
    shutil.copytree(synthetic_artifact, copy)
    return Abstractor.load(copy)


@pytest.fixture(scope="session")
def shared_corpus_path() -> Path:
    path = default_corpus_path()
    if path is None or not path.is_file():
        pytest.skip("the shared arXiv corpus (../shared/data/arxiv_ml_abstracts.parquet) is not on this machine")
    return path


@pytest.fixture(scope="session")
def shared_frame(shared_corpus_path) -> pd.DataFrame:
    return pd.read_parquet(shared_corpus_path)


SHARED_TRAIN_DOCS = int(os.environ.get("ABSTRACTOR_TEST_DOCS", "3000"))


@pytest.fixture(scope="session")
def shared_artifact(tmp_path_factory, shared_frame) -> Path:
    """A K=12 model trained on the first few thousand documents of the shared corpus."""
    from abstractor_widgets import Abstractor

    out = tmp_path_factory.mktemp("shared") / "model"
    corpus = Corpus.from_frame(shared_frame.iloc[:SHARED_TRAIN_DOCS], name="shared-head")
    Abstractor.train(corpus, 12, out=out, passes=3, progress=False, random_state=0)
    return out


@pytest.fixture(scope="session")
def shared_phrase_abstractor(shared_frame):
    """A small real model with phrase detection on (off by default), in memory."""
    from abstractor_widgets import Abstractor
    from abstractor_widgets.text import Preprocessor

    corpus = Corpus.from_frame(shared_frame.iloc[:SHARED_TRAIN_DOCS], name="shared-phrases")
    return Abstractor.train(corpus, 8, passes=1, progress=False, lexical=False, random_state=0,
                            preprocessor=Preprocessor(phrases=True))


@pytest.fixture(scope="session")
def shared_abstractor(shared_artifact):
    from abstractor_widgets import Abstractor

    return Abstractor.load(shared_artifact)


@pytest.fixture(scope="session")
def held_out_texts(shared_frame) -> list[str]:
    """Abstracts the shared model never saw."""
    return shared_frame["abstract"].iloc[-300:].tolist()
