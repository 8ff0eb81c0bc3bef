"""The study's masked-autoencoder Transformer for single-lead 10-s ECGs (docs/protocol.md).

Conv1d patches of 50 samples (100 tokens) plus a CLS token, fixed 1-D sin-cos positions,
timm ``Block``s with qk-norm (attention runs through PyTorch's fused scaled-dot-product
kernel), a light decoder, and MSE on the masked patches only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from timm.models.vision_transformer import Block
from torch import nn

from simecg.errors import ConfigError

# This pretraining method's name: what a model fine-tuning its encoders declares
# (baselines.pretrained_mae) and what the encoder provisioning pretrains (pretraining.config).
METHOD = "mae"


@dataclass(frozen=True)
class MAEConfig:
    """Architecture of the MAE; defaults are the paper's."""

    signal_length: int = 5000
    patch_size: int = 50
    embed_dim: int = 128
    depth: int = 10
    num_heads: int = 8
    mlp_ratio: float = 4.0
    decoder_embed_dim: int = 128
    decoder_depth: int = 2
    decoder_num_heads: int = 16
    mask_ratio: float = 0.75
    qk_norm: bool = True
    norm_pix_loss: bool = False

    def __post_init__(self) -> None:
        if self.signal_length % self.patch_size:
            raise ConfigError(
                f"model.signal_length {self.signal_length} is not a multiple of patch_size {self.patch_size}"
            )
        if self.embed_dim % self.num_heads or self.decoder_embed_dim % self.decoder_num_heads:
            raise ConfigError("model embed dims must be divisible by their number of heads")
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ConfigError(f"model.mask_ratio must be in [0, 1), got {self.mask_ratio}")

    @property
    def num_patches(self) -> int:
        return self.signal_length // self.patch_size

    def parameter_count(self, decoder: bool = True) -> int:
        """Trainable parameters of the encoder (and the decoder), from the settings alone: a hostile
        width is refused (:func:`simecg.memory.check_trainable`) before anything is allocated."""

        def blocks(dim: int, depth: int, heads: int) -> int:
            hidden = int(dim * self.mlp_ratio)
            norms = 4 * (dim // heads) if self.qk_norm else 0  # q and k LayerNorms over a head
            # two LayerNorms, qkv and projection (with biases), the MLP's two layers
            return depth * (4 * dim + 3 * dim * dim + 3 * dim + dim * dim + dim + norms
                            + dim * hidden + hidden + hidden * dim + dim)

        d, p = self.embed_dim, self.patch_size
        encoder = p * d + d + d + blocks(d, self.depth, self.num_heads) + 2 * d  # patches, CLS, blocks, norm
        if not decoder:
            return encoder
        e = self.decoder_embed_dim
        return (encoder + d * e + e + e + blocks(e, self.decoder_depth, self.decoder_num_heads) + 2 * e
                + e * p + p)  # projection, mask token, blocks, norm, prediction


PRESETS: dict[str, MAEConfig] = {
    "paper": MAEConfig(),
    # A CPU-sized model with the same structure, for laptops, smoke suites and tests.
    "tiny": MAEConfig(embed_dim=64, depth=2, num_heads=4, decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=4),
}


def preset(name: str) -> MAEConfig:
    """The named architecture preset (``paper`` or ``tiny``)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown model preset {name!r}; known: {', '.join(sorted(PRESETS))}") from None


def sincos_1d(length: int, dim: int) -> torch.Tensor:
    """Fixed 1-D sin-cos position table of shape (length, dim)."""
    if dim % 2:
        raise ConfigError(f"sin-cos position embedding needs an even width, got {dim}")
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    angles = np.arange(length, dtype=np.float64)[:, None] * omega[None, :]
    table = np.concatenate([np.sin(angles), np.cos(angles)], axis=1)
    return torch.tensor(table, dtype=torch.float32)  # honours a device context (e.g. "meta" for checks)


def _blocks(dim: int, depth: int, heads: int, mlp_ratio: float, qk_norm: bool) -> nn.ModuleList:
    return nn.ModuleList(
        Block(dim, heads, mlp_ratio=mlp_ratio, qkv_bias=True, qk_norm=qk_norm, norm_layer=nn.LayerNorm)
        for _ in range(depth)
    )


class ECGEncoder(nn.Module):
    """Patch embedding + CLS token + Transformer blocks; the part reused downstream.

    Input ``(batch, 1, signal_length)``; :meth:`forward` returns all tokens
    ``(batch, 1 + num_patches, embed_dim)`` with the CLS token first.
    """

    def __init__(self, config: MAEConfig = MAEConfig()):
        super().__init__()
        self.config = config
        c = config
        self.patch_embed = nn.Conv1d(1, c.embed_dim, kernel_size=c.patch_size, stride=c.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.embed_dim))
        pos = torch.cat([torch.zeros(1, c.embed_dim), sincos_1d(c.num_patches, c.embed_dim)])
        self.register_buffer("pos_embed", pos.unsqueeze(0), persistent=False)
        self.blocks = _blocks(c.embed_dim, c.depth, c.num_heads, c.mlp_ratio, c.qk_norm)
        self.norm = nn.LayerNorm(c.embed_dim)
        self._init_weights()

    def _init_weights(self) -> None:
        w = self.patch_embed.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)
        self.blocks.apply(_init_linear)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Patch tokens with positions, ``(batch, num_patches, embed_dim)`` (no CLS)."""
        if x.dim() == 2:
            x = x.unsqueeze(1)
        if x.shape[-1] != self.config.signal_length:
            raise ConfigError(
                f"encoder expects signals of {self.config.signal_length} samples, got {x.shape[-1]}"
            )
        tokens = self.patch_embed(x).transpose(1, 2)
        return tokens + self.pos_embed[:, 1:, :]

    def run_blocks(self, patch_tokens: torch.Tensor) -> torch.Tensor:
        """Prepend CLS and run the Transformer over the (possibly masked) patch tokens."""
        cls = (self.cls_token + self.pos_embed[:, :1, :]).expand(patch_tokens.shape[0], -1, -1)
        x = torch.cat([cls, patch_tokens], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_blocks(self.embed(x))


class MaskedAutoencoder(nn.Module):
    """Encoder + decoder trained to reconstruct masked patches of a z-scored ECG."""

    def __init__(self, config: MAEConfig = MAEConfig()):
        super().__init__()
        self.config = config
        c = config
        self.encoder = ECGEncoder(c)
        self.decoder_embed = nn.Linear(c.embed_dim, c.decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, c.decoder_embed_dim))
        pos = torch.cat([torch.zeros(1, c.decoder_embed_dim), sincos_1d(c.num_patches, c.decoder_embed_dim)])
        self.register_buffer("decoder_pos_embed", pos.unsqueeze(0), persistent=False)
        self.decoder_blocks = _blocks(c.decoder_embed_dim, c.decoder_depth, c.decoder_num_heads, c.mlp_ratio, c.qk_norm)
        self.decoder_norm = nn.LayerNorm(c.decoder_embed_dim)
        self.decoder_pred = nn.Linear(c.decoder_embed_dim, c.patch_size)
        nn.init.normal_(self.mask_token, std=0.02)
        for module in (self.decoder_embed, self.decoder_blocks, self.decoder_pred):
            module.apply(_init_linear)

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, 1, L)`` -> ``(batch, num_patches, patch_size)``."""
        return x.reshape(x.shape[0], self.config.num_patches, self.config.patch_size)

    def random_masking(
        self, tokens: torch.Tensor, generator: torch.Generator | None = None, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Keep a random ``1 - mask_ratio`` share of tokens per sample (the lowest-noise ones).

        ``noise`` ``(batch, num_patches)`` fixes the mask from outside (the pretraining stream
        draws it from the seed and step, so resumed and multi-process runs mask identically);
        otherwise it is drawn with ``generator``. Returns the kept tokens, the binary mask
        (1 = masked) in original order, and the indices that restore the original order.
        """
        batch, length, dim = tokens.shape
        keep = int(round(length * (1 - self.config.mask_ratio)))
        if noise is None:
            noise = torch.rand(batch, length, device=tokens.device, generator=generator)
        elif noise.shape != (batch, length):
            raise ConfigError(f"mask noise must have shape {(batch, length)}, got {tuple(noise.shape)}")
        shuffle = torch.argsort(noise, dim=1)
        restore = torch.argsort(shuffle, dim=1)
        kept_idx = shuffle[:, :keep]
        kept = torch.gather(tokens, 1, kept_idx.unsqueeze(-1).expand(-1, -1, dim))
        mask = torch.ones(batch, length, device=tokens.device)
        mask[:, :keep] = 0
        mask = torch.gather(mask, 1, restore)
        return kept, mask, restore

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(loss, prediction, mask)``; the loss is the MSE over masked patches only.

        ``prediction`` is ``(batch, num_patches, patch_size)``, ``mask`` ``(batch, num_patches)``
        with 1 on masked patches; ``noise`` optionally fixes the mask (see :meth:`random_masking`).
        """
        if x.dim() == 2:
            x = x.unsqueeze(1)
        enc = self.encoder
        kept, mask, restore = self.random_masking(enc.embed(x), generator, noise)
        latent = enc.run_blocks(kept)
        pred = self.decode(latent, restore)
        target = self.patchify(x)
        if self.config.norm_pix_loss:
            mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
            target = (target - mean) / (var + 1e-6) ** 0.5
        per_patch = ((pred.float() - target.float()) ** 2).mean(dim=-1)  # float32 even under bf16 autocast
        loss = (per_patch * mask).sum() / mask.sum().clamp_min(1)
        return loss, pred, mask

    def decode(self, latent: torch.Tensor, restore: torch.Tensor) -> torch.Tensor:
        x = self.decoder_embed(latent)
        batch, _, dim = x.shape
        n_masked = restore.shape[1] + 1 - x.shape[1]
        tokens = torch.cat([x[:, 1:, :], self.mask_token.expand(batch, n_masked, -1)], dim=1)
        tokens = torch.gather(tokens, 1, restore.unsqueeze(-1).expand(-1, -1, dim))
        x = torch.cat([x[:, :1, :], tokens], dim=1) + self.decoder_pos_embed
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:, :]


HEAD_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU}


def check_head(owner: str, pooling: str, activation: str) -> None:
    """Refuse a head setting no :class:`EncoderClassifier` can build, naming the model's config (``owner``)."""
    if pooling not in ("cls", "mean"):
        raise ConfigError(f"{owner}: pooling must be 'cls' or 'mean', got {pooling!r}")
    if activation not in HEAD_ACTIVATIONS:
        raise ConfigError(f"{owner}: activation must be 'relu' or 'gelu', got {activation!r}")


def classifier_head(in_dim: int, width: int = 32, dropout: float = 0.25, activation: str = "relu") -> nn.Module:
    """The classification head of docs/protocol.md: ``Linear(in_dim, width)``, activation, ``Dropout``,
    ``Linear(width, 1)`` (the authors' ``HeadModule``: width 32, ReLU, dropout 0.25).

    ``width`` is what the authors search as ``backbone_out_dim`` (2^4..2^10) for models trained
    from scratch; ``width=0`` gives a single linear layer. ``activation`` is ``"relu"`` (paper)
    or ``"gelu"``.
    """
    if width < 0 or not 0 <= dropout < 1:
        raise ConfigError(f"head: width must be >= 0 and dropout in [0, 1), got {width} and {dropout}")
    if activation not in HEAD_ACTIVATIONS:
        raise ConfigError(f"head: activation must be one of {', '.join(HEAD_ACTIVATIONS)}, got {activation!r}")
    if width == 0:
        return nn.Linear(in_dim, 1)
    return nn.Sequential(nn.Linear(in_dim, width), HEAD_ACTIVATIONS[activation](), nn.Dropout(dropout),
                         nn.Linear(width, 1))


class EncoderClassifier(nn.Module):
    """An :class:`ECGEncoder` with a small MLP head, mapping ``(batch, 1, L)`` to logits ``(batch,)``.

    ``pooling="cls"`` is the paper's (the CLS token); ``"mean"`` averages the patch tokens.
    ``freeze_encoder=True`` gives a linear/MLP probe. The head defaults are the paper's
    (:func:`classifier_head`: Linear(128, 32), ReLU, Dropout 0.25, Linear(32, 1) on the CLS token).
    """

    def __init__(
        self,
        encoder: ECGEncoder,
        head_width: int = 32,
        pooling: str = "cls",
        freeze_encoder: bool = False,
        dropout: float = 0.25,
        activation: str = "relu",
    ):
        super().__init__()
        if pooling not in ("cls", "mean"):
            raise ConfigError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
        self.encoder = encoder
        self.pooling = pooling
        self.head = classifier_head(encoder.config.embed_dim, head_width, dropout, activation)
        if freeze_encoder:
            for p in self.encoder.parameters():
                p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.encoder(x)
        pooled = tokens[:, 0] if self.pooling == "cls" else tokens[:, 1:].mean(dim=1)
        return self.head(pooled).squeeze(-1)


def _init_linear(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)

