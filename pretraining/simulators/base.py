"""What every simulator provides, and the per-index seeding they share.

A simulator is a class registered in ``SIMULATORS`` with a frozen ``Config`` dataclass (the
paper's parameter distributions as defaults) and ``simulate(indices, seed)``. ECG ``i`` is a pure
function of (config, seed, i): every random draw of ECG ``i`` comes from its own stream keyed by
``(seed, purpose, i)``, so batch size, workers and machines never change a value. ECGSYN uses
numpy generators positioned per index (:func:`index_rngs`); the Gaussian simulator uses compiled
SplitMix64 streams (:mod:`pretraining.simulators.kernels`) under the same :func:`stream_key`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

import numpy as np

from simecg.errors import ConfigError

# Bump when a simulator's output for the same config changes: it is part of every simulated
# corpus's identity and of the demo tasks' data version, so stale corpora and caches are not reused.
SIMULATOR_VERSION = "4"  # 4: gaussian as the authors' gen_ecg.py/augment.py (template, levels, seven augmentations)


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


def index_rngs(indices: np.ndarray, seed: int, purpose: str) -> Iterator[np.random.Generator]:
    """A generator per ECG index whose draws depend on (seed, purpose, i) only.

    Same idea as :func:`simecg.seeding.rng_for` (a stream keyed by the item, not a shared
    stream), made cheap because simulators need one per ECG: a Philox counter-based generator
    keyed by a hash of (seed, purpose), whose 256-bit counter starts at ``i * 2**128``, so every
    index owns a disjoint block of the counter space. The same Generator object is re-positioned
    for each index: use its draws before advancing the iterator.
    """
    key = stream_key(seed, purpose)
    bit_generator = np.random.Philox(key=key)
    generator = np.random.Generator(bit_generator)
    key_words = np.array([key, 0], dtype=np.uint64)
    for i in indices:
        i = int(i)
        bit_generator.state = {
            "bit_generator": "Philox",
            "state": {"counter": np.array([0, 0, i & _MASK, i >> 64], dtype=np.uint64), "key": key_words},
            "buffer": np.zeros(4, dtype=np.uint64), "buffer_pos": 4, "has_uint32": 0, "uinteger": 0,
        }
        yield generator


_MASK = (1 << 64) - 1


def stream_key(seed: int, purpose: str) -> int:
    """The 64-bit key of the per-index streams for (seed, purpose): a hash, so nearby seeds differ."""
    return _mix64((int(seed) & _MASK) ^ (zlib.crc32(purpose.encode()) << 32))


def _mix64(z: int) -> int:
    """SplitMix64 finaliser on Python ints (a bijective 64-bit hash)."""
    z = (z + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)
