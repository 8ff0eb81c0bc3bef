"""Pretraining corpora, registered in ``simecg.registries.CORPORA`` by entry points (``pyproject.toml``).

Built in: ``sim`` (SimECG-N) and ``ecgsyn`` (:mod:`~benchmark.corpora.sim`), ``folder``
(:mod:`~benchmark.corpora.folder`), and ``ptbxl`` / ``ptbxl-authors`` with the PTB-XL dataset
(``benchmark.corpora.ptbxl``). Each is a class with a typed ``Options`` dataclass, built as
``cls(size=, seed=, options=)``; options are set as ``pretrain.corpus_options.<key>`` (a suite's
``[pretrain.corpus_options]`` table or ``--set pretrain.corpus_options.KEY=VALUE``) and resolved by
``pretraining.config.corpus_options``. Modules are imported on the first lookup of their corpus.
"""

from pretraining.corpora.base import Corpus, resolve_options

__all__ = ["Corpus", "resolve_options"]
