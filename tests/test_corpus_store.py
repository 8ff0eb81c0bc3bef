"""Materialized corpus stores: shards equal on-the-fly values, resume after a kill, mismatch refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pretraining.corpora.store import CorpusStore, build_store
from simecg.errors import ConfigError, DataError, DataMissingError
from simecg.registries import CORPORA


class Killed(Exception):
    pass


def test_store_holds_exactly_the_simulated_values(tmp_path):
    result = build_store("sim", 300, tmp_path, seed=1, workers=2, shard_size=128)
    assert (result.shards_total, result.shards_written, result.shards_skipped) == (3, 3, 0)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["complete"] and manifest["n"] == 300
    live = CORPORA.get("sim")(size=400, seed=1)
    stored = CORPORA.get("sim")(size=400, seed=1, path=str(tmp_path))
    idx = np.array([0, 127, 128, 299, 300, 399])  # beyond 300: simulated on the fly
    np.testing.assert_array_equal(stored.get_batch(idx), live.get_batch(idx))
    assert stored.identity() == live.identity()


def test_build_resumes_after_a_kill_keeping_finished_shards_and_never_doubling(tmp_path):
    def die_after_first(k):
        raise Killed

    with pytest.raises(Killed):
        build_store("sim", 200, tmp_path, seed=2, workers=1, shard_size=64, on_shard=die_after_first)
    assert not json.loads((tmp_path / "manifest.json").read_text())["complete"]
    with pytest.raises(DataError, match="incomplete"):
        CorpusStore.open(tmp_path)
    first = np.load(tmp_path / "shard-000000.npy").copy()
    mtime = (tmp_path / "shard-000000.npy").stat().st_mtime_ns
    written = []
    result = build_store("sim", 200, tmp_path, seed=2, workers=1, shard_size=64, on_shard=written.append)
    assert result.shards_skipped == 1 and result.shards_written == 3 and written == [1, 2, 3]
    assert (tmp_path / "shard-000000.npy").stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(np.load(tmp_path / "shard-000000.npy"), first)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"] + [f"shard-00000{k}.npy" for k in range(4)]
    again = build_store("sim", 200, tmp_path, seed=2, workers=1, shard_size=64)
    assert again.shards_written == 0
    live = CORPORA.get("sim")(size=200, seed=2).get_batch(np.arange(200))
    np.testing.assert_array_equal(CorpusStore.open(tmp_path).get_batch(np.arange(200)), live)


def test_a_store_of_another_corpus_is_refused(tmp_path):
    build_store("sim", 10, tmp_path, seed=1, workers=1, shard_size=8)
    with pytest.raises(ConfigError, match="requested corpus"):
        CORPORA.get("sim")(size=10, seed=2, path=str(tmp_path))
    with pytest.raises(ConfigError, match="different corpus"):
        build_store("sim", 10, tmp_path, seed=2, workers=1, shard_size=8)
    with pytest.raises(DataMissingError, match="corpus build"):
        CORPORA.get("sim")(size=10, path=str(tmp_path / "nowhere"))


@pytest.mark.slow
def test_a_killed_build_process_resumes_without_redoing_finished_shards(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    code = (
        "from pretraining.corpora.store import build_store\n"
        f"build_store('sim', 3000, {str(tmp_path)!r}, seed=4, workers=1, shard_size=100, progress=False)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ})
    deadline = time.time() + 120
    while len(list(tmp_path.glob("shard-*.npy"))) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = sorted(tmp_path.glob("shard-*.npy"))
    assert 2 <= len(finished) < 30
    before = {p.name: p.stat().st_mtime_ns for p in finished}
    result = build_store("sim", 3000, tmp_path, seed=4, workers=2, shard_size=100, progress=False)
    assert result.shards_skipped == len(finished) and result.shards_written == 30 - len(finished)
    assert all(tmp_path.joinpath(name).stat().st_mtime_ns == mtime for name, mtime in before.items())
    assert not list(tmp_path.glob(".shard-*"))
    idx = np.array([0, 99, 100, 1234, 2999])
    np.testing.assert_array_equal(CorpusStore.open(tmp_path).get_batch(idx),
                                  CORPORA.get("sim")(size=3000, seed=4).get_batch(idx))
