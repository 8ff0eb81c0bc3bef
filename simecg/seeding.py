"""Counter-based seeding: the random stream of item ``i`` depends only on (seed, i, purpose).

This is what makes ECG ``i`` of a corpus the same array whatever the batch size, number of
workers, processes or machines.
"""

from __future__ import annotations

import random
import zlib

import numpy as np


def _key(purpose: str) -> int:
    return zlib.crc32(purpose.encode())


def rng_for(seed: int, *keys: int | str) -> np.random.Generator:
    """A numpy Generator for ``(seed, *keys)``; strings are hashed to stable integers."""
    entropy = [int(seed) & 0xFFFFFFFF] + [_key(k) if isinstance(k, str) else int(k) & 0xFFFFFFFF for k in keys]
    return np.random.Generator(np.random.Philox(np.random.SeedSequence(entropy)))


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch global generators (for code we do not control)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
