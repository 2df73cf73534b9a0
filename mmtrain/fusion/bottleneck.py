"""Bottleneck fusion: the Multimodal Bottleneck Transformer (Nagrani et al. 2021, "Attention
Bottlenecks for Multimodal Fusion"). Each modality's tokens go through their own transformer
layers together with a few shared bottleneck tokens; modalities exchange information only through
those tokens: after each layer, the bottleneck is the average of the present modalities' updated
copies of it. The pooled tokens of each modality and the pooled bottleneck go to an MLP."""

from __future__ import annotations

import torch
from torch import nn

from mmtrain.core.errors import ConfigError
from mmtrain.core.tensors import masked_mean
from mmtrain.fusion.base import Fusion, mlp


class BottleneckFusion(Fusion):
    """tokens [B, T_m, d_m] + mask per modality, present [B, M] -> [B, out_dim]; ``bottlenecks``
    shared tokens of width ``dim`` cross between modalities at each of ``layers`` layers."""

    def __init__(
        self,
        in_dims: dict[str, int],
        dim: int = 128,
        heads: int = 4,
        layers: int = 2,
        bottlenecks: int = 4,
        dropout: float = 0.1,
        out_dim: int = 256,
    ):
        super().__init__(in_dims)
        if dim % heads:
            raise ConfigError(f"fusion.dim={dim} must be divisible by fusion.heads={heads}.")
        if bottlenecks < 1:
            raise ConfigError(f"fusion.bottlenecks={bottlenecks}: use at least 1 shared token.")
        self.out_dim = out_dim
        self.proj = nn.ModuleDict({m: nn.Linear(d, dim) for m, d in in_dims.items()})
        self.bottleneck = nn.Parameter(torch.randn(1, bottlenecks, dim) * 0.02)
        self.layers = nn.ModuleList(
            nn.ModuleDict(
                {
                    m: nn.TransformerEncoderLayer(
                        dim, heads, 4 * dim, dropout, batch_first=True, norm_first=True
                    )
                    for m in in_dims
                }
            )
            for _ in range(layers)
        )
        self.net = mlp((len(in_dims) + 1) * dim, out_dim, out_dim, dropout)

    def forward(self, outs: dict, present: torch.Tensor) -> torch.Tensor:
        tokens = {m: self.proj[m](outs[m].tokens) for m in self.modalities}
        shared = self.bottleneck.expand(len(present), -1, -1)
        n = shared.shape[1]
        share = present.to(shared.dtype) / present.sum(1, keepdim=True).clamp(
            min=1
        )  # [B, M]: present ones averaged
        for layer in self.layers:
            copies = []
            for m in self.modalities:
                keep = torch.cat([outs[m].mask, torch.ones_like(outs[m].mask[:, :1]).expand(-1, n)], 1)
                y = layer[m](torch.cat([tokens[m], shared], 1), src_key_padding_mask=~keep)
                tokens[m] = y[:, :-n]
                copies.append(y[:, -n:])
            shared = torch.einsum("bm,bmnd->bnd", share, torch.stack(copies, 1))
        pooled = [
            masked_mean(tokens[m], outs[m].mask) * present[:, k, None].to(shared.dtype)
            for k, m in enumerate(self.modalities)
        ]
        return self.net(torch.cat(pooled + [shared.mean(1)], -1))
