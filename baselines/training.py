"""The one training path for every neural model: pretrained encoders, scratch, baselines.

Same optimizer, augmentation, early stopping and evaluation for all, so a comparison is fair
by construction (PROTOCOL.md, fine-tuning): Adam, batch 256, up to 500 epochs, validation
every 5 epochs, early stop on validation loss with patience 5 evaluations, the weights of the
best evaluation restored. Augmentation: one random contiguous zeroed segment and a random
zero-padded shift.

What the loop trains and validates on is data-agnostic: training samples are a
:class:`TrainingSamples` (fixed arrays, or a set whose samples change per epoch, e.g. a random
10-s crop of each longer record), validation is :class:`GroupedWindows` (fixed windows, each
belonging to an item; an item's logit is the max over its windows, so a record cut into several
windows is validated as the record it is). Plain ``(x, y)`` arrays mean one sample or window per
item, as for 10-s records.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from simecg.errors import ConfigError

log = logging.getLogger(__name__)


# What a TrainConfig field left at None (= "the model's own default") becomes when the model
# declares no default of its own (:attr:`baselines.base.Baseline.training_defaults`).
FALLBACK_TRAINING: Mapping[str, Any] = {"weight_decay": 0.0}


@dataclass(frozen=True)
class TrainConfig:
    """Fine-tuning hyper-parameters; defaults are the paper's (tuned ones come from Optuna).

    ``weight_decay`` is None by default: each model brings its own (PROTOCOL.md: Adam with weight
    decay 0.01 for the supervised baselines, 0 for fine-tuning a pretrained encoder; see
    :attr:`baselines.base.Baseline.training_defaults`). A number set in a suite's ``[finetune]``,
    by ``--set finetune.weight_decay=...`` or by a tuner applies to every model instead.
    """

    lr: float = 1e-4
    batch_size: int = 256
    max_epochs: int = 500
    eval_every: int = 5
    patience: int = 5
    weight_decay: float | None = None  # None = the model's default (baselines 0.01, pretrained MAE 0)
    mask_ratio: float = 0.0  # augmentation: share of the signal zeroed as one contiguous segment
    max_shift_ratio: float = 0.0  # augmentation: largest shift, as a share of the length
    grad_clip: float = 0.0  # 0 = off

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_epochs < 1 or self.eval_every < 1 or self.patience < 1:
            raise ConfigError("finetune.batch_size, max_epochs, eval_every and patience must be >= 1")
        if not 0 <= self.mask_ratio < 1 or not 0 <= self.max_shift_ratio < 1:
            raise ConfigError("finetune.mask_ratio and max_shift_ratio must be in [0, 1)")
        if self.weight_decay is not None and self.weight_decay < 0:
            raise ConfigError(f"finetune.weight_decay must be >= 0, got {self.weight_decay}")

    def resolved(self, defaults: Mapping[str, Any] | None = None) -> TrainConfig:
        """This config with every field left at None filled from ``defaults`` (a model's own), then
        from :data:`FALLBACK_TRAINING`; fields set to a value are kept."""
        import dataclasses

        defaults = {**FALLBACK_TRAINING, **dict(defaults or {})}
        unknown = sorted(set(defaults) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ConfigError(f"training defaults name no fine-tuning setting: {', '.join(unknown)}")
        missing = {k: v for k, v in defaults.items() if getattr(self, k) is None}
        return dataclasses.replace(self, **missing) if missing else self


@runtime_checkable
class TrainingSamples(Protocol):
    """Training samples whose signals may change from epoch to epoch (random crops, say).

    ``labels`` holds one 0/1 label per sample; ``batch(index, epoch)`` returns the ``(len(index),
    L)`` float32 signals of those samples in ``epoch`` (1-based). The same ``(index, epoch)`` must
    give the same signals (the randomness is the sampler's own, seeded; the loop's generator is
    not used), and every sample must appear whatever the batch order.
    """

    labels: np.ndarray

    def __len__(self) -> int: ...

    def batch(self, index: np.ndarray, epoch: int) -> np.ndarray: ...


@dataclass(frozen=True)
class ArraySamples:
    """Fixed training samples: the same signal for a sample in every epoch."""

    signals: np.ndarray  # (n, L), may be a memmap
    labels: np.ndarray  # (n,)

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, index: np.ndarray, epoch: int) -> np.ndarray:
        return np.asarray(self.signals[index], dtype=np.float32)


@dataclass(frozen=True)
class GroupedWindows:
    """Evaluation windows grouped into items (records): an item's logit is the max over its windows.

    The max of logits is the logit of the max of sigmoid scores, so validation losses and scores
    are those of the record-level score a test set gets (the max over a record's windows).
    """

    signals: np.ndarray  # (n_windows, L)
    group: np.ndarray  # (n_windows,) item index of each window, 0 .. n_items - 1
    labels: np.ndarray  # (n_items,) 0/1

    def __post_init__(self) -> None:
        if len(self.signals) != len(self.group):
            raise ConfigError(f"{len(self.signals)} evaluation windows but {len(self.group)} window groups")
        if len(self.group) and (self.group.min() < 0 or self.group.max() >= len(self.labels)
                                or len(np.unique(self.group)) != len(self.labels)):
            raise ConfigError("every evaluation item needs at least one window, and every window one item")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def window_labels(self) -> np.ndarray:
        """The label of each window (its item's)."""
        return self.labels[self.group]

    def item_max(self, window_values: np.ndarray) -> np.ndarray:
        """Max over each item's windows of per-window values (logits or scores), in item order."""
        out = np.full(len(self.labels), -np.inf, dtype=np.float64)
        np.maximum.at(out, self.group, np.asarray(window_values, dtype=np.float64))
        return out


def as_training_samples(x: np.ndarray | TrainingSamples, y: np.ndarray | None = None) -> TrainingSamples:
    """Training input as :class:`TrainingSamples` (arrays ``(n, L)`` + labels become :class:`ArraySamples`)."""
    if isinstance(x, TrainingSamples) and not isinstance(x, np.ndarray):
        if y is not None and len(y) != len(x):
            raise ConfigError(f"{len(x)} training samples but {len(y)} labels")
        return x
    if y is None or len(x) != len(y):
        raise ConfigError(f"training signals and labels differ in length "
                          f"({len(x)} vs {len(y) if y is not None else 0})")
    return ArraySamples(x, np.asarray(y, dtype=np.float32))


def as_grouped_windows(x: np.ndarray | GroupedWindows, y: np.ndarray | None = None) -> GroupedWindows:
    """Evaluation input as :class:`GroupedWindows` (arrays: one window per item)."""
    if isinstance(x, GroupedWindows):
        if y is not None and len(y) != len(x.labels):
            raise ConfigError(f"{len(x.labels)} evaluation items but {len(y)} labels")
        return x
    if y is None or len(x) != len(y):
        raise ConfigError(f"validation signals and labels differ in length "
                          f"({len(x)} vs {len(y) if y is not None else 0})")
    return GroupedWindows(x, np.arange(len(x), dtype=np.int64), np.asarray(y, dtype=np.float32))


@dataclass
class FitResult:
    """A trained model (best validation weights restored) and its learning curve."""

    model: nn.Module
    best_epoch: int
    best_val_loss: float
    epochs_run: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)


def augment(x: torch.Tensor, mask_ratio: float, max_shift_ratio: float, generator: torch.Generator) -> torch.Tensor:
    """Zero one random contiguous segment and shift with zero padding, per sample."""
    batch, _, length = x.shape
    out = x.clone()
    if mask_ratio > 0:
        width = int(round(mask_ratio * length))
        starts = torch.randint(0, length - width + 1, (batch,), generator=generator)
        pos = torch.arange(length)
        zero = (pos[None, :] >= starts[:, None]) & (pos[None, :] < starts[:, None] + width)
        out = out.masked_fill(zero[:, None, :], 0.0)
    if max_shift_ratio > 0:
        limit = int(max_shift_ratio * length)
        shifts = torch.randint(-limit, limit + 1, (batch,), generator=generator)
        src = torch.arange(length)[None, :] - shifts[:, None]
        valid = (src >= 0) & (src < length)
        gathered = torch.gather(out[:, 0, :], 1, src.clamp(0, length - 1))
        out = (gathered * valid).unsqueeze(1)
    return out


def _as_tensor(x: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    return t.unsqueeze(1) if t.dim() == 2 else t


def _logits(model: nn.Module, x: np.ndarray, batch_size: int) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            out.append(model(_as_tensor(x[start : start + batch_size])).double().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def _evaluate_loss(model: nn.Module, val: GroupedWindows, batch_size: int) -> float:
    """Mean log loss of the items (records), each scored by the max logit over its windows."""
    logits = torch.from_numpy(val.item_max(_logits(model, val.signals, batch_size)))
    targets = torch.from_numpy(np.asarray(val.labels, dtype=np.float64))
    return float(nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="mean"))


def train_classifier(
    model: nn.Module,
    train: tuple[np.ndarray, np.ndarray] | TrainingSamples,
    val: tuple[np.ndarray, np.ndarray] | GroupedWindows,
    config: TrainConfig = TrainConfig(),
    seed: int = 0,
    on_eval: Callable[[int, float], None] | None = None,
    on_log: Callable[[dict[str, float], int], None] | None = None,
) -> FitResult:
    """Train ``model`` (``(batch, 1, L)`` -> logits ``(batch,)``) with early stopping on validation loss.

    Args:
        train: ``(signals (n, L) float32, labels (n,) 0/1)`` or :class:`TrainingSamples` (whose
            signals may differ per epoch, e.g. random crops); signals already z-scored.
        val: ``(signals, labels)`` (one window per item) or :class:`GroupedWindows` (several
            windows per record; a record's logit is the max over its windows).
        config: fine-tuning settings; a ``weight_decay`` left at None means 0 here (models fill
            in their own default first, :meth:`TrainConfig.resolved`).
        seed: drives shuffling and augmentation (the caller seeds model initialisation).
        on_eval: called as ``on_eval(epoch, val_loss)`` at every evaluation (Optuna pruning
            raises from here).
        on_log: called as ``on_log(metrics, epoch)`` for loss curves (MLflow).
    """
    samples = as_training_samples(*train) if isinstance(train, tuple) else as_training_samples(train)
    windows = as_grouped_windows(*val) if isinstance(val, tuple) else as_grouped_windows(val)
    if len(samples) == 0 or len(windows) == 0:
        raise ConfigError(f"cannot train with {len(samples)} training and {len(windows)} validation samples")
    y_train = np.asarray(samples.labels, dtype=np.float32)
    config = config.resolved()
    generator = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = nn.BCEWithLogitsLoss()
    best_loss, best_epoch, best_state, bad_evals = math.inf, 0, copy.deepcopy(model.state_dict()), 0
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    epoch = 0
    for epoch in range(1, config.max_epochs + 1):
        model.train()
        order = torch.randperm(len(samples), generator=generator).numpy()
        running, seen = 0.0, 0
        for start in range(0, len(order), config.batch_size):
            idx = np.sort(order[start : start + config.batch_size])  # sorted reads are kinder to memmaps
            xb = augment(_as_tensor(samples.batch(idx, epoch)), config.mask_ratio, config.max_shift_ratio, generator)
            yb = torch.from_numpy(y_train[idx])
            loss = loss_fn(model(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                nn.utils.clip_grad_norm_(params, config.grad_clip)
            optimizer.step()
            running += loss.item() * len(idx)
            seen += len(idx)
        if epoch % config.eval_every and epoch != config.max_epochs:
            continue
        val_loss = _evaluate_loss(model, windows, config.batch_size)
        record = {"train_loss": running / seen, "val_loss": val_loss}
        history.append({"epoch": float(epoch), **record})
        if on_log:
            on_log(record, epoch)
        if on_eval:
            on_eval(epoch, val_loss)
        if val_loss < best_loss:
            best_loss, best_epoch, bad_evals = val_loss, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad_evals += 1
            if bad_evals >= config.patience:
                log.debug("early stop at epoch %d (best %d)", epoch, best_epoch)
                break
    model.load_state_dict(best_state)
    model.eval()
    return FitResult(model, best_epoch, best_loss, epoch, time.perf_counter() - started, history)


def predict_scores(model: nn.Module, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Sigmoid scores of ``model`` on signals ``(n, L)``, in order."""
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            out.append(torch.sigmoid(model(_as_tensor(x[start : start + batch_size]))).numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)
