"""Damaged caches are never used: data caches and corpus shards are rebuilt, encoders refetched.

Every cache file carries a size+hash manifest (:mod:`simecg.integrity`). These tests damage the
files the way the issue found them damaged (same-size noise, truncation, a manifest-less cache
of an older version) and check that the suite notices, says so in one warning naming the file,
and ends with the values of a clean build. Failed or killed builds leave no temporaries behind.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.data.tasks import load_task
from simecg import integrity

TASK = "ptbxl/AFIB"


def _noise_over(path: Path, seed: int = 0, skip: int = 0) -> None:
    """Overwrite ``path`` after its first ``skip`` bytes with seeded noise of the same size."""
    size = path.stat().st_size
    noise = np.random.default_rng(seed).integers(0, 256, size - skip, dtype=np.uint8).tobytes()
    with open(path, "r+b") as fh:
        fh.seek(skip)
        fh.write(noise)


def _dead_pid() -> int:
    """The pid of a process that has ended (a killed build's)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _task_arrays(data) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What a model sees of a task: its windows (in order), their records, the labels."""
    rows = np.flatnonzero(data.window_record >= 0)
    return np.asarray(data.signals[rows]), data.window_record[rows], np.asarray(data.labels)


def _temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if integrity.is_stale(p) or ".tmp" in p.name or ".fetch" in p.name]


# ---- data caches ---------------------------------------------------------------------------------

def test_a_data_cache_overwritten_with_noise_is_rebuilt_and_equals_a_clean_build(
        shared_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = tmp_path / "cache"
    first = load_task(TASK, shared_data, cache_dir=cache)
    clean = _task_arrays(first)
    signals = Path(first.signals.filename)
    del first
    _noise_over(signals)  # same size: only the hash can tell
    integrity.forget()  # as a new process would

    with caplog.at_level(logging.WARNING):
        again = load_task(TASK, shared_data, cache_dir=cache)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "damaged" in r.getMessage()]
    assert len(warnings) == 1 and str(signals.parent) in warnings[0] and "signals.f32" in warnings[0], warnings
    assert "content differs from its checksum" in warnings[0]
    for a, b in zip(_task_arrays(again), clean, strict=True):
        np.testing.assert_array_equal(a, b)
    fresh = load_task(TASK, shared_data, cache_dir=tmp_path / "fresh")
    for a, b in zip(_task_arrays(again), _task_arrays(fresh), strict=True):
        np.testing.assert_array_equal(a, b)
    assert again.data_version == fresh.data_version
    assert _temporaries(cache) == []

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_task(TASK, shared_data, cache_dir=cache)
    assert not [r for r in caplog.records if "damaged" in r.getMessage()], "a rebuilt cache is used silently"


def test_a_truncated_task_cache_and_a_cache_without_manifest_are_rebuilt(
        shared_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = tmp_path / "cache"
    clean = _task_arrays(load_task(TASK, shared_data, cache_dir=cache))
    (task_folder,) = (cache / "tasks" / "ptbxl").iterdir()
    window_record = task_folder / "window_record.npy"
    window_record.write_bytes(window_record.read_bytes()[:-40])
    (lead_folder,) = (cache / "datasets" / "ptbxl").iterdir()
    (lead_folder / integrity.FOLDER_MANIFEST).unlink()  # as a cache of an older version holds none

    with caplog.at_level(logging.WARNING):
        again = load_task(TASK, shared_data, cache_dir=cache)
    messages = " | ".join(r.getMessage() for r in caplog.records if "damaged" in r.getMessage())
    assert "window_record.npy" in messages and "(truncated)" in messages, messages
    assert f"no {integrity.FOLDER_MANIFEST} (written by an older version)" in messages, messages
    for a, b in zip(_task_arrays(again), clean, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_failed_build_leaves_no_temporary_and_a_killed_ones_is_swept(
        shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmark.data.ptbxl import PTBXL

    cache = tmp_path / "cache"
    parent = cache / "datasets" / "ptbxl"
    parent.mkdir(parents=True)
    killed = parent / f"II-0123.tmp{_dead_pid()}-{integrity.HOST}.0"  # what a SIGKILLed build leaves
    (killed / "sub").mkdir(parents=True)
    (killed / "signals.f32").write_bytes(b"half")
    live = parent / f"II-0123.tmp{os.getppid()}-{integrity.HOST}.0"  # a build still running
    live.mkdir()
    other_host = parent / f"II-0123.tmp{_dead_pid()}-00000000.0"  # a build on another machine
    other_host.mkdir()

    calls = {"n": 0}
    original = PTBXL.read

    def failing(self, row, leads):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("reader crashed")
        return original(self, row, leads)

    monkeypatch.setattr(PTBXL, "read", failing)
    with pytest.raises(RuntimeError, match="reader crashed"):
        load_task(TASK, shared_data, cache_dir=cache)
    assert sorted(p.name for p in parent.iterdir()) == sorted([live.name, other_host.name])  # own and dead: gone
    monkeypatch.setattr(PTBXL, "read", original)
    load_task(TASK, shared_data, cache_dir=cache)
    assert live.is_dir() and other_host.is_dir()


# ---- corpus stores -------------------------------------------------------------------------------

def _store(tmp_path: Path, n: int = 40, shard_size: int = 16):
    from benchmark.corpora.store import build_store
    from pretraining.config import PretrainConfig

    config = PretrainConfig(corpus="ecgsyn", corpus_size=n, corpus_seed=4)
    build_store(config, tmp_path / "store", workers=1, shard_size=shard_size)
    return config, tmp_path / "store"


def test_a_damaged_corpus_shard_is_rebuilt_on_read_and_by_a_rebuild(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from benchmark.corpora.store import build_store, shard_name
    from pretraining.config import build_corpus

    config, store = _store(tmp_path)
    live = build_corpus(config).get_batch(np.arange(40))
    shard = store / shard_name(1)
    _noise_over(shard, skip=128)  # the .npy header stays readable: the values are noise
    integrity.forget()
    stored = build_corpus(config.__class__(corpus="ecgsyn", corpus_size=40, corpus_seed=4,
                                           corpus_options={"path": str(store)}))
    with caplog.at_level(logging.WARNING):
        np.testing.assert_array_equal(stored.get_batch(np.arange(40)), live)
    warnings = [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()]
    assert len(warnings) == 1 and str(shard) in warnings[0], warnings
    manifest = json.loads((store / "manifest.json").read_text())
    assert integrity.check(shard, manifest["files"][shard.name]) is None  # written back, with its new entry
    np.testing.assert_array_equal(np.load(shard), live[16:32])

    shard.write_bytes(shard.read_bytes()[:1000])  # truncated: `corpus build` on the store rebuilds it alone
    written = []
    result = build_store(config, store, workers=1, shard_size=16, on_shard=written.append)
    assert written == [1] and result.shards_skipped == 2
    np.testing.assert_array_equal(np.load(shard), live[16:32])
    assert _temporaries(store) == []


def test_a_store_without_checksums_still_serves_the_right_values(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    from benchmark.corpora.store import CorpusStore
    from pretraining.config import build_corpus

    config, store = _store(tmp_path, n=20, shard_size=10)
    manifest = json.loads((store / "manifest.json").read_text())
    del manifest["files"]
    manifest["format"] = 1
    (store / "manifest.json").write_text(json.dumps(manifest))
    with caplog.at_level(logging.WARNING):
        opened = CorpusStore.open(store)
    assert any("has no checksums" in r.getMessage() for r in caplog.records)
    np.testing.assert_array_equal(opened.get_batch(np.arange(20)), build_corpus(config).get_batch(np.arange(20)))
    assert set(json.loads((store / "manifest.json").read_text())["files"]) == {"shard-000000.npy",
                                                                              "shard-000001.npy"}


def test_a_killed_shard_writer_leaves_a_temporary_the_next_build_sweeps(tmp_path: Path) -> None:
    from benchmark.corpora.store import build_store

    config, store = _store(tmp_path, n=20, shard_size=10)
    stale = store / f".shard-000001.npy.tmp{_dead_pid()}-{integrity.HOST}.3"
    stale.write_bytes(b"partial")
    assert build_store(config, store, workers=1, shard_size=10).shards_written == 0
    assert not stale.exists()


def test_the_sweep_takes_the_sqlite_journal_of_a_killed_store_build(tmp_path: Path) -> None:
    """A store built in a temporary database leaves ``<temp>-journal`` too when killed mid-write."""
    dead, alive = _dead_pid(), os.getppid()
    stale = [tmp_path / f".mlflow.db.tmp{dead}-{integrity.HOST}.1{suffix}" for suffix in ("", "-journal", "-wal")]
    live = tmp_path / f".mlflow.db.tmp{alive}-{integrity.HOST}.1-journal"
    for path in [*stale, live]:
        path.write_bytes(b"x")
    (tmp_path / "mlflow.db-journal").write_bytes(b"x")  # the real store's journal is never a temporary
    assert sorted(integrity.sweep(tmp_path)) == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "mlflow.db-journal"])


# ---- checkpoints and encoders --------------------------------------------------------------------

def test_a_damaged_latest_checkpoint_is_skipped_and_a_failed_save_leaves_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pretraining import checkpoint as ckpt

    for step in (4, 8):
        ckpt.atomic_save({"format": ckpt.FORMAT, "step": step}, ckpt.step_path(tmp_path, step))
    _noise_over(ckpt.step_path(tmp_path, 8))
    assert ckpt.latest_checkpoint(tmp_path) == ckpt.step_path(tmp_path, 4)
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [4]
    from simecg.errors import CheckpointError

    _noise_over(ckpt.step_path(tmp_path, 4))
    with pytest.raises(CheckpointError, match="is damaged"):
        ckpt.read(ckpt.step_path(tmp_path, 4))

    def interrupted(obj, fh):
        fh.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt.torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ckpt.atomic_save({"format": ckpt.FORMAT}, tmp_path / "encoder.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000004.pt", "step-00000004.pt.integrity.json"]


PRETRAIN = [
    "--preset", "tiny", "--set", "pretrain.steps=4", "--set", "pretrain.corpus_size=64", "--set",
    "pretrain.val_size=8", "--set", "pretrain.batch_size=8", "--set", "pretrain.val_every=4", "--set",
    "pretrain.checkpoint_every=4", "--set", "pretrain.num_workers=0", "--set", "pretrain.threads=1",
]


def _pretrain(uri: str, capsys: pytest.CaptureFixture) -> dict:
    from benchmark.cli import main

    assert main(["pretrain", "--corpus", "sim", "--tracking-uri", uri, "--no-progress", "--json", *PRETRAIN]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_truncated_encoder_is_refetched_from_mlflow_or_rebuilt_from_its_checkpoint(
        tracking_uri: str, capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture, one_thread,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIMECG_CACHE", str(tmp_path / "cache"))  # not an encoder another test already made
    made = _pretrain(tracking_uri, capsys)
    assert made["trained_now"] is True
    encoder = Path(made["checkpoint"])
    good = encoder.read_bytes()
    encoder.write_bytes(good[: len(good) // 2])
    integrity.forget()

    with caplog.at_level(logging.WARNING):
        again = _pretrain(tracking_uri, capsys)
    assert again["trained_now"] is False and again["run_id"] == made["run_id"]  # fetched, not trained
    assert encoder.read_bytes() == good
    warnings = [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()]
    assert len(warnings) == 1 and str(encoder) in warnings[0] and "truncated" in warnings[0], warnings
    assert "fetching it again" in warnings[0]
    assert _temporaries(encoder.parent) == []

    # no MLflow copy: the last training checkpoint gives the same weights back, without training
    from benchmark.cli import main

    encoder.write_bytes(good[:100])
    assert main(["pretrain", "--corpus", "sim", "--no-mlflow", "--no-progress", "--json", *PRETRAIN]) == 0
    capsys.readouterr()
    from pretraining import checkpoint as ckpt

    restored = ckpt.read(encoder)["encoder"]
    original = torch.load(__import__("io").BytesIO(good), weights_only=True)["encoder"]
    for name, value in original.items():
        assert torch.equal(restored[name], value), name


def _damage_weights(path: Path, how: str) -> None:
    """Rewrite an encoder file with damaged weights: one tensor off by a huge factor, or the lowest
    bit of 4,096 values flipped (a change no loss would show)."""
    data = torch.load(path, weights_only=True)
    name, tensor = next((k, v) for k, v in data["encoder"].items() if v.dtype == torch.float32 and v.numel() >= 4096)
    if how == "factor":
        data["encoder"][name] = tensor * 2.2e24
    else:
        bits = tensor.contiguous().view(torch.int32).clone()
        bits.view(-1)[:4096] ^= 1
        data["encoder"][name] = bits.view(torch.float32)
    torch.save(data, path)


@pytest.mark.slow
@pytest.mark.parametrize("sidecar", ["kept", "missing", "resealed"])
@pytest.mark.parametrize("how", ["factor", "lowest-bits"])
def test_an_encoder_damaged_in_the_store_is_never_fetched_into_the_cache(
        tracking_uri: str, capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture, one_thread,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str, sidecar: str) -> None:
    """The stored encoder.pt damaged, with its run's sidecar kept (it then disagrees), missing (a run
    of an older version: nothing to check it against) or resealed to match the damage (the run's
    recorded checksum still disagrees): the fetch is refused and the encoder trained again."""
    import mlflow

    monkeypatch.setenv("SIMECG_CACHE", str(tmp_path / "cache"))
    made = _pretrain(tracking_uri, capsys)
    client = mlflow.tracking.MlflowClient(tracking_uri)
    stored = Path(client.get_run(made["run_id"]).info.artifact_uri.removeprefix("file://")) / "encoder"
    _damage_weights(stored / "encoder.pt", how)
    if sidecar == "missing":  # as a run of an older version logged it: no sidecar, no checksum tag
        integrity.sidecar(stored / "encoder.pt").unlink()
        for key in client.get_run(made["run_id"]).data.tags:
            if key.startswith("checksum."):
                client.delete_tag(made["run_id"], key)
    elif sidecar == "resealed":
        integrity.seal_file(stored / "encoder.pt")
    damaged = integrity.digest(stored / "encoder.pt")

    monkeypatch.setenv("SIMECG_CACHE", str(tmp_path / "other-cache"))  # another machine
    with caplog.at_level(logging.WARNING):
        again = _pretrain(tracking_uri, capsys)
    assert again["trained_now"] is True  # refused, trained here
    assert integrity.digest(again["checkpoint"]) != damaged
    assert integrity.check_file(again["checkpoint"]) is None
    refused = [r.getMessage() for r in caplog.records if "could not fetch encoder" in r.getMessage()]
    assert len(refused) == 1 and "checksum" in refused[0], refused
