"""DINO (Caron et al. 2021) on the shared encoder, from its published design: *inferred* (docs/protocol.md).

The authors' configs name DINO (their model factory passes ``projection_dim``, ``hidden_dim``,
the student and teacher temperatures and ``center_momentum``) but their ``dino.py`` is not
public. As published: a student (encoder and head) matches, across two views, the sharpened and
centred output distribution of a momentum teacher (a moving average of the student). The head
is a three-layer MLP to ``projection_dim`` outputs (published: an MLP to a 256-wide bottleneck,
L2-normalised, then a weight-normalised layer to 65,536 prototypes; the authors' factory passes
only ``hidden_dim`` and ``projection_dim``, so no bottleneck here; a cosine layer on 300 steps of
the tiny preset collapsed to the uniform output). Adapted to a 128-wide ECG encoder: hidden 512,
1,024 outputs, the CLS token as the feature, two views (the authors' loader makes two: no
multi-crop), temperatures 0.1 (student) and 0.04 (teacher, held: published warms it to 0.07),
centre momentum 0.9, teacher momentum 0.996 held constant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from pretraining.mae import ECGEncoder
from pretraining.methods.base import EMATeacher, PretrainingMethod
from pretraining.methods.contrastive import VIEW_LIMITS, ViewConfig, augmenting, mlp
from pretraining.methods.views import VIEW_DRAWS, two_views
from simecg.config import POSITIVE, Limits


@dataclass(frozen=True)
class DINOConfig(ViewConfig):
    """DINO's settings (*inferred*: see the module)."""

    projection_dim: int = 1024
    hidden_dim: int = 512
    temperature_student: float = 0.1
    temperature_teacher: float = 0.04
    center_momentum: float = 0.9
    momentum: float = 0.996


DINO_LIMITS: dict[str, Limits] = {
    **VIEW_LIMITS, "projection_dim": POSITIVE, "hidden_dim": POSITIVE,
    "temperature_student": POSITIVE, "temperature_teacher": POSITIVE, "center_momentum": Limits(ge=0, le=1),
    "momentum": Limits(ge=0, le=1),
}


class DINOHead(nn.Module):
    """An MLP to ``projection_dim`` logits (the authors' factory passes only its widths: no bottleneck)."""

    def __init__(self, width: int, config: DINOConfig):
        super().__init__()
        self.mlp = mlp([width, config.hidden_dim, config.hidden_dim, config.projection_dim], activation=nn.GELU)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(features)


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, center: torch.Tensor,
                      temperature_student: float, temperature_teacher: float) -> torch.Tensor:
    """Cross-entropy of the student's distribution against the centred, sharpened teacher's, per row, averaged."""
    targets = F.softmax((teacher.float() - center) / temperature_teacher, dim=-1).detach()
    return -(targets * F.log_softmax(student.float() / temperature_student, dim=-1)).sum(-1).mean()


@torch.no_grad()
def update_center(center: torch.Tensor, teacher: torch.Tensor, momentum: float) -> None:
    """Move ``center`` towards the batch mean of the teacher's outputs, averaged over every process."""
    mean = teacher.float().reshape(-1, teacher.shape[-1]).mean(0)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(mean)
        mean /= dist.get_world_size()
    center.mul_(momentum).add_(mean, alpha=1 - momentum)


class DINOModule(nn.Module):
    def __init__(self, encoder: ECGEncoder, config: DINOConfig):
        super().__init__()
        self.config = config
        self.encoder = encoder
        self.head = DINOHead(encoder.config.embed_dim, config)
        self.teacher_encoder = EMATeacher(encoder)
        self.teacher_head = EMATeacher(self.head)
        self.register_buffer("center", torch.zeros(config.projection_dim))

    def views(self, signals: torch.Tensor, draws: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        return two_views(signals, draws, c.aug_mask_ratio, c.max_shift_ratio, augmenting(self, c))

    def forward(self, signals: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
        c = self.config
        views = self.views(signals, draws)
        students = [self.head(self.encoder(v)[:, 0]) for v in views]
        teachers = [self.teacher_head(self.teacher_encoder(v)[:, 0]) for v in views]
        loss = sum(distillation_loss(students[1 - i], teachers[i], self.center, c.temperature_student,
                                     c.temperature_teacher) for i in range(2)) / 2
        if self.training:
            update_center(self.center, torch.cat(teachers), c.center_momentum)
        return loss

    def update_teacher(self) -> None:
        self.teacher_encoder.update(self.encoder, self.config.momentum)
        self.teacher_head.update(self.head, self.config.momentum)


class DINO(PretrainingMethod):
    """DINO: self-distillation from a momentum teacher across two views (published design; inferred)."""

    Config = DINOConfig
    PRESETS: ClassVar[dict[str, Any]] = {
        "paper": DINOConfig(), "tiny": DINOConfig(projection_dim=64, hidden_dim=64),
    }
    LIMITS: ClassVar[dict[str, Limits]] = DINO_LIMITS
    loss_name = "distillation cross-entropy"

    def draw_width(self) -> int:
        return 2 * VIEW_DRAWS

    def build(self, encoder: nn.Module | None = None) -> nn.Module:
        return DINOModule(encoder if encoder is not None else ECGEncoder(self.encoder_config), self.config)

    def after_step(self, model: nn.Module) -> None:
        model.update_teacher()
