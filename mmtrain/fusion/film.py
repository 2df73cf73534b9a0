"""FiLM fusion (Perez et al. 2018, "FiLM: Visual Reasoning with a General Conditioning Layer"): one
modality, the ``conditioner``, turns its pooled vector into a per-feature scale and shift of every
other modality's projected tokens, (1 + gamma) * h + beta; the conditioned tokens are pooled and
go, with the conditioner's vector, to an MLP. The modulation starts as the identity (zero init)."""

from __future__ import annotations

import torch
from torch import nn

from mmtrain.core.errors import ConfigError
from mmtrain.core.tensors import masked_mean
from mmtrain.fusion.base import Fusion, mlp


class FiLMFusion(Fusion):
    """pooled [B, d_c] of the conditioner, tokens [B, T_m, d_m] + mask of the others, present [B, M]
    -> [B, out_dim]. conditioner: a modality name (null: the run's first modality)."""

    min_modalities = 2

    def __init__(
        self,
        in_dims: dict[str, int],
        conditioner: str | None = None,
        dim: int = 128,
        dropout: float = 0.1,
        out_dim: int = 256,
    ):
        super().__init__(in_dims)
        self.conditioner = conditioner or self.modalities[0]
        if self.conditioner not in in_dims:
            raise ConfigError(
                f"fusion.conditioner={conditioner} is not one of this run's modalities "
                f"{self.modalities}: name the modality whose vector modulates the others."
            )
        self.conditioned = [m for m in self.modalities if m != self.conditioner]
        self.out_dim = out_dim
        self.proj = nn.ModuleDict({m: nn.Linear(in_dims[m], dim) for m in self.conditioned})
        self.film = nn.ModuleDict(
            {m: nn.Linear(in_dims[self.conditioner], 2 * dim) for m in self.conditioned}
        )
        for layer in self.film.values():
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.net = mlp(dim * len(self.conditioned) + in_dims[self.conditioner], out_dim, out_dim, dropout)

    def forward(self, outs: dict, present: torch.Tensor) -> torch.Tensor:
        has = {m: present[:, k, None].to(outs[m].pooled.dtype) for k, m in enumerate(self.modalities)}
        condition = outs[self.conditioner].pooled * has[self.conditioner]
        parts = [condition]
        for m in self.conditioned:
            gamma, beta = (self.film[m](condition) * has[self.conditioner]).unsqueeze(1).chunk(2, -1)
            h = nn.functional.gelu(self.proj[m](outs[m].tokens) * (1 + gamma) + beta)
            parts.append(masked_mean(h, outs[m].mask) * has[m])
        return self.net(torch.cat(parts, -1))
