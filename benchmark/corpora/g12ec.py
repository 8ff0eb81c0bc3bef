"""The real-G12EC pretraining corpora: ``g12ec`` (no test record) and ``g12ec-authors`` (as the authors ran it).

The authors pretrained one MAE on all of G12EC (their ``G12EC-ALL``, in the corpus-size and
equal-compute experiments; docs/protocol.md, "The authors' experiments"). These corpora are the
``ptbxl`` ones (:mod:`benchmark.corpora.ptbxl`) on the Georgia records: raw lead II ECGs (mV,
500 Hz) of records exactly 5,000 samples long that pass the data checks, each corpus with its own
validation set (the last ``validation_size`` items).

``g12ec`` (the default): every such record that is in no G12EC task's test split of the suite's
own split (``split``, ``test_seed``, ``duplicates``, ``overlap``, ``lengths``, set by the suite),
nor an exact duplicate signal of one, cut 80/20 into training and validation (sklearn, ``val_seed``
7, duplicate signals on one side). G12EC publishes no patient ids, so under the ``patient`` split a
record is its own patient.

``g12ec-authors`` (the authors' ``src/prep/dataset/g12ec.py`` with ``prep_base.py``; marked † as
seeing test records): the records in file-name order (their sorted ``*.hea``), those not 5,000
samples long or holding NaN dropped before the cut (here: those our checks reject, or not one window
long), cut by sklearn ``train_test_split`` into 80% kept and 20% held out (seed 123), the kept part
into training (64%) and validation (16%, seed 7), as :func:`benchmark.corpora.ptbxl.authors_split`.
That cut ignores the downstream tasks, so about 64% of every G12EC test set is pretrained on.

Options (``pretrain.corpus_options.<key>``): ``g12ec``: ``exclude_test_splits`` (true), the suite's
split settings, ``val_fraction`` (0.2), ``val_seed`` (7), ``lead`` ("II"), ``classes`` ("all";
"normal" keeps the sinus-rhythm records only); ``g12ec-authors``: those of ``ptbxl-authors``::

    simecg-bench run --suite equal-compute --corpus g12ec --data-dir ../shared/data --dry-run
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from benchmark.corpora.ptbxl import (
    PTBXLAuthorsCorpus,
    PTBXLCorpus,
    SplitCorpusOptions,
    one_window_rows,
    usable_rows,
)


@dataclass(frozen=True)
class G12ECOptions(SplitCorpusOptions):
    """Options of the ``g12ec`` corpus (``pretrain.corpus_options.*``); see the module docstring.

    ``classes="normal"`` keeps only the sinus-rhythm records (the G12EC tasks' normal class).
    """


class G12ECCorpus(PTBXLCorpus):
    """Real lead II ECGs of G12EC records in no G12EC test split, with a validation set of their own."""

    name: ClassVar[str] = "g12ec"
    dataset: ClassVar[str] = "g12ec"
    Options: ClassVar[type] = G12ECOptions


class G12ECAuthorsCorpus(PTBXLAuthorsCorpus):
    """The authors' random 64% of G12EC, lead II, with their 16% as validation; sees test records (†)."""

    name: ClassVar[str] = "g12ec-authors"
    dataset: ClassVar[str] = "g12ec"

    @classmethod
    def authors_list(cls, cache: Any) -> np.ndarray:
        """The records the authors' list keeps before cutting: those exactly 5,000 samples long and readable."""
        return np.flatnonzero(usable_rows(cache) & one_window_rows(cache))


__all__ = ["G12ECAuthorsCorpus", "G12ECCorpus", "G12ECOptions"]
