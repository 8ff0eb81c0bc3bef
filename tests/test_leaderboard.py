"""The leaderboard reads FINISHED cell runs back from MLflow and computes the headline numbers."""

from __future__ import annotations

import csv
import io
import json

import pytest

from benchmark.leaderboard import build_leaderboard
from benchmark.tags import RunTags
from benchmark.tracking import Tracker

F1 = {  # (task, model) -> F1 per seed
    ("ptbxl/AFIB", "mae:sim"): [0.80, 0.90],
    ("ptbxl/AFIB", "resnet18-1d"): [0.70, 0.70],
    ("ptbxl/AFIB", "transformer-scratch"): [0.95, 0.95],  # an ablation: never "the strongest baseline"
    ("ptbxl/PVC", "mae:sim"): [0.50, 0.50],
    ("ptbxl/PVC", "resnet18-1d"): [0.60, 0.60],
    ("ptbxl/PVC", "mega"): [0.40, 0.40],
}


def _cell(tracker: Tracker, fingerprint: str, task: str, model: str, seed: int, f1: float, lead: str = "II",
          finish: bool = True) -> None:
    tags = RunTags(kind="cell", fingerprint=fingerprint, suite="unit", task=task, model=model, lead=lead, seed=seed)
    if finish:
        with tracker.run("cell", tags) as run:
            run.log_metrics({"test_f1": f1, "test_auroc": 0.9})
    else:  # a run a killed process left RUNNING
        run_id = tracker.client.create_run(tracker.experiment_id, tags=tags.to_mlflow()).info.run_id
        tracker.log_metrics(run_id, {"test_f1": f1})


@pytest.fixture
def store(tracking_uri: str) -> str:
    tracker = Tracker(tracking_uri, "unit")
    for (task, model), values in F1.items():
        for seed, f1 in enumerate(values, start=1):
            _cell(tracker, f"{task}{model}{seed}", task, model, seed, f1)
    # a duplicate of a finished fingerprint (e.g. a race between two workers) counts once: the newest
    _cell(tracker, "ptbxl/PVCmega2", "ptbxl/PVC", "mega", 2, 0.40)
    # unfinished, other-lead and old-schema runs are ignored
    _cell(tracker, "x", "ptbxl/PVC", "mega", 3, 0.0, finish=False)
    _cell(tracker, "y", "ptbxl/PVC", "resnet18-1d", 1, 0.0, lead="I")
    old = {**RunTags(kind="cell", fingerprint="z", task="ptbxl/PVC", model="mega", lead="II").to_mlflow(),
           "schema": "1"}
    old_run = tracker.client.create_run(tracker.experiment_id, tags=old).info.run_id
    tracker.log_metrics(old_run, {"test_f1": 1.0})
    tracker.client.set_terminated(old_run)
    return tracking_uri


def test_means_sds_gains_and_wins(store: str) -> None:
    board = build_leaderboard(store, "unit")
    rows = board.rows.set_index(["task", "model"])
    assert rows.loc[("ptbxl/AFIB", "mae:sim"), "test_f1"] == pytest.approx(0.85)
    assert rows.loc[("ptbxl/AFIB", "mae:sim"), "test_f1_sd"] == pytest.approx(0.0707, abs=1e-3)
    assert rows.loc[("ptbxl/PVC", "mega"), "n_seeds"] == 2
    # strongest baseline: resnet on both tasks (scratch is an ablation)
    assert rows.loc[("ptbxl/AFIB", "mae:sim"), "best_baseline"] == "resnet18-1d"
    assert rows.loc[("ptbxl/AFIB", "mae:sim"), "relative_gain_pct"] == pytest.approx((0.85 - 0.7) / 0.7 * 100)
    assert rows.loc[("ptbxl/PVC", "mae:sim"), "relative_gain_pct"] == pytest.approx((0.5 - 0.6) / 0.6 * 100)
    summary = board.summary.set_index("model").loc["mae:sim"]
    assert summary.wins == 1 and summary.tasks == 2
    assert summary.mean_relative_gain_pct == pytest.approx(((0.15 / 0.7) + (-0.1 / 0.6)) / 2 * 100)


def test_formats_carry_task_model_test_f1(store: str) -> None:
    board = build_leaderboard(store, "unit")
    rows = list(csv.DictReader(io.StringIO(board.render("csv"))))
    assert {"task", "model", "test_f1"} <= set(rows[0])
    assert len(rows) == len(F1)
    data = json.loads(board.render("json"))
    assert data["synthetic"] is False and len(data["rows"]) == len(F1)
    table = board.render("table")
    assert "0.850 ± 0.071" in table and "wins 1/2 tasks" in table and "mean" in table
    assert board.render("markdown").count("|") > 10


def test_other_lead_and_empty_suite(store: str) -> None:
    board = build_leaderboard(store, "unit", lead="I")
    assert list(board.rows.model) == ["resnet18-1d"] and list(board.rows.task) == ["ptbxl/PVC"]
    assert board.rows.test_f1.tolist() == [0.0]
    assert "no finished cells" in build_leaderboard(store, "nothing-here").render("table")


def test_runs_of_another_tag_schema_are_left_out_and_counted(store: str) -> None:
    runs, foreign = Tracker(store, "unit").cell_runs()
    assert foreign == 1
    assert "z" not in {tags.fingerprint for _, tags in runs}
    mega_pvc = build_leaderboard(store, "unit").rows.set_index(["task", "model"]).loc[("ptbxl/PVC", "mega")]
    assert mega_pvc.test_f1 == pytest.approx(0.40) and mega_pvc.n_seeds == 2  # not the old run's 1.0


def test_results_are_read_page_by_page(store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import benchmark.tracking as tracking

    whole = build_leaderboard(store, "unit").rows
    monkeypatch.setattr(tracking, "PAGE_SIZE", 3)  # 14 finished cell runs: 5 pages
    tracker = Tracker(store, "unit")
    assert len(tracker.cell_runs()[0]) == 13  # 12 seeds' cells + lead I; the duplicate counts once
    assert len(tracker.finished_fingerprints()) == 13
    paged = build_leaderboard(store, "unit").rows
    assert paged.equals(whole)
