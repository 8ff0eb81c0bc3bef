"""The VAE of the ``vae`` corpus: chunk-linear encoder, 1-D ResNet decoder, latent 128 (PROTOCOL.md).

Encoder: the 5000-sample ECG cut into chunks of ``chunk`` samples, each embedded by one shared
linear layer (as the Emb-* baselines do), then a small MLP over the flattened embeddings gives the
posterior mean and log-variance. Decoder: :class:`~pretraining.generators.common.ResNetGenerator1d`.
Loss per ECG: the summed squared error over the 5000 samples (a unit-variance Gaussian likelihood,
up to constants) plus ``beta`` x KL(q(z|x) || N(0, I)), with ``beta`` annealed linearly from
``kl_start`` (0.001) to ``kl_end`` (1) over ``kl_anneal_steps`` steps, then held.

Trained on z-scored ECGs, so decoded ECGs are on the z-scored scale. Settings the protocol does
not give (widths, lr, batch, steps) are *inferred* and configurable.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pretraining.generators.common import GenerativeModel, GeneratorConfig, ResNetGenerator1d
from simecg.errors import ConfigError
from simecg.signal import N_SAMPLES


@dataclass(frozen=True)
class VAEConfig(GeneratorConfig):
    """The VAE: :class:`GeneratorConfig` (latent, decoder, training) plus its encoder, KL schedule, Adam."""

    kind = "vae"

    chunk: int = 50
    embed_dim: int = 64
    hidden: int = 1024
    kl_start: float = 0.001
    kl_end: float = 1.0
    kl_anneal_steps: int = 50_000
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.chunk <= 0 or N_SAMPLES % self.chunk:
            raise ConfigError(f"vae config: chunk must divide {N_SAMPLES}, got {self.chunk}")
        for name in ("embed_dim", "hidden", "lr"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"vae config: {name} must be positive, got {getattr(self, name)}")
        if self.kl_anneal_steps < 0 or self.kl_start < 0 or self.kl_end < 0:
            raise ConfigError("vae config: kl_start, kl_end and kl_anneal_steps must be >= 0")

    def kl_weight(self, step: int) -> float:
        """``beta`` at (0-based) ``step``: linear from ``kl_start`` to ``kl_end`` over ``kl_anneal_steps``."""
        if self.kl_anneal_steps == 0:
            return self.kl_end
        progress = min(1.0, step / self.kl_anneal_steps)
        return self.kl_start + (self.kl_end - self.kl_start) * progress


Config = VAEConfig

PRESETS: dict[str, VAEConfig] = {
    "paper": VAEConfig(),
    # CPU-sized, for tests and laptop suites: trains in seconds on one core (~300 records).
    "tiny": VAEConfig(channels=(32, 16, 8, 8), blocks=(1, 1, 0, 0), kernel=5, embed_dim=16, hidden=128, steps=200,
                      batch_size=16, lr=1e-3, kl_anneal_steps=150, max_records=300, checkpoint_every=50,
                      log_every=10, sample_every=100),
}


class ChunkLinearEncoder(nn.Module):
    """ECG (n, 5000) -> posterior mean and log-variance (n, latent): chunk embedding, then an MLP."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.chunk = config.chunk
        tokens = N_SAMPLES // config.chunk
        self.embed = nn.Linear(config.chunk, config.embed_dim)
        self.net = nn.Sequential(
            nn.GELU(), nn.Flatten(), nn.LayerNorm(tokens * config.embed_dim),
            nn.Linear(tokens * config.embed_dim, config.hidden), nn.GELU(),
            nn.Linear(config.hidden, 2 * config.latent_dim),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.net(self.embed(x.reshape(len(x), -1, self.chunk)))
        mean, logvar = h.chunk(2, dim=-1)
        return mean, logvar.clamp(-12.0, 8.0)


class VAE(GenerativeModel):
    """Chunk-linear encoder + 1-D ResNet decoder; ``decoder`` is the sampler."""

    kind = "vae"

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        self.encoder = ChunkLinearEncoder(config)
        self.decoder = ResNetGenerator1d(config)

    def sampler(self) -> nn.Module:
        return self.decoder

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"vae": torch.optim.Adam(self.parameters(), lr=self.config.lr, betas=tuple(self.config.betas))}

    def losses(self, x: torch.Tensor, step: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Reconstruction (summed squared error per ECG), KL per ECG, and their weighted sum, batch means."""
        mean, logvar = self.encoder(x)
        eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
        z = mean + torch.exp(0.5 * logvar) * eps
        recon = ((self.decoder(z) - x) ** 2).sum(-1).mean()
        kl = (-0.5 * (1.0 + logvar - mean.pow(2) - logvar.exp())).sum(-1).mean()
        beta = self.config.kl_weight(step)
        return {"loss": recon + beta * kl, "recon": recon, "kl": kl}

    def train_step(self, x: torch.Tensor, step: int, optimizers: dict[str, torch.optim.Optimizer],
                   generator: torch.Generator) -> dict[str, float]:
        optimizer = optimizers["vae"]
        parts = self.losses(x, step, generator)
        optimizer.zero_grad(set_to_none=True)
        parts["loss"].backward()
        if self.config.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.parameters(), self.config.grad_clip)
        optimizer.step()
        recon = float(parts["recon"].detach())
        return {"loss": float(parts["loss"].detach()), "recon": recon, "recon_mse": recon / N_SAMPLES,
                "kl": float(parts["kl"].detach()), "kl_weight": self.config.kl_weight(step)}


Model = VAE

__all__ = ["PRESETS", "VAE", "ChunkLinearEncoder", "VAEConfig"]
