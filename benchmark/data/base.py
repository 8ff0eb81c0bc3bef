"""What a downstream dataset hands to the protocol: one binary task, one lead, ready arrays.

Readers (PTB-XL, PhysioNet/CinC 2020 format, CPSC2018 original, the synthetic demo set) all
produce :class:`TaskData`. Windows and records are kept apart because CPSC2018 records are
6-60 s long (docs/protocol.md, "Signals"): for evaluation a record is cut into 10-s windows at a
5-s stride and its score is the max over them; for training it is kept whole
(:class:`LongRecords`) and every epoch draws a random 10-s crop of it
(:meth:`TaskData.training_samples`). Records of one window (PTB-XL, G12EC) are that window.

Rows and records are kept apart too: the authors build one list of records per class, so a
record that is both a positive and normal is in both lists (docs/protocol.md, "Tasks"). Under
``data.overlap = "both"`` (the paper's, :class:`DataConfig`) such a record is two rows of the
task, labelled 1 and 0, each with its own windows (:class:`AliasedWindows`), which splits and
budgets place independently, as the authors' per-class lists were split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from benchmark.data.preprocess import RandomCrops
from simecg.config import Limits, check_limits
from simecg.errors import DataError

if TYPE_CHECKING:  # a type only: the task table loads without pandas (`simecg-bench list tasks`)
    import pandas as pd

OVERLAPS = ("both", "positive")
LENGTHS = ("exact", "any")
DX_MATCHES = ("substring", "equivalent")


@dataclass(frozen=True)
class DataConfig:
    """Which records a task holds and how they are labelled; defaults are the authors' (docs/protocol.md, "Tasks").

    Set in a suite's ``[data]`` table or with ``--set data.<key>=<value>``.

    Attributes:
        overlap: a record that is both a positive and in the normal class: ``"both"`` (paper) lists
            it in both classes, as two rows labelled 1 and 0 (the authors concatenate one list per
            class); ``"positive"`` makes it a positive only.
        lengths: ``"exact"`` (paper) keeps only the PTB-XL and G12EC records of exactly one window
            (10 s at 500 Hz), as the authors' preparation does; ``"any"`` keeps the others too,
            windowed like CPSC2018 records. CPSC2018 records have any length either way.
        dx_match: how a PhysioNet/CinC task code is found in a record's ``#Dx`` codes:
            ``"substring"`` (paper) as text inside the Dx line, no equivalences (the authors'
            ``str.find``); ``"equivalent"`` as whole SNOMED CT codes with the CinC 2020 scoring
            equivalences of ``tasks.toml`` (RBBB = CRBBB, PAC = SVPB, PVC = VPB).
    """

    overlap: str = "both"
    lengths: str = "exact"
    dx_match: str = "substring"

    def __post_init__(self) -> None:
        check_limits(self, "data", DATA_LIMITS)


DATA_LIMITS = {"overlap": Limits(choices=OVERLAPS), "lengths": Limits(choices=LENGTHS),
               "dx_match": Limits(choices=DX_MATCHES)}


@dataclass(frozen=True)
class ClassCounts:
    """How many usable records a task finds per class (labels only, no signal read).

    ``negatives`` counts the records in the normal class as the task lists them (under
    ``overlap = "both"`` it includes the records that are also positive); ``both`` counts the
    records that are a positive and in the normal class, whatever the overlap rule makes of them.
    """

    positives: int
    negatives: int
    both: int = 0


def require_text_path(path: Path) -> Path:
    """``path`` when it is valid UTF-8 text; else :class:`DataError` (the readers' tables hold paths as text).

    A folder named in another system's encoding reaches Python as lone surrogates, which the
    index's string columns cannot store nor the terminal print.
    """
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        shown = str(path).encode("utf-8", "backslashreplace").decode()
        raise DataError(f"{shown}: the folder's name is not valid UTF-8; rename it") from None
    return path


@dataclass(frozen=True)
class TaskSpec:
    """One binary task: a diagnosis (positives) against the dataset's normal class (negatives)."""

    name: str  # registry name, "<dataset>/<label>", e.g. "ptbxl/AFIB"
    dataset: str  # dataset registry name, e.g. "ptbxl"
    label: str  # the positive class as the paper names it
    positive: tuple[str, ...]  # codes that make a record positive (SCP codes, SNOMED CT, abbreviations)
    negative: tuple[str, ...]  # codes of the normal class
    min_likelihood: float = 0.0  # PTB-XL: SCP likelihood a positive code needs (100 or 0 = any)
    description: str = ""


@dataclass
class LongRecords:
    """The whole signals of a task's records longer than one window, for random training crops.

    Attributes:
        samples: flat float32 array (a memmap of the lead cache): the records' preprocessed
            samples (resampled, filtered), each record z-scored as a whole when the lead cache
            normalizes (:func:`benchmark.data.preprocess.whole_record`).
        span: ``(n_records, 2)`` int64 per task record: offset into ``samples`` and length;
            length 0 for a record of at most one window (its first window is its training sample).
    """

    samples: np.ndarray
    span: np.ndarray


class AliasedWindows:
    """A lead cache's windows followed by aliases of some of them, indexed like one array.

    A record in both classes of a task (``data.overlap = "both"``) is two rows of the task, and
    each row owns its windows (``TaskData.window_record`` maps a window to one row): the second
    row's windows are aliases of the first's. Index ``len(base) + k`` reads window
    ``aliases[k]`` of ``base``; nothing is copied. Supports what the readers of
    ``TaskData.signals`` use: ``len``, ``shape``, ``dtype``, indexing by an integer, a slice, an
    integer array or a boolean mask, and ``np.asarray``.
    """

    def __init__(self, base: np.ndarray, aliases: np.ndarray):
        self.base = base
        self.aliases = np.asarray(aliases, dtype=np.int64)
        self.shape = (len(base) + len(self.aliases), *base.shape[1:])
        self.dtype = base.dtype
        self.ndim = base.ndim

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def source(self, index: Any) -> np.ndarray:
        """The ``base`` window behind each window ``index`` (integers, negative from the end, or a mask)."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        index = index.astype(np.int64)
        index = np.where(index < 0, index + len(self), index)
        if index.size and (index.min() < 0 or index.max() >= len(self)):
            raise IndexError(f"window index out of range for {len(self)} windows")
        if not len(self.aliases):
            return index
        alias = self.aliases[np.clip(index - len(self.base), 0, len(self.aliases) - 1)]
        return np.where(index < len(self.base), index, alias)

    def __getitem__(self, key: Any) -> np.ndarray:
        rest: tuple = ()
        if isinstance(key, tuple):
            key, rest = key[0], key[1:]
        if isinstance(key, slice):
            key = np.arange(len(self))[key]
        if np.ndim(key) == 0:
            row = np.asarray(self.base[int(self.source(key))])
            return row[rest] if rest else row
        rows = np.asarray(self.base[self.source(key)])
        return rows[(slice(None), *rest)] if rest else rows

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[np.arange(len(self))]
        return out.astype(dtype) if dtype is not None else out


@dataclass
class TaskData:
    """Arrays and metadata of one task on one lead.

    Attributes:
        signals: ``(n_windows, 5000)`` float32 evaluation windows, z-scored (may be a memmap, and
            may hold windows of other tasks: real datasets share one memmap per lead; an
            :class:`AliasedWindows` when a record is two rows of the task).
        window_record: ``(n_windows,)`` index into ``records`` of each window's row, -1 for a
            window outside this task.
        labels: ``(n_records,)`` int8, 1 = positive class, 0 = normal.
        records: one row per task row; columns ``record_id``, ``patient_id``, ``age`` (float,
            NaN unknown), ``sex`` ("M", "F" or None), ``strat_fold`` (int, -1 unknown). Real
            datasets list the normal class first, then the positives, each in the dataset's
            order (as the authors concatenate their lists); under ``data.overlap = "both"`` a
            record in both classes is two rows with one ``record_id`` (one labelled 0, one 1).
        data_version: content hash of the inputs, the preprocessing, the rows and their labels;
            part of fingerprints.
        synthetic: True for simulator-made data (the demo set): never evidence, always marked.
        quarantine: records left out, each ``{"file", "reason"}``: rejected by the data checks, or
            not of exactly one window under ``data.lengths = "exact"``.
        long_records: whole signals of the records longer than one window (None when every
            record fits one window: then a record's first window is also its training sample).
    """

    task: str
    dataset: str
    lead: str
    signals: Any  # np.ndarray | AliasedWindows
    window_record: np.ndarray
    labels: np.ndarray
    records: pd.DataFrame
    data_version: str
    synthetic: bool = False
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    long_records: LongRecords | None = None

    @property
    def n_records(self) -> int:
        return len(self.labels)

    @property
    def n_windows(self) -> int:
        """Windows of this task's records (``signals`` may hold more)."""
        return int(np.count_nonzero(self.window_record >= 0))

    def windows_of(self, record_indices: np.ndarray) -> np.ndarray:
        """Window indices belonging to the given records (in window order)."""
        return np.flatnonzero(np.isin(self.window_record, record_indices))

    def training_samples(self, records: np.ndarray, seed: int) -> tuple[Any, np.ndarray]:
        """The training input of ``records`` and one label per record.

        When none of them is longer than a window: ``(signals (n, L), labels)``, each record's
        first window (its only one for a 10-s PTB-XL or G12EC record; the zero-padded record for
        a CPSC2018 record of at most 10 s, whose evaluation has a second window). Otherwise a
        :class:`~benchmark.data.preprocess.RandomCrops` over the records (a fresh random window-long
        crop of each long record per epoch, seeded by ``seed``; the others as above).
        """
        records = np.unique(np.asarray(records, dtype=np.int64))
        windows = self.windows_of(records)
        owners, first = np.unique(self.window_record[windows], return_index=True)
        if not np.array_equal(owners, records):
            raise ValueError(f"records without windows: {np.setdiff1d(records, owners)[:5].tolist()}")
        fixed = windows[first]
        labels = self.labels[records].astype(np.float32)
        long = self.long_records
        if long is None or not np.any(long.span[records, 1] > 0):
            return np.asarray(self.signals[fixed]), labels
        span = long.span[records]
        window_index = np.where(span[:, 1] > 0, -1, fixed)
        return RandomCrops(self.signals, window_index, long.samples, span, labels, seed), labels

    def evaluation_samples(self, records: np.ndarray) -> tuple[Any, np.ndarray]:
        """The validation input of ``records`` and their labels.

        When each record is one window: ``(signals (n, L), labels)``. Otherwise
        :class:`~baselines.training.GroupedWindows` (every window of every record; a record's
        score is the max over its windows, as at test time) and one label per record.
        """
        records = np.unique(np.asarray(records, dtype=np.int64))
        windows = self.windows_of(records)
        owner = self.window_record[windows]
        if len(windows) == len(records) and np.array_equal(owner, records):
            return np.asarray(self.signals[windows]), self.labels[owner].astype(np.float32)
        from baselines.training import GroupedWindows  # imports torch: only when records have several windows

        labels = self.labels[records].astype(np.float32)
        return GroupedWindows(np.asarray(self.signals[windows]), np.searchsorted(records, owner), labels), labels


@runtime_checkable
class Dataset(Protocol):
    """What every dataset registered in ``DATASETS`` provides: labels and task data for a task."""

    name: str

    def label_counts(self, spec: TaskSpec, data_dir: Path | str, options: DataConfig = DataConfig()) -> ClassCounts:
        """Records of ``spec`` per class found under ``data_dir`` (labels only), under ``options``."""
        ...

    def load_task(self, spec: TaskSpec, data_dir: Path, lead: str, cache_dir: Path, **options: Any) -> TaskData:
        """The task's records, labels and preprocessed windows (cached under ``cache_dir``).

        Keyword options a dataset may take: ``preprocess`` (a
        :class:`~benchmark.data.preprocess.PreprocessConfig`) and ``options`` (a :class:`DataConfig`).
        """
        ...
