"""What every downstream dataset shares: locating its folder, checking records, caching windows.

A dataset subclass says where its records are and what their labels mean (:meth:`build_index`,
:meth:`labels`, :meth:`read`); this base turns that into :class:`TaskData`. Loading is two-level:

1. the *lead cache* holds the preprocessed evaluation windows of every record of the dataset
   on one lead (``signals.f32``), and the whole signal of every record longer than one window
   (``long.f32``, for random training crops; CPSC2018), built once by reading and checking each
   WFDB file, then shared by all tasks on that lead;
2. the *task cache* holds one task's labels and records, which lead-cache windows are its
   records' (``window_record``, -1 elsewhere) and where its long records' signals are
   (``long_span``): a task never copies signals.

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

from benchmark.datasets.base import LongRecords, TaskData, TaskSpec
from benchmark.datasets.signals import RecordCheck
from benchmark.preprocess import PREPROCESS_VERSION, PreprocessConfig, prepare_record, record_windows
from simecg import integrity, paths
from simecg.config import stable_hash
from simecg.errors import ConfigError, DataError, DataMissingError
from simecg.signal import LEADS

log = logging.getLogger(__name__)

READER_VERSION = 2  # bump when readers or checks change what ends up in a cache
LEAD_CACHE_LAYOUT = 2  # 2: + long.f32, the whole signals of records longer than a window (1: windows only)
TASK_CACHE_LAYOUT = 3  # 3: + long_span.npy; 2: a task is an index into its lead cache (1 copied its windows)
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
    # Records longer than one window, whole (preprocessed, not z-scored): flat samples, and per
    # such record its index row and (offset, length) in ``long_samples``.
    long_samples: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.float32))
    long_record: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))
    long_span: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 2), np.int64))


class RecordDataset:
    """Base of the PTB-XL and PhysioNet/CinC-format readers (see module docstring)."""

    name: str = ""
    folder: str = ""  # sub-folder of the data root, e.g. "ptbxl"
    layout: str = ""  # human description of the expected folder layout, for error messages
    nominal_gain: float | None = 1000.0

    # ---- what a subclass provides -------------------------------------------------------------
    def is_dataset_folder(self, path: Path) -> bool:
        raise NotImplementedError

    def build_index(self, root: Path) -> pd.DataFrame:
        """One row per record: RECORD_COLUMNS + ``files`` (tuple of paths) + ``problem`` (str)."""
        raise NotImplementedError

    def labels(self, spec: TaskSpec, index: pd.DataFrame) -> np.ndarray:
        """int8 per index row: 1 positive, 0 negative (normal class), -1 not part of the task."""
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

    def label_counts(self, spec: TaskSpec, data_dir: Path | str) -> dict[int, int]:
        """Positives and negatives by labels alone (no signal read), for ``list tasks``."""
        index = self.index(data_dir)
        labels = self.labels(spec, index)
        usable = (index["problem"] == "").to_numpy()
        return {1: int(np.sum((labels == 1) & usable)), 0: int(np.sum((labels == 0) & usable))}

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
                         long_samples, np.asarray(meta["long_record"], dtype=np.int64),
                         np.asarray(meta["long_span"], dtype=np.int64).reshape(-1, 2))

    def _build_lead_cache(self, index: pd.DataFrame, lead: str, preprocess: PreprocessConfig, folder: Path) -> None:
        with _building(folder) as tmp:
            self._write_lead_cache(index, lead, preprocess, tmp)

    def _write_lead_cache(self, index: pd.DataFrame, lead: str, preprocess: PreprocessConfig, tmp: Path) -> None:
        # The data version hashes the bytes read and what of the preprocessing shaped the arrays, which
        # depends on whether any record is longer than a window: both hashes run, one is kept.
        contents = {long: hashlib.sha256(stable_hash({"preprocess": preprocess.content_identity(long),
                                                      "lead": lead}).encode()) for long in (False, True)}
        window_record: list[int] = []
        long_record: list[int] = []
        long_span: list[tuple[int, int]] = []
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
                windows = record_windows(record, preprocess)
                out.write(np.ascontiguousarray(windows, dtype=np.float32).tobytes())
                window_record.extend([i] * len(windows))
                if len(record) > preprocess.window:  # kept whole for random training crops
                    long_out.write(np.ascontiguousarray(record, dtype=np.float32).tobytes())
                    long_record.append(i)
                    long_span.append((n_long, len(record)))
                    n_long += len(record)
        _log_summary(self.name, lead, status)
        meta = {"n_windows": len(window_record), "window_record": window_record, "status": status,
                "n_long_samples": n_long, "long_record": long_record, "long_span": long_span,
                "data_version": contents[bool(long_record)].hexdigest()[:16], "dataset": self.name, "lead": lead}
        with integrity.CacheFile(tmp / "meta.json") as out:
            out.write(json.dumps(meta).encode())

    def load_task(
        self, spec: TaskSpec, data_dir: Path | str | None, lead: str, cache_dir: Path,
        preprocess: PreprocessConfig = PreprocessConfig(),
    ) -> TaskData:
        """The task's records on ``lead``: the lead cache's windows (memory-mapped), labels, metadata.

        Every task of a dataset shares its lead cache: ``signals`` is the whole memmap and
        ``window_record`` marks the windows of records outside the task with -1, so a task costs
        a small index file instead of a copy of its windows (13 PTB-XL tasks x 12 leads would
        otherwise copy ~30 GB). Records longer than one window also get ``long_records`` (their
        whole signals in the lead cache's ``long.f32``, located by the task's ``long_span``).
        """
        from simecg import paths

        root = self.find_root(paths.data_dir(data_dir))
        index = self.build_index(root)
        cache = self.lead_cache(root, lead, Path(cache_dir), preprocess, index=index)
        lead = canonical_lead_or_error(lead)
        key = stable_hash({"lead_cache": cache.key, "task": dataclasses.asdict(spec), "layout": TASK_CACHE_LAYOUT})
        folder = Path(cache_dir) / "tasks" / self.name / f"{spec.label}-{lead}-{key}"
        if not _usable(folder):
            self._build_task_cache(spec, index, cache, folder)
        meta = json.loads((folder / "meta.json").read_text())
        span = np.load(folder / "long_span.npy")
        long = LongRecords(cache.long_samples, span, preprocess.normalize) if np.any(span[:, 1] > 0) else None
        records = pd.DataFrame(meta["records"], columns=RECORD_COLUMNS)
        records["age"] = records["age"].astype(float)
        records["strat_fold"] = records["strat_fold"].astype(int)
        records["sex"] = records["sex"].astype(object).where(records["sex"].notna(), None)
        return TaskData(
            task=spec.name, dataset=self.name, lead=lead, signals=cache.signals,
            window_record=np.load(folder / "window_record.npy"),
            labels=np.asarray(meta["labels"], dtype=np.int8), records=records,
            data_version=meta["data_version"], synthetic=False, quarantine=meta["quarantine"], long_records=long,
        )

    def task_records(
        self, spec: TaskSpec, index: pd.DataFrame, status: list[dict[str, str]]
    ) -> tuple[np.ndarray, np.ndarray, list[dict[str, str]]]:
        """(labels of every index row, index rows of the task's usable records in order, quarantine)."""
        labels = self.labels(spec, index)
        in_task = np.flatnonzero(labels >= 0)
        usable = np.array([status[i]["status"] != "rejected" for i in in_task], dtype=bool)
        quarantine = [{"file": status[i]["file"], "reason": status[i]["reason"]} for i in in_task[~usable]]
        return labels, in_task[usable], quarantine

    def _build_task_cache(self, spec: TaskSpec, index: pd.DataFrame, cache: LeadCache, folder: Path) -> None:
        labels, kept, quarantine = self.task_records(spec, index, cache.status)
        if len(kept) == 0 or len(set(labels[kept].tolist())) < 2:
            found = {int(v): int(np.sum(labels[kept] == v)) for v in (1, 0)}
            raise DataError(
                f"task {spec.name}: needs positive and negative records, found {found[1]} positive and "
                f"{found[0]} negative usable records in {self.name} ({len(quarantine)} quarantined); "
                "check the data folder with: simecg-bench data check DIR"
            )
        position = np.full(len(index), -1, dtype=np.int64)
        position[kept] = np.arange(len(kept))
        span = np.zeros((len(kept), 2), dtype=np.int64)  # (offset, length) in long.f32; length 0: one window
        in_task = position[cache.long_record] >= 0 if len(cache.long_record) else np.zeros(0, bool)
        span[position[cache.long_record[in_task]]] = cache.long_span[in_task]
        records = index.iloc[kept][RECORD_COLUMNS]
        meta = {
            "labels": labels[kept].astype(int).tolist(),
            "records": [
                {"record_id": str(r.record_id), "patient_id": str(r.patient_id),
                 "age": None if pd.isna(r.age) else float(r.age), "sex": r.sex if r.sex in ("M", "F") else None,
                 "strat_fold": int(r.strat_fold)}
                for r in records.itertuples(index=False)
            ],
            "quarantine": quarantine,
            "data_version": stable_hash({"dataset": cache.data_version, "task": dataclasses.asdict(spec),
                                         "records": records["record_id"].astype(str).tolist()}),
        }
        with _building(folder) as tmp:
            for name, array in (("window_record.npy", position[cache.window_record]), ("long_span.npy", span)):
                with integrity.CacheFile(tmp / name) as out:
                    np.save(out, array)  # type: ignore[arg-type]  # np.save only calls write()
            with integrity.CacheFile(tmp / "meta.json") as out:
                out.write(json.dumps(meta).encode())


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
    from benchmark.datasets.header import canonical_lead

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
    """SHA-256 of a file, read in chunks; only regular files are read (a FIFO would block, a device never end)."""
    try:
        if not path.is_file():
            return b"missing"
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        return digest.digest()
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
