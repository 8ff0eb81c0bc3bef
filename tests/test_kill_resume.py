"""Kill and resume: SIGKILL a small suite at five points, rerun until done, lose and double nothing.

The suite (demo tasks, the MAE pretrained on ``sim`` and a ResNet baseline, two seeds, a 2-trial
Optuna study per model) is killed with SIGKILL (no handler runs, as on a pre-empted machine) at
each failpoint (:mod:`simecg.failpoints`) in turn, every rerun resuming the previous one: during
pretraining, during tuning, during a cell's training, during a cell's MLflow logging, and
between cells. The store must end with exactly one FINISHED run per cell and per pretraining, no
RUNNING run, and every cell's metrics equal to those of an uninterrupted run with the same seeds.
Also: a kill at any moment of a first run never leaves a store the next run cannot open.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

pytestmark = pytest.mark.slow

SUITE = ["--suite", "demo", "--no-progress",
         "--set", "grid.tasks=demo/af", "--set", "grid.models=mae", "--set", "grid.seeds=1,2",
         "--set", "pretrain.steps=60", "--set", "pretrain.checkpoint_every=20", "--set", "pretrain.val_every=20",
         "--set", "pretrain.corpus_size=1000",
         "--set", "finetune.max_epochs=4", "--set", "finetune.eval_every=1",
         "--set", "tuning.n_trials=2"]
POINTS = ["pretrain.step:45", "tuning.trial:2", "cell.train:2", "cell.log:1", "between.cells:1"]


def _run(uri: str, storage: str, cache: Path, failpoint: str | None = None,
         timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "SIMECG_CACHE": str(cache)}
    env.pop("SIMECG_FAILPOINT", None)
    if failpoint:
        env["SIMECG_FAILPOINT"] = failpoint
    return subprocess.run([sys.executable, "-m", "benchmark.cli", "run", *SUITE, "--tracking-uri", uri,
                           "--optuna-storage", storage, "--format", "csv"],
                          env=env, capture_output=True, text=True, timeout=timeout)


def _runs(uri: str) -> list:
    client = mlflow.tracking.MlflowClient(uri)
    experiment = client.get_experiment_by_name("simecg-bench/demo")
    return client.search_runs([experiment.experiment_id], "", max_results=10000)


def _cells(runs: list) -> dict[str, dict[str, float]]:
    return {r.data.tags["fingerprint"]: r.data.metrics for r in runs
            if r.data.tags.get("kind") == "cell" and r.info.status == "FINISHED"}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, float]]:
    """The suite's cells run once without a kill, on SQLite: the one reference for both backends."""
    folder = tmp_path_factory.mktemp("reference")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    done = _run(uri, f"sqlite:///{folder / 'optuna.db'}", folder / "cache")
    assert done.returncode == 0, done.stderr[-3000:]
    cells = _cells(_runs(uri))
    assert len(cells) == 2  # 1 task x the MAE x 2 seeds
    return cells


@pytest.mark.timeout(1800)
def test_killed_at_five_points_the_suite_resumes_to_the_uninterrupted_result(
        tmp_path: Path, stores: tuple[str, str], uninterrupted: dict[str, dict[str, float]]) -> None:
    """On SQLite files and on PostgreSQL (MLflow backend and Optuna storage); the reference is SQLite."""
    reference = uninterrupted
    uri, storage = stores
    cache = tmp_path / "cache-killed"
    for point in POINTS:
        killed = _run(uri, storage, cache, point)
        assert killed.returncode == -signal.SIGKILL, f"{point}: not killed there\n{killed.stderr[-3000:]}"
    finished = _run(uri, storage, cache)
    assert finished.returncode == 0, finished.stderr[-3000:]

    runs = _runs(uri)
    statuses = [r.info.status for r in runs]
    assert "RUNNING" not in statuses  # the dead processes' runs were closed
    assert statuses.count("KILLED") >= len(POINTS)  # at least each killed invocation
    for kind in ("cell", "pretrain"):
        done_runs = [r for r in runs if r.data.tags.get("kind") == kind and r.info.status == "FINISHED"]
        fingerprints = [r.data.tags["fingerprint"] for r in done_runs]
        assert len(fingerprints) == len(set(fingerprints)), f"a {kind} finished twice"
    assert sum(r.data.tags.get("kind") == "pretrain" and r.info.status == "FINISHED" for r in runs) == 1
    cells = _cells(runs)
    assert cells.keys() == reference.keys()
    for fingerprint, metrics in reference.items():
        for key in ("test_f1", "test_auroc", "test_auprc", "best_val_loss"):
            if key in metrics:
                assert cells[fingerprint][key] == pytest.approx(metrics[key], abs=1e-6), (fingerprint, key)


def test_a_kill_at_any_moment_of_a_first_run_leaves_a_store_the_next_run_opens(tmp_path: Path) -> None:
    """SIGKILL first runs at moments around the store's creation (from when its first file appears,
    while MLflow builds the schema): the next command always opens the store."""
    from benchmark.tracking.tracker import Tracker

    env = {**os.environ, "SIMECG_CACHE": str(tmp_path / "cache")}
    for i, delay in enumerate((0.0, 0.1, 0.5, 1.5)):
        folder = tmp_path / f"store{i}"
        folder.mkdir()
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        process = subprocess.Popen([sys.executable, "-m", "benchmark.cli", "run", *SUITE, "--tracking-uri", uri],
                                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while time.time() < deadline and process.poll() is None and not [
                p for p in folder.iterdir() if not p.name.endswith(".lock")]:
            time.sleep(0.01)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        check = subprocess.run([sys.executable, "-m", "benchmark.cli", "leaderboard", "--suite", "demo",
                                "--tracking-uri", uri], env=env, capture_output=True, text=True, timeout=300)
        assert "Traceback" not in check.stderr and "already exists" not in check.stderr, check.stderr[-2000:]
        Tracker(uri, "demo")  # opens (repairing a half-made store if need be) with no error
        assert (folder / "mlflow.db").is_file()
        assert not [p for p in folder.glob(".mlflow.db.tmp*") if p.exists()]


PRETRAIN = ["pretrain", "--suite", "demo", "--corpus", "sim", "--no-progress", "--json",
            "--set", "pretrain.steps=8", "--set", "pretrain.corpus_size=128", "--set", "pretrain.val_size=16",
            "--set", "pretrain.batch_size=16", "--set", "pretrain.val_every=4", "--set", "pretrain.checkpoint_every=4",
            "--set", "pretrain.num_workers=0"]


def _pretrain(uri: str, cache: Path, failpoint: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "SIMECG_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    env.pop("SIMECG_FAILPOINT", None)
    if failpoint:
        env["SIMECG_FAILPOINT"] = failpoint
    return subprocess.run([sys.executable, "-m", "benchmark.cli", *PRETRAIN, "--tracking-uri", uri],
                          env=env, capture_output=True, text=True, timeout=600)


def test_a_kill_after_the_encoder_is_cached_but_before_its_run_finished_is_repaired(tmp_path: Path) -> None:
    """Killed after encoder.pt landed in the cache, before its pretraining run was FINISHED (artifact
    upload, export): the next run finds the encoder in the cache and logs its run from it, so the
    store has one FINISHED pretraining run with its curves, and another machine fetches it."""
    import json

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    killed = _pretrain(uri, tmp_path / "cache", failpoint="pretrain.done")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert list((tmp_path / "cache").rglob("encoder.pt"))  # the cache entry is complete
    again = _pretrain(uri, tmp_path / "cache")
    assert again.returncode == 0, again.stderr[-2000:]
    client = mlflow.tracking.MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    finished = client.search_runs(experiments, "tags.kind = 'pretrain' and attributes.status = 'FINISHED'")
    assert len(finished) == 1
    assert client.get_metric_history(finished[0].info.run_id, "train_loss")  # its curves are in the store
    elsewhere = _pretrain(uri, tmp_path / "other-cache")  # another machine: its own cache, the same store
    assert elsewhere.returncode == 0, elsewhere.stderr[-2000:]
    assert json.loads(elsewhere.stdout.strip().splitlines()[-1])["trained_now"] is False
    assert list((tmp_path / "other-cache").rglob("encoder.pt"))
    assert len(client.search_runs(experiments, "tags.kind = 'pretrain' and attributes.status = 'FINISHED'")) == 1
