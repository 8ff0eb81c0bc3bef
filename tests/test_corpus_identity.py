"""Corpus content identities: they change exactly when the ECGs do, and options have one dialect."""

from __future__ import annotations

import argparse
import json
import os
import shutil

import numpy as np
import pytest

import benchmark.corpora.folder as folder_module
import benchmark.corpora.sim as sim_module
from benchmark.corpora.store import build_store
from benchmark.suites.config import route_set
from pretraining.config import PretrainConfig, build_corpus, corpus_options, encoder_identity
from simecg.errors import ConfigError

HOUR_NS = 3600 * 10**9


def sim_config(**options) -> PretrainConfig:
    """A simulator corpus whose default simulator is ECGSYN (so Gaussian settings are unused)."""
    return PretrainConfig(corpus="ecgsyn", corpus_size=20, corpus_seed=1, corpus_options=options)


def folder_config(path, **options) -> PretrainConfig:
    return PretrainConfig(corpus="folder", corpus_size=100, corpus_options={"path": str(path), **options})


def _age(path, ns_ago: int = HOUR_NS) -> None:
    """Date every file under ``path`` back, as an unchanged folder is (its digests may then be cached)."""
    when = os.stat(path).st_mtime_ns - ns_ago
    for file in path.rglob("*"):
        os.utime(file, ns=(when, when))


def _write_folder(path) -> None:
    path.mkdir(parents=True)
    rows = np.sin(np.linspace(0, 200, 2 * 5000)).astype(np.float32).reshape(2, 5000)
    np.save(path / "a.npy", rows)
    (path / "sub").mkdir()
    np.save(path / "sub" / "b.npy", 2 * rows[0])


# ---- sim -------------------------------------------------------------------------------------

def test_sim_identity_follows_simulator_settings_and_version_not_the_store_path(tmp_path, monkeypatch):
    base = build_corpus(sim_config()).identity()
    assert base["name"] == "ecgsyn" and (base["size"], base["seed"]) == (20, 1)
    assert json.loads(json.dumps(base)) == base and str(tmp_path) not in json.dumps(base)
    assert build_corpus(sim_config(ecgsyn={"hr_mean_mu": 70})).identity() != base
    assert build_corpus(sim_config(simulator="gaussian")).identity() != base

    build_store(sim_config(), tmp_path / "store", workers=1, shard_size=8)
    assert build_corpus(sim_config(path=str(tmp_path / "store"))).identity() == base

    monkeypatch.setattr(sim_module, "SIMULATOR_VERSION", "999")
    assert build_corpus(sim_config()).identity() != base


def test_encoder_fingerprint_carries_the_corpus_options_through_the_identity(tmp_path):
    build_store(sim_config(), tmp_path / "store", workers=1, shard_size=8)
    plain = encoder_identity(sim_config()).fingerprint
    assert encoder_identity(sim_config(path=str(tmp_path / "store"))).fingerprint == plain
    assert encoder_identity(sim_config(gaussian={"augment_rate": 0})).fingerprint == plain  # unused simulator
    assert encoder_identity(sim_config(ecgsyn={"noise_mu": 0})).fingerprint != plain


# ---- folder ----------------------------------------------------------------------------------

def test_folder_identity_follows_content_not_location(tmp_path):
    _write_folder(tmp_path / "ecgs")
    _age(tmp_path / "ecgs")
    first = build_corpus(folder_config(tmp_path / "ecgs")).identity()
    assert set(first["files"]) == {"a.npy", "sub/b.npy"} and str(tmp_path) not in json.dumps(first)
    assert (first["name"], first["size"], first["lead"], first["fs"], first["skip_bad"]) == ("folder", 3, "II",
                                                                                              500.0, False)

    shutil.copytree(tmp_path / "ecgs", tmp_path / "elsewhere" / "copy")
    assert build_corpus(folder_config(tmp_path / "elsewhere" / "copy")).identity() == first
    assert encoder_identity(folder_config(tmp_path / "elsewhere" / "copy")).fingerprint == \
        encoder_identity(folder_config(tmp_path / "ecgs")).fingerprint

    file = tmp_path / "ecgs" / "sub" / "b.npy"
    size = file.stat().st_size
    array = np.load(file)
    array[100] += 1.0
    np.save(file, array)  # same size, other content
    assert file.stat().st_size == size
    changed = build_corpus(folder_config(tmp_path / "ecgs")).identity()
    assert changed["files"]["sub/b.npy"] != first["files"]["sub/b.npy"]
    assert changed["files"]["a.npy"] == first["files"]["a.npy"] and changed != first

    assert build_corpus(folder_config(tmp_path / "ecgs", fs=250)).identity() != changed  # options count too


def test_folder_identity_hashes_wfdb_signal_files(tmp_path):
    import wfdb

    ecgs = tmp_path / "ecgs"
    ecgs.mkdir()
    signal = np.sin(np.linspace(0, 60, 5000))[:, None]
    wfdb.wrsamp("r1", fs=500, units=["mV"], sig_name=["II"], p_signal=signal, fmt=["16"], adc_gain=[1000.0],
                baseline=[0], write_dir=str(ecgs))
    before = build_corpus(folder_config(ecgs)).identity()
    assert set(before["files"]) == {"r1.hea", "r1.dat"}
    data = bytearray((ecgs / "r1.dat").read_bytes())
    data[100:110] = bytes(10)
    (ecgs / "r1.dat").write_bytes(bytes(data))  # the signal changes, its header does not
    after = build_corpus(folder_config(ecgs)).identity()
    assert after["files"]["r1.hea"] == before["files"]["r1.hea"]
    assert after["files"]["r1.dat"] != before["files"]["r1.dat"]


def test_folder_digests_are_cached_and_a_corrupt_cache_is_rewritten(tmp_path, monkeypatch):
    _write_folder(tmp_path / "ecgs")
    _age(tmp_path / "ecgs")
    expected = build_corpus(folder_config(tmp_path / "ecgs")).identity()
    cache = folder_module.digest_cache_path(tmp_path / "ecgs")
    assert cache.parent.name == "hashes" and cache.is_file()

    calls = []
    real = folder_module.integrity.digest
    monkeypatch.setattr(folder_module.integrity, "digest", lambda path: calls.append(path) or real(path))
    assert build_corpus(folder_config(tmp_path / "ecgs")).identity() == expected
    assert calls == []  # a new corpus on an unchanged folder reads no file content

    cache.write_text("{not json")
    assert build_corpus(folder_config(tmp_path / "ecgs")).identity() == expected
    assert len(calls) == 2
    assert set(json.loads(cache.read_text())["files"]) == {str((tmp_path / "ecgs" / n).resolve())
                                                           for n in ("a.npy", "sub/b.npy")}

    calls.clear()
    file = tmp_path / "ecgs" / "a.npy"
    mtime = file.stat().st_mtime_ns + 10**9  # modified later, but long ago: its new digest may be cached
    np.save(file, np.tile(np.linspace(-1, 1, 5000, dtype=np.float32), (2, 1)))
    os.utime(file, ns=(mtime, mtime))
    assert build_corpus(folder_config(tmp_path / "ecgs")).identity() != expected
    assert [p.name for p in calls] == ["a.npy"]  # only the changed file is read again


def test_a_freshly_written_file_is_not_trusted_from_the_cache(tmp_path, monkeypatch):
    _write_folder(tmp_path / "ecgs")  # mtimes are now: a rewrite in the same clock tick would keep them
    build_corpus(folder_config(tmp_path / "ecgs")).identity()
    calls = []
    real = folder_module.integrity.digest
    monkeypatch.setattr(folder_module.integrity, "digest", lambda path: calls.append(path) or real(path))
    build_corpus(folder_config(tmp_path / "ecgs")).identity()
    assert len(calls) == 2


# ---- options and the --set dialect -----------------------------------------------------------

def test_unknown_or_mistyped_corpus_options_name_the_key_and_the_valid_ones(tmp_path):
    with pytest.raises(ConfigError, match=r"pretrain\.corpus_options\.colour .*valid: fs, lead, path, skip_bad"):
        corpus_options(folder_config(tmp_path, colour="red"))
    with pytest.raises(ConfigError, match=r"pretrain\.corpus_options\.simulater .*valid: ecgsyn, gaussian, path, "
                                          "simulator, weights"):
        corpus_options(sim_config(simulater="gaussian"))
    with pytest.raises(ConfigError, match=r"pretrain\.corpus_options\.gaussian\.augment_rate: expected a number"):
        corpus_options(sim_config(gaussian={"augment_rate": "often"}))
    with pytest.raises(ConfigError, match=r"pretrain\.corpus_options\.fs: expected a number"):
        corpus_options(folder_config(tmp_path, fs="fast"))


def test_the_pretrain_scope_takes_only_pretrain_keys():
    def pretrain_overrides(items):
        return route_set(items, "pretrain")["pretrain"]

    assert pretrain_overrides(["pretrain.steps=100", "pretrain.corpus_options.path=/d", "pretrain.model.depth=2"]) == \
        {"steps": "100", "corpus_options.path": "/d", "model.depth": "2"}
    assert pretrain_overrides([]) == {}
    with pytest.raises(ConfigError, match=r"only pretrain\.\* keys.*pretrain\.corpus_options\.path=DIR"):
        pretrain_overrides(["finetune.lr=1"])
    with pytest.raises(ConfigError, match=r"only pretrain\.\* keys"):
        pretrain_overrides(["steps=1"])
    with pytest.raises(ConfigError, match="key=value"):
        pretrain_overrides(["pretrain.steps"])


def test_one_router_gives_each_scope_its_keys_and_refuses_the_others():
    items = ["pretrain.corpus_options.simulator=gaussian", "finetune.lr=1e-3"]
    assert route_set(items, "suite") == {"suite": {"pretrain.corpus_options.simulator": "gaussian",
                                                   "finetune.lr": "1e-3"}}
    assert route_set(items[:1], "corpus") == {"pretrain": {"corpus_options.simulator": "gaussian"}}
    with pytest.raises(ConfigError, match=r"corpus commands take only pretrain\.corpus_options\.\*"):
        route_set(["pretrain.steps=3"], "corpus")
    with pytest.raises(ConfigError, match=r"did you mean --set pretrain\.corpus_options\.lead=II\?"):
        route_set(["lead=II"], "corpus")
    with pytest.raises(ConfigError, match=r"corpus commands take only"):
        route_set(["sources.sim.steps=3"], "corpora", ["sim"])  # a source's table holds only its options
    with pytest.raises(ValueError, match="unknown --set scope"):
        route_set([], "everything")


def test_pretrain_command_config_uses_the_suite_dialect(tmp_path):
    from benchmark.commands.pretrain import build_config

    def args(*items, corpus=None):
        return argparse.Namespace(overrides=list(items), corpus=corpus, preset=None, steps=None)

    config = build_config(args(f"pretrain.corpus_options.path={tmp_path}", "pretrain.corpus_options.fs=250",
                               corpus="folder"))
    assert config.corpus == "folder" and config.corpus_options == {"path": str(tmp_path), "fs": 250}
    assert corpus_options(config).fs == 250.0
    with pytest.raises(ConfigError, match=r"only pretrain\.\* keys"):
        build_config(args("corpus_options.path=/x"))
    with pytest.raises(ConfigError, match=r"pretrain\.corpus_options\.leads"):
        build_config(args("pretrain.corpus_options.leads=II", corpus="folder"))
