"""What the VAE and the DCGAN share: the config base, the 1-D ResNet generator, presets, files.

Both generative models map a latent ``z`` (128 numbers) to a 10-s, 500-Hz lead II ECG through
the same 1-D ResNet (:class:`ResNetGenerator1d`, the VAE's decoder and the GAN's generator).
They are trained on **z-scored** PTB-XL lead II records (PROTOCOL: every sample is z-scored
before the model), so what they generate is on the z-scored scale (about zero mean, unit
standard deviation per ECG), not in mV.

A model's config is a frozen dataclass holding its architecture *and* its training settings
(steps, batch, optimizer, seed); a named preset (``paper``, ``tiny``) plus type-checked
overrides gives the resolved config (:func:`resolve_config`), whose values, less the bookkeeping
ones of :data:`simecg.identity.IGNORED` ``["generator"]``, are part of the generator's identity.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from simecg import integrity
from simecg.config import coerce, from_dict, to_dict
from simecg.errors import CheckpointError, ConfigError
from simecg.memory import check_trainable
from simecg.signal import N_SAMPLES

KINDS: dict[str, str] = {"vae": "pretraining.generators.vae", "gan": "pretraining.generators.gan"}
PRESET_NAMES = ("paper", "tiny")
FORMAT = "simecg-generator/1"
GENERATOR_FILE = "generator.pt"


@dataclass(frozen=True)
class GeneratorConfig:
    """Settings every generator has: the latent, the 1-D ResNet generator, training and bookkeeping.

    ``base_length * prod(upsample)`` must be 5000: the generator projects ``z`` to
    ``channels[0] x base_length`` and applies ``blocks[0]`` residual blocks, then each stage
    upsamples by ``upsample[i]`` (nearest), convolves to ``channels[i + 1]`` and applies
    ``blocks[i + 1]`` residual blocks. ``max_records`` caps the PTB-XL training records (0: every
    eligible one). ``checkpoint_every``, ``keep_checkpoints``, ``log_every`` and ``sample_every``
    are bookkeeping, outside the identity.
    """

    kind: ClassVar[str] = ""

    latent_dim: int = 128
    base_length: int = 40
    upsample: tuple[int, ...] = (5, 5, 5)
    channels: tuple[int, ...] = (256, 128, 64, 32)
    blocks: tuple[int, ...] = (2, 2, 2, 2)
    kernel: int = 9
    steps: int = 100_000
    batch_size: int = 128
    grad_clip: float = 0.0
    max_records: int = 0
    seed: int = 0
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    log_every: int = 50
    sample_every: int = 5000

    def __post_init__(self) -> None:
        where = f"{self.kind or 'generator'} config"
        if self.base_length * math.prod(self.upsample) != N_SAMPLES:
            raise ConfigError(f"{where}: base_length {self.base_length} x prod(upsample {list(self.upsample)}) must be "
                              f"{N_SAMPLES}")
        for name in ("channels", "blocks"):
            if len(getattr(self, name)) != len(self.upsample) + 1:
                raise ConfigError(f"{where}: {name} needs one entry per resolution, one more than upsample "
                                  f"({len(self.upsample) + 1}), got {list(getattr(self, name))}")
        if self.kernel % 2 == 0:
            raise ConfigError(f"{where}: kernel must be odd, got {self.kernel}")
        for name in ("latent_dim", "steps", "batch_size", "checkpoint_every", "log_every", "sample_every", "kernel"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{where}: {name} must be positive, got {getattr(self, name)}")
        for name in ("max_records", "grad_clip", "keep_checkpoints"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{where}: {name} must be >= 0, got {getattr(self, name)}")
        if min(self.channels) <= 0 or min(self.upsample) <= 0 or min(self.blocks) < 0:
            raise ConfigError(f"{where}: channels and upsample must be positive, blocks >= 0")


# ---- the shared 1-D ResNet generator ---------------------------------------------------------------

def _groups(channels: int) -> int:
    return next(g for g in (8, 4, 2, 1) if channels % g == 0)


class ResBlock1d(nn.Module):
    """Pre-activation residual block: (GroupNorm, ReLU, Conv1d) x 2 plus the identity."""

    def __init__(self, channels: int, kernel: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(_groups(channels), channels), nn.ReLU(),
            nn.Conv1d(channels, channels, kernel, padding=kernel // 2),
            nn.GroupNorm(_groups(channels), channels), nn.ReLU(),
            nn.Conv1d(channels, channels, kernel, padding=kernel // 2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNetGenerator1d(nn.Module):
    """``z`` (n, latent) -> ECG (n, 5000): linear projection, then upsampling residual stages.

    GroupNorm (no batch statistics), so an ECG depends on its own ``z`` only, in training and eval.
    """

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        c = config
        self.base_length = c.base_length
        self.base_channels = c.channels[0]
        self.project = nn.Linear(c.latent_dim, c.channels[0] * c.base_length)
        stages: list[nn.Module] = [ResBlock1d(c.channels[0], c.kernel) for _ in range(c.blocks[0])]
        for i, factor in enumerate(c.upsample):
            stages.append(nn.Upsample(scale_factor=factor, mode="nearest"))
            stages.append(nn.Conv1d(c.channels[i], c.channels[i + 1], c.kernel, padding=c.kernel // 2))
            stages += [ResBlock1d(c.channels[i + 1], c.kernel) for _ in range(c.blocks[i + 1])]
        self.stages = nn.Sequential(*stages)
        last = c.channels[-1]
        self.head = nn.Sequential(nn.GroupNorm(_groups(last), last), nn.ReLU(),
                                  nn.Conv1d(last, 1, c.kernel, padding=c.kernel // 2))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.project(z).view(len(z), self.base_channels, self.base_length)
        return self.head(self.stages(x)).squeeze(1)


class GenerativeModel(nn.Module):
    """What the training loop needs of a generative model (subclassed by the VAE and the DCGAN)."""

    kind: ClassVar[str] = ""

    def sampler(self) -> nn.Module:
        """The part mapping ``z`` (n, latent) to ECGs (n, 5000): saved in the generator file."""
        raise NotImplementedError

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def train_step(self, x: torch.Tensor, step: int, optimizers: dict[str, torch.optim.Optimizer],
                   generator: torch.Generator) -> dict[str, float]:
        """One optimisation step on z-scored ECGs ``x`` (n, 5000); ``generator`` seeds its noise."""
        raise NotImplementedError


# ---- presets, configs, models by kind ---------------------------------------------------------------

def model_module(kind: str) -> Any:
    """The module of a generator kind (``vae`` or ``gan``): ``Config``, ``PRESETS``, ``Model``."""
    if kind not in KINDS:
        raise ConfigError(f"unknown generator {kind!r}; known: {', '.join(KINDS)}")
    return importlib.import_module(KINDS[kind])


def kind_of(config: GeneratorConfig) -> str:
    if not isinstance(config, GeneratorConfig) or config.kind not in KINDS:
        raise ConfigError(f"not a generator config: {config!r}")
    return config.kind


def preset(kind: str, name: str) -> GeneratorConfig:
    """The named preset (``paper`` or ``tiny``) of a generator kind."""
    presets = model_module(kind).PRESETS
    if name not in presets:
        raise ConfigError(f"unknown {kind} generator preset {name!r}; known: {', '.join(sorted(presets))}")
    return presets[name]


# The settings that change a generator's size: overriding one has resolve_config check it fits in memory.
ARCHITECTURE = frozenset({"latent_dim", "base_length", "upsample", "channels", "blocks", "kernel"})


def resolve_config(kind: str, preset_name: str = "paper", overrides: Mapping[str, Any] | None = None,
                   seed: int | None = None, steps: int | None = None,
                   where: str = "pretrain.corpus_options.generator") -> GeneratorConfig:
    """The preset's config with ``overrides`` (nested or dotted keys, CLI text allowed), ``steps`` and ``seed``.

    Unknown keys and impossible values raise :class:`ConfigError` naming ``<where>.<key>``.
    """
    base = preset(kind, preset_name)
    hints = typing.get_type_hints(type(base))
    fields = {f.name for f in dataclasses.fields(base)}
    changes: dict[str, Any] = {}
    for key, value in _dotted(overrides or {}).items():
        if key not in fields:
            raise ConfigError(f"unknown setting {where}.{key} of the {kind} generator; valid: "
                              f"{', '.join(sorted(fields))}")
        changes[key] = coerce(value, hints[key], f"{where}.{key}")
    if steps is not None:
        changes["steps"] = coerce(steps, int, "steps")
    if seed is not None:
        changes["seed"] = coerce(seed, int, "seed")
    try:
        config = dataclasses.replace(base, **changes)
    except ConfigError as exc:
        raise ConfigError(f"{where} ({kind} generator, preset {preset_name!r}): {exc}") from None
    if set(changes) & ARCHITECTURE:  # the presets fit; typed widths might not: count on PyTorch's meta device
        with torch.device("meta"):
            size = sum(p.numel() for p in build_model(config).parameters())
        settings = ", ".join(f"{k}={v}" for k, v in changes.items() if k in ARCHITECTURE)
        check_trainable(size, f"{where} ({kind} generator, {settings})")
    return config


def config_from_dict(kind: str, data: Mapping[str, Any], source: str = "generator file") -> GeneratorConfig:
    """A config of ``kind`` from its :func:`simecg.config.to_dict` form (lists back to tuples)."""
    cls = model_module(kind).Config
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise CheckpointError(f"{source}: unknown {kind} settings {', '.join(unknown)}; written by a newer version?")
    return from_dict(cls, data, source)


def build_model(config: GeneratorConfig) -> GenerativeModel:
    """The (randomly initialised, by torch's global RNG) model of a config."""
    return model_module(kind_of(config)).Model(config)


def _dotted(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, Mapping):
            out.update(_dotted(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


# ---- generator files -------------------------------------------------------------------------------

def save_generator(model: GenerativeModel, config: GeneratorConfig, path: Path,
                   extra: Mapping[str, Any] | None = None) -> Path:
    """Write the sampler's weights (decoder / generator), its kind and config, atomically."""
    from pretraining.checkpoint import atomic_save

    state = {k: v.detach().cpu().clone() for k, v in model.sampler().state_dict().items()}
    return atomic_save({"format": FORMAT, "kind": "generator", "model": kind_of(config), "config": to_dict(config),
                        "sampler": state, "extra": dict(extra or {})}, Path(path))


def read_file(path: Path) -> dict[str, Any]:
    """A generator file or training checkpoint as a dict (``weights_only``), or :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"generator file {path} does not exist; train it with `simecg-bench generators train`")
    if integrity.sidecar(path).is_file():  # a file of ours: it must be the one written
        problem = integrity.check_file(path)
        if problem is not None:
            raise CheckpointError(f"generator file {path} is damaged ({problem}); delete it and train again")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        raise CheckpointError(f"cannot read generator file {path} ({type(exc).__name__}); delete it and train "
                              "again") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a SimECG generator file (expected format {FORMAT!r})")
    return data


def load_sampler(path: Path, fingerprint: str | None = None) -> tuple[GeneratorConfig, nn.Module]:
    """The config and the sampler (``z`` -> ECG, eval mode, float32, CPU) stored in a generator file."""
    data = read_file(path)
    try:
        kind, state = data["model"], data["sampler"]
        config = config_from_dict(kind, data["config"], str(path))
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"generator file {path} lacks {exc}; train it again") from None
    if fingerprint is not None and data.get("extra", {}).get("fingerprint") != fingerprint:
        raise CheckpointError(f"generator file {path} holds another generator (fingerprint "
                              f"{data.get('extra', {}).get('fingerprint')}, expected {fingerprint})")
    with torch.random.fork_rng(devices=[]):
        sampler = build_model(config).sampler()
    sampler.load_state_dict(state, strict=True)
    return config, sampler.float().eval()


def damage(folder: Path) -> str | None:
    """What is wrong with the generator file of ``folder`` against its size+hash sidecar (None: intact).

    ``"missing"`` when there is none; a file without a sidecar (written by an older version) is damaged.
    """
    return integrity.check_file(Path(folder) / GENERATOR_FILE)


def is_complete(folder: Path, fingerprint: str) -> bool:
    """Whether ``folder`` holds the finished generator of ``fingerprint`` (a damaged or unsealed one does not count)."""
    path = Path(folder) / GENERATOR_FILE
    if not path.is_file() or damage(folder) is not None:
        return False
    try:
        data = read_file(path)
    except CheckpointError:
        return False
    return data.get("kind") == "generator" and data.get("extra", {}).get("fingerprint") == fingerprint


# ---- figures ---------------------------------------------------------------------------------------

def sample_latents(seed: int, indices: np.ndarray, latent_dim: int, purpose: str = "generated-latent") -> np.ndarray:
    """``z_i`` ~ N(0, I), one stream per (seed, index): the same ``z`` for an index in any batch."""
    from simecg.seeding import rng_for

    out = np.empty((len(indices), latent_dim), dtype=np.float32)
    for row, i in enumerate(np.asarray(indices, dtype=np.int64).tolist()):
        out[row] = rng_for(seed, purpose, i).standard_normal(latent_dim, dtype=np.float32)
    return out


def samples_figure(signals: np.ndarray, title: str) -> Any:
    """A column of generated ECGs (z-scored scale) over 10 s."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(signals), 1, figsize=(10, 1.4 * len(signals)), squeeze=False, sharex=True)
    t = np.arange(signals.shape[1]) / 500.0
    for row, ax in enumerate(axes[:, 0]):
        ax.plot(t, signals[row], lw=0.6, color="black")
        ax.tick_params(labelsize=6)
        ax.grid(alpha=0.3, lw=0.4)
    axes[-1, 0].set_xlabel("s")
    figure.suptitle(f"{title} (z-scored scale)", fontsize=9)
    figure.tight_layout()
    return figure


def loss_figure(history: list[dict[str, Any]], keys: tuple[str, ...]) -> Any:
    """Training losses over steps, one panel per key."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        points = [(h["step"], h[key]) for h in history if key in h]
        if points:
            steps, values = zip(*points, strict=True)
            ax.plot(steps, values)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step")
    figure.tight_layout()
    return figure
