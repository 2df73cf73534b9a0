"""Numeric time series (x [B, T, C], standardised per channel with train statistics) -> tokens
[B, T, dim] with a GRU/LSTM (bidirectional, packed so padding is never read) or a transformer."""

from __future__ import annotations

import torch
from torch import nn

from mmtrain.core.errors import ConfigError
from mmtrain.core.tensors import attendable, masked_mean
from mmtrain.encoders.base import Encoder, EncoderOutput
from mmtrain.modalities.sequence import apply as apply_sequence

ARCHS = ("gru", "lstm", "transformer")


class SequenceEncoder(Encoder):
    def __init__(
        self,
        preprocessing: dict | None = None,
        arch: str = "gru",
        dim: int = 64,
        layers: int = 1,
        heads: int = 4,
        dropout: float = 0.1,
        max_length: int = 1024,
    ):
        super().__init__()
        if arch not in ARCHS:
            raise ConfigError(f"encoder (sequence) arch={arch} is not known: use one of {', '.join(ARCHS)}.")
        if not preprocessing:
            raise ConfigError(
                "A sequence encoder needs the data's channel statistics: use it for a modality "
                "of type sequence."
            )
        if arch == "transformer" and dim % heads:
            raise ConfigError(f"encoder (sequence) dim={dim} must be divisible by heads={heads}.")
        self.preprocessing, self.arch, self.out_dim, self.max_length = preprocessing, arch, dim, max_length
        channels = len(preprocessing["mean"])
        self.proj = nn.Linear(channels, dim)
        if arch == "transformer":
            self.position = nn.Parameter(torch.zeros(max_length, dim))
            layer = nn.TransformerEncoderLayer(
                dim, heads, 4 * dim, dropout, batch_first=True, norm_first=True
            )
            self.body = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        else:
            rnn = nn.GRU if arch == "gru" else nn.LSTM
            self.body = rnn(
                dim,
                dim // 2,
                layers,
                batch_first=True,
                bidirectional=True,
                dropout=dropout if layers > 1 else 0.0,
            )

    def input_spec(self) -> dict:
        return {
            "shape": ["batch", "length", len(self.preprocessing["mean"])],
            "dtype": "float32",
            "what": f"time steps (the last {self.max_length}), each channel standardised with the saved "
            "mean/std",
        }

    def featurize(self, raws: list) -> list[torch.Tensor]:
        # Longer series keep their last max_length steps (the most recent).
        return [s[-self.max_length :] for s in apply_sequence(self.preprocessing, raws)]

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> EncoderOutput:
        h = self.proj(x)
        if self.arch == "transformer":
            h = self.body(h + self.position[: h.shape[1]], src_key_padding_mask=~attendable(mask))
        else:
            lengths = mask.sum(1).clamp(min=1).cpu()
            packed = nn.utils.rnn.pack_padded_sequence(h, lengths, batch_first=True, enforce_sorted=False)
            h, _ = nn.utils.rnn.pad_packed_sequence(
                self.body(packed)[0], batch_first=True, total_length=x.shape[1]
            )
        h = h * mask.unsqueeze(-1)
        return EncoderOutput(h, mask, masked_mean(h, mask))
