"""One run lifecycle: every MLflow run ends FINISHED, FAILED (with its error) or KILLED in one place."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.tracking.tags import RunTags
from benchmark.tracking.tracker import Tracker
from simecg.errors import Terminated, TrackingError

TAGS = RunTags(kind="cell", fingerprint="fp", suite="unit", task="demo/af", model="resnet18-1d", seed=2, budget=10)


def _status(tracker: Tracker, run_id: str) -> str:
    return tracker.client.get_run(run_id).info.status


@pytest.mark.slow
def test_success_ends_finished_and_tags_round_trip(tracking_uri: str) -> None:
    tracker = Tracker(tracking_uri, "unit")
    with tracker.run("ok", TAGS, params={"a": 1}) as run:
        assert _status(tracker, run.run_id) == "RUNNING"
    stored = tracker.client.get_run(run.run_id)
    assert stored.info.status == "FINISHED" and stored.data.params["a"] == "1"
    assert RunTags.from_mlflow(stored.data.tags) == TAGS  # typed values back: budget 10, seed 2


@pytest.mark.slow
def test_an_exception_ends_failed_with_error_and_traceback(tracking_uri: str) -> None:
    tracker = Tracker(tracking_uri, "unit")
    with pytest.raises(ZeroDivisionError), tracker.run("bad", TAGS) as run:
        1 / 0  # noqa: B018
    stored = tracker.client.get_run(run.run_id)
    assert stored.info.status == "FAILED"
    assert stored.data.tags["error"] == "ZeroDivisionError: division by zero"
    assert "1 / 0" in stored.data.tags["traceback"]


@pytest.mark.slow
@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, Terminated])
def test_ctrl_c_and_sigterm_end_killed(tracking_uri: str, interrupt: type[BaseException]) -> None:
    tracker = Tracker(tracking_uri, "unit")
    with pytest.raises(interrupt), tracker.run("stopped", TAGS) as run:
        raise interrupt()
    assert _status(tracker, run.run_id) == "KILLED"


@pytest.mark.slow
def test_logging_an_input_or_a_model_does_not_end_the_run(tracking_uri: str) -> None:
    tracker = Tracker(tracking_uri, "unit")
    with tracker.run("inputs", TAGS) as run:
        run.log_input(pd.DataFrame({"record_id": ["a", "b"], "split": ["train", "test"]}), "split", "split")
        assert _status(tracker, run.run_id) == "RUNNING"
        run.log_model(torch.nn.Linear(2, 1), name="model", input_example=np.zeros((1, 2), dtype=np.float32))
        assert _status(tracker, run.run_id) == "RUNNING"
        run.log_metrics({"after": 1.0})  # still open for logging
    stored = tracker.client.get_run(run.run_id)
    assert stored.info.status == "FINISHED" and stored.data.metrics["after"] == 1.0
    assert stored.inputs.dataset_inputs[0].dataset.name == "split"
    assert stored.outputs.model_outputs


def test_malformed_tags_are_refused_naming_the_run() -> None:
    with pytest.raises(TrackingError, match="run r1: tag budget='many'"):
        RunTags.from_mlflow({"kind": "cell", "budget": "many"}, "r1")
    with pytest.raises(TrackingError, match="no 'kind' tag"):
        RunTags.from_mlflow({"task": "x"}, "r2")
    with pytest.raises(TrackingError, match="run kind"):
        RunTags(kind="celll")


def test_a_run_carries_only_the_tags_of_its_kind_and_a_name_that_says_what_it_is() -> None:
    invocation = RunTags(kind="invocation", suite="corpora", corpora="sim,ptbxl", shard="0/1").to_mlflow()
    assert set(invocation) == {"kind", "suite", "schema", "corpora", "shard", "synthetic"}  # no empty task, model...
    assert all(value for value in invocation.values())
    cell = TAGS.to_mlflow()
    assert {"model", "task", "lead", "budget", "seed", "shift", "synthetic"} <= set(cell) and "trial" not in cell
    assert RunTags.from_mlflow(invocation) == RunTags(kind="invocation", suite="corpora", corpora="sim,ptbxl",
                                                      shard="0/1")
    assert TAGS.run_name() == "resnet18-1d · demo/af · 10/class · seed 2"
    plain = RunTags(kind="cell", model="mae:sim", task="ptbxl/LVH", lead="II", seed=1)
    assert plain.run_name() == "mae:sim · ptbxl/LVH · seed 1"
    other = RunTags(kind="cell", model="mae:sim", task="ptbxl/LVH", lead="V1", seed=1, shift="sex:M->F")
    assert other.run_name() == "mae:sim · ptbxl/LVH · lead V1 · sex:M->F · seed 1"
    trial = RunTags(kind="trial", model="mae:sim", task="ptbxl/LVH", lead="II", trial=3)
    assert trial.run_name() == "trial 3 · mae:sim · ptbxl/LVH"  # a trial names its study's cell
    assert RunTags(kind="tuning", model="mae:sim", task="ptbxl/LVH").run_name() == "tuning · mae:sim · ptbxl/LVH"


@pytest.mark.slow
def test_sigterm_during_a_run_kills_its_runs_and_the_rerun_finishes_each_cell_once(tmp_path: Path,
                                                                                    tracking_uri: str) -> None:
    env = {**os.environ, "SIMECG_CACHE": str(tmp_path / "cache")}
    args = [sys.executable, "-m", "benchmark.cli", "run", "--suite", "demo", "--tracking-uri", tracking_uri,
            "--no-progress", "--set", "grid.models=resnet18-1d", "--set", "grid.seeds=1,2",
            "--set", "grid.tasks=demo/af", "--set", "finetune.max_epochs=200", "--set", "finetune.patience=200"]
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    client = mlflow.tracking.MlflowClient(tracking_uri)
    running = []
    while time.time() < deadline and not running:  # wait until a cell is training
        time.sleep(1)
        experiment = client.get_experiment_by_name("simecg-bench/demo") if Path(tracking_uri[10:]).exists() else None
        if experiment is not None:
            running = client.search_runs([experiment.experiment_id], "tags.kind = 'cell' and attributes.status = "
                                         "'RUNNING'")
    assert running, "no cell started within 300 s"
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=120)[0]
    assert process.returncode == 143, output
    runs = client.search_runs([experiment.experiment_id], "")
    assert {r.info.status for r in runs} == {"KILLED"}  # the invocation and the cell it was in
    assert not [r for r in runs if r.info.status == "RUNNING"]

    quick = [a if a != "finetune.max_epochs=200" else "finetune.max_epochs=2" for a in args]
    # different fine-tuning settings are another cell; the killed one is simply not finished
    assert subprocess.run(quick, env=env, capture_output=True, text=True, timeout=600).returncode == 0
    finished = client.search_runs([experiment.experiment_id], "tags.kind = 'cell' and attributes.status = 'FINISHED'")
    assert len(finished) == 2 and len({r.data.tags["fingerprint"] for r in finished}) == 2


@pytest.mark.slow
def test_a_split_another_worker_logged_in_the_same_instant_is_linked_not_an_error(
        tracking_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow looks a dataset up, then inserts it: two workers logging one split at once both
    insert, and the later one violates the unique key (seen in CI with 4 workers on SQLite)."""
    from mlflow.exceptions import MlflowException

    frame = pd.DataFrame({"record_id": ["a", "b"], "split": ["train", "test"]})
    tracker, other = Tracker(tracking_uri, "unit"), Tracker(tracking_uri, "unit")
    real = tracker.client.log_inputs
    calls = []

    def racing(run_id: str, datasets: list) -> None:
        calls.append(run_id)
        if len(calls) == 1:  # the other worker inserts the row between our lookup and our insert
            with other.run("other worker", TAGS) as theirs:
                theirs.log_input(frame, "demo/af split seed 1", "split")
            raise MlflowException("(sqlite3.IntegrityError) UNIQUE constraint failed: datasets.experiment_id, "
                                  "datasets.name, datasets.digest\n[SQL: INSERT INTO datasets (dataset_uuid, ...)]")
        real(run_id, datasets)

    monkeypatch.setattr(tracker.client, "log_inputs", racing)
    with tracker.run("this worker", TAGS) as run:
        run.log_input(frame, "demo/af split seed 1", "split")
    assert len(calls) == 2  # retried once, then linked to the row the other worker inserted
    stored = tracker.client.get_run(run.run_id)
    assert stored.info.status == "FINISHED"
    [theirs] = tracker.client.search_runs([stored.info.experiment_id], "attributes.run_name = 'other worker'")
    assert stored.inputs.dataset_inputs[0].dataset.digest == theirs.inputs.dataset_inputs[0].dataset.digest

    def broken(run_id: str, datasets: list) -> None:
        calls.append(run_id)
        raise MlflowException("(sqlite3.OperationalError) disk I/O error")

    calls.clear()
    monkeypatch.setattr(tracker.client, "log_inputs", broken)
    with pytest.raises(MlflowException, match="disk I/O"), tracker.run("failing", TAGS) as run:
        run.log_input(frame, "demo/af split seed 2", "split")
    assert len(calls) == 1  # any other error is not retried
