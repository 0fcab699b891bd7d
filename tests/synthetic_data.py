"""A small synthetic corpus the tests make themselves (four topics with distinct vocabularies).

A module of its own (not conftest) so tests anywhere under tests/ can import it unambiguously.
"""

from __future__ import annotations

import random

import pandas as pd

VOCABULARIES = {
    "vision": "image pixel convolution segmentation camera detection object video scene depth".split(),
    "language": "language sentence translation token grammar parsing dialogue corpus speech lexicon".split(),
    "robotics": "robot manipulator grasping locomotion actuator navigation gripper trajectory torque joint".split(),
    "biology": "protein genome enzyme molecule cell mutation sequence receptor antibody tissue".split(),
}
FILLER = "we study the a novel of for and in with this that".split()


def make_synthetic_frame(n_docs: int = 240, seed: int = 0) -> pd.DataFrame:
    """Documents of one dominant synthetic topic with a little (5%) of another.

    Each vocabulary word then appears in about a third of the documents, under the
    default `no_above=0.4` of `filter_extremes`.
    """
    rng = random.Random(seed)
    names = list(VOCABULARIES)
    rows = []
    for i in range(n_docs):
        main = names[i % len(names)]
        other = rng.choice([n for n in names if n != main])
        words = []
        for _ in range(60):
            pool = VOCABULARIES[main] if rng.random() < 0.95 else VOCABULARIES[other]
            words.append(rng.choice(pool))
            if rng.random() < 0.3:
                words.append(rng.choice(FILLER))
        text = " ".join(words).capitalize() + "."
        rows.append({"id": f"2401.{i:05d}", "title": f"A {main} paper number {i}", "abstract": text,
                     "categories": {"vision": "cs.CV", "language": "cs.CL", "robotics": "cs.RO", "biology": "q-bio.BM"}[main],
                     "published": "2024-01-01"})
    return pd.DataFrame(rows)
