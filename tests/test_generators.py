"""The ``vae`` and ``gan`` corpora: generators trained on PTB-XL training records only, resumable,
cached by identity, sampled deterministically per index."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from pretraining.config import PretrainConfig, corpus_options
from pretraining.generators import ptbxl_training_data, resolve_config, train_generator
from pretraining.generators.common import GENERATOR_FILE, read_file
from simecg.errors import ConfigError, DataMissingError
from simecg.registries import CORPORA

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("generators-cache")


@pytest.fixture(scope="module")
def data(shared_data: Path, cache: Path):
    return ptbxl_training_data(300, 0, shared_data, cache)


def corpus(name: str, shared_data: Path, cache: Path, size: int = 200, seed: int = 0, **options):
    entry = CORPORA.get(name)
    return entry(size=size, seed=seed, options=entry.Options(data_dir=str(shared_data), cache_dir=str(cache),
                                                             **{"preset": "tiny", **options}))


def test_vae_loss_falls_on_real_records(data, one_thread, tmp_path):
    config = resolve_config("vae", "tiny", {"steps": 30, "log_every": 1})
    result = train_generator(config, tmp_path / "vae", progress=False, data=data)
    losses = [h["loss"] for h in result.history]
    assert len(losses) == 30 and np.isfinite(losses).all()
    assert np.mean(losses[-5:]) < 0.96 * np.mean(losses[:5]), losses
    assert result.history[0]["kl_weight"] == pytest.approx(0.001)


@pytest.mark.parametrize("name", ["vae", "gan"])
def test_samples_are_finite_and_the_same_per_index_in_any_batch(name, shared_data, cache, one_thread, tmp_path):
    from pretraining.corpora.base import Corpus
    from pretraining.corpora.generated import CHUNK

    ecgs = corpus(name, shared_data, cache, steps=3)
    assert isinstance(ecgs, Corpus) and len(ecgs) == 200
    with pytest.raises(DataMissingError, match=f"generators train {name}"):
        ecgs.get_batch(np.arange(2))  # not prepared yet: a clear message, not a silent training
    folder = ecgs.prepare()
    assert folder.parent.parent == cache and (folder / GENERATOR_FILE).is_file() and ecgs.is_prepared()
    batch = ecgs.get_batch(np.arange(10))
    assert batch.shape == (10, 5000) and batch.dtype == np.float32 and np.isfinite(batch).all()
    assert not np.allclose(batch[0], batch[1])
    np.testing.assert_array_equal(ecgs.get_batch(np.array([7, 2])), batch[[7, 2]])
    crossing = np.random.default_rng(0).permutation(np.arange(CHUNK + 30))  # other rows, another chunk
    np.testing.assert_array_equal(ecgs.get_batch(crossing)[np.argsort(crossing)][:10], batch)
    copy = pickle.loads(pickle.dumps(ecgs))  # a DataLoader worker: no model or data travels
    assert copy._sampler is None and copy._data is None
    np.testing.assert_array_equal(copy.get_batch(np.arange(10)), batch)
    if name == "vae":  # `corpus build vae` once the generator is prepared: the same ECGs
        from pretraining.corpora.store import CorpusStore, build_store

        config = PretrainConfig(corpus=name, corpus_size=12, corpus_options=dict(
            data_dir=str(shared_data), cache_dir=str(cache), preset="tiny", steps=3))
        build_store(config, tmp_path / "store", workers=1, shard_size=5, progress=False)
        np.testing.assert_array_equal(CorpusStore.open(tmp_path / "store").get_batch(np.arange(10)), batch)
        stored = corpus(name, shared_data, cache, steps=3, path=str(tmp_path / "store"))
        assert stored.identity() == ecgs.identity()  # a store holds the same values
        np.testing.assert_array_equal(stored.get_batch(np.arange(10, 14)), ecgs.get_batch(np.arange(10, 14)))
        with pytest.raises(ConfigError, match="other ECGs"):
            corpus(name, shared_data, cache, seed=1, steps=3, path=str(tmp_path / "store")).get_batch(np.arange(2))


def test_no_test_record_reaches_a_generator_training_set(shared_data, cache, data):
    from benchmark.splits import make_split
    from benchmark.tasks import load_task, tasks_of

    paper = corpus("vae", shared_data, cache, preset="paper").training_data()  # every eligible record
    assert set(data.record_ids) <= set(paper.record_ids) and len(paper) > 100
    assert paper.identity["options"]["exclude_test_splits"] and paper.identity["options"]["lead"] == "II"
    for spec in tasks_of("ptbxl"):
        task = load_task(spec.name, shared_data, cache_dir=cache)
        test_ids = set(task.records["record_id"].astype(str).to_numpy()[make_split(task, "paper").test])
        assert test_ids and not test_ids & set(paper.record_ids), spec.name


class _Killer:
    """A logger that interrupts training (as Ctrl-C would) when step ``at`` is logged."""

    def __init__(self, at: int):
        self.at = at

    def log_metrics(self, metrics, step=None):
        if step == self.at:
            raise KeyboardInterrupt

    def log_figure(self, figure, artifact_file):
        pass


@pytest.mark.parametrize("name", ["vae", "gan"])
def test_killed_training_resumes_to_the_same_weights(name, data, one_thread, tmp_path):
    config = resolve_config(name, "tiny", {"steps": 6, "checkpoint_every": 2, "log_every": 1, "sample_every": 3})
    whole = train_generator(config, tmp_path / "whole", progress=False, data=data)
    with pytest.raises(KeyboardInterrupt):
        train_generator(config, tmp_path / "killed", _Killer(at=5), progress=False, data=data)
    assert not (tmp_path / "killed" / GENERATOR_FILE).exists()
    resumed = train_generator(config, tmp_path / "killed", progress=False, data=data)
    assert resumed.trained_now and resumed.fingerprint == whole.fingerprint
    assert resumed.history == whole.history
    a, b = read_file(whole.path)["sampler"], read_file(resumed.path)["sampler"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    again = train_generator(config, tmp_path / "killed", progress=False, data=data)
    assert not again.trained_now
    other = resolve_config(name, "tiny", {"steps": 6, "batch_size": 8})
    with pytest.raises(ConfigError, match="another generator"):
        train_generator(other, tmp_path / "killed", progress=False, data=data)


def test_generators_train_twice_trains_once(shared_data, tracking_uri, one_thread, capsys, tmp_path):
    from benchmark.cli import main
    from benchmark.tracking import Tracker

    argv = ["generators", "train", "vae", "--preset", "tiny", "--data-dir", str(shared_data),
            "--tracking-uri", tracking_uri, "--no-progress", "--json"]

    def train() -> dict:
        assert main(argv) == 0
        return json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    first = train()
    assert first["trained_now"] and first["run_id"] and Path(first["path"]).is_file()
    second = train()
    assert not second["trained_now"] and second["fingerprint"] == first["fingerprint"]
    tracker = Tracker(tracking_uri, suite="generators")
    runs = tracker.client.search_runs([tracker.experiment_id], "tags.kind = 'generator'")
    assert [r.info.status for r in runs] == ["FINISHED"] and runs[0].info.run_id == first["run_id"]
    assert {"loss", "recon_mse", "kl"} <= set(runs[0].data.metrics)
    artifacts = {a.path for a in tracker.client.list_artifacts(first["run_id"], "generator")}
    assert "generator/generator.pt" in artifacts
    assert tracker.client.list_artifacts(first["run_id"], "samples")
    shutil.rmtree(Path(first["folder"]))  # another machine: the FINISHED run's artifact is fetched
    third = train()
    assert not third["trained_now"] and Path(third["path"]).is_file()
    assert json.loads((Path(third["folder"]) / "identity.json").read_text())["fingerprint"] == first["fingerprint"]
    from simecg import integrity

    assert "generator/generator.pt.integrity.json" in artifacts and integrity.check_file(third["path"]) is None
    stored = Path(runs[0].info.artifact_uri.removeprefix("file://")) / "generator" / "generator.pt"
    stored.write_bytes(bytes(stored.stat().st_size))  # the stored copy damaged too: same size, other bytes
    shutil.rmtree(Path(first["folder"]))
    fourth = train()
    assert fourth["trained_now"] and integrity.check_file(fourth["path"]) is None  # trained again, not used


def test_corpus_identity_follows_the_generator_not_locations(shared_data, cache, tmp_path):
    from simecg.identity import IGNORED

    base = corpus("vae", shared_data, cache, steps=3)
    identity = base.identity()  # computable without a trained generator
    assert identity["name"] == "vae" and identity["size"] == 200 and identity["seed"] == 0
    assert identity["generator"]["payload"]["generator"]["steps"] == 3
    link = tmp_path / "data"
    link.symlink_to(shared_data)
    moved = corpus("vae", link, tmp_path / "elsewhere", steps=3)
    assert moved.identity() == identity  # where data and caches live is no part of it
    assert str(shared_data) not in json.dumps(identity) and str(cache) not in json.dumps(identity)
    for changed in (corpus("vae", shared_data, cache, steps=4),
                    corpus("vae", shared_data, cache, steps=3, generator={"kl_anneal_steps": 10}),
                    corpus("vae", shared_data, cache, steps=3, generator_seed=1),
                    corpus("vae", shared_data, cache, preset="paper", steps=3),
                    corpus("gan", shared_data, cache, steps=4)):
        assert changed.identity()["generator"]["fingerprint"] != identity["generator"]["fingerprint"]
        assert not changed.is_prepared()  # identities need no trained generator
    bookkeeping = corpus("vae", shared_data, cache, steps=3, generator={"checkpoint_every": 1, "log_every": 1})
    assert bookkeeping.identity() == identity
    assert corpus("vae", shared_data, cache, seed=1, steps=3).identity() != identity
    fields = {f for f in resolve_config("vae", "tiny").__dataclass_fields__}
    assert IGNORED["generator"] <= fields
    with pytest.raises(ConfigError, match=r"pretrain\.corpus_options\.generator\.colour"):
        corpus_options(PretrainConfig(corpus="vae", corpus_options={"generator": {"colour": 1}}))
    with pytest.raises(ConfigError, match="preset"):
        corpus_options(PretrainConfig(corpus="gan", corpus_options={"preset": "huge"}))
    options = corpus_options(PretrainConfig(corpus="gan", corpus_options={"generator.lr_d": "2e-4", "steps": "7"}))
    assert options.generator_config().lr_d == 2e-4 and options.generator_config().steps == 7
