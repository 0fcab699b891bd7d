"""Topic quality: c_v coherence of the default model with and without its preprocessing steps.

Trains ``TopicModel(20)`` (the package defaults: LdaModel, 2 passes, chunks of 2,000, seed
0) on the shared corpus with each preprocessing variant and reports c_v and u_mass
coherence of the top 10 words per topic, the reference texts being each model's own
training words:

* ``default``: gensim's English stopwords + the abstract stopwords (``propose``, ``paper``,
  ``method``, ``result`` ... :data:`abstractor_widgets.text.ABSTRACT_STOPWORDS`) + learned
  phrases (``neural_network``);
* ``no phrases``: the same without phrase detection;
* ``no abstract stopwords``: gensim's stopwords only, phrases on;
* ``neither``: gensim's stopwords only, no phrases.

Usage::

    PYTHONPATH=. nice -n 5 .venv/bin/python -m benchmarks.topic_quality            # 60k papers, ~10 min
    PYTHONPATH=. .venv/bin/python -m benchmarks.topic_quality --docs 3000 --variants default,neither
    PYTHONPATH=. nice -n 5 .venv/bin/python -m benchmarks.topic_quality --variants default,"no phrases" --seeds 1,2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from benchmarks.common import load_average, log, shared_frame, table

VARIANTS: dict[str, dict[str, Any]] = {
    "default": {"phrases": True, "abstract_stopwords": True},
    "no phrases": {"phrases": False, "abstract_stopwords": True},
    "no abstract stopwords": {"phrases": True, "abstract_stopwords": False},
    "neither": {"phrases": False, "abstract_stopwords": False},
}


def measure(texts: list[str], name: str, phrases: bool, abstract_stopwords: bool, seed: int = 0) -> dict[str, Any]:
    """Train the default model with one preprocessing variant; its coherence and top words."""
    from abstractor_widgets.model import TopicModel
    from abstractor_widgets.text import ABSTRACT_STOPWORDS, Preprocessor, Tokenizer

    tokenizer = Tokenizer(extra_stopwords=ABSTRACT_STOPWORDS if abstract_stopwords else ())
    t0 = time.perf_counter()
    model = TopicModel(20, preprocessor=Preprocessor(tokenizer=tokenizer, phrases=phrases), random_state=seed,
                       progress=False).fit(texts)
    seconds = time.perf_counter() - t0
    c_v, u_mass = model.coherence("c_v"), model.coherence("u_mass")
    generic = sorted(ABSTRACT_STOPWORDS)
    top = [[t for t, _ in terms] for terms in model.topics(10)]
    row = {"variant": name, "seed": seed, "phrases": phrases, "abstract_stopwords": abstract_stopwords, "documents": len(texts),
           "vocabulary": len(model.dictionary_), "train_seconds": round(seconds, 1), "c_v": round(c_v, 4),
           "u_mass": round(u_mass, 4),
           # how many of the 200 top words are the generic abstract words the stopword list removes
           "generic_top_words": sum(w in generic for words in top for w in words),
           "topics": [" ".join(words[:6]) for words in top], "load_average": load_average()}
    log(f"  {name}, seed {seed}: c_v {c_v:.4f}, u_mass {u_mass:.3f}, {row['generic_top_words']} generic top words, {seconds:.0f} s")
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=None, help="first N papers of the shared corpus (default: all)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated names of VARIANTS")
    parser.add_argument("--seeds", default="0", help="comma-separated random_state values (c_v moves by ~0.01 between seeds)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "topic_quality.json")
    args = parser.parse_args(argv)
    texts = shared_frame()["abstract"].tolist()[: args.docs]
    rows = [measure(texts, name, **VARIANTS[name], seed=int(seed))
            for seed in args.seeds.split(",") for name in args.variants.split(",")]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows}, indent=1))
    print(table([{k: r[k] for k in ("variant", "seed", "vocabulary", "c_v", "u_mass", "generic_top_words", "train_seconds")}
                 for r in rows], title=f"Topic quality, K=20, {len(texts):,} papers"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
