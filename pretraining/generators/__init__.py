"""Generative models of ECGs trained on PTB-XL lead II training records: the authors' VAE and DCGAN.

One module per model (:mod:`~pretraining.generators.vae`, :mod:`~pretraining.generators.gan`), each
with a frozen config dataclass and ``paper`` (the authors' recipe) / ``tiny`` presets; the shared
1-D ResNet decoder and generator files in :mod:`~pretraining.generators.common`; the resumable
training loop, the training data's container and identities in :mod:`~pretraining.generators.train`
(the data itself is the caller's). The ``vae`` and ``gan`` pretraining corpora
(:mod:`benchmark.corpora.generated`) choose their PTB-XL training records and sample from them. Models see
z-scored ECGs, so what they generate is on the z-scored scale.
"""

from pretraining.generators.common import load_sampler, resolve_config
from pretraining.generators.train import (
    GeneratorData,
    generator_dir,
    generator_identity,
    train_generator,
)

__all__ = [
    "GeneratorData", "generator_dir", "generator_identity", "load_sampler",
    "resolve_config", "train_generator",
]
