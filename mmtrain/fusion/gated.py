"""Gated fusion: the Gated Multimodal Unit (Arevalo et al. 2017, "Gated Multimodal Units for
Information Fusion"), generalised from two modalities to M: each modality's pooled vector becomes
h_m = tanh(W_m x_m), and a gate computed from all of them (with the present flags) weighs, per
feature, how much of each modality goes into h = sum_m z_m * h_m, z = softmax over the present
modalities (for M = 2 with both present, the paper's z and 1 - z)."""

from __future__ import annotations

import torch
from torch import nn

from mmtrain.core.tensors import masked_softmax
from mmtrain.fusion.base import Fusion, pooled_inputs


class GatedFusion(Fusion):
    """pooled [B, d_m] per modality + present [B, M] -> [B, dim]; ``gates(parts, present)`` gives the
    gate values z [B, M, dim] (0 for a missing modality); a modality's weight is its mean gate."""

    def __init__(self, in_dims: dict[str, int], dim: int = 256, dropout: float = 0.1):
        super().__init__(in_dims)
        self.out_dim = dim
        self.hidden = nn.ModuleDict({m: nn.Linear(d, dim) for m, d in in_dims.items()})
        self.gate = nn.Linear(sum(in_dims.values()) + len(in_dims), len(in_dims) * dim)
        self.out = nn.Sequential(nn.LayerNorm(dim), nn.Dropout(dropout))

    def gates(self, parts: list[torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        logits = self.gate(torch.cat(parts + [present.to(parts[0].dtype)], -1)).view(
            len(present), len(parts), -1
        )
        return masked_softmax(logits, present.unsqueeze(-1), dim=1)

    def modality_weights(self, outs: dict, present: torch.Tensor) -> dict[str, torch.Tensor]:
        gates = self.gates(pooled_inputs(outs, present, self.modalities, self.modalities), present).mean(-1)
        return dict(zip(self.modalities, gates.T))

    def forward(self, outs: dict, present: torch.Tensor) -> torch.Tensor:
        parts = pooled_inputs(outs, present, self.modalities, self.modalities)
        hidden = torch.stack([torch.tanh(self.hidden[m](x)) for m, x in zip(self.modalities, parts)], 1)
        return self.out((self.gates(parts, present) * hidden).sum(1))
