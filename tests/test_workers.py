"""Many workers on one store: 4 processes, sharded or all on the same suite, SQLite or PostgreSQL.

No errors, no duplicate and no lost cell; a worker SIGKILLed while it holds a cell releases it
(its process is gone) and another worker redoes that cell; one encoder is pretrained once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

pytestmark = pytest.mark.slow

SUITE = ["--suite", "demo", "--no-progress", "--format", "csv",
         "--set", "grid.tasks=demo/af,demo/wide_qrs", "--set", "grid.seeds=1,2",
         "--set", "pretrain.steps=30", "--set", "pretrain.corpus_size=1000", "--set", "pretrain.val_every=30",
         "--set", "finetune.max_epochs=4", "--set", "finetune.eval_every=2", "--set", "tuning.n_trials=2"]
CELLS = 8  # 2 tasks x 2 models (mae:sim, resnet18-1d) x 2 seeds


def _workers(stores: tuple[str, str], cache: Path, extra: list[list[str]],
             failpoints: dict[int, str] | None = None) -> list[subprocess.CompletedProcess]:
    tracking, optuna = stores
    processes = []
    for i, args in enumerate(extra):
        env = {**os.environ, "SIMECG_CACHE": str(cache)}
        env.pop("SIMECG_FAILPOINT", None)
        if failpoints and i in failpoints:
            env["SIMECG_FAILPOINT"] = failpoints[i]
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "benchmark.cli", "run", *SUITE, *args, "--tracking-uri", tracking,
             "--optuna-storage", optuna], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    out = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=1500)
        out.append(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr))
    return out


def _check_store(tracking: str) -> list:
    client = mlflow.tracking.MlflowClient(tracking)
    experiment = client.get_experiment_by_name("simecg-bench/demo")
    runs = client.search_runs([experiment.experiment_id], "", max_results=10000)
    cells = [r for r in runs if r.data.tags.get("kind") == "cell" and r.info.status == "FINISHED"]
    fingerprints = [r.data.tags["fingerprint"] for r in cells]
    assert len(fingerprints) == len(set(fingerprints)), "a cell ran twice"
    assert len(set(fingerprints)) == CELLS, "a cell was lost"
    pretrain = [r for r in runs if r.data.tags.get("kind") == "pretrain" and r.info.status == "FINISHED"]
    assert len(pretrain) == 1, "the encoder was pretrained more than once"
    assert not [r for r in runs if r.info.status in ("FAILED", "RUNNING")], "a run failed or was left RUNNING"
    return runs


@pytest.mark.parametrize("sharded", [False, True], ids=["claiming", "sharded"])
def test_four_workers_run_each_cell_once(stores: tuple[str, str], tmp_path: Path, sharded: bool) -> None:
    args = [["--shard", f"{i}/4"] if sharded else [] for i in range(4)]
    done = _workers(stores, tmp_path / "cache", args)
    for process in done:
        assert process.returncode == 0, process.stderr[-3000:]
        assert "Traceback" not in process.stderr
    _check_store(stores[0])
    ran = [int(p.stderr.split(" ran,")[0].rsplit(" ", 1)[1]) for p in done]
    assert sum(ran) == CELLS  # every cell ran in exactly one worker
    if not sharded:
        assert sum(r > 0 for r in ran) >= 2  # the work was spread, not done by one worker


def test_a_worker_killed_holding_a_cell_releases_it_and_another_redoes_it(stores: tuple[str, str],
                                                                         tmp_path: Path) -> None:
    done = _workers(stores, tmp_path / "cache", [[], [], []], failpoints={0: "cell.train:2"})
    assert done[0].returncode == -9  # died in its first cell's training, holding that cell
    for process in done[1:]:
        assert process.returncode == 0, process.stderr[-3000:]
    runs = _check_store(stores[0])
    killed = [r for r in runs if r.info.status == "KILLED"]
    assert {r.data.tags.get("kind") for r in killed} >= {"invocation"}  # closed by the survivors


# ----- fencing: a worker declared dead while it lives never finishes what another worker took over
FAST_LEASE = {"SIMECG_LEASE_S": "6", "SIMECG_HEARTBEAT_S": "1"}
SMALL = [*SUITE, "--set", "grid.tasks=demo/af"]  # 4 cells: 2 models x 2 seeds
SMALL_CELLS = 4


def _start(stores: tuple[str, str], cache: Path, env: dict[str, str], prefix: list[str] | None = None
           ) -> subprocess.Popen:
    tracking, optuna = stores
    full = {**os.environ, "SIMECG_CACHE": str(cache), **FAST_LEASE, **env}
    if "SIMECG_FAILPOINT" not in env:
        full.pop("SIMECG_FAILPOINT", None)
    return subprocess.Popen([*(prefix or []), sys.executable, "-m", "benchmark.cli", "run", *SMALL,
                             "--tracking-uri", tracking, "--optuna-storage", optuna],
                            env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_stopped(process: subprocess.Popen, timeout: float = 600) -> None:
    """Wait until ``process`` froze itself at its failpoint (state T in /proc)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1][-3000:]
        with open(f"/proc/{process.pid}/stat") as stat:
            if stat.read().rsplit(")", 1)[1].split()[0] == "T":
                return
        time.sleep(0.2)
    raise AssertionError("the worker never reached its failpoint")


def _finished_cells(tracking: str) -> tuple[int, int]:
    """(FINISHED cell runs, distinct fingerprints among them)."""
    client = mlflow.tracking.MlflowClient(tracking)
    experiment = client.get_experiment_by_name("simecg-bench/demo")
    runs = client.search_runs([experiment.experiment_id], "tags.kind = 'cell' and attributes.status = 'FINISHED'",
                              max_results=10000)
    return len(runs), len({r.data.tags["fingerprint"] for r in runs})


@pytest.mark.parametrize("where", ["cell.train:2:stop", "tuning.trial:2:stop"], ids=["in-a-cell", "in-tuning"])
def test_a_worker_paused_past_its_lease_is_superseded_and_finishes_nothing_twice(
        stores: tuple[str, str], tmp_path: Path, where: str) -> None:
    cache = tmp_path / "cache"
    paused = _start(stores, cache, {"SIMECG_FAILPOINT": where})
    try:
        _wait_stopped(paused)
        time.sleep(8)  # longer than the 6-s lease: the frozen worker looks dead
        other = _start(stores, cache, {})
        _, other_err = other.communicate(timeout=900)  # takes the paused worker's cell over, runs everything
        assert other.returncode == 0, other_err[-3000:]
        os.kill(paused.pid, signal.SIGCONT)  # it wakes up in the middle of a cell it no longer holds
        _, paused_err = paused.communicate(timeout=900)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(paused.pid, signal.SIGCONT)
        paused.kill()
    assert paused.returncode == 0, paused_err[-3000:]
    assert "Traceback" not in paused_err and "Cannot tell" not in paused_err, paused_err[-3000:]
    assert "superseded" in paused_err  # it says so, in one line
    assert _finished_cells(stores[0]) == (SMALL_CELLS, SMALL_CELLS)


def test_workers_of_one_host_name_in_different_pid_namespaces_do_not_declare_each_other_dead(
        stores: tuple[str, str], tmp_path: Path) -> None:
    if subprocess.run(["unshare", "-p", "-f", "--mount-proc", "true"], capture_output=True).returncode != 0:
        pytest.skip("cannot make a PID namespace here (unshare -p needs root)")
    cache = tmp_path / "cache"
    # the same host name, two PID namespaces: as two containers with host networking
    done = [_start(stores, cache, {}), _start(stores, cache, {}, prefix=["unshare", "-p", "-f", "--mount-proc"])]
    errors = [p.communicate(timeout=1500)[1] for p in done]
    for process, err in zip(done, errors, strict=True):
        assert process.returncode == 0, err[-3000:]
        assert "took over" not in err and "superseded" not in err, err[-3000:]
    assert _finished_cells(stores[0]) == (SMALL_CELLS, SMALL_CELLS)
