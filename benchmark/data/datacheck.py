"""``simecg-bench data check DIR``: every record of a data folder checked, one line per problem.

The checks are those applied when a dataset is loaded for a run (``benchmark.data.signals``
and the readers' label checks), on all 12 leads: a record rejected here is excluded from tasks
(on the leads it fails) and listed in ``TaskData.quarantine``. The folder may be one dataset
(``ptbxl/``, ``g12ec/``, ``cpsc2018/``, any PhysioNet/CinC-format folder) or a root holding them.

It also counts what the protocol leaves out of a sound folder: PTB-XL and G12EC records that are
not exactly one 10-s window at 500 Hz, which the paper drops (``data.lengths = "exact"``,
docs/protocol.md "Signals"). Those records are not problems of the data: they stay ``ok``.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from benchmark.data.challenge import ChallengeDataset
from benchmark.data.common import RecordDataset
from benchmark.data.preprocess import PreprocessConfig, resampled_length
from benchmark.data.signals import RecordCheck
from benchmark.registries import DATASETS
from simecg.errors import DataMissingError
from simecg.signal import LEADS

KNOWN = ("ptbxl", "g12ec", "cpsc2018")


@dataclass
class CheckReport:
    """Per-record outcomes of a folder check; ``usable`` when at least one record can be used."""

    path: Path
    records: list[RecordCheck] = field(default_factory=list)
    # fixed-length datasets checked: name -> (records read, files of those not one window long)
    lengths: dict[str, tuple[int, list[str]]] = field(default_factory=dict)
    # files of each group of records (two or more) whose 12-lead signals are identical, sample for
    # sample, within one dataset; the splits keep such a group on one side (benchmark.data.splits)
    duplicates: list[list[str]] = field(default_factory=list)

    def duplicates_summary(self) -> str:
        """One line: how many groups of identical signals, and how many records they hold."""
        n = sum(len(group) for group in self.duplicates)
        return (f"{len(self.duplicates)} group(s) of records with identical signals ({n} records), kept together "
                "on one side of every split (suite option duplicates = group)")

    @property
    def counts(self) -> dict[str, int]:
        found = Counter(r.status for r in self.records)
        return {"ok": found["ok"], "repaired": found["repaired"], "rejected": found["rejected"]}

    @property
    def usable(self) -> bool:
        counts = self.counts
        return counts["ok"] + counts["repaired"] > 0

    def problems(self) -> list[RecordCheck]:
        return [r for r in self.records if r.status != "ok"]

    def summary(self) -> str:
        c = self.counts
        return f"{c['ok']} ok, {c['repaired']} repaired, {c['rejected']} rejected"

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([r.as_dict() for r in self.records], columns=["file", "status", "reason"])

    def length_lines(self) -> list[str]:
        """One line per fixed-length dataset with records the paper's length rule leaves out."""
        window = PreprocessConfig()
        return [f"{name}: {len(off)} of {read} readable records are not exactly {window.window} samples "
                f"({window.window / window.fs:g} s at {window.fs} Hz); the paper leaves them out of every task "
                "(data.lengths = 'exact'; 'any' keeps them)"
                for name, (read, off) in self.lengths.items() if off]


def check_folder(path: Path | str, progress: bool = True) -> CheckReport:
    """Check every record under ``path`` (a dataset folder or a root of dataset folders)."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise DataMissingError(f"{path}: no such folder; expected a dataset folder (e.g. DATA/ptbxl) or a data root")
    report = CheckReport(path)
    for dataset, root in _datasets_in(path):
        index = dataset.build_index(root)
        rows = tqdm(index.iterrows(), total=len(index), desc=f"check {root.name}", unit="rec",
                    disable=None if progress else True, leave=False)
        read, off_length = 0, []
        same_signal: dict[bytes, list[str]] = {}
        for _, row in rows:
            signal = None
            if row["problem"]:
                check = RecordCheck(str(row["files"][0]), "rejected", [row["problem"]])
            else:
                check, signal, fs = dataset.read(row, LEADS)
            check.file = _relative(check.file, path)
            report.records.append(check)
            if signal is not None:
                digest = hashlib.blake2b(np.ascontiguousarray(signal).tobytes(), digest_size=16).digest()
                same_signal.setdefault(digest, []).append(check.file)
                if dataset.fixed_length:
                    read += 1
                    if resampled_length(len(signal), fs, PreprocessConfig().fs) != PreprocessConfig().window:
                        off_length.append(check.file)
        if dataset.fixed_length:
            report.lengths[dataset.name] = (read, off_length)
        report.duplicates.extend(files for files in same_signal.values() if len(files) > 1)
    if not report.records:
        raise DataMissingError(
            f"{path}: no ECG records found; expected ptbxl_database.csv (PTB-XL), *.hea + *.mat "
            "(PhysioNet/CinC format) or CPSC2018 original *.mat, or sub-folders ptbxl/, g12ec/, cpsc2018/"
        )
    return report


def _datasets_in(path: Path) -> list[tuple[RecordDataset, Path]]:
    """The dataset folders to check: ``path`` itself, or its known sub-folders."""
    ptbxl = DATASETS.get("ptbxl")
    if ptbxl.is_dataset_folder(path):
        return [(ptbxl, path)]
    found = [(DATASETS.get(name), path / name) for name in KNOWN if (path / name).is_dir()]
    if found:
        return found
    registered = DATASETS.get(path.name) if path.name in KNOWN else None
    if isinstance(registered, RecordDataset):
        return [(registered, path)]
    return [(ChallengeDataset(path.name, "PhysioNet/CinC-format folder"), path)]


def _relative(file: str, root: Path) -> str:
    try:
        return str(Path(file).resolve().relative_to(root.resolve()))
    except ValueError:
        return file
