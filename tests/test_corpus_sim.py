"""The ``sim`` corpus: registered class, typed options, identity, determinism, mixture."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from pretraining.config import PretrainConfig, build_corpus, corpus_options
from pretraining.corpora.base import Corpus
from simecg.config import apply_overrides
from simecg.errors import ConfigError
from simecg.registries import CORPORA


def make(size: int, seed: int = 0, **options):
    """The ecgsyn corpus as every command builds it: ``options`` as ``pretrain.corpus_options`` (text allowed)."""
    return build_corpus(PretrainConfig(corpus="ecgsyn", corpus_size=size, corpus_seed=seed, corpus_options=options))


def test_sim_is_simecg_n_and_ecgsyn_its_own_corpus():
    sim = CORPORA.get("sim")(size=20, seed=3)
    assert sim.name == "sim" and sim.options.simulator == "gaussian"  # SimECG-N, the study's main corpus
    assert set(sim.identity()["simulators"]) == {"gaussian"}
    ecgsyn = CORPORA.get("ecgsyn")(size=20, seed=3)
    assert ecgsyn.identity()["name"] == "ecgsyn" != sim.identity()["name"]
    # the same simulator and settings under both names are still two corpora (two identities)
    as_sim = build_corpus(PretrainConfig(corpus="sim", corpus_size=20, corpus_seed=3,
                                         corpus_options={"simulator": "ecgsyn"}))
    assert np.array_equal(as_sim.get_batch(np.arange(3)), ecgsyn.get_batch(np.arange(3)))
    assert as_sim.identity() != ecgsyn.identity()


def test_registered_ecgsyn_class_builds_an_ecgsyn_corpus_by_default():
    entry = CORPORA.get("ecgsyn")
    assert dataclasses.is_dataclass(entry.Options) and entry.Options().simulator == "ecgsyn"
    corpus = entry(size=50, seed=3, options=entry.Options())
    assert isinstance(corpus, Corpus)
    assert corpus.name == "ecgsyn" and len(corpus) == 50
    batch = corpus.get_batch(np.array([0, 49]))
    assert batch.dtype == np.float32 and batch.shape == (2, 5000)
    identity = corpus.identity()
    assert json.loads(json.dumps(identity)) == identity
    assert identity["weights"] == {"ecgsyn": 1.0} and set(identity["simulators"]) == {"ecgsyn"}
    assert (identity["size"], identity["seed"]) == (50, 3)


def test_options_resolve_from_cli_text_and_toml_tables():
    config = apply_overrides(PretrainConfig(), {"corpus_options.gaussian.augment_rate": "0",
                                                "corpus_options.simulator": " Mixture", "corpus_seed": "3"})
    assert config.corpus_options == {"gaussian": {"augment_rate": 0}, "simulator": " Mixture"}
    options = corpus_options(config)
    assert isinstance(options, CORPORA.get("sim").Options)
    assert options.simulator == "mixture" and options.gaussian.augment_rate == 0.0
    table = corpus_options(PretrainConfig(corpus_options={"weights": {"ecgsyn": 1, "gaussian": 3},
                                                          "simulator": "mixture", "ecgsyn.noise_mu": 0}))
    assert table.ecgsyn.noise_mu == 0.0
    assert build_corpus(dataclasses.replace(PretrainConfig(corpus_size=5), corpus_options={
        "weights": {"ecgsyn": 1, "gaussian": 3}, "simulator": "mixture"})).weights == {"ecgsyn": 0.25, "gaussian": 0.75}


def test_identity_changes_with_seed_and_simulator_settings_but_not_with_instances():
    base = make(10, 0).identity()
    assert make(10, 0).identity() == base
    assert make(10, 1).identity() != base
    assert make(10, 0, **{"ecgsyn.noise_mu": "0"}).identity() != base
    assert make(10, 0, gaussian={"augment_rate": 0}).identity() == base  # gaussian is not used
    assert make(10, 0, simulator="mixture", weights="ecgsyn=1,gaussian=0").identity() == base  # same ECGs


def test_get_batch_is_the_same_in_any_batching():
    corpus = CORPORA.get("sim")(size=20, seed=2, options=None)
    whole = corpus.get_batch(np.arange(20))
    np.testing.assert_array_equal(whole[[3, 17, 8]], corpus.get_batch(np.array([3, 17, 8])))


def test_simulator_settings_reach_the_simulator():
    corpus = make(4, 0, **{"ecgsyn.noise_mu": "0", "ecgsyn.noise_sd": "0"})
    x = corpus.get_batch(np.arange(4))
    assert np.allclose(x.max(axis=1), 1.2, atol=0.05)  # clean: the scaled range, no noise on top


def test_unknown_options_and_out_of_range_indices_are_config_errors():
    with pytest.raises(ConfigError, match=r"unknown option pretrain\.corpus_options\.colour .*"
                                          r"valid: ecgsyn, gaussian, path, simulator, weights"):
        make(5, colour="blue")
    with pytest.raises(ConfigError, match=r"pretrain\.corpus_options\.ecgsyn\.loudness; valid: .*noise_mu"):
        make(5, ecgsyn={"loudness": 1})
    with pytest.raises(ConfigError, match="pretrain.corpus_options.simulator='brownian'"):
        make(5, simulator="brownian")
    with pytest.raises(ConfigError, match="out of range"):
        make(5).get_batch(np.array([5]))
    with pytest.raises(ConfigError, match=r"pretrain\.corpus_options\.ecgsyn\.noise_mu: expected a number"):
        make(5, **{"ecgsyn.noise_mu": "loud"})
    with pytest.raises(ConfigError, match=r"pretrain\.corpus_options\.ecgsyn is a table"):
        make(5, ecgsyn="3")
    with pytest.raises(ConfigError, match="weights"):
        CORPORA.get("sim").Options(weights="ecgsyn=x")  # checked when the options are made, mixture or not


def test_mixture_follows_its_weights_and_reuses_each_simulators_ecgs():
    mixed = make(2000, 5, simulator="mixture", weights="ecgsyn=0.3,gaussian=0.7")
    which = mixed.assignment(np.arange(2000))
    assert abs((which == 1).mean() - 0.7) < 0.04
    idx = np.flatnonzero(which == 0)[:3]
    np.testing.assert_array_equal(mixed.get_batch(idx), make(2000, 5).get_batch(idx))
    gidx = np.flatnonzero(which == 1)[:3]
    np.testing.assert_array_equal(mixed.get_batch(gidx), make(2000, 5, simulator="gaussian").get_batch(gidx))
    assert make(10, simulator="mixture", weights="1,3").weights == {"ecgsyn": 0.25, "gaussian": 0.75}
    with pytest.raises(ConfigError, match="weights"):
        make(10, simulator="mixture", weights="ecgsyn=-1")


def test_preview_figure_shows_parameters_of_each_ecg():
    from pretraining.simulators.preview import preview_figure

    corpus = make(100, 0, simulator="mixture")
    fig = preview_figure(corpus, n=4, seed=1)
    titles = [ax.get_title(loc="left") for ax in fig.axes if ax.get_title(loc="left")]
    assert len(titles) == 4 and all("simulator=" in t for t in titles)
    assert any("hr_mean=" in t or "beat_length=" in t for t in titles)
