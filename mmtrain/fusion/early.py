"""Early fusion: the modalities' pooled vectors are concatenated, with the ``present`` flags, and
go through one shared MLP."""

from __future__ import annotations

import torch

from mmtrain.fusion.base import Fusion, mlp, pooled_inputs


class EarlyFusion(Fusion):
    """pooled [B, d_m] per modality + present [B, M] -> [B, dim]."""

    def __init__(self, in_dims: dict[str, int], dim: int = 256, dropout: float = 0.1):
        super().__init__(in_dims)
        self.out_dim = dim
        self.net = mlp(sum(in_dims.values()) + len(in_dims), dim, dim, dropout)

    def forward(self, outs: dict, present: torch.Tensor) -> torch.Tensor:
        parts = pooled_inputs(outs, present, self.modalities, self.modalities)
        return self.net(torch.cat(parts + [present.to(parts[0].dtype)], dim=-1))
