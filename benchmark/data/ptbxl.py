"""PTB-XL in its PhysioNet layout: ``ptbxl_database.csv`` labels, WFDB records at 500 Hz.

Layout (https://physionet.org/content/ptb-xl/1.0.3/)::

    ptbxl/
      ptbxl_database.csv        ecg_id, patient_id, age, sex (0 male, 1 female), scp_codes, strat_fold,
                                filename_hr (records500/...), filename_lr (records100/...)
      scp_statements.csv        the SCP-ECG statements (used to reject unknown codes)
      records500/00000/00001_hr.hea + .dat   (records100/ used, resampled to 500 Hz, when absent)

Labels: a task's positive code counts when its likelihood in ``scp_codes`` is at least the
task's ``min_likelihood`` (100, or 0 = any for AFIB, PAC, STD_, ABQRS); the negative class NORM
counts at likelihood >= 100. The two classes are decided apart, as the authors list them: a
record that is both is in both classes (``data.overlap``, docs/protocol.md "Tasks"). Ages above
89 are stored as 300 in PTB-XL (anonymisation) and read as 90.
"""

from __future__ import annotations

import ast
import functools
import logging
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from benchmark.data.base import DataConfig, TaskSpec, require_text_path
from benchmark.data.common import RecordDataset, parse_age
from benchmark.data.signals import RecordCheck, read_and_check
from benchmark.data.table import task_table
from simecg.errors import DataError

log = logging.getLogger(__name__)


class PTBXL(RecordDataset):
    """Reader of PTB-XL (see module docstring)."""

    name = "ptbxl"
    folder = "ptbxl"
    layout = ("ptbxl/ptbxl_database.csv, ptbxl/scp_statements.csv and ptbxl/records500/NNNNN/NNNNN_hr.{hea,dat} "
              "(PhysioNet's ptb-xl/1.0.3 layout)")

    def is_dataset_folder(self, path: Path) -> bool:
        return (path / "ptbxl_database.csv").is_file()

    def build_index(self, root: Path) -> pd.DataFrame:
        stat = (root / "ptbxl_database.csv").stat()
        return _index(str(require_text_path(root.resolve())), stat.st_size, stat.st_mtime_ns).copy()

    def classes(self, spec: TaskSpec, index: pd.DataFrame, options: DataConfig) -> tuple[np.ndarray, np.ndarray]:
        negative_min = float(task_table()["datasets"]["ptbxl"].get("negative_min_likelihood", 100.0))
        positive = np.array([_has(codes, spec.positive, spec.min_likelihood) for codes in index["codes"]], dtype=bool)
        negative = np.array([_has(codes, spec.negative, negative_min) for codes in index["codes"]], dtype=bool)
        return positive, negative

    def read(self, row: Mapping[str, Any], leads: tuple[str, ...]) -> tuple[RecordCheck, np.ndarray | None, float]:
        return read_and_check(Path(row["files"][0]), leads, self.nominal_gain)


@functools.lru_cache(maxsize=4)
def _index(root: str, size: int, mtime: int) -> pd.DataFrame:
    """Parse the database CSV once per (folder, file version)."""
    base = Path(root)
    try:
        db = pd.read_csv(base / "ptbxl_database.csv")
    except Exception as exc:  # pandas raises many parser errors
        raise DataError(f"{base / 'ptbxl_database.csv'}: unreadable ({' '.join(str(exc).split())[:160]}); "
                        "re-download PTB-XL") from None
    missing = {"ecg_id", "patient_id", "age", "sex", "scp_codes", "strat_fold", "filename_hr"} - set(db.columns)
    if missing:
        raise DataError(f"{base / 'ptbxl_database.csv'}: missing columns {sorted(missing)}; re-download PTB-XL")
    if db.empty:
        raise DataError(f"{base / 'ptbxl_database.csv'}: no records (a header and no rows); re-download PTB-XL")
    db = _one_row_per_record(db, base / "ptbxl_database.csv")
    known = _known_codes(base)
    rows = []
    for position, rec in enumerate(db.itertuples(index=False)):
        ecg_id = _whole(rec.ecg_id)
        record_id = str(ecg_id) if ecg_id is not None else f"row{position + 2}"
        problem = "" if ecg_id is not None else f"unreadable ecg_id {str(rec.ecg_id)[:20]!r} (row {position + 2})"
        try:
            codes = {str(k): float(v) for k, v in ast.literal_eval(str(rec.scp_codes)).items()}
        except (ValueError, TypeError, SyntaxError, AttributeError, MemoryError, RecursionError):
            codes = {}
            problem = problem or f"unreadable scp_codes {str(rec.scp_codes)[:40]!r}"
        unknown = sorted(set(codes) - known) if known else []
        if unknown and not problem:
            problem = f"unknown SCP code(s) {', '.join(unknown)} (not in scp_statements.csv)"
        hr, lr = _record_path(base, rec.filename_hr), _record_path(base, getattr(rec, "filename_lr", None))
        header = hr if hr is not None and (hr.is_file() or lr is None or not lr.is_file()) else lr
        if header is None:
            problem = problem or f"filename_hr {str(rec.filename_hr)[:60]!r} is empty or not a path inside {base}"
            header = base / f"{record_id}.hea"
        elif not header.is_file() and not problem:
            problem = f"header {rec.filename_hr}.hea missing"
        files = (str(header), str(header.with_suffix(".dat")))
        age = 90.0 if _whole(rec.age) == 300 else parse_age(rec.age)
        sex = {0: "M", 1: "F"}.get(_whole(rec.sex))
        fold = _whole(rec.strat_fold)
        patient = _whole(rec.patient_id)
        rows.append({"record_id": record_id, "patient_id": str(patient) if patient is not None else f"ecg{record_id}",
                     "age": age, "sex": sex, "strat_fold": fold if fold is not None else -1, "codes": codes,
                     "files": files, "problem": problem})
    return pd.DataFrame(rows)


def _has(codes: Mapping[str, float], wanted: tuple[str, ...], min_likelihood: float) -> bool:
    """Whether one of the ``wanted`` SCP codes is in ``codes`` with at least ``min_likelihood``."""
    return any(code in codes and codes[code] >= min_likelihood for code in wanted)


def _one_row_per_record(db: pd.DataFrame, csv: Path) -> pd.DataFrame:
    """``db`` with exact copies of a row dropped (with a warning); an ``ecg_id`` on rows that differ is
    an error naming them. A record on two rows would be two records to the splits, which could put
    one in training and the other in test (docs/protocol.md, "Splits")."""
    ids = db["ecg_id"].map(_whole)
    if not ids.duplicated().any():
        return db
    copies = db.astype(str).assign(_id=ids.astype(str)).duplicated()
    if copies.any():
        log.warning("%s: %d exact duplicate row(s) dropped (ecg_id %s)", csv, int(copies.sum()),
                    ", ".join(sorted({str(i) for i in ids[copies]}, key=_id_order)[:10]))
    db, ids = db[~copies.to_numpy()], ids[~copies.to_numpy()]
    clash = ids[ids.notna() & ids.duplicated(keep=False)]
    if len(clash):
        shown = sorted({str(int(i)) for i in clash}, key=_id_order)
        raise DataError(f"{csv}: ecg_id {', '.join(shown[:10])}{' ...' if len(shown) > 10 else ''} on more than one "
                        f"row with different contents ({len(shown)} id(s)); one row per record is expected: "
                        "remove the extra rows or re-download PTB-XL")
    return db


def _id_order(text: str) -> tuple[int, str]:
    return (int(text), "") if text.lstrip("-").isdigit() else (0, text)


def _whole(value: Any) -> int | None:
    """A whole number from a CSV cell ("15709", 15709.0), or None when the cell holds anything else."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return int(number) if number.is_integer() and abs(number) < 2**53 else None


def _record_path(base: Path, relative: Any) -> Path | None:
    """``base/<relative>.hea`` for a relative path that stays inside ``base``; None otherwise (or when empty)."""
    if not isinstance(relative, str) or not relative.strip():
        return None
    parts = PurePosixPath(relative.strip()).parts
    if not parts or PurePosixPath(relative).is_absolute() or ".." in parts or "\\" in relative or "\0" in relative:
        return None
    return base.joinpath(*parts).with_name(parts[-1] + ".hea")


def _known_codes(base: Path) -> set[str]:
    path = base / "scp_statements.csv"
    if not path.is_file():
        log.warning("%s missing: SCP codes are not validated", path)
        return set()
    try:
        return set(pd.read_csv(path, index_col=0).index.astype(str))
    except Exception as exc:  # pandas raises many parser errors
        reason = " ".join(str(exc).split())[:120]
        raise DataError(f"{path}: unreadable ({type(exc).__name__}: {reason}); re-download PTB-XL") from None


DATASET = PTBXL()  # registered as "ptbxl" by its entry point (pyproject.toml)
