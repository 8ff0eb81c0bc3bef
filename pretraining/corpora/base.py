"""What every pretraining corpus provides: indexed, deterministic, single-lead ECGs.

A corpus is a factory registered in ``CORPORA`` that returns an object with this interface.
ECG ``i`` of a corpus is a pure function of (corpus config, seed, i), so any worker, rank or
machine can produce any slice of it without coordination.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Corpus(Protocol):
    """An indexable collection of lead II, 500-Hz, 10-s ECGs (raw amplitude, not z-scored)."""

    name: str

    def __len__(self) -> int:
        """Number of ECGs in the corpus."""
        ...

    def get_batch(self, indices: np.ndarray) -> np.ndarray:
        """ECGs at ``indices`` as float32 ``(len(indices), 5000)``; same values in any batching."""
        ...

    def identity(self) -> dict[str, Any]:
        """JSON-ready description (name, config, seed, size, data version) hashed into fingerprints."""
        ...
