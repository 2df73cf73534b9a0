"""Pieces shared by the fusion strategies."""

from __future__ import annotations

import torch
from torch import nn

from mmtrain.errors import ConfigError
from mmtrain.tasks import TASKS


def mlp(in_dim: int, hidden: int, out_dim: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, hidden), nn.GELU(),
                         nn.Dropout(dropout), nn.Linear(hidden, out_dim), nn.GELU(),
                         nn.Dropout(dropout))


def check_modalities(in_dims: dict[str, int]) -> list[str]:
    if not in_dims:
        raise ConfigError("The run has no modality: set `modalities` to a non-empty list.")
    return list(in_dims)


def pooled_inputs(outs: dict, present: torch.Tensor, names: list[str], order: list[str]):
    """Pooled vectors of ``names``, each zeroed where the sample lacks that modality.

    outs: modality -> EncoderOutput; present [B, M] in the order of ``order``.
    Returns a list of [B, d_m] tensors.
    """
    return [outs[n].pooled * present[:, order.index(n)].unsqueeze(-1).to(outs[n].pooled.dtype)
            for n in names]


class DecisionFusion(nn.Module):
    """Decision-level fusion: ``forward`` gives member features [B, G, member_dim] and which
    members each sample has [B, G]; a head per member predicts; ``combine`` merges them.

    combine: mean | weighted (fixed ``weights``, one per member) | learned (softmax of learned
    scores) | vote (majority of the members' predicted classes/labels; mean for regression).
    Only present members count; their weights are renormalised per sample.
    """

    decision_level = True
    COMBINES = ("mean", "weighted", "learned", "vote")

    def __init__(self, members: list[str], combine: str, weights, member_loss_weight: float):
        super().__init__()
        if combine not in self.COMBINES:
            raise ConfigError(f"fusion.combine={combine} is not known: use one of {', '.join(self.COMBINES)}.")
        if combine == "weighted":
            if weights is None or len(weights) != len(members):
                raise ConfigError(
                    f"fusion.weights={None if weights is None else list(weights)} needs one weight per member "
                    f"{members} for fusion.combine=weighted (e.g. fusion.weights=[0.6,0.4]).")
            if min(weights) < 0 or sum(weights) <= 0:
                raise ConfigError(f"fusion.weights={list(weights)} must be non-negative with a positive sum.")
        if combine == "vote" and member_loss_weight <= 0:
            raise ConfigError("fusion.combine=vote is not differentiable, so the members learn from their own "
                              "losses: set fusion.member_loss_weight above 0 (e.g. 1.0).")
        self.members, self.combine_mode = members, combine
        self.member_loss_weight = member_loss_weight
        fixed = torch.tensor(list(weights) if combine == "weighted" else [1.0] * len(members))
        self.register_buffer("fixed_weights", fixed.float())
        self.scores = nn.Parameter(torch.zeros(len(members))) if combine == "learned" else None

    def member_weights(self, member_present: torch.Tensor) -> torch.Tensor:
        """[B, G] weights over present members, summing to 1 per sample (0 if none present)."""
        base = torch.softmax(self.scores, 0) if self.scores is not None else self.fixed_weights
        w = base.unsqueeze(0) * member_present.to(base.dtype)
        return w / w.sum(1, keepdim=True).clamp(min=1e-12)

    def combine(self, preds: torch.Tensor, member_present: torch.Tensor, task_type: str) -> torch.Tensor:
        """preds [B, G, K] (logits, or values for regression) -> [B, K]."""
        w = self.member_weights(member_present).unsqueeze(-1)
        if self.combine_mode != "vote":
            return (w * preds).sum(1)
        return TASKS.get(task_type).vote(preds, w)
