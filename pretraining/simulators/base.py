"""What every simulator provides, and the per-index seeding they share.

A simulator is a class registered in ``SIMULATORS`` with a frozen ``Config`` dataclass (the
paper's parameter distributions as defaults) and ``simulate(indices, seed)``. ECG ``i`` is a pure
function of (config, seed, i): every random draw of ECG ``i`` comes from its own counter-based
generator ``rng_for(seed, i, name)``, so batch size, workers and machines never change a value.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from simecg.errors import ConfigError
from simecg.seeding import rng_for


@runtime_checkable
class Simulator(Protocol):
    """A batched ECG simulator: lead II, 500 Hz, 10 s, millivolts."""

    name: str
    config: Any

    def simulate(self, indices: np.ndarray, seed: int) -> np.ndarray:
        """ECGs at ``indices`` as float32 ``(len(indices), 5000)``."""
        ...

    def simulate_with_parameters(self, indices: np.ndarray, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The ECGs and the per-ECG parameters drawn for them (for previews and tests)."""
        ...


def as_indices(indices: Any) -> np.ndarray:
    """Validate corpus indices: a 1-D array of non-negative integers."""
    arr = np.asarray(indices)
    if arr.ndim == 0:
        arr = arr[None]
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise ConfigError(f"indices must be a 1-D integer array, got shape {arr.shape} dtype {arr.dtype}")
    if arr.size and arr.min() < 0:
        raise ConfigError(f"indices must be non-negative, got min {arr.min()}")
    return arr.astype(np.int64)


def index_rngs(indices: np.ndarray, seed: int, purpose: str) -> list[np.random.Generator]:
    """One independent generator per ECG index (counter-based: depends on (seed, i, purpose) only)."""
    return [rng_for(seed, int(i) & 0xFFFFFFFF, int(i) >> 32, purpose) for i in indices]
