"""Train-time augmentation, applied inside encoders' ``forward`` (features are computed once, so
augmentation works on them: log-mel frames, pixels, token masks). Off by default; never in eval."""

from __future__ import annotations

import math

import torch
from torch import nn


class SpecAugment(nn.Module):
    """On log-mel frames x [B, T, n_mels] with mask [B, T]: ``masks`` time masks of up to
    ``time_mask`` frames and frequency masks of up to ``freq_mask`` bins (set to each row's mean),
    a random gain of ±``gain_db`` (an offset in the log domain) and additive white noise at
    ``noise_db`` below each clip's mean power (log-add), and a shift of up to ±``freq_shift`` mel bins
    (a cheap stand-in for vocal tract length perturbation), each clip drawn independently."""

    def __init__(
        self,
        time_mask: int = 0,
        freq_mask: int = 0,
        masks: int = 2,
        gain_db: float = 0.0,
        noise_db: float | None = None,
        freq_shift: int = 0,
    ):
        super().__init__()
        self.time_mask, self.freq_mask, self.masks = time_mask, freq_mask, masks
        self.gain_db, self.noise_db, self.freq_shift = gain_db, noise_db, freq_shift

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        batch, frames, bins = x.shape
        if self.gain_db:
            gain = (torch.rand(batch, 1, 1, device=x.device) * 2 - 1) * self.gain_db
            x = x + gain * math.log(10) / 10
        if self.noise_db is not None:
            weights = mask.unsqueeze(-1).to(x.dtype)
            level = (x * weights).sum((1, 2), keepdim=True) / (
                weights.sum((1, 2), keepdim=True) * bins
            ).clamp(min=1)
            x = torch.logaddexp(x, level - self.noise_db * math.log(10) / 10)
        if self.freq_shift:
            shift = torch.randint(-self.freq_shift, self.freq_shift + 1, (batch, 1, 1), device=x.device)
            source = (torch.arange(bins, device=x.device) - shift).clamp(0, bins - 1)  # edges repeat
            x = torch.gather(x, 2, source.expand(batch, frames, bins))
        fill = x.mean((1, 2), keepdim=True)
        for size, axis, length in ((self.time_mask, 1, frames), (self.freq_mask, 2, bins)):
            for _ in range(self.masks if size else 0):
                width = torch.randint(0, size + 1, (batch, 1), device=x.device)
                start = (torch.rand(batch, 1, device=x.device) * (length - width).clamp(min=1)).long()
                steps = torch.arange(length, device=x.device)
                hit = (steps >= start) & (steps < start + width)
                hit = hit.unsqueeze(2) if axis == 1 else hit.unsqueeze(1)
                x = torch.where(hit, fill, x)
        return x


class ImageAugment(nn.Module):
    """Per-image torchvision transforms on x [B, C, H, W]: random affine (rotation ``degrees``,
    shift ``translate`` as a share of the size, ``scale`` range), horizontal flip with probability
    ``hflip`` and random erasing with probability ``erase``."""

    def __init__(
        self,
        degrees: float = 0.0,
        translate: float = 0.0,
        scale=(1.0, 1.0),
        hflip: float = 0.0,
        erase: float = 0.0,
    ):
        super().__init__()
        from torchvision.transforms import v2

        steps = []
        if degrees or translate or tuple(scale) != (1.0, 1.0):
            steps.append(
                v2.RandomAffine(degrees, (translate, translate) if translate else None, tuple(scale))
            )
        if hflip:
            steps.append(v2.RandomHorizontalFlip(hflip))
        if erase:
            steps.append(v2.RandomErasing(erase))
        self.transform = v2.Compose(steps) if steps else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.transform is None:
            return x
        return torch.stack([self.transform(image) for image in x])


def token_dropout(mask: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Drop each real token but the first (CLS) with probability ``p`` from mask [B, T]."""
    if not training or not p:
        return mask
    keep = torch.rand(mask.shape, device=mask.device) >= p
    keep[:, 0] = True
    return mask & keep
