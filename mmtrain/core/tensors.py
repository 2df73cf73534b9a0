"""Tensor helpers shared by the data, encoder and fusion layers (padding, masked pooling, attention
masks): a neutral module that any layer may import."""

from __future__ import annotations

import torch


def pad(features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample [T_i, ...] -> x [B, T, ...] (zero-padded, T >= 1) and mask [B, T]."""
    lengths = [f.shape[0] for f in features]
    x = features[0].new_zeros((len(features), max(1, max(lengths)), *features[0].shape[1:]))
    for i, f in enumerate(features):
        x[i, : lengths[i]] = f
    mask = torch.arange(x.shape[1]) < torch.tensor(lengths).unsqueeze(1)
    return x, mask


def masked_mean(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens: [B, T, D], [B, T] -> [B, D]; zeros for rows with no token."""
    weights = mask.unsqueeze(-1).to(tokens.dtype)
    return (tokens * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def attendable(mask: torch.Tensor) -> torch.Tensor:
    """A key mask safe for attention: rows with no real token get their first slot opened, since
    an all-masked row makes softmax NaN. Callers discard those rows' outputs. Branch-free, so a
    traced or exported graph keeps it for every batch."""
    first = torch.zeros_like(mask)
    first[:, 0] = True
    return mask | (first & ~mask.any(dim=1, keepdim=True))


def masked_softmax(scores: torch.Tensor, keep: torch.Tensor, dim: int) -> torch.Tensor:
    """Softmax over the kept entries of ``dim`` (``keep`` broadcasts to ``scores``); dropped entries get
    0, and a slice with nothing kept is all 0 (not NaN)."""
    keep = keep.expand_as(scores)
    scores = scores.masked_fill(~keep, torch.finfo(scores.dtype).min)
    return torch.softmax(scores, dim) * keep.to(scores.dtype)
