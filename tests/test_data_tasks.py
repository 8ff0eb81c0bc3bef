"""The study's task table: names, label rules, summary counts on the real subsets."""

from __future__ import annotations

import pytest

from benchmark.data.base import TaskSpec
from benchmark.data.table import TABLE_PATH
from benchmark.data.tasks import load_task, source_of, task_summary
from benchmark.registries import DATASETS, TASKS

PAPER = {
    "ptbxl": ["AFIB", "PVC", "PAC", "IRBBB", "CRBBB", "STD_", "ASMI", "IMI", "LVH", "LAFB", "ISC_", "1AVB", "ABQRS"],
    "g12ec": ["AF", "PVC", "LVH", "IRBBB", "IAVB", "PAC", "RBBB"],
    "cpsc2018": ["AF", "IAVB", "PAC", "PVC", "STD", "RBBB"],
}


def _paper_names(names) -> set[str]:
    return {n for n in names if n.split("/")[0] in PAPER}


def test_exactly_the_paper_tasks_are_registered_from_our_table():
    expected = {f"{d}/{label}" for d, labels in PAPER.items() for label in labels}
    assert _paper_names(TASKS.names()) == expected
    assert {n for n in TASKS.names() if source_of(n) == str(TABLE_PATH)} == expected
    for name in expected:
        spec = TASKS.get(name)
        assert isinstance(spec, TaskSpec) and spec.name == name and spec.dataset in DATASETS


def test_likelihood_thresholds_and_negative_classes():
    any_likelihood = {"AFIB", "PAC", "STD_", "ABQRS"}
    for label in PAPER["ptbxl"]:
        spec = TASKS.get(f"ptbxl/{label}")
        assert spec.min_likelihood == (0.0 if label in any_likelihood else 100.0)
        assert spec.negative == ("NORM",)
    assert TASKS.get("g12ec/AF").negative == ("426783006",)
    assert TASKS.get("g12ec/PVC").positive == ("17338001",)
    assert TASKS.get("cpsc2018/STD").negative == ("426783006",)


@pytest.mark.realdata
def test_summary_lists_every_task_with_positives_and_negatives(shared_data):
    summary = task_summary(shared_data)
    assert list(summary.columns) == ["task", "dataset", "positives", "negatives", "both", "available"]
    summary = summary[summary["dataset"].isin(list(PAPER))]
    assert len(summary) == len(_paper_names(TASKS.names())) and summary["available"].all()
    assert summary["task"].tolist()[:2] == ["ptbxl/AFIB", "ptbxl/PVC"]  # table order
    assert (summary["positives"] > 0).all() and (summary["negatives"] > 0).all()
    row = summary.set_index("task").loc["cpsc2018/AF"]
    assert row["negatives"] == 14  # the 'Normal' records of A0001-A0100


def test_summary_marks_absent_datasets_unavailable(tmp_path):
    summary = task_summary(tmp_path)
    summary = summary[summary["dataset"].isin(list(PAPER))]
    assert len(summary) == len(_paper_names(TASKS.names())) and not summary["available"].any()


@pytest.mark.realdata
@pytest.mark.slow
def test_all_paper_tasks_load_with_both_classes(shared_data, tmp_path):
    for name in sorted(_paper_names(TASKS.names())):
        data = load_task(name, shared_data, cache_dir=tmp_path)
        assert set(data.labels.tolist()) == {0, 1}, name
        assert len(data.records) == len(data.labels)
