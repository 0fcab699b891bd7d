"""abstractor-widgets: colour research abstracts by LDA topic and find similar papers.

The plain Python API works without Jupyter::

    from abstractor_widgets import Abstractor
    ab = Abstractor.load("artifacts/default")
    ab.colorize(text); ab.similar(text, n=5); ab.random_document()

``ab.widget()`` (or :class:`AbstractorWidget`) is the interactive Jupyter view over it.
Heavy dependencies (gensim, anywidget) are imported only when first needed.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Abstractor": ".abstractor",
    "Analysis": ".abstractor",
    "AbstractorWidget": ".widget",
    "Corpus": ".corpus",
    "CorpusError": ".corpus",
    "Document": ".corpus",
    "load_corpus": ".corpus",
    "Tokenizer": ".text",
    "Preprocessor": ".text",
    "TopicModel": ".model",
    "SimilarityIndex": ".index",
    "ArtifactError": ".store",
}

__all__ = sorted(_EXPORTS) + ["__version__"]

if TYPE_CHECKING:
    from .abstractor import Abstractor, Analysis
    from .corpus import Corpus, CorpusError, Document, load_corpus
    from .index import SimilarityIndex
    from .model import TopicModel
    from .store import ArtifactError
    from .text import Preprocessor, Tokenizer
    from .widget import AbstractorWidget


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'abstractor_widgets' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
