"""Pretraining settings, the resolved architecture, the corpus they name, and the encoder's identity.

:class:`PretrainConfig` is what ``[pretrain]`` in a suite and ``simecg-bench pretrain --set
pretrain.*`` set. :func:`encoder_identity` turns it (and the corpus's content) into the one
identity of the encoder it trains (:mod:`simecg.identity`); :func:`encoder_dir` is the one cache
folder of that encoder, shared by ``simecg-bench pretrain`` and ``simecg-bench run``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pretraining.corpora.base import resolve_options
from pretraining.mae import METHOD, MAEConfig, preset
from simecg.config import (
    AT_LEAST_ONE,
    FRACTION,
    NON_NEGATIVE,
    POSITIVE,
    SEED,
    Limits,
    check_limits,
    check_values,
    coerce,
    to_dict,
)
from simecg.errors import ConfigError
from simecg.identity import Identity
from simecg.identity import encoder_identity as _encoder_identity
from simecg.memory import check_trainable
from simecg.paths import cache_dir
from simecg.registries import CORPORA, METHODS

if TYPE_CHECKING:
    from pretraining.corpora.base import Corpus

SCHEDULES = ("constant", "cosine")
SELECTIONS = ("best_val", "last")  # which checkpoint becomes the encoder (docs/protocol.md, "MAE pretraining")
VAL_MASKS = ("fresh", "fixed")  # the validation's masks: drawn anew at every validation, or once
OPTIMIZERS = ("adam", "adamw")
DEVICES = ("auto", "cpu", "cuda")  # pretraining.ddp resolves "auto"


@dataclass(frozen=True)
class PretrainConfig:
    """How to pretrain; defaults are the paper's (docs/protocol.md, "MAE pretraining").

    ``model`` overrides single :class:`MAEConfig` fields of the preset, e.g.
    ``--set pretrain.model.depth=4``. ``method`` names the self-supervised method (a registered
    one: ``mae``, the paper's headline, ``simclr``, ``byol``, ``dino``, ``ibot``, or a plugin's;
    docs/protocol.md, "Pretraining methods"); ``method_options`` overrides single fields of its
    ``Config`` preset (``preset`` names the encoder's and the method's together), e.g.
    ``--set pretrain.method_options.temperature=0.5``. ``steps`` defaults to the authors' 1e9 samples seen at
    batch 512 (their loop stops once *more* than 1e9 have passed: 1,953,126 steps). Gradient
    clipping is off (0) as in the paper; ``amp`` means bf16 autocast on GPU.
    ``threads`` > 0 sets torch's CPU threads for the run (0: torch's default); on a small CPU
    shared with DataLoader workers, 1 thread avoids oversubscription. Like ``device`` it is in no
    fingerprint: thread counts sum in different orders, so their encoders are equivalent, not
    bit-identical (weights within 1e-3 after a few steps, the same losses; docs/protocol.md,
    "Reproducibility", and tests/test_pretrain_train.py).

    Validation and the encoder (docs/protocol.md, "MAE pretraining"): the validation loss is
    measured every ``val_every_samples`` samples seen (the authors' ``eval_every``, 1e6:
    every 1,954 steps at batch 512, see :func:`validation_interval`), or every ``val_every``
    steps when that is set (> 0; the small suites and tests pin their cadence in steps).
    ``select = "best_val"`` (the paper's) hands out the checkpoint of the lowest of these
    validation losses, as the authors' ``net.pth``; ``"last"`` hands out the final weights
    (the ``progress`` suite's fixed-step checkpoints). ``val_masks = "fresh"`` draws the
    validation's random masks anew at every validation, as the authors' model did (seeded here by
    ``seed`` and the step); ``"fixed"`` draws them once, so the losses of two steps differ by the
    weights alone.
    """

    corpus: str = "sim"
    corpus_size: int = 1_000_000
    corpus_seed: int = 0
    corpus_options: dict[str, Any] = field(default_factory=dict)
    data_dir: str | None = None  # where corpora of real data (ptbxl, vae, gan) read; `run --data-dir` sets it
    preset: str = "paper"
    model: dict[str, Any] = field(default_factory=dict)
    method: str = METHOD
    method_options: dict[str, Any] = field(default_factory=dict)
    steps: int = 1_953_126  # the authors stop once more than 1e9 samples are seen: 1e9 // 512 + 1 steps
    batch_size: int = 512
    lr: float = 1e-4
    optimizer: str = "adam"
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    grad_clip: float = 0.0
    val_size: int = 5000
    val_every: int = 0  # steps; 0: every val_every_samples samples seen
    val_every_samples: int = 1_000_000
    select: str = "best_val"
    val_masks: str = "fresh"
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    log_every: int = 50
    num_workers: int = 2
    prefetch_factor: int = 2
    threads: int = 0
    seed: int = 0
    device: str = "auto"
    amp: bool = True

    def __post_init__(self) -> None:
        check_limits(self, "pretrain", PRETRAIN_LIMITS)
        preset(self.preset)  # raises ConfigError for unknown presets
        model_config(self)  # the architecture's settings are checked now too (pretrain.model.*)
        method_config(self)  # and the method's (pretrain.method, pretrain.method_options.*)


# What each pretraining setting may take (simecg.config.Limits); every number must be finite.
PRETRAIN_LIMITS: dict[str, Limits] = {
    "corpus_size": POSITIVE, "corpus_seed": SEED, "steps": POSITIVE, "batch_size": POSITIVE, "lr": POSITIVE,
    "optimizer": Limits(choices=OPTIMIZERS), "betas": FRACTION, "weight_decay": NON_NEGATIVE,
    "schedule": Limits(choices=SCHEDULES), "warmup_steps": NON_NEGATIVE, "min_lr_ratio": Limits(ge=0, le=1),
    "grad_clip": NON_NEGATIVE, "val_size": NON_NEGATIVE, "val_every": NON_NEGATIVE,
    "val_every_samples": POSITIVE, "select": Limits(choices=SELECTIONS),
    "val_masks": Limits(choices=VAL_MASKS), "checkpoint_every": POSITIVE,
    "keep_checkpoints": AT_LEAST_ONE, "log_every": POSITIVE, "num_workers": NON_NEGATIVE,
    "prefetch_factor": AT_LEAST_ONE, "threads": NON_NEGATIVE, "seed": SEED, "device": Limits(choices=DEVICES),
}

# The architecture settings ``pretrain.model.*`` may take, checked before MAEConfig divides by them.
MODEL_LIMITS: dict[str, Limits] = {
    "signal_length": POSITIVE, "patch_size": POSITIVE, "embed_dim": POSITIVE, "depth": POSITIVE,
    "num_heads": POSITIVE, "mlp_ratio": POSITIVE, "decoder_embed_dim": POSITIVE, "decoder_depth": POSITIVE,
    "decoder_num_heads": POSITIVE, "mask_ratio": Limits(gt=0, lt=1),
}


def check_pretraining(config: PretrainConfig) -> None:
    """Checks that need the settings together, for a config about to pretrain (not for corpus commands,
    which build a :class:`PretrainConfig` only to name a corpus): the validation set must leave training data."""
    if config.val_size * 2 > config.corpus_size:
        raise ConfigError(
            f"pretrain.val_size {config.val_size} leaves too little of the {config.corpus_size}-ECG corpus for "
            "training (at most half may be held out); lower it, e.g. "
            f"--set pretrain.val_size={config.corpus_size // 10}"
        )


def model_config(config: PretrainConfig) -> MAEConfig:
    """The preset's architecture with ``config.model`` overrides applied (type-checked)."""
    base = preset(config.preset)
    fields = {f.name: f for f in dataclasses.fields(MAEConfig)}
    hints = {name: type(getattr(base, name)) for name in fields}
    changes = {}
    for key, value in config.model.items():
        if key not in fields:
            raise ConfigError(f"unknown model setting pretrain.model.{key}; valid: {', '.join(sorted(fields))}")
        changes[key] = coerce(value, hints[key], f"pretrain.model.{key}")
    values = {**dataclasses.asdict(base), **changes}
    check_values(values, "pretrain.model", MODEL_LIMITS)
    for whole, part in (("signal_length", "patch_size"), ("embed_dim", "num_heads"),
                        ("decoder_embed_dim", "decoder_num_heads")):
        if values[whole] % values[part]:
            raise ConfigError(f"pretrain.model.{whole} must be a multiple of pretrain.model.{part}, got "
                              f"{values[whole]} and {values[part]}")
    model = dataclasses.replace(base, **changes)
    if changes:  # the presets fit; a typed width might not
        settings = ", ".join(f"{k}={v}" for k, v in changes.items())
        check_trainable(model.parameter_count(), f"pretrain.model ({settings})")
    return model



def method_class(config: PretrainConfig) -> Any:
    """The registered pretraining method ``config.method`` (:data:`simecg.registries.METHODS`)."""
    return METHODS.get(config.method)


def method_config(config: PretrainConfig) -> Any:
    """The method's ``Config``: its preset ``config.preset`` with ``config.method_options`` applied (type-
    and range-checked against the method's ``LIMITS``)."""
    cls = method_class(config)
    where = f"pretrain.method_options ({config.method})"
    try:
        base = cls.PRESETS[config.preset]
    except KeyError:
        raise ConfigError(f"{where}: method {config.method!r} has no preset {config.preset!r} (pretrain.preset); "
                          f"its presets: {', '.join(sorted(cls.PRESETS))}") from None
    fields = {f.name for f in dataclasses.fields(base)}
    changes = {}
    for key, value in config.method_options.items():
        if key not in fields:
            raise ConfigError(f"unknown setting pretrain.method_options.{key} of method {config.method!r}; valid: "
                              f"{', '.join(sorted(fields)) or '(none: its settings are pretrain.model.*)'}")
        changes[key] = coerce(value, type(getattr(base, key)), f"pretrain.method_options.{key}")
    check_values({**dataclasses.asdict(base), **changes}, "pretrain.method_options", cls.LIMITS)
    return dataclasses.replace(base, **changes)


def build_method(config: PretrainConfig) -> Any:
    """The pretraining method ``config`` names, with its resolved settings and the resolved encoder."""
    return method_class(config)(method_config(config), model_config(config))


def validation_interval(config: PretrainConfig) -> int:
    """Steps between two validations: ``val_every`` when set, else as the authors counted samples.

    Their loop validates once the samples seen since the last validation *exceed*
    ``eval_every`` and then restarts the count at 0, so the interval is
    ``val_every_samples // batch_size + 1`` steps: 1,954 for 1e6 samples at batch 512
    (docs/protocol.md, "MAE pretraining"). ``batch_size`` is the global batch, so the cadence
    in samples holds for any batch size and number of processes.
    """
    if config.val_every > 0:
        return config.val_every
    return config.val_every_samples // config.batch_size + 1


def lr_at(config: PretrainConfig, step: int) -> float:
    """Learning rate of (0-based) ``step``: linear warmup, then constant or cosine decay."""
    if config.warmup_steps and step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return config.lr
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return config.lr * (config.min_lr_ratio + (1.0 - config.min_lr_ratio) * cosine)


def corpus_options(config: PretrainConfig) -> Any:
    """``config.corpus_options`` resolved into the typed ``Options`` of the corpus ``config.corpus``.

    The table may hold CLI text or TOML values, nested (``{"gaussian": {"augment_rate": 0}}``, as
    ``--set pretrain.corpus_options.gaussian.augment_rate=0`` makes it) or dotted. Unknown keys raise
    :class:`ConfigError` naming ``pretrain.corpus_options.<key>`` and the valid keys; values of the
    wrong type raise it naming the key. Every command resolves options here, so they mean the same
    in ``run``, ``pretrain`` and ``corpus build|preview``.
    """
    return resolve_options(options_class(config.corpus), config.corpus_options, corpus=config.corpus)


def options_class(corpus: str) -> type:
    """The ``Options`` dataclass of the registered corpus ``corpus``; the one check that a plugin's corpus
    has one (:class:`ConfigError` naming it otherwise)."""
    entry = CORPORA.get(corpus)
    options_cls = getattr(entry, "Options", None)
    if options_cls is None or not dataclasses.is_dataclass(options_cls):
        raise ConfigError(
            f"corpus {corpus!r} ({getattr(entry, '__module__', '?')}) has no Options dataclass; a registered "
            "corpus is a class with an Options dataclass, built as cls(size=, seed=, options=)"
        )
    return options_cls


def build_corpus(config: PretrainConfig) -> Corpus:
    """The corpus named by the config, from ``simecg.registries.CORPORA``, with its resolved options."""
    entry = CORPORA.get(config.corpus)
    options = corpus_options(config)
    fields = {f.name for f in dataclasses.fields(options)}
    if config.data_dir and "data_dir" in fields and options.data_dir is None:  # the run's --data-dir
        options = dataclasses.replace(options, data_dir=str(config.data_dir))
    return entry(size=config.corpus_size, seed=config.corpus_seed, options=options)


def encoder_identity(config: PretrainConfig, corpus: Corpus | None = None) -> Identity:
    """The identity of the encoder ``config`` trains (``corpus``: the config's own, if already built).

    The method (``config.method``) and its resolved settings are part of it, except for the masked
    autoencoder: its encoders were identified before there was a choice of method, and its settings
    are the architecture's, so their payload stays as it was (and so do their fingerprints and those
    of the cells built on them; :func:`simecg.identity.encoder_identity`). Another method on the same
    source and settings is another encoder.
    """
    corpus = corpus if corpus is not None else build_corpus(config)
    settings = to_dict(config)
    settings.pop("method"), settings.pop("method_options")
    method = None if config.method == METHOD else {"name": config.method, "config": to_dict(method_config(config))}
    return _encoder_identity(settings, model_config(config), corpus.identity(), method=method)


def encoder_dir(identity: Identity) -> Path:
    """``<cache>/encoders/<fingerprint>``: the one folder of an encoder, for ``pretrain`` and ``run`` alike."""
    return cache_dir() / "encoders" / identity.fingerprint
