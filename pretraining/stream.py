"""The pretraining data stream: any corpus, sharded over DataLoader workers and DDP ranks.

Everything a training step consumes is a pure function of ``(seed, step)``: which corpus items
form the global batch (a seeded permutation per pass over the corpus), and the noise that
decides which patches the MAE masks. A rank takes its slice of the global batch and a worker
takes every ``num_workers``-th step, so

* resuming at step ``s`` replays exactly the batches an uninterrupted run would have seen,
* ``n`` processes with a per-rank batch ``B / n`` see together exactly the global batch ``B``
  of a single process, and
* the number of workers changes speed, never data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from simecg.errors import ConfigError
from simecg.seeding import rng_for
from simecg.signal import zscore

if TYPE_CHECKING:  # importing the corpora package registers every built-in corpus; not needed here
    from pretraining.corpora.base import Corpus


class PretrainStream(IterableDataset):
    """Yields ``(signals, mask_noise)`` per training step for one rank (``mask_noise``: the method's draws).

    ``signals`` is float32 ``(batch_size // world_size, 1, L)`` z-scored per sample and
    ``mask_noise`` float32 ``(batch_size // world_size, num_patches)``. Training items are the
    corpus indices ``[0, train_size)``; the rest is left to the validation set.

    Args:
        corpus: any object with the :class:`~pretraining.corpora.base.Corpus` interface.
        batch_size: the *global* batch (all ranks together).
        seed: decides the sample order and the masks.
        num_patches: tokens per signal (the mask noise width).
        start_step, stop_step: the half-open range of steps to yield.
        train_size: how many leading corpus items are for training (default: all).
        rank, world_size: this process's place in a DDP job.
        draw: the pretraining method's random numbers of a step (``draw(rng, n)``:
            :meth:`~pretraining.methods.base.PretrainingMethod.draw`); ``num_patches`` uniform
            numbers per sample without it.
    """

    def __init__(
        self,
        corpus: Corpus,
        *,
        batch_size: int,
        seed: int,
        num_patches: int,
        start_step: int = 0,
        stop_step: int,
        train_size: int | None = None,
        rank: int = 0,
        world_size: int = 1,
        draw: Callable[[np.random.Generator, int], np.ndarray] | None = None,
    ):
        super().__init__()
        if batch_size % world_size:
            raise ConfigError(
                f"pretrain.batch_size {batch_size} must be divisible by the number of processes {world_size}"
            )
        self.corpus = corpus
        self.batch_size = batch_size
        self.seed = seed
        self.num_patches = num_patches
        self.start_step = start_step
        self.stop_step = stop_step
        self.train_size = len(corpus) if train_size is None else train_size
        if self.train_size <= 0:
            raise ConfigError(f"the corpus has no training items left (train_size={self.train_size})")
        self.rank = rank
        self.world_size = world_size
        self.draw = draw
        self._orders: dict[int, np.ndarray] = {}

    @property
    def local_batch_size(self) -> int:
        return self.batch_size // self.world_size

    def _order(self, epoch: int) -> np.ndarray:
        """The permutation of training items for pass ``epoch`` (cached: two passes at most)."""
        order = self._orders.get(epoch)
        if order is None:
            order = rng_for(self.seed, "pretrain-order", epoch).permutation(self.train_size)
            self._orders = {k: v for k, v in self._orders.items() if k >= epoch - 1}
            self._orders[epoch] = order
        return order

    def global_indices(self, step: int) -> np.ndarray:
        """Corpus indices of the whole global batch of ``step``."""
        positions = step * self.batch_size + np.arange(self.batch_size, dtype=np.int64)
        epochs, offsets = np.divmod(positions, self.train_size)
        out = np.empty(self.batch_size, dtype=np.int64)
        for epoch in np.unique(epochs):
            sel = epochs == epoch
            out[sel] = self._order(int(epoch))[offsets[sel]]
        return out

    def mask_noise(self, step: int) -> np.ndarray:
        """Mask noise of the whole global batch of ``step``: the method's random numbers (``draw``, e.g. the
        views of a contrastive method) or, without one, uniform noise per patch (the MAE's masks)."""
        rng = rng_for(self.seed, "pretrain-mask", step)
        if self.draw is not None:
            return self.draw(rng, self.batch_size)
        return rng.random((self.batch_size, self.num_patches), dtype=np.float32)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's share of step ``step``."""
        part = slice(self.rank * self.local_batch_size, (self.rank + 1) * self.local_batch_size)
        indices = self.global_indices(step)[part]
        signals = zscore(self.corpus.get_batch(indices))
        noise = self.mask_noise(step)[part]
        return torch.from_numpy(signals).unsqueeze(1), torch.from_numpy(np.ascontiguousarray(noise))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        for step in range(self.start_step + worker, self.stop_step, workers):
            yield self.batch(step)

    def __len__(self) -> int:
        return max(0, self.stop_step - self.start_step)


def make_loader(stream: PretrainStream, num_workers: int = 0, prefetch_factor: int = 2) -> DataLoader:
    """A DataLoader that yields the stream's steps in order (workers take steps round-robin)."""
    kwargs: dict = {}
    if num_workers > 0:
        kwargs = {"prefetch_factor": prefetch_factor, "persistent_workers": False}
    return DataLoader(stream, batch_size=None, num_workers=num_workers, pin_memory=torch.cuda.is_available(), **kwargs)
