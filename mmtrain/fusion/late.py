"""Late fusion: each modality makes its own prediction (its own MLP and heads) and the
predictions are combined; a missing modality is left out of the combination."""

from __future__ import annotations

import torch
from torch import nn

from mmtrain.fusion.base import DecisionFusion, mlp


class LateFusion(DecisionFusion):
    """pooled [B, d_m] per modality -> member features [B, M, dim], member_present = present."""

    def __init__(
        self,
        in_dims: dict[str, int],
        dim: int = 256,
        dropout: float = 0.1,
        combine: str = "mean",
        weights=None,
        member_loss_weight: float = 0.5,
    ):
        super().__init__(in_dims, list(in_dims), combine, weights, member_loss_weight)
        self.out_dim = dim
        self.nets = nn.ModuleDict({m: mlp(d, dim, dim, dropout) for m, d in in_dims.items()})

    def forward(self, outs: dict, present: torch.Tensor):
        feats = torch.stack([self.nets[m](outs[m].pooled) for m in self.modalities], dim=1)
        return feats, present
