"""The real-PTB-XL pretraining corpora: ``ptbxl`` (no test record) and ``ptbxl-authors`` (as the authors ran it).

Both hold raw lead II ECGs (mV, 500 Hz, 5,000 samples) of PTB-XL records that pass the data
checks, and each brings **its own validation set**: records it never trains on, the last
``validation_size`` items of the corpus (the pretraining loop validates on them instead of taking
ECGs out of the training ones; docs/protocol.md, "MAE pretraining").

``ptbxl`` (the default source): every record that is in no PTB-XL task's test split of the
suite's own split (``split``, ``test_seed`` and ``duplicates``, which a suite passes to the corpus;
:func:`benchmark.suites.config.with_split_settings`), nor an exact duplicate signal of such a record (PTB-XL
holds byte-identical records, e.g. ecg_id 137/138), nor, under the ``patient`` split, a record of a
patient with a test record. Those records are cut 80/20 into training and validation
(``val_fraction``, sklearn ``train_test_split`` with ``val_seed`` 7 as the authors' second cut;
duplicate signals on one side). So no record any cell is scored on is seen in pretraining.

``ptbxl-authors`` (the authors' ``src/prep/dataset/ptbxl.py`` and ``prep_base.py``, marked † as
seeing test records): the list of every record in ``ptbxl_database.csv`` order, cut by sklearn
``train_test_split(test_size=0.2, random_state=123)`` into 80% kept and 20% held out, the kept part
cut again by ``train_test_split(test_size=0.2, random_state=7)`` into training (64% of PTB-XL) and
validation (16%); not stratified, shuffled, calls made exactly as theirs (:func:`authors_split`), so
the record sets equal theirs for the same record list. Their list also drops records not 5,000
samples long before cutting; every PTB-XL 500-Hz record is 10 s, so the list is the CSV. Records
our data checks reject are left out after cutting (the cut itself does not move). The split
ignores the downstream tasks, so about 64% of every PTB-XL test set is pretrained on.

Options (``pretrain.corpus_options.<key>``), each part of the identity unless it says where data
lives (``data_dir``, ``cache_dir``): ``ptbxl``: ``folds`` (default every strat_fold, 1-10),
``exclude_test_splits`` (default true), ``split``/``test_seed``/``duplicates`` and
``overlap``/``lengths`` (the suite's, set by it),
``val_fraction`` (0.2), ``val_seed`` (7), ``lead`` ("II"), ``classes`` ("all"; "normal" keeps only records of
the tasks' normal class, NORM at likelihood >= 100: the authors' normal-only corpus of Exp14, here still
without any test record); ``ptbxl-authors``: ``holdout_fraction``
(0.2), ``holdout_seed`` (123), ``val_fraction`` (0.2), ``val_seed`` (7; the authors' generators
used 1), ``lead``, ``classes`` ("normal": the same two cuts of the list of normal records, the authors'
``PTBXL-NORM`` of Exp14)::

    simecg-bench pretrain --corpus ptbxl --set pretrain.corpus_size=2000 --set pretrain.corpus_options.folds=1-8
    simecg-bench run --suite paper --corpus sim,ptbxl,ptbxl-authors
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from benchmark.data.base import DATA_LIMITS, DataConfig
from benchmark.data.preprocess import PreprocessConfig
from benchmark.data.splits import DUPLICATES, PRESETS, duplicate_anchors, make_split, record_digests
from benchmark.data.tasks import load_task, tasks_of
from benchmark.registries import DATASETS
from pretraining.corpora.base import CorpusBase
from simecg import paths
from simecg.config import SEED, Limits, check_limits, coerce, stable_hash
from simecg.errors import ConfigError, DataError
from simecg.seeding import rng_for
from simecg.signal import N_SAMPLES

RAW = PreprocessConfig(normalize=False)
ALL_FOLDS = tuple(range(1, 11))
CLASSES = ("all", "normal")  # every record, or only the dataset's normal class (the authors' PTBXL-NORM)
WHERE = "pretrain.corpus_options"
SHARE = Limits(gt=0, lt=1)  # a part that leaves the rest something
TASK_ROWS = ("overlap", "lengths")  # the [data] rules that decide which rows a PTB-XL task has


@dataclass(frozen=True)
class SplitCorpusOptions:
    """Options shared by the corpora of a dataset's real records that keep its test records out
    (``ptbxl``, ``g12ec``): which split to exclude, which rows, which lead and class, where the data is.

    Identities hash these options by name (sorted), so a subclass's own fields (``ptbxl``'s
    ``folds``) may follow them without changing any corpus identity.
    """

    exclude_test_splits: bool = True
    split: str = "paper"  # the suite's split preset, test seed and duplicates handling (set by the suite)
    test_seed: int = 123
    duplicates: str = "group"
    overlap: str = "both"  # the suite's [data] rules that decide a task's rows, hence its test records
    lengths: str = "exact"
    val_fraction: float = 0.2
    val_seed: int = 7
    lead: str = "II"
    classes: str = "all"  # "normal": only records of the dataset tasks' normal class (see each corpus)
    data_dir: str | None = None  # default: $SIMECG_DATA or <cache>/data
    cache_dir: str | None = None  # default: the cache folder

    def __post_init__(self) -> None:
        check_split_options(self)


@dataclass(frozen=True)
class PTBXLOptions(SplitCorpusOptions):
    """Options of the ``ptbxl`` corpus (``pretrain.corpus_options.*``); see the module docstring.

    ``classes="normal"`` keeps only records of the tasks' normal class (NORM >= 100), as Exp14.
    """

    folds: tuple[int, ...] | str = ALL_FOLDS

    def __post_init__(self) -> None:
        object.__setattr__(self, "folds", _parse_folds(self.folds))
        super().__post_init__()


def check_split_options(options: Any) -> None:
    """The checks shared by the corpora that keep their dataset's test records out (``ptbxl``, ``g12ec``)."""
    check_limits(options, WHERE, {"split": Limits(choices=PRESETS), "test_seed": SEED, "val_seed": SEED,
                                  "duplicates": Limits(choices=DUPLICATES), "val_fraction": SHARE,
                                  "classes": Limits(choices=CLASSES),
                                  **{key: limits for key, limits in DATA_LIMITS.items() if key in TASK_ROWS}})
    _check_places(options)


@dataclass(frozen=True)
class PTBXLAuthorsOptions:
    """Options of ``ptbxl-authors``: the authors' two sklearn cuts (see the module docstring)."""

    holdout_fraction: float = 0.2
    holdout_seed: int = 123
    val_fraction: float = 0.2
    val_seed: int = 7
    lead: str = "II"
    classes: str = "all"  # "normal": the authors' list of the normal class only (their PTBXL-NORM, Exp14)
    data_dir: str | None = None
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        check_limits(self, WHERE, {"holdout_fraction": SHARE, "holdout_seed": SEED, "val_fraction": SHARE,
                                   "val_seed": SEED, "classes": Limits(choices=CLASSES)})
        _check_places(self)


class PTBXLCorpus(CorpusBase):
    """Real lead II ECGs of PTB-XL records in no test split, with a validation set of their own (module docstring).

    Built as ``PTBXLCorpus(size=, seed=, options=PTBXLCorpus.Options(...))``: up to ``size``
    training ECGs (None = all) in a seeded order, then the whole validation set (seeded order).
    Holds the path of the cached signals, not the array: the memory map is opened on first use in
    each process, so pickling the corpus for DataLoader workers or DDP ranks copies no ECG.
    """

    name: ClassVar[str] = "ptbxl"
    dataset: ClassVar[str] = "ptbxl"  # the downstream dataset whose records (and test splits) it reads
    Options: ClassVar[type] = PTBXLOptions

    def __init__(self, size: int | None = None, seed: int = 0, options: Any = None):
        options = self.Options() if options is None else options
        if not isinstance(options, self.Options):
            raise ConfigError(f"{self.name} corpus: options must be a {type(self).__name__}.Options, "
                              f"got {type(options).__name__}")
        seed = coerce(seed, int, "seed")
        index, cache, train_rows, val_rows = self.select(options)
        if size is not None:  # the suite's corpus size caps what the data holds
            size = coerce(size, int, "size")
            if size <= 0:
                raise ConfigError(f"{self.name} corpus: size must be positive, got {size}")
        train_rows = rng_for(seed, "ptbxl-corpus").permutation(train_rows)[:size]
        val_rows = rng_for(seed, "ptbxl-corpus", "validation").permutation(val_rows)
        if len(train_rows) == 0 or len(val_rows) == 0:
            raise ConfigError(f"{self.name} corpus: {len(train_rows)} training and {len(val_rows)} validation "
                              f"records in {paths.data_dir(options.data_dir)}; both parts need PTB-XL records")
        first_window: dict[int, int] = {}
        for window, row in enumerate(cache.window_record.tolist()):
            first_window.setdefault(row, window)
        rows = np.concatenate([train_rows, val_rows])
        self.path: Path = cache.path  # raw lead cache, float32 (n_windows, 5000)
        self.n_windows = len(cache.window_record)
        self.windows = np.array([first_window[r] for r in rows.tolist()], dtype=np.int64)
        self.record_ids: list[str] = index["record_id"].astype(str).to_numpy()[rows].tolist()
        self.validation_size = len(val_rows)  # the last items: the corpus's own validation set
        self.seed = seed
        self.data_version: str = cache.data_version
        self.options = options
        self._signals: np.ndarray | None = None

    @classmethod
    def select(cls, options: PTBXLOptions) -> tuple[pd.DataFrame, Any, np.ndarray, np.ndarray]:
        """(index, raw lead cache, training rows, validation rows): eligible records cut train/validation."""
        index, cache = _index_and_cache(options.data_dir, options.cache_dir, options.lead, cls.dataset)
        rows = np.flatnonzero(_eligible(index, cache, options, cls.dataset))
        anchors = duplicate_anchors(record_digests(cache.signals, cache.window_record, len(index)))
        train, val = cut_together(rows, anchors, options.val_fraction, options.val_seed)
        return index, cache, train, val

    def __len__(self) -> int:
        return len(self.windows)

    @property
    def train_size(self) -> int:
        """The training ECGs: the first ``train_size`` items (the rest is the validation set)."""
        return len(self) - self.validation_size

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.train_size} training + {self.validation_size} validation records, "
                f"seed={self.seed})")

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
            raise IndexError(f"{self.name} corpus has {len(self)} ECGs; got indices up to {indices.max()}")
        return np.asarray(self.signals[self.windows[indices]], dtype=np.float32)

    def identity(self) -> dict[str, Any]:
        """Name, size, seed, the records used (hash, in corpus order), the validation set's size, the data
        version and the options that select or shape them (never where the data or cache live)."""
        options = {k: v for k, v in vars(self.options).items() if k not in ("data_dir", "cache_dir")}
        if options.get("classes") == "all":  # added later: the default keeps the identity (and encoders) it had
            del options["classes"]
        if "folds" in options:
            options["folds"] = list(options["folds"])
        return {"name": self.name, "size": len(self), "seed": self.seed, "data_version": self.data_version,
                "records": stable_hash(self.record_ids), "validation_size": self.validation_size,
                "options": options, "sees_test_records": self.sees_test_records}

    @property
    def sees_test_records(self) -> bool:
        """Whether records of downstream test splits may be in the corpus (marked † in every output)."""
        return not self.options.exclude_test_splits


class PTBXLAuthorsCorpus(PTBXLCorpus):
    """The authors' random 64% of PTB-XL, lead II, with their 16% as validation; sees test records (†)."""

    name: ClassVar[str] = "ptbxl-authors"
    Options: ClassVar[type] = PTBXLAuthorsOptions

    @classmethod
    def select(cls, options: PTBXLAuthorsOptions) -> tuple[pd.DataFrame, Any, np.ndarray, np.ndarray]:
        index, cache = _index_and_cache(options.data_dir, options.cache_dir, options.lead, cls.dataset)
        listed = cls.authors_list(cache)
        if options.classes == "normal":  # their per-class list: the normal class's records, cut the same way
            listed = listed[normal_class(cls.dataset, index, DataConfig())[listed]]
        ids = index["record_id"].astype(str).to_numpy()[listed].tolist()
        train, val, _ = authors_split(ids, options.holdout_fraction, options.holdout_seed, options.val_fraction,
                                      options.val_seed)
        usable = usable_rows(cache)
        ids = index["record_id"].astype(str).tolist()
        position = {record_id: row for row, record_id in enumerate(ids)}
        rows = [np.array([position[r] for r in part if usable[position[r]]], dtype=np.int64) for part in (train, val)]
        return index, cache, rows[0], rows[1]

    @classmethod
    def authors_list(cls, cache: Any) -> np.ndarray:
        """Index rows of the list the authors cut: every PTB-XL record (their list drops records not 5,000
        samples long, and every PTB-XL 500-Hz record is 10 s, so it is the CSV)."""
        return np.arange(len(cache.status))

    @property
    def sees_test_records(self) -> bool:
        return True


def authors_split(record_ids: Sequence[str], holdout_fraction: float = 0.2, holdout_seed: int = 123,
                  val_fraction: float = 0.2, val_seed: int = 7) -> tuple[list[str], list[str], list[str]]:
    """(training, validation, held-out) record ids, cut as the authors' ``PrepBase.make_dataset`` cuts.

    Two calls of sklearn's ``train_test_split`` with their arguments (``test_size``, ``random_state``;
    no stratification, shuffled): the list, then the part it keeps. The cut depends on the list's
    length and order only, so the same list gives the authors' very sets.
    """
    kept, held_out = train_test_split(list(record_ids), test_size=holdout_fraction, random_state=holdout_seed)
    train, val = train_test_split(kept, test_size=val_fraction, random_state=val_seed)
    return list(train), list(val), list(held_out)


def cut_together(rows: np.ndarray, anchors: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` cut by sklearn's ``train_test_split(test_size=fraction, random_state=seed)`` over signal groups.

    Each group of identical signals (same anchor) is one unit, so it lands whole on one side;
    without duplicates this is ``train_test_split(rows, ...)`` itself. Returns (kept, held) sorted.
    """
    rows = np.asarray(rows, dtype=np.int64)
    units = list(dict.fromkeys(int(anchors[r]) for r in rows))  # first-seen order
    if len(units) < 2:
        return np.sort(rows), rows[:0]
    _, held = train_test_split(units, test_size=fraction, random_state=seed)
    is_held = np.isin(anchors[rows], np.asarray(held, dtype=np.int64))
    return np.sort(rows[~is_held]), np.sort(rows[is_held])


def eligible_records(options: PTBXLOptions) -> tuple[pd.DataFrame, Any]:
    """Index rows of PTB-XL the ``ptbxl`` corpus with ``options`` may use (training and validation), and the raw
    lead cache: usable (passing the data checks), in ``options.folds`` and, with ``exclude_test_splits``,
    outside :func:`excluded_records`."""
    index, cache = _index_and_cache(options.data_dir, options.cache_dir, options.lead)
    return index[_eligible(index, cache, options)], cache


def _eligible(index: pd.DataFrame, cache: Any, options: Any, dataset: str = "ptbxl") -> np.ndarray:
    keep = usable_rows(cache) & one_window_rows(cache)
    if hasattr(options, "folds"):
        keep &= index["strat_fold"].isin(tuple(options.folds)).to_numpy()
    if options.classes == "normal":
        keep &= normal_class(dataset, index, options)
    if options.exclude_test_splits:
        keep &= ~index["record_id"].astype(str).isin(excluded_records(index, cache, options, dataset)).to_numpy()
    return keep


def normal_class(dataset: str, index: pd.DataFrame, options: Any) -> np.ndarray:
    """Per index row: the record is in the normal class its dataset's tasks share (PTB-XL: NORM at likelihood
    >= 100; G12EC: sinus rhythm), decided by the dataset's own labelling rule, so that a normal-only corpus
    (the authors' ``PTBXL-NORM``, Exp14) holds exactly what the tasks call normal."""
    specs = tasks_of(dataset)
    if not specs:
        raise ConfigError(f"{WHERE}.classes=normal: no registered {dataset} task defines its normal class")
    rules = DataConfig(**{key: getattr(options, key) for key in TASK_ROWS})
    return np.asarray(DATASETS.get(dataset).classes(specs[0], index, rules)[1], dtype=bool)


def excluded_records(index: pd.DataFrame, cache: Any, options: Any, dataset: str = "ptbxl") -> set[str]:
    """Record ids a corpus without test records leaves out: every ``dataset`` task's test records under the
    suite's split (``options.split``, ``test_seed``, ``duplicates``, and the ``overlap``/``lengths`` rules
    that decide a task's rows), every record with the same signal as one of them, and under the
    ``patient`` split every record of a patient with a test record."""
    rules = DataConfig(**{key: getattr(options, key) for key in TASK_ROWS})
    ids = index["record_id"].astype(str).to_numpy()
    test: set[str] = set()
    for spec in tasks_of(dataset):
        try:
            data = load_task(spec.name, paths.data_dir(options.data_dir), lead=options.lead,
                             cache_dir=Path(options.cache_dir) if options.cache_dir else None, options=rules)
        except DataError:
            continue  # a task without both classes here: load_task refuses it, so no cell tests on it
        part = make_split(data, options.split, seed=1, test_seed=options.test_seed,
                          duplicates=options.duplicates).test
        test |= set(data.records["record_id"].astype(str).to_numpy()[part])
    anchors = duplicate_anchors(record_digests(cache.signals, cache.window_record, len(index)))
    is_test = np.isin(ids, list(test))
    out = is_test | np.isin(anchors, anchors[is_test])
    if options.split == "patient":
        patients = index["patient_id"].astype(str).to_numpy()
        out |= np.isin(patients, patients[is_test])
    return set(ids[out])


def duplicate_signal_groups(data_dir: Path | str | None = None, cache_dir: Path | str | None = None,
                            lead: str = "II") -> list[list[str]]:
    """Record ids of each group of PTB-XL records with identical raw signals on ``lead`` (two or more each)."""
    index, cache = _index_and_cache(data_dir, cache_dir, lead)
    anchors = duplicate_anchors(record_digests(cache.signals, cache.window_record, len(index)))
    ids = index["record_id"].astype(str).to_numpy()
    groups = pd.Series(ids).groupby(anchors).agg(list)
    return [members for members in groups.tolist() if len(members) > 1]


def _index_and_cache(data_dir: Path | str | None, cache_dir: Path | str | None, lead: str,
                     name: str = "ptbxl") -> tuple[pd.DataFrame, Any]:
    dataset = DATASETS.get(name)
    root = dataset.find_root(paths.data_dir(data_dir))
    index = dataset.build_index(root)
    cache = dataset.lead_cache(root, lead, Path(cache_dir) if cache_dir else paths.cache_dir(), RAW, index=index)
    return index, cache


def usable_rows(cache: Any) -> np.ndarray:
    """Per index row: the record passed the data checks (it has a window in the lead cache)."""
    return np.array([s["status"] != "rejected" for s in cache.status], dtype=bool)


def one_window_rows(cache: Any) -> np.ndarray:
    """Per index row: the record is exactly one window long (5,000 samples), as every record the authors
    pretrained on (their lists skip the others; every PTB-XL record is, some G12EC ones are not)."""
    return np.asarray(cache.lengths) == cache.window


def _check_places(options: Any) -> None:
    if not str(options.lead).strip():
        raise ConfigError(f"{WHERE}.lead (PTB-XL corpus) must name a lead, e.g. II")
    for name in ("data_dir", "cache_dir"):
        if getattr(options, name) is not None:
            object.__setattr__(options, name, str(getattr(options, name)))


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
        raise ConfigError(f"{WHERE}.folds={value!r} (ptbxl corpus): expected e.g. '1-8' or '1,2,3'") from None
    if not folds:
        raise ConfigError(f"{WHERE}.folds={value!r} (ptbxl corpus): no fold selected")
    return folds


__all__ = ["PTBXLAuthorsCorpus", "PTBXLAuthorsOptions", "PTBXLCorpus", "PTBXLOptions", "SplitCorpusOptions",
           "authors_split", "check_split_options", "cut_together", "duplicate_signal_groups", "eligible_records",
           "excluded_records", "normal_class", "one_window_rows", "usable_rows"]
