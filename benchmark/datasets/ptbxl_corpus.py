"""The ``ptbxl`` pretraining corpus: real lead II ECGs of PTB-XL training records only.

The real-data reference corpus of the study (MAE pretrained on patient records instead of
simulated ones). Leakage into downstream evaluation is ruled out by construction: a record is
eligible only when its ``strat_fold`` is 1-8 (never PTB-XL's validation/test folds 9-10) AND it
is in no PTB-XL task's ``paper``-preset test split (test seed 123). Signals are raw lead II in
mV at 500 Hz, 5,000 samples, with the same data checks as the tasks (rejected records are out).

Options (:class:`PTBXLOptions`, set as ``pretrain.corpus_options.<key>``): ``folds`` (default
1-8; text ``"1-8"`` or ``"1,2,3"``, or a list), ``exclude_test_splits`` (default true), ``lead``
("II"), and where the data and its cache are, ``data_dir`` and ``cache_dir`` (not part of the
identity, which holds the records used, the data version and the options above)::

    simecg-bench pretrain --corpus ptbxl --set pretrain.corpus_size=2000 --set pretrain.corpus_options.folds=1-6
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.datasets.base import TaskData
from benchmark.preprocess import PreprocessConfig
from benchmark.registries import DATASETS
from simecg import paths
from simecg.config import coerce, stable_hash
from simecg.errors import ConfigError
from simecg.seeding import rng_for
from simecg.signal import N_SAMPLES

RAW = PreprocessConfig(normalize=False)


@dataclass(frozen=True)
class PTBXLOptions:
    """Options of the ``ptbxl`` corpus (``pretrain.corpus_options.*``); see the module docstring."""

    folds: tuple[int, ...] | str = tuple(range(1, 9))
    exclude_test_splits: bool = True
    lead: str = "II"
    data_dir: str | None = None  # default: $SIMECG_DATA or <cache>/data
    cache_dir: str | None = None  # default: the cache folder

    def __post_init__(self) -> None:
        object.__setattr__(self, "folds", _parse_folds(self.folds))
        if not str(self.lead).strip():
            raise ConfigError("pretrain.corpus_options.lead (ptbxl corpus) must name a lead, e.g. II")
        for name in ("data_dir", "cache_dir"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, str(getattr(self, name)))


class PTBXLCorpus:
    """Real lead II ECGs of PTB-XL training records (strat_fold 1-8, in no test split); see the module docstring.

    Built as ``PTBXLCorpus(size=, seed=, options=PTBXLCorpus.Options(...))``: ``size`` ECGs
    (None = every eligible record) in a seeded order. Holds the path of the cached signals, not
    the array: the memory map is opened on first use in each process, so pickling the corpus for
    DataLoader workers or DDP ranks copies no ECG.
    """

    name = "ptbxl"
    Options = PTBXLOptions

    def __init__(self, size: int | None = None, seed: int = 0, options: PTBXLOptions | None = None):
        options = self.Options() if options is None else options
        if not isinstance(options, PTBXLOptions):
            raise ConfigError(f"ptbxl corpus: options must be a PTBXLCorpus.Options, got {type(options).__name__}")
        seed = coerce(seed, int, "seed")
        records, cache = eligible_records(options.data_dir, options.cache_dir, tuple(options.folds),
                                          options.exclude_test_splits, options.lead)
        first_window: dict[Any, int] = {}
        for window, record in enumerate(cache.window_record.tolist()):
            first_window.setdefault(record, window)
        positions = np.array([first_window[i] for i in records.index], dtype=np.int64)
        order = rng_for(seed, "ptbxl-corpus").permutation(len(positions))
        if size is not None:  # the suite's corpus size caps what the data holds
            size = coerce(size, int, "size")
            if size <= 0:
                raise ConfigError(f"{self.name} corpus: size must be positive, got {size}")
            order = order[:size]
        if len(order) == 0:
            raise ConfigError(f"{self.name} corpus: no eligible PTB-XL record in {paths.data_dir(options.data_dir)}")
        self.path: Path = cache.path  # raw lead cache, float32 (n_windows, 5000)
        self.n_windows = len(cache.window_record)
        self.windows = positions[order]  # window index of each corpus item
        self.record_ids: list[str] = records["record_id"].astype(str).to_numpy()[order].tolist()
        self.seed = seed
        self.data_version: str = cache.data_version
        self.options = options
        self._signals: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.windows)

    def __repr__(self) -> str:
        return f"PTBXLCorpus({len(self)} records, seed={self.seed}, folds={list(self.options.folds)})"

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
        """Name, size, seed, the records used (hash, in corpus order), the data version and the options
        that select or shape them (never where the data or cache live)."""
        options = {"folds": list(self.options.folds), "exclude_test_splits": self.options.exclude_test_splits,
                   "lead": self.options.lead}
        return {"name": self.name, "size": len(self), "seed": self.seed, "data_version": self.data_version,
                "records": stable_hash(self.record_ids), "options": options,
                "sees_test_records": self.sees_test_records}

    @property
    def sees_test_records(self) -> bool:
        """Whether records of downstream test splits are in the corpus (``ptbxl-all``, as the authors did)."""
        return not self.options.exclude_test_splits


@dataclass(frozen=True)
class PTBXLAllOptions(PTBXLOptions):
    """Options of ``ptbxl-all``: every PTB-XL record (folds 1-10), test records included."""

    folds: tuple[int, ...] | str = tuple(range(1, 11))
    exclude_test_splits: bool = False


class PTBXLAllCorpus(PTBXLCorpus):
    """Every PTB-XL record, lead II, test records included, as the authors pretrained (marked in every output)."""

    name = "ptbxl-all"
    Options = PTBXLAllOptions


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
            task = dataset.task_rows(spec, index, cache)
            kept = task.rows
            if len(kept) == 0 or len(set(task.labels.tolist())) < 2:
                continue  # load_task would refuse this task, so it has no test split
            shadow = TaskData(spec.name, "ptbxl", lead, np.zeros((0, 0), np.float32), np.zeros(0, np.int64),
                              task.labels, index.iloc[kept].reset_index(drop=True), "")
            test_ids = set(ids[kept][make_split(shadow, "paper").test])
            keep &= ~np.isin(ids, list(test_ids))
    return index[keep], cache


def _parse_folds(value: Any) -> tuple[int, ...]:
    try:
        if isinstance(value, (list, tuple)):
            folds = tuple(int(v) for v in value)
        else:
            text = str(value).strip()
            if "-" in text:
                lo, hi = (int(v) for v in text.split("-", 1))
                folds = tuple(range(lo, hi + 1))
            else:
                folds = tuple(int(v) for v in text.split(",") if v.strip())
    except (TypeError, ValueError):
        raise ConfigError(
            f"pretrain.corpus_options.folds={value!r} (ptbxl corpus): expected e.g. '1-8' or '1,2,3'"
        ) from None
    if not folds:
        raise ConfigError(f"pretrain.corpus_options.folds={value!r} (ptbxl corpus): no fold selected")
    return folds


__all__ = ["PTBXLCorpus", "PTBXLOptions", "eligible_records"]
