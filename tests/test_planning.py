"""Planning and progress: the ``run --dry-run`` summary, its estimates, cell listings, closed pipes, log lines."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.cli import main

TINY = [
    "--set", "pretrain.steps=12", "--set", "pretrain.corpus_size=256", "--set", "pretrain.val_size=32",
    "--set", "pretrain.batch_size=16", "--set", "pretrain.val_every=6", "--set", "pretrain.checkpoint_every=6",
    "--set", "pretrain.num_workers=0", "--set", "finetune.max_epochs=2", "--set", "finetune.eval_every=1",
]
# demo/af, the MAE pretrained on sim and ResNet18-1D: 2 cells per seed
CELLS = ["--suite", "demo", "--corpus", "sim", "--set", "grid.tasks=demo/af", *TINY]
CLI = [sys.executable, "-m", "benchmark.cli"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, subprocess.CompletedProcess]:
    """Seed 1 of the tiny suite run for real, its output captured (not a terminal), ``--format json``."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('planning-store') / 'mlflow.db'}"
    # a cache of its own: the run pretrains (and prints its lines) whatever other tests cached before
    env = {**os.environ, "SIMECG_CACHE": str(_planning_cache(tmp_path_factory))}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run([*CLI, "run", *CELLS, "--set", "grid.seeds=1", "--tracking-uri", uri, "--format", "json"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return uri, done


def _planning_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "planning-cache"


@pytest.fixture(autouse=True)
def _the_runs_cache(_isolated_cache, tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> None:
    """The dry runs here read the cache the tiny run wrote (its encoder is there)."""
    monkeypatch.setenv("SIMECG_CACHE", str(_planning_cache(tmp_path_factory)))


def _plan(uri: str, capsys, *extra: str) -> dict:
    assert main(["run", *CELLS, "--set", "grid.seeds=1,2", "--tracking-uri", uri, "--dry-run", "--format", "json",
                 *extra]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def throughput_file():
    """A throughput file of this device in the test cache (a test input), removed afterwards."""
    from benchmark.run.planning import throughput_path, write_throughput

    figures = {
        "device": "cpu", "threads": 2, "torch": "test",
        "finetune": {
            "mae@preset=tiny": {"kind": "neural", "train_samples_per_s": 100.0, "predict_samples_per_s": 1000.0},
            "resnet18-1d@base_width=16": {"kind": "neural", "train_samples_per_s": 50.0,
                                          "predict_samples_per_s": 500.0},
        },
        "pretrain": {"tiny": {"samples_per_s": 16.0, "batch_size": 64}},
    }
    path = write_throughput(figures, throughput_path("cpu"))
    yield path
    path.unlink()


STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d "  # the timestamp of every progress line in a log


@pytest.mark.slow
def test_non_tty_run_prints_timestamped_progress_lines_and_json_stdout(tiny_run) -> None:
    _, done = tiny_run
    board = json.loads(done.stdout)  # --format json: stdout is the leaderboard's JSON and nothing else
    assert {row["model"] for row in board["rows"]} == {"mae:sim", "resnet18-1d"}
    pattern = re.compile(rf"^{STAMP}\[(\d)/2\] (mae:sim|resnet18-1d) \| demo/af \| II \| budget all \| seed 1: "
                         r"test_f1 \d\.\d{3} \([\d.]+ (s|min), ETA [\d.]+ (s|min)\)$")
    lines = [line for line in done.stderr.splitlines() if pattern.match(line)]
    assert [pattern.match(line).group(1) for line in lines] == ["1", "2"], done.stderr
    assert len(re.findall(rf"(?m)^{STAMP}\[\d/2\] .*: started$", done.stderr)) == 2
    # pretraining says how far it is, by method and source: at its start, each validation and its end
    steps = re.findall(rf"(?m)^{STAMP}pretrain mae:sim: step (\d+)/12 \(\d+%\)(?:, train loss [\d.]+)?, "
                       r"val loss [\d.]+", done.stderr)
    assert steps == ["6", "12"], done.stderr
    assert "suite demo: 2 cells, 2 ran" in done.stderr  # the run summary goes to stderr with --format json
    last = done.stderr.rstrip().splitlines()[-1]  # where the report is, and how to compare the runs
    assert last.startswith("report ") and "report.html" in last
    assert "simecg-bench ui --suite demo --tracking-uri sqlite:///" in last
    assert "simecg-bench leaderboard --suite demo --tracking-uri sqlite:///" in last


@pytest.mark.slow
def test_dry_run_counts_cells_pretraining_and_trials(tiny_run, capsys) -> None:
    uri, _ = tiny_run
    summary = _plan(uri, capsys)["summary"]
    assert summary["cells"] == {"total": 4, "finished": 2, "pending": 2}  # seed 2 is new
    assert summary["pretraining"] == [] and summary["generators"] == []  # the encoder is in the cache
    assert summary["tuning"]["trials"] == 0

    summary = _plan(uri, capsys, "--set", "pretrain.steps=13", "--set", "tuning.n_trials=3")["summary"]
    assert summary["cells"] == {"total": 4, "finished": 0, "pending": 4}  # tuning is part of every cell's identity
    (need,) = summary["pretraining"]  # another encoder
    assert (need["source"], need["steps"], need["batch_size"], need["preset"]) == ("sim", 13, 16, "tiny")
    assert summary["tuning"] == {"studies": 2, "n_trials": 3, "trials": 6, "timeout_s": 0.0,  # one study per model
                                 "scope": "one study per (task, model) on the full training split of lead II"}
    with_budgets = _plan(uri, capsys, "--set", "tuning.n_trials=3", "--set", "grid.budgets=0,5,10")["summary"]
    assert with_budgets["cells"]["total"] == 12 and with_budgets["tuning"]["studies"] == 2  # budgets reuse them
    separate = _plan(uri, capsys, "--set", "tuning.n_trials=3", "--set", "grid.budgets=0,5,10",
                     "--set", "tuning.separate_studies=budget")["summary"]["tuning"]
    assert separate["studies"] == 6 and separate["scope"] == "one study per (task, model, budget)"


@pytest.mark.slow
def test_estimate_reads_the_throughput_file(tiny_run, throughput_file: Path, capsys) -> None:
    uri, _ = tiny_run
    plan = _plan(uri, capsys)
    summary = plan["summary"]
    assert summary["throughput"]["path"] == str(throughput_file)
    assert summary["epochs"]["expected_from_finished_cells"] == {"mae:sim": 1, "resnet18-1d": 1}
    pending = [row for row in plan["cells"] if row["status"] == "pending"]
    for row in pending:  # 2 epochs (max_epochs 2 and what the finished cells ran), validation every epoch
        train, predict = (100.0, 1000.0) if row["model"] == "mae:sim" else (50.0, 500.0)
        seconds = 2 * row["n_train"] / train + (2 * row["n_val"] + row["n_test"]) / predict
        assert row["est_seconds_high"] == pytest.approx(seconds, abs=0.1)
        assert row["est_seconds_expected"] == row["est_seconds_high"]
    total = summary["estimate_seconds"]["cells"]["high"]
    assert total == pytest.approx(sum(row["est_seconds_high"] for row in pending), abs=0.2)

    # trials without early stopping: the median pruner's 5 start-up trials run every epoch (10), the others
    # at least until the pruner's first chance (pruner_patience 1: 3 evaluations of 1 epoch each)
    tuned = _plan(uri, capsys, "--set", "tuning.n_trials=7", "--set", "tuning.pruner_patience=1",
                  "--set", "finetune.max_epochs=10")["summary"]["estimate_seconds"]["tuning"]
    assert tuned["expected"] is None and tuned["high"] / tuned["low"] == pytest.approx(70 / 56, rel=0.01)

    assert main(["run", *CELLS, "--set", "grid.seeds=1,2", "--set", "pretrain.steps=13", "--tracking-uri", uri,
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"estimated time, from {throughput_file}" in out
    assert re.search(r"pretraining +13 s +\(1 encoder", out)  # 13 steps x 16 / 16 samples/s


@pytest.mark.slow
def test_dry_run_without_throughput_says_how_to_measure(tiny_run, capsys) -> None:
    from benchmark.run.planning import throughput_path

    assert not throughput_path().exists()
    uri, _ = tiny_run
    assert main(["run", *CELLS, "--set", "grid.seeds=1,2", "--tracking-uri", uri, "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "suite demo: 4 cells, 2 finished, 2 pending"
    assert "estimated time: no throughput measured on this device: run `simecg-bench bench finetune`" in out
    assert not any(line.startswith(("pending ", "finished ")) for line in out)  # cells only with --list


@pytest.mark.slow
def test_list_and_csv_and_json_list_every_cell(tiny_run, capsys) -> None:
    uri, _ = tiny_run
    base = ["run", *CELLS, "--set", "grid.seeds=1,2", "--tracking-uri", uri]
    assert main([*base, "--list"]) == 0  # --list implies --dry-run
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("suite demo: 4 cells")
    cells = [line.split(maxsplit=2) for line in out if line.startswith(("pending ", "finished "))]
    assert sorted(c[0] for c in cells) == ["finished", "finished", "pending", "pending"]
    assert all(len(c[1]) == 16 and c[2].endswith(("seed 1", "seed 2")) for c in cells)

    assert main([*base, "--dry-run", "--format", "csv"]) == 0
    captured = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(captured.out)))
    assert sorted((r["model"], r["seed"], r["status"]) for r in rows) == [
        ("mae:sim", "1", "finished"), ("mae:sim", "2", "pending"),
        ("resnet18-1d", "1", "finished"), ("resnet18-1d", "2", "pending")]
    assert {r["fingerprint"] for r in rows} == {c[1] for c in cells}
    assert "suite demo: 4 cells" in captured.err  # the summary stays off the CSV

    plan = _plan(uri, capsys)
    assert len(plan["cells"]) == 4 and plan["summary"]["cells"]["pending"] == 2
    assert all(int(r["n_train"]) > 0 and int(r["n_test"]) > 0 for r in plan["cells"])


@pytest.mark.slow
def test_closed_pipe_ends_quietly(tmp_path: Path, tiny_run) -> None:
    seeds = ",".join(str(s) for s in range(1, 401))  # 2,400 cells, ~200 KB: more than a pipe holds
    writer = subprocess.Popen([*CLI, "run", "--suite", "demo", "--set", f"grid.seeds={seeds}", "--dry-run", "--list",
                               "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = subprocess.run(["head", "-1"], stdin=writer.stdout, capture_output=True, text=True, timeout=300)
    writer.stdout.close()
    err = writer.stderr.read().decode()
    assert writer.wait(timeout=300) == 141  # 128 + SIGPIPE, documented in benchmark/cli.py
    assert head.stdout.startswith("suite demo: 2400 cells")
    assert "Traceback" not in err and "BrokenPipe" not in err, err
