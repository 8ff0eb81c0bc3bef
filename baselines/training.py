"""The one training path for every neural model: pretrained encoders, scratch, baselines.

Same optimizer, augmentation, early stopping and evaluation for all, so a comparison is fair
by construction (docs/protocol.md, fine-tuning): Adam without weight decay, batch 256, up to 500
epochs, validation every 5 epochs, early stop on validation loss once more than 5 evaluations in a
row have not improved (the authors' ``EarlyStopper``: the 6th such evaluation stops), the weights
of the best evaluation restored. Tuning trials run without early stopping (``early_stopping =
False``; Optuna's pruner ends them instead). Augmentation: one random contiguous zeroed segment
and a random zero-padded shift.

What the loop trains and validates on is data-agnostic: training samples are a
:class:`TrainingSamples` (fixed arrays, or a set whose samples change per epoch, e.g. a random
10-s crop of each longer record), validation is :class:`GroupedWindows` (fixed windows, each
belonging to an item; an item's logit is the max over its windows, so a record cut into several
windows is validated as the record it is). Plain ``(x, y)`` arrays mean one sample or window per
item, as for 10-s records.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from simecg.config import AT_LEAST_ONE, FRACTION, NON_NEGATIVE, POSITIVE, check_limits
from simecg.errors import ConfigError, DivergedError

log = logging.getLogger(__name__)


# What a TrainConfig field left at None (= "the model's own default") becomes when the model
# declares no default of its own (:attr:`baselines.base.Baseline.training_defaults`).
FALLBACK_TRAINING: Mapping[str, Any] = {"weight_decay": 0.0}


@dataclass(frozen=True)
class TrainConfig:
    """Fine-tuning hyper-parameters; defaults are the paper's (tuned ones come from Optuna).

    ``weight_decay`` is None by default: the model's own default, which is 0 for every built-in
    model (docs/protocol.md: the authors' Adam gets no weight decay, whatever their YAML declares;
    a plugin may declare one, :attr:`baselines.base.Baseline.training_defaults`). A number set in a
    suite's ``[finetune]``, by ``--set finetune.weight_decay=0.01`` (the value the authors' YAML
    declares) or by a tuner applies to every model instead.

    ``patience`` counts evaluations without improvement that are tolerated: training stops at the
    ``patience + 1``-th in a row, as the authors' ``EarlyStopper`` (``bad > patience``).
    ``early_stopping = False`` trains all ``max_epochs`` (tuning trials: pruning ends them).
    """

    lr: float = 1e-4
    batch_size: int = 256
    max_epochs: int = 500
    eval_every: int = 5
    patience: int = 5  # evaluations without improvement tolerated; the next one stops training
    early_stopping: bool = True  # False: every epoch up to max_epochs (the best evaluation is still restored)
    weight_decay: float | None = None  # None = the model's default (0 for every built-in model)
    mask_ratio: float = 0.0  # augmentation: share of the signal zeroed as one contiguous segment
    max_shift_ratio: float = 0.0  # augmentation: largest shift, as a share of the length
    grad_clip: float = 0.0  # 0 = off
    # Where every stage of a cell runs (training, validation, test scoring, tuning trials): "auto"
    # (the GPU when one is visible, else the CPU), "cpu", "cuda" or "cuda:<index>"
    # (:func:`resolve_device`). Speed only: it is in no fingerprint (simecg.identity.IGNORED).
    device: str = "auto"

    def __post_init__(self) -> None:
        """Every value checked when the config is built (suite, ``--set``, a tuner's trial), so a bad one
        fails in one line naming ``finetune.<field>`` before anything runs, not in every cell."""
        check_limits(self, "finetune", {
            "lr": POSITIVE, "batch_size": AT_LEAST_ONE, "max_epochs": AT_LEAST_ONE, "eval_every": AT_LEAST_ONE,
            "patience": AT_LEAST_ONE, "weight_decay": NON_NEGATIVE, "mask_ratio": FRACTION,
            "max_shift_ratio": FRACTION, "grad_clip": NON_NEGATIVE,
        })
        check_device(self.device)  # its message names finetune.device

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
        with np.errstate(invalid="ignore"):  # a NaN window stays NaN in its item: divergence is caught downstream
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


DEVICES = "auto, cpu, cuda or cuda:<index>"


def check_device(name: str) -> str:
    """``name`` if fine-tuning accepts it as a device (``auto``, ``cpu``, ``cuda``, ``cuda:<index>``),
    else a ConfigError naming it. The spelling only: a suite naming a GPU loads (``list``, ``report``)
    on a machine without one; :func:`resolve_device` checks that the GPU is there, which ``run``
    and its ``--dry-run`` do first (:func:`benchmark.suites.config.require_devices`)."""
    kind, sep, index = str(name).partition(":")
    if name in ("auto", "cpu", "cuda") or (kind == "cuda" and sep and index.isdigit()):
        return name
    raise ConfigError(f"finetune.device must be {DEVICES}, got {name!r}")


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """The torch device ``finetune.device`` names: ``auto`` is the GPU when CUDA is available, else the CPU.

    A GPU asked for but not visible is a ConfigError, never a silent run on the CPU (14,430 cells
    on a CPU by mistake would take months).
    """
    if isinstance(name, torch.device):
        return name
    check_device(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise ConfigError(f"finetune.device is {name!r} but {count} CUDA GPU(s) are visible; use auto or cpu")
    return device


def autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on a GPU that has bf16 (tensor cores; losses and reductions stay fp32, so no
    loss scaling is needed); nothing elsewhere, so CPU results stay plain fp32 and do not change."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(x: np.ndarray, device: torch.device) -> torch.Tensor:
    """Signals ``(n, L)`` as a float32 ``(n, 1, L)`` tensor on ``device``, in one transfer.

    On the CPU a writable float32 array is shared, not copied (nothing here writes into it: batches
    are gathered copies, augmentation is out of place); a read-only one (a memmap) is copied once.
    To a GPU the copy is queued without waiting for the GPU's work (``non_blocking``; the host
    array is staged before the call returns, so it may change afterwards).
    """
    array = np.ascontiguousarray(x, dtype=np.float32)
    if not array.flags.writeable:
        array = array.copy()
    t = torch.from_numpy(array).to(device, non_blocking=True)
    return t.unsqueeze(1) if t.dim() == 2 else t


def augment(x: torch.Tensor, mask_ratio: float, max_shift_ratio: float, generator: torch.Generator) -> torch.Tensor:
    """Zero one random contiguous segment and shift with zero padding, per sample.

    Works where ``x`` is (CPU or GPU), out of place (``x`` itself is returned when both ratios are
    0). The random draws come from ``generator`` on the CPU, a few integers per batch, so a seed
    gives the same augmentation on every device. Both steps are one gather and one fill: an output
    sample is the input at its source position (its position less the shift), or zero where that
    source is outside the signal or inside the zeroed segment.
    """
    batch, _, length = x.shape
    if mask_ratio <= 0 and max_shift_ratio <= 0:
        return x
    src = torch.arange(length, device=x.device)[None, :]  # the source position of each output sample
    starts = width = None
    if mask_ratio > 0:
        width = int(round(mask_ratio * length))
        starts = torch.randint(0, length - width + 1, (batch, 1), generator=generator).to(x.device, non_blocking=True)
    if max_shift_ratio > 0:
        limit = int(max_shift_ratio * length)
        shifts = torch.randint(-limit, limit + 1, (batch, 1), generator=generator).to(x.device, non_blocking=True)
        src = src - shifts
    drop = (src < 0) | (src >= length) if max_shift_ratio > 0 else None
    if starts is not None:
        segment = (src >= starts) & (src < starts + width)
        drop = segment if drop is None else drop | segment
    if max_shift_ratio <= 0:
        return x.masked_fill(drop[:, None, :], 0.0)
    return torch.gather(x[:, 0, :], 1, src.clamp(0, length - 1)).masked_fill_(drop, 0.0).unsqueeze(1)


class DeviceBatches:
    """The training batches of one fit, made on the device: shuffle, read, augment.

    Fixed arrays (:class:`ArraySamples`) go to the device once, and a batch is an index into them
    on the device; samples that change per epoch (random crops) are read per batch and moved. An
    epoch's order (sorted within each batch, kind to memmaps) goes to the device in one transfer.
    Order and augmentation are drawn from the loop's CPU ``generator``, so a seed gives the same
    batches on every device. Also what ``bench finetune`` times as the data path.
    """

    def __init__(self, samples: TrainingSamples, config: TrainConfig, device: torch.device,
                 generator: torch.Generator):
        self.samples, self.config, self.device, self.generator = samples, config, device, generator
        self.labels = torch.from_numpy(np.array(samples.labels, dtype=np.float32)).to(device, non_blocking=True)
        self.fixed = to_device(samples.signals, device) if isinstance(samples, ArraySamples) else None

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(signals (b, 1, L), labels (b,))`` batches of ``epoch`` (1-based), every sample once."""
        size, config = self.config.batch_size, self.config
        order = torch.randperm(len(self.samples), generator=self.generator).numpy()
        chunks = [np.sort(order[start : start + size]) for start in range(0, len(order), size)]
        index = torch.from_numpy(np.concatenate(chunks)).to(self.device, non_blocking=True)
        for start, chunk in zip(range(0, len(order), size), chunks, strict=True):
            rows = index[start : start + len(chunk)]
            x = self.fixed[rows] if self.fixed is not None else to_device(self.samples.batch(chunk, epoch), self.device)
            yield augment(x, config.mask_ratio, config.max_shift_ratio, self.generator), self.labels[rows]


def _logits(model: nn.Module, x: torch.Tensor, batch_size: int, precision: Any) -> np.ndarray:
    """Logits of the windows ``x`` (on the model's device), as float64, in one transfer back."""
    model.eval()
    with torch.no_grad(), precision:
        out = [model(x[start : start + batch_size]).float() for start in range(0, len(x), batch_size)]
    return torch.cat(out).double().cpu().numpy() if out else np.zeros(0)


def _evaluate_loss(model: nn.Module, val: GroupedWindows, signals: torch.Tensor, batch_size: int,
                   precision: Any) -> float:
    """Mean log loss of the items (records), each scored by the max logit over its windows."""
    logits = torch.from_numpy(val.item_max(_logits(model, signals, batch_size, precision)))
    targets = torch.from_numpy(np.asarray(val.labels, dtype=np.float64))
    return float(nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="mean"))


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the model's weights and buffers where they are (the best evaluation's, restored at the
    end): ``state_dict`` with each tensor cloned, its metadata kept; a tenth of ``deepcopy``'s time."""
    state = model.state_dict()
    for key, value in state.items():
        state[key] = value.clone()
    return state


def _mean_loss(losses: list[torch.Tensor], sizes: list[int]) -> float:
    """The epoch's training loss (per sample), read back from the device once per evaluation."""
    values = torch.stack(losses).tolist() if losses else []
    return sum(v * n for v, n in zip(values, sizes, strict=True)) / max(1, sum(sizes))


def train_classifier(
    model: nn.Module,
    train: tuple[np.ndarray, np.ndarray] | TrainingSamples,
    val: tuple[np.ndarray, np.ndarray] | GroupedWindows,
    config: TrainConfig = TrainConfig(),
    seed: int = 0,
    on_eval: Callable[[int, float], None] | None = None,
    on_log: Callable[[dict[str, float], int], None] | None = None,
) -> FitResult:
    """Train ``model`` (``(batch, 1, L)`` -> logits ``(batch,)``), early-stopped on validation loss.

    Training stops once more than ``config.patience`` evaluations in a row have not lowered the
    best validation loss (unless ``config.early_stopping`` is False); the best evaluation's weights
    are restored either way.

    Everything runs on ``config.device`` (:func:`resolve_device`): the model and the fixed
    training and validation arrays move there once; per batch there is an index into them, the
    augmentation, forward, backward and the Adam step, nothing read back (the training loss is
    read at evaluations only), with bf16 autocast on a GPU (:func:`autocast`). The returned model
    stays on the device. The thread count is the caller's (the runner's per worker).

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
    config = config.resolved()
    device = resolve_device(config.device)
    model.to(device)
    generator = torch.Generator().manual_seed(seed)
    batches = DeviceBatches(samples, config, device, generator)
    val_signals = to_device(windows.signals, device)
    precision = autocast(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay,
                                 **({"fused": True} if device.type == "cuda" else {}))
    loss_fn = nn.BCEWithLogitsLoss()
    best_loss, best_epoch, best_state, bad_evals = math.inf, 0, _snapshot(model), 0
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    epoch = 0
    for epoch in range(1, config.max_epochs + 1):
        model.train()
        losses: list[torch.Tensor] = []
        sizes: list[int] = []
        for xb, yb in batches.epoch(epoch):
            with precision:
                loss = loss_fn(model(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                nn.utils.clip_grad_norm_(params, config.grad_clip)
            optimizer.step()
            losses.append(loss.detach())
            sizes.append(yb.shape[0])
        if epoch % config.eval_every and epoch != config.max_epochs:
            continue
        val_loss = _evaluate_loss(model, windows, val_signals, config.batch_size, precision)
        record = {"train_loss": _mean_loss(losses, sizes), "val_loss": val_loss}
        _check_converging(record, epoch, config.lr)
        history.append({"epoch": float(epoch), **record})
        if on_log:
            on_log(record, epoch)
        if on_eval:
            on_eval(epoch, val_loss)
        if val_loss < best_loss:
            best_loss, best_epoch, bad_evals = val_loss, epoch, 0
            best_state = _snapshot(model)
        else:
            bad_evals += 1
            if config.early_stopping and bad_evals > config.patience:
                log.debug("early stop at epoch %d (best %d)", epoch, best_epoch)
                break
    model.load_state_dict(best_state)
    model.eval()
    return FitResult(model, best_epoch, best_loss, epoch, time.perf_counter() - started, history)


# Mean binary cross-entropy per sample past which a fine-tuning has diverged: a constant guess costs
# ln 2 = 0.69, and a loss of 1e3 means logits wrong by a thousand on average (lr 1e3 reaches 1e20).
DIVERGED_LOSS = 1e3


def _check_converging(record: dict[str, float], epoch: int, lr: float) -> None:
    """Raise :class:`DivergedError` when an evaluation's training or validation loss is not finite or
    past :data:`DIVERGED_LOSS`: the weights are then useless, and a cell trained on would end
    FINISHED with a test F1 of 0 and no error (docs/protocol.md, "Fine-tuning")."""
    bad = {k: v for k, v in record.items() if not math.isfinite(v) or v > DIVERGED_LOSS}
    if bad:
        found = ", ".join(f"{k.replace('_', ' ')} {v:.3g}" for k, v in bad.items())
        raise DivergedError(f"fine-tuning diverged at epoch {epoch} ({found}) with finetune.lr {lr:g}; "
                            "lower finetune.lr (or set finetune.grad_clip)")


def predict_scores(model: nn.Module, x: np.ndarray, batch_size: int = 512,
                   device: str | torch.device | None = None) -> np.ndarray:
    """Sigmoid scores of ``model`` on signals ``(n, L)``, in order.

    On ``device`` (``finetune.device``; None: where the model's parameters are), under the same
    autocast as training; the model moves there if it is elsewhere.
    """
    if device is None:
        first = next(iter(model.parameters()), None)
        target = first.device if first is not None else torch.device("cpu")
    else:
        target = resolve_device(device)
    model.to(target)
    model.eval()
    out = []
    with torch.no_grad(), autocast(target):
        for start in range(0, len(x), batch_size):
            out.append(torch.sigmoid(model(to_device(x[start : start + batch_size], target)).float()))
    return torch.cat(out).cpu().numpy() if out else np.zeros(0, dtype=np.float32)
