"""Tensor fusion: the Tensor Fusion Network (Zadeh et al. 2017, "Tensor Fusion Network for
Multimodal Sentiment Analysis"). Each modality's pooled vector is projected to ``dim`` features
h_m (0 where the modality is missing) and extended with a constant 1; the outer product of the
[h_m; 1] vectors holds every unimodal, bimodal, ... M-modal product of features, and an MLP reads
it. Its size is (dim + 1) ** M: ``dim`` is kept small (the default 16 gives 4,913 for M = 3) and a
product over ``max_features`` is refused at build time."""

from __future__ import annotations

import math

import torch
from torch import nn

from mmtrain.core.errors import ConfigError
from mmtrain.fusion.base import Fusion, mlp


class TensorFusion(Fusion):
    """pooled [B, d_m] per modality + present [B, M] -> outer product [B, (dim+1)^M] -> MLP ->
    [B, out_dim]."""

    def __init__(
        self,
        in_dims: dict[str, int],
        dim: int = 16,
        out_dim: int = 256,
        dropout: float = 0.1,
        max_features: int = 200_000,
    ):
        super().__init__(in_dims)
        size = (dim + 1) ** len(in_dims)
        if size > max_features:
            fits = math.floor(max_features ** (1 / len(in_dims))) - 1
            raise ConfigError(
                f"fusion (tensor) dim={dim} with {len(in_dims)} modalities makes an outer product of "
                f"(dim + 1) ** {len(in_dims)} = {size:,} features, over max_features={max_features:,}: "
                f"set fusion.dim={fits} or less (or fusion=low_rank, its low-rank approximation)."
            )
        self.out_dim = out_dim
        self.proj = nn.ModuleDict(
            {m: nn.Sequential(nn.Linear(d, dim), nn.GELU()) for m, d in in_dims.items()}
        )
        self.net = mlp(size, out_dim, out_dim, dropout)

    def forward(self, outs: dict, present: torch.Tensor) -> torch.Tensor:
        product = None
        for k, m in enumerate(self.modalities):
            h = self.proj[m](outs[m].pooled) * present[:, k, None].to(outs[m].pooled.dtype)
            z = torch.cat([h, torch.ones_like(h[:, :1])], -1)  # [B, dim + 1]
            product = z if product is None else (product.unsqueeze(-1) * z.unsqueeze(1)).flatten(1)
        return self.net(product)
