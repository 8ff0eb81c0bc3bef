"""The leaderboard reads FINISHED cell runs back from MLflow and computes the headline numbers."""

from __future__ import annotations

import csv
import io
import json

import pytest

from benchmark.leaderboard import build_leaderboard
from benchmark.tracking import Tracker

F1 = {  # (task, model) -> F1 per seed
    ("ptbxl/AFIB", "mae:sim"): [0.80, 0.90],
    ("ptbxl/AFIB", "resnet18-1d"): [0.70, 0.70],
    ("ptbxl/AFIB", "transformer-scratch"): [0.95, 0.95],  # an ablation: never "the strongest baseline"
    ("ptbxl/PVC", "mae:sim"): [0.50, 0.50],
    ("ptbxl/PVC", "resnet18-1d"): [0.60, 0.60],
    ("ptbxl/PVC", "mega"): [0.40, 0.40],
}


@pytest.fixture
def store(tracking_uri: str) -> str:
    tracker = Tracker(tracking_uri, "unit")
    for (task, model), values in F1.items():
        for seed, f1 in enumerate(values, start=1):
            tags = {"kind": "cell", "fingerprint": f"{task}{model}{seed}", "task": task, "model": model,
                    "lead": "II", "budget": "0", "seed": str(seed), "positives_only": "false", "synthetic": "false"}
            run = tracker.start_run("cell", tags)
            tracker.log_metrics(run, {"test_f1": f1, "test_auroc": 0.9})
            tracker.end_run(run)
    # a duplicate of a finished fingerprint (e.g. a race between two workers) counts once
    dup = tracker.start_run("dup", {**tags, "fingerprint": f"{task}{model}{seed}"})
    tracker.log_metrics(dup, {"test_f1": f1})
    tracker.end_run(dup)
    # unfinished and other-lead runs are ignored
    stale = tracker.start_run("killed", {**tags, "fingerprint": "x"})
    tracker.log_metrics(stale, {"test_f1": 0.0})
    other = tracker.start_run("lead I", {**tags, "fingerprint": "y", "lead": "I"})
    tracker.log_metrics(other, {"test_f1": 0.0})
    tracker.end_run(other)
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
    assert set(board.rows.model) == {"resnet18-1d"} or len(board.rows) == 1
    assert "no finished cells" in build_leaderboard(store, "nothing-here").render("table")


def test_results_are_read_page_by_page(store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import benchmark.tracking as tracking

    whole = build_leaderboard(store, "unit").rows
    monkeypatch.setattr(tracking, "PAGE_SIZE", 3)  # 14 finished cell runs: 5 pages
    tracker = Tracker(store, "unit")
    assert len(tracker.cell_runs()) == 13  # 12 seeds' cells + lead I; the duplicate counts once
    assert len(tracker.finished_fingerprints()) == 13
    paged = build_leaderboard(store, "unit").rows
    assert paged.equals(whole)
