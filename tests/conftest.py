"""Shared fixtures.

* ``synthetic_corpus`` / ``synthetic_abstractor``: a small corpus the tests make themselves
  (four topics with distinct vocabularies), trained in seconds; needs no shared data.
* ``shared_corpus_path`` / ``shared_abstractor``: the real arXiv corpus in ``../shared/data``
  (skipped with a clear message when absent), a model trained once per session on a
  few thousand of its documents and saved to a temporary artifact directory.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pandas as pd
import pytest

from abstractor_widgets.corpus import Corpus, default_corpus_path

ROOT = Path(__file__).resolve().parent.parent
TEST_OUTPUT = ROOT / "test-output"

VOCABULARIES = {
    "vision": "image pixel convolution segmentation camera detection object video scene depth".split(),
    "language": "language sentence translation token grammar parsing dialogue corpus speech lexicon".split(),
    "robotics": "robot manipulator grasping locomotion actuator navigation gripper trajectory torque joint".split(),
    "biology": "protein genome enzyme molecule cell mutation sequence receptor antibody tissue".split(),
}
FILLER = "we study the a novel of for and in with this that".split()


def make_synthetic_frame(n_docs: int = 240, seed: int = 0) -> pd.DataFrame:
    """Documents mixing one dominant synthetic topic with a little of another."""
    rng = random.Random(seed)
    names = list(VOCABULARIES)
    rows = []
    for i in range(n_docs):
        main = names[i % len(names)]
        other = rng.choice([n for n in names if n != main])
        words = []
        for _ in range(60):
            pool = VOCABULARIES[main] if rng.random() < 0.8 else VOCABULARIES[other]
            words.append(rng.choice(pool))
            if rng.random() < 0.3:
                words.append(rng.choice(FILLER))
        text = " ".join(words).capitalize() + "."
        rows.append({"id": f"2401.{i:05d}", "title": f"A {main} paper number {i}", "abstract": text,
                     "categories": {"vision": "cs.CV", "language": "cs.CL", "robotics": "cs.RO", "biology": "q-bio.BM"}[main],
                     "published": "2024-01-01"})
    return pd.DataFrame(rows)


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
def shared_abstractor(shared_artifact):
    from abstractor_widgets import Abstractor

    return Abstractor.load(shared_artifact)


@pytest.fixture(scope="session")
def held_out_texts(shared_frame) -> list[str]:
    """Abstracts the shared model never saw."""
    return shared_frame["abstract"].iloc[-300:].tolist()
