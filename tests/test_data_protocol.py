"""Splits, label budgets and demographic groups: deterministic, disjoint, nested."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmark.data.base import TaskData
from benchmark.data.budgets import BUDGETS, apply_budget
from benchmark.data.demographics import age_group_names, groups, shift_split
from benchmark.data.splits import SPLIT_VERSION, make_split, signal_anchors
from simecg.errors import ConfigError


def _task(n: int = 200, dataset: str = "g12ec", positives: int = 40, copies: dict[int, int] | None = None) -> TaskData:
    """A task of ``n`` records with distinct signals, except record ``i`` = record ``j`` for ``copies[i] = j``."""
    signals = np.random.default_rng(0).standard_normal((n, 5000)).astype(np.float32)
    for copy, original in (copies or {}).items():
        signals[copy] = signals[original]
    labels = np.zeros(n, dtype=np.int8)
    labels[:positives] = 1
    records = pd.DataFrame({
        "record_id": [f"R{i:04d}" for i in range(n)],
        "patient_id": [f"P{i // 2}" for i in range(n)],
        "age": np.linspace(20, 95, n),
        "sex": ["M" if i % 3 else "F" for i in range(n)],
        "strat_fold": [1 + i % 10 for i in range(n)],
    })
    return TaskData("x/y", dataset, "II", signals, np.arange(n), labels, records, "v")


@pytest.mark.parametrize("preset", ["paper", "patient"])
def test_splits_are_deterministic_disjoint_and_complete(preset):
    data = _task()
    a, b = make_split(data, preset, seed=1), make_split(data, preset, seed=1)
    assert a.digest() == b.digest()
    parts = [set(a.train.tolist()), set(a.val.tolist()), set(a.test.tolist())]
    assert sum(len(p) for p in parts) == data.n_records == len(set().union(*parts))
    other = make_split(data, preset, seed=2)
    assert other.digest() != a.digest()
    np.testing.assert_array_equal(other.test, a.test)  # the test set depends on test_seed only


def test_paper_split_is_stratified_20_percent():
    data = _task()
    split = make_split(data, "paper", seed=3)
    assert len(split.test) == 40 and data.labels[split.test].sum() == 8
    assert len(split.val) == 32 and data.labels[split.val].sum() == 6


def test_patient_split_keeps_patients_on_one_side():
    data = _task(dataset="g12ec")
    split = make_split(data, "patient", seed=1)
    patients = data.records["patient_id"].to_numpy()
    sides = [set(patients[s]) for s in (split.train, split.val, split.test)]
    assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])


def test_patient_split_of_ptbxl_uses_strat_folds():
    data = _task(dataset="ptbxl")
    split = make_split(data, "patient")
    folds = data.records["strat_fold"].to_numpy()
    assert set(folds[split.test]) == {10} and set(folds[split.val]) == {9} and set(folds[split.train]) <= set(range(9))


def test_split_frame_names_every_record_once(tmp_path):
    data = _task()
    split = make_split(data)
    frame = split.to_frame()
    assert list(frame.columns) == ["record_id", "split"] and frame["record_id"].is_unique
    assert len(frame) == data.n_records
    saved = pd.read_csv(split.save_csv(tmp_path / "split.csv"))
    assert saved.equals(frame)
    with pytest.raises(ConfigError):
        make_split(data, "nope")


def test_budgets_nest_across_sizes_and_cap():
    data = _task()
    train = make_split(data).train
    previous: set[int] = set()
    for budget in BUDGETS:
        chosen, info = apply_budget(train, data.labels, budget, seed=1)
        assert previous <= set(chosen.tolist())
        assert set(chosen.tolist()) <= set(train.tolist())
        assert info["used"]["1"] == min(budget, info["available"]["1"])
        if budget > info["available"]["1"]:
            assert info["capped"]["1"] == info["available"]["1"]
        previous = set(chosen.tolist())
    a, _ = apply_budget(train, data.labels, 5, seed=1)
    b, _ = apply_budget(train, data.labels, 5, seed=2)
    assert not np.array_equal(a, b)


def test_positives_only_budget_keeps_every_negative():
    data = _task()
    train = make_split(data).train
    chosen, info = apply_budget(train, data.labels, 2, seed=1, positives_only=True)
    assert data.labels[chosen].sum() == 2
    assert (data.labels[chosen] == 0).sum() == (data.labels[train] == 0).sum()
    full, _ = apply_budget(train, data.labels, None, seed=1)
    np.testing.assert_array_equal(full, np.sort(train))


def test_age_and_sex_groups_with_default_and_custom_bins():
    records = pd.DataFrame({"age": [25, 40, 59, 60, 85, np.nan], "sex": ["M", "F", None, "M", "F", "M"]})
    assert groups(records, "age").tolist() == ["<40", "40-59", "40-59", "60-79", "80+", "unknown"]
    assert groups(records, "age", (50,)).tolist() == ["<50", "<50", "50+", "50+", "50+", "unknown"]
    assert groups(records, "sex").tolist() == ["M", "F", "unknown", "M", "F", "M"]
    assert age_group_names() == ["<40", "40-59", "60-79", "80+"]


def test_shift_split_trains_on_one_group_and_tests_on_another():
    data = _task()
    shifted = shift_split(make_split(data), data.records, "sex", "M", "F")
    sex = data.records["sex"].to_numpy()
    assert set(sex[shifted.train]) == {"M"} and set(sex[shifted.test]) == {"F"}
    with pytest.raises(ConfigError):
        shift_split(make_split(data), data.records, "sex", "M", "X")


def _sides(split) -> np.ndarray:
    side = np.empty(len(split.record_ids), dtype=object)
    for name in ("train", "val", "test"):
        side[getattr(split, name)] = name
    return side


# pairs of one class (0/1, 10/11), across classes (5/150) and across patients and folds (60/121)
COPIES = {1: 0, 11: 10, 150: 5, 121: 60}


@pytest.mark.parametrize("preset, dataset", [("paper", "g12ec"), ("paper", "ptbxl"), ("patient", "g12ec"),
                                             ("patient", "ptbxl")])
def test_identical_signals_land_on_one_side_of_every_split(preset, dataset):
    data = _task(dataset=dataset, copies=COPIES)
    assert signal_anchors(data)[[1, 11, 150, 121, 2]].tolist() == [0, 10, 5, 60, 2]
    for seed in range(1, 9):
        split = make_split(data, preset, seed=seed, test_seed=100 + seed)
        side = _sides(split)
        assert all(side[a] == side[b] for a, b in COPIES.items()), (seed, side[list(COPIES)], side[[0, 10, 5, 60]])
        assert (split.duplicate_groups, split.duplicate_records) == (4, 8)
        assert sum(map(len, (split.train, split.val, split.test))) == data.n_records


@pytest.mark.slow
def test_duplicates_ignore_splits_them_independently_and_group_moves_only_copies_across_the_test_cut():
    data = _task(copies=COPIES)
    plain = _task()  # the same records without duplicates
    apart = False
    for seed in range(1, 30):
        grouped, ignored = (make_split(data, "paper", seed=seed, duplicates=d) for d in ("group", "ignore"))
        side_g, side_i = _sides(grouped), _sides(ignored)
        apart |= any(side_i[a] != side_i[b] for a, b in COPIES.items())
        moved = np.flatnonzero((side_g == "test") != (side_i == "test"))
        assert set(moved.tolist()) <= set(COPIES)  # only a copy crosses the test cut, to its original's side
        assert ignored.digest() == make_split(plain, "paper", seed=seed).digest()  # no duplicates: one membership
        assert make_split(plain, "paper", seed=seed, duplicates="ignore").digest() == \
            make_split(plain, "paper", seed=seed).digest()
    assert apart  # ignoring them does split some pair (the authors' behaviour)
    with pytest.raises(ConfigError, match="duplicates='x'"):
        make_split(data, duplicates="x")
    assert SPLIT_VERSION == "2"


def test_a_duplicate_across_patients_joins_their_patient_groups():
    data = _task(dataset="g12ec", copies={121: 60})  # patients P60 and P30
    for seed in range(1, 6):
        split = make_split(data, "patient", seed=seed, test_seed=seed)
        side = _sides(split)
        patients = data.records["patient_id"].to_numpy()
        joined = np.isin(patients, ["P30", "P60"])
        assert len(set(side[joined])) == 1


class _Aliased:
    """Rows of ``base`` followed by aliases of some of them (as a task lists a record in both classes)."""

    def __init__(self, base: np.ndarray, aliases: list[int]):
        self.base, self.aliases = base, np.asarray(aliases)
        self.shape = (len(base) + len(aliases), base.shape[1])

    def __len__(self) -> int:
        return self.shape[0]

    def source(self, index):
        index = np.asarray(index)
        return np.where(index < len(self.base), index, self.aliases[np.clip(index - len(self.base), 0, None)])

    def __getitem__(self, key):
        return self.base[self.source(key)]


def test_an_aliased_row_is_the_same_signal_and_memory_maps_are_hashed_once(tmp_path):
    import benchmark.data.splits as splits

    data = _task(n=100, positives=20)
    path = tmp_path / "signals.f32"
    np.asarray(data.signals).tofile(path)
    mapped = np.memmap(path, dtype=np.float32, mode="r", shape=(100, 5000))
    labels = np.concatenate([data.labels, [0]]).astype(np.int8)  # record 3 (a positive) listed again as normal
    records = pd.concat([data.records, data.records.iloc[[3]]], ignore_index=True)
    both = TaskData("x/y", "g12ec", "II", _Aliased(mapped, [3]), np.arange(101), labels, records, "v")
    # the record's two rows share one signal, but they are one record, not a duplicate: independent rows, as the
    # authors split their per-class lists (data.overlap decides about them, not duplicates)
    assert list(signal_anchors(both)) == list(range(101))
    key = splits._memmap_key(mapped)
    assert key is not None and len(splits._ROW_HASHES[key]) == 100  # the base rows, hashed once
    twin = records.copy()
    twin.loc[100, "record_id"] = "copy-of-3"  # another record with record 3's signal is a duplicate
    copied = TaskData("x/y", "g12ec", "II", _Aliased(mapped, [3]), np.arange(101), labels, twin, "v")
    assert signal_anchors(copied)[100] == 3
    for seed in range(1, 6):
        side = _sides(make_split(copied, "paper", seed=seed, test_seed=seed))
        assert side[3] == side[100]  # the duplicate stays with its record
