"""The real-data PTB-XL corpora on ../shared/data: ``ptbxl`` never holds a test record of the suite's split
(nor a duplicate signal of one) and brings its own validation set; ``ptbxl-authors`` is the authors' cut."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from benchmark.corpora.ptbxl import duplicate_signal_groups
from benchmark.data.splits import make_split
from benchmark.data.tasks import load_task, tasks_of
from pretraining.corpora.base import Corpus, validation_holdout
from simecg.errors import ConfigError, DataError
from simecg.registries import CORPORA

pytestmark = pytest.mark.realdata

SMOKE_TASKS = ("ptbxl/LVH", "ptbxl/LAFB")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory):
    """One cache for the module: the lead caches are built once."""
    return tmp_path_factory.mktemp("ptbxl-corpus-cache")


def ptbxl(size=None, seed=0, name="ptbxl", **options):
    entry = CORPORA.get(name)
    return entry(size=size, seed=seed, options=entry.Options(**options))


def records_in_test_splits(shared_data, cache, split="paper", test_seed=123, duplicates="group",
                           tasks=None) -> set[str]:
    out: set[str] = set()
    for spec in tasks_of("ptbxl"):
        if tasks is not None and spec.name not in tasks:
            continue
        try:
            data = load_task(spec.name, shared_data, cache_dir=cache)
        except DataError:  # a task without both classes has no test split
            continue
        out |= set(data.records["record_id"].astype(str).to_numpy()[
            make_split(data, split, test_seed=test_seed, duplicates=duplicates).test])
    return out




def test_the_shared_ptbxl_holds_two_pairs_of_byte_identical_records(shared_data, cache):
    assert duplicate_signal_groups(shared_data, cache) == [["137", "138"], ["143", "144"]]
    for a, b in (("137", "138"), ("143", "144")):  # the grouping follows the files' bytes
        files = [(shared_data / "ptbxl" / "records500" / "00000" / f"{int(r):05d}_hr.dat").read_bytes() for r in (a, b)]
        assert files[0] == files[1]


def test_ptbxl_holds_no_test_record_nor_duplicate_and_validates_on_records_it_never_trains_on(shared_data, cache):
    corpus = ptbxl(data_dir=shared_data, cache_dir=cache)
    assert isinstance(corpus, Corpus) and not corpus.sees_test_records
    train, val = corpus.record_ids[:corpus.train_size], corpus.record_ids[corpus.train_size:]
    assert len(val) == corpus.validation_size and not set(train) & set(val)
    assert abs(len(val) / len(corpus) - 0.2) < 0.02  # its own 80/20 cut
    test = records_in_test_splits(shared_data, cache)
    assert len(test) > 50 and not set(corpus.record_ids) & test
    for pair in (["137", "138"], ["143", "144"]):  # a duplicate signal is never split from its twin
        sides = {"train" if r in train else "val" if r in val else "out" for r in pair}
        assert len(sides) == 1, pair
    index = pd.read_csv(shared_data / "ptbxl" / "ptbxl_database.csv")
    assert len(corpus) + len(test) == len(index)  # every other record is used (folds 1-10)
    assert {10} <= set(index.set_index(index.ecg_id.astype(str)).loc[corpus.record_ids, "strat_fold"])


@pytest.mark.parametrize("split, test_seed", [("paper", 7), ("patient", 123)])
def test_ptbxl_keeps_out_the_test_records_of_the_split_it_is_given(shared_data, cache, split, test_seed):
    default = ptbxl(data_dir=shared_data, cache_dir=cache)
    corpus = ptbxl(data_dir=shared_data, cache_dir=cache, split=split, test_seed=test_seed)
    test = records_in_test_splits(shared_data, cache, split, test_seed)
    assert not set(corpus.record_ids) & test
    assert set(corpus.record_ids) != set(default.record_ids)
    assert corpus.identity()["options"]["split"] == split and corpus.identity()["options"]["test_seed"] == test_seed
    assert corpus.identity() != default.identity()
    if split == "patient":  # no record of a test patient either
        index = pd.read_csv(shared_data / "ptbxl" / "ptbxl_database.csv")
        patient = dict(zip(index.ecg_id.astype(str), index.patient_id, strict=True))
        assert not {patient[r] for r in corpus.record_ids} & {patient[r] for r in test}


def test_ptbxl_authors_is_exactly_the_authors_sklearn_cut_of_the_csv(shared_data, cache):
    corpus = ptbxl(name="ptbxl-authors", data_dir=shared_data, cache_dir=cache)
    ids = pd.read_csv(shared_data / "ptbxl" / "ptbxl_database.csv")["ecg_id"].tolist()  # their list: CSV order
    kept, held = train_test_split(np.array(ids), test_size=0.2, random_state=123)
    train, val = train_test_split(kept, test_size=0.2, random_state=7)
    assert set(corpus.record_ids[:corpus.train_size]) == {str(i) for i in train}  # every shared record is usable
    assert set(corpus.record_ids[corpus.train_size:]) == {str(i) for i in val}
    assert (corpus.train_size, corpus.validation_size) == (256, 64) and corpus.sees_test_records
    assert corpus.identity()["sees_test_records"] and corpus.identity()["options"]["holdout_seed"] == 123
    seen = {task: len(set(corpus.record_ids) & records_in_test_splits(shared_data, cache, tasks={task}))
            for task in SMOKE_TASKS}
    assert all(n > 0 for n in seen.values()), seen  # the authors pretrained on test records
    clean = ptbxl(data_dir=shared_data, cache_dir=cache)
    assert all(not set(clean.record_ids) & records_in_test_splits(shared_data, cache, tasks={t}) for t in SMOKE_TASKS)


def test_corpus_batches_are_raw_millivolts_and_deterministic(shared_data, cache):
    corpus = ptbxl(20, 3, data_dir=shared_data, cache_dir=cache)
    assert corpus.train_size == 20 and corpus.validation_size > 20  # size caps the training part only
    batch = corpus.get_batch(np.arange(20))
    assert batch.shape == (20, 5000) and batch.dtype == np.float32
    assert 0.05 < float(np.median(batch.std(axis=1))) < 2.0  # mV, not z-scored (std would be 1)
    np.testing.assert_array_equal(corpus.get_batch(np.array([7, 2])), batch[[7, 2]])
    again = ptbxl(20, 3, data_dir=shared_data, cache_dir=cache)
    assert again.identity() == corpus.identity()
    identity = corpus.identity()
    assert identity["options"] == {"folds": list(range(1, 11)), "exclude_test_splits": True, "split": "paper",
                                   "test_seed": 123, "duplicates": "group", "overlap": "both", "lengths": "exact",
                                   "val_fraction": 0.2, "val_seed": 7, "lead": "II"}
    assert str(shared_data) not in str(identity) and str(cache) not in str(identity)  # no location
    other = ptbxl(20, 4, data_dir=shared_data, cache_dir=cache)
    assert other.record_ids != corpus.record_ids
    import pickle

    payload = pickle.dumps(corpus)
    assert len(payload) < 20_000  # no ECG array travels to worker processes
    np.testing.assert_array_equal(pickle.loads(payload).get_batch(np.arange(20)), batch)
    assert validation_holdout(corpus, 5000) == (20, corpus.validation_size)  # pretraining validates on its own set


def test_corpus_rejects_impossible_sizes_and_unknown_options(shared_data, cache):
    # the corpus size caps what the data holds: a paper-sized request takes every eligible record
    assert len(ptbxl(10**6, data_dir=shared_data, cache_dir=cache)) == len(ptbxl(None, data_dir=shared_data,
                                                                                     cache_dir=cache))
    with pytest.raises(ConfigError, match="size must be positive"):
        ptbxl(0, data_dir=shared_data, cache_dir=cache)
    from pretraining.config import PretrainConfig, corpus_options

    valid = "cache_dir, classes, data_dir, duplicates, exclude_test_splits, folds, lead, lengths, overlap, split"
    with pytest.raises(ConfigError, match=rf"unknown option pretrain\.corpus_options\.colour .*valid: {valid}"):
        corpus_options(PretrainConfig(corpus="ptbxl", corpus_options={"colour": "red"}))
    options = corpus_options(PretrainConfig(corpus="ptbxl", corpus_options={"folds": "1-3", "data_dir": shared_data}))
    assert options.folds == (1, 2, 3) and options.data_dir == str(shared_data)
    with pytest.raises(ConfigError, match=r"pretrain\.corpus_options\.folds='x'"):
        corpus_options(PretrainConfig(corpus="ptbxl", corpus_options={"folds": "x"}))
    with pytest.raises(ConfigError, match=r"pretrain\.corpus_options\.split must be one of paper, patient"):
        corpus_options(PretrainConfig(corpus="ptbxl", corpus_options={"split": "random"}))
    with pytest.raises(ConfigError, match=r"pretrain\.corpus_options\.val_fraction must be > 0"):
        corpus_options(PretrainConfig(corpus="ptbxl-authors", corpus_options={"val_fraction": "0"}))


def test_generators_train_on_the_ptbxl_training_records_or_on_the_authors_seed_1_cut(shared_data, cache):
    from benchmark.corpora.generated import ptbxl_training_data

    clean = ptbxl(data_dir=shared_data, cache_dir=cache)
    data = ptbxl_training_data(0, 0, shared_data, cache)
    assert set(data.record_ids) == set(clean.record_ids[:clean.train_size])  # not its validation records
    assert data.signals().shape == (len(data), 5000)
    assert not set(data.record_ids) & records_in_test_splits(shared_data, cache)
    patient = ptbxl_training_data(0, 0, shared_data, cache, split={"split": "patient"})
    assert not set(patient.record_ids) & records_in_test_splits(shared_data, cache, "patient")
    assert patient.identity != data.identity
    authors = ptbxl_training_data(0, 0, shared_data, cache, records="authors")
    ids = pd.read_csv(shared_data / "ptbxl" / "ptbxl_database.csv")["ecg_id"].tolist()
    kept, _ = train_test_split(np.array(ids), test_size=0.2, random_state=123)
    train, _ = train_test_split(kept, test_size=0.2, random_state=1)  # src/dgms/codes/data/dataloader.py: seed=1
    assert set(authors.record_ids) == {str(i) for i in train} and authors.identity["sees_test_records"]
    with pytest.raises(ConfigError, match="records='some'"):
        ptbxl_training_data(0, 0, shared_data, cache, records="some")
    entry = CORPORA.get("vae")
    vae = entry(size=10, seed=0, options=entry.Options(preset="tiny", records="authors", data_dir=str(shared_data),
                                                       cache_dir=str(cache)))
    assert vae.sees_test_records and vae.identity()["sees_test_records"]
    assert vae.training_data().record_ids == authors.record_ids
