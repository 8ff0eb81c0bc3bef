"""BYOL (Grill et al. 2020) on the shared encoder, from its published design: *inferred* (docs/protocol.md).

The authors' configs name BYOL (their model factory passes ``projection_dim`` and ``hidden_dim``,
and fine-tuning drops the projectors and the predictor, keeping the encoder's CLS token) but
their ``byol.py`` is not public. As published: an online network (encoder, projector, predictor:
MLPs with BatchNorm) predicts the projection a momentum target network (encoder and projector,
an exponential moving average of the online ones) makes of the other view; the loss is
``2 - 2 cos`` symmetrised over the two views. Adapted to a 128-wide ECG encoder: hidden width
512 and projection 128 (published: 4096 and 256), target momentum 0.996 held constant (published:
raised to 1 on a cosine); the views are the authors' (:mod:`pretraining.methods.views`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from pretraining.mae import ECGEncoder
from pretraining.methods.base import EMATeacher, PretrainingMethod
from pretraining.methods.contrastive import VIEW_LIMITS, ViewConfig, augmenting, cls_features, mlp
from pretraining.methods.views import VIEW_DRAWS, two_views
from simecg.config import POSITIVE, Limits


@dataclass(frozen=True)
class BYOLConfig(ViewConfig):
    """BYOL's settings (*inferred*: see the module)."""

    projection_dim: int = 128
    hidden_dim: int = 512
    momentum: float = 0.996


def byol_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``2 - 2 cos(prediction, target)``, averaged over the batch (the target carries no gradient)."""
    return (2 - 2 * F.cosine_similarity(prediction.float(), target.detach().float(), dim=-1)).mean()


class BYOLModule(nn.Module):
    def __init__(self, encoder: ECGEncoder, config: BYOLConfig):
        super().__init__()
        self.config = config
        self.encoder = encoder
        width = encoder.config.embed_dim
        self.projector = mlp([width, config.hidden_dim, config.projection_dim], batch_norm=True)
        self.predictor = mlp([config.projection_dim, config.hidden_dim, config.projection_dim], batch_norm=True)
        self.target_encoder = EMATeacher(encoder)
        self.target_projector = EMATeacher(self.projector)

    def forward(self, signals: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
        c = self.config
        first, second = two_views(signals, draws, c.aug_mask_ratio, c.max_shift_ratio, augmenting(self, c))
        p1 = self.predictor(self.projector(cls_features(self.encoder, first)))
        p2 = self.predictor(self.projector(cls_features(self.encoder, second)))
        t1 = self.target_projector(cls_features(self.target_encoder, first))
        t2 = self.target_projector(cls_features(self.target_encoder, second))
        return (byol_loss(p1, t2) + byol_loss(p2, t1)) / 2

    def update_target(self) -> None:
        self.target_encoder.update(self.encoder, self.config.momentum)
        self.target_projector.update(self.projector, self.config.momentum)


class BYOL(PretrainingMethod):
    """BYOL: predict a momentum target's projection of the other view (published design; inferred)."""

    Config = BYOLConfig
    PRESETS: ClassVar[dict[str, Any]] = {"paper": BYOLConfig(), "tiny": BYOLConfig(projection_dim=32, hidden_dim=64)}
    LIMITS: ClassVar[dict[str, Limits]] = {
        **VIEW_LIMITS, "projection_dim": POSITIVE, "hidden_dim": POSITIVE, "momentum": Limits(ge=0, le=1),
    }
    loss_name = "BYOL loss (2 - 2 cos)"

    def draw_width(self) -> int:
        return 2 * VIEW_DRAWS

    def build(self, encoder: nn.Module | None = None) -> nn.Module:
        return BYOLModule(encoder if encoder is not None else ECGEncoder(self.encoder_config), self.config)

    def after_step(self, model: nn.Module) -> None:
        model.update_target()
