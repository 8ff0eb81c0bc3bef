"""Train/validation/test splits of a task's records, as the paper made them and patient-disjoint.

``paper`` (docs/protocol.md): per task, 20% of the records form the test set (drawn with
``test_seed`` = 123, the same for every run), the rest is split 80/20 into train/validation with
the run's seed. The authors split each class separately, so both steps here are stratified by
label. Records, not patients, are the unit: PTB-XL patients with several records can land on
both sides.

``patient`` (better practice): no patient in two splits. PTB-XL uses its recommended
``strat_fold`` (1-8 train, 9 validation, 10 test); other datasets are split by ``patient_id``
groups (20% test with ``test_seed``, then 80/20 with the seed), stratified by label as far as
groups allow. G12EC and CPSC2018 publish no patient ids, so there a patient is a record.

Exact duplicate signals (``duplicates="group"``, the default of both presets): records whose
signal on the task's lead is identical, sample for sample (PTB-XL holds byte-identical records,
e.g. ecg_id 137/138), land on the same side of every cut; the group follows its first record. A
model would otherwise be tested on a signal it trained on. ``duplicates="ignore"`` splits them as
independent records, as the authors' code does (docs/protocol.md, "Splits"). Where no duplicate
exists, both give the same membership.

Split membership is data: ``Split.to_frame()`` / ``save_csv`` and a ``digest()`` that changes
whenever membership does, for MLflow dataset inputs.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.data.base import TaskData
from simecg.errors import ConfigError, DataError
from simecg.seeding import rng_for

log = logging.getLogger(__name__)

PRESETS = ("paper", "patient")
DUPLICATES = ("group", "ignore")  # records with identical signals: kept together, or split independently
TEST_FRACTION = 0.2
VAL_FRACTION = 0.2
# Bump when a given (data, preset, seed, test_seed, duplicates) gets a different membership
# (2: exact duplicate signals kept together); part of every cell's identity.
SPLIT_VERSION = "2"


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
    duplicates: str = "group"
    duplicate_groups: int = 0  # groups of >= 2 records with one signal among the task's records
    duplicate_records: int = 0  # records in those groups

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


def make_split(data: TaskData, preset: str = "paper", seed: int = 1, test_seed: int = 123,
               duplicates: str = "group") -> Split:
    """The split of ``data``'s records under ``preset`` for run ``seed`` (deterministic).

    ``duplicates="group"`` keeps records with identical signals on one side of every cut (see
    the module docstring); ``"ignore"`` splits them independently, as the authors did.
    """
    if duplicates not in DUPLICATES:
        raise ConfigError(f"duplicates={duplicates!r}: expected one of {', '.join(DUPLICATES)}")
    labels = np.asarray(data.labels)
    ids = data.records["record_id"].astype(str).to_numpy()
    anchors = signal_anchors(data)
    together = anchors if duplicates == "group" else None
    if preset == "paper":
        rest, test = _stratified(np.arange(len(labels)), labels, TEST_FRACTION, test_seed, "test", together)
        train, val = _stratified(rest, labels, VAL_FRACTION, seed, "val", together)
    elif preset == "patient":
        train, val, test = _patient_split(data, labels, seed, test_seed, together)
    else:
        raise ConfigError(f"unknown split preset {preset!r}; expected one of {', '.join(PRESETS)}")
    n_groups, n_records = duplicate_counts(anchors)
    if n_groups:
        _log_duplicates(data, n_groups, n_records, duplicates)
    return Split(np.sort(train), np.sort(val), np.sort(test), ids, preset, seed, test_seed, duplicates,
                 n_groups, n_records)


# ---------------------------------------------------------------------------------- duplicates
def signal_anchors(data: TaskData) -> np.ndarray:
    """Per task row, the index of the first row of another record whose signal on the task's lead is identical.

    A row with a signal of its own is its own anchor; two records share an anchor exactly when
    every window of one equals the other's, sample for sample (float32 bits). Records without a
    window (none in a loaded task) are their own anchor.
    """
    digests = record_digests(data.signals, data.window_record, data.n_records)
    # A record a task lists twice (in both classes, data.overlap = "both") shares its signal only with
    # itself: its two rows stay independent, as the authors split their per-class lists on their own
    # (that is the overlap rule's business); only different records with one signal are duplicates.
    ids = data.records["record_id"].astype(str).to_numpy()
    records_of: dict[bytes, set[str]] = {}
    for digest, record in zip(digests, ids.tolist(), strict=True):
        if digest:
            records_of.setdefault(digest, set()).add(record)
    return duplicate_anchors([d if d and len(records_of[d]) > 1 else b"" for d in digests])


def record_digests(signals: np.ndarray, window_record: np.ndarray, n_records: int) -> list[bytes]:
    """A content digest per record: the hash of its windows' bytes in order (b"" without windows).

    ``signals`` holds windows (rows) of possibly more records than these (a shared lead cache);
    ``window_record`` gives each row's record index, -1 for rows of other records. Row hashes of a
    memory-mapped cache are kept for the process, so a cache is hashed once however many tasks and
    seeds split it.
    """
    window_record = np.asarray(window_record, dtype=np.int64)
    rows = np.flatnonzero(window_record >= 0)
    hashes = _row_hashes(signals, rows)
    parts: list[list[bytes]] = [[] for _ in range(n_records)]
    for row, record in zip(rows.tolist(), window_record[rows].tolist(), strict=True):
        parts[record].append(hashes[row])
    return [_combined(p) for p in parts]


def _combined(window_hashes: list[bytes]) -> bytes:
    """One record's digest from its windows' hashes: the hash itself for one window (PTB-XL, G12EC)."""
    if len(window_hashes) <= 1:
        return window_hashes[0] if window_hashes else b""
    return hashlib.blake2b(b"".join(window_hashes), digest_size=16).digest()


def duplicate_anchors(digests: list[bytes]) -> np.ndarray:
    """Index of the first item with the same digest, per item (an empty digest matches nothing)."""
    first: dict[bytes, int] = {}
    anchors = np.arange(len(digests), dtype=np.int64)
    for i, digest in enumerate(digests):
        if digest:
            anchors[i] = first.setdefault(digest, i)
    return anchors


def duplicate_counts(anchors: np.ndarray) -> tuple[int, int]:
    """(groups of two or more items sharing an anchor, items in those groups)."""
    sizes = np.bincount(np.asarray(anchors, dtype=np.int64), minlength=len(anchors))
    return int(np.sum(sizes >= 2)), int(sizes[sizes >= 2].sum())


_ROW_HASHES: dict[tuple[Any, ...], dict[int, bytes]] = {}
_LOGGED: set[tuple[str, str, str, int]] = set()


def _row_hashes(signals: Any, rows: np.ndarray) -> dict[int, bytes]:
    """16-byte BLAKE2b of each of ``rows`` of ``signals``, memoised per memory-mapped file.

    ``signals`` may be a view whose rows alias rows of a ``base`` array (``source(rows)`` names
    them, as for a record listed in both classes of a task): such rows are hashed through the base,
    so an alias and its original share one hash and the base's memo.
    """
    rows = np.asarray(rows, dtype=np.int64)
    base, base_rows = signals, rows
    if callable(getattr(signals, "source", None)) and hasattr(signals, "base"):
        base, base_rows = signals.base, np.asarray(signals.source(rows), dtype=np.int64)
    key = _memmap_key(base)
    known = _ROW_HASHES.setdefault(key, {}) if key is not None else {}
    missing = sorted({int(r) for r in base_rows.tolist()} - known.keys())
    for start in range(0, len(missing), 1024):  # bounded reads of a memmap
        chunk = missing[start:start + 1024]
        block = np.ascontiguousarray(base[np.asarray(chunk, dtype=np.int64)], dtype=np.float32)
        for row, values in zip(chunk, block, strict=True):
            known[row] = hashlib.blake2b(values.tobytes(), digest_size=16).digest()
    return {row: known[base_row] for row, base_row in zip(rows.tolist(), base_rows.tolist(), strict=True)}


def _memmap_key(signals: np.ndarray) -> tuple[Any, ...] | None:
    """(file, size, mtime, shape) of a memory-mapped array; None for an in-memory one (not memoised)."""
    filename = getattr(signals, "filename", None)
    if filename is None:
        return None
    try:
        stat = os.stat(filename)
    except OSError:
        return None
    return (str(filename), stat.st_size, stat.st_mtime_ns, tuple(signals.shape), int(getattr(signals, "offset", 0)))


def _log_duplicates(data: TaskData, n_groups: int, n_records: int, duplicates: str) -> None:
    key = (data.task, data.lead, duplicates, n_groups)
    if key in _LOGGED:
        return
    _LOGGED.add(key)
    how = "kept on one side of every split" if duplicates == "group" else "split independently (duplicates=ignore)"
    log.info("%s (lead %s): %d group(s) of identical signals, %d records, %s", data.task, data.lead, n_groups,
             n_records, how)


def _together(keep: np.ndarray, held: np.ndarray, anchors: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """``(keep, held)`` with every duplicate group moved to the side of its first record.

    ``keep``/``held`` are a cut drawn as if every record were alone; a group with members on both
    sides follows its member of the lowest record index (whose side the seeded draw decided).
    Order within each side is kept, so a cut without duplicates comes back unchanged.
    """
    if anchors is None:
        return keep, held
    both = np.concatenate([keep, held]).astype(np.int64)
    is_held = np.arange(len(both)) >= len(keep)
    side: dict[int, bool] = {}
    for position in np.argsort(both, kind="stable").tolist():
        is_held[position] = side.setdefault(int(anchors[both[position]]), bool(is_held[position]))
    return both[~is_held], both[is_held]


def _stratified(indices: np.ndarray, labels: np.ndarray, fraction: float, seed: int, purpose: str,
                anchors: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per class, a seeded permutation; the first round(fraction * n) go to the held-out part.

    With ``anchors``, duplicate groups are then made whole (:func:`_together`).
    """
    keep, held = [], []
    for cls in np.unique(labels[indices]):
        members = indices[labels[indices] == cls]
        perm = rng_for(seed, "split", purpose, int(cls)).permutation(members)
        n_held = int(round(fraction * len(perm)))
        held.append(perm[:n_held])
        keep.append(perm[n_held:])
    return _together(np.concatenate(keep) if keep else indices[:0], np.concatenate(held) if held else indices[:0],
                     anchors)


def _patient_split(data: TaskData, labels: np.ndarray, seed: int, test_seed: int, anchors: np.ndarray | None):
    folds = data.records["strat_fold"].to_numpy()
    everything = np.arange(len(labels))
    if data.dataset == "ptbxl" and np.all(folds >= 1):
        rest, test = _together(np.flatnonzero(folds <= 9), np.flatnonzero(folds == 10), anchors)
        train, val = _together(rest[folds[rest] != 9], rest[folds[rest] == 9], anchors)
        return train, val, test
    if data.dataset == "ptbxl":
        raise DataError("patient split of PTB-XL needs strat_fold 1-10 for every record; some are unknown (-1)")
    groups = _merge_duplicates(data.records["patient_id"].astype(str).to_numpy(), anchors)
    rest, test = _grouped(everything, labels, groups, TEST_FRACTION, test_seed, "test")
    train, val = _grouped(rest, labels, groups, VAL_FRACTION, seed, "val")
    return train, val, test


def _merge_duplicates(patients: np.ndarray, anchors: np.ndarray | None) -> np.ndarray:
    """Patient ids where patients sharing a duplicate signal become one group (named by its first id).

    Without duplicates the ids are returned unchanged, so the patient split is too.
    """
    if anchors is None or np.array_equal(anchors, np.arange(len(anchors))):
        return patients
    parent: dict[str, str] = {}

    def root(name: str) -> str:
        while parent.get(name, name) != name:
            name = parent[name]
        return name

    for i, anchor in enumerate(anchors.tolist()):
        a, b = root(str(patients[anchor])), root(str(patients[i]))
        if a != b:
            parent[max(a, b)] = min(a, b)
    return np.array([root(str(p)) for p in patients], dtype=object)


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
