"""What every pretraining corpus provides: indexed, deterministic, single-lead ECGs.

A corpus is a class registered in ``CORPORA`` with a frozen ``Options`` dataclass (its options,
defaults included, typed like every other config) and built as
``cls(size=int, seed=int, options=cls.Options(...))``. Options come from
``pretrain.corpus_options`` (a suite's ``[pretrain.corpus_options]`` table or
``--set pretrain.corpus_options.KEY=VALUE``), resolved into ``Options`` by
:func:`resolve_options` (``pretraining.config.corpus_options``). ECG ``i`` of a corpus is a pure
function of (options, seed, i), so any worker, rank or machine can produce any slice of it
without coordination.

Beyond those, every corpus declares (:class:`Corpus`; :class:`CorpusBase` gives the defaults, so a
corpus subclasses it and writes only what differs):

- ``validation_size``: None, or the number of its last ECGs that are records it never trains on,
  its own validation set (the real-data ``ptbxl`` corpora have one); pretraining validates on them
  (:func:`validation_holdout`). Without one, pretraining holds out the corpus's last
  ``pretrain.val_size`` ECGs (any simulated ECG is as new as another).
- ``sees_test_records``: whether it may hold records of downstream test splits (marked † in every
  output; ``ptbxl-authors``, and the generators trained on the authors' records).
- ``unit``: ``mV``, or ``z-scored`` for ECGs on the z-scored scale (generated ones); previews say it.
- ``content_identity()``: what decides every ECG's values whatever the corpus's size (a materialized
  store checks it); ``identity()`` by default.
- ``describe(indices)``: per ECG, what made it (a simulator's parameters), for previews; empty by default.

``identity()`` is the corpus's *content* identity, hashed into the encoder's fingerprint
(:func:`simecg.identity.encoder_identity`, which drops ``pretrain.corpus_options``): name, size,
seed and every resolved option that changes an ECG value, and nothing else (no location of a
store or of a folder), so a fingerprint changes exactly when the ECGs do.

A corpus sampled from a generative model that is trained first (``vae``, ``gan``) is also a
:class:`TrainedCorpus`: it says which model (:class:`GeneratorSpec`) and trains it in
``prepare()``; the benchmark trains each such model once and shares it
(``benchmark.run.generators.provision_generator``). See docs/protocol.md, "VAE and GAN corpora".
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from simecg.config import coerce
from simecg.errors import ConfigError
from simecg.identity import Identity

# ``dataclasses.field(metadata={STORE_PATH: True})`` marks an option naming a materialized store of
# the same corpus (read instead of recomputing the same values): ``corpus build`` ignores it.
STORE_PATH = "store_path"
OPTIONS_KEY = "pretrain.corpus_options"


@runtime_checkable
class Corpus(Protocol):
    """An indexable collection of lead II, 500-Hz, 10-s ECGs (raw amplitude, not z-scored).

    The registered class is built as ``cls(size=int, seed=int, options=cls.Options(...))``; the
    optional members have defaults in :class:`CorpusBase` (module docstring).
    """

    name: str
    Options: ClassVar[type]  # frozen dataclass of the corpus's options; defaults are the corpus's
    unit: str  # "mV", or "z-scored" (generated ECGs)
    validation_size: int | None  # its own validation set: its last validation_size ECGs (None: none)
    sees_test_records: bool  # may hold records of downstream test splits (marked † in every output)

    def __len__(self) -> int:
        """Number of ECGs in the corpus."""
        ...

    def get_batch(self, indices: np.ndarray) -> np.ndarray:
        """ECGs at ``indices`` as float32 ``(len(indices), 5000)``; same values in any batching."""
        ...

    def identity(self) -> dict[str, Any]:
        """JSON-ready content identity: name, size, seed and all that decides the ECG values, no location."""
        ...

    def content_identity(self) -> dict[str, Any]:
        """What decides every ECG's values, whatever the size (a store of the corpus is checked against it)."""
        ...

    def describe(self, indices: np.ndarray) -> list[dict[str, Any]]:
        """Per ECG at ``indices``, what made it (e.g. a simulator's parameters), for previews."""
        ...


class CorpusBase:
    """The defaults of :class:`Corpus`'s optional members: a corpus subclasses this and writes the rest
    (``name``, ``Options``, ``__len__``, ``get_batch``, ``identity``).

    No validation set of its own, no test record, ECGs in mV, the content identity is the identity,
    and nothing to describe per ECG.
    """

    name: ClassVar[str] = ""
    unit: ClassVar[str] = "mV"
    validation_size: int | None = None
    sees_test_records: bool = False

    def content_identity(self) -> dict[str, Any]:
        return self.identity()

    def describe(self, indices: np.ndarray) -> list[dict[str, Any]]:
        return [{} for _ in range(len(indices))]


@dataclass(frozen=True)
class GeneratorSpec:
    """The generative model a :class:`TrainedCorpus` samples from, as whoever trains or fetches it needs it."""

    kind: str  # the model's name in simecg.registries.GENERATORS ("vae", "gan")
    preset: str  # the preset its config starts from ("paper", "tiny")
    config: Any  # its resolved config (steps, batch_size, ...)
    identity: Identity  # its identity: config and training data (what its folder and MLflow run are named by)
    folder: Path  # where the trained model is (or will be): <cache>/generators/<fingerprint>


# ``open_run(name, fingerprint, params)``: a context manager around a tracked training run, yielding a
# logger (``log_metrics``, ``log_figure``, ``log_artifact``).
OpenRun = Callable[[str, str, dict[str, Any]], AbstractContextManager[Any]]


@runtime_checkable
class TrainedCorpus(Protocol):
    """A corpus sampled from a generative model that must be trained first (``vae``, ``gan``).

    Methods only, so that ``isinstance(corpus, TrainedCorpus)`` reads no property (and no data).
    """

    def generator(self) -> GeneratorSpec:
        """Its model: kind, preset, config, identity and folder (computing it trains nothing)."""
        ...

    def is_prepared(self) -> bool:
        """Whether the trained model is in its folder."""
        ...

    def prepare(self, open_run: OpenRun | None = None, progress: bool = False) -> Path:
        """Train the model (or resume its training, or find it done); its folder. With ``open_run``, a
        training that has work to do is logged in the run it opens."""
        ...


def validation_holdout(corpus: Corpus, val_size: int, name: str = "") -> tuple[int, int]:
    """``(train_size, n_val)``: pretraining trains on ECGs ``[0, train_size)`` and validates on the next ``n_val``.

    A corpus with its own validation set (``validation_size``) trains on everything before it and
    validates on up to ``val_size`` of it (``pretrain.val_size`` then only caps the cost; 0 turns
    validation off); any other corpus gives up its last ``val_size`` ECGs, at most half of it.
    """
    total = len(corpus)
    own = corpus.validation_size
    if own is not None:
        own = int(own)
        if not 0 < own < total:
            raise ConfigError(f"corpus {name or corpus.name!r}: validation_size {own} must leave "
                              f"training ECGs among its {total}")
        return total - own, min(int(val_size), own)
    if val_size * 2 > total:
        raise ConfigError(
            f"pretrain.val_size {val_size} leaves too little of the {total}-ECG corpus "
            f"{name!r} for training; lower it (e.g. --set pretrain.val_size={max(1, total // 10)})"
        )
    return total - val_size, int(val_size)


def resolve_options(options_cls: type, data: Mapping[str, Any], where: str = OPTIONS_KEY,
                    corpus: str = "") -> Any:
    """An ``options_cls`` instance from a free-form table such as ``pretrain.corpus_options``.

    ``data`` holds CLI text or TOML values, nested (``{"gaussian": {"augment_rate": 0}}``) or with
    dotted keys (``{"gaussian.augment_rate": "0"}``); values are converted to the declared field
    types with :func:`simecg.config.coerce`, nested dataclass fields from nested tables. Unknown
    keys and impossible values raise :class:`ConfigError` naming ``<where>.<key>`` (and, for an
    unknown key, the valid ones); the dataclass's own checks (``__post_init__``) run once, on the
    final values.
    """
    if not dataclasses.is_dataclass(options_cls):
        raise ConfigError(f"{where}: {options_cls!r} is not an options dataclass")
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a table of options (key = value), got {data!r}")
    hints = typing.get_type_hints(options_cls)
    fields = {f.name for f in dataclasses.fields(options_cls) if f.init}
    kwargs: dict[str, Any] = {}
    for key, value in _nested(data, where).items():
        name = f"{where}.{key}"
        if key not in fields:
            owner = f" of corpus {corpus!r}" if corpus and where == OPTIONS_KEY else ""
            raise ConfigError(f"unknown option {name}{owner}; valid: {', '.join(sorted(fields)) or '(none)'}")
        hint = hints[key]
        if dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
            kwargs[key] = resolve_options(hint, value, name, corpus)
        elif dataclasses.is_dataclass(hint) and not isinstance(value, hint):
            settings = ", ".join(sorted(f.name for f in dataclasses.fields(hint)))
            raise ConfigError(f"{name} is a table of settings, not a value ({value!r}); set one of them, "
                              f"e.g. {name}.<setting>=VALUE (settings: {settings})")
        else:
            kwargs[key] = coerce(value, hint, name)
    try:
        return options_cls(**kwargs)
    except ConfigError as exc:
        message = str(exc)
        raise ConfigError(message if where in message else f"{where}: {message}") from None


def _nested(data: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``{"a.b": 1, "a": {"c": 2}}`` -> ``{"a": {"b": 1, "c": 2}}`` (dotted keys become tables)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        head, dot, rest = str(key).partition(".")
        if dot:
            value = {rest: value}
        if head in out and isinstance(value, Mapping) and isinstance(out[head], dict):
            out[head] = {**out[head], **value}
        elif head in out:
            raise ConfigError(f"{where}.{head} is set twice, as a value and as a table")
        else:
            out[head] = dict(value) if isinstance(value, Mapping) else value
    return out


def without_store_paths(options: Any) -> Any:
    """``options`` with every field marked ``STORE_PATH`` back at its default (for building a store)."""
    changes = {f.name: f.default for f in dataclasses.fields(options) if f.metadata.get(STORE_PATH)}
    return dataclasses.replace(options, **changes) if changes else options
