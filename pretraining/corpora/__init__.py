"""What pretraining needs of a corpus: the :class:`~pretraining.corpora.base.Corpus` protocol its loop
reads, the defaults of its optional members (:class:`~pretraining.corpora.base.CorpusBase`), and the
resolution of a corpus's typed ``Options`` from ``pretrain.corpus_options.<key>`` (a suite's
``[pretrain.corpus_options]`` table or ``--set pretrain.corpus_options.KEY=VALUE``).

The corpora themselves (``sim``, ``ecgsyn``, ``folder``, ``ptbxl``, ``ptbxl-authors``, ``vae``,
``gan``) are the benchmark's pretraining sources, in ``benchmark/corpora/``, registered in
``simecg.registries.CORPORA`` by entry points (``pyproject.toml``) and imported on the first lookup
of their name; this package names none of them.
"""

from pretraining.corpora.base import Corpus, CorpusBase, TrainedCorpus, resolve_options

__all__ = ["Corpus", "CorpusBase", "TrainedCorpus", "resolve_options"]
