"""Tracking URIs are checked before any work: one line within seconds, no folders made, no secrets shown."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.tracking.tracker import Tracker, ensure_sqlite_store
from simecg.errors import TrackingError
from simecg.urls import redact


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmark.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize(("uri", "says"), [
    ("not a uri", "is not one MLflow can use"),
    ("http://127.0.0.1:9/", "cannot reach the MLflow server at http://127.0.0.1:9/"),
    ("postgresql://me:hunter2@127.0.0.1:9/db", "cannot connect to the MLflow store postgresql://me:***@127.0.0.1:9/db"),
])
def test_a_bad_or_unreachable_store_is_one_line_within_seconds(uri: str, says: str, tmp_path: Path) -> None:
    started = time.perf_counter()
    done = _cli(["run", "--suite", "demo", "--dry-run", "--tracking-uri", uri], tmp_path)
    seconds = time.perf_counter() - started
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], done.stderr
    assert "hunter2" not in done.stderr + done.stdout
    assert seconds < 60  # python start-up included; the probe itself times out in 5 s


@pytest.mark.slow
def test_a_sqlite_store_in_a_missing_folder_tree_is_refused_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent_dir"
    with pytest.raises(TrackingError, match=f"folder {missing} does not exist"):
        Tracker(f"sqlite:///{missing / 'x' / 'm.db'}", "demo")
    assert not missing.exists()
    Tracker(f"sqlite:///{tmp_path / 'new' / 'm.db'}", "demo")  # one new folder inside an existing one is fine
    assert (tmp_path / "new" / "m.db").is_file()


@pytest.mark.slow
def test_a_dry_run_and_a_leaderboard_write_nothing_to_the_store(tmp_path: Path, capsys) -> None:
    db = tmp_path / "store" / "mlflow.db"
    db.parent.mkdir()
    assert main(["run", "--suite", "demo", "--dry-run", "--tracking-uri", f"sqlite:///{db}"]) == 0
    assert main(["leaderboard", "--suite", "demo", "--tracking-uri", f"sqlite:///{db}"]) == 2
    assert not db.exists()
    Tracker(f"sqlite:///{db}", "other")  # a store holding another suite
    before = db.read_bytes()
    assert main(["run", "--suite", "demo", "--dry-run", "--tracking-uri", f"sqlite:///{db}"]) == 0
    assert db.read_bytes() == before  # no experiment made for the dry run


@pytest.mark.slow
def test_an_empty_or_half_made_store_is_rebuilt_with_a_warning(tmp_path: Path, caplog) -> None:
    import sqlite3

    db = tmp_path / "mlflow.db"
    db.write_bytes(b"")
    ensure_sqlite_store(db)
    assert "was empty" in caplog.text and db.stat().st_size > 0
    db.unlink()
    with sqlite3.connect(db) as con:  # what a kill during MLflow's migrations leaves: tables, no version
        con.execute("CREATE TABLE experiments (experiment_id INTEGER)")
        con.execute("CREATE TABLE _alembic_tmp_experiments (x INTEGER)")
    Tracker(f"sqlite:///{db}", "demo")
    assert "half-made" in caplog.text
    assert list(tmp_path.glob("mlflow.db.broken-*"))


def test_a_file_that_is_not_a_database_is_refused_not_replaced(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    db.write_text("my notes, not a store\n" * 100)
    with pytest.raises(TrackingError, match="is not a SQLite database"):
        Tracker(f"sqlite:///{db}", "demo")
    assert db.read_text().startswith("my notes")


def test_redact_hides_passwords_only() -> None:
    assert redact("postgresql://u:p4ss@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact("http://h:5000") == "http://h:5000"
    assert redact("sqlite:////a/b.db") == "sqlite:////a/b.db"
