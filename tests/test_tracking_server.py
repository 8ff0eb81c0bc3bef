"""The suite on shared services: ``mlflow server`` over PostgreSQL with served artifacts, and PostgreSQL directly.

A cluster runs one MLflow tracking server (PostgreSQL backend, an artifact store it serves) and
Optuna studies in PostgreSQL; every worker, the leaderboard and the report go through them. A
tiny demo suite (simulator-made tasks: no data download), tuned with 2 trials so the Optuna RDB
storage is used, runs through the server; what it logged is read back through the server, and
the rows in PostgreSQL and the files in the served folder show where it went. Skipped, saying
why, where PostgreSQL or the server cannot start (tests/services.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
import services

from benchmark.cli import main

PROGRESS = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")  # a run's timestamped progress line in a log


def _beside_progress(err: str) -> list[str]:
    """stderr's lines other than the run's timestamped progress lines (a cell's "started" comes first)."""
    return [line for line in err.strip().splitlines() if not PROGRESS.match(line)]

TINY = [
    "--suite", "demo", "--corpus", "sim", "--no-progress",
    "--set", "grid.models=mae", "--set", "grid.seeds=1", "--set", "grid.tasks=demo/af",
    "--set", "tuning.n_trials=2", "--set", "finetune.max_epochs=1", "--set", "finetune.eval_every=1",
    "--set", "pretrain.steps=8", "--set", "pretrain.corpus_size=128", "--set", "pretrain.val_size=16",
    "--set", "pretrain.batch_size=16", "--set", "pretrain.val_every=4", "--set", "pretrain.checkpoint_every=4",
    "--set", "pretrain.num_workers=0",
]
MODELS = {"mae:sim"}  # the pretrained model: an encoder artifact too; one cell keeps the tests short


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache of this test's own: an encoder another test left in the session cache would make the
    suite pretrain nothing, and the test checks the pretraining run's artifact."""
    monkeypatch.setenv("SIMECG_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def optuna_db(postgres_url: str) -> Iterator[str]:
    """A second fresh database, for Optuna (its tables and alembic version must not mix with MLflow's)."""
    url = services.create_database(postgres_url, prefix="simecg_optuna")
    try:
        yield url
    finally:
        services.drop_database(url, postgres_url)


def _runs(client: mlflow.tracking.MlflowClient, query: str) -> list:
    experiment = client.get_experiment_by_name("simecg-bench/demo")
    return client.search_runs([experiment.experiment_id], filter_string=query, max_results=1000)


def _sql(url: str, query: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(url) as con, con.cursor() as cur:
        cur.execute(query)
        return cur.fetchall()


def _run_suite_and_check(uri: str, optuna_storage: str, capsys: pytest.CaptureFixture) -> list:
    """The tiny suite into ``uri``: cells FINISHED with a test F1, the study tuned, the leaderboard holds them."""
    import optuna

    args = ["run", *TINY, "--tracking-uri", uri, "--optuna-storage", optuna_storage]
    assert main(args) == 0
    assert f"{len(MODELS)} ran, 0 already finished, 0 failed" in capsys.readouterr().out
    client = mlflow.tracking.MlflowClient(uri)
    cells = _runs(client, "tags.kind = 'cell'")
    assert {r.data.tags["model"] for r in cells} == MODELS and len(cells) == len(MODELS)
    assert all(r.info.status == "FINISHED" and 0.0 <= r.data.metrics["test_f1"] <= 1.0 for r in cells)
    studies = optuna.get_all_study_summaries(optuna_storage)
    assert [s.n_trials for s in studies] == [2] * len(MODELS)  # one study per model, 2 trials each

    assert main(["leaderboard", "--suite", "demo", "--format", "json", "--tracking-uri", uri]) == 0
    board = json.loads(capsys.readouterr().out)
    f1 = {r.data.tags["model"]: r.data.metrics["test_f1"] for r in cells}
    assert {row["model"]: row["test_f1"] for row in board["rows"]} == pytest.approx(f1)

    assert main(args) == 0  # a rerun finds every cell FINISHED in the store
    assert f"0 ran, {len(MODELS)} already finished" in capsys.readouterr().out
    assert len(_runs(client, "tags.kind = 'cell'")) == len(MODELS)
    return cells


@pytest.mark.slow
def test_suite_logs_through_a_tracking_server_on_postgres(mlflow_server: str, postgres_db: str, optuna_db: str,
                                                          tmp_path: Path, capsys, one_thread) -> None:
    cells = _run_suite_and_check(mlflow_server, optuna_db, capsys)
    client = mlflow.tracking.MlflowClient(mlflow_server)

    # the runs are rows of the server's PostgreSQL database, their artifacts files of its served folder
    finished = dict(_sql(postgres_db, "SELECT run_uuid, status FROM runs"))
    assert all(finished[r.info.run_id] == "FINISHED" for r in cells)
    served = tmp_path / "served-artifacts"
    for run in cells:
        assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # uploaded through the server
        local = Path(client.download_artifacts(run.info.run_id, "test_predictions.csv", str(tmp_path)))
        assert local.read_text().splitlines()[0]  # a header line at least
        assert list(served.rglob(f"{run.info.run_id}/artifacts/test_predictions.csv"))

    # the encoder the pretraining run logged downloads through the server, equal to the cached one
    pretrain = _runs(client, "tags.kind = 'pretrain' and attributes.status = 'FINISHED'")
    assert len(pretrain) == 1
    invocations = _runs(client, "tags.kind = 'invocation'")
    key = "encoder.mae.sim.path"  # the encoder of the masked autoencoder on sim
    cached = Path(next(r.data.params[key] for r in invocations if key in r.data.params))
    fetched = Path(client.download_artifacts(pretrain[0].info.run_id, "encoder/encoder.pt", str(tmp_path)))
    assert fetched.read_bytes() == cached.read_bytes()

    # the report reads through the server and is logged back through it on the newest invocation run
    out = tmp_path / "report.html"
    assert main(["report", "--suite", "demo", "--tracking-uri", mlflow_server, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "logged as report.html" in printed and "no finished cells" not in printed
    html = out.read_text()
    assert all(model in html for model in MODELS)
    newest = _runs(client, "tags.kind = 'invocation'")
    assert any("report.html" in {a.path for a in client.list_artifacts(r.info.run_id)} for r in newest)


@pytest.mark.slow
def test_suite_on_postgres_directly_as_mlflow_backend(postgres_db: str, optuna_db: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch, capsys, one_thread) -> None:
    monkeypatch.chdir(tmp_path)  # wherever MLflow puts artifacts relative to the CWD, it is not the checkout
    cells = _run_suite_and_check(postgres_db, optuna_db, capsys)
    client = mlflow.tracking.MlflowClient(postgres_db)
    for run in cells:
        local = Path(client.download_artifacts(run.info.run_id, "test_predictions.csv", str(tmp_path / "dl")))
        assert local.read_text().splitlines()[0]
    assert {r.info.run_id for r in cells} <= {row[0] for row in _sql(postgres_db, "SELECT run_uuid FROM runs")}


# ----- a store that stops taking writes mid-run: one line, and the rerun resumes
BASELINE_CELLS = ["--suite", "demo", "--no-progress", "--set", "grid.models=resnet18-1d", "--set", "grid.seeds=1,2",
                  "--set", "grid.tasks=demo/af", "--set", "finetune.max_epochs=2", "--set", "finetune.eval_every=1"]


@pytest.mark.slow
def test_a_tracking_server_killed_mid_run_is_one_line_and_the_rerun_resumes(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    backend, artifacts = f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "served"
    artifacts.mkdir()
    server, uri = services.start_mlflow_server(backend, artifacts)
    env = {**os.environ, "SIMECG_CACHE": str(tmp_path / "cache"), "SIMECG_FAILPOINT": "cell.train:1:stop"}
    optuna = f"sqlite:///{tmp_path / 'optuna.db'}"
    worker = subprocess.Popen([sys.executable, "-m", "benchmark.cli", "run", *BASELINE_CELLS, "--tracking-uri", uri,
                               "--optuna-storage", optuna], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        deadline = time.monotonic() + 600
        while worker.poll() is None and time.monotonic() < deadline:  # frozen in its first cell's training
            with open(f"/proc/{worker.pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] == "T":
                    break
            time.sleep(0.2)
        services.stop_server(server)  # the tracking server dies while the cell trains
        os.kill(worker.pid, signal.SIGCONT)
        _, err = worker.communicate(timeout=600)
    finally:
        worker.kill()
        services.stop_server(server)
    assert worker.returncode not in (0, None)
    lines = _beside_progress(err)
    assert len(lines) == 1, err[-3000:]
    assert "stopped taking writes" in lines[0] and "rerun" in lines[0] and "Traceback" not in err

    server, uri = services.start_mlflow_server(backend, artifacts)  # the server is back (another port)
    try:
        env.pop("SIMECG_FAILPOINT")
        again = subprocess.run([sys.executable, "-m", "benchmark.cli", "run", *BASELINE_CELLS, "--tracking-uri", uri,
                                "--optuna-storage", optuna], env=env, capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stderr[-3000:]
        finished = _runs(mlflow.tracking.MlflowClient(uri), "tags.kind = 'cell' and attributes.status = 'FINISHED'")
        assert len(finished) == 2 and len({r.data.tags["fingerprint"] for r in finished}) == 2
    finally:
        services.stop_server(server)


@pytest.mark.slow
def test_a_store_turned_read_only_mid_run_is_one_line_and_the_rerun_resumes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, one_thread) -> None:
    """The SQLite store's writes start failing as on a file system remounted read-only (as root,
    chmod stops nothing, so the writes are refused where SQLAlchemy sends them to that file)."""
    import sqlite3

    import sqlalchemy as sa

    import benchmark.run.run_cell as run_cell_module

    store = tmp_path / "mlflow.db"
    uri = f"sqlite:///{store}"
    state = {"read_only": False}

    def refuse_writes(conn, cursor, statement, parameters, context, executemany):
        if state["read_only"] and conn.engine.url.database == str(store) \
                and statement.lstrip().split(" ", 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            raise sqlite3.OperationalError("attempt to write a readonly database")

    real_failpoint = run_cell_module.failpoint

    def turn_read_only(name: str) -> None:
        if name == "cell.train":
            state["read_only"] = True
        real_failpoint(name)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", refuse_writes)
    try:
        monkeypatch.setattr(run_cell_module, "failpoint", turn_read_only)
        argv = ["run", *BASELINE_CELLS, "--tracking-uri", uri, "--optuna-storage", f"sqlite:///{tmp_path / 'o.db'}"]
        assert main(argv) == 2
        err = capsys.readouterr().err
        lines = _beside_progress(err)
        assert len(lines) == 1, err[-3000:]
        assert "stopped taking writes" in lines[0] and "readonly" in lines[0] and "rerun" in lines[0]
        state["read_only"] = False  # writable again
        monkeypatch.setattr(run_cell_module, "failpoint", real_failpoint)
        assert main(argv) == 0
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", refuse_writes)
    finished = _runs(mlflow.tracking.MlflowClient(uri), "tags.kind = 'cell' and attributes.status = 'FINISHED'")
    assert len(finished) == 2
