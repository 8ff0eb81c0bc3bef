"""Materialized corpus stores: shards equal on-the-fly values, resume after a kill, mismatch refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmark.corpora.store import CorpusStore, build_store, stored_or_computed
from pretraining.config import PretrainConfig, build_corpus, encoder_identity
from simecg.errors import ConfigError, DataError, DataMissingError
from simecg.registries import CORPORA


class Killed(Exception):
    pass


def config(n: int, seed: int = 0, **options) -> PretrainConfig:
    """The ecgsyn corpus of ``n`` ECGs, as ``corpus build`` and ``pretrain`` describe it."""
    return PretrainConfig(corpus="ecgsyn", corpus_size=n, corpus_seed=seed, corpus_options=options)


def sim(n: int, seed: int = 0, **options):
    return build_corpus(config(n, seed, **options))


def test_store_holds_exactly_the_simulated_values(tmp_path):
    result = build_store(config(300, 1), tmp_path, workers=2, shard_size=128)
    assert (result.shards_total, result.shards_written, result.shards_skipped) == (3, 3, 0)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["complete"] and manifest["n"] == 300 and manifest["options"]["simulator"] == "ecgsyn"
    live = sim(400, 1)
    stored = sim(400, 1, path=str(tmp_path))
    idx = np.array([0, 127, 128, 299, 300, 399])  # beyond 300: simulated on the fly
    np.testing.assert_array_equal(stored.get_batch(idx), live.get_batch(idx))
    assert stored.identity() == live.identity()  # the store path is no part of the content
    assert encoder_identity(config(400, 1, path=str(tmp_path)), stored).fingerprint == \
        encoder_identity(config(400, 1), live).fingerprint


def test_a_computed_corpus_reads_what_its_store_holds_and_computes_only_the_rest():
    """The helper behind a plugin's ``get_batch``: stored indices from the store, the others computed."""
    asked: dict[str, list[int]] = {"store": [], "compute": []}

    def rows(indices, offset: float) -> np.ndarray:
        return np.repeat(np.asarray(indices, dtype=np.float32)[:, None] + offset, 5000, axis=1)

    class Store:  # holds ECGs 0..2 of the corpus, marked +100 so a read shows
        def __len__(self):
            return 3

        def get_batch(self, indices):
            asked["store"] += list(indices)
            return rows(indices, 100)

    def compute(indices):
        asked["compute"] += list(indices)
        return rows(indices, 0)

    out = stored_or_computed("toy", 6, [4, 0, 2, 5], compute, Store())
    assert out.dtype == np.float32 and out.shape == (4, 5000)
    assert out[:, 0].tolist() == [4, 100, 102, 5]
    assert asked == {"store": [0, 2], "compute": [4, 5]}
    assert stored_or_computed("toy", 6, [1], compute)[0, 0] == 1  # no store: everything computed
    with pytest.raises(ConfigError, match=r"toy corpus index out of range \[0, 6\): got 2..6"):
        stored_or_computed("toy", 6, [2, 6], compute)


def test_a_store_path_option_is_ignored_when_building(tmp_path):
    build_store(config(16, 3), tmp_path / "a", workers=1, shard_size=8)
    result = build_store(config(16, 3, path=str(tmp_path / "b")), tmp_path / "b", workers=1, shard_size=8)
    assert result.shards_written == 2  # built from the simulators, not from the (absent) store it names
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["options"]["path"] is None


def test_build_resumes_after_a_kill_keeping_finished_shards_and_never_doubling(tmp_path):
    def die_after_first(k):
        raise Killed

    with pytest.raises(Killed):
        build_store(config(200, 2), tmp_path, workers=1, shard_size=64, on_shard=die_after_first)
    assert not json.loads((tmp_path / "manifest.json").read_text())["complete"]
    with pytest.raises(DataError, match="incomplete"):
        CorpusStore.open(tmp_path)
    first = np.load(tmp_path / "shard-000000.npy").copy()
    mtime = (tmp_path / "shard-000000.npy").stat().st_mtime_ns
    written = []
    result = build_store(config(200, 2), tmp_path, workers=1, shard_size=64, on_shard=written.append)
    assert result.shards_skipped == 1 and result.shards_written == 3 and written == [1, 2, 3]
    assert (tmp_path / "shard-000000.npy").stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(np.load(tmp_path / "shard-000000.npy"), first)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"] + [f"shard-00000{k}.npy" for k in range(4)]
    again = build_store(config(200, 2), tmp_path, workers=1, shard_size=64)
    assert again.shards_written == 0
    live = sim(200, 2).get_batch(np.arange(200))
    np.testing.assert_array_equal(CorpusStore.open(tmp_path).get_batch(np.arange(200)), live)


def test_a_store_of_another_corpus_is_refused(tmp_path):
    build_store(config(10, 1), tmp_path, workers=1, shard_size=8)
    with pytest.raises(ConfigError, match=r"other ECGs than the requested corpus .*seed: 1 -> 2"):
        sim(10, 2, path=str(tmp_path))
    with pytest.raises(ConfigError, match=r"requested corpus .*simulators\.ecgsyn\.noise_mu: 1\.0 -> 0\.0"):
        sim(10, 1, path=str(tmp_path), ecgsyn={"noise_mu": 0})
    with pytest.raises(ConfigError, match="different corpus"):
        build_store(config(10, 2), tmp_path, workers=1, shard_size=8)
    with pytest.raises(DataMissingError, match="corpus build"):
        sim(10, path=str(tmp_path / "nowhere"))
    entry = CORPORA.get("ecgsyn")
    assert len(entry(size=12, seed=1, options=entry.Options(path=str(tmp_path)))) == 12
    with pytest.raises(ConfigError, match="name: 'ecgsyn' -> 'sim'"):  # a store of ecgsyn is not one of sim
        CORPORA.get("sim")(size=12, seed=1, options=CORPORA.get("sim").Options(simulator="ecgsyn", path=str(tmp_path)))


@pytest.mark.slow
def test_a_killed_build_process_resumes_without_redoing_finished_shards(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    code = (
        "from pretraining.config import PretrainConfig\n"
        "from benchmark.corpora.store import build_store\n"
        "build_store(PretrainConfig(corpus='ecgsyn', corpus_size=3000, corpus_seed=4), "
        f"{str(tmp_path)!r}, workers=1, shard_size=100, progress=False)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ})

    def recorded() -> dict:
        """The shards the manifest seals: a shard renamed into place is kept only once it is recorded."""
        try:
            return json.loads((tmp_path / "manifest.json").read_text()).get("files", {})
        except (OSError, ValueError):  # not written yet
            return {}

    deadline = time.time() + 120
    while len(recorded()) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = sorted(recorded())
    assert 2 <= len(kept) < 30
    # a shard written but killed before its manifest entry (at most one, with one worker) is redone
    assert len(list(tmp_path.glob("shard-*.npy"))) - len(kept) in (0, 1)
    before = {name: tmp_path.joinpath(name).stat().st_mtime_ns for name in kept}
    result = build_store(config(3000, 4), tmp_path, workers=2, shard_size=100, progress=False)
    assert result.shards_skipped == len(kept) and result.shards_written == 30 - len(kept)
    assert all(tmp_path.joinpath(name).stat().st_mtime_ns == mtime for name, mtime in before.items())
    assert not list(tmp_path.glob(".shard-*"))
    idx = np.array([0, 99, 100, 1234, 2999])
    np.testing.assert_array_equal(CorpusStore.open(tmp_path).get_batch(idx),
                                  sim(3000, 4).get_batch(idx))
