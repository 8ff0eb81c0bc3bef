"""What a downstream dataset hands to the protocol: one binary task, one lead, ready arrays.

Readers (PTB-XL, PhysioNet/CinC 2020 format, CPSC2018 original, the synthetic demo set) all
produce :class:`TaskData`. Windows and records are kept apart because CPSC2018 records are
longer than 10 s (PROTOCOL.md, "Signals"): for evaluation a record is cut into 10-s windows at a
5-s stride and its score is the max over them; for training it is kept whole
(:class:`LongRecords`) and every epoch draws a random 10-s crop of it
(:meth:`TaskData.training_samples`). Records of one window (PTB-XL, G12EC) are that window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from benchmark.preprocess import RandomCrops
from simecg.errors import DataError


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
            samples (resampled, filtered), not z-scored.
        span: ``(n_records, 2)`` int64 per task record: offset into ``samples`` and length;
            length 0 for a record of at most one window (it is its only window).
        normalize: z-score each crop (the protocol).
    """

    samples: np.ndarray
    span: np.ndarray
    normalize: bool = True


@dataclass
class TaskData:
    """Arrays and metadata of one task on one lead.

    Attributes:
        signals: ``(n_windows, 5000)`` float32 evaluation windows, each z-scored (may be a
            memmap, and may hold windows of other tasks: real datasets share one memmap per lead).
        window_record: ``(n_windows,)`` index into ``records`` of each window's record, -1 for a
            window outside this task.
        labels: ``(n_records,)`` int8, 1 = positive class, 0 = normal.
        records: one row per record; columns ``record_id``, ``patient_id``, ``age`` (float,
            NaN unknown), ``sex`` ("M", "F" or None), ``strat_fold`` (int, -1 unknown).
        data_version: content hash of the inputs and the preprocessing; part of fingerprints.
        synthetic: True for simulator-made data (the demo set): never evidence, always marked.
        quarantine: records excluded by the data checks, each ``{"file", "reason"}``.
        long_records: whole signals of the records longer than one window (None when every
            record fits one window: then a record's window is also its training sample).
    """

    task: str
    dataset: str
    lead: str
    signals: np.ndarray
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
        """The training input of ``records`` and one label per sample.

        When none of them is longer than a window: ``(signals (n, L), labels)``, a sample per
        window (10-s records: one per record). Otherwise a :class:`~benchmark.preprocess.RandomCrops`
        over the records (a fresh random window-long crop of each long record per epoch, seeded by
        ``seed``; records of one window are that window) and one label per record.
        """
        records = np.unique(np.asarray(records, dtype=np.int64))
        long = self.long_records
        if long is None or not np.any(long.span[records, 1] > 0):
            windows = self.windows_of(records)
            return np.asarray(self.signals[windows]), self.labels[self.window_record[windows]].astype(np.float32)
        windows = self.windows_of(records)
        owners, first = np.unique(self.window_record[windows], return_index=True)
        if not np.array_equal(owners, records):
            raise ValueError(f"records without windows: {np.setdiff1d(records, owners)[:5].tolist()}")
        span = long.span[records]
        window_index = np.where(span[:, 1] > 0, -1, windows[first])
        labels = self.labels[records].astype(np.float32)
        return RandomCrops(self.signals, window_index, long.samples, span, labels, seed, long.normalize), labels

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

    def label_counts(self, spec: TaskSpec, data_dir: Path | str) -> dict[int, int]:
        """Positives (key 1) and negatives (key 0) of ``spec`` found under ``data_dir`` (labels only)."""
        ...

    def load_task(self, spec: TaskSpec, data_dir: Path, lead: str, cache_dir: Path, **options: Any) -> TaskData:
        """The task's records, labels and preprocessed windows (cached under ``cache_dir``)."""
        ...
