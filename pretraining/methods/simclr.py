"""SimCLR (Chen et al. 2020) as the authors' code runs it on the shared encoder (docs/protocol.md).

From their ``simclr.py`` and ``dataloader.py``: two views of each z-scored record
(:mod:`pretraining.methods.views`), the encoder's CLS token through a projection head
``Linear(D, D), ReLU, Linear(D, projection_dim)``, and a cross-entropy over cosine similarities
divided by a temperature. Their loss takes as each row's positive the row's similarity *with
itself* (the diagonal, always 1) and every other embedding, the other view of the same record
included, as negatives: the ``paper`` setting ``loss = "authors"`` computes exactly that; the
published NT-Xent (the other view as the positive) is ``loss = "nt_xent"``. The projection width
and the temperature are read by their code but set in no public config: 128 (the width of the
encoder, SimCLR's own choice) and 0.1 are *inferred*.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from pretraining.mae import ECGEncoder
from pretraining.methods.base import PretrainingMethod
from pretraining.methods.contrastive import VIEW_LIMITS, ViewConfig, augmenting, cls_features, mlp
from pretraining.methods.views import VIEW_DRAWS, two_views
from simecg.config import POSITIVE, Limits

SIMCLR_LOSSES = ("authors", "nt_xent")


@dataclass(frozen=True)
class SimCLRConfig(ViewConfig):
    """SimCLR's settings; defaults are the authors' (the *inferred* ones as the module says)."""

    projection_dim: int = 128
    temperature: float = 0.1
    loss: str = "authors"


def contrastive_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float, kind: str) -> torch.Tensor:
    """Cross-entropy over the cosine similarities of the ``2N`` projections (``kind``: see the module)."""
    features = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    logits = features @ features.T / temperature
    n = z1.shape[0]
    if kind == "authors":  # each row's positive is its own entry: the row is the authors' [diag, off-diagonal]
        return F.cross_entropy(logits, torch.arange(2 * n, device=logits.device))
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=logits.device), float("-inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(logits.device)
    return F.cross_entropy(logits, partner)


class SimCLRModule(nn.Module):
    def __init__(self, encoder: ECGEncoder, config: SimCLRConfig):
        super().__init__()
        self.config = config
        self.encoder = encoder
        width = encoder.config.embed_dim
        self.projector = mlp([width, width, config.projection_dim])

    def forward(self, signals: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
        c = self.config
        first, second = two_views(signals, draws, c.aug_mask_ratio, c.max_shift_ratio, augmenting(self, c))
        z1 = self.projector(cls_features(self.encoder, first))
        z2 = self.projector(cls_features(self.encoder, second))
        return contrastive_loss(z1, z2, c.temperature, c.loss)


class SimCLR(PretrainingMethod):
    """SimCLR: two masked+shifted views, CLS projection, contrastive loss (authors' code; some sizes inferred)."""

    Config = SimCLRConfig
    PRESETS: ClassVar[dict[str, Any]] = {"paper": SimCLRConfig(), "tiny": SimCLRConfig(projection_dim=32)}
    LIMITS: ClassVar[dict[str, Limits]] = {
        **VIEW_LIMITS, "projection_dim": POSITIVE, "temperature": POSITIVE, "loss": Limits(choices=SIMCLR_LOSSES),
    }
    fidelity = "authors"

    @property
    def loss_label(self) -> str:
        return "NT-Xent loss" if self.config.loss == "nt_xent" else "contrastive loss (authors')"

    def draw_width(self) -> int:
        return 2 * VIEW_DRAWS

    def build(self, encoder: nn.Module | None = None) -> nn.Module:
        return SimCLRModule(encoder if encoder is not None else ECGEncoder(self.encoder_config), self.config)
