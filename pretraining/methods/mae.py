"""Masked autoencoding, the paper's headline method, behind the method contract (docs/protocol.md).

The model itself is :class:`pretraining.mae.MaskedAutoencoder`; its settings (mask ratio,
decoder) are architecture settings, ``pretrain.model.*``, as before methods were named, so the
method has none of its own and the encoders it trains keep their fingerprints. Its random
numbers per step are the per-patch mask noise the stream always drew.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from pretraining.figures import reconstruction_figure
from pretraining.mae import MaskedAutoencoder
from pretraining.methods.base import PretrainingMethod


@dataclass(frozen=True)
class MAEMethodConfig:
    """No settings of its own: the MAE's are the architecture's (``pretrain.model.mask_ratio`` ...)."""


class MAE(PretrainingMethod):
    """Masked autoencoder (He et al. 2022): MSE on 75% randomly masked 50-sample patches (authors' code)."""

    Config = MAEMethodConfig
    PRESETS: ClassVar[dict[str, Any]] = {"paper": MAEMethodConfig(), "tiny": MAEMethodConfig()}
    fidelity = "authors"
    loss_name = "masked-patch MSE"

    def draw_width(self) -> int:
        return self.encoder_config.num_patches

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.random((n, self.encoder_config.num_patches), dtype=np.float32)

    def build(self, encoder: nn.Module | None = None) -> nn.Module:
        model = MaskedAutoencoder(self.encoder_config)
        if encoder is not None:
            model.encoder = encoder
        return model

    def loss(self, model: nn.Module, signals: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
        loss, _, _ = model(signals, noise=draws)
        return loss

    def figures(self, model: nn.Module, signals: torch.Tensor, draws: torch.Tensor,
                device: torch.device) -> dict[str, Any]:
        return {"reconstructions": reconstruction_figure(model, signals, draws, device)}
