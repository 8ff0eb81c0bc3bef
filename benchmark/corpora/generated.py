"""The ``vae`` and ``gan`` corpora: ECGs sampled from a VAE / DCGAN trained on PTB-XL lead II training records.

The study's generative pretraining sources (docs/protocol.md, "VAE and GAN corpora"). The generator is
trained on PTB-XL lead II *training* records (:func:`ptbxl_training_data`):
by default (``records = "ptbxl"``) the ``ptbxl`` corpus's, with no record of any task's test split
of the suite's split; ``records = "authors"`` takes the authors' random 64% (split seed 1, test
records included, so the corpus is marked as seeing them), each ECG z-scored first, so **generated
ECGs are on the z-scored scale** (about zero mean and unit standard deviation per ECG), not in mV.
ECG ``i`` is ``decoder(z_i)`` with ``z_i`` drawn from a stream keyed by (corpus seed, ``i``) and the
generator evaluated in eval mode (BatchNorm's running statistics), float32, in fixed-size chunks, so
an ECG is the same array in any batch, order, worker or process.

**The latent, as the authors sampled it** (``latent_sampling``, docs/protocol.md): the authors draw
every corpus ECG from ``z ~ N(0, I)``, for the VAE (its prior) and for the DCGAN alike, although
their DCGAN is trained on ``z ~ U(0, 1)``: the ``gan`` corpus of ``latent_sampling="paper"`` (the
default) reproduces that mismatch, so its generator is fed inputs it never saw in training.
``"matched"`` (the better practice) samples each model from the latent it was trained with
(U(0, 1) for the DCGAN; the VAE's N(0, I) either way, so its ECGs and identity do not change).
The distribution used is part of the corpus identity.

The trained generator lives in ``<cache>/generators/<fingerprint>/`` and is loaded lazily on the
first :meth:`get_batch`; it is trained (or resumed, or found in the cache) by :meth:`prepare`, which
``simecg-bench generators train vae|gan``, the benchmark's encoder provisioning
(:func:`benchmark.run.generators.provision_generator`, which also looks in MLflow) and ``corpus build``
call. :meth:`identity` needs the training data's identity (the PTB-XL index), never a trained model.
At paper scale, decoding a million ECGs on the fly is slow: materialize them once with
``simecg-bench corpus build vae --n N --out DIR`` and read them back with ``path=DIR`` (the same
values, checked against the store's manifest, so not part of the identity).

Options (:class:`GeneratedOptions`, ``pretrain.corpus_options.<key>``): ``preset`` (``paper`` | ``tiny``),
``generator`` (a table of overrides of the generator's config, e.g. ``generator.kl_schedule=linear``),
``steps`` (shortcut for ``generator.steps``), ``generator_seed``, ``latent_sampling`` (``paper`` |
``matched``), ``records`` (``ptbxl`` | ``authors``, with ``split``/``test_seed``/``duplicates`` and
``overlap``/``lengths`` set by the suite), and where things live, ``path`` (a
store to read), ``data_dir`` and ``cache_dir`` (none of them part of the identity)::

    simecg-bench generators train vae --preset tiny --data-dir ../shared/data
    simecg-bench pretrain --corpus vae --set pretrain.corpus_options.preset=tiny --set pretrain.data_dir=DIR
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from benchmark.corpora.ptbxl import PTBXLAuthorsCorpus, PTBXLCorpus
from benchmark.corpora.store import CorpusStore, stored_or_computed
from pretraining.corpora.base import STORE_PATH, CorpusBase, GeneratorSpec, OpenRun
from pretraining.generators.common import (
    GENERATOR_FILE,
    PRESET_NAMES,
    GeneratorConfig,
    is_complete,
    load_sampler,
    resolve_config,
    sample_latents,
)
from pretraining.generators.train import (
    IDENTITY_FILE,
    GeneratorData,
    generator_dir,
    generator_identity,
    generator_lock,
    train_generator,
)
from simecg.config import flatten, to_dict
from simecg.errors import ConfigError, DataError, DataMissingError
from simecg.identity import Identity
from simecg.signal import N_SAMPLES

# Bump when the way ECGs are drawn from a trained generator changes (latent streams, chunking).
SAMPLING_VERSION = "2"
LATENT_SAMPLING = ("paper", "matched")
# Rows per generator call: every call has this shape, so an ECG's float32 value never depends on
# which other ECGs share its batch (convolution kernels vary with the batch size in the last bits).
CHUNK = 64



# Which PTB-XL records a generator trains on: "ptbxl", the ``ptbxl`` corpus's training records (no
# test record of the suite's split); "authors", the authors' random 64% (their generators' data
# code reads the split of seed 1: src/dgms/codes/data/dataloader.py), test records included.
RECORDS = ("ptbxl", "authors")
# What the suite decides of the ``ptbxl`` corpus a generator's records come from (options of both).
SPLIT_FIELDS = ("split", "test_seed", "duplicates", "overlap", "lengths")
AUTHORS_GENERATOR_SPLIT_SEED = 1


def ptbxl_training_data(max_records: int = 0, seed: int = 0, data_dir: str | Path | None = None,
                        cache_dir: str | Path | None = None, records: str = "ptbxl",
                        split: Mapping[str, Any] | None = None) -> GeneratorData:
    """PTB-XL lead II training records for a generator, chosen as the matching pretraining corpus chooses them.

    ``records="ptbxl"``: the training part of the ``ptbxl`` corpus for the suite's split settings
    ``split`` (``split``, ``test_seed``, ``duplicates``, ``overlap``, ``lengths``: options of that
    corpus; no record of any PTB-XL task's test split nor a duplicate of one; the corpus's validation
    records are left out too). ``records="authors"``: the training part of ``ptbxl-authors`` cut with
    seed 1 as the authors' generators had it (another random 64% of PTB-XL, test records included).
    Records come in an order seeded by ``seed``; ``max_records`` > 0 keeps the first that many. The
    data identity is that corpus's identity (records hashed in order, lead, data version, selection),
    never a location (docs/protocol.md, "VAE and GAN corpora").
    """
    if records == "ptbxl":
        chosen = dict(split or {})
    elif records == "authors":
        chosen = {"val_seed": AUTHORS_GENERATOR_SPLIT_SEED}
    else:
        raise ConfigError(f"generator training records={records!r}: expected one of {', '.join(RECORDS)}")
    entry = PTBXLCorpus if records == "ptbxl" else PTBXLAuthorsCorpus
    options = entry.Options(data_dir=None if data_dir is None else str(data_dir),
                            cache_dir=None if cache_dir is None else str(cache_dir), **chosen)
    corpus = entry(size=max_records or None, seed=seed, options=options)
    if records == "ptbxl" and corpus.sees_test_records:
        raise DataError("generator training data (records = ptbxl) must exclude every PTB-XL test split")
    identity, train = corpus.identity(), corpus.train_size
    # the corpus's own validation records pick the generator's best weights, as the authors' net.pth
    validation = GeneratorData({**identity, "part": "validation"}, corpus.record_ids[train:], source=corpus,
                               start=train)
    return GeneratorData(identity, corpus.record_ids[:train], source=corpus, validation=validation)


@dataclass(frozen=True)
class GeneratedOptions:
    """Options of the ``vae``/``gan`` corpora (``pretrain.corpus_options.*``); see the module docstring.

    ``generator``: overrides of the preset's config (architecture and training settings, e.g.
    ``{"steps": 2000, "batch_size": 64}``); ``steps``: the number of training steps (None: the
    preset's); ``generator_seed``: seeds the generator's training (and picks ``max_records`` records);
    ``latent_sampling``: ``paper`` (z ~ N(0, I) for both models, as the authors) or ``matched``
    (each model's training latent).
    ``path`` (a store built by ``corpus build``), ``data_dir`` (PTB-XL; default ``$SIMECG_DATA`` or
    ``<cache>/data``) and ``cache_dir`` (default the cache folder) say where things are, never what they are.
    """

    kind: ClassVar[str] = ""

    preset: str = "paper"
    generator: dict[str, Any] = field(default_factory=dict)
    steps: int | None = None
    generator_seed: int = 0
    latent_sampling: str = "paper"
    # the generator's PTB-XL training records: "ptbxl" (no test record of the suite's split, which the
    # suite passes as split/test_seed/duplicates, checked by that corpus) or "authors" (their random 64%,
    # test records included)
    records: str = "ptbxl"
    split: str = "paper"
    test_seed: int = 123
    duplicates: str = "group"
    overlap: str = "both"  # the suite's [data] rules that decide the tasks' rows (hence their test records)
    lengths: str = "exact"
    path: str | None = field(default=None, metadata={STORE_PATH: True})
    data_dir: str | None = None
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        where = f"pretrain.corpus_options (corpus {self.kind})"
        if self.preset not in PRESET_NAMES:
            raise ConfigError(f"{where}: preset={self.preset!r}; known: {', '.join(PRESET_NAMES)}")
        if self.latent_sampling not in LATENT_SAMPLING:
            raise ConfigError(f"{where}: latent_sampling={self.latent_sampling!r}; known: "
                              f"{', '.join(LATENT_SAMPLING)}")
        if not isinstance(self.generator, dict):
            raise ConfigError(f"{where}: generator must be a table of generator settings, got {self.generator!r}")
        if self.records not in RECORDS:
            raise ConfigError(f"{where}: records={self.records!r}; expected one of {', '.join(RECORDS)}")
        if "seed" in self.generator:
            raise ConfigError(f"{where}: set the generator's seed with generator_seed, not generator.seed")
        for name in ("path", "data_dir", "cache_dir"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, str(getattr(self, name)))
        self.generator_config()  # unknown or impossible settings fail now, naming the key

    def generator_config(self) -> GeneratorConfig:
        """The resolved generator config: preset, ``generator`` overrides, ``steps`` and ``generator_seed``."""
        config = resolve_config(self.kind, self.preset, self.generator, seed=self.generator_seed)
        if self.steps is None or self.steps == config.steps:
            return config
        if "steps" in self.generator:
            raise ConfigError(f"pretrain.corpus_options (corpus {self.kind}): steps={self.steps} and "
                              f"generator.steps={self.generator['steps']} disagree; set one")
        return resolve_config(self.kind, self.preset, self.generator, seed=self.generator_seed, steps=self.steps)

    def latent_distribution(self) -> str:
        """The distribution corpus ECGs' ``z`` are drawn from: ``normal`` (the authors', for both
        models) or, when ``matched``, the one the model was trained with."""
        if self.latent_sampling == "paper":
            return "normal"
        return type(self.generator_config()).training_latent


@dataclass(frozen=True)
class VAEOptions(GeneratedOptions):
    kind: ClassVar[str] = "vae"


@dataclass(frozen=True)
class GANOptions(GeneratedOptions):
    kind: ClassVar[str] = "gan"


class GeneratedCorpus(CorpusBase):
    """ECGs sampled from a generator trained on PTB-XL lead II training records (base of ``vae``/``gan``).

    Built as ``cls(size=, seed=, options=cls.Options(...))``; see the module docstring.
    """

    name: ClassVar[str] = ""
    unit: ClassVar[str] = "z-scored"  # the generators learn z-scored ECGs (previews say so)
    Options: ClassVar[type[GeneratedOptions]] = GeneratedOptions

    def __init__(self, size: int = 1_000_000, seed: int = 0, options: GeneratedOptions | None = None):
        options = self.Options() if options is None else options
        if not isinstance(options, self.Options):
            raise ConfigError(f"{self.name} corpus: options must be a {type(self).__name__}.Options, got "
                              f"{type(options).__name__} (resolve a table with pretraining.config.corpus_options)")
        if int(size) < 0:
            raise ConfigError(f"{self.name} corpus size must be >= 0, got {size}")
        self.size = int(size)
        self.seed = int(seed)
        self.options = options
        self.config = options.generator_config()
        self._data: GeneratorData | None = None
        self._identity: Identity | None = None
        self._sampler: torch.nn.Module | None = None
        self._store: Any = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(size={self.size}, seed={self.seed}, preset={self.options.preset!r}, "
                f"steps={self.config.steps})")

    def __getstate__(self) -> dict[str, Any]:  # workers get the identity, not the data or the model
        return {**self.__dict__, "_data": None, "_sampler": None, "_store": None, "_lock": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # ---- the generator ------------------------------------------------------------------------
    def training_data(self) -> GeneratorData:
        """The generator's PTB-XL lead II training records (signals read on first use)."""
        if self._data is None:
            o = self.options
            self._data = ptbxl_training_data(self.config.max_records, self.config.seed, o.data_dir, o.cache_dir,
                                             o.records, split={key: getattr(o, key) for key in SPLIT_FIELDS})
        return self._data

    def generator_identity(self) -> Identity:
        """The generator's identity: resolved config and training data's identity (no training needed)."""
        if self._identity is None:
            self._identity = generator_identity(self.config, self.training_data())
        return self._identity

    @property
    def generator_dir(self) -> Path:
        """``<cache>/generators/<fingerprint>``: where the trained generator is (or will be)."""
        return generator_dir(self.generator_identity(), self.options.cache_dir)

    def generator(self) -> GeneratorSpec:
        """The generator this corpus samples from, as provisioning and planning need it (:class:`TrainedCorpus`)."""
        return GeneratorSpec(self.kind, self.options.preset, self.config, self.generator_identity(), self.generator_dir)

    def is_prepared(self) -> bool:
        """Whether the trained generator is in the cache."""
        return is_complete(self.generator_dir, self.generator_identity().fingerprint)

    def prepare(self, open_run: OpenRun | None = None, progress: bool = False) -> Path:
        """Train the generator (or resume its training, or find it in the cache); returns its folder.

        ``open_run(name, fingerprint, params)``, if given, opens a tracked run (a context manager
        yielding a logger with ``log_metrics``/``log_figure``/``log_artifact``/``log_sealed``) around a training that
        has work to do: losses and sample grids go there, then ``generator/generator.pt`` and
        ``generator/identity.json``. One process at a time trains a generator (a lock file beside its
        folder); the others wait and find it done.
        """
        identity = self.generator_identity()
        folder = self.generator_dir
        with generator_lock(folder):
            if is_complete(folder, identity.fingerprint):
                return folder
            data = self.training_data()
            if open_run is None:
                train_generator(self.config, folder, None, progress, data=data, identity=identity)
                return folder
            params = flatten({"generator": {"model": self.kind, "preset": self.options.preset,
                                            "training_latent": type(self.config).training_latent,
                                            **to_dict(self.config)}, "data": data.identity})
            with open_run(self.name, identity.fingerprint, params) as run:
                train_generator(self.config, folder, run, progress, data=data, identity=identity)
                run.log_sealed(folder / GENERATOR_FILE, "generator")  # with its checksum: a fetch verifies it
                run.log_artifact(folder / IDENTITY_FILE, "generator")
        return folder

    @property
    def kind(self) -> str:
        return self.Options.kind

    def sampler(self) -> torch.nn.Module:
        """The trained generator (``z`` -> ECG), loaded from the cache on first use."""
        with self._lock:
            if self._sampler is None:
                identity = self.generator_identity()
                folder = self.generator_dir
                if not is_complete(folder, identity.fingerprint):
                    raise DataMissingError(
                        f"the {self.name} corpus needs its trained generator ({self.kind}, preset "
                        f"{self.options.preset!r}, fingerprint {identity.fingerprint}), not in {folder}; train it with "
                        f"`simecg-bench generators train {self.name} --preset {self.options.preset}` (same --set "
                        "options), or call corpus.prepare()"
                    )
                _, self._sampler = load_sampler(folder / GENERATOR_FILE, identity.fingerprint)
            return self._sampler

    # ---- the corpus contract --------------------------------------------------------------------
    def content_identity(self) -> dict[str, Any]:
        """What decides every ECG's values, whatever the size: name, seed, the generator, the sampling
        code and the latent distribution."""
        identity = self.generator_identity()
        return {"name": self.name, "seed": self.seed, "sampling_version": SAMPLING_VERSION,
                "latent": self.options.latent_distribution(),
                "generator": {"fingerprint": identity.fingerprint, "payload": identity.payload}}

    def identity(self) -> dict[str, Any]:
        """The content identity plus the size (never ``data_dir``/``cache_dir``)."""
        return {**self.content_identity(), "size": self.size, "sees_test_records": self.sees_test_records}

    @property
    def sees_test_records(self) -> bool:
        """Whether the generator learned from records of downstream test splits (``records = "authors"``)."""
        return self.options.records == "authors"

    def latents(self, indices: np.ndarray) -> np.ndarray:
        """``z_i`` of each index (float32 (n, latent)), from a stream keyed by (corpus seed, i), drawn
        from :meth:`GeneratedOptions.latent_distribution`."""
        return sample_latents(self.seed, np.asarray(indices, dtype=np.int64), self.config.latent_dim,
                              distribution=self.options.latent_distribution())

    def get_batch(self, indices: np.ndarray) -> np.ndarray:
        """ECGs at ``indices`` (float32 (n, 5000), z-scored scale); the same values in any batching."""
        return stored_or_computed(self.name, self.size, indices, self.generate, self.store())

    def generate(self, indices: np.ndarray) -> np.ndarray:
        """Decode ECGs at ``indices`` with the trained generator (ignores any store)."""
        sampler = self.sampler()
        z = self.latents(indices)
        out = np.empty((len(z), N_SAMPLES), dtype=np.float32)
        with torch.inference_mode():
            for lo in range(0, len(z), CHUNK):
                part = z[lo:lo + CHUNK]
                chunk = np.zeros((CHUNK, z.shape[1]), dtype=np.float32)
                chunk[:len(part)] = part
                out[lo:lo + len(part)] = sampler(torch.from_numpy(chunk)).float().numpy()[:len(part)]
        return out

    def store(self) -> Any:
        """The store named by ``path`` (opened, and checked to hold these ECGs, on first use), or None."""
        if self.options.path is None:
            return None
        with self._lock:
            if self._store is None:
                self._store = CorpusStore.open_matching(Path(self.options.path), self.content_identity())
            return self._store


class VAECorpus(GeneratedCorpus):
    """ECGs sampled from the authors' VAE (chunk-linear encoder, 1-D ResNet decoder) trained on PTB-XL lead II."""

    name = "vae"
    Options = VAEOptions


class GANCorpus(GeneratedCorpus):
    """ECGs sampled from the authors' DCGAN (CNN discriminator, 1-D ResNet generator) trained on PTB-XL lead II;
    by default from N(0, I) although it was trained on U(0, 1), as the authors did (``latent_sampling``)."""

    name = "gan"
    Options = GANOptions


__all__ = ["CHUNK", "LATENT_SAMPLING", "SAMPLING_VERSION", "GANCorpus", "GeneratedCorpus", "GeneratedOptions",
           "VAECorpus"]
