"""Pretraining ECGs from a published generator, deepfake-ecg, as a SimECG-Bench corpus plugin.

`deepfake-ecg <https://pypi.org/project/deepfake-ecg/>`_ (Thambawita et al. 2021, MIT licence)
ships Pulse2Pulse, a GAN trained on real 8-lead, 10-s, 500-Hz ECGs, with its trained weights
inside the wheel. Its generator maps a noise array of shape ``(8, 5000)``, uniform on [-1, 1),
to 8 leads in the order I, II, V1-V6 (the package's README), and the package writes
``int(6000 * output)``: integers in microvolts. This corpus takes lead II (``lead``) of that
output and divides by 1000, so its ECGs are in mV like the simulators' and real records'.

What the plugin does differently from ``deepfakeecg.generate`` (which draws from torch's global
generator and writes text files):

* **deterministic**: the noise of ECG ``i`` is drawn from a stream keyed by (corpus seed, ``i``)
  (:func:`simecg.seeding.rng_for`), and the generator always runs on chunks of :data:`CHUNK`
  rows (zero-padded), so ECG ``i`` is the same array in any batch, worker or process;
* **safe loading**: the checkpoint is read with ``torch.load(..., weights_only=True)`` (tensors
  only, no pickled code), whatever the installed torch's default, into the package's own
  ``Generator`` class; building that class does not touch torch's global random state;
* **identity**: the package's version and the SHA-256 of its checkpoint are part of
  :meth:`DeepfakeCorpus.identity`, so another release or another checkpoint gives new encoder
  fingerprints, never a reused encoder.

The package's pyproject declares the entry point that registers this class as the corpus
``deepfake`` (``simecg_bench.corpora``); SimECG-Bench imports this module on the first lookup of
that name. Options (:class:`DeepfakeOptions`, ``pretrain.corpus_options.<key>``): ``lead`` and
``path`` (a store built by ``simecg-bench corpus build deepfake``, read instead of running the GAN).
"""

from __future__ import annotations

import functools
import threading
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.corpora.store import CorpusStore, stored_or_computed
from pretraining.corpora.base import STORE_PATH, CorpusBase
from simecg import integrity
from simecg.errors import ConfigError, DataError, DataMissingError
from simecg.seeding import rng_for
from simecg.signal import N_SAMPLES

PACKAGE = "deepfake-ecg"  # the distribution on PyPI; it installs the module ``deepfakeecg``
LEADS = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")  # the generator's output channels, in order
MICROVOLTS_PER_UNIT = 6000  # the package scales the generator's tanh output to integer microvolts
CHECKPOINT = "checkpoints/g_stat.pt"  # inside the installed ``deepfakeecg`` package
# Rows per generator call: every call has this shape, so an ECG's float32 values never depend on
# which other ECGs share its batch (convolution kernels may vary with the batch size in the last bits).
CHUNK = 8
# Bump when the way ECGs are drawn changes (noise streams, chunking, scaling): new fingerprints.
SAMPLING_VERSION = "1"


@dataclass(frozen=True)
class DeepfakeOptions:
    """Options of the ``deepfake`` corpus (``pretrain.corpus_options.<key>``).

    ``lead``: which of the generator's 8 leads is the corpus (default ``II``, the lead the
    study pretrains on). ``path``: a store built by ``simecg-bench corpus build deepfake`` holding
    the same ECGs (checked against its manifest), read instead of running the GAN; it says where
    the ECGs are, not what they are, so it is not part of the identity.
    """

    lead: str = "II"
    path: str | None = field(default=None, metadata={STORE_PATH: True})

    def __post_init__(self) -> None:
        lead = {name.lower(): name for name in LEADS}.get(str(self.lead).strip().lower())
        if lead is None:
            raise ConfigError(f"pretrain.corpus_options.lead={self.lead!r} (corpus deepfake): the generator makes "
                              f"the leads {', '.join(LEADS)}; choose one of them")
        object.__setattr__(self, "lead", lead)
        if self.path is not None:
            object.__setattr__(self, "path", str(self.path))


def checkpoint_path() -> Path:
    """Where the installed deepfake-ecg package keeps its generator's weights."""
    try:
        import deepfakeecg
    except ImportError as exc:
        raise DataMissingError(
            f"the deepfake corpus needs the {PACKAGE} package ({exc}); install it with "
            f"`pip install {PACKAGE}==1.1.2`, or install this plugin with its dependencies"
        ) from None
    path = Path(deepfakeecg.__file__).resolve().parent / CHECKPOINT
    if not path.is_file():
        raise DataMissingError(f"{PACKAGE} is installed but its checkpoint {path} is missing; reinstall it")
    return path


@functools.lru_cache(maxsize=4)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    """SHA-256 of the checkpoint, once per process and file version (42 MB: about 0.1 s)."""
    return integrity.digest(path)


def checkpoint_digest() -> str:
    """The SHA-256 of the installed checkpoint (the weights that make every ECG)."""
    path = checkpoint_path()
    stat = path.stat()
    return _digest(str(path), stat.st_size, stat.st_mtime_ns)


def load_generator() -> Any:
    """The package's Pulse2Pulse generator with its shipped weights, in eval mode, on the CPU.

    The weights are read with ``weights_only=True`` (the package's own ``generate`` calls
    ``torch.load`` without it, which on older torch unpickles arbitrary objects). The class's
    constructor initialises random weights (then replaced) with torch's global generator and a
    deprecated initialiser: both are kept from leaking into the caller (forked RNG, no warning).
    """
    import torch

    path = checkpoint_path()
    from deepfakeecg.models import Generator

    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # nn.init.kaiming_normal is deprecated
        warnings.simplefilter("ignore", UserWarning)  # (a UserWarning on older torch)
        generator = Generator()
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or "stat_dict" not in state:
        found = sorted(state)[:5] if isinstance(state, dict) else type(state).__name__
        raise DataError(f"{path}: expected a checkpoint holding 'stat_dict' (the generator's weights), "
                        f"found {found}; reinstall {PACKAGE}")
    generator.load_state_dict(state["stat_dict"])
    return generator.eval()


class DeepfakeCorpus(CorpusBase):
    """Lead II of Pulse2Pulse GAN ECGs from the deepfake-ecg package (in mV); ECG ``i`` depends only on (seed, i).

    Built as ``DeepfakeCorpus(size=, seed=, options=DeepfakeCorpus.Options(...))``; see the module docstring.
    """

    name = "deepfake"
    Options = DeepfakeOptions

    def __init__(self, size: int = 1_000_000, seed: int = 0, options: DeepfakeOptions | None = None):
        options = self.Options() if options is None else options
        if not isinstance(options, DeepfakeOptions):
            raise ConfigError(f"deepfake corpus: options must be a DeepfakeCorpus.Options, got "
                              f"{type(options).__name__} (resolve a table with pretraining.config.corpus_options)")
        if int(size) < 0:
            raise ConfigError(f"deepfake corpus size must be >= 0, got {size}")
        self.size = int(size)
        self.seed = int(seed)
        self.options = options
        self._generator: Any = None
        self._store: Any = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return f"DeepfakeCorpus(size={self.size}, seed={self.seed}, lead={self.options.lead!r})"

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers load their own generator and store
        return {**self.__dict__, "_generator": None, "_store": None, "_lock": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # ---- identity ------------------------------------------------------------------------------
    def content_identity(self) -> dict[str, Any]:
        """What decides every ECG's values, whatever the size: the seed, the lead, the package's
        version, its checkpoint's hash and this module's sampling version (a store's manifest holds it)."""
        checkpoint = checkpoint_digest()  # first: without the package, it says how to install it
        return {"name": self.name, "seed": self.seed, "lead": self.options.lead,
                "package": PACKAGE, "package_version": metadata.version(PACKAGE),
                "checkpoint_sha256": checkpoint, "sampling_version": SAMPLING_VERSION}

    def identity(self) -> dict[str, Any]:
        """The content identity plus the size (never the store ``path``: a store holds the same values)."""
        return {**self.content_identity(), "size": self.size}

    # ---- the corpus contract -------------------------------------------------------------------
    def get_batch(self, indices: np.ndarray) -> np.ndarray:
        """ECGs at ``indices`` as float32 ``(n, 5000)`` in mV; the same values in any batching."""
        return stored_or_computed(self.name, self.size, indices, self.generate, self.store())

    def noise(self, indices: np.ndarray) -> np.ndarray:
        """The generator's input for each index: float32 ``(n, 8, 5000)`` uniform on [-1, 1), as the
        package draws it, from a stream keyed by (seed, index)."""
        out = np.empty((len(indices), len(LEADS), N_SAMPLES), dtype=np.float32)
        for row, i in enumerate(np.asarray(indices, dtype=np.int64).tolist()):
            out[row] = 2.0 * rng_for(self.seed, "deepfake-noise", i).random((len(LEADS), N_SAMPLES),
                                                                            dtype=np.float32) - 1.0
        return out

    def generate(self, indices: np.ndarray) -> np.ndarray:
        """Run the GAN for ``indices`` (ignores any store): the chosen lead, integer microvolts as the
        package writes them (truncated toward zero), in mV."""
        import torch

        noise = self.noise(indices)
        lead = LEADS.index(self.options.lead)
        generator = self.generator()
        out = np.empty((len(noise), N_SAMPLES), dtype=np.float32)
        chunk = np.zeros((CHUNK, len(LEADS), N_SAMPLES), dtype=np.float32)
        with torch.inference_mode():
            for lo in range(0, len(noise), CHUNK):
                part = noise[lo:lo + CHUNK]
                chunk[:] = 0.0
                chunk[:len(part)] = part
                leads = generator(torch.from_numpy(chunk))[:len(part), lead]
                out[lo:lo + len(part)] = (leads * MICROVOLTS_PER_UNIT).int().numpy() / np.float32(1000.0)
        return out

    def generator(self) -> Any:
        """The GAN's generator, loaded on first use (once per process)."""
        with self._lock:
            if self._generator is None:
                self._generator = load_generator()
            return self._generator

    def store(self) -> Any:
        """The store named by ``path`` (opened, and checked to hold these ECGs, on first use), or None."""
        if self.options.path is None:
            return None
        with self._lock:
            if self._store is None:
                self._store = CorpusStore.open_matching(Path(self.options.path), self.content_identity())
            return self._store
