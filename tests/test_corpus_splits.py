"""How the real-data corpora choose records, without data: the authors' sklearn cuts, cuts that keep
identical signals together, a corpus's own validation set, and the suite's split reaching the corpus."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from benchmark.corpora.ptbxl import authors_split, cut_together
from benchmark.suites.config import load_suite, with_split_settings
from pretraining.config import PretrainConfig
from pretraining.corpora.base import CorpusBase, validation_holdout
from simecg.errors import ConfigError


def test_authors_split_is_their_two_sklearn_calls_on_the_list_in_order():
    ids = [str(i) for i in range(1, 21_800)]  # PTB-XL's ecg_id 1..21799, as their prep lists them
    train, val, held = authors_split(ids)
    kept, held_ref = train_test_split(np.arange(len(ids)), test_size=0.2, random_state=123)  # on the ECG array
    train_ref, val_ref = train_test_split(kept, test_size=0.2, random_state=7)
    assert train == [ids[i] for i in train_ref] and val == [ids[i] for i in val_ref]
    assert held == [ids[i] for i in held_ref]
    assert (len(train), len(val), len(held)) == (13_951, 3_488, 4_360)  # 64% / 16% / 20%
    assert set(train) | set(val) | set(held) == set(ids) and not set(train) & set(val)
    generators, generators_val, _ = authors_split(ids, val_seed=1)  # the authors' generators: split seed 1
    assert set(generators) | set(generators_val) == set(train) | set(val) and set(generators) != set(train)
    shuffled = list(reversed(ids))  # the cut depends on the order of the list, as theirs did
    assert authors_split(shuffled)[0] != train


def test_cut_together_keeps_identical_signals_on_one_side_and_is_sklearn_without_them():
    rows = np.arange(1000)
    plain = np.arange(1000)  # every record its own signal
    kept, held = cut_together(rows, plain, 0.2, 7)
    ref_kept, ref_held = train_test_split(rows, test_size=0.2, random_state=7)
    np.testing.assert_array_equal(held, np.sort(ref_held))
    np.testing.assert_array_equal(kept, np.sort(ref_kept))
    anchors = plain.copy()
    anchors[1::2] = anchors[0::2]  # pairs (0, 1), (2, 3), ... share a signal
    for seed in range(5):
        kept, held = cut_together(rows, anchors, 0.2, seed)
        assert len(kept) + len(held) == 1000 and abs(len(held) - 200) <= 2
        assert set(held.tolist()) == {r ^ 1 for r in held.tolist()}  # a pair is never cut


class _Corpus(CorpusBase):
    name = "fake"

    def __init__(self, n: int, own: int | None = None):
        self.n, self.validation_size = n, own

    def __len__(self) -> int:
        return self.n


def test_pretraining_validates_on_a_corpus_own_validation_set_when_it_has_one():
    assert validation_holdout(_Corpus(1000), 100) == (900, 100)  # simulators: the last val_size ECGs
    with pytest.raises(ConfigError, match="leaves too little"):
        validation_holdout(_Corpus(100), 60)
    assert validation_holdout(_Corpus(1000, own=300), 5000) == (700, 300)  # the whole own set
    assert validation_holdout(_Corpus(1000, own=300), 64) == (700, 64)  # val_size caps the cost only
    assert validation_holdout(_Corpus(1000, own=300), 0) == (700, 0)
    with pytest.raises(ConfigError, match="validation_size 1000 must leave training ECGs"):
        validation_holdout(_Corpus(1000, own=1000), 10)


def test_the_suite_split_reaches_corpora_that_keep_test_records_out():
    suite = load_suite("demo", {"split": "patient", "test_seed": "9", "duplicates": "ignore"})
    for corpus in ("ptbxl", "vae", "gan"):
        config = with_split_settings(PretrainConfig(corpus=corpus), suite)
        assert {k: config.corpus_options[k] for k in ("split", "test_seed", "duplicates")} == {
            "split": "patient", "test_seed": 9, "duplicates": "ignore"}, corpus
    for corpus in ("sim", "ptbxl-authors"):  # no test split to follow
        assert with_split_settings(PretrainConfig(corpus=corpus), suite).corpus_options == {}
    agreeing = PretrainConfig(corpus="ptbxl", corpus_options={"split": "patient", "test_seed": "9"})
    assert with_split_settings(agreeing, suite).corpus_options["test_seed"] == 9
    with pytest.raises(ConfigError, match=r"corpus_options\.split='paper' \(corpus ptbxl\) differs from the suite's "
                                          r"split='patient'"):
        with_split_settings(PretrainConfig(corpus="ptbxl", corpus_options={"split": "paper"}), suite)
    source = load_suite("demo", {"test_seed": "5"}).source_config("ptbxl")  # how `run` builds a source
    assert source.corpus_options["test_seed"] == 5
