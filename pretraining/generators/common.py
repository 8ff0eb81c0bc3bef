"""What the VAE and the DCGAN share: the config base, the authors' 1-D ResNet decoder, presets, files.

Both generative models map a latent ``z`` (128 numbers) to a 10-s, 500-Hz lead II ECG through
the same decoder (:class:`ResNetDecoder1d`, the VAE's decoder and the GAN's generator), the
authors' ``ResNet1dDecoder03`` layer for layer (docs/protocol.md, "VAE and GAN corpora"). They
are trained on **z-scored** PTB-XL lead II records (every sample is z-scored before the model),
so what they generate is on the z-scored scale (about zero mean, unit standard deviation per
ECG), not in mV.

A model's config is a frozen dataclass holding its architecture *and* its training recipe
(steps, batch, optimizer, augmentations, seed); a named preset (``paper``: the authors' recipe,
``tiny``: the same design scaled down for tests and laptops) plus type-checked overrides gives
the resolved config (:func:`resolve_config`), whose values, less the bookkeeping ones of
:data:`simecg.identity.IGNORED` ``["generator"]``, are part of the generator's identity.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from pretraining.checkpoint import atomic_save
from simecg import integrity
from simecg.config import (
    AT_LEAST_ONE,
    FRACTION,
    NON_NEGATIVE,
    SEED,
    Limits,
    check_limits,
    check_values,
    coerce,
    from_dict,
    to_dict,
)
from simecg.errors import CheckpointError, ConfigError
from simecg.memory import check_trainable
from simecg.registries import GENERATORS
from simecg.seeding import rng_for
from simecg.signal import N_SAMPLES

PRESET_NAMES = ("paper", "tiny")
FORMAT = "simecg-generator/1"
GENERATOR_FILE = "generator.pt"
LATENTS = ("normal", "uniform")  # z ~ N(0, I) or z ~ U(0, 1) per coordinate
LR_SCHEDULES = ("constant", "cosine")
SELECTIONS = ("best_val", "last")  # which weights sample the corpus

# The authors' loop stops once MORE than 1e8 samples have passed (a check after each batch of
# 256): 390,625 batches make exactly 1e8, so it runs one more (docs/protocol.md).
PAPER_STEPS = 100_000_000 // 256 + 1


@dataclass(frozen=True)
class GeneratorConfig:
    """Settings every generator has: the latent, the decoder, the training recipe and bookkeeping.

    Decoder: ``z`` -> Linear to ``decoder_width`` x (tokens / 4) -> three stages of a stride-2
    ConvTranspose1d and a residual block (widths w/2, w/4, w/4) -> per token Linear(w/4, w/4) and
    Linear(w/4, chunk / 2), with tokens = 5000 / ``chunk`` (the authors' ``ResNet1dDecoder03``).

    Recipe (the authors' ``main02`` setting): ``steps`` batches of ``batch_size`` records drawn
    epoch by epoch without replacement (the incomplete last batch dropped); each batch z-scored,
    then augmented as in fine-tuning: a contiguous segment of ``mask_ratio`` of the record masked
    and a zero-padded shift of up to ``max_shift_ratio`` (see each model for what it does with
    the mask). ``lr_schedule``: ``constant`` in ``paper`` (the authors declare ``cosine-01`` but
    never step that scheduler, so Adam runs at its initial rate throughout); ``cosine`` (a
    deviation) anneals every learning rate to 0 over ``steps``. ``grad_clip`` 0: none (as the
    authors). ``max_records`` caps the PTB-XL training records (0: every eligible one).

    ``select``: which weights sample the corpus. ``best_val`` (the authors' ``net.pth``, which their
    ``generate.py`` loads): the validation loss is measured each time more than ``val_every``
    samples have passed since the last measurement (every 1,954 steps at the paper's 5e5 and 256;
    never after the last one) and the weights of the lowest (strictly lower) loss are kept; ``last``
    (a deviation): the final weights. ``checkpoint_every``, ``keep_checkpoints``, ``log_every`` and
    ``sample_every`` are bookkeeping, outside the identity.
    """

    kind: ClassVar[str] = ""
    # What ``z`` the model is trained with (the VAE's prior, the GAN's input noise).
    training_latent: ClassVar[str] = "normal"
    LIMITS: ClassVar[dict[str, Limits]] = {
        "latent_dim": AT_LEAST_ONE, "chunk": Limits(ge=2), "decoder_width": Limits(ge=4),
        "steps": AT_LEAST_ONE, "batch_size": AT_LEAST_ONE, "lr_schedule": Limits(choices=LR_SCHEDULES),
        "mask_ratio": FRACTION, "max_shift_ratio": FRACTION, "grad_clip": NON_NEGATIVE,
        "max_records": NON_NEGATIVE, "seed": SEED, "select": Limits(choices=SELECTIONS),
        "val_every": AT_LEAST_ONE, "betas": Limits(ge=0, lt=1), "checkpoint_every": AT_LEAST_ONE,
        "keep_checkpoints": NON_NEGATIVE, "log_every": AT_LEAST_ONE, "sample_every": AT_LEAST_ONE,
    }

    latent_dim: int = 128
    chunk: int = 50
    decoder_width: int = 256
    steps: int = PAPER_STEPS
    batch_size: int = 256
    lr_schedule: str = "constant"
    mask_ratio: float = 0.1
    max_shift_ratio: float = 0.25
    grad_clip: float = 0.0
    max_records: int = 0
    seed: int = 0
    select: str = "best_val"
    val_every: int = 500_000
    betas: tuple[float, float] = (0.9, 0.999)  # Adam's, every optimizer (the authors' defaults)
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    log_every: int = 50
    sample_every: int = 5000

    def __post_init__(self) -> None:
        where = self.kind or "generator"
        check_limits(self, where, type(self).LIMITS)
        tokens = N_SAMPLES // self.chunk
        if N_SAMPLES % self.chunk or self.chunk % 2 or tokens % 4:
            raise ConfigError(f"{where}.chunk must be even and cut {N_SAMPLES} samples into a multiple of 4 "
                              f"chunks (the decoder upsamples tokens / 4 positions by 8, each giving chunk / 2 "
                              f"samples; e.g. 10, 50, 250), got {self.chunk}")
        if len(self.betas) != 2:
            raise ConfigError(f"{where}.betas must be two numbers (Adam's beta1, beta2), got {list(self.betas)}")
        if self.decoder_width % 4:
            raise ConfigError(f"{where}.decoder_width must be a multiple of 4 (its stages are w/2, w/4, w/4), "
                              f"got {self.decoder_width}")

    @property
    def val_interval(self) -> int:
        """Steps between validations: the first count of batches whose samples exceed ``val_every``."""
        return self.val_every // self.batch_size + 1

    def lr_factor(self, step: int) -> float:
        """The share of each initial learning rate used at (0-based) ``step`` under ``lr_schedule``."""
        if self.lr_schedule == "constant":
            return 1.0
        return 0.5 * (1.0 + math.cos(math.pi * min(step, self.steps) / self.steps))


# ---- the authors' 1-D ResNet decoder ---------------------------------------------------------------

class BasicBlock1d(nn.Module):
    """Residual block of the decoder: (kernel-3 conv without bias, BatchNorm) x 2 with a ReLU between,
    plus the identity, then ReLU; PyTorch's default initialisation, as the authors' decoder has.

    (The ``resnet18-1d`` baseline's block starts its residual branch at zero instead, so it is not reused.)
    """

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv1d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm1d(channels)
        self.conv2 = nn.Conv1d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm1d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(out + x)


def _upsample_stage(channels_in: int, channels_out: int) -> nn.Sequential:
    """Doubles the length: ConvTranspose1d(kernel 4, stride 2, padding 1), then a residual block."""
    return nn.Sequential(nn.ConvTranspose1d(channels_in, channels_out, 4, stride=2, padding=1),
                         BasicBlock1d(channels_out))


class ResNetDecoder1d(nn.Module):
    """``z`` (n, latent) -> ECG (n, 5000): the authors' ``ResNet1dDecoder03`` (see :class:`GeneratorConfig`).

    Its layers have the authors' shapes in the authors' order (1,160,345 parameters at the paper's
    latent 128, width 256, chunk 50). It holds BatchNorm: in training a batch's statistics, in eval
    mode (sampling) the running ones, so a sampled ECG depends on its own ``z`` only.
    """

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        width, tokens = config.decoder_width, N_SAMPLES // config.chunk
        self.width = width
        self.project = nn.Linear(config.latent_dim, width * (tokens // 4))
        self.stages = nn.Sequential(_upsample_stage(width, width // 2), _upsample_stage(width // 2, width // 4),
                                    _upsample_stage(width // 4, width // 4))
        # no activation between the two per-token layers, as the authors wrote it
        self.to_samples = nn.Sequential(nn.Linear(width // 4, width // 4), nn.Linear(width // 4, config.chunk // 2))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.project(z).view(len(z), self.width, -1))  # (n, w/4, 2 * tokens)
        return self.to_samples(x.transpose(1, 2)).reshape(len(z), -1)


@dataclass(frozen=True)
class TrainingBatch:
    """One training step's input: z-scored, augmented ECGs and where the step is.

    ``x`` (n, 5000): the records shifted (zeros where the shift pads); ``mask`` (n, 5000): 1 where
    a sample is the record's own and outside the masked segment, 0 elsewhere; ``step``: 0-based
    global step; ``batch_in_epoch``: its position in the current epoch (the authors' loader index).
    """

    x: torch.Tensor
    mask: torch.Tensor
    step: int
    batch_in_epoch: int


class GenerativeModel(nn.Module):
    """What the training loop needs of a generative model (subclassed by the VAE and the DCGAN).

    A model class is registered in ``simecg.registries.GENERATORS`` under its ``kind`` (an entry point
    of the group ``simecg_bench.generators``) with its config dataclass (``Config``) and named
    presets (``PRESETS``: ``paper`` and ``tiny``), built as ``cls(config)``.
    """

    kind: ClassVar[str] = ""
    Config: ClassVar[type[GeneratorConfig]] = GeneratorConfig
    PRESETS: ClassVar[dict[str, GeneratorConfig]] = {}
    config: GeneratorConfig

    def sampler(self) -> nn.Module:
        """The part mapping ``z`` (n, latent) to ECGs (n, 5000): saved in the generator file."""
        raise NotImplementedError

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def train_step(self, batch: TrainingBatch, optimizers: dict[str, torch.optim.Optimizer],
                   generator: torch.Generator) -> dict[str, float]:
        """One optimisation step on ``batch``; ``generator`` seeds its noise (reparameterisation, ``z``)."""
        raise NotImplementedError

    def validation_loss(self, x: torch.Tensor, step: int, generator: torch.Generator) -> float:
        """The loss the authors select weights by, on z-scored ECGs ``x`` (n, 5000) after ``step`` steps:
        eval mode, no augmentation, the mean over ECGs; ``generator`` seeds its noise."""
        raise NotImplementedError

    @torch.no_grad()
    def mean_over_batches(self, x: torch.Tensor, loss: Any) -> float:
        """``loss(batch)`` (a per-batch mean) averaged over ``x`` in training-size batches, weighted by
        batch size (as the authors' evaluation sums ``loss x len(batch)``), in eval mode."""
        was_training = self.training
        self.eval()
        try:
            size = self.config.batch_size
            total = sum(float(loss(x[lo:lo + size])) * len(x[lo:lo + size]) for lo in range(0, len(x), size))
        finally:
            self.train(was_training)
        return total / len(x)


def draw_latent(shape: tuple[int, ...], distribution: str, generator: torch.Generator | None = None,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``z`` of ``shape`` from ``distribution`` (``normal``: N(0, 1), ``uniform``: U(0, 1)), seeded by ``generator``."""
    if distribution == "uniform":
        return torch.rand(shape, generator=generator, dtype=dtype)
    if distribution == "normal":
        return torch.randn(shape, generator=generator, dtype=dtype)
    raise ConfigError(f"unknown latent distribution {distribution!r}; known: {', '.join(LATENTS)}")


# ---- presets, configs, models by kind ---------------------------------------------------------------

def model_class(kind: str) -> type[GenerativeModel]:
    """The generative model registered as ``kind`` (``vae``, ``gan``): its ``Config``, ``PRESETS``, and the
    model itself; an unknown kind is a ConfigError listing the known ones."""
    return GENERATORS.get(kind)


def kind_of(config: GeneratorConfig) -> str:
    if not isinstance(config, GeneratorConfig) or config.kind not in GENERATORS:
        raise ConfigError(f"not a generator config: {config!r}")
    return config.kind


def preset(kind: str, name: str) -> GeneratorConfig:
    """The named preset (``paper`` or ``tiny``) of a generator kind."""
    presets = model_class(kind).PRESETS
    if name not in presets:
        raise ConfigError(f"unknown {kind} generator preset {name!r}; known: {', '.join(sorted(presets))}")
    return presets[name]


# The settings that change a generator's size: overriding one has resolve_config check it fits in memory.
ARCHITECTURE = frozenset({"latent_dim", "chunk", "decoder_width", "encoder_width", "encoder_out", "disc_width",
                          "disc_out", "disc_kernel"})


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
    values = {f.name: changes.get(f.name, getattr(base, f.name)) for f in dataclasses.fields(base)}
    check_values(values, where, type(base).LIMITS)  # names the key the user typed
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
    cls = model_class(kind).Config
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise CheckpointError(f"{source}: unknown {kind} settings {', '.join(unknown)}; written by a newer version?")
    return from_dict(cls, data, source)


def build_model(config: GeneratorConfig) -> GenerativeModel:
    """The (randomly initialised, by torch's global RNG) model of a config."""
    return model_class(kind_of(config))(config)


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
                   extra: Mapping[str, Any] | None = None, state: Mapping[str, torch.Tensor] | None = None) -> Path:
    """Write the sampler's weights (decoder / generator; ``state`` if given, e.g. the best-validation
    ones, else the model's current ones), its kind and config, atomically."""
    state = {k: v.detach().cpu().clone() for k, v in (state or model.sampler().state_dict()).items()}
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

def sample_latents(seed: int, indices: np.ndarray, latent_dim: int, purpose: str = "generated-latent",
                   distribution: str = "normal") -> np.ndarray:
    """``z_i`` ~ N(0, I) (or U(0, 1) per coordinate), one stream per (seed, index): the same ``z`` for an
    index in any batch."""
    if distribution not in LATENTS:
        raise ConfigError(f"unknown latent distribution {distribution!r}; known: {', '.join(LATENTS)}")
    out = np.empty((len(indices), latent_dim), dtype=np.float32)
    for row, i in enumerate(np.asarray(indices, dtype=np.int64).tolist()):
        rng = rng_for(seed, purpose, i)
        out[row] = (rng.random(latent_dim, dtype=np.float32) if distribution == "uniform"
                    else rng.standard_normal(latent_dim, dtype=np.float32))
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
