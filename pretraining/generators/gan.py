"""The DCGAN of the ``gan`` corpus, as the authors built and trained it (docs/protocol.md, "VAE and GAN corpora").

Generator: :class:`~pretraining.generators.common.ResNetDecoder1d` (1,160,345 parameters).
Discriminator (:class:`CNNDiscriminator1d`, the authors' ``CNN02`` with its classifier): four
1-D convolutions of kernel 16 ('same' padding; widths 32, 64, 128, 256) with LeakyReLU(0.01),
a max-pool by 2 after the second and the fourth, a Linear(1250 x 256, 512), a Linear(512, 1) and
a sigmoid: 164,530,145 parameters, the count of the authors' module built from their code.
Binary cross-entropy on the sigmoid's probabilities (PyTorch's ``BCELoss``).

One training step, as the authors' ``GANTrainer`` runs it (``batch_in_epoch`` is their loader index):

* on the batches whose index in the epoch is a multiple of ``disc_every`` (5), the discriminator
  loss: real ECGs against 1, the generator's ECGs of a fresh ``z`` (detached) against 0;
* every batch: the generator loss, the discriminator's output on the generator's ECGs of another
  fresh ``z`` against 1; its backward pass, then Adam on the generator (lr ``lr_g`` 1e-5);
* then, on discriminator batches, the discriminator loss's backward pass and Adam on the
  discriminator (lr ``lr_d`` 1e-4). The authors never clear the discriminator's gradients
  between the two backward passes, so its update also follows the generator loss's gradient
  (toward calling fakes real): ``d_gradient="paper"``. ``"separate"`` (a deviation) updates
  it on its own loss only.

The real ECGs are z-scored and shifted (the fine-tuning shift, ratio 0.25); the authors' loader
also draws a mask (ratio 0.1) that the GAN never uses. Both ``z`` are drawn from **U(0, 1)**
(``torch.rand``), while the authors sample the trained generator with **N(0, 1)** (``torch.randn``):
the ``gan`` corpus reproduces that mismatch by default (``latent_sampling="paper"``; see
:mod:`benchmark.corpora.generated`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from pretraining.generators.common import (
    GenerativeModel,
    GeneratorConfig,
    ResNetDecoder1d,
    TrainingBatch,
    draw_latent,
)
from simecg.config import AT_LEAST_ONE, POSITIVE, Limits
from simecg.signal import N_SAMPLES

D_GRADIENTS = ("paper", "separate")


@dataclass(frozen=True)
class DCGANConfig(GeneratorConfig):
    """The DCGAN: :class:`GeneratorConfig` (latent, generator, recipe) plus the discriminator and Adam."""

    kind: ClassVar[str] = "gan"
    training_latent: ClassVar[str] = "uniform"  # the authors' torch.rand in training
    LIMITS: ClassVar[dict[str, Limits]] = {
        **GeneratorConfig.LIMITS, "disc_width": AT_LEAST_ONE, "disc_out": AT_LEAST_ONE,
        "disc_kernel": AT_LEAST_ONE, "disc_every": AT_LEAST_ONE, "d_gradient": Limits(choices=D_GRADIENTS),
        "lr_d": POSITIVE, "lr_g": POSITIVE,
    }

    disc_width: int = 32
    disc_out: int = 512
    disc_kernel: int = 16
    disc_every: int = 5
    d_gradient: str = "paper"
    lr_d: float = 1e-4
    lr_g: float = 1e-5

    def updates_discriminator(self, batch_in_epoch: int) -> bool:
        """Whether the batch at this position of its epoch also updates the discriminator."""
        return batch_in_epoch % self.disc_every == 0


PRESETS: dict[str, DCGANConfig] = {
    "paper": DCGANConfig(),
    # The same design scaled down for tests and laptop suites: trains in seconds on one core (~300 records).
    "tiny": DCGANConfig(decoder_width=32, disc_width=2, disc_out=16, steps=150, batch_size=16, max_records=300,
                        val_every=800, checkpoint_every=50, log_every=10, sample_every=75),
}


class CNNDiscriminator1d(nn.Module):
    """ECG (n, 5000) -> probability of being real (n,); see the module docstring."""

    def __init__(self, config: DCGANConfig):
        super().__init__()
        w = config.disc_width

        def conv(channels_in: int, channels_out: int) -> nn.Sequential:
            # 'same' padding as PyTorch pads an even kernel (one more zero on the right), written out
            # so that no padded copy of the input (and its warning) is made on every call
            k = config.disc_kernel
            return nn.Sequential(nn.ConstantPad1d(((k - 1) // 2, k // 2), 0.0), nn.Conv1d(channels_in, channels_out, k))

        self.features = nn.Sequential(
            conv(1, w), nn.LeakyReLU(), conv(w, 2 * w), nn.LeakyReLU(), nn.MaxPool1d(2),
            conv(2 * w, 4 * w), nn.LeakyReLU(), conv(4 * w, 8 * w), nn.LeakyReLU(), nn.MaxPool1d(2),
            nn.Flatten(),
        )
        self.dense = nn.Linear(N_SAMPLES // 4 * 8 * w, config.disc_out)
        self.classify = nn.Linear(config.disc_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.classify(self.dense(self.features(x.unsqueeze(1)))).squeeze(-1))


class DCGAN(GenerativeModel):
    """Generator + discriminator; ``generator`` is the sampler."""

    kind = "gan"
    Config = DCGANConfig
    PRESETS = PRESETS

    def __init__(self, config: DCGANConfig):
        super().__init__()
        self.config = config
        self.generator = ResNetDecoder1d(config)
        self.discriminator = CNNDiscriminator1d(config)

    def sampler(self) -> nn.Module:
        return self.generator

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        return {"discriminator": torch.optim.Adam(self.discriminator.parameters(), lr=c.lr_d, betas=tuple(c.betas)),
                "generator": torch.optim.Adam(self.generator.parameters(), lr=c.lr_g, betas=tuple(c.betas))}

    def _fake(self, n: int, generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
        return self.generator(draw_latent((n, self.config.latent_dim), self.config.training_latent, generator, dtype))

    def train_step(self, batch: TrainingBatch, optimizers: dict[str, torch.optim.Optimizer],
                   generator: torch.Generator) -> dict[str, float]:
        c, x = self.config, batch.x
        opt_d, opt_g = optimizers["discriminator"], optimizers["generator"]
        opt_d.zero_grad(set_to_none=True)
        opt_g.zero_grad(set_to_none=True)
        ones, zeros = torch.ones(len(x), dtype=x.dtype), torch.zeros(len(x), dtype=x.dtype)
        metrics: dict[str, float] = {}
        loss_d = None
        if c.updates_discriminator(batch.batch_in_epoch):
            real = self.discriminator(x)
            fake = self.discriminator(self._fake(len(x), generator, x.dtype).detach())
            loss_d = F.binary_cross_entropy(real, ones) + F.binary_cross_entropy(fake, zeros)
            metrics.update(d_real=float(real.detach().mean()), d_fake=float(fake.detach().mean()))
        loss_g = F.binary_cross_entropy(self.discriminator(self._fake(len(x), generator, x.dtype)), ones)
        loss_g.backward()  # also leaves gradients on the discriminator
        self._step(opt_g, self.generator)
        metrics["loss_g"] = float(loss_g.detach())
        if loss_d is not None:
            if c.d_gradient == "separate":
                opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self._step(opt_d, self.discriminator)
            metrics["loss_d"] = float(loss_d.detach())
        return metrics

    def validation_loss(self, x: torch.Tensor, step: int, generator: torch.Generator) -> float:
        """The authors' selection loss: discriminator loss plus generator loss (fresh U(0, 1) ``z`` for
        each), on unaugmented ECGs, in eval mode."""

        def loss(part: torch.Tensor) -> torch.Tensor:
            ones, zeros = torch.ones(len(part), dtype=part.dtype), torch.zeros(len(part), dtype=part.dtype)
            loss_d = (F.binary_cross_entropy(self.discriminator(part), ones)
                      + F.binary_cross_entropy(self.discriminator(self._fake(len(part), generator, part.dtype)), zeros))
            return loss_d + F.binary_cross_entropy(self.discriminator(self._fake(len(part), generator, part.dtype)),
                                                   ones)

        return self.mean_over_batches(x, loss)

    def _step(self, optimizer: torch.optim.Optimizer, module: nn.Module) -> None:
        if self.config.grad_clip > 0:
            nn.utils.clip_grad_norm_(module.parameters(), self.config.grad_clip)
        optimizer.step()


__all__ = ["D_GRADIENTS", "PRESETS", "CNNDiscriminator1d", "DCGAN", "DCGANConfig"]
