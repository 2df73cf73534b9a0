"""Low-rank fusion: Low-rank Multimodal Fusion (Liu et al. 2018, "Efficient Low-rank Multimodal
Fusion with Modality-Specific Factors"). The tensor fusion's weight over the outer product of the
[h_m; 1] vectors is factorised into ``rank`` modality-specific factors, so the fused vector is
sum_r prod_m ([h_m; 1] W_m^(r)) without ever forming the product: linear in M instead of exponential."""

from __future__ import annotations

import torch
from torch import nn

from mmtrain.fusion.base import Fusion, pooled_inputs


class LowRankFusion(Fusion):
    """pooled [B, d_m] per modality (0 where missing) + present [B, M] -> [B, dim]."""

    def __init__(self, in_dims: dict[str, int], dim: int = 256, rank: int = 4, dropout: float = 0.1):
        super().__init__(in_dims)
        self.out_dim = dim
        # registered parameters (MultiBench's LMF kept them in a plain list, so they never trained)
        self.factors = nn.ParameterDict(
            {m: nn.Parameter(torch.empty(rank, d + 1, dim)) for m, d in in_dims.items()}
        )
        for factor in self.factors.values():
            nn.init.xavier_normal_(factor)
        self.rank_weights = nn.Parameter(torch.full((1, rank), 1.0 / rank))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.out = nn.Sequential(nn.LayerNorm(dim), nn.GELU(), nn.Dropout(dropout))

    def forward(self, outs: dict, present: torch.Tensor) -> torch.Tensor:
        fused = None
        for m, x in zip(self.modalities, pooled_inputs(outs, present, self.modalities, self.modalities)):
            z = torch.cat([x, torch.ones_like(x[:, :1])], -1)  # [B, d_m + 1]
            per_rank = torch.einsum("bd,rdo->bro", z, self.factors[m])  # [B, rank, dim]
            fused = per_rank if fused is None else fused * per_rank
        return self.out(torch.einsum("r,bro->bo", self.rank_weights[0], fused) + self.bias)
