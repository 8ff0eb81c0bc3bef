"""The simulator corpora, any size: ``sim`` (SimECG-N, the study's main corpus) and ``ecgsyn``.

``sim`` is SimECG-N: the Gaussian-composition beat simulator with the authors' parameters and
augmentations (:mod:`pretraining.simulators.gaussian`), the corpus of the paper's main "SimECG"
model. ``ecgsyn`` is the ECGSYN corpus (McSharry et al. 2003), a second simulator source the study
compares beside the generative ones. Both are the same class with another default simulator (and
another name, so they never share an identity); ``simulator = "mixture"`` mixes the two.

ECG ``i`` is a pure function of (simulator configs, seed, i), so the corpus needs no storage:
any worker, DataLoader process or DDP rank computes any slice on the fly. ``path=DIR`` reads
a store materialized by ``simecg-bench corpus build sim`` (:mod:`benchmark.corpora.store`)
instead; the store only caches the same values (its manifest must carry the same content
identity), and indices beyond the stored ones are simulated, so a store never changes what the
corpus is (nor its identity).

Options (:class:`SimOptions`, set as ``pretrain.corpus_options.<key>``; CLI text is converted):
``simulator`` = ``gaussian`` (default of ``sim``) | ``ecgsyn`` (default of ``ecgsyn``) | ``mixture``;
``weights`` for the mixture, ``"ecgsyn=0.5,gaussian=0.5"`` (or ``"0.5,0.5"`` in that order, or a
TOML table); ``path``; and each simulator's settings as a nested table, e.g.::

    simecg-bench corpus build sim --n 1000 --out DIR --set pretrain.corpus_options.gaussian.augment_rate=0
    simecg-bench pretrain --corpus ecgsyn --set pretrain.corpus_options.ecgsyn.noise_mu=0

    [pretrain.corpus_options]          # in a suite
    simulator = "mixture"
    weights = "ecgsyn=0.7,gaussian=0.3"
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.corpora.store import CorpusStore, stored_or_computed
from pretraining.corpora.base import STORE_PATH, CorpusBase
from pretraining.simulators.base import SIMULATOR_VERSION
from pretraining.simulators.ecgsyn import EcgSynConfig
from pretraining.simulators.gaussian import GaussianBeatConfig
from simecg.config import to_dict
from simecg.errors import ConfigError
from simecg.registries import SIMULATORS
from simecg.signal import N_SAMPLES

log = logging.getLogger(__name__)

SIMULATOR_NAMES = ("ecgsyn", "gaussian")
SIMULATOR_CHOICES = (*SIMULATOR_NAMES, "mixture")


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
                f"pretrain.corpus_options.weights={value!r} (sim corpus): expected 'ecgsyn=W,gaussian=W' or "
                "two numbers 'W,W'"
            )
    weights: dict[str, float] = {}
    for name, w in raw.items():
        name = name.strip()
        if name not in SIMULATOR_NAMES:
            raise ConfigError(
                f"pretrain.corpus_options.weights (sim corpus): unknown simulator {name!r}; known: {SIMULATOR_NAMES}"
            )
        try:
            weights[name] = float(w)
        except (TypeError, ValueError):
            raise ConfigError(f"pretrain.corpus_options.weights (sim corpus): {name}={w!r} is not a number") from None
        if weights[name] < 0:
            raise ConfigError(f"pretrain.corpus_options.weights (sim corpus): {name}={w} must be >= 0")
    total = sum(weights.values())
    if total <= 0:
        raise ConfigError(
            f"pretrain.corpus_options.weights={value!r} (sim corpus): weights must sum to a positive number"
        )
    return {n: weights.get(n, 0.0) / total for n in SIMULATOR_NAMES}


@dataclass(frozen=True)
class SimOptions:
    """Options of the ``sim`` corpus (``pretrain.corpus_options.*``); defaults: SimECG-N, the paper's main corpus.

    ``simulator``: ecgsyn | gaussian | mixture. ``weights``: mixture proportions (text
    ``"ecgsyn=0.7,gaussian=0.3"`` or ``"0.7,0.3"``, or a table; kept as text, used only by the
    mixture). ``path``: a store built by ``simecg-bench corpus build sim`` to read instead of
    simulating (the same values, so not part of the identity). ``ecgsyn`` / ``gaussian``: the
    simulators' configs.
    """

    simulator: str = "gaussian"
    weights: Mapping[str, float] | str = "ecgsyn=0.5,gaussian=0.5"
    path: str | None = field(default=None, metadata={STORE_PATH: True})
    ecgsyn: EcgSynConfig = field(default_factory=EcgSynConfig)
    gaussian: GaussianBeatConfig = field(default_factory=GaussianBeatConfig)

    def __post_init__(self) -> None:
        simulator = str(self.simulator).strip().lower()
        if simulator not in SIMULATOR_CHOICES:
            raise ConfigError(
                f"pretrain.corpus_options.simulator={self.simulator!r} (sim corpus): expected one of "
                f"{', '.join(SIMULATOR_CHOICES)}"
            )
        object.__setattr__(self, "simulator", simulator)
        weights = self.weights
        if isinstance(weights, Mapping):
            weights = ",".join(f"{k}={v}" for k, v in weights.items())
        elif isinstance(weights, (list, tuple)):
            weights = ",".join(str(w) for w in weights)
        object.__setattr__(self, "weights", str(weights))
        parse_weights(self.weights)  # raises ConfigError naming the option
        if self.path is not None:
            object.__setattr__(self, "path", str(self.path))
        for name, config_cls in (("ecgsyn", EcgSynConfig), ("gaussian", GaussianBeatConfig)):
            if not isinstance(getattr(self, name), config_cls):
                raise ConfigError(f"pretrain.corpus_options.{name} must be a table of {name} settings, "
                                  f"got {getattr(self, name)!r}")

    def mixture_weights(self) -> dict[str, float]:
        """The proportion of each simulator (one-hot unless ``simulator`` is ``mixture``)."""
        if self.simulator == "mixture":
            return parse_weights(self.weights)
        return {n: float(n == self.simulator) for n in SIMULATOR_NAMES}


class SimCorpus(CorpusBase):
    """SimECG-N: Gaussian-composition beat ECGs with the authors' parameters (the study's main corpus).

    Built as ``SimCorpus(size=, seed=, options=SimCorpus.Options(...))``; see the module docstring.
    """

    name = "sim"
    Options = SimOptions

    def __init__(self, size: int = 1_000_000, seed: int = 0, options: SimOptions | None = None):
        options = self.Options() if options is None else options
        if not isinstance(options, SimOptions):
            raise ConfigError(f"sim corpus: options must be a SimCorpus.Options, got {type(options).__name__} "
                              "(resolve a table with pretraining.config.corpus_options)")
        if size < 0:
            raise ConfigError(f"sim corpus size must be >= 0, got {size}")
        self.size = int(size)
        self.seed = int(seed)
        self.options = options
        self.simulator = options.simulator
        self.weights = options.mixture_weights()
        self.simulators = {n: SIMULATORS.get(n)(getattr(options, n)) for n, w in self.weights.items() if w > 0}
        self.store = None
        if options.path is not None:
            self.store = CorpusStore.open_matching(Path(options.path), self.content_identity())

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return f"SimCorpus(size={self.size}, seed={self.seed}, simulator={self.simulator!r})"

    def content_identity(self) -> dict[str, Any]:
        """What determines every ECG's values, whatever the size: the simulators used, their resolved
        configs, the mixture weights, the seed and ``SIMULATOR_VERSION``. A store's manifest holds it."""
        used = {n: w for n, w in self.weights.items() if w > 0}
        return {
            "name": self.name,
            "seed": self.seed,
            "weights": used,
            "simulators": {n: to_dict(getattr(self.options, n)) for n in used},
            "code_version": SIMULATOR_VERSION,
        }

    def identity(self) -> dict[str, Any]:
        """The content identity plus the size (never the store ``path``: a store holds the same values)."""
        return {**self.content_identity(), "size": self.size}

    def assignment(self, indices: np.ndarray) -> np.ndarray:
        """Which simulator makes each ECG (position in SIMULATOR_NAMES), fixed per (seed, index)."""
        u = index_uniform(indices, self.seed)
        edges = np.cumsum([self.weights[n] for n in SIMULATOR_NAMES])
        return np.minimum(np.searchsorted(edges, u, side="right"), len(SIMULATOR_NAMES) - 1)

    def get_batch(self, indices: np.ndarray) -> np.ndarray:
        return stored_or_computed(self.name, self.size, indices, self.simulate, self.store)

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


@dataclass(frozen=True)
class EcgsynOptions(SimOptions):
    """Options of the ``ecgsyn`` corpus: those of ``sim`` with ECGSYN as the default simulator."""

    simulator: str = "ecgsyn"


class EcgsynCorpus(SimCorpus):
    """ECGSYN ECGs (McSharry et al. 2003) with the paper's per-ECG draws: the second simulator corpus."""

    name = "ecgsyn"
    Options = EcgsynOptions
