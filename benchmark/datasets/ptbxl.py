"""PTB-XL in its PhysioNet layout: ``ptbxl_database.csv`` labels, WFDB records at 500 Hz.

Layout (https://physionet.org/content/ptb-xl/1.0.3/)::

    ptbxl/
      ptbxl_database.csv        ecg_id, patient_id, age, sex (0 male, 1 female), scp_codes, strat_fold,
                                filename_hr (records500/...), filename_lr (records100/...)
      scp_statements.csv        the SCP-ECG statements (used to reject unknown codes)
      records500/00000/00001_hr.hea + .dat   (records100/ used, resampled to 500 Hz, when absent)

Labels: a task's positive code counts when its likelihood in ``scp_codes`` is at least the
task's ``min_likelihood`` (100, or 0 = any for AFIB, PAC, STD_, ABQRS); the negative class NORM
counts at likelihood >= 100; a record that is both is positive. Ages above 89 are stored as 300
in PTB-XL (anonymisation) and read as 90.
"""

from __future__ import annotations

import ast
import functools
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.datasets.base import TaskSpec
from benchmark.datasets.common import RecordDataset, parse_age
from benchmark.datasets.signals import RecordCheck, read_and_check
from benchmark.datasets.table import task_table
from benchmark.registries import DATASETS
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
        return _index(str(root.resolve()), stat.st_size, stat.st_mtime_ns).copy()

    def labels(self, spec: TaskSpec, index: pd.DataFrame) -> np.ndarray:
        negative_min = float(task_table()["datasets"]["ptbxl"].get("negative_min_likelihood", 100.0))
        out = np.full(len(index), -1, dtype=np.int8)
        for i, codes in enumerate(index["codes"]):
            if any(codes.get(c, -1.0) >= spec.min_likelihood for c in spec.positive if c in codes):
                out[i] = 1
            elif any(codes.get(c, -1.0) >= negative_min for c in spec.negative if c in codes):
                out[i] = 0
        return out

    def read(self, row: Mapping[str, Any], leads: tuple[str, ...]) -> tuple[RecordCheck, np.ndarray | None, float]:
        return read_and_check(Path(row["files"][0]), leads, self.nominal_gain)


@functools.lru_cache(maxsize=4)
def _index(root: str, size: int, mtime: int) -> pd.DataFrame:
    """Parse the database CSV once per (folder, file version)."""
    base = Path(root)
    try:
        db = pd.read_csv(base / "ptbxl_database.csv")
    except Exception as exc:  # pandas raises many parser errors
        raise DataError(f"{base / 'ptbxl_database.csv'}: unreadable ({exc}); re-download PTB-XL") from None
    missing = {"ecg_id", "patient_id", "age", "sex", "scp_codes", "strat_fold", "filename_hr"} - set(db.columns)
    if missing:
        raise DataError(f"{base / 'ptbxl_database.csv'}: missing columns {sorted(missing)}; re-download PTB-XL")
    known = _known_codes(base)
    rows = []
    for rec in db.itertuples(index=False):
        problem = ""
        try:
            codes = {str(k): float(v) for k, v in ast.literal_eval(rec.scp_codes).items()}
        except (ValueError, SyntaxError, AttributeError):
            codes, problem = {}, f"unreadable scp_codes {rec.scp_codes!r}"
        unknown = sorted(set(codes) - known) if known else []
        if unknown and not problem:
            problem = f"unknown SCP code(s) {', '.join(unknown)} (not in scp_statements.csv)"
        hr = base / f"{rec.filename_hr}.hea"
        lr = base / f"{getattr(rec, 'filename_lr', '')}.hea"
        header = hr if hr.is_file() or not lr.is_file() else lr
        if not header.is_file() and not problem:
            problem = f"header {rec.filename_hr}.hea missing"
        files = (str(header), str(header.with_suffix(".dat")))
        age = 90.0 if rec.age == 300 else parse_age(rec.age)
        sex = {0: "M", 1: "F"}.get(int(rec.sex)) if pd.notna(rec.sex) else None
        fold = int(rec.strat_fold) if pd.notna(rec.strat_fold) else -1
        patient = str(int(rec.patient_id)) if pd.notna(rec.patient_id) else f"ecg{rec.ecg_id}"
        rows.append({"record_id": str(int(rec.ecg_id)), "patient_id": patient, "age": age, "sex": sex,
                     "strat_fold": fold, "codes": codes, "files": files, "problem": problem})
    return pd.DataFrame(rows)


def _known_codes(base: Path) -> set[str]:
    path = base / "scp_statements.csv"
    if not path.is_file():
        log.warning("%s missing: SCP codes are not validated", path)
        return set()
    return set(pd.read_csv(path, index_col=0).index.astype(str))


DATASETS.add("ptbxl", PTBXL())
