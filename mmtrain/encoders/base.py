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
from pathlib import Path

import torch
from torch import nn

from mmtrain.tensors import pad


@dataclass
class EncoderOutput:
    tokens: torch.Tensor  # [B, T, out_dim]
    mask: torch.Tensor  # [B, T] bool, True where a token is real
    pooled: torch.Tensor  # [B, out_dim]


class Encoder(nn.Module):
    out_dim: int
    pretrained: bool = False  # pretrained weights train at optim.encoder_lr_mult x the learning rate

    def featurize(self, raws: list) -> list[torch.Tensor]:
        raise NotImplementedError

    def cache_key(self) -> dict | None:
        """What ``featurize``'s output depends on besides the inputs, for the on-disk feature cache;
        None (the default) when featurizing is cheap enough not to cache."""
        return None

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> EncoderOutput:
        raise NotImplementedError


def run_frozen(model: nn.Module, inputs: list[torch.Tensor], batch_size: int, encode) -> list[torch.Tensor]:
    """A frozen network over per-sample inputs [T_i, ...], in batches of similar length (less
    padding), in eval mode without gradients. encode(x [B, T, ...], mask [B, T]) -> list of B
    per-sample outputs; they come back in the inputs' order."""
    model.eval()
    out: list[torch.Tensor] = [None] * len(inputs)
    order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]))
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            for i, result in zip(chunk, encode(*pad([inputs[i] for i in chunk]))):
                out[i] = result.clone()
    return out


def set_trainable(module: nn.Module, trainable: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(trainable)


def model_files_key(path: str | None):
    """A cheap fingerprint of model weights for cache keys: (name, size, mtime) of each file of a
    model folder, or of one weights file; the string itself otherwise (a hub id)."""
    if not path:
        return None
    target = Path(path).expanduser()
    files = sorted(p for p in target.iterdir() if p.is_file()) if target.is_dir() else [target]
    return [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files if p.exists()] or str(path)
