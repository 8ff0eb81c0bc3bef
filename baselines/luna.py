"""LUNA: linear unified nested attention (Ma et al., NeurIPS 2021), for single-lead ECGs.

Every layer carries, beside the token sequence ``X`` (length ``n``), a short *packed context*
``P`` of fixed length ``l``. Attention is nested: ``P`` first attends to ``X``
(pack: ``P' = Attn(P, X)``, cost ``O(l n)``), then ``X`` attends to the packed context
(unpack: ``Y = Attn(X, P')``, cost ``O(n l)``), so the layer is linear in ``n``. Both streams
get residual connections and post-layer norm; ``P'`` becomes the next layer's context, and the
token stream gets a feed-forward sub-layer. The first context is a learned ``(l, d)`` table.

Tokens are linear embeddings of fixed-length chunks (``baselines.tokens``) plus fixed sin-cos
positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from baselines.base import NeuralBaseline
from baselines.tokens import ChunkEmbedding
from pretraining.mae import sincos_1d
from simecg.errors import ConfigError


@dataclass(frozen=True)
class LunaConfig:
    """Architecture of LUNA; ``context_length`` is the packed length ``l``."""

    chunk_length: int = 50
    embed_dim: int = 64
    depth: int = 4
    num_heads: int = 4
    context_length: int = 16
    mlp_ratio: float = 2.0
    dropout: float = 0.1
    signal_length: int = 5000

    def __post_init__(self) -> None:
        if self.embed_dim % self.num_heads or self.embed_dim % 2:
            raise ConfigError(
                f"luna: embed_dim {self.embed_dim} must be even and divisible by num_heads {self.num_heads}"
            )


class LunaLayer(nn.Module):
    """Pack, unpack, feed-forward; returns the new token sequence and the new packed context."""

    def __init__(self, c: LunaConfig, update_context: bool = True):
        super().__init__()
        d = c.embed_dim
        self.pack = nn.MultiheadAttention(d, c.num_heads, dropout=c.dropout, batch_first=True)
        self.unpack = nn.MultiheadAttention(d, c.num_heads, dropout=c.dropout, batch_first=True)
        # The last layer's new context would be discarded, so it has no context norm to train.
        self.norm_context = nn.LayerNorm(d) if update_context else None
        self.norm_tokens = nn.LayerNorm(d)
        hidden = int(d * c.mlp_ratio)
        self.ffn = nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Dropout(c.dropout), nn.Linear(hidden, d))
        self.norm_ffn = nn.LayerNorm(d)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        packed, _ = self.pack(p, x, x, need_weights=False)
        unpacked, _ = self.unpack(x, packed, packed, need_weights=False)
        x = self.norm_tokens(x + self.dropout(unpacked))
        if self.norm_context is not None:
            p = self.norm_context(p + self.dropout(packed))
        x = self.norm_ffn(x + self.dropout(self.ffn(x)))
        return x, p


class Luna(nn.Module):
    """``(batch, 1, L)`` -> logits ``(batch,)``: chunk tokens, LUNA layers, mean pooling, linear head."""

    def __init__(self, config: LunaConfig):
        super().__init__()
        self.embed = ChunkEmbedding(config.chunk_length, config.embed_dim, config.signal_length)
        self.register_buffer("pos", sincos_1d(self.embed.num_tokens, config.embed_dim).unsqueeze(0), persistent=False)
        self.context = nn.Parameter(torch.randn(1, config.context_length, config.embed_dim) * 0.02)
        self.layers = nn.ModuleList(LunaLayer(config, i < config.depth - 1) for i in range(config.depth))
        self.head = nn.Linear(config.embed_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x) + self.pos
        p = self.context.expand(h.shape[0], -1, -1)
        for layer in self.layers:
            h, p = layer(h, p)
        return self.head(h.mean(dim=1)).squeeze(-1)


class LunaBaseline(NeuralBaseline):
    """LUNA (Ma et al. 2021): linear-cost nested attention through a packed context."""

    Config = LunaConfig
    check_overrides = {"embed_dim": 32, "depth": 2}

    @staticmethod
    def build(config: LunaConfig) -> nn.Module:
        return Luna(config)

    @staticmethod
    def search_space(trial: Any) -> dict[str, Any]:
        return {
            "chunk_length": trial.suggest_categorical("chunk_length", [25, 50, 100]),
            "embed_dim": trial.suggest_categorical("embed_dim", [32, 64, 128]),
            "depth": trial.suggest_int("depth", 2, 6),
            "num_heads": trial.suggest_categorical("num_heads", [2, 4, 8]),
            "context_length": trial.suggest_categorical("context_length", [8, 16, 32]),
        }
