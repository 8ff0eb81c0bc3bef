"""The corpora of the authors' further experiments on ../shared/data: the normal-only PTB-XL corpus of Exp14
(only NORM records, no test record) and G12EC as a pretraining source (``g12ec`` keeps every G12EC task's test
records out; ``g12ec-authors`` is the authors' sklearn cut of all of G12EC)."""

from __future__ import annotations

import ast

import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from benchmark.data.splits import make_split
from benchmark.data.tasks import load_task, tasks_of
from simecg.errors import ConfigError, DataError
from simecg.registries import CORPORA

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory):
    """One cache for the module: the lead caches are built once."""
    return tmp_path_factory.mktemp("experiment-corpus-cache")


def corpus(name, size=None, seed=0, **options):
    entry = CORPORA.get(name)
    return entry(size=size, seed=seed, options=entry.Options(**options))


def test_records(shared_data, cache, dataset) -> set[str]:
    """Every record some task of ``dataset`` tests on (split paper, test seed 123), found from the tasks."""
    out: set[str] = set()
    for spec in tasks_of(dataset):
        try:
            data = load_task(spec.name, shared_data, cache_dir=cache)
        except DataError:  # a task without both classes has no test split
            continue
        out |= set(data.records["record_id"].astype(str).to_numpy()[make_split(data, "paper", test_seed=123).test])
    return out


test_records.__test__ = False  # a helper, not a test


def test_normal_only_ptbxl_holds_only_norm_records_and_no_test_record(shared_data, cache):
    normal = corpus("ptbxl", data_dir=shared_data, cache_dir=cache, classes="normal")
    everything = corpus("ptbxl", data_dir=shared_data, cache_dir=cache)
    db = pd.read_csv(shared_data / "ptbxl" / "ptbxl_database.csv")
    norm = {str(e) for e, codes in zip(db["ecg_id"], db["scp_codes"], strict=True)
            if ast.literal_eval(codes).get("NORM", 0) >= 100}
    ids = set(normal.record_ids)
    assert ids and ids <= norm  # training and validation records alike
    assert not ids & test_records(shared_data, cache, "ptbxl")
    assert ids == set(everything.record_ids) & norm  # the same records as `ptbxl` would take, less the others
    assert normal.identity()["options"]["classes"] == "normal"
    assert "classes" not in everything.identity()["options"]  # the default leaves the identity as it was
    assert normal.identity()["records"] != everything.identity()["records"]


def test_a_normal_only_corpus_caps_at_the_size_asked(shared_data, cache):
    small = corpus("ptbxl", 20, data_dir=shared_data, cache_dir=cache, classes="normal")
    assert small.train_size == 20 and small.validation_size > 0


def test_corpus_classes_must_be_all_or_normal():
    with pytest.raises(ConfigError, match="classes"):
        CORPORA.get("ptbxl").Options(classes="abnormal")
    with pytest.raises(ConfigError, match="classes"):
        CORPORA.get("g12ec").Options(classes="sick")


def test_g12ec_keeps_every_g12ec_test_record_out_and_validates_on_its_own_records(shared_data, cache):
    g12ec = corpus("g12ec", data_dir=shared_data, cache_dir=cache)
    tested = test_records(shared_data, cache, "g12ec")
    assert tested, "the shared G12EC subset should hold test records of some task"
    assert g12ec.train_size > 0 and g12ec.validation_size > 0
    assert not set(g12ec.record_ids) & tested
    assert not set(g12ec.record_ids[:g12ec.train_size]) & set(g12ec.record_ids[g12ec.train_size:])
    assert not g12ec.sees_test_records
    batch = g12ec.get_batch([0, 1])
    assert batch.shape == (2, 5000) and batch.dtype.name == "float32"


def test_g12ec_authors_is_their_sklearn_cut_of_the_five_thousand_sample_records(shared_data, cache):
    authors = corpus("g12ec-authors", data_dir=shared_data, cache_dir=cache)
    everything = corpus("g12ec", data_dir=shared_data, cache_dir=cache, exclude_test_splits=False, val_fraction=0.5)
    listed = sorted(everything.record_ids)  # usable records of one window, in file-name order as their sorted glob
    kept, _ = train_test_split(listed, test_size=0.2, random_state=123)
    train, val = train_test_split(kept, test_size=0.2, random_state=7)
    assert sorted(authors.record_ids[:authors.train_size]) == sorted(train)
    assert sorted(authors.record_ids[authors.train_size:]) == sorted(val)
    assert authors.sees_test_records and set(authors.record_ids) & test_records(shared_data, cache, "g12ec")


def test_the_authors_normal_only_corpus_is_their_sklearn_cut_of_the_norm_list(shared_data, cache):
    authors = corpus("ptbxl-authors", data_dir=shared_data, cache_dir=cache, classes="normal")
    db = pd.read_csv(shared_data / "ptbxl" / "ptbxl_database.csv")
    norm = [str(e) for e, codes in zip(db["ecg_id"], db["scp_codes"], strict=True)
            if ast.literal_eval(codes).get("NORM", 0) >= 100]  # their PTBXL-NORM list, in CSV order
    kept, _ = train_test_split(norm, test_size=0.2, random_state=123)
    train, val = train_test_split(kept, test_size=0.2, random_state=7)
    assert sorted(authors.record_ids[:authors.train_size]) == sorted(train)
    assert sorted(authors.record_ids[authors.train_size:]) == sorted(val)
    assert authors.sees_test_records and authors.identity()["options"]["classes"] == "normal"
