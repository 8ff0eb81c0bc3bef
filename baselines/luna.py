"""LUNA: linear unified nested attention (Ma et al., NeurIPS 2021), for single-lead ECGs.

Every layer carries, beside the token sequence ``X`` (length ``n``), a short *packed context*
``P`` of fixed length ``l``. Attention is nested: ``P`` first attends to ``X``
(pack: ``P' = Attn(P, X)``, cost ``O(l n)``), then ``X`` attends to the packed context
(unpack: ``Y = Attn(X, P')``, cost ``O(n l)``), so the layer is linear in ``n``. Both streams
get residual connections and post-layer norm; ``P'`` becomes the next layer's context, and the
token stream gets a feed-forward sub-layer. The first context is a learned ``(l, d)`` table.

Attention projects queries, keys and values to ``qkv_dim`` (split over ``num_heads``) and back
to the model width (the authors' space has a qkv dim apart from the embedding, as Long Range
Arena models do), so the attention width is searched on its own.

Tokens are linear embeddings of fixed-length chunks (``baselines.tokens``) plus fixed sin-cos
positions; the mean token feeds the study's MLP head (:func:`pretraining.mae.classifier_head`).

Tuning (docs/protocol.md, the authors' LUNA space): embedding 64 (``embed_dim``, fixed), depth 3-6
(``depth``), heads 2^4..2^6 (``num_heads``), feed-forward 2^5..2^8 (``ffn_dim``), chunk length
{50, 100, 250} (``chunk_length``), qkv dim 2^4..2^6 (``qkv_dim``), context length 2^4..2^6
(``context_length``), ``backbone_out_dim`` 2^4..2^10 (``head_width``). Heads must divide the qkv
dim: the space draws both as powers of two and uses ``min(heads, qkv_dim)`` heads (the authors
pruned trials with more heads than qkv dims; deriving keeps every trial a valid model).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from baselines.base import NeuralBaseline
from baselines.tokens import ChunkEmbedding
from pretraining.mae import classifier_head, sincos_1d
from simecg.errors import ConfigError


@dataclass(frozen=True)
class LunaConfig:
    """Architecture of LUNA; ``context_length`` is the packed length ``l``, ``qkv_dim`` the attention width."""

    chunk_length: int = 50
    embed_dim: int = 64
    depth: int = 4
    num_heads: int = 4
    qkv_dim: int = 64
    context_length: int = 16
    ffn_dim: int = 128
    dropout: float = 0.1
    signal_length: int = 5000
    head_width: int = 32  # the head's hidden width (the authors' backbone_out_dim); 0 = a linear head
    head_dropout: float = 0.25  # inside the head (docs/protocol.md: Linear, ReLU, Dropout 0.25, Linear)

    def __post_init__(self) -> None:
        if self.embed_dim % 2:
            raise ConfigError(f"luna: embed_dim {self.embed_dim} must be even (sin-cos positions)")
        if self.num_heads < 1 or self.qkv_dim % self.num_heads:
            raise ConfigError(f"luna: qkv_dim {self.qkv_dim} must be divisible by num_heads {self.num_heads}")


class Attention(nn.Module):
    """Multi-head attention of ``query`` over ``context`` through a ``qkv_dim``-wide projection."""

    def __init__(self, dim: int, qkv_dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.q = nn.Linear(dim, qkv_dim)
        self.k = nn.Linear(dim, qkv_dim)
        self.v = nn.Linear(dim, qkv_dim)
        self.out = nn.Linear(qkv_dim, dim)

    def forward(self, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        def split(x: torch.Tensor) -> torch.Tensor:  # (batch, n, qkv) -> (batch, heads, n, qkv / heads)
            return x.view(x.shape[0], x.shape[1], self.heads, -1).transpose(1, 2)

        y = F.scaled_dot_product_attention(split(self.q(query)), split(self.k(context)), split(self.v(context)),
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(query.shape[0], query.shape[1], -1))


class LunaLayer(nn.Module):
    """Pack, unpack, feed-forward; returns the new token sequence and the new packed context."""

    def __init__(self, c: LunaConfig, update_context: bool = True):
        super().__init__()
        d = c.embed_dim
        self.pack = Attention(d, c.qkv_dim, c.num_heads, c.dropout)
        self.unpack = Attention(d, c.qkv_dim, c.num_heads, c.dropout)
        # The last layer's new context would be discarded, so it has no context norm to train.
        self.norm_context = nn.LayerNorm(d) if update_context else None
        self.norm_tokens = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, c.ffn_dim), nn.GELU(), nn.Dropout(c.dropout), nn.Linear(c.ffn_dim, d))
        self.norm_ffn = nn.LayerNorm(d)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        packed = self.pack(p, x)
        unpacked = self.unpack(x, packed)
        x = self.norm_tokens(x + self.dropout(unpacked))
        if self.norm_context is not None:
            p = self.norm_context(p + self.dropout(packed))
        x = self.norm_ffn(x + self.dropout(self.ffn(x)))
        return x, p


class Luna(nn.Module):
    """``(batch, 1, L)`` -> logits ``(batch,)``: chunk tokens, LUNA layers, mean pooling, MLP head."""

    def __init__(self, config: LunaConfig):
        super().__init__()
        self.embed = ChunkEmbedding(config.chunk_length, config.embed_dim, config.signal_length)
        self.register_buffer("pos", sincos_1d(self.embed.num_tokens, config.embed_dim).unsqueeze(0), persistent=False)
        self.context = nn.Parameter(torch.randn(1, config.context_length, config.embed_dim) * 0.02)
        self.layers = nn.ModuleList(LunaLayer(config, i < config.depth - 1) for i in range(config.depth))
        self.head = classifier_head(config.embed_dim, config.head_width, config.head_dropout)

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
        # docs/protocol.md's LUNA space (module docstring); embedding 64 is fixed, heads <= qkv dim so they divide it.
        qkv_dim = 2 ** trial.suggest_int("log2_qkv_dim", 4, 6)
        return {
            "chunk_length": trial.suggest_categorical("chunk_length", [50, 100, 250]),
            "depth": trial.suggest_int("depth", 3, 6),
            "num_heads": min(2 ** trial.suggest_int("log2_heads", 4, 6), qkv_dim),
            "qkv_dim": qkv_dim,
            "ffn_dim": 2 ** trial.suggest_int("log2_ffn_dim", 5, 8),
            "context_length": 2 ** trial.suggest_int("log2_context_length", 4, 6),
            "head_width": 2 ** trial.suggest_int("log2_head_width", 4, 10),
        }
