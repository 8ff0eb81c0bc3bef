"""End to end: a tiny suite into a temporary MLflow store, its leaderboard, and resumption."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from benchmark.cli import main

TINY = [
    "--set", "pretrain.steps=12", "--set", "pretrain.corpus_size=256", "--set", "pretrain.val_size=32",
    "--set", "pretrain.batch_size=16", "--set", "pretrain.val_every=6", "--set", "pretrain.checkpoint_every=6",
    "--set", "pretrain.num_workers=0", "--set", "finetune.max_epochs=2", "--set", "finetune.eval_every=1",
]


def _cell_runs(uri: str, suite: str, status: str | None = None) -> list:
    client = mlflow.tracking.MlflowClient(uri)
    exp = client.get_experiment_by_name(f"simecg-bench/{suite}")
    query = "tags.kind = 'cell'" + (f" and attributes.status = '{status}'" if status else "")
    return client.search_runs([exp.experiment_id], filter_string=query, max_results=1000)


@pytest.mark.slow
def test_demo_suite_end_to_end_then_rerun_adds_no_run(tracking_uri: str, capsys) -> None:
    args = ["run", "--suite", "demo", "--corpus", "sim", "--tracking-uri", tracking_uri, "--no-progress",
            "--set", "grid.seeds=1", "--set", "grid.tasks=demo/af,demo/tachycardia", *TINY]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "SYNTHETIC" in out  # the demo is always marked as not evidence
    runs = _cell_runs(tracking_uri, "demo")
    assert len(runs) == 4  # 2 tasks x (mae:sim, resnet18-1d) x 1 seed
    for run in runs:
        assert run.info.status == "FINISHED"
        assert 0.0 <= run.data.metrics["test_f1"] <= 1.0
        assert "test_auroc" in run.data.metrics
        tags = run.data.tags
        assert tags["synthetic"] == "true" and len(tags["fingerprint"]) == 16
        assert {"model", "task", "lead", "budget", "seed", "git_commit", "version.torch"} <= set(tags)
        assert "finetune.lr" in run.data.params
    client = mlflow.tracking.MlflowClient(tracking_uri)
    artifacts = {a.path for a in client.list_artifacts(runs[0].info.run_id)}
    assert {"test_predictions.csv", "split.csv"} <= artifacts
    assert client.get_run(runs[0].info.run_id).inputs.dataset_inputs  # split membership as a dataset input
    mae = [r for r in runs if r.data.tags["model"] == "mae:sim"][0]
    history = mlflow.tracking.MlflowClient(tracking_uri).get_metric_history(mae.info.run_id, "val_loss")
    assert len(history) == 2  # one validation loss per epoch (eval_every=1, 2 epochs)

    assert main(args) == 0  # rerun: everything is finished, nothing new
    assert "0 ran, 4 already finished" in capsys.readouterr().out
    assert len(_cell_runs(tracking_uri, "demo")) == 4

    assert main(["leaderboard", "--suite", "demo", "--format", "json", "--tracking-uri", tracking_uri]) == 0
    board = json.loads(capsys.readouterr().out)
    assert board["synthetic"] is True
    assert {(r["task"], r["model"]) for r in board["rows"]} == {
        (t, m) for t in ("demo/af", "demo/tachycardia") for m in ("mae:sim", "resnet18-1d")
    }
    assert all({"task", "model", "test_f1"} <= set(r) for r in board["rows"])
    summary = board["summary"][0]
    assert summary["model"] == "mae:sim" and summary["tasks_counted"] + summary["tasks_left_out"] == 2


@pytest.mark.slow
def test_killed_cell_is_redone_once_and_new_seeds_add_only_their_cells(tracking_uri: str, capsys) -> None:
    from benchmark.run.planning import dry_run
    from benchmark.suites.config import load_suite
    from benchmark.tracking.tracker import Tracker

    overrides = ["--set", "grid.tasks=demo/af", "--set", "grid.models=resnet18-1d", *TINY]
    base = ["run", "--suite", "demo", "--tracking-uri", tracking_uri, "--no-progress", *overrides]
    assert main([*base, "--set", "grid.seeds=1"]) == 0

    suite = load_suite("demo", {"grid.tasks": "demo/af", "grid.models": "resnet18-1d", "grid.seeds": "1,2",
                                **dict(o.split("=", 1) for o in TINY[1::2])})
    lines = dry_run(suite, tracking_uri=tracking_uri)
    pending = [line.split()[1] for line in lines if line.startswith("pending")]
    assert len(lines) == 2 and len(pending) == 1
    tracker = Tracker(tracking_uri, "demo")  # a run left RUNNING by a killed process
    stale = tracker.client.create_run(tracker.experiment_id, tags={"kind": "cell", "fingerprint": pending[0],
                                                                   "schema": "2"}).info.run_id

    assert main([*base, "--set", "grid.seeds=1,2"]) == 0
    assert "1 ran, 1 already finished" in capsys.readouterr().out
    assert tracker.client.get_run(stale).info.status == "KILLED"
    assert len(_cell_runs(tracking_uri, "demo", "FINISHED")) == 2


@pytest.mark.slow
def test_two_shards_started_together_share_one_store_and_one_pretraining(tmp_path: Path, tracking_uri: str) -> None:
    # both shards need the encoder and both find a store that does not exist yet
    env = {**os.environ, "SIMECG_CACHE": str(tmp_path / "cache")}
    code = "import sys; from benchmark.cli import main; sys.exit(main(sys.argv[1:]))"
    args = ["run", "--suite", "demo", "--corpus", "sim", "--tracking-uri", tracking_uri, "--no-progress",
            "--set", "grid.models=mae", "--set", "grid.seeds=1", "--set", "grid.tasks=demo/af,demo/tachycardia",
            *TINY, "--set", "pretrain.steps=40"]
    shards = [subprocess.Popen([sys.executable, "-c", code, *args, "--shard", f"{i}/2"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in shards]
    assert [p.returncode for p in shards] == [0, 0], outputs
    assert all("1 ran" in out for out in outputs)
    client = mlflow.tracking.MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name("simecg-bench/demo")
    pretrains = client.search_runs([exp.experiment_id], filter_string="tags.kind = 'pretrain'")
    assert [r.info.status for r in pretrains] == ["FINISHED"]  # trained once, never marked stale
    assert len(_cell_runs(tracking_uri, "demo", "FINISHED")) == 2


def test_missing_data_is_one_clear_line_and_exit_2(tmp_path: Path, tracking_uri: str, capsys) -> None:
    code = main(["run", "--suite", "smoke", "--data-dir", str(tmp_path / "nothing"), "--tracking-uri", tracking_uri,
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("simecg-bench: error:") and err.count("\n") == 1
    assert "simecg-bench data download ptbxl" in err


def test_unknown_suite_lists_the_known_ones(capsys) -> None:
    assert main(["run", "--suite", "smok"]) == 2
    err = capsys.readouterr().err
    assert "Did you mean 'smoke'?" in err


@pytest.mark.slow
@pytest.mark.realdata
def test_smoke_suite_on_real_ptbxl(shared_data: Path, tracking_uri: str, capsys) -> None:
    args = ["run", "--suite", "smoke", "--data-dir", str(shared_data), "--tracking-uri", tracking_uri,
            "--no-progress", "--set", "grid.seeds=1", *TINY]
    assert main(args) == 0
    runs = _cell_runs(tracking_uri, "smoke", "FINISHED")
    assert {r.data.tags["task"] for r in runs} == {"ptbxl/LVH", "ptbxl/LAFB"}
    assert all(r.data.tags["synthetic"] == "false" for r in runs)
    assert all(r.data.metrics["test_n_pos"] > 0 for r in runs)
    assert any(k.startswith("test_f1.sex.") for k in runs[0].data.metrics)


@pytest.mark.slow
@pytest.mark.realdata
def test_real_ptbxl_sources_read_the_run_data_dir_and_ptbxl_authors_is_marked(shared_data: Path, tracking_uri: str,
                                                                              capsys, monkeypatch) -> None:
    monkeypatch.setenv("SIMECG_DATA", str(shared_data.parent / "no-data-here"))  # --data-dir must win
    args = ["run", "--suite", "smoke", "--corpus", "ptbxl,ptbxl-authors", "--data-dir", str(shared_data),
            "--tracking-uri", tracking_uri, "--no-progress", "--set", "grid.seeds=1", "--set", "grid.models=mae",
            "--set", "grid.tasks=ptbxl/LVH", *TINY, "--set", "pretrain.corpus_size=1000000",  # capped by the data
            "--set", "pretrain.val_size=16", "--format", "json"]
    assert main(args) == 0
    out = capsys.readouterr().out
    board = json.loads(out[out.index("{"):])
    marks = {row["model"]: row["sees_test_records"] for row in board["rows"]}
    assert marks == {"mae:ptbxl": False, "mae:ptbxl-authors": True}
    client = mlflow.tracking.MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name("simecg-bench/smoke")
    pretrains = client.search_runs([exp.experiment_id], "tags.kind = 'pretrain'")
    assert {r.data.tags["corpus"]: r.data.tags["sees_test_records"] for r in pretrains} == {
        "ptbxl": "false", "ptbxl-authors": "true"}
    sizes = {r.data.tags["corpus"]: int(r.data.params["corpus_size"]) for r in pretrains}
    assert sizes == {"ptbxl": 1000000, "ptbxl-authors": 1000000}  # the setting; the corpus holds what the data has
    held = {r.data.tags["corpus"]: int(r.data.params["corpus.ecgs"]) for r in pretrains}
    # ptbxl: every record outside the test splits (training + its own validation); authors: 64% + 16% of 400
    assert 100 < held["ptbxl"] < 400 and held["ptbxl-authors"] == 320
    assert main(["leaderboard", "--suite", "smoke", "--tracking-uri", tracking_uri]) == 0
    assert "mae:ptbxl-authors†: pretrained on records of downstream test splits" in \
        capsys.readouterr().out
