"""The one training path for every neural model: pretrained encoders, scratch, baselines.

Same optimizer, augmentation, early stopping and evaluation for all, so a comparison is fair
by construction (PROTOCOL.md, fine-tuning): Adam, batch 256, up to 500 epochs, validation
every 5 epochs, early stop on validation loss with patience 5 evaluations, the weights of the
best evaluation restored. Augmentation: one random contiguous zeroed segment and a random
zero-padded shift.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from simecg.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Fine-tuning hyper-parameters; defaults are the paper's (tuned ones come from Optuna)."""

    lr: float = 1e-4
    batch_size: int = 256
    max_epochs: int = 500
    eval_every: int = 5
    patience: int = 5
    weight_decay: float = 0.0
    mask_ratio: float = 0.0  # augmentation: share of the signal zeroed as one contiguous segment
    max_shift_ratio: float = 0.0  # augmentation: largest shift, as a share of the length
    grad_clip: float = 0.0  # 0 = off

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_epochs < 1 or self.eval_every < 1 or self.patience < 1:
            raise ConfigError("finetune.batch_size, max_epochs, eval_every and patience must be >= 1")
        if not 0 <= self.mask_ratio < 1 or not 0 <= self.max_shift_ratio < 1:
            raise ConfigError("finetune.mask_ratio and max_shift_ratio must be in [0, 1)")


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


def _evaluate_loss(model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int) -> float:
    loss_fn = nn.BCEWithLogitsLoss(reduction="sum")
    total = 0.0
    model.eval()
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            logits = model(_as_tensor(x[start : start + batch_size]))
            total += loss_fn(logits, torch.from_numpy(y[start : start + batch_size]).float()).item()
    return total / max(len(x), 1)


def train_classifier(
    model: nn.Module,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    config: TrainConfig = TrainConfig(),
    seed: int = 0,
    on_eval: Callable[[int, float], None] | None = None,
    on_log: Callable[[dict[str, float], int], None] | None = None,
) -> FitResult:
    """Train ``model`` (``(batch, 1, L)`` -> logits ``(batch,)``) with early stopping on validation loss.

    Args:
        train, val: ``(signals (n, L) float32, labels (n,) 0/1)``; signals already z-scored.
        seed: drives shuffling and augmentation (the caller seeds model initialisation).
        on_eval: called as ``on_eval(epoch, val_loss)`` at every evaluation (Optuna pruning
            raises from here).
        on_log: called as ``on_log(metrics, epoch)`` for loss curves (MLflow).
    """
    x_train, y_train = train
    x_val, y_val = val
    if len(x_train) == 0 or len(x_val) == 0:
        raise ConfigError(f"cannot train with {len(x_train)} training and {len(x_val)} validation samples")
    y_train = np.asarray(y_train, dtype=np.float32)
    y_val = np.asarray(y_val, dtype=np.float32)
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
        order = torch.randperm(len(x_train), generator=generator).numpy()
        running, seen = 0.0, 0
        for start in range(0, len(order), config.batch_size):
            idx = np.sort(order[start : start + config.batch_size])  # sorted reads are kinder to memmaps
            xb = augment(_as_tensor(x_train[idx]), config.mask_ratio, config.max_shift_ratio, generator)
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
        val_loss = _evaluate_loss(model, x_val, y_val, config.batch_size)
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
