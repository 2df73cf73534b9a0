"""Hybrid fusion: named groups of modalities are each fused early (concatenate + MLP), and the
groups' predictions are combined late. By default every modality is a group of its own and one
more group, ``all``, holds them all."""

from __future__ import annotations

import torch
from torch import nn

from mmtrain.core.errors import ConfigError
from mmtrain.fusion.base import DecisionFusion, check_modalities, mlp, pooled_inputs


class HybridFusion(DecisionFusion):
    """pooled [B, d_m] per modality -> member (group) features [B, G, dim]; a group is present
    when any of its modalities is."""

    def __init__(
        self,
        in_dims: dict[str, int],
        groups: dict | None = None,
        dim: int = 256,
        dropout: float = 0.1,
        combine: str = "mean",
        weights=None,
        member_loss_weight: float = 0.5,
    ):
        modalities = check_modalities(in_dims)
        if groups is None:
            groups = {m: [m] for m in modalities}
            if len(modalities) > 1:
                groups["all"] = list(modalities)
        groups = {name: list(members) for name, members in dict(groups).items()}
        for name, members in groups.items():
            unknown = [m for m in members if m not in in_dims]
            if not members or unknown:
                raise ConfigError(
                    f"fusion.groups.{name}={members} must list modalities of this run {modalities} "
                    f"(unknown: {unknown or 'empty group'})."
                )
        super().__init__(in_dims, list(groups), combine, weights, member_loss_weight)
        self.groups, self.out_dim = groups, dim
        self.nets = nn.ModuleDict(
            {
                name: mlp(sum(in_dims[m] for m in members) + len(members), dim, dim, dropout)
                for name, members in groups.items()
            }
        )

    def forward(self, outs: dict, present: torch.Tensor):
        feats, member_present = [], []
        for name, members in self.groups.items():
            idx = [self.modalities.index(m) for m in members]
            parts = pooled_inputs(outs, present, members, self.modalities)
            flags = present[:, idx].to(parts[0].dtype)
            feats.append(self.nets[name](torch.cat(parts + [flags], dim=-1)))
            member_present.append(present[:, idx].any(1))
        return torch.stack(feats, 1), torch.stack(member_present, 1)
