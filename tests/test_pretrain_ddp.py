"""DDP: ``torchrun --nproc_per_node 2 simecg-bench pretrain`` (gloo, CPU) trains the same model as 1 process,
also when the job is killed and the same command is run again.

Tolerance: after 6 Adam steps (lr 1e-3) every weight agrees within 5e-5 absolute (5% of one
Adam step; measured 8e-6) while training moved the weights by over 2e-3, and the logged losses
agree within 1e-5 relative (measured 4e-8). Only the order of floating-point sums differs.

The settings put checkpoints (every 2 steps) between log steps (every 3), so a resumed run
must also carry the half-filled loss window of every process, not only rank 0's.

Every run here reports a validation loss that rises after step 3 (:data:`_RISING_VALIDATION`),
so the encoder handed out is the step-3 checkpoint (the best validation), not the last one; a
run resumed from the step-4 checkpoint knows it only from the best validation that checkpoint
carries, which rank 0 chose and wrote.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from benchmark.cli import main
from pretraining import ddp
from pretraining.checkpoint import list_checkpoints, load_encoder
from pretraining.mae import ECGEncoder
from simecg.errors import ConfigError

# Validation as the loop computes it, plus 1 after step 3 (MSE losses here are about 1, and move far
# less in 3 steps): the validation loss rises, and the encoder must be the step-3 checkpoint.
_RISING_VALIDATION = '''
from pretraining.loop import _Run
_validate = _Run.validate
_Run.validate = lambda self, model, autocast, step: _validate(self, model, autocast, step) + float(step > 3)
'''
_MAIN = "from benchmark.cli import main\nsys.exit(main())\n"

# The suite's CLI with the rising validation loss: the uninterrupted runs' entry point.
_PLAIN_ENTRY = "import sys\n" + _RISING_VALIDATION + _MAIN

# torchrun's entry point in the kill test: the same, except that rank 0 records its pid and
# stops for good right after writing the checkpoint of step $TEST_PAUSE_AT (so a kill lands after
# that checkpoint and before the next, on any machine); every rank records its pid.
_ENTRY = '''
import os, sys, time
from pathlib import Path
from pretraining import checkpoint

marks = Path(os.environ["TEST_MARKS"])
(marks / f"rank{os.environ['RANK']}.pid").write_text(str(os.getpid()))
pause_at, original = int(os.environ["TEST_PAUSE_AT"]), checkpoint.atomic_save

def save(obj, path):
    out = original(obj, path)
    if obj.get("kind") == "training" and obj["step"] == pause_at:
        (marks / "paused").write_text(str(pause_at))
        time.sleep(300)
    return out

checkpoint.atomic_save = save
''' + _RISING_VALIDATION + _MAIN


def _data(folder: Path) -> Path:
    folder.mkdir()
    t = np.arange(5000) / 500.0
    rows = [(1 + i % 4) * np.sin(2 * np.pi * (1 + 0.1 * i) * t + i) + 0.2 * np.sin(18 * np.pi * t) for i in range(40)]
    np.save(folder / "sines.npy", np.asarray(rows, dtype=np.float32))
    return folder


def _args(data: Path, out: Path) -> list[str]:
    settings = {
        "corpus_options.path": str(data), "corpus_size": 40, "val_size": 8, "batch_size": 8, "lr": 1e-3,
        "val_every": 3, "log_every": 3, "checkpoint_every": 2, "keep_checkpoints": 2, "num_workers": 0,
        "model.embed_dim": 32, "model.depth": 1, "model.num_heads": 2,
        "model.decoder_embed_dim": 16, "model.decoder_num_heads": 2,
    }
    args = ["pretrain", "--corpus", "folder", "--preset", "tiny", "--steps", "6", "--out", str(out),
            "--no-mlflow", "--no-progress", "--json"]
    for key, value in settings.items():
        args += ["--set", f"pretrain.{key}={value}"]
    return args


def _env(cache: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "SIMECG_CACHE": str(cache), **extra}


def _torchrun(script: Path, args: list[str]) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script), *args]


def _last_json(stdout: str) -> dict[str, Any]:
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The same pretraining run uninterrupted: by 2 gloo processes and by 1 process."""
    root = tmp_path_factory.mktemp("ddp")
    data = _data(root / "data")
    script = root / "entry.py"
    script.write_text(_PLAIN_ENTRY)
    proc = subprocess.run(_torchrun(script, _args(data, root / "ddp")), capture_output=True, text=True,
                          env=_env(root / "cache"), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = subprocess.run([sys.executable, str(script), *_args(data, root / "single")], capture_output=True,
                            text=True, env=_env(root / "cache"), timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]
    return {"data": data, "ddp": _last_json(proc.stdout), "single": _last_json(single.stdout),
            "ddp_dir": root / "ddp", "single_dir": root / "single"}


def _assert_same_training(result: dict[str, Any], out: Path, reference: dict[str, Any], reference_out: Path) -> None:
    """Same identity, encoder (the step-3 checkpoint; weights within 5e-5) and logged losses (1e-5 relative)
    as the reference run."""
    assert result["fingerprint"] == reference["fingerprint"]
    assert (result["step"], result["chosen_by"]) == (reference["step"], reference["chosen_by"]) == (3, "best_val")
    assert result["val_loss"] == pytest.approx(reference["val_loss"], rel=1e-5)
    a, b = load_encoder(Path(result["checkpoint"])), load_encoder(Path(reference["checkpoint"]))
    for (name, wa), (_, wb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        torch.testing.assert_close(wa, wb, atol=5e-5, rtol=0, msg=name)
    history = json.loads((out / "history.json").read_text())
    reference_history = json.loads((reference_out / "history.json").read_text())
    assert [h["step"] for h in history] == [3, 6]
    for h, r in zip(history, reference_history, strict=True):
        assert h["step"] == r["step"]
        assert h["train_loss"] == pytest.approx(r["train_loss"], rel=1e-5)
        assert h["val_loss"] == pytest.approx(r["val_loss"], rel=1e-5)


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_the_same_global_batch(uninterrupted):
    _assert_same_training(uninterrupted["ddp"], uninterrupted["ddp_dir"],
                          uninterrupted["single"], uninterrupted["single_dir"])
    torch.manual_seed(0)  # pretrain.seed: the encoder's initial weights
    single = load_encoder(uninterrupted["single_dir"] / "checkpoints" / "step-00000006.pt")
    initial = ECGEncoder(single.config)
    moved = max((w - w0).abs().max().item() for w, w0 in zip(single.state_dict().values(),
                                                               initial.state_dict().values(), strict=True))
    assert moved > 2e-3, "training moved the weights far more than the tolerance"
    history = json.loads((uninterrupted["single_dir"] / "history.json").read_text())
    assert history[-1]["train_loss"] != history[0]["train_loss"]  # the weights moved: equality is not trivial


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _pids(marks: Path) -> list[int]:
    """The pids the ranks recorded, in rank order (a file being written is skipped)."""
    texts = [p.read_text().strip() for p in sorted(marks.glob("rank*.pid"))]
    return [int(text) for text in texts if text.isdigit()]


def _wait(condition: Any, what: str, proc: subprocess.Popen | None = None, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"torchrun ended ({proc.returncode}) before {what}: {proc.stderr.read()[-3000:]}")
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def _launch(entry: Path, args: list[str], cache: Path, marks: Path, pause_at: int) -> subprocess.Popen:
    """torchrun in a process group of its own (its workers start sessions of their own anyway)."""
    for mark in marks.glob("*"):
        mark.unlink()
    env = _env(cache, TEST_MARKS=str(marks), TEST_PAUSE_AT=str(pause_at))
    return subprocess.Popen(_torchrun(entry, args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to see which workers are alive")
def test_killed_ddp_pretraining_resumes_to_the_uninterrupted_model(uninterrupted, tmp_path):
    entry, marks, out = tmp_path / "entry.py", tmp_path / "marks", tmp_path / "killed"
    entry.write_text(_ENTRY)
    marks.mkdir()
    args = _args(uninterrupted["data"], out)
    launched: list[subprocess.Popen] = []
    workers: set[int] = set()  # every rank's pid, to clean up whatever the outcome
    try:
        # 1. One rank dies (SIGKILL) after the step-2 checkpoint: torchrun ends the other one and fails.
        proc = _launch(entry, args, tmp_path / "cache", marks, pause_at=2)
        launched.append(proc)
        _wait(lambda: (marks / "paused").exists() and len(_pids(marks)) == 2, "the step-2 checkpoint", proc)
        workers.update(_pids(marks))
        rank0, rank1 = _pids(marks)
        os.kill(rank1, signal.SIGKILL)
        assert proc.wait(timeout=90) != 0
        assert not _alive(rank0), "torchrun left the surviving rank running"
        for pipe in (proc.stdout, proc.stderr):
            pipe.close()
        assert [step for step, _ in list_checkpoints(out / "checkpoints")] == [2]

        # 2. The same command again, killed as a whole (SIGKILL to torchrun's process group) after the
        #    step-4 checkpoint: the workers, in sessions of their own, must not outlive it.
        proc = _launch(entry, args, tmp_path / "cache", marks, pause_at=4)
        launched.append(proc)
        _wait(lambda: (marks / "paused").exists() and len(_pids(marks)) == 2, "the step-4 checkpoint", proc)
        workers.update(_pids(marks))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        _wait(lambda: not any(_alive(pid) for pid in _pids(marks)), "the orphaned workers to end", timeout=60)
        for pipe in (proc.stdout, proc.stderr):
            pipe.close()
        assert [step for step, _ in list_checkpoints(out / "checkpoints")] == [2, 4]
        assert not (out / "encoder.pt").exists()

        # 3. The same command once more: it resumes from step 4 and ends as if never interrupted.
        proc = _launch(entry, ["-v", *args], tmp_path / "cache", marks, pause_at=0)
        launched.append(proc)
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr[-3000:]
        assert f"resuming {out} from step 4" in stderr
        assert [step for step, _ in list_checkpoints(out / "checkpoints")] == [4, 6]
    finally:
        for proc in launched:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for pid in workers | set(_pids(marks)):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    result = _last_json(stdout)
    _assert_same_training(result, out, uninterrupted["ddp"], uninterrupted["ddp_dir"])
    _assert_same_training(result, out, uninterrupted["single"], uninterrupted["single_dir"])


def test_collectives_time_out_after_ten_minutes_or_the_environment_setting(monkeypatch):
    monkeypatch.delenv(ddp.TIMEOUT_ENV, raising=False)
    assert ddp.collective_timeout().total_seconds() == 600  # not gloo's 30 minutes
    monkeypatch.setenv(ddp.TIMEOUT_ENV, "45")
    assert ddp.collective_timeout().total_seconds() == 45
    for bad in ("0", "-5", "soon", "inf", "nan"):
        monkeypatch.setenv(ddp.TIMEOUT_ENV, bad)
        with pytest.raises(ConfigError, match=ddp.TIMEOUT_ENV):
            ddp.collective_timeout()


@pytest.mark.slow
def test_ddp_pretraining_of_an_encoder_already_in_mlflow_fetches_it_and_logs_no_second_run(uninterrupted, tmp_path):
    """Another machine (a fresh cache) runs the torchrun job of an encoder the store already has: every
    rank fetches the FINISHED run's encoder, nothing is trained and no second pretraining run is logged."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = _args(uninterrupted["data"], tmp_path / "unused")
    args = [a for a in args if a != "--no-mlflow"]
    at = args.index("--out")
    del args[at:at + 2]  # into the cache, where `run` looks
    args += ["--tracking-uri", uri]
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
        mp.setenv("SIMECG_CACHE", str(tmp_path / "cache-a"))
        assert main(args) == 0
    first = _last_json(out.getvalue())
    assert first["trained_now"] and first["run_id"]

    script = Path(sys.executable).with_name("simecg-bench")
    proc = subprocess.run(_torchrun(script, args), capture_output=True, text=True, env=_env(tmp_path / "cache-b"),
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    second = _last_json(proc.stdout)
    assert not second["trained_now"] and second["run_id"] == first["run_id"]
    assert second["fingerprint"] == first["fingerprint"]
    assert Path(second["checkpoint"]).read_bytes() == Path(first["checkpoint"]).read_bytes()
    client = mlflow.tracking.MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()], "tags.kind = 'pretrain'")
    assert [r.info.run_id for r in runs] == [first["run_id"]]
