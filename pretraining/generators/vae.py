"""The VAE of the ``vae`` corpus, as the authors built it (docs/protocol.md, "VAE and GAN corpora").

Encoder (the authors' ``LinearChunkEncoder`` with their two heads): the 5000-sample ECG cut into
100 chunks of 50 samples, each embedded by one shared Linear(50, 256), then per chunk
Linear(256, 256), ReLU, Linear(256, 256); the 100 embeddings flattened into Linear(25600, 512),
and from that 512-vector two Linear(512, 128) heads give the posterior mean and log-variance.
Decoder: :class:`~pretraining.generators.common.ResNetDecoder1d`. 14,544,025 parameters in all
(13,383,680 encoder, 1,160,345 decoder), the count of the authors' module built from their code.

Loss per batch, as the authors': the squared error summed over the samples the ``mask`` keeps
(outside the masked segment and the shift's zero padding), plus ``beta`` x KL(q(z|x) || N(0, I))
summed over the latent, both divided by the batch size; the encoder sees the ECG with its masked
segment zeroed. Adam (lr 1e-6, default betas, no weight decay), batch 256, 1e8 samples.

``beta`` (:meth:`VAEConfig.kl_weight`): the authors add ``(kl_end - kl_start) x samples seen /
total samples`` to it after every batch (capped at ``kl_end``), so it grows with the square of
the step, from 0.001 to 1 in 884 steps at the paper's batch and length (``kl_schedule="paper"``);
``"linear"`` (a deviation) goes from ``kl_start`` to ``kl_end`` linearly over ``kl_anneal_steps``.

Trained on z-scored ECGs, so decoded ECGs are on the z-scored scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from pretraining.generators.common import (
    GenerativeModel,
    GeneratorConfig,
    ResNetDecoder1d,
    TrainingBatch,
)
from simecg.config import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, Limits
from simecg.signal import N_SAMPLES

KL_SCHEDULES = ("paper", "linear")


@dataclass(frozen=True)
class VAEConfig(GeneratorConfig):
    """The VAE: :class:`GeneratorConfig` (latent, decoder, recipe) plus its encoder, KL weight and Adam."""

    kind: ClassVar[str] = "vae"
    training_latent: ClassVar[str] = "normal"  # the prior N(0, I), which sampling also uses
    LIMITS: ClassVar[dict[str, Limits]] = {
        **GeneratorConfig.LIMITS, "encoder_width": AT_LEAST_ONE, "encoder_out": AT_LEAST_ONE,
        "kl_start": NON_NEGATIVE, "kl_end": NON_NEGATIVE, "kl_schedule": Limits(choices=KL_SCHEDULES),
        "kl_anneal_steps": NON_NEGATIVE, "lr": POSITIVE,
    }

    encoder_width: int = 256
    encoder_out: int = 512
    kl_start: float = 0.001
    kl_end: float = 1.0
    kl_schedule: str = "paper"
    kl_anneal_steps: int = 884  # "linear" only: the step at which the paper's schedule reaches 1
    lr: float = 1e-6

    def kl_weight(self, step: int) -> float:
        """``beta`` in the loss of (0-based) ``step``.

        ``paper``: the authors' increment summed over the steps before this one, i.e.
        ``kl_start + (kl_end - kl_start) x batch x step (step + 1) / 2 / (steps x batch)``, capped
        at ``kl_end``. ``linear``: ``kl_start`` to ``kl_end`` over ``kl_anneal_steps``, then held.
        """
        span = self.kl_end - self.kl_start
        if self.kl_schedule == "paper":
            return min(self.kl_start + span * step * (step + 1) / (2 * self.steps), self.kl_end)
        if self.kl_anneal_steps == 0:
            return self.kl_end
        return self.kl_start + span * min(1.0, step / self.kl_anneal_steps)


PRESETS: dict[str, VAEConfig] = {
    "paper": VAEConfig(),
    # The same design scaled down for tests and laptop suites: trains in seconds on one core
    # (~300 records); a larger lr, since the paper's 1e-6 barely moves in 200 steps.
    "tiny": VAEConfig(decoder_width=32, encoder_width=16, encoder_out=32, steps=200, batch_size=16, lr=1e-3,
                      kl_anneal_steps=20, max_records=300, val_every=800, checkpoint_every=50, log_every=10,
                      sample_every=100),
}


class ChunkLinearEncoder(nn.Module):
    """ECG (n, 5000) -> posterior mean and log-variance (n, latent); see the module docstring."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.chunk = config.chunk
        width, tokens = config.encoder_width, N_SAMPLES // config.chunk
        self.embed = nn.Linear(config.chunk, width)
        self.per_token = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))
        self.to_out = nn.Linear(tokens * width, config.encoder_out)
        self.mean = nn.Linear(config.encoder_out, config.latent_dim)
        self.logvar = nn.Linear(config.encoder_out, config.latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.per_token(self.embed(x.reshape(len(x), -1, self.chunk)))
        h = self.to_out(h.reshape(len(x), -1))
        return self.mean(h), self.logvar(h)


class VAE(GenerativeModel):
    """Chunk-linear encoder + 1-D ResNet decoder; ``decoder`` is the sampler."""

    kind = "vae"
    Config = VAEConfig
    PRESETS = PRESETS

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        self.encoder = ChunkLinearEncoder(config)
        self.decoder = ResNetDecoder1d(config)

    def sampler(self) -> nn.Module:
        return self.decoder

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"vae": torch.optim.Adam(self.parameters(), lr=self.config.lr, betas=tuple(self.config.betas))}

    def losses(self, x: torch.Tensor, mask: torch.Tensor, step: int,
               generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Masked reconstruction error and KL (sums over samples / latent, per ECG of the batch) and the loss."""
        mean, logvar = self.encoder(x * mask)
        eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
        z = mean + eps * torch.exp(0.5 * logvar)
        recon = (((self.decoder(z) - x) ** 2) * mask).sum() / len(x)
        kl = -0.5 * (1.0 + logvar - mean.pow(2) - logvar.exp()).sum() / len(x)
        return {"loss": recon + self.config.kl_weight(step) * kl, "recon": recon, "kl": kl}

    def train_step(self, batch: TrainingBatch, optimizers: dict[str, torch.optim.Optimizer],
                   generator: torch.Generator) -> dict[str, float]:
        optimizer = optimizers["vae"]
        optimizer.zero_grad(set_to_none=True)
        parts = self.losses(batch.x, batch.mask, batch.step, generator)
        parts["loss"].backward()
        if self.config.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.parameters(), self.config.grad_clip)
        optimizer.step()
        recon = float(parts["recon"].detach())
        kept = float(batch.mask.sum()) / len(batch.x)  # samples per ECG the loss counts
        return {"loss": float(parts["loss"].detach()), "recon": recon, "recon_mse": recon / max(kept, 1.0),
                "kl": float(parts["kl"].detach()), "kl_weight": self.config.kl_weight(batch.step)}

    def validation_loss(self, x: torch.Tensor, step: int, generator: torch.Generator) -> float:
        """The training loss without a mask at the current ``beta`` (*inferred*: the authors' public
        trainer cannot evaluate their VAE; this is what its forward pass computes on unmasked ECGs)."""
        ones = torch.ones_like(x)
        return self.mean_over_batches(x, lambda part: self.losses(part, ones[:len(part)], step, generator)["loss"])


__all__ = ["KL_SCHEDULES", "PRESETS", "VAE", "ChunkLinearEncoder", "VAEConfig"]
