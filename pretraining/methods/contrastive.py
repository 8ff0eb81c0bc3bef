"""What every two-view method shares: the view settings and their limits, the CLS features of a view.

The authors' loader makes the views of SimCLR, BYOL, DINO and iBOT alike (their
``dataloader.py``: the same ``RandomMask`` and ``RandomShift`` for every method but the MAE), so
the settings live here once (docs/protocol.md, "Pretraining methods").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pretraining.mae import ECGEncoder
from simecg.config import Limits

VIEWS_AT_VALIDATION = ("plain", "augmented")


@dataclass(frozen=True)
class ViewConfig:
    """The two views' augmentation (authors' ``config.yaml``: ``aug_mask_ratio`` 0.5, ``max_shift_ratio``
    0.5) and what the validation loss sees: ``"plain"`` records, as the authors' validation loader (no
    augmentation: both views are the record), or ``"augmented"`` views, seeded by ``(seed, step)``."""

    aug_mask_ratio: float = 0.5
    max_shift_ratio: float = 0.5
    val_views: str = "plain"


VIEW_LIMITS: dict[str, Limits] = {
    "aug_mask_ratio": Limits(ge=0, lt=1), "max_shift_ratio": Limits(ge=0, le=1),
    "val_views": Limits(choices=VIEWS_AT_VALIDATION),
}


def augmenting(module: nn.Module, config: ViewConfig) -> bool:
    """Whether ``module`` makes augmented views now: always in training, at validation as ``val_views`` says."""
    return module.training or config.val_views == "augmented"


def cls_features(encoder: ECGEncoder, signals: torch.Tensor) -> torch.Tensor:
    """The CLS token of the encoder's output, ``(batch, embed_dim)``: the feature fine-tuning starts from."""
    return encoder(signals)[:, 0]


def mlp(sizes: list[int], batch_norm: bool = False, activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Linear layers of ``sizes`` with an activation (and BatchNorm) between them, none after the last."""
    layers: list[nn.Module] = []
    for i, (inp, out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(inp, out))
        if i < len(sizes) - 2:
            if batch_norm:
                layers.append(nn.BatchNorm1d(out))
            layers.append(activation())
    return nn.Sequential(*layers)
