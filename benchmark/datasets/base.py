"""What a downstream dataset hands to the protocol: one binary task, one lead, ready arrays.

Readers (PTB-XL, PhysioNet/CinC 2020 format, CPSC2018 original, the synthetic demo set) all
produce :class:`TaskData`. Windows and records are kept apart because CPSC2018 records are
longer than 10 s: a record is cut into several windows and its score is the max over them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd


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
class TaskData:
    """Arrays and metadata of one task on one lead.

    Attributes:
        signals: ``(n_windows, 5000)`` float32, each window z-scored (may be a memmap, and may
            hold windows of other tasks: real datasets share one memmap per lead).
        window_record: ``(n_windows,)`` index into ``records`` of each window's record, -1 for a
            window outside this task.
        labels: ``(n_records,)`` int8, 1 = positive class, 0 = normal.
        records: one row per record; columns ``record_id``, ``patient_id``, ``age`` (float,
            NaN unknown), ``sex`` ("M", "F" or None), ``strat_fold`` (int, -1 unknown).
        data_version: content hash of the inputs and the preprocessing; part of fingerprints.
        synthetic: True for simulator-made data (the demo set): never evidence, always marked.
        quarantine: records excluded by the data checks, each ``{"file", "reason"}``.
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
