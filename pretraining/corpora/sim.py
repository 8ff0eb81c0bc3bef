"""The ``sim`` corpus: simulator ECGs (ECGSYN, Gaussian-composition, or a mixture), any size.

ECG ``i`` is a pure function of (simulator configs, seed, i), so the corpus needs no storage:
any worker, DataLoader process or DDP rank computes any slice on the fly. ``path=DIR`` reads
a store materialized by ``simecg-bench corpus build sim`` (:mod:`pretraining.corpora.store`)
instead; the store only caches the same values (its manifest must carry the same identity),
and indices beyond the stored ones are simulated, so a store never changes what the corpus is.

Options (values may be CLI text): ``simulator`` = ``ecgsyn`` (default, the paper's main
corpus) | ``gaussian`` | ``mixture``; ``weights`` for the mixture, ``"ecgsyn=0.5,gaussian=0.5"``
(or ``"0.5,0.5"`` in that order, or a dict); ``path``; and simulator settings as dotted keys,
e.g. ``ecgsyn.noise_mu=0`` or ``gaussian.augment_rate=0``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pretraining.simulators.base import SIMULATOR_VERSION
from simecg.config import apply_overrides, stable_hash, to_dict
from simecg.errors import ConfigError
from simecg.registries import CORPORA, SIMULATORS
from simecg.signal import N_SAMPLES

log = logging.getLogger(__name__)

SIMULATOR_NAMES = ("ecgsyn", "gaussian")


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A fast, vectorised integer hash (SplitMix64 finaliser), for per-index uniform draws."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def index_uniform(indices: np.ndarray, seed: int, salt: int = 0x5EED) -> np.ndarray:
    """A uniform [0, 1) number per index that depends only on (seed, index, salt)."""
    key = _splitmix64(np.asarray([(int(seed) << 20) ^ salt], dtype=np.uint64))[0]
    with np.errstate(over="ignore"):
        h = _splitmix64(np.asarray(indices, dtype=np.uint64) ^ key)
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def parse_weights(value: Any) -> dict[str, float]:
    """Mixture proportions from a dict, ``"ecgsyn=0.7,gaussian=0.3"`` or ``"0.7,0.3"``; normalised."""
    if isinstance(value, Mapping):
        raw = {str(k): v for k, v in value.items()}
    else:
        parts = value if isinstance(value, (list, tuple)) else [p for p in str(value).split(",") if p.strip()]
        if all("=" in str(p) for p in parts):
            raw = dict(str(p).split("=", 1) for p in parts)
        elif len(parts) == len(SIMULATOR_NAMES):
            raw = dict(zip(SIMULATOR_NAMES, parts, strict=True))
        else:
            raise ConfigError(
                f"sim corpus option weights={value!r}: expected 'ecgsyn=W,gaussian=W' or two numbers 'W,W'"
            )
    weights: dict[str, float] = {}
    for name, w in raw.items():
        name = name.strip()
        if name not in SIMULATOR_NAMES:
            raise ConfigError(f"sim corpus option weights: unknown simulator {name!r}; known: {SIMULATOR_NAMES}")
        try:
            weights[name] = float(w)
        except (TypeError, ValueError):
            raise ConfigError(f"sim corpus option weights: {name}={w!r} is not a number") from None
        if weights[name] < 0:
            raise ConfigError(f"sim corpus option weights: {name}={w} must be >= 0")
    total = sum(weights.values())
    if total <= 0:
        raise ConfigError(f"sim corpus option weights={value!r}: weights must sum to a positive number")
    return {n: weights.get(n, 0.0) / total for n in SIMULATOR_NAMES}


class SimCorpus:
    """Simulated lead II ECGs on demand; see the module docstring for the options."""

    name = "sim"

    def __init__(
        self,
        size: int = 1_000_000,
        seed: int = 0,
        simulator: str = "ecgsyn",
        weights: Any = "ecgsyn=0.5,gaussian=0.5",
        path: str | Path | None = None,
        simulator_overrides: Mapping[str, Mapping[str, Any]] | None = None,
    ):
        if size < 0:
            raise ConfigError(f"sim corpus size must be >= 0, got {size}")
        self.size = int(size)
        self.seed = int(seed)
        self.simulator = simulator
        if simulator == "mixture":
            self.weights = parse_weights(weights)
        elif simulator in SIMULATOR_NAMES:
            self.weights = {n: float(n == simulator) for n in SIMULATOR_NAMES}
        else:
            raise ConfigError(
                f"sim corpus option simulator={simulator!r}: expected one of ecgsyn, gaussian, mixture"
            )
        overrides = dict(simulator_overrides or {})
        unknown = sorted(set(overrides) - set(SIMULATOR_NAMES))
        if unknown:
            raise ConfigError(f"sim corpus: unknown simulator settings for {unknown}; known: {SIMULATOR_NAMES}")
        self.simulators = {}
        for sim_name in SIMULATOR_NAMES:
            if self.weights[sim_name] > 0 or sim_name in overrides:
                cls = SIMULATORS.get(sim_name)
                try:
                    config = apply_overrides(cls.Config(), overrides.get(sim_name, {}))
                except ConfigError as exc:
                    raise ConfigError(f"sim corpus option {sim_name}.{exc}") from None
                self.simulators[sim_name] = cls(config)
        self.store = None
        if path is not None:
            from pretraining.corpora.store import CorpusStore

            self.store = CorpusStore.open(Path(path))
            self.store.check_matches(self.content_identity())

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return f"SimCorpus(size={self.size}, seed={self.seed}, simulator={self.simulator!r})"

    def content_identity(self) -> dict[str, Any]:
        """What determines every ECG's values (no size, no path): the store checks this."""
        used = {n: w for n, w in self.weights.items() if w > 0}
        return {
            "name": self.name,
            "seed": self.seed,
            "weights": used,
            "simulators": {n: to_dict(self.simulators[n].config) for n in used},
            "code_version": SIMULATOR_VERSION,
        }

    def identity(self) -> dict[str, Any]:
        content = self.content_identity()
        return {
            **content,
            "size": self.size,
            "simulator": self.simulator,
            "config_hash": stable_hash(content),
            "length": N_SAMPLES,
            "data_version": stable_hash(content),
        }

    def assignment(self, indices: np.ndarray) -> np.ndarray:
        """Which simulator makes each ECG (position in SIMULATOR_NAMES), fixed per (seed, index)."""
        u = index_uniform(indices, self.seed)
        edges = np.cumsum([self.weights[n] for n in SIMULATOR_NAMES])
        return np.minimum(np.searchsorted(edges, u, side="right"), len(SIMULATOR_NAMES) - 1)

    def get_batch(self, indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size and (indices.min() < 0 or indices.max() >= self.size):
            raise ConfigError(
                f"sim corpus index out of range [0, {self.size}): got {indices.min()}..{indices.max()}"
            )
        out = np.empty((len(indices), N_SAMPLES), dtype=np.float32)
        todo = np.ones(len(indices), dtype=bool)
        if self.store is not None:
            stored = indices < len(self.store)
            if stored.any():
                out[stored] = self.store.get_batch(indices[stored])
            todo &= ~stored
        if todo.any():
            out[todo] = self.simulate(indices[todo])
        return out

    def describe(self, indices: np.ndarray) -> list[dict[str, Any]]:
        """Simulator and drawn parameters of each ECG (for previews): ``[{"simulator": ..., ...}]``."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        out: list[dict[str, Any]] = [{} for _ in indices]
        which = self.assignment(indices)
        for k, sim_name in enumerate(SIMULATOR_NAMES):
            rows = np.flatnonzero(which == k)
            if not len(rows):
                continue
            _, params = self.simulators[sim_name].simulate_with_parameters(indices[rows], self.seed)
            scalars = {key: v for key, v in params.items() if isinstance(v, np.ndarray) and v.ndim == 1}
            for j, row in enumerate(rows):
                out[row] = {"simulator": sim_name, **{key: float(v[j]) for key, v in scalars.items()}}
        return out

    def simulate(self, indices: np.ndarray) -> np.ndarray:
        """Compute ECGs at ``indices`` with their assigned simulators (ignores any store)."""
        out = np.empty((len(indices), N_SAMPLES), dtype=np.float32)
        which = self.assignment(indices)
        for k, sim_name in enumerate(SIMULATOR_NAMES):
            mask = which == k
            if mask.any():
                out[mask] = self.simulators[sim_name].simulate(indices[mask], self.seed)
        return out


def split_options(options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Separate plain options from dotted simulator settings (``ecgsyn.noise_mu`` -> overrides)."""
    plain: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for key, value in options.items():
        head, dot, rest = key.partition(".")
        if dot:
            nested.setdefault(head, {})[rest] = value
        elif isinstance(value, Mapping) and key in SIMULATOR_NAMES:
            nested.setdefault(key, {}).update(value)
        else:
            plain[key] = value
    return plain, nested


@CORPORA.register("sim", description="simulated lead II ECGs: ECGSYN, Gaussian-composition beats, or a mixture")
def sim(size: int = 1_000_000, seed: int = 0, **options: Any) -> SimCorpus:
    """Simulated lead II ECGs: ECGSYN (default), Gaussian-composition beats, or a mixture; any size.

    Options (CLI text is coerced): simulator, weights, path, ecgsyn.<setting>, gaussian.<setting>.
    """
    from simecg.config import coerce

    plain, nested = split_options(options)
    allowed = {"simulator", "weights", "path"}
    unknown = sorted(set(plain) - allowed)
    if unknown:
        raise ConfigError(
            f"sim corpus: unknown option(s) {', '.join(unknown)}; valid: simulator, weights, path, "
            "ecgsyn.<setting>, gaussian.<setting>"
        )
    return SimCorpus(
        size=coerce(size, int, "size"),
        seed=coerce(seed, int, "seed"),
        simulator=str(plain.get("simulator", "ecgsyn")).strip().lower(),
        weights=plain.get("weights", "ecgsyn=0.5,gaussian=0.5"),
        path=plain.get("path"),
        simulator_overrides=nested,
    )
