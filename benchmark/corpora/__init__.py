"""Pretraining sources: every corpus the MAE can be pretrained on, registered in ``simecg.registries.CORPORA``.

Each module holds one kind of source, as a class satisfying :class:`pretraining.corpora.base.Corpus`
and named by an entry point in ``pyproject.toml`` (imported on the first lookup of its name):
``sim`` and ``ecgsyn`` (simulators, :mod:`~benchmark.corpora.sim`), ``folder`` (a user's files,
:mod:`~benchmark.corpora.folder`), ``ptbxl`` and ``ptbxl-authors`` (real PTB-XL records,
:mod:`~benchmark.corpora.ptbxl`), ``g12ec`` and ``g12ec-authors`` (real G12EC records, the same two
cuts, :mod:`~benchmark.corpora.g12ec`), ``vae`` and ``gan`` (sampled from generators trained on the
``ptbxl`` records, :mod:`~benchmark.corpora.generated`), and the materialized store any of them
can be read from (:mod:`~benchmark.corpora.store`). They live in the benchmark, not in
``pretraining``, because a source may depend on the benchmark's data and protocol (the ``ptbxl``
corpus keeps every task's test records out); ``pretraining`` declares the protocol its loop reads.
"""
