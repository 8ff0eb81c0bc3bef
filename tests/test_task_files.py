"""Tasks from outside: a user's task file added with --include-path (README, "Adding tasks")."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.data import tasks as task_files
from benchmark.data.table import TABLE_PATH
from benchmark.registries import TASKS
from simecg.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SINUS = """
[[tasks]]
dataset = "ptbxl"
label = "SR"
positive = ["SR"]
description = "sinus rhythm, a user's task"
"""


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch):
    """TASKS and the task-file bookkeeping restored after the test: included tasks stay in the test."""
    TASKS.names()
    for obj, attr in ((TASKS, "_entries"), (TASKS, "_metadata"), (task_files, "_sources"),
                      (task_files, "_normal_class")):
        monkeypatch.setattr(obj, attr, dict(getattr(obj, attr)))
    return TASKS


def _cli(*args: str, env_cache: Path) -> subprocess.CompletedProcess:
    """The command line in a fresh process: what it includes dies with it."""
    env = {**os.environ, "SIMECG_CACHE": str(env_cache)}
    return subprocess.run([sys.executable, "-m", "benchmark.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_included_tasks_join_the_registry_with_their_file_and_our_normal_class(tmp_path, registry) -> None:
    (tmp_path / "b.toml").write_text(SINUS)
    (tmp_path / "a.toml").write_text(SINUS.replace('"SR"', '"STACH"'))
    before = len(registry)
    added = task_files.include_tasks(tmp_path)
    assert added == ["ptbxl/STACH", "ptbxl/SR"]  # files by name
    assert len(registry) == before + 2
    spec = registry.get("ptbxl/SR")
    assert spec.negative == registry.get("ptbxl/AFIB").negative and spec.min_likelihood == 0.0
    assert task_files.source_of("ptbxl/SR") == str((tmp_path / "b.toml").resolve())
    assert not task_files.is_ours("ptbxl/SR") and task_files.is_ours("ptbxl/AFIB")
    assert task_files.include_tasks(tmp_path / "b.toml") == []  # the same file again adds nothing
    assert [s.name for s in task_files.tasks_of("ptbxl")][-2:] == ["ptbxl/STACH", "ptbxl/SR"]


def test_wildcards_of_a_suite_match_only_our_tasks(tmp_path, registry) -> None:
    from benchmark.suites.config import load_suite

    (tmp_path / "mine.toml").write_text(SINUS)
    task_files.include_tasks(tmp_path)
    ours = {t for t in registry.names() if t.startswith("ptbxl/") and t != "ptbxl/SR"}
    suite = load_suite("demo", {"grid.tasks": "ptbxl/*"})
    assert set(suite.resolved_tasks(suite.grids[0])) == ours
    named = dataclasses.replace(suite.grids[0], tasks=("ptbxl/SR",))
    assert suite.resolved_tasks(named) == ["ptbxl/SR"]


@pytest.mark.parametrize(("text", "message"), [
    (SINUS.replace('label = "SR"', 'label = "AFIB"'), r"task 'ptbxl/AFIB' is one of our tasks already .*tasks\.toml"),
    (SINUS.replace("positive", "positives"), r"task #1 \(ptbxl/SR\): unknown key 'positives'"),
    (SINUS.replace('positive = ["SR"]', ""), r"task #1 \(ptbxl/SR\): missing key 'positive'"),
    (SINUS.replace('["SR"]', "[]"), r"task #1 \(ptbxl/SR\) positive must be a non-empty list"),
    (SINUS.replace('"ptbxl"', '"nowhere"'), r"dataset 'nowhere' has no normal class"),
    (SINUS.replace('"SR"', '"S R"', 1), r"label 'S R' must be letters"),
    (SINUS + 'min_likelihood = 101\n', r"min_likelihood must be a number from 0 to 100"),
    ('[datasets.nowhere]\nnegative = ["N"]\n' + SINUS, r"no reader is registered for dataset 'nowhere'"),
    ('[datasets.ptbxl]\nnegative = ["N"]\n' + SINUS, r"dataset 'ptbxl' is declared by .*tasks\.toml already"),
    ("[codes]\nequivalences = []\n" + SINUS, r"\[codes\] is read from the study's table"),
    (SINUS + SINUS, r"task 'ptbxl/SR' is listed twice in this file"),
    ('description = "no tasks"\n', r"unknown key 'description'"),
    ("[datasets]\n", r"no \[\[tasks\]\] row"),
])
def test_a_bad_task_file_is_one_error_naming_the_file_and_registers_nothing(tmp_path, registry, text, message):
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    names = registry.names()
    with pytest.raises(ConfigError, match=message) as caught:
        task_files.include_tasks(bad)
    assert str(bad.resolve()) in str(caught.value)
    assert registry.names() == names


def test_a_missing_place_or_an_empty_folder_is_an_error(tmp_path, registry) -> None:
    with pytest.raises(ConfigError, match="no such file or folder"):
        task_files.include_tasks(tmp_path / "absent")
    with pytest.raises(ConfigError, match=r"holds no \*\.toml task file"):
        task_files.include_tasks(tmp_path)


def test_our_table_counts_are_the_registry_s(registry) -> None:
    from benchmark.data.table import task_table

    ours = [t for t in registry.names() if task_files.source_of(t) == str(TABLE_PATH)]
    assert len(ours) == len(task_table()["tasks"]) and all(task_files.is_ours(t) for t in ours)


def test_list_tasks_shows_an_included_task_and_its_file(tmp_path) -> None:
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "mine.toml").write_text(SINUS)
    done = _cli("list", "tasks", "--include-path", str(folder), env_cache=tmp_path / "cache")
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("ptbxl/SR "))
    assert "sinus rhythm, a user's task" in line and str(folder / "mine.toml") in line
    assert sum(line.startswith("ptbxl/") for line in done.stdout.splitlines()) == len(
        task_files.tasks_of("ptbxl")) + 1
    clash = folder / "mine.toml"
    clash.write_text(SINUS.replace('"SR"', '"AFIB"', 1))
    done = _cli("list", "tasks", "--include-path", str(folder), env_cache=tmp_path / "cache")
    assert done.returncode == 2 and "'ptbxl/AFIB' is one of our tasks already" in done.stderr


@pytest.mark.realdata
@pytest.mark.slow
def test_run_dry_run_plans_an_included_task(tmp_path, shared_data) -> None:
    (tmp_path / "mine.toml").write_text(SINUS)
    done = _cli("run", "--suite", "demo", "--include-path", str(tmp_path / "mine.toml"), "--set",
                "grid.tasks=ptbxl/SR", "--data-dir", str(shared_data), "--dry-run", "--format", "csv",
                env_cache=tmp_path / "cache")
    assert done.returncode == 0, done.stderr
    assert "ptbxl/SR" in done.stdout and "4 cells" in done.stdout + done.stderr


def test_a_package_adds_its_task_file_through_the_entry_point_group(tmp_path) -> None:
    """What README's "Adding tasks" tells a package to do: a module that includes its own task file, named
    by a ``simecg_bench.tasks`` entry point (here an installed-looking package on PYTHONPATH)."""
    site = tmp_path / "site"
    package = site / "my_ecg_tasks"
    package.mkdir(parents=True)
    (package / "tasks.toml").write_text(SINUS)
    (package / "__init__.py").write_text(
        "from pathlib import Path\n\nfrom benchmark.data.tasks import include_tasks\n\n"
        "include_tasks(Path(__file__).with_name('tasks.toml'))\n")
    info = site / "my_ecg_tasks-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-ecg-tasks\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[simecg_bench.tasks]\nmine = my_ecg_tasks\n")
    env = {**os.environ, "SIMECG_CACHE": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "benchmark.cli", "list", "tasks", "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    assert rows["ptbxl/SR"]["source"] == str((package / "tasks.toml").resolve())
    assert rows["ptbxl/AFIB"]["source"] == ""
