"""Intermediate fusion: cross-modal attention between the modalities' token sequences (MulT-style,
Tsai et al. 2019, without its causal mask). Each target modality attends to every other modality's
tokens; the updated target tokens are pooled and concatenated, then go through an MLP. No time
alignment between modalities is needed (text tokens vs audio frames)."""

from __future__ import annotations

import torch
from torch import nn

from mmtrain.core.errors import ConfigError
from mmtrain.core.tensors import attendable, masked_mean
from mmtrain.fusion.base import Fusion, mlp


class CrossModalBlock(nn.Module):
    """Pre-LN cross-attention + feed-forward: target x [B, Tα, d] attends to source [B, Tβ, d]."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.norm_q, self.norm_kv, self.norm_ff = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.ff = nn.Sequential(
            nn.Linear(dim, 4 * dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(4 * dim, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x, source, source_mask, source_present):
        kv = self.norm_kv(source)
        update, _ = self.attn(
            self.norm_q(x), kv, kv, key_padding_mask=~attendable(source_mask), need_weights=False
        )
        # A sample without the source modality gets no update from it.
        x = x + update * source_present.view(-1, 1, 1).to(update.dtype)
        return x + self.ff(self.norm_ff(x))


class IntermediateFusion(Fusion):
    """tokens [B, T_m, d_m] + mask per modality, present [B, M] -> [B, dim].

    With one modality, it attends to itself (so unimodal baselines run the same architecture).
    Output before the MLP: M targets x (M-1) sources x ``dim`` (or ``dim`` for one modality).
    """

    def __init__(
        self,
        in_dims: dict[str, int],
        dim: int = 128,
        heads: int = 4,
        layers: int = 2,
        dropout: float = 0.1,
        out_dim: int = 256,
    ):
        super().__init__(in_dims)
        if dim % heads:
            raise ConfigError(
                f"fusion.dim={dim} must be divisible by fusion.heads={heads} "
                f"(e.g. fusion.dim={heads * max(1, dim // heads)})."
            )
        self.out_dim = out_dim
        self.proj = nn.ModuleDict({m: nn.Linear(d, dim) for m, d in in_dims.items()})
        self.pairs = [
            (t, s) for t in self.modalities for s in self.modalities if s != t or len(self.modalities) == 1
        ]
        self.blocks = nn.ModuleDict(
            {
                f"{t}->{s}": nn.ModuleList(CrossModalBlock(dim, heads, dropout) for _ in range(layers))
                for t, s in self.pairs
            }
        )
        self.net = mlp(len(self.pairs) * dim, out_dim, out_dim, dropout)

    def forward(self, outs: dict, present: torch.Tensor) -> torch.Tensor:
        tokens = {m: self.proj[m](outs[m].tokens) for m in self.modalities}
        pooled = []
        for target, source in self.pairs:
            t_idx, s_idx = self.modalities.index(target), self.modalities.index(source)
            x = tokens[target]
            for block in self.blocks[f"{target}->{source}"]:
                x = block(x, tokens[source], outs[source].mask, present[:, s_idx])
            # A sample without the target modality contributes nothing from this pair.
            pooled.append(masked_mean(x, outs[target].mask) * present[:, t_idx, None].to(x.dtype))
        return self.net(torch.cat(pooled, dim=-1))
