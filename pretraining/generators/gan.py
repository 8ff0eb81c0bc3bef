"""The DCGAN of the ``gan`` corpus: CNN discriminator, 1-D ResNet generator, latent 128 (PROTOCOL.md).

Generator: :class:`~pretraining.generators.common.ResNetGenerator1d` (``z`` ~ N(0, I) -> ECG).
Discriminator: strided 1-D convolutions with LeakyReLU(0.2) (BatchNorm after the first, as in
DCGAN), global average pooling and a linear logit. Non-saturating GAN loss (binary cross-entropy
on logits); per step one discriminator update on a real and a fake batch, then one generator
update. Adam with the paper's learning rates, D 1e-4 and G 1e-5 (betas 0.5, 0.999 as DCGAN).

Trained on z-scored ECGs, so generated ECGs are on the z-scored scale. Settings the protocol does
not give (widths, batch, steps) are *inferred* and configurable.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pretraining.generators.common import GenerativeModel, GeneratorConfig, ResNetGenerator1d
from simecg.errors import ConfigError


@dataclass(frozen=True)
class DCGANConfig(GeneratorConfig):
    """The DCGAN: :class:`GeneratorConfig` (latent, generator, training) plus the discriminator and Adam."""

    kind = "gan"

    disc_channels: tuple[int, ...] = (32, 64, 128, 256, 256)
    disc_kernel: int = 9
    disc_stride: int = 4
    lr_d: float = 1e-4
    lr_g: float = 1e-5
    betas: tuple[float, float] = (0.5, 0.999)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.disc_channels or min(self.disc_channels) <= 0:
            raise ConfigError(f"gan config: disc_channels must be positive numbers, got {list(self.disc_channels)}")
        for name in ("disc_kernel", "disc_stride", "lr_d", "lr_g"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"gan config: {name} must be positive, got {getattr(self, name)}")


Config = DCGANConfig

PRESETS: dict[str, DCGANConfig] = {
    "paper": DCGANConfig(),
    # CPU-sized, for tests and laptop suites: trains in seconds on one core (~300 records).
    "tiny": DCGANConfig(channels=(32, 16, 8, 8), blocks=(1, 1, 0, 0), kernel=5, disc_channels=(8, 16, 32, 32),
                        disc_kernel=7, steps=150, batch_size=16, max_records=300, checkpoint_every=50,
                        log_every=10, sample_every=75),
}


class Discriminator1d(nn.Module):
    """ECG (n, 5000) -> real/fake logit (n,): strided convolutions, LeakyReLU, BatchNorm after the first."""

    def __init__(self, config: DCGANConfig):
        super().__init__()
        layers: list[nn.Module] = []
        before = 1
        for i, width in enumerate(config.disc_channels):
            layers.append(nn.Conv1d(before, width, config.disc_kernel, stride=config.disc_stride,
                                    padding=config.disc_kernel // 2, bias=i == 0))
            if i > 0:
                layers.append(nn.BatchNorm1d(width))
            layers.append(nn.LeakyReLU(0.2))
            before = width
        self.features = nn.Sequential(*layers)
        self.logit = nn.Linear(before, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logit(self.features(x.unsqueeze(1)).mean(-1)).squeeze(-1)


class DCGAN(GenerativeModel):
    """Generator + discriminator; ``generator`` is the sampler."""

    kind = "gan"

    def __init__(self, config: DCGANConfig):
        super().__init__()
        self.config = config
        self.generator = ResNetGenerator1d(config)
        self.discriminator = Discriminator1d(config)

    def sampler(self) -> nn.Module:
        return self.generator

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        return {"discriminator": torch.optim.Adam(self.discriminator.parameters(), lr=c.lr_d, betas=tuple(c.betas)),
                "generator": torch.optim.Adam(self.generator.parameters(), lr=c.lr_g, betas=tuple(c.betas))}

    def train_step(self, x: torch.Tensor, step: int, optimizers: dict[str, torch.optim.Optimizer],
                   generator: torch.Generator) -> dict[str, float]:
        c = self.config
        z = torch.randn((len(x), c.latent_dim), generator=generator, dtype=x.dtype)
        fake = self.generator(z)
        ones, zeros = torch.ones(len(x)), torch.zeros(len(x))
        # discriminator: real -> 1, fake -> 0
        opt_d, opt_g = optimizers["discriminator"], optimizers["generator"]
        real_logit = self.discriminator(x)
        fake_logit = self.discriminator(fake.detach())
        loss_d = F.binary_cross_entropy_with_logits(real_logit, ones) + F.binary_cross_entropy_with_logits(
            fake_logit, zeros)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        if c.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.discriminator.parameters(), c.grad_clip)
        opt_d.step()
        # generator: make the discriminator call fakes real (non-saturating loss)
        loss_g = F.binary_cross_entropy_with_logits(self.discriminator(fake), ones)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        if c.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.generator.parameters(), c.grad_clip)
        opt_g.step()
        return {"loss_d": float(loss_d.detach()), "loss_g": float(loss_g.detach()),
                "d_real": float(torch.sigmoid(real_logit.detach()).mean()),
                "d_fake": float(torch.sigmoid(fake_logit.detach()).mean())}


Model = DCGAN

__all__ = ["PRESETS", "DCGAN", "DCGANConfig", "Discriminator1d"]
