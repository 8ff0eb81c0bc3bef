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
