"""The pretraining stream: order and masks from (seed, step) only, sharded without changing data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pretraining.corpora.base import CorpusBase
from pretraining.stream import PretrainStream, make_loader
from simecg.errors import ConfigError


class IndexCorpus(CorpusBase):
    """ECG ``i`` is a sine whose frequency depends on ``i`` (distinct items, even after z-scoring)."""

    name = "index"

    def __init__(self, size: int):
        self.size = size
        self.requests: list[np.ndarray] = []

    def __len__(self) -> int:
        return self.size

    def get_batch(self, indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices)
        self.requests.append(indices)
        t = np.arange(5000, dtype=np.float32)
        return (np.sin(t[None, :] * (1 + indices[:, None]) * 1e-3) * (1 + indices[:, None])).astype(np.float32)

    def identity(self) -> dict:
        return {"name": self.name, "size": self.size}


def _collect(loader) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x.clone(), n.clone()) for x, n in loader]


def test_each_pass_covers_every_training_item_once_and_never_the_validation_items():
    stream = PretrainStream(IndexCorpus(60), batch_size=10, seed=3, num_patches=100, stop_step=10, train_size=50)
    seen = np.concatenate([stream.global_indices(s) for s in range(10)])
    assert sorted(seen[:50]) == list(range(50))
    assert sorted(seen[50:]) == list(range(50))
    assert not np.array_equal(seen[:50], seen[50:]), "each pass has its own order"
    assert seen.max() < 50


def test_signals_are_zscored_per_sample():
    stream = PretrainStream(IndexCorpus(20), batch_size=4, seed=0, num_patches=100, stop_step=1)
    x, noise = stream.batch(0)
    assert x.shape == (4, 1, 5000) and noise.shape == (4, 100)
    torch.testing.assert_close(x.mean(-1), torch.zeros(4, 1), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.std(-1, unbiased=False), torch.ones(4, 1), atol=1e-4, rtol=0)


def test_number_of_workers_changes_nothing():
    corpus = IndexCorpus(64)
    kwargs = dict(batch_size=8, seed=1, num_patches=100, stop_step=7)
    single = _collect(make_loader(PretrainStream(corpus, **kwargs), num_workers=0))
    multi = _collect(make_loader(PretrainStream(corpus, **kwargs), num_workers=2))
    assert len(single) == len(multi) == 7
    for (xa, na), (xb, nb) in zip(single, multi, strict=True):
        assert torch.equal(xa, xb) and torch.equal(na, nb)


def test_ranks_together_see_the_global_batch():
    corpus = IndexCorpus(64)
    kwargs = dict(batch_size=8, seed=1, num_patches=100, stop_step=3)
    whole = _collect(PretrainStream(corpus, **kwargs))
    parts = [_collect(PretrainStream(corpus, rank=r, world_size=2, **kwargs)) for r in range(2)]
    for step in range(3):
        assert torch.equal(torch.cat([parts[0][step][0], parts[1][step][0]]), whole[step][0])
        assert torch.equal(torch.cat([parts[0][step][1], parts[1][step][1]]), whole[step][1])


def test_starting_at_a_step_replays_the_same_batches():
    corpus = IndexCorpus(40)
    kwargs = dict(batch_size=6, seed=2, num_patches=100, stop_step=9)
    full = _collect(PretrainStream(corpus, **kwargs))
    resumed = _collect(PretrainStream(corpus, start_step=5, **kwargs))
    assert len(resumed) == 4
    for a, b in zip(full[5:], resumed, strict=True):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_seed_changes_order_and_masks():
    corpus = IndexCorpus(40)
    a = PretrainStream(corpus, batch_size=6, seed=0, num_patches=100, stop_step=1)
    b = PretrainStream(corpus, batch_size=6, seed=1, num_patches=100, stop_step=1)
    assert not np.array_equal(a.global_indices(0), b.global_indices(0))
    assert not np.array_equal(a.mask_noise(0), b.mask_noise(0))


def test_global_batch_must_split_evenly_over_ranks():
    with pytest.raises(ConfigError, match="divisible"):
        PretrainStream(IndexCorpus(10), batch_size=5, seed=0, num_patches=100, stop_step=1, world_size=2)
