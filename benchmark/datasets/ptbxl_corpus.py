"""The ``ptbxl`` pretraining corpus: real lead II ECGs of PTB-XL training records only.

The real-data reference corpus of the study (MAE pretrained on patient records instead of
simulated ones). Leakage into downstream evaluation is ruled out by construction: a record is
eligible only when its ``strat_fold`` is 1-8 (never PTB-XL's validation/test folds 9-10) AND it
is in no PTB-XL task's ``paper``-preset test split (test seed 123). Signals are raw lead II in
mV at 500 Hz, 5,000 samples, with the same data checks as the tasks (rejected records are out).

Options: ``folds`` (default "1-8"), ``exclude_test_splits`` (default true), ``lead`` ("II").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.datasets.base import TaskData
from benchmark.preprocess import PreprocessConfig
from simecg import paths
from simecg.config import coerce, stable_hash
from simecg.errors import ConfigError
from simecg.registries import CORPORA, DATASETS
from simecg.seeding import rng_for
from simecg.signal import N_SAMPLES

RAW = PreprocessConfig(normalize=False)


@dataclass
class PTBXLCorpus:
    """Indexable lead-II ECGs of eligible PTB-XL training records (see module docstring).

    Holds the path of the cached signals, not the array: the memory map is opened on first use
    in each process, so pickling the corpus for DataLoader workers or DDP ranks copies no ECG.
    """

    name: str
    path: Path  # raw lead cache, float32 (n_windows, 5000)
    n_windows: int
    windows: np.ndarray  # window index of each corpus item
    record_ids: list[str]
    seed: int
    data_version: str
    options: dict[str, Any]
    _signals: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.windows)

    @property
    def signals(self) -> np.ndarray:
        if self._signals is None:
            self._signals = np.memmap(self.path, dtype=np.float32, mode="r", shape=(self.n_windows, N_SAMPLES))
        return self._signals

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_signals": None}

    def get_batch(self, indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64)
        if len(indices) and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"ptbxl corpus has {len(self)} ECGs; got indices up to {indices.max()}")
        return np.asarray(self.signals[self.windows[indices]], dtype=np.float32)

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "size": len(self), "seed": self.seed, "data_version": self.data_version,
                "records": stable_hash(self.record_ids), "options": self.options}


def eligible_records(data_dir: Path | str | None = None, cache_dir: Path | None = None,
                     folds: tuple[int, ...] = tuple(range(1, 9)), exclude_test_splits: bool = True,
                     lead: str = "II") -> tuple[pd.DataFrame, Any]:
    """Index rows of PTB-XL usable for pretraining, and the raw lead cache they live in."""
    from benchmark.splits import make_split
    from benchmark.tasks import tasks_of

    dataset = DATASETS.get("ptbxl")
    root = dataset.find_root(paths.data_dir(data_dir))
    index = dataset.build_index(root)
    cache = dataset.lead_cache(root, lead, Path(cache_dir) if cache_dir else paths.cache_dir(), RAW, index=index)
    usable = np.array([s["status"] != "rejected" for s in cache.status], dtype=bool)
    keep = usable & index["strat_fold"].isin(folds).to_numpy()
    if exclude_test_splits:
        ids = index["record_id"].to_numpy()
        for spec in tasks_of("ptbxl"):
            labels, kept, _ = dataset.task_records(spec, index, cache.status)
            if len(kept) == 0 or len(set(labels[kept].tolist())) < 2:
                continue  # load_task would refuse this task, so it has no test split
            shadow = TaskData(spec.name, "ptbxl", lead, np.zeros((0, 0), np.float32), np.zeros(0, np.int64),
                              labels[kept].astype(np.int8), index.iloc[kept].reset_index(drop=True), "")
            test_ids = set(ids[kept][make_split(shadow, "paper").test])
            keep &= ~np.isin(ids, list(test_ids))
    return index[keep], cache


@CORPORA.register("ptbxl", description="real lead II ECGs of PTB-XL training records (strat_fold 1-8, no test split)")
def ptbxl(size: int | None = None, seed: int = 0, data_dir: Path | str | None = None, **options: Any) -> PTBXLCorpus:
    """Factory: ``size`` ECGs (None = every eligible record) in a seeded order."""
    unknown = sorted(set(options) - {"folds", "exclude_test_splits", "lead", "cache_dir"})
    if unknown:
        raise ConfigError(f"ptbxl corpus: unknown option(s) {', '.join(unknown)}; valid: folds, "
                          "exclude_test_splits, lead, cache_dir")
    folds = _parse_folds(options.get("folds", "1-8"))
    exclude = coerce(options.get("exclude_test_splits", True), bool, "exclude_test_splits")
    lead = str(options.get("lead", "II"))
    seed = coerce(seed, int, "seed")
    records, cache = eligible_records(data_dir, options.get("cache_dir"), folds, exclude, lead)
    first_window = {}
    for window, record in enumerate(cache.window_record.tolist()):
        first_window.setdefault(record, window)
    positions = np.array([first_window[i] for i in records.index], dtype=np.int64)
    order = rng_for(seed, "ptbxl-corpus").permutation(len(positions))
    if size is not None:
        size = coerce(size, int, "size")
        if not 0 < size <= len(order):
            raise ConfigError(f"ptbxl corpus: size {size} requested, {len(order)} eligible PTB-XL training records "
                              "available; use a smaller size or size=None")
        order = order[:size]
    ids = records["record_id"].astype(str).to_numpy()[order].tolist()
    return PTBXLCorpus("ptbxl", cache.path, len(cache.window_record), positions[order], ids, seed, cache.data_version,
                       {"folds": list(folds), "exclude_test_splits": exclude, "lead": lead})


def _parse_folds(value: Any) -> tuple[int, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(int(v) for v in value)
    text = str(value).strip()
    try:
        if "-" in text:
            lo, hi = (int(v) for v in text.split("-", 1))
            return tuple(range(lo, hi + 1))
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"ptbxl corpus option folds={value!r}: expected e.g. '1-8' or '1,2,3'") from None


__all__ = ["PTBXLCorpus", "eligible_records", "ptbxl"]
