"""The real-data ``ptbxl`` pretraining corpus never holds a record of any test split."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.splits import make_split
from benchmark.tasks import load_task, tasks_of
from pretraining.corpora.base import Corpus
from simecg.errors import ConfigError
from simecg.registries import CORPORA

pytestmark = pytest.mark.realdata


def ptbxl(size=None, seed=0, **options):
    entry = CORPORA.get("ptbxl")
    return entry(size=size, seed=seed, options=entry.Options(**options))


def test_corpus_holds_only_training_records(shared_data, tmp_path):
    corpus = ptbxl(data_dir=shared_data, cache_dir=tmp_path)
    assert isinstance(corpus, Corpus) and len(corpus) > 100
    ids = set(corpus.record_ids)
    for spec in tasks_of("ptbxl"):
        data = load_task(spec.name, shared_data, cache_dir=tmp_path)
        test_ids = set(data.records["record_id"].to_numpy()[make_split(data, "paper").test])
        assert not ids & test_ids, spec.name
    from benchmark.registries import DATASETS

    index = DATASETS.get("ptbxl").index(shared_data).set_index("record_id")
    assert set(index.loc[list(ids), "strat_fold"]) <= set(range(1, 9))


def test_corpus_batches_are_raw_millivolts_and_deterministic(shared_data, tmp_path):
    corpus = ptbxl(20, 3, data_dir=shared_data, cache_dir=tmp_path)
    batch = corpus.get_batch(np.arange(20))
    assert batch.shape == (20, 5000) and batch.dtype == np.float32
    assert 0.05 < float(np.median(batch.std(axis=1))) < 2.0  # mV, not z-scored (std would be 1)
    np.testing.assert_array_equal(corpus.get_batch(np.array([7, 2])), batch[[7, 2]])
    again = ptbxl(20, 3, data_dir=shared_data, cache_dir=tmp_path)
    assert again.identity() == corpus.identity()
    identity = corpus.identity()
    assert identity["options"] == {"folds": list(range(1, 9)), "exclude_test_splits": True, "lead": "II"}
    assert str(shared_data) not in str(identity) and str(tmp_path) not in str(identity)  # no location
    other = ptbxl(20, 4, data_dir=shared_data, cache_dir=tmp_path)
    assert other.record_ids != corpus.record_ids
    import pickle

    payload = pickle.dumps(corpus)
    assert len(payload) < 20_000  # no ECG array travels to worker processes
    np.testing.assert_array_equal(pickle.loads(payload).get_batch(np.arange(20)), batch)


def test_corpus_rejects_impossible_sizes_and_unknown_options(shared_data, tmp_path):
    # the corpus size caps what the data holds: a paper-sized request takes every eligible record
    assert len(ptbxl(10**6, data_dir=shared_data, cache_dir=tmp_path)) == len(ptbxl(None, data_dir=shared_data,
                                                                                     cache_dir=tmp_path))
    with pytest.raises(ConfigError, match="size must be positive"):
        ptbxl(0, data_dir=shared_data, cache_dir=tmp_path)
    from pretraining.config import PretrainConfig, corpus_options

    with pytest.raises(ConfigError, match=r"unknown option pretrain\.corpus_options\.colour .*valid: cache_dir, "
                                          "data_dir, exclude_test_splits, folds, lead"):
        corpus_options(PretrainConfig(corpus="ptbxl", corpus_options={"colour": "red"}))
    options = corpus_options(PretrainConfig(corpus="ptbxl", corpus_options={"folds": "1-3", "data_dir": shared_data}))
    assert options.folds == (1, 2, 3) and options.data_dir == str(shared_data)
    with pytest.raises(ConfigError, match=r"pretrain\.corpus_options\.folds='x'"):
        corpus_options(PretrainConfig(corpus="ptbxl", corpus_options={"folds": "x"}))
