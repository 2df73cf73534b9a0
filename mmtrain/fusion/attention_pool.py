"""Attention pooling over modalities: each modality's pooled vector is projected to ``dim``, scored
by a small MLP, and the fused vector is the softmax-weighted sum over the present modalities (the
attention-based fusion of e.g. Hori et al. 2017, "Attention-Based Multimodal Fusion for Video
Description"). ``modality_weights(outs, present)`` exposes the per-sample weight of each modality."""

from __future__ import annotations

import torch
from torch import nn

from mmtrain.core.tensors import masked_softmax
from mmtrain.fusion.base import Fusion


class AttentionPoolFusion(Fusion):
    """pooled [B, d_m] per modality + present [B, M] -> [B, dim]; weights [B, M], 0 where missing."""

    def __init__(self, in_dims: dict[str, int], dim: int = 256, dropout: float = 0.1):
        super().__init__(in_dims)
        self.out_dim = dim
        self.proj = nn.ModuleDict(
            {m: nn.Sequential(nn.Linear(d, dim), nn.GELU()) for m, d in in_dims.items()}
        )
        self.score = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, 1))
        self.out = nn.Sequential(nn.LayerNorm(dim), nn.Dropout(dropout))

    def _projected(self, outs: dict) -> torch.Tensor:
        return torch.stack([self.proj[m](outs[m].pooled) for m in self.modalities], 1)  # [B, M, dim]

    def _weights(self, h: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        return masked_softmax(self.score(h).squeeze(-1), present, dim=1)

    def modality_weights(self, outs: dict, present: torch.Tensor) -> dict[str, torch.Tensor]:
        return dict(zip(self.modalities, self._weights(self._projected(outs), present).T))

    def forward(self, outs: dict, present: torch.Tensor) -> torch.Tensor:
        h = self._projected(outs)
        return self.out((self._weights(h, present).unsqueeze(-1) * h).sum(1))
