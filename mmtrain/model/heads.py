"""Task heads: one per task, on top of the fused representation."""

from __future__ import annotations

import torch
from torch import nn


class Head(nn.Module):
    """features [B, in_dim] -> outputs [B, num_outputs] (logits, or values for regression).

    hidden=0 is a linear head; otherwise one hidden layer. ``loss_weight`` scales this task's loss
    in the multi-task sum.
    """

    def __init__(
        self, in_dim: int, num_outputs: int, hidden: int = 0, dropout: float = 0.1, loss_weight: float = 1.0
    ):
        super().__init__()
        self.loss_weight = loss_weight
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        if hidden:
            layers += [nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout)]
        layers.append(nn.Linear(hidden or in_dim, num_outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)
