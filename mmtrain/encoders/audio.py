"""Audio encoders over log-mel frames: a small 1-D CNN (default) or a small transformer.

The log-mel front end (``torch.stft`` with librosa's mel filters) has no trainable parameters, so
it runs in ``featurize`` once per split: each clip becomes frames ``[T_i, n_mels]``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mmtrain.encoders.base import Encoder, EncoderOutput, attendable, masked_mean
from mmtrain.errors import ConfigError


class LogMel(nn.Module):
    """waveform [N] at ``sample_rate`` -> log-mel frames [T, n_mels]."""

    def __init__(self, sample_rate: int = 16_000, n_mels: int = 64, n_fft: int = 400,
                 hop_length: int = 320):
        super().__init__()
        import librosa

        self.n_fft, self.hop_length = n_fft, hop_length
        mel = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels)
        self.register_buffer("mel", torch.from_numpy(mel).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    @torch.no_grad()
    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(wave, self.n_fft, self.hop_length, window=self.window,
                          return_complex=True).abs().pow(2)
        return torch.log(self.mel @ spec + 1e-6).T.contiguous()


class _LogMelEncoder(Encoder):
    def __init__(self, sample_rate: int, n_mels: int, hop_length: int):
        super().__init__()
        self.sample_rate = sample_rate
        self.frontend = LogMel(sample_rate, n_mels, hop_length=hop_length)

    def featurize(self, raws: list) -> list[torch.Tensor]:
        return [self.frontend(torch.as_tensor(w, dtype=torch.float32)) for w in raws]


class AudioCNNEncoder(_LogMelEncoder):
    """Log-mel frames -> a stack of strided 1-D convolutions over time -> frame tokens.

    x [B, T, n_mels], mask [B, T] -> tokens [B, ceil(T / 2**layers), channels].
    """

    def __init__(self, sample_rate: int = 16_000, n_mels: int = 64, hop_length: int = 320,
                 channels: int = 128, layers: int = 3, kernel_size: int = 5, dropout: float = 0.1):
        super().__init__(sample_rate, n_mels, hop_length)
        if layers < 1:
            raise ConfigError(f"encoder.audio.layers={layers} must be at least 1.")
        self.out_dim, self.layers = channels, layers
        self.norm = nn.BatchNorm1d(n_mels)
        blocks, width = [], n_mels
        for _ in range(layers):
            blocks += [nn.Conv1d(width, channels, kernel_size, stride=2, padding=kernel_size // 2),
                       nn.BatchNorm1d(channels), nn.GELU(), nn.Dropout(dropout)]
            width = channels
        self.body = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> EncoderOutput:
        h = self.body(self.norm(x.transpose(1, 2))).transpose(1, 2)
        lengths = mask.sum(1)
        for _ in range(self.layers):
            lengths = torch.div(lengths + 1, 2, rounding_mode="floor")
        token_mask = torch.arange(h.shape[1], device=h.device) < lengths.unsqueeze(1)
        h = h * token_mask.unsqueeze(-1)
        return EncoderOutput(h, token_mask, masked_mean(h, token_mask))


class AudioTransformerEncoder(_LogMelEncoder):
    """Log-mel frames, stacked ``stride`` at a time, -> linear -> transformer encoder.

    x [B, T, n_mels], mask [B, T] -> tokens [B, ceil(T / stride), dim].
    """

    def __init__(self, sample_rate: int = 16_000, n_mels: int = 64, hop_length: int = 320,
                 dim: int = 128, layers: int = 2, heads: int = 4, stride: int = 4,
                 dropout: float = 0.1, max_tokens: int = 512):
        super().__init__(sample_rate, n_mels, hop_length)
        if dim % heads:
            raise ConfigError(f"encoder.audio.dim={dim} must be divisible by encoder.audio.heads={heads}.")
        self.out_dim, self.stride = dim, stride
        self.norm = nn.LayerNorm(n_mels * stride)
        self.proj = nn.Linear(n_mels * stride, dim)
        self.position = nn.Parameter(torch.zeros(max_tokens, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout, batch_first=True,
                                           norm_first=True)
        self.body = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> EncoderOutput:
        batch, frames, mels = x.shape
        tokens = math.ceil(frames / self.stride)
        x = nn.functional.pad(x, (0, 0, 0, tokens * self.stride - frames))
        mask = nn.functional.pad(mask, (0, tokens * self.stride - frames))
        h = self.proj(self.norm(x.reshape(batch, tokens, mels * self.stride)))
        token_mask = mask.reshape(batch, tokens, self.stride).any(-1)
        h = self.body(h + self.position[:tokens], src_key_padding_mask=~attendable(token_mask))
        h = h * token_mask.unsqueeze(-1)
        return EncoderOutput(h, token_mask, masked_mean(h, token_mask))
