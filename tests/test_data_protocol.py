"""Splits, label budgets and demographic groups: deterministic, disjoint, nested."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmark.budgets import BUDGETS, apply_budget
from benchmark.datasets.base import TaskData
from benchmark.demographics import age_group_names, groups, shift_split
from benchmark.splits import make_split
from simecg.errors import ConfigError


def _task(n: int = 200, dataset: str = "g12ec", positives: int = 40) -> TaskData:
    labels = np.zeros(n, dtype=np.int8)
    labels[:positives] = 1
    records = pd.DataFrame({
        "record_id": [f"R{i:04d}" for i in range(n)],
        "patient_id": [f"P{i // 2}" for i in range(n)],
        "age": np.linspace(20, 95, n),
        "sex": ["M" if i % 3 else "F" for i in range(n)],
        "strat_fold": [1 + i % 10 for i in range(n)],
    })
    return TaskData("x/y", dataset, "II", np.zeros((n, 5000), np.float32), np.arange(n), labels, records, "v")


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
