"""What every downstream dataset shares: locating its folder, checking records, caching windows.

A dataset subclass says where its records are and what their labels mean (:meth:`build_index`,
:meth:`labels`, :meth:`read`); this base turns that into :class:`TaskData`. Loading is two-level:

1. the *lead cache* holds the preprocessed evaluation windows of every record of the dataset
   on one lead (``signals.f32``), and the whole signal of every record longer than one window
   (``long.f32``, for random training crops; CPSC2018), built once by reading and checking each
   WFDB file, then shared by all tasks on that lead;
2. the *task cache* holds one task's rows (:meth:`RecordDataset.task_rows`: the records of the
   normal class, then the positives, a record in both classes twice under ``data.overlap =
   "both"``), their labels, which lead-cache windows are each row's (``window_record``, -1
   elsewhere; ``aliases.npy``: the windows a second row of a record reads again) and where its
   long records' signals are (``long_span``): a task never copies signals.

Both are keyed by the stat fingerprint of the input files (path, size, mtime) plus the
preprocessing config, so a second load reads no WFDB file; the ``data_version`` they carry is a
content hash (SHA-256 of the bytes read, independent of where the folder lives).

Each cache folder is built in a temporary folder (removed if the build fails; those of killed
builds are swept by the next build), sealed with a size+hash manifest (:mod:`simecg.integrity`)
and renamed into place. Every load checks the manifest (sizes always, content hashes once per
process), and a damaged folder, or one without a manifest, is rebuilt with a warning, never used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from benchmark.data.base import AliasedWindows, ClassCounts, DataConfig, LongRecords, TaskData, TaskSpec
from benchmark.data.header import canonical_lead
from benchmark.data.preprocess import (
    PREPROCESS_VERSION,
    PreprocessConfig,
    prepare_record,
    record_windows,
    single_window,
    whole_record,
)
from benchmark.data.signals import RecordCheck
from simecg import integrity, paths
from simecg.config import stable_hash
from simecg.errors import ConfigError, DataError, DataMissingError
from simecg.identity import task_data_version
from simecg.signal import LEADS

log = logging.getLogger(__name__)

# Bump when readers, checks or label rules change what ends up in a cache.
# 3: the authors' labels (one list per class, G12EC codes found as text in #Dx) and record lengths.
READER_VERSION = 3
# 3: + each record's length (meta.json); 2: + long.f32, the whole signals of records longer than a
# window (1: windows only)
LEAD_CACHE_LAYOUT = 3
# 4: rows (normal class first; a record in both classes twice) + aliases.npy; 3: + long_span.npy;
# 2: a task is an index into its lead cache (1 copied its windows)
TASK_CACHE_LAYOUT = 4
RECORD_COLUMNS = ["record_id", "patient_id", "age", "sex", "strat_fold"]


@dataclass
class LeadCache:
    """All records of a dataset on one lead: windows, their records, and each record's check."""

    signals: np.ndarray  # (n_windows, window) float32 memmap
    window_record: np.ndarray  # (n_windows,) index into the dataset index
    status: list[dict[str, str]]  # per index row: {"file", "status", "reason"}
    data_version: str
    key: str
    path: Path | None = None  # the signals file (None when the cache holds no window)
    # Samples of each index row's prepared record (at the cache's rate; 0 when not read or rejected).
    lengths: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))
    window: int = 0  # samples per window
    # Records longer than one window, whole (preprocessed, not z-scored): flat samples, and per
    # such record its index row and (offset, length) in ``long_samples``.
    long_samples: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.float32))
    long_record: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))
    long_span: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 2), np.int64))


@dataclass
class TaskRows:
    """The rows of one task: which records, in which order, with which label.

    Attributes:
        rows: index row (into the dataset's index) of each task row: the records of the normal
            class, then the positives, each in the index's order, as the authors concatenate
            their per-class lists; a record in both classes appears in both parts under
            ``data.overlap = "both"``.
        labels: int8 per task row, 0 normal, 1 positive.
        quarantine: records of the task left out, each ``{"file", "reason"}``, in index order.
    """

    rows: np.ndarray
    labels: np.ndarray
    quarantine: list[dict[str, str]]


class RecordDataset:
    """Base of the PTB-XL and PhysioNet/CinC-format readers (see module docstring)."""

    name: str = ""
    folder: str = ""  # sub-folder of the data root, e.g. "ptbxl"
    layout: str = ""  # human description of the expected folder layout, for error messages
    nominal_gain: float | None = 1000.0
    # Records are one window long by design (PTB-XL, G12EC: 10 s): each is one window, and the
    # paper keeps only those of exactly that length (``data.lengths``). False (CPSC2018): records
    # of any length, each z-scored whole and cut into evaluation windows (docs/protocol.md).
    fixed_length: bool = True

    # ---- what a subclass provides -------------------------------------------------------------
    def is_dataset_folder(self, path: Path) -> bool:
        raise NotImplementedError

    def build_index(self, root: Path) -> pd.DataFrame:
        """One row per record: RECORD_COLUMNS + ``files`` (tuple of paths) + ``problem`` (str)."""
        raise NotImplementedError

    def classes(self, spec: TaskSpec, index: pd.DataFrame, options: DataConfig) -> tuple[np.ndarray, np.ndarray]:
        """Per index row, whether it is in the positive class and whether it is in the normal class.

        The two are decided separately, as the authors build one list per class: a record may be
        in both (what a task makes of it is ``options.overlap``, :meth:`task_rows`).
        """
        raise NotImplementedError

    def read(self, row: Mapping[str, Any], leads: tuple[str, ...]) -> tuple[RecordCheck, np.ndarray | None, float]:
        """Check the record of index ``row`` and return ``(check, (n_samples, 12) mV or None, fs)``."""
        raise NotImplementedError

    # ---- shared behaviour ---------------------------------------------------------------------
    def find_root(self, data_dir: Path | str) -> Path:
        """The dataset folder: ``data_dir/<folder>`` or ``data_dir`` itself; else DataMissingError."""
        data_dir = Path(data_dir).expanduser()
        for candidate in (data_dir / self.folder, data_dir):
            if candidate.is_dir() and self.is_dataset_folder(candidate):
                return candidate
        raise DataMissingError(
            f"{self.name}: no dataset found at {data_dir / self.folder} (nor in {data_dir} itself). Expected "
            f"layout: {self.layout}. Get it with: simecg-bench data download {self.name} --dir {data_dir}"
        )

    def index(self, data_dir: Path | str) -> pd.DataFrame:
        return self.build_index(self.find_root(data_dir))

    def label_counts(self, spec: TaskSpec, data_dir: Path | str, options: DataConfig = DataConfig()) -> ClassCounts:
        """Records per class by labels alone (no signal read), for ``list tasks``.

        Records the data checks would reject for their signal, or the length rule would leave
        out, are counted: only reading the signals tells (``simecg-bench data check``).
        """
        index = self.index(data_dir)
        positive, negative = self.classes(spec, index, options)
        usable = (index["problem"] == "").to_numpy()
        both = positive & negative & usable
        if options.overlap == "positive":
            negative = negative & ~positive
        return ClassCounts(positives=int(np.sum(positive & usable)), negatives=int(np.sum(negative & usable)),
                           both=int(np.sum(both)))

    def lead_cache(
        self, data_dir: Path | str, lead: str, cache_dir: Path, preprocess: PreprocessConfig = PreprocessConfig(),
        index: pd.DataFrame | None = None,
    ) -> LeadCache:
        """Windows of every record on ``lead``, built on first use and memory-mapped afterwards."""
        lead = canonical_lead_or_error(lead)
        root = self.find_root(data_dir)
        index = self.build_index(root) if index is None else index
        key = stable_hash({
            "dataset": self.name, "root": str(root.resolve()), "lead": lead, "files": _stat_fingerprint(index),
            "preprocess": dataclasses.asdict(preprocess),
            "versions": [READER_VERSION, PREPROCESS_VERSION, LEAD_CACHE_LAYOUT],
        })
        folder = Path(cache_dir) / "datasets" / self.name / f"{lead}-{key}"
        meta_path = folder / "meta.json"
        if not _usable(folder):
            self._build_lead_cache(index, lead, preprocess, folder)
        meta = json.loads(meta_path.read_text())
        signals = np.memmap(folder / "signals.f32", dtype=np.float32, mode="r",
                            shape=(meta["n_windows"], preprocess.window)) if meta["n_windows"] else \
            np.zeros((0, preprocess.window), np.float32)
        n_long = int(meta["n_long_samples"])
        long_samples = np.memmap(folder / "long.f32", dtype=np.float32, mode="r", shape=(n_long,)) if n_long else \
            np.zeros(0, np.float32)
        return LeadCache(signals, np.asarray(meta["window_record"], dtype=np.int64), meta["status"],
                         meta["data_version"], key, folder / "signals.f32" if meta["n_windows"] else None,
                         np.asarray(meta["lengths"], dtype=np.int64), preprocess.window,
                         long_samples, np.asarray(meta["long_record"], dtype=np.int64),
                         np.asarray(meta["long_span"], dtype=np.int64).reshape(-1, 2))

    def _build_lead_cache(self, index: pd.DataFrame, lead: str, preprocess: PreprocessConfig, folder: Path) -> None:
        with _building(folder) as tmp:
            self._write_lead_cache(index, lead, preprocess, tmp)

    def _write_lead_cache(self, index: pd.DataFrame, lead: str, preprocess: PreprocessConfig, tmp: Path) -> None:
        # The data version hashes the bytes read and what of the preprocessing shaped the arrays, which
        # depends on whether any record is cut into windows: both hashes run, one is kept.
        contents = {windowed: hashlib.sha256(stable_hash({"preprocess": preprocess.content_identity(windowed),
                                                          "lead": lead}).encode()) for windowed in (False, True)}
        window_record: list[int] = []
        long_record: list[int] = []
        long_span: list[tuple[int, int]] = []
        lengths = [0] * len(index)
        n_long = 0
        status: list[dict[str, str]] = []
        column = LEADS.index(lead)
        with integrity.CacheFile(tmp / "signals.f32") as out, integrity.CacheFile(tmp / "long.f32") as long_out:
            rows = tqdm(index.itertuples(index=False), total=len(index), desc=f"{self.name} lead {lead}",
                        unit="rec", disable=None, leave=False)
            for i, row in enumerate(rows):
                for path in row.files:
                    digest = _file_digest(Path(path))
                    for content in contents.values():
                        content.update(Path(path).name.encode())
                        content.update(digest)
                if row.problem:
                    status.append({"file": str(row.files[0]), "status": "rejected", "reason": row.problem})
                    continue
                check, signal, fs = self.read(row._asdict(), (lead,))
                status.append(check.as_dict())
                if signal is None:
                    log.info("%s: excluded (%s)", check.file, "; ".join(check.reasons))
                    continue
                record = prepare_record(signal[:, column], fs, preprocess)
                lengths[i] = len(record)
                windows = self.record_windows(record, preprocess)
                out.write(np.ascontiguousarray(windows, dtype=np.float32).tobytes())
                window_record.extend([i] * len(windows))
                if len(record) > preprocess.window:  # kept whole for random training crops
                    long_out.write(np.ascontiguousarray(whole_record(record, preprocess), dtype=np.float32).tobytes())
                    long_record.append(i)
                    long_span.append((n_long, len(record)))
                    n_long += len(record)
        _log_summary(self.name, lead, status)
        windowed = not self.fixed_length or bool(long_record)
        meta = {"n_windows": len(window_record), "window_record": window_record, "status": status,
                "lengths": lengths, "n_long_samples": n_long, "long_record": long_record, "long_span": long_span,
                "data_version": contents[windowed].hexdigest()[:16], "dataset": self.name, "lead": lead}
        with integrity.CacheFile(tmp / "meta.json") as out:
            out.write(json.dumps(meta).encode())

    def record_windows(self, record: np.ndarray, preprocess: PreprocessConfig) -> np.ndarray:
        """A prepared record's evaluation windows: itself when one window long in a fixed-length dataset.

        A 10-s PTB-XL or G12EC record is one window (the authors align it to 10 s and evaluate it
        whole); any other record (CPSC2018's, or PTB-XL/G12EC ones of another length kept by
        ``data.lengths = "any"``) is cut by :func:`benchmark.data.preprocess.record_windows`, which
        gives a 10-s CPSC2018 record two windows, as the authors' evaluation does.
        """
        if self.fixed_length and len(record) == preprocess.window:
            return single_window(record, preprocess)
        return record_windows(record, preprocess)

    def load_task(
        self, spec: TaskSpec, data_dir: Path | str | None, lead: str, cache_dir: Path,
        preprocess: PreprocessConfig = PreprocessConfig(), options: DataConfig = DataConfig(),
    ) -> TaskData:
        """The task's rows on ``lead``: the lead cache's windows (memory-mapped), labels, metadata.

        Every task of a dataset shares its lead cache: ``signals`` is the whole memmap and
        ``window_record`` marks the windows of records outside the task with -1, so a task costs
        a small index file instead of a copy of its windows (13 PTB-XL tasks x 12 leads would
        otherwise copy ~30 GB). A record that is two rows of the task (``options.overlap =
        "both"``) reads its windows twice through :class:`AliasedWindows`. Records longer than
        one window also get ``long_records`` (their whole signals in the lead cache's
        ``long.f32``, located by the task's ``long_span``).
        """
        root = self.find_root(paths.data_dir(data_dir))
        index = self.build_index(root)
        cache = self.lead_cache(root, lead, Path(cache_dir), preprocess, index=index)
        lead = canonical_lead_or_error(lead)
        key = stable_hash({"lead_cache": cache.key, "task": dataclasses.asdict(spec), "layout": TASK_CACHE_LAYOUT,
                           "reader": READER_VERSION, "options": dataclasses.asdict(options)})
        folder = Path(cache_dir) / "tasks" / self.name / f"{spec.label}-{lead}-{key}"
        if not _usable(folder):
            self._build_task_cache(spec, index, cache, folder, options)
        meta = json.loads((folder / "meta.json").read_text())
        span = np.load(folder / "long_span.npy")
        aliases = np.load(folder / "aliases.npy")
        long = LongRecords(cache.long_samples, span) if np.any(span[:, 1] > 0) else None
        records = pd.DataFrame(meta["records"], columns=RECORD_COLUMNS)
        records["age"] = records["age"].astype(float)
        records["strat_fold"] = records["strat_fold"].astype(int)
        records["sex"] = records["sex"].astype(object).where(records["sex"].notna(), None)
        signals = AliasedWindows(cache.signals, aliases) if len(aliases) else cache.signals
        return TaskData(
            task=spec.name, dataset=self.name, lead=lead, signals=signals,
            window_record=np.load(folder / "window_record.npy"),
            labels=np.asarray(meta["labels"], dtype=np.int8), records=records,
            data_version=meta["data_version"], synthetic=False, quarantine=meta["quarantine"], long_records=long,
        )

    def task_rows(self, spec: TaskSpec, index: pd.DataFrame, cache: LeadCache,
                  options: DataConfig = DataConfig()) -> TaskRows:
        """The task's rows as the authors listed them (docs/protocol.md, "Tasks").

        The normal class's usable records, then the positive class's, each in the index's order
        (the authors concatenate their normal list and their positive list). A record in both
        classes is in both parts under ``options.overlap = "both"`` and a positive only under
        ``"positive"``. Left out, and listed in ``quarantine``: records the data checks rejected
        and, in a fixed-length dataset under ``options.lengths = "exact"``, records not exactly
        one window long (the authors skip every PTB-XL and G12EC record not of 5,000 samples).
        """
        positive, negative = self.classes(spec, index, options)
        if options.overlap == "positive":
            negative = negative & ~positive
        in_task = positive | negative
        usable = np.array([s["status"] != "rejected" for s in cache.status], dtype=bool)
        reasons = {int(i): cache.status[i]["reason"] for i in np.flatnonzero(in_task & ~usable)}
        if self.fixed_length and options.lengths == "exact":
            off = in_task & usable & (cache.lengths != cache.window)
            for i in np.flatnonzero(off):
                reasons[int(i)] = (f"{cache.lengths[i]} samples, not {cache.window}: the paper keeps only "
                                   f"{self.name} records of exactly one window (data.lengths = 'any' keeps it)")
            usable &= ~off
        quarantine = [{"file": cache.status[i]["file"], "reason": reasons[i]} for i in sorted(reasons)]
        normal, positives = np.flatnonzero(negative & usable), np.flatnonzero(positive & usable)
        labels = np.concatenate([np.zeros(len(normal), np.int8), np.ones(len(positives), np.int8)])
        return TaskRows(np.concatenate([normal, positives]).astype(np.int64), labels, quarantine)

    def _build_task_cache(self, spec: TaskSpec, index: pd.DataFrame, cache: LeadCache, folder: Path,
                          options: DataConfig) -> None:
        task = self.task_rows(spec, index, cache, options)
        if len(task.rows) == 0 or len(set(task.labels.tolist())) < 2:
            found = {int(v): int(np.sum(task.labels == v)) for v in (1, 0)}
            raise DataError(
                f"task {spec.name}: needs positive and negative records, found {found[1]} positive and "
                f"{found[0]} negative usable records in {self.name} ({len(task.quarantine)} left out); "
                "check the data folder with: simecg-bench data check DIR"
            )
        first, second = _row_positions(task.rows, len(index))
        # each lead window belongs to its record's first row; the windows of a record's second row
        # (a record in both classes) are appended as aliases of the same lead windows
        repeated = np.flatnonzero(second[cache.window_record] >= 0)
        window_record = np.concatenate([first[cache.window_record], second[cache.window_record[repeated]]])
        long_of = np.zeros((len(index), 2), dtype=np.int64)  # (offset, length) in long.f32; length 0: one window
        if len(cache.long_record):
            long_of[cache.long_record] = cache.long_span
        records = index.iloc[task.rows][RECORD_COLUMNS]
        meta = {
            "labels": task.labels.astype(int).tolist(),
            "records": [
                {"record_id": str(r.record_id), "patient_id": str(r.patient_id),
                 "age": None if pd.isna(r.age) else float(r.age), "sex": r.sex if r.sex in ("M", "F") else None,
                 "strat_fold": int(r.strat_fold)}
                for r in records.itertuples(index=False)
            ],
            "quarantine": task.quarantine,
            "data_version": task_data_version(cache.data_version, dataclasses.asdict(spec),
                                              records["record_id"].astype(str).tolist(),
                                              task.labels.astype(int).tolist()),
        }
        arrays = (("window_record.npy", window_record.astype(np.int64)), ("aliases.npy", repeated.astype(np.int64)),
                  ("long_span.npy", long_of[task.rows]))
        with _building(folder) as tmp:
            for name, array in arrays:
                with integrity.CacheFile(tmp / name) as out:
                    np.save(out, array)  # type: ignore[arg-type]  # np.save only calls write()
            with integrity.CacheFile(tmp / "meta.json") as out:
                out.write(json.dumps(meta).encode())


def _row_positions(rows: np.ndarray, n_index: int) -> tuple[np.ndarray, np.ndarray]:
    """Per index row, its first and its second position among the task's ``rows`` (-1 when none).

    A record is at most twice in a task (once per class).
    """
    first = np.full(n_index, -1, dtype=np.int64)
    second = np.full(n_index, -1, dtype=np.int64)
    for position, row in enumerate(rows.tolist()):
        if first[row] < 0:
            first[row] = position
        else:
            second[row] = position
    return first, second


def _usable(folder: Path) -> bool:
    """Whether a cache folder is there and intact; a damaged one is removed (one warning) to be rebuilt."""
    if not folder.exists():
        return False
    problem = integrity.check_folder(folder)
    if problem is None:
        return True
    log.warning("data cache %s is damaged (%s); rebuilding it", folder, problem)
    with paths.writing(folder):
        integrity.discard_folder(folder)
    return False


@contextlib.contextmanager
def _building(folder: Path) -> Iterator[Path]:
    """A temporary folder beside ``folder`` to write a cache into, sealed and published when the block ends.

    Temporaries of killed builds are swept first; this build's is removed if it fails. Publishing
    is a rename; if another process published first, theirs (equivalent) is kept.
    """
    integrity.sweep(folder.parent)
    tmp = integrity.temp_path(folder)
    with paths.writing(tmp):
        tmp.mkdir(parents=True)
    try:
        yield tmp
        with paths.writing(tmp):
            integrity.seal_folder(tmp, sorted(p.name for p in tmp.iterdir()))
        try:
            tmp.rename(folder)
        except OSError:
            if not folder.exists():  # not a concurrent winner (whose equivalent folder stays): say why
                with paths.writing(folder):
                    raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _log_summary(name: str, lead: str, status: list[dict[str, str]]) -> None:
    """One warning per cache build instead of one per record: counts and the first reason of each kind."""
    for kind in ("repaired", "rejected"):
        hits = [s for s in status if s["status"] == kind]
        if hits:
            log.warning("%s lead %s: %d of %d records %s (e.g. %s: %s); details: simecg-bench data check",
                        name, lead, len(hits), len(status), kind, Path(hits[0]["file"]).name, hits[0]["reason"])


def canonical_lead_or_error(lead: str) -> str:
    """``"ii"`` -> ``"II"``; unknown names raise ConfigError listing the 12 leads."""
    found = canonical_lead(str(lead))
    if found is None:
        raise ConfigError(f"unknown lead {lead!r}; expected one of {', '.join(LEADS)}")
    return found


def _stat_fingerprint(index: pd.DataFrame) -> str:
    digest = hashlib.sha256()
    for files, problem in zip(index["files"], index["problem"], strict=True):
        for path in files:
            try:
                st = os.stat(path)
                digest.update(f"{path}|{st.st_size}|{st.st_mtime_ns}\n".encode())
            except OSError:
                digest.update(f"{path}|missing\n".encode())
        digest.update(problem.encode())
    return digest.hexdigest()


def _file_digest(path: Path) -> bytes:
    """The raw SHA-256 of a file (:func:`simecg.integrity.digest`); only a regular file is read (a FIFO would block,
    a device never end): anything else, or an unreadable file, hashes as ``b"missing"``."""
    try:
        if not path.is_file():
            return b"missing"
        return bytes.fromhex(integrity.digest(path))
    except OSError:
        return b"missing"


def parse_sex(value: Any) -> str | None:
    """'Male'/'M'/0 (PTB-XL) -> 'M'; 'Female'/'F'/1 -> 'F'; anything else -> None."""
    text = str(value).strip().lower()
    if text in ("m", "male", "0", "0.0"):
        return "M"
    if text in ("f", "female", "1", "1.0"):
        return "F"
    return None


def parse_age(value: Any) -> float:
    try:
        age = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return age if 0 <= age < 150 else float("nan")
