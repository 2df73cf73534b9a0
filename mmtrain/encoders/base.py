"""The encoder contract shared by every modality.

An encoder works in two stages:
- ``featurize(raws) -> list[Tensor]``: the part that never trains (tokenizing, a log-mel front
  end, or the whole network when it is frozen). It runs once per split before training and its
  per-sample outputs ``[T_i, ...]`` are kept, so a frozen encoder is not re-run every epoch.
- ``forward(x [B, T, ...], mask [B, T]) -> EncoderOutput``: the trainable part, on padded batches.
A row without the modality arrives as an all-False mask row; encoders must return finite values
for it (fusion zeroes it out through the ``present`` mask).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class EncoderOutput:
    tokens: torch.Tensor  # [B, T, out_dim]
    mask: torch.Tensor  # [B, T] bool, True where a token is real
    pooled: torch.Tensor  # [B, out_dim]


class Encoder(nn.Module):
    out_dim: int

    def featurize(self, raws: list) -> list[torch.Tensor]:
        raise NotImplementedError

    def cache_key(self) -> dict | None:
        """What ``featurize``'s output depends on besides the inputs, for the on-disk feature cache;
        None (the default) when featurizing is cheap enough not to cache."""
        return None

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> EncoderOutput:
        raise NotImplementedError


def masked_mean(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens: [B, T, D], [B, T] -> [B, D]; zeros for rows with no token."""
    weights = mask.unsqueeze(-1).to(tokens.dtype)
    return (tokens * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def attendable(mask: torch.Tensor) -> torch.Tensor:
    """A key mask safe for attention: rows with no real token get their first slot opened, since
    an all-masked row makes softmax NaN. Callers discard those rows' outputs."""
    empty = ~mask.any(dim=1)
    if not empty.any():
        return mask
    mask = mask.clone()
    mask[empty, 0] = True
    return mask


def set_trainable(module: nn.Module, trainable: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(trainable)
