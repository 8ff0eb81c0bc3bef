"""The ``sim`` corpus: registry factory, option coercion, identity, determinism, mixture."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pretraining.corpora.base import Corpus
from simecg.errors import ConfigError
from simecg.registries import CORPORA


def test_factory_builds_an_ecgsyn_corpus_by_default_with_text_options():
    corpus = CORPORA.get("sim")(size="50", seed="3")
    assert isinstance(corpus, Corpus)
    assert corpus.name == "sim" and len(corpus) == 50
    batch = corpus.get_batch(np.array([0, 49]))
    assert batch.dtype == np.float32 and batch.shape == (2, 5000)
    identity = corpus.identity()
    assert json.loads(json.dumps(identity)) == identity
    assert identity["simulator"] == "ecgsyn" and identity["weights"] == {"ecgsyn": 1.0}


def test_identity_changes_with_seed_and_simulator_settings_but_not_with_path_or_instances():
    make = CORPORA.get("sim")
    base = make(size=10, seed=0).identity()["config_hash"]
    assert make(size=10, seed=0).identity()["config_hash"] == base
    assert make(size=10, seed=1).identity()["config_hash"] != base
    assert make(size=10, seed=0, **{"ecgsyn.noise_mu": "0"}).identity()["config_hash"] != base


def test_get_batch_is_the_same_in_any_batching():
    corpus = CORPORA.get("sim")(size=20, seed=2)
    whole = corpus.get_batch(np.arange(20))
    np.testing.assert_array_equal(whole[[3, 17, 8]], corpus.get_batch(np.array([3, 17, 8])))


def test_simulator_settings_reach_the_simulator():
    corpus = CORPORA.get("sim")(size=4, seed=0, **{"ecgsyn.noise_mu": "0", "ecgsyn.noise_sd": "0"})
    x = corpus.get_batch(np.arange(4))
    assert np.allclose(x.max(axis=1), 1.2, atol=0.05)  # clean: the scaled range, no noise on top


def test_unknown_options_and_out_of_range_indices_are_config_errors():
    make = CORPORA.get("sim")
    with pytest.raises(ConfigError, match="unknown option"):
        make(size=5, colour="blue")
    with pytest.raises(ConfigError, match="simulator"):
        make(size=5, simulator="brownian")
    with pytest.raises(ConfigError, match="out of range"):
        make(size=5).get_batch(np.array([5]))
    with pytest.raises(ConfigError, match="ecgsyn.noise_mu"):
        make(size=5, **{"ecgsyn.noise_mu": "loud"})


def test_mixture_follows_its_weights_and_reuses_each_simulators_ecgs():
    make = CORPORA.get("sim")
    mixed = make(size=2000, seed=5, simulator="mixture", weights="ecgsyn=0.3,gaussian=0.7")
    which = mixed.assignment(np.arange(2000))
    assert abs((which == 1).mean() - 0.7) < 0.04
    idx = np.flatnonzero(which == 0)[:3]
    np.testing.assert_array_equal(mixed.get_batch(idx), make(size=2000, seed=5).get_batch(idx))
    gidx = np.flatnonzero(which == 1)[:3]
    np.testing.assert_array_equal(mixed.get_batch(gidx), make(size=2000, seed=5, simulator="gaussian").get_batch(gidx))
    assert make(size=10, simulator="mixture", weights="1,3").weights == {"ecgsyn": 0.25, "gaussian": 0.75}
    with pytest.raises(ConfigError, match="weights"):
        make(size=10, simulator="mixture", weights="ecgsyn=-1")


def test_preview_figure_shows_parameters_of_each_ecg():
    from pretraining.simulators.preview import preview_figure

    corpus = CORPORA.get("sim")(size=100, seed=0, simulator="mixture")
    fig = preview_figure(corpus, n=4, seed=1)
    titles = [ax.get_title(loc="left") for ax in fig.axes if ax.get_title(loc="left")]
    assert len(titles) == 4 and all("simulator=" in t for t in titles)
    assert any("hr_mean=" in t or "beat_length=" in t for t in titles)
