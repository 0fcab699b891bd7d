"""A small synthetic corpus the tests make themselves (four topics with distinct vocabularies).

A module of its own (not conftest) so tests anywhere under tests/ can import it unambiguously.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
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


# -- a static embedding model (Model2Vec directory), made without PyTorch or a download ---------
#: "feline" and "kitten" share no letters but have the same vector (a synonym pair).
SYNONYMS = ("feline", "kitten")
DIM = 16


def _tokenizer(words: list[str]):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    vocab = {"[UNK]": 0, "[PAD]": 1, **{w: i + 2 for i, w in enumerate(words)}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return tokenizer


def make_static_model(directory: Path, dim: int = DIM, seed: int = 0) -> Path:
    """A Model2Vec directory (model.safetensors, tokenizer.json, config.json) as
    ``StaticModel.save_pretrained`` writes it."""
    from model2vec import StaticModel

    rng = np.random.default_rng(seed)
    words = sorted({w for vocab in VOCABULARIES.values() for w in vocab} | set(FILLER) | set(SYNONYMS)
                   | {"paper", "number"})
    tokenizer = _tokenizer(words)
    axes = {name: rng.normal(size=dim) for name in VOCABULARIES}
    vectors = np.zeros((tokenizer.get_vocab_size(), dim), dtype=np.float32)
    for word, token_id in tokenizer.get_vocab().items():
        topic = next((name for name, vocab in VOCABULARIES.items() if word in vocab), None)
        vectors[token_id] = (axes[topic] if topic else 0.0) + 0.3 * rng.normal(size=dim)
    shared = rng.normal(size=dim) * 3
    for word in SYNONYMS:
        vectors[tokenizer.token_to_id(word)] = shared
    StaticModel(vectors=vectors, tokenizer=tokenizer, normalize=True).save_pretrained(directory)
    return directory
