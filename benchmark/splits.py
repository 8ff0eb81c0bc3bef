"""Train/validation/test splits of a task's records, as the paper made them and patient-disjoint.

``paper`` (PROTOCOL.md): per task, 20% of the records form the test set (drawn with
``test_seed`` = 123, the same for every run), the rest is split 80/20 into train/validation with
the run's seed. The authors split each class separately, so both steps here are stratified by
label. Records, not patients, are the unit: PTB-XL patients with several records can land on
both sides.

``patient`` (better practice): no patient in two splits. PTB-XL uses its recommended
``strat_fold`` (1-8 train, 9 validation, 10 test); other datasets are split by ``patient_id``
groups (20% test with ``test_seed``, then 80/20 with the seed), stratified by label as far as
groups allow. G12EC and CPSC2018 publish no patient ids, so there a patient is a record.

Split membership is data: ``Split.to_frame()`` / ``save_csv`` and a ``digest()`` that changes
whenever membership does, for MLflow dataset inputs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.datasets.base import TaskData
from simecg.errors import ConfigError, DataError
from simecg.seeding import rng_for

PRESETS = ("paper", "patient")
TEST_FRACTION = 0.2
VAL_FRACTION = 0.2


@dataclass
class Split:
    """Record indices (into ``TaskData.records`` / ``labels``) of each part of one split."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    record_ids: np.ndarray  # record_id of every record of the task, to name members
    preset: str = "paper"
    seed: int = 1
    test_seed: int = 123

    def to_frame(self) -> pd.DataFrame:
        """``record_id`` and ``split`` ("train", "val", "test") per member, sorted by record index."""
        parts = [("train", self.train), ("val", self.val), ("test", self.test)]
        index = np.concatenate([idx for _, idx in parts])
        names = np.concatenate([[name] * len(idx) for name, idx in parts])
        order = np.argsort(index, kind="stable")
        return pd.DataFrame({"record_id": self.record_ids[index[order]].astype(str), "split": names[order]})

    def digest(self) -> str:
        """SHA-256 (16 hex) of the membership table: equal exactly when membership is equal."""
        text = self.to_frame().to_csv(index=False)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def save_csv(self, path: Path | str) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.to_frame().to_csv(path, index=False)
        return path

    def to_mlflow_dataset(self, name: str):  # pragma: no cover - thin wrapper over mlflow
        """The membership table as an ``mlflow.data`` dataset, for ``mlflow.log_input``."""
        import mlflow.data

        return mlflow.data.from_pandas(self.to_frame(), name=name)


def make_split(data: TaskData, preset: str = "paper", seed: int = 1, test_seed: int = 123) -> Split:
    """The split of ``data``'s records under ``preset`` for run ``seed`` (deterministic)."""
    labels = np.asarray(data.labels)
    ids = data.records["record_id"].astype(str).to_numpy()
    if preset == "paper":
        rest, test = _stratified(np.arange(len(labels)), labels, TEST_FRACTION, test_seed, "test")
        train, val = _stratified(rest, labels, VAL_FRACTION, seed, "val")
    elif preset == "patient":
        train, val, test = _patient_split(data, labels, seed, test_seed)
    else:
        raise ConfigError(f"unknown split preset {preset!r}; expected one of {', '.join(PRESETS)}")
    return Split(np.sort(train), np.sort(val), np.sort(test), ids, preset, seed, test_seed)


def _stratified(indices: np.ndarray, labels: np.ndarray, fraction: float, seed: int, purpose: str):
    """Per class, a seeded permutation; the first round(fraction * n) go to the held-out part."""
    keep, held = [], []
    for cls in np.unique(labels[indices]):
        members = indices[labels[indices] == cls]
        perm = rng_for(seed, "split", purpose, int(cls)).permutation(members)
        n_held = int(round(fraction * len(perm)))
        held.append(perm[:n_held])
        keep.append(perm[n_held:])
    return np.concatenate(keep) if keep else indices[:0], np.concatenate(held) if held else indices[:0]


def _patient_split(data: TaskData, labels: np.ndarray, seed: int, test_seed: int):
    folds = data.records["strat_fold"].to_numpy()
    if data.dataset == "ptbxl" and np.all(folds >= 1):
        return np.flatnonzero(folds <= 8), np.flatnonzero(folds == 9), np.flatnonzero(folds == 10)
    if data.dataset == "ptbxl":
        raise DataError("patient split of PTB-XL needs strat_fold 1-10 for every record; some are unknown (-1)")
    groups = data.records["patient_id"].astype(str).to_numpy()
    everything = np.arange(len(labels))
    rest, test = _grouped(everything, labels, groups, TEST_FRACTION, test_seed, "test")
    train, val = _grouped(rest, labels, groups, VAL_FRACTION, seed, "val")
    return train, val, test


def _grouped(indices: np.ndarray, labels: np.ndarray, groups: np.ndarray, fraction: float, seed: int, purpose: str):
    """Hold out whole groups: groups ordered by their max label, each stratum shuffled and cut."""
    frame = pd.DataFrame({"i": indices, "group": groups[indices], "label": labels[indices]})
    group_label = frame.groupby("group")["label"].max()
    held_groups: list[str] = []
    for cls in sorted(group_label.unique()):
        members = np.array(sorted(group_label.index[group_label == cls]))
        perm = rng_for(seed, "patient-split", purpose, int(cls)).permutation(members)
        held_groups.extend(perm[: int(round(fraction * len(perm)))].tolist())
    held = frame["group"].isin(set(held_groups)).to_numpy()
    return frame["i"].to_numpy()[~held], frame["i"].to_numpy()[held]
