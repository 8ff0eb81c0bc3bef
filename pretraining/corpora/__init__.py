"""Pretraining corpora, registered in ``simecg.registries.CORPORA``.

Importing this package registers the built-in corpora ``sim`` and ``folder`` (``ptbxl`` lives
with the PTB-XL dataset, :mod:`benchmark.datasets.ptbxl_corpus`). Each is a class with a typed
``Options`` dataclass, built as ``cls(size=, seed=, options=)``; options are set as
``pretrain.corpus_options.<key>`` (``--set pretrain.corpus_options.simulator=gaussian``, or a
suite's ``[pretrain.corpus_options]`` table) and resolved by ``pretraining.config.corpus_options``.
"""

from pretraining.corpora.base import Corpus, resolve_options

__all__ = ["Corpus", "resolve_options"]

# Built-in corpora register themselves on import; keep this list in sync with the folder.
from pretraining.corpora import (
    folder,  # noqa: E402,F401
    sim,  # noqa: E402,F401
)
