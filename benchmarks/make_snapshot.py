#!/usr/bin/env python
"""Generate a synthetic arXiv metadata snapshot in the format of Kaggle's
``arxiv-metadata-oai-snapshot.json``.

The real file is JSON lines, one paper per line, with compact separators, non-ASCII
characters written as UTF-8 and these keys in this order::

    {"id":"0704.0001","submitter":"Pavel Nadolsky","authors":"C. Bal\\'azs, E. L. Berger, ...",
     "title":"Calculation of prompt diphoton production cross sections at Tevatron and\\n  LHC energies",
     "comments":"37 pages, 15 figures; published version","journal-ref":"Phys.Rev.D76:013009,2007",
     "doi":"10.1103/PhysRevD.76.013009","report-no":"ANL-HEP-PR-07-12","categories":"hep-ph",
     "license":null,"abstract":"  A fully differential calculation in perturbative quantum ...\\n",
     "versions":[{"version":"v1","created":"Mon, 2 Apr 2007 19:18:42 GMT"},...],
     "update_date":"2008-11-13","authors_parsed":[["Bal\u00e1zs","C.",""],...]}

(shown here over several lines; in the file it is one line). What this generator
reproduces:

* ids: new style ``YYMM.NNNN`` (2007-04 .. 2014-12) and ``YYMM.NNNNN`` (2015 on), then
  old style ``archive/YYMMNNN`` (``math/0406595``, ``hep-th/9901001``, legacy archives
  such as ``alg-geom``); about 15 % old style; ids increase as strings;
* titles wrapped at about 72 characters with ``"\\n  "`` continuation lines; abstracts
  that start with two spaces, are wrapped at about 78 characters with ``"\\n"`` and end
  with ``"\\n"``;
* authors with TeX accents in ``authors`` (``Bal\\'azs``) and UTF-8 in
  ``authors_parsed`` (``Balázs``); ``null`` for missing comments, journal-ref, doi,
  report-no, license;
* ``versions[i].created`` in RFC 2822 style with the correct weekday, ``update_date`` on
  or after the last version;
* a category mix like arXiv's: many ``cs.*``, ``math.*``, ``cond-mat.*``, ``astro-ph``,
  ``physics.*``, ``hep-*`` ..., primary first, with cross-lists (``cs.LG`` <-> ``stat.ML``,
  ``math.ST`` <-> ``stat.TH``, ``cs.IT`` <-> ``math.IT`` ...); about 3 % of the records
  list ``stat.ML`` and about 9 % ``cs.LG``;
* a few "decoys" (0.2 %): records whose ``comments`` name ``stat.ML`` or ``cs.LG`` though
  their categories do not, so that a raw-bytes pre-filter must be followed by an exact
  test.

Titles and abstracts are recombined from the real abstracts of
``../shared/data/arxiv_ml_abstracts.parquet`` (the first part of one abstract followed by
the end of another), so every paper reads like machine learning whatever its
categories; without that file a small synthetic vocabulary is used. Output is a
deterministic function of ``(records, seed, pool)``.

A sidecar ``<out>.meta.json`` records the seed, the size and the ground truth counts
(records listing each category, records listing each archive), which
``benchmarks/snapshot_scale.py`` uses to check what the reader keeps.

Usage::

    python benchmarks/make_snapshot.py --records 2700000 --out /tmp/arxiv-snapshot.json [--seed 0]

``.gz`` and ``.zip`` outputs are compressed (one member in the zip archive).
"""

from __future__ import annotations

import argparse
import bisect
import gzip
import json
import math
import random
import sys
import time
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

#: Keys of a snapshot record, in the order of the real file.
KEYS = (
    "id",
    "submitter",
    "authors",
    "title",
    "comments",
    "journal-ref",
    "doi",
    "report-no",
    "categories",
    "license",
    "abstract",
    "versions",
    "update_date",
    "authors_parsed",
)
DEFAULT_RECORDS = 2_700_000
REPO = Path(__file__).resolve().parent.parent
#: Real abstracts to recombine (not part of the repository).
DEFAULT_POOL_PATH = REPO.parent / "shared" / "data" / "arxiv_ml_abstracts.parquet"

TITLE_WIDTH = 72
ABSTRACT_WIDTH = 78
OLD_STYLE_SHARE = 0.15
DECOY_RATE = 0.002

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _esc(text: str) -> str:
    """``text`` escaped as the inside of a JSON string (UTF-8 kept, as in the real file)."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


def _jstr(text: str | None) -> str:
    """A JSON string literal, or ``null``."""
    return "null" if text is None else json.dumps(text, ensure_ascii=False)


# --------------------------------------------------------------------------------------
# categories
# --------------------------------------------------------------------------------------
# Primary archive of a new-style paper (relative weights, roughly arXiv's mix).
_NEW_ARCHIVES = {
    "cs": 0.30, "math": 0.20, "cond-mat": 0.10, "astro-ph": 0.085, "physics": 0.07,
    "quant-ph": 0.05, "hep-ph": 0.04, "hep-th": 0.035, "stat": 0.025, "eess": 0.025,
    "gr-qc": 0.02, "q-bio": 0.01, "nucl-th": 0.01, "hep-ex": 0.01, "math-ph": 0.01,
    "nlin": 0.008, "q-fin": 0.005, "hep-lat": 0.005, "nucl-ex": 0.004, "econ": 0.004,
}
# Old-style archives (before April 2007) with (weight, first year, last year).
_OLD_ARCHIVES = {
    "acc-phys": (0.001, 1994, 1996), "adap-org": (0.001, 1993, 1999),
    "alg-geom": (0.003, 1992, 1997), "ao-sci": (0.0005, 1995, 1996),
    "astro-ph": (0.18, 1992, 2007), "atom-ph": (0.001, 1995, 1996),
    "bayes-an": (0.0005, 1995, 1996), "chao-dyn": (0.004, 1993, 1999),
    "chem-ph": (0.001, 1994, 1996), "cmp-lg": (0.002, 1994, 1998),
    "comp-gas": (0.0005, 1993, 1999), "cond-mat": (0.18, 1992, 2007),
    "cs": (0.03, 1998, 2007), "dg-ga": (0.001, 1994, 1997), "funct-an": (0.001, 1992, 1997),
    "gr-qc": (0.04, 1992, 2007), "hep-ex": (0.015, 1994, 2007), "hep-lat": (0.015, 1992, 2007),
    "hep-ph": (0.14, 1992, 2007), "hep-th": (0.12, 1991, 2007), "math": (0.12, 1992, 2007),
    "math-ph": (0.015, 1998, 2007), "mtrl-th": (0.001, 1994, 1996),
    "nlin": (0.015, 1999, 2007), "nucl-ex": (0.008, 1994, 2007), "nucl-th": (0.025, 1992, 2007),
    "patt-sol": (0.001, 1993, 1999), "physics": (0.03, 1996, 2007),
    "plasm-ph": (0.0005, 1995, 1996), "q-alg": (0.002, 1994, 1997), "q-bio": (0.005, 2003, 2007),
    "quant-ph": (0.06, 1994, 2007), "solv-int": (0.002, 1993, 1999),
    "supr-con": (0.001, 1994, 1996),
}
# Legacy archives are listed with the category that replaced them.
_LEGACY = {
    "acc-phys": "physics.acc-ph", "adap-org": "nlin.AO", "alg-geom": "math.AG",
    "ao-sci": "physics.ao-ph", "atom-ph": "physics.atom-ph", "bayes-an": "physics.data-an",
    "chao-dyn": "nlin.CD", "chem-ph": "physics.chem-ph", "cmp-lg": "cs.CL",
    "comp-gas": "nlin.CG", "dg-ga": "math.DG", "funct-an": "math.FA", "mtrl-th": "cond-mat.mtrl-sci",
    "patt-sol": "nlin.PS", "plasm-ph": "physics.plasm-ph", "q-alg": "math.QA",
    "solv-int": "nlin.SI", "supr-con": "cond-mat.supr-con",
}
# Subject classes of each archive with the weight of each as a primary category.
_SUBJECTS = {
    "cs": {
        "cs.CV": 0.16, "cs.LG": 0.15, "cs.CL": 0.09, "cs.AI": 0.06, "cs.RO": 0.04,
        "cs.IT": 0.05, "cs.CR": 0.04, "cs.DS": 0.04, "cs.NI": 0.04, "cs.SE": 0.03,
        "cs.DC": 0.03, "cs.LO": 0.03, "cs.SY": 0.025, "cs.IR": 0.02, "cs.HC": 0.02,
        "cs.NE": 0.02, "cs.CY": 0.02, "cs.DB": 0.015, "cs.PL": 0.02, "cs.GT": 0.015,
        "cs.CC": 0.015, "cs.SI": 0.02, "cs.MA": 0.008, "cs.DM": 0.015, "cs.NA": 0.01,
        "cs.CG": 0.008, "cs.FL": 0.007, "cs.SD": 0.01, "cs.MM": 0.005, "cs.GR": 0.006,
        "cs.AR": 0.005, "cs.ET": 0.004, "cs.CE": 0.005, "cs.DL": 0.004, "cs.PF": 0.003,
        "cs.MS": 0.003, "cs.SC": 0.003, "cs.OS": 0.002, "cs.GL": 0.0005, "cs.OH": 0.002,
    },
    "math": {
        "math.AP": 0.09, "math.PR": 0.08, "math.CO": 0.08, "math.AG": 0.07, "math.OC": 0.07,
        "math.NT": 0.06, "math.DG": 0.06, "math.NA": 0.06, "math.FA": 0.05, "math.DS": 0.05,
        "math.ST": 0.04, "math.GT": 0.035, "math.RT": 0.03, "math.CA": 0.03, "math.LO": 0.02,
        "math.GR": 0.03, "math.QA": 0.02, "math.SG": 0.01, "math.AT": 0.015, "math.RA": 0.02,
        "math.OA": 0.015, "math.CV": 0.02, "math.CT": 0.01, "math.KT": 0.005, "math.MG": 0.01,
        "math.SP": 0.01, "math.HO": 0.005, "math.IT": 0.02, "math.GM": 0.005, "math.AC": 0.015,
    },
    "cond-mat": {
        "cond-mat.mes-hall": 0.2, "cond-mat.str-el": 0.17, "cond-mat.mtrl-sci": 0.2,
        "cond-mat.stat-mech": 0.14, "cond-mat.supr-con": 0.08, "cond-mat.soft": 0.09,
        "cond-mat.quant-gas": 0.06, "cond-mat.dis-nn": 0.04, "cond-mat.other": 0.02,
    },
    "astro-ph": {
        "astro-ph.GA": 0.27, "astro-ph.CO": 0.2, "astro-ph.SR": 0.2, "astro-ph.HE": 0.17,
        "astro-ph.EP": 0.08, "astro-ph.IM": 0.08,
    },
    "physics": {
        "physics.optics": 0.2, "physics.flu-dyn": 0.12, "physics.atom-ph": 0.07,
        "physics.comp-ph": 0.06, "physics.plasm-ph": 0.07, "physics.ins-det": 0.06,
        "physics.chem-ph": 0.06, "physics.soc-ph": 0.06, "physics.bio-ph": 0.05,
        "physics.app-ph": 0.08, "physics.gen-ph": 0.03, "physics.data-an": 0.03,
        "physics.class-ph": 0.02, "physics.acc-ph": 0.02, "physics.ao-ph": 0.02,
        "physics.geo-ph": 0.02, "physics.med-ph": 0.02, "physics.hist-ph": 0.01,
        "physics.ed-ph": 0.01, "physics.space-ph": 0.01, "physics.atm-clus": 0.005,
        "physics.pop-ph": 0.005,
    },
    "stat": {"stat.ML": 0.45, "stat.ME": 0.3, "stat.AP": 0.12, "stat.CO": 0.06, "stat.TH": 0.05, "stat.OT": 0.02},
    "eess": {"eess.SP": 0.35, "eess.IV": 0.25, "eess.AS": 0.15, "eess.SY": 0.25},
    "q-bio": {
        "q-bio.NC": 0.25, "q-bio.QM": 0.2, "q-bio.PE": 0.18, "q-bio.BM": 0.12, "q-bio.MN": 0.08,
        "q-bio.GN": 0.07, "q-bio.TO": 0.04, "q-bio.CB": 0.03, "q-bio.SC": 0.02, "q-bio.OT": 0.01,
    },
    "q-fin": {
        "q-fin.ST": 0.2, "q-fin.CP": 0.15, "q-fin.MF": 0.15, "q-fin.PM": 0.12, "q-fin.RM": 0.1,
        "q-fin.TR": 0.1, "q-fin.GN": 0.08, "q-fin.PR": 0.07, "q-fin.EC": 0.03,
    },
    "econ": {"econ.EM": 0.4, "econ.GN": 0.35, "econ.TH": 0.25},
    "nlin": {"nlin.CD": 0.35, "nlin.PS": 0.2, "nlin.SI": 0.2, "nlin.AO": 0.2, "nlin.CG": 0.05},
}
# Always listed together (both directions).
_PAIRS = {
    "math.ST": "stat.TH", "stat.TH": "math.ST", "cs.IT": "math.IT", "math.IT": "cs.IT",
    "eess.SY": "cs.SY", "cs.SY": "eess.SY", "math-ph": "math.MP", "math.MP": "math-ph",
    "cs.NA": "math.NA", "q-fin.EC": "econ.GN",
}
# Extra cross-lists of a primary category: (category, probability).
_CROSS = {
    "cs.LG": (("stat.ML", 0.36), ("cs.AI", 0.3), ("cs.CV", 0.08), ("math.OC", 0.05), ("cs.NE", 0.04)),
    "stat.ML": (("cs.LG", 0.75), ("stat.ME", 0.1), ("math.ST", 0.05), ("stat.CO", 0.05)),
    "cs.AI": (("cs.LG", 0.3), ("cs.CL", 0.1), ("cs.LO", 0.05), ("stat.ML", 0.03)),
    "cs.CV": (("cs.LG", 0.25), ("eess.IV", 0.12), ("cs.AI", 0.1), ("stat.ML", 0.02)),
    "cs.CL": (("cs.AI", 0.3), ("cs.LG", 0.25), ("stat.ML", 0.02)),
    "cs.RO": (("cs.LG", 0.15), ("cs.SY", 0.12), ("cs.AI", 0.1)),
    "cs.IR": (("cs.LG", 0.2), ("cs.CL", 0.1)),
    "cs.NE": (("cs.LG", 0.35), ("cs.AI", 0.2), ("stat.ML", 0.05)),
    "cs.SI": (("physics.soc-ph", 0.35), ("cs.LG", 0.1)),
    "cs.CR": (("cs.LG", 0.12),),
    "cs.SD": (("eess.AS", 0.8), ("cs.LG", 0.15)),
    "stat.ME": (("stat.ML", 0.12), ("stat.AP", 0.1), ("math.ST", 0.05)),
    "stat.AP": (("stat.ML", 0.1), ("stat.ME", 0.2)),
    "stat.CO": (("stat.ML", 0.15), ("stat.ME", 0.2)),
    "math.OC": (("cs.LG", 0.08), ("cs.SY", 0.15), ("stat.ML", 0.03)),
    "math.PR": (("math.ST", 0.05), ("math-ph", 0.05)),
    "math.NA": (("cs.NA", 0.9),),
    "eess.SP": (("cs.LG", 0.15), ("cs.IT", 0.15)),
    "eess.IV": (("cs.CV", 0.6), ("cs.LG", 0.15)),
    "eess.AS": (("cs.SD", 0.8), ("cs.CL", 0.1)),
    "q-bio.NC": (("cs.NE", 0.1), ("cs.LG", 0.05)),
    "q-bio.QM": (("cs.LG", 0.1), ("stat.ML", 0.02)),
    "cond-mat.dis-nn": (("cs.LG", 0.1), ("stat.ML", 0.05)),
    "astro-ph.IM": (("cs.LG", 0.04),),
    "physics.comp-ph": (("cs.LG", 0.05),),
    "physics.data-an": (("stat.ML", 0.05), ("cs.LG", 0.05)),
    "quant-ph": (("cs.LG", 0.015), ("cond-mat.str-el", 0.05), ("hep-th", 0.03)),
    "hep-ph": (("hep-ex", 0.15), ("hep-lat", 0.05), ("astro-ph.CO", 0.05)),
    "hep-th": (("gr-qc", 0.2), ("math-ph", 0.05)),
    "gr-qc": (("astro-ph.CO", 0.2), ("hep-th", 0.2)),
    "nucl-th": (("hep-ph", 0.2), ("nucl-ex", 0.15)),
    "hep-ex": (("hep-ph", 0.15),),
    "q-fin.ST": (("stat.ML", 0.03), ("stat.AP", 0.1)),
    "econ.EM": (("stat.ME", 0.2), ("stat.ML", 0.03)),
}
# Probability of cross-listing one more class of the same archive, and of a related one.
_SAME_ARCHIVE_P = 0.3
_RELATED = {
    "cs": ("math.OC", "eess.SP", "stat.ML", "physics.soc-ph", "q-bio.QM"),
    "math": ("math-ph", "cs.DM", "cs.IT", "stat.TH", "cs.LG"),
    "cond-mat": ("quant-ph", "physics.comp-ph", "physics.chem-ph", "hep-th"),
    "astro-ph": ("gr-qc", "hep-ph", "physics.space-ph"),
    "physics": ("cond-mat.soft", "quant-ph", "cs.LG", "math.NA"),
    "quant-ph": ("cond-mat.quant-gas", "physics.optics", "cs.ET", "physics.atom-ph"),
    "stat": ("cs.LG", "math.PR", "q-bio.QM", "econ.EM"),
    "eess": ("cs.SY", "math.OC", "cs.IT"),
}
_RELATED_P = 0.12
_MODERN_ONLY = ("stat.", "eess.", "econ.", "q-fin.", "astro-ph.")


class _Weighted:
    """Draw items with fixed relative weights (one ``random()`` per draw)."""

    __slots__ = ("items", "cum")

    def __init__(self, weights: dict) -> None:
        self.items = list(weights)
        total = float(sum(weights.values()))
        acc, self.cum = 0.0, []
        for w in weights.values():
            acc += w / total
            self.cum.append(acc)
        self.cum[-1] = 1.0

    def __call__(self, rng: random.Random):
        return self.items[bisect.bisect_right(self.cum, rng.random())]


_SUBJECT_DRAW = {a: _Weighted(w) for a, w in _SUBJECTS.items()}
_NEW_ARCHIVE_DRAW = _Weighted(_NEW_ARCHIVES)


def _primary(archive: str, rng: random.Random, modern: bool) -> list[str]:
    if archive in _LEGACY:
        return [archive, _LEGACY[archive]]
    if archive == "astro-ph" and not modern:
        return ["astro-ph"]  # astro-ph had no subject classes before 2009
    draw = _SUBJECT_DRAW.get(archive)
    return [draw(rng) if draw else archive]


def draw_categories(rng: random.Random, archive: str | None = None, modern: bool = True) -> str:
    """A category string (primary first, then cross-lists) for a paper of ``archive``.

    ``modern=False`` (old-style ids, before 2007) never lists ``stat.*``, ``eess.*``,
    ``econ.*``, ``q-fin.*`` nor astro-ph subject classes, which did not exist then.
    """
    if archive is None:
        archive = _NEW_ARCHIVE_DRAW(rng)
    cats = _primary(archive, rng, modern)
    primary = cats[-1]
    extra: list[str] = []
    pair = _PAIRS.get(primary)
    if pair:
        extra.append(pair)
    for category, p in _CROSS.get(primary, ()):
        if rng.random() < p:
            extra.append(category)
    base = primary.split(".", 1)[0]
    if base in _SUBJECT_DRAW and rng.random() < _SAME_ARCHIVE_P:
        extra.append(_SUBJECT_DRAW[base](rng))
    related = _RELATED.get(base)
    if related and rng.random() < _RELATED_P:
        extra.append(related[rng.randrange(len(related))])
    for category in extra:
        if category in cats or (not modern and category.startswith(_MODERN_ONLY)):
            continue
        cats.append(category)
        pair = _PAIRS.get(category)
        if pair and pair not in cats and (modern or not pair.startswith(_MODERN_ONLY)):
            cats.append(pair)
    return " ".join(cats)


# --------------------------------------------------------------------------------------
# text pool
# --------------------------------------------------------------------------------------
@dataclass
class TextPool:
    """Titles and abstracts to recombine, pre-wrapped and pre-escaped for JSON.

    ``titles`` are tuples of escaped words; ``abstracts`` are tuples of escaped lines,
    wrapped as in the real file (first line indented by two spaces).
    """

    titles: list[tuple[str, ...]]
    abstracts: list[tuple[str, ...]]
    source: str

    def __len__(self) -> int:
        return len(self.abstracts)


def _wrap(words: list[str], width: int, first_indent: int = 0) -> list[str]:
    lines: list[str] = []
    current: list[str] = []
    size = first_indent
    for word in words:
        if current and size + 1 + len(word) > width:
            lines.append(" ".join(current))
            current, size = [word], len(word)
        else:
            size += len(word) + (1 if current else 0)
            current.append(word)
    if current:
        lines.append(" ".join(current))
    return lines


def pool_from_texts(titles: list[str], abstracts: list[str], source: str = "<texts>") -> TextPool:
    """Build a :class:`TextPool` from plain titles and abstracts."""
    # JSON escaping never produces a space, so escape each text once and split it after
    title_words = [tuple(_esc(" ".join(t.split())).split()) or ("Untitled",) for t in titles]
    abstract_lines = [
        tuple(_wrap(_esc(" ".join(a.split())).split(), ABSTRACT_WIDTH, first_indent=2)) or ("(no abstract)",)
        for a in abstracts
    ]
    return TextPool(title_words, abstract_lines, source)


_SYNTHETIC_WORDS = (
    "we propose a novel method for learning sparse representations of high dimensional data "
    "based on stochastic gradient descent and variational inference the model is evaluated "
    "on benchmark datasets and shows improved accuracy over strong baselines while reducing "
    "computational cost our analysis establishes convergence guarantees under mild "
    "assumptions and experiments on image text and graph data confirm the theory $O(n \\log n)$"
).split()


def synthetic_pool(size: int = 200, seed: int = 0) -> TextPool:
    """A small pool of made-up texts (used when the real abstracts are not available)."""
    rng = random.Random(seed)
    titles, abstracts = [], []
    for _ in range(size):
        titles.append(" ".join(rng.choice(_SYNTHETIC_WORDS) for _ in range(rng.randint(4, 16))).capitalize())
        abstracts.append(" ".join(rng.choice(_SYNTHETIC_WORDS) for _ in range(rng.randint(60, 250))).capitalize() + ".")
    return pool_from_texts(titles, abstracts, source=f"synthetic(size={size}, seed={seed})")


def load_pool(path: str | Path | None = None, limit: int | None = None) -> TextPool:
    """Titles and abstracts of the shared corpus (``limit`` first rows), or a synthetic pool.

    Falls back to :func:`synthetic_pool` when the parquet file does not exist.
    """
    path = Path(path) if path is not None else DEFAULT_POOL_PATH
    if not path.is_file():
        return synthetic_pool()
    import pyarrow as pa
    import pyarrow.parquet as pq

    if limit is not None:  # only the first rows: read one batch, not the whole file
        batches = pq.ParquetFile(path).iter_batches(batch_size=int(limit), columns=["title", "abstract"])
        table = pa.Table.from_batches([next(batches)])
    else:
        table = pq.read_table(path, columns=["title", "abstract"])
    titles = [t or "" for t in table.column("title").to_pylist()]
    abstracts = [a or "" for a in table.column("abstract").to_pylist()]
    return pool_from_texts(titles, abstracts, source=f"{path.name}[:{len(abstracts)}]")


# --------------------------------------------------------------------------------------
# people, venues
# --------------------------------------------------------------------------------------
_FIRST = (
    "A.", "B.", "C.", "D.", "E.", "F.", "G.", "H.", "I.", "J.", "K.", "L.", "M.", "N.", "O.",
    "P.", "R.", "S.", "T.", "V.", "W.", "Y.", "Z.", "E. L.", "P. M.", "C.-P.", "J. R.",
    "Pavel", "Maria", "Wei", "Yann", "Ana", "Hiroshi", "Olga", "Kwame", "Priya", "Jean-Luc",
    "Sofia", "Ahmed", "Mei", "Lars", "Giulia", "Tomasz", "Fatima", "Diego", "Ingrid",
)
# (as written in "authors" with TeX accents, as in "authors_parsed" in UTF-8)
_LAST = (
    ("Smith", "Smith"), ("Wang", "Wang"), ("Li", "Li"), ("Zhang", "Zhang"), ("Chen", "Chen"),
    ("Liu", "Liu"), ("Kim", "Kim"), ("Nguyen", "Nguyen"), ("Garcia", "Garcia"),
    ("M\\\"uller", "Müller"), ("Bal\\'azs", "Balázs"), ("Berger", "Berger"),
    ("Nadolsky", "Nadolsky"), ("Yuan", "Yuan"), ("Schr\\\"odinger", "Schrödinger"),
    ("Erd\\H{o}s", "Erdős"), ("Nu\\~nez", "Nuñez"), ("\\c{C}elik", "Çelik"),
    ("W\\'ojcik", "Wójcik"), ("Andr\\'e", "André"), ("Jensen", "Jensen"), ("Rossi", "Rossi"),
    ("Tanaka", "Tanaka"), ("Ivanov", "Ivanov"), ("Kowalski", "Kowalski"), ("Okafor", "Okafor"),
    ("Patel", "Patel"), ("Singh", "Singh"), ("Johnson", "Johnson"), ("Brown", "Brown"),
    ("Martin", "Martin"), ("Dubois", "Dubois"), ("Silva", "Silva"), ("Santos", "Santos"),
    ("Cohen", "Cohen"), ("Levi", "Levi"), ("Park", "Park"), ("Sato", "Sato"), ("Novak", "Novák"),
    ("Horv\\'ath", "Horváth"), ("Hansen", "Hansen"), ("Larsen", "Larsen"), ("O'Brien", "O'Brien"),
    ("de la Cruz", "de la Cruz"), ("van der Berg", "van der Berg"), ("Fischer", "Fischer"),
)
_SUFFIXES = ("", "", "", "", "", "", "", "", "", "", "", "", "", "", "", "", "", "", "", "Jr", "III")
_JOURNALS = (
    "Phys.Rev.D{v}:{p},{y}", "Phys. Rev. Lett. {v}, {p} ({y})", "J. Mach. Learn. Res. {v} ({y}) {p}",
    "Astrophys.J.{v}:{p},{y}", "Ann. Statist. {v} ({y}) {p}", "Nucl.Phys.B{v}:{p},{y}",
    "Commun.Math.Phys.{v}:{p},{y}", "IEEE Trans. Inf. Theory {v} ({y}) {p}",
    "Neural Computation {v} ({y}) {p}", "Mon.Not.Roy.Astron.Soc.{v}:{p},{y}",
)
_LICENSES = (
    ("http://arxiv.org/licenses/nonexclusive-distrib/1.0/", 0.68),
    ("http://creativecommons.org/licenses/by/4.0/", 0.2),
    ("http://creativecommons.org/licenses/by-nc-sa/4.0/", 0.04),
    ("http://creativecommons.org/licenses/by-sa/4.0/", 0.02),
    ("http://creativecommons.org/licenses/by-nc-nd/4.0/", 0.03),
    ("http://creativecommons.org/publicdomain/zero/1.0/", 0.01),
    ("http://creativecommons.org/licenses/by/3.0/", 0.02),
)
_LICENSE_DRAW = _Weighted({_jstr(url): w for url, w in _LICENSES})
_REPORT_PREFIXES = ("ANL-HEP-PR", "CERN-TH", "SLAC-PUB", "FERMILAB-PUB", "DESY", "KEK-TH", "MIT-CTP", "IPMU")
_COMMENT_EXTRAS = (
    "", "", "", "", "; published version", "; accepted at NeurIPS", "; to appear in ICML",
    "; minor revisions", "; v2: typos corrected", "; comments welcome", "; journal version",
)
_DECOY_COMMENTS = (
    "Previously submitted to {c}; moved at the moderators' request",
    "Not cross-listed to {c}; see the companion paper",
)


def _make_authors(rng: random.Random, count: int) -> list[tuple[str, str]]:
    """``count`` authors as (fragment of "authors", JSON of the "authors_parsed" entry)."""
    people = []
    for _ in range(count):
        first = rng.choice(_FIRST)
        tex, utf8 = rng.choice(_LAST)
        suffix = rng.choice(_SUFFIXES)
        shown = f"{first} {tex}" + (f" {suffix}" if suffix else "")
        people.append((_esc(shown), json.dumps([utf8, first, suffix], ensure_ascii=False, separators=(",", ":"))))
    return people


# --------------------------------------------------------------------------------------
# record layout
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Segment:
    """A run of consecutive ids: new style (``archive=None``) or old style."""

    year: int
    month: int
    count: int
    archive: str | None = None

    def ids(self) -> Iterator[str]:
        yy, mm = self.year % 100, self.month
        if self.archive is not None:
            return (f"{self.archive}/{yy:02d}{mm:02d}{k:03d}" for k in range(1, self.count + 1))
        if self.year < 2015:
            return (f"{yy:02d}{mm:02d}.{k:04d}" for k in range(1, self.count + 1))
        return (f"{yy:02d}{mm:02d}.{k:05d}" for k in range(1, self.count + 1))


def plan_segments(records: int, seed: int = 0) -> list[_Segment]:
    """How many papers each month (and old-style archive) gets, in id order."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n_old = int(round(records * OLD_STYLE_SHARE)) if records >= 20 else 0
    # old style: archives in name order; months ordered as id strings (00.. before 91..)
    names = sorted(_OLD_ARCHIVES, key=lambda a: a + "/")  # as id strings: "math-ph/" < "math/"
    weights = np.array([_OLD_ARCHIVES[a][0] for a in names])
    per_archive = rng.multinomial(n_old, weights / weights.sum())
    old: list[_Segment] = []
    overflow = 0
    for archive, total in zip(names, per_archive):
        _, first, last = _OLD_ARCHIVES[archive]
        months = [(y, m) for y in range(first, last + 1) for m in range(1, 13)
                  if (y, m) >= (1991, 8) and (y, m) <= (2007, 3)]
        months.sort(key=lambda ym: f"{ym[0] % 100:02d}{ym[1]:02d}")
        growth = np.array([1.0 + (y - 1991) / 4.0 for y, _ in months])
        counts = rng.multinomial(int(total), growth / growth.sum())
        for (y, m), c in zip(months, counts):
            kept = min(int(c), 999)
            overflow += int(c) - kept
            if kept:
                old.append(_Segment(y, m, kept, archive))
    # new style: 2007-04 .. 2025-12, submissions growing about fivefold
    months = [(y, m) for y in range(2007, 2026) for m in range(1, 13) if (y, m) >= (2007, 4)]
    growth = np.linspace(1.0, 5.0, len(months))
    n_new = records - n_old + overflow
    counts = rng.multinomial(n_new, growth / growth.sum()).astype(np.int64)
    capacity = np.array([9999 if y < 2015 else 99999 for y, _ in months])
    excess = int(np.clip(counts - capacity, 0, None).sum())
    counts = np.minimum(counts, capacity)
    for i in range(len(counts) - 1, -1, -1):  # overflow goes to the latest months
        if not excess:
            break
        add = min(int(capacity[i] - counts[i]), excess)
        counts[i] += add
        excess -= add
    if excess:
        raise ValueError(f"too many records for the id space: {records}")
    new = [_Segment(y, m, int(c)) for (y, m), c in zip(months, counts) if c]
    return new + old


# --------------------------------------------------------------------------------------
# generation
# --------------------------------------------------------------------------------------
class SnapshotStats:
    """Ground truth about a generated file: records listing each category / archive."""

    def __init__(self) -> None:
        self.records = 0
        self.old_style = 0
        self.decoys: Counter[str] = Counter()
        self.category_strings: Counter[str] = Counter()

    def add(self, categories: str, old_style: bool) -> None:
        self.records += 1
        self.old_style += old_style
        self.category_strings[categories] += 1

    def listed(self) -> Counter[str]:
        """Records listing each category."""
        out: Counter[str] = Counter()
        for cats, n in self.category_strings.items():
            for c in set(cats.split()):
                out[c] += n
        return out

    def archives(self) -> Counter[str]:
        """Records listing at least one category of each archive (``cs`` for ``cs.*``)."""
        out: Counter[str] = Counter()
        for cats, n in self.category_strings.items():
            for a in {c.split(".", 1)[0] for c in cats.split() if "." in c}:
                out[a] += n
        return out

    def to_dict(self) -> dict:
        listed = self.listed()
        return {
            "records": self.records,
            "old_style_ids": self.old_style,
            "decoys": dict(self.decoys),
            "listed": dict(sorted(listed.items(), key=lambda kv: (-kv[1], kv[0]))),
            "archives": dict(sorted(self.archives().items(), key=lambda kv: (-kv[1], kv[0]))),
        }


def iter_snapshot_lines(
    records: int,
    seed: int = 0,
    pool: TextPool | None = None,
    stats: SnapshotStats | None = None,
) -> Iterator[str]:
    """Yield ``records`` JSON lines (without the newline) in the snapshot's format."""
    pool = pool if pool is not None else synthetic_pool(seed=seed)
    rng = random.Random(seed)
    people = _make_authors(random.Random(seed + 1), 4000)
    n_people = len(people)
    titles, abstracts = pool.titles, pool.abstracts
    n_pool = len(abstracts)
    rand = rng.random
    fromordinal = date.fromordinal
    log = math.log
    licence = _LICENSE_DRAW
    for segment in plan_segments(records, seed):
        modern = segment.archive is None
        month_start = date(segment.year, segment.month, 1).toordinal()
        next_month = date(segment.year + segment.month // 12, segment.month % 12 + 1, 1).toordinal()
        month_days = next_month - month_start
        for arxiv_id in segment.ids():
            categories = draw_categories(rng, segment.archive, modern)
            # title: the start of one, the end of another, wrapped like the real file
            ta, tb = titles[int(rand() * n_pool)], titles[int(rand() * n_pool)]
            words = ta[: (len(ta) + 1) // 2] + tb[len(tb) // 2:]
            title = " ".join(words)
            if len(title) > TITLE_WIDTH:
                title = "\\n  ".join(_wrap(list(words), TITLE_WIDTH))
            # abstract: the first k lines of one, up to half of another's last lines
            aa, ab = abstracts[int(rand() * n_pool)], abstracts[int(rand() * n_pool)]
            k = 1 + int(rand() * len(aa))
            m = int(rand() * (len(ab) // 2 + 1))
            lines = aa[:k] + (ab[len(ab) - m:] if m else ())
            abstract = "  " + "\\n".join(lines) + "\\n"
            # authors
            n_auth = 1 + int(-2.2 * log(1.0 - rand())) if rand() < 0.9 else (8 + int(rand() * 32))
            chosen = [people[int(rand() * n_people)] for _ in range(n_auth)]
            if n_auth == 1:
                authors = chosen[0][0]
            else:
                authors = ", ".join(a for a, _ in chosen[:-1]) + " and " + chosen[-1][0]
            parsed = ",".join(p for _, p in chosen)
            submitter = chosen[int(rand() * n_auth)][0] if rand() < 0.97 else None
            # versions and dates
            ordinal = month_start + int(rand() * month_days)
            versions = []
            for v in range(1, 6):
                d = fromordinal(ordinal)
                versions.append(
                    f'{{"version":"v{v}","created":"{_WEEKDAYS[d.weekday()]}, {d.day} {_MONTHS[d.month - 1]} '
                    f'{d.year} {int(rand() * 24):02d}:{int(rand() * 60):02d}:{int(rand() * 60):02d} GMT"}}'
                )
                if rand() < 0.55 - 0.1 * v:
                    ordinal += 1 + int(rand() * 300)
                else:
                    break
            update = fromordinal(ordinal + (int(rand() * 120) if rand() < 0.3 else 0))
            if not modern and update.year < 2008 and rand() < 0.8:
                update = fromordinal(733000 + int(rand() * 400))  # 2007-11 .. 2008-12 migration dates
            # optional fields
            if rand() < 0.75:
                pages = 4 + int(rand() * 40)
                comments = f'"{pages} pages, {int(rand() * 15)} figures{_COMMENT_EXTRAS[int(rand() * len(_COMMENT_EXTRAS))]}"'
            else:
                comments = "null"
            if rand() < DECOY_RATE:
                target = "stat.ML" if rand() < 0.5 else "cs.LG"
                if target not in categories.split():
                    comments = _jstr(_DECOY_COMMENTS[int(rand() * 2)].format(c=target))
                    if stats is not None:
                        stats.decoys[target] += 1
            year = segment.year
            if rand() < 0.4:
                journal = _jstr(_JOURNALS[int(rand() * len(_JOURNALS))].format(v=1 + int(rand() * 900), p=int(rand() * 99999), y=year + int(rand() * 3)))
            else:
                journal = "null"
            doi = f'"10.{1000 + int(rand() * 9000)}/{arxiv_id.replace("/", ".")}.{int(rand() * 1000)}"' if rand() < 0.45 else "null"
            report = f'"{_REPORT_PREFIXES[int(rand() * len(_REPORT_PREFIXES))]}-{year % 100:02d}-{1 + int(rand() * 200)}"' if rand() < 0.07 else "null"
            license_ = licence(rng) if (modern and rand() < 0.85) else "null"
            if stats is not None:
                stats.add(categories, not modern)
            yield (
                f'{{"id":"{arxiv_id}","submitter":{"null" if submitter is None else chr(34) + submitter + chr(34)},'
                f'"authors":"{authors}","title":"{title}","comments":{comments},"journal-ref":{journal},'
                f'"doi":{doi},"report-no":{report},"categories":"{categories}","license":{license_},'
                f'"abstract":"{abstract}","versions":[{",".join(versions)}],'
                f'"update_date":"{update.isoformat()}","authors_parsed":[{parsed}]}}'
            )


def record_line(record: dict) -> str:
    """One snapshot line for a hand-made record (missing keys become ``null``/empty).

    Keys are written in the real file's order with compact separators, as the generator
    does; use this in tests to add special records (decoys, malformed neighbours ...).
    """
    full = {key: record.get(key) for key in KEYS}
    if full["versions"] is None:
        full["versions"] = [{"version": "v1", "created": "Mon, 2 Apr 2007 19:18:42 GMT"}]
    if full["authors_parsed"] is None:
        full["authors_parsed"] = []
    extra = {k: v for k, v in record.items() if k not in full}
    full.update(extra)
    return json.dumps(full, ensure_ascii=False, separators=(",", ":"))


def _open_output(path: Path):
    suffix = path.suffix.lower()
    if suffix == ".gz":
        return gzip.open(path, "wb", compresslevel=1), None
    if suffix == ".zip":
        archive = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1)
        member = path.stem if path.stem.endswith((".json", ".jsonl")) else path.stem + ".json"
        return archive.open(member, "w", force_zip64=True), archive
    return open(path, "wb", buffering=1 << 20), None


def write_snapshot(
    path: str | Path,
    records: int = DEFAULT_RECORDS,
    seed: int = 0,
    pool: TextPool | None = None,
    *,
    extra_lines: list[str] | None = None,
    meta: bool = True,
    chunk: int = 5000,
) -> dict:
    """Write ``records`` generated lines (then ``extra_lines`` verbatim) to ``path``.

    ``.gz`` and ``.zip`` are compressed. Returns the ground-truth statistics (see
    :class:`SnapshotStats`) plus the file size and the time taken; with ``meta=True``
    they are also written to ``<path>.meta.json``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pool = pool if pool is not None else synthetic_pool(seed=seed)
    stats = SnapshotStats()
    started = time.perf_counter()
    handle, archive = _open_output(path)
    try:
        buffer: list[str] = []
        for line in iter_snapshot_lines(records, seed, pool, stats):
            buffer.append(line)
            if len(buffer) >= chunk:
                buffer.append("")
                handle.write("\n".join(buffer).encode("utf-8"))
                buffer = []
        for line in extra_lines or ():
            buffer.append(line)
        if buffer:
            buffer.append("")
            handle.write("\n".join(buffer).encode("utf-8"))
    finally:
        handle.close()
        if archive is not None:
            archive.close()
    result = {
        "path": str(path),
        "bytes": path.stat().st_size,
        "seed": seed,
        "pool": pool.source,
        "extra_lines": len(extra_lines or ()),
        "seconds": round(time.perf_counter() - started, 2),
        **stats.to_dict(),
    }
    if meta:
        Path(str(path) + ".meta.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=DEFAULT_RECORDS, help="number of papers (default %(default)s)")
    parser.add_argument("--out", required=True, help="output file (.json / .jsonl, optionally .gz or .zip)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pool", default=str(DEFAULT_POOL_PATH), help="parquet file with title/abstract columns")
    parser.add_argument("--pool-limit", type=int, default=None, help="use only the first N abstracts of the pool")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    pool = load_pool(args.pool, limit=args.pool_limit)
    print(f"pool: {len(pool)} texts from {pool.source} ({time.perf_counter() - started:.1f} s)", file=sys.stderr)
    result = write_snapshot(args.out, args.records, args.seed, pool)
    listed = result["listed"]
    print(
        f"wrote {result['records']:,} records, {result['bytes'] / 1e9:.2f} GB to {args.out} in "
        f"{result['seconds']:.1f} s ({result['records'] / max(result['seconds'], 1e-9):,.0f} records/s); "
        f"stat.ML {listed.get('stat.ML', 0):,} ({listed.get('stat.ML', 0) / max(1, result['records']):.1%}), "
        f"cs.LG {listed.get('cs.LG', 0):,} ({listed.get('cs.LG', 0) / max(1, result['records']):.1%}), "
        f"cs.* {result['archives'].get('cs', 0):,}, old-style ids {result['old_style_ids']:,}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
