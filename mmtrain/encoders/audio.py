"""Audio encoders: over log-mel frames a small 1-D CNN (default) or a small transformer; Whisper's
pretrained encoder (a named backbone); or any transformers audio model (wav2vec2, HuBERT, WavLM,
AST-style) from a local folder.

Inputs are waveforms at the encoder's rate or audio files (``Path``: read with soundfile at any
rate, resampled). The log-mel front end (``torch.stft`` with librosa's mel filters) has no
trainable parameters, so it runs in ``featurize`` once per split: each clip becomes frames
``[T_i, n_mels]``; train-time SpecAugment, gain and noise then act on those frames.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from mmtrain.backbones.catalog import Backbone
from mmtrain.backbones.convert import load_into, read_ctranslate2, whisper_encoder
from mmtrain.backbones.locate import resolve
from mmtrain.core.errors import ConfigError, summary
from mmtrain.core.media import load_audio
from mmtrain.core.tensors import attendable, masked_mean
from mmtrain.encoders.augment import SpecAugment
from mmtrain.encoders.base import (
    Encoder,
    EncoderOutput,
    model_reference,
    run_frozen,
    set_trainable,
    transformer_layer_ids,
)


def waveforms(raws: list, sample_rate: int) -> list[torch.Tensor]:
    """Raw clips (arrays already at ``sample_rate``, or file paths) -> float32 waveforms."""
    return [
        torch.as_tensor(load_audio(r, sample_rate) if isinstance(r, Path) else r, dtype=torch.float32)
        for r in raws
    ]


class LogMel(nn.Module):
    """waveform [N] at ``sample_rate`` -> log-mel frames [T, n_mels]."""

    def __init__(self, sample_rate: int = 16_000, n_mels: int = 64, n_fft: int = 400, hop_length: int = 320):
        super().__init__()
        import librosa

        self.n_fft, self.hop_length = n_fft, hop_length
        mel = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels)
        self.register_buffer("mel", torch.from_numpy(mel).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    @torch.no_grad()
    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if len(wave) <= self.n_fft:  # a clip shorter than one window: pad it with silence
            wave = nn.functional.pad(wave, (0, self.n_fft + 1 - len(wave)))
        spec = (
            torch.stft(wave, self.n_fft, self.hop_length, window=self.window, return_complex=True)
            .abs()
            .pow(2)
        )
        return torch.log(self.mel @ spec + 1e-6).T.contiguous()


class _LogMelEncoder(Encoder):
    """normalize=utterance subtracts each clip's mean and divides by its std per mel bin (cepstral
    mean and variance normalisation): loudness, microphone and part of the voice drop out, which
    helps on speakers never heard in training."""

    def __init__(
        self, sample_rate: int, n_mels: int, hop_length: int, augment: dict | None, normalize: str = "none"
    ):
        super().__init__()
        if normalize not in ("none", "utterance"):
            raise ConfigError(f"encoder.audio.normalize={normalize} is not known: use none or utterance.")
        self.sample_rate, self.normalize = sample_rate, normalize
        self.frontend = LogMel(sample_rate, n_mels, hop_length=hop_length)
        self.augment = SpecAugment(**(augment or {}))

    def featurize(self, raws: list) -> list[torch.Tensor]:
        return [self.frontend(w) for w in waveforms(raws, self.sample_rate)]

    def input_spec(self) -> dict:
        return {
            "shape": ["batch", "length", self.frontend.mel.shape[0]],
            "dtype": "float32",
            "what": f"log-mel frames: mono waveform at {self.sample_rate} Hz, |STFT|^2 "
            f"(n_fft {self.frontend.n_fft}, "
            f"hop {self.frontend.hop_length}, Hann) through librosa's mel filters, log(x + 1e-6)",
        }

    def prepare(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Log-mel frames [B, T, n_mels] -> augmented (training), then normalised per clip over its
        real frames: gain and noise act on log power, before normalisation."""
        x = self.augment(x, mask)
        if self.normalize == "utterance":
            weights = mask.unsqueeze(-1).to(x.dtype)
            count = weights.sum(1, keepdim=True).clamp(min=1)
            mean = (x * weights).sum(1, keepdim=True) / count
            std = (((x - mean) ** 2 * weights).sum(1, keepdim=True) / count).sqrt()
            x = (x - mean) / (std + 1e-3) * weights
        return x


class AudioCNNEncoder(_LogMelEncoder):
    """Log-mel frames -> a stack of strided 1-D convolutions over time -> frame tokens.

    x [B, T, n_mels], mask [B, T] -> tokens [B, ceil(T / 2**layers), channels]. Padded frames are
    zeroed after every block, so a clip's tokens do not depend on how long the others in its batch are.
    """

    def __init__(
        self,
        sample_rate: int = 16_000,
        n_mels: int = 64,
        hop_length: int = 320,
        channels: int = 128,
        layers: int = 3,
        kernel_size: int = 5,
        dropout: float = 0.1,
        augment: dict | None = None,
        normalize: str = "none",
    ):
        super().__init__(sample_rate, n_mels, hop_length, augment, normalize)
        if layers < 1:
            raise ConfigError(f"encoder.audio.layers={layers} must be at least 1.")
        self.out_dim, self.layers = channels, layers
        self.norm = nn.BatchNorm1d(n_mels)
        blocks, width = [], n_mels
        for _ in range(layers):
            blocks.append(
                nn.Sequential(
                    nn.Conv1d(width, channels, kernel_size, stride=2, padding=kernel_size // 2),
                    nn.BatchNorm1d(channels),
                    nn.GELU(),
                    nn.Dropout(dropout),
                )
            )
            width = channels
        self.body = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> EncoderOutput:
        h = self.norm(self.prepare(x, mask).transpose(1, 2)) * mask.unsqueeze(1)
        lengths = mask.sum(1)
        for block in self.body:
            h = block(h)
            lengths = torch.div(lengths + 1, 2, rounding_mode="floor")
            h = h * (torch.arange(h.shape[2], device=h.device) < lengths.unsqueeze(1)).unsqueeze(1)
        h = h.transpose(1, 2)
        token_mask = torch.arange(h.shape[1], device=h.device) < lengths.unsqueeze(1)
        return EncoderOutput(h, token_mask, masked_mean(h, token_mask))


class AudioTransformerEncoder(_LogMelEncoder):
    """Log-mel frames, stacked ``stride`` at a time, -> linear -> transformer encoder.

    x [B, T, n_mels], mask [B, T] -> tokens [B, ceil(T / stride), dim].
    """

    def __init__(
        self,
        sample_rate: int = 16_000,
        n_mels: int = 64,
        hop_length: int = 320,
        dim: int = 128,
        layers: int = 2,
        heads: int = 4,
        stride: int = 4,
        dropout: float = 0.1,
        max_tokens: int = 512,
        augment: dict | None = None,
        normalize: str = "none",
    ):
        super().__init__(sample_rate, n_mels, hop_length, augment, normalize)
        if dim % heads:
            raise ConfigError(f"encoder.audio.dim={dim} must be divisible by encoder.audio.heads={heads}.")
        self.out_dim, self.stride = dim, stride
        self.norm = nn.LayerNorm(n_mels * stride)
        self.proj = nn.Linear(n_mels * stride, dim)
        self.position = nn.Parameter(torch.zeros(max_tokens, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout, batch_first=True, norm_first=True)
        self.body = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> EncoderOutput:
        batch, frames, mels = x.shape
        x = self.prepare(x, mask)
        tokens = math.ceil(frames / self.stride)
        x = nn.functional.pad(x, (0, 0, 0, tokens * self.stride - frames))
        mask = nn.functional.pad(mask, (0, tokens * self.stride - frames))
        h = self.proj(self.norm(x.reshape(batch, tokens, mels * self.stride)))
        token_mask = mask.reshape(batch, tokens, self.stride).any(-1)
        h = self.body(h + self.position[:tokens], src_key_padding_mask=~attendable(token_mask))
        h = h * token_mask.unsqueeze(-1)
        return EncoderOutput(h, token_mask, masked_mean(h, token_mask))


class HFAudioEncoder(Encoder):
    """Any transformers audio model from a local folder (or a hub id with HF_HUB_OFFLINE=0) with its
    feature extractor: wav2vec2 / HuBERT / WavLM (waveform in) or AST-style (filterbank in). Tokens are
    its last hidden states. freeze=true: run once in featurize, cached (on disk too); freeze=false:
    featurize keeps the extractor's output and the model is fine-tuned."""

    pretrained = True

    def __init__(self, model: str = "???", freeze: bool = True, featurize_batch_size: int = 16):
        super().__init__()
        from transformers import AutoFeatureExtractor, AutoModel

        self.path = self.model_path = resolve(model, "encoder.audio.model")
        self.reference = model_reference(model)
        try:
            self.extractor = AutoFeatureExtractor.from_pretrained(self.path)
            self.model = AutoModel.from_pretrained(self.path)
        except OSError as err:
            raise ConfigError(
                f"encoder.audio.model={model}: could not load it ({summary(err)}). Give a local folder "
                f"with the model and its preprocessor_config.json (mmtrain runs offline)."
            ) from err
        self.sample_rate = self.extractor.sampling_rate
        self.freeze, self.featurize_batch_size = freeze, featurize_batch_size
        self.out_dim = self.model.config.hidden_size
        set_trainable(self.model, not freeze)

    def layer_ids(self) -> tuple[dict[str, int], int]:
        return transformer_layer_ids(self.model)

    def cache_key(self) -> dict | None:
        if not self.freeze:
            return None
        return {"encoder": type(self).__name__, "model": self.path, "files": self.fingerprint(), "format": 2}

    def _inputs(self, waves: list[torch.Tensor]) -> list[torch.Tensor]:
        """The extractor's per-clip input: a normalised waveform [N] or filterbank frames [T, F]."""
        return [
            torch.as_tensor(
                self.extractor(w.numpy(), sampling_rate=self.sample_rate, return_tensors="np")[
                    self.extractor.model_input_names[0]
                ][0]
            )
            for w in waves
        ]

    def _hidden(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Model on padded inputs -> hidden [B, T', D] and its mask [B, T'] (from the input lengths
        where the model says how it downsamples)."""
        # Group-norm models (wav2vec2-base) are trained without a mask: their extractor says so.
        uses_mask = x.dim() == 2 and getattr(self.extractor, "return_attention_mask", False)
        kwargs = {"attention_mask": attendable(mask).long()} if uses_mask else {}
        hidden = self.model(x, **kwargs).last_hidden_state
        lengths = mask.sum(1)
        if hasattr(self.model, "_get_feat_extract_output_lengths") and x.dim() == 2:
            lengths = self.model._get_feat_extract_output_lengths(lengths)
        else:  # fixed-size inputs (AST): every output token is real
            lengths = torch.full_like(lengths, hidden.shape[1])
        out_mask = torch.arange(hidden.shape[1], device=x.device) < lengths.clamp(
            max=hidden.shape[1]
        ).unsqueeze(1)
        return hidden, out_mask

    def input_spec(self) -> dict:
        if self.freeze:
            return {
                "shape": ["batch", "length", self.out_dim],
                "dtype": "float32",
                "what": f"last hidden states of the frozen {self.reference} over its feature extractor's "
                "input",
            }
        one = self._inputs([torch.zeros(self.sample_rate)])[0]
        shape = ["batch", "length"] + list(one.shape[1:])
        return {
            "shape": shape,
            "dtype": "float32",
            "what": f"the feature extractor of {self.path} at {self.sample_rate} Hz",
        }

    def featurize(self, raws: list) -> list[torch.Tensor]:
        inputs = self._inputs(waveforms(raws, self.sample_rate))
        if not self.freeze:
            return inputs

        def encode(x, mask):
            hidden, hidden_mask = self._hidden(x, mask)
            return [h[m] for h, m in zip(hidden, hidden_mask)]

        return run_frozen(self.model, inputs, self.featurize_batch_size, encode)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> EncoderOutput:
        if self.freeze:
            tokens, token_mask = x, mask
        else:
            tokens, token_mask = self._hidden(x, mask)
        tokens = tokens * token_mask.unsqueeze(-1)
        return EncoderOutput(tokens, token_mask, masked_mean(tokens, token_mask))


class WhisperNetwork(nn.Module):
    """Whisper's audio encoder: two convolutions (the second halves the frame rate), learned positions,
    pre-norm transformer blocks, a final norm. Runs on a clip's own frames rather than a 30-s window:
    positions are sliced to the clip's length and padded frames are masked (zeroed between the
    convolutions, left out of attention), so a clip's tokens do not depend on the padding after it."""

    def __init__(self, mels: int, width: int, heads: int, layers: int, positions: int):
        super().__init__()
        self.conv1 = nn.Conv1d(mels, width, 3, padding=1)
        self.conv2 = nn.Conv1d(width, width, 3, stride=2, padding=1)
        self.position = nn.Parameter(torch.zeros(positions, width))
        block = nn.TransformerEncoderLayer(
            width, heads, 4 * width, 0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.body = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)

    def forward(self, mel: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """mel [B, T, mels], mask [B, T] -> tokens [B, ceil(T / 2), width] and their mask."""
        h = nn.functional.gelu(self.conv1(mel.transpose(1, 2))) * mask.unsqueeze(1)
        h = nn.functional.gelu(self.conv2(h)).transpose(1, 2)
        lengths = torch.div(mask.sum(1) + 1, 2, rounding_mode="floor")
        token_mask = torch.arange(h.shape[1], device=h.device) < lengths.unsqueeze(1)
        h = h + self.position[: h.shape[1]]
        for block in self.body.layers:
            h = block(h, src_key_padding_mask=~attendable(token_mask))
        return self.norm(h) * token_mask.unsqueeze(-1), token_mask

    def keep_blocks(self, blocks: int) -> None:
        """Only the first ``blocks`` blocks, their output as it is (no final norm): what lies above is
        never used, so it is neither kept nor trained."""
        del self.body.layers[blocks:]
        self.norm = nn.Identity()


class WhisperEncoder(Encoder):
    """A pretrained Whisper encoder (a named backbone: ``whisper_base``, ``whisper_tiny_en``) over the
    log-mel frames Whisper's feature extractor makes (16 kHz, 80 mel bins, 10 ms hop, log10 with an
    8-decade floor), at most ``max_seconds`` per clip. Tokens: its last hidden states, 50 per second.
    freeze=true: computed once and cached on disk; false: fine-tuned from the frames."""

    pretrained = True
    sample_rate = 16_000

    def __init__(
        self,
        model: str = "whisper_base",
        backbone: dict | None = None,
        freeze: bool = True,
        max_seconds: float = 30.0,
        featurize_batch_size: int = 32,
        output_layer: int | None = None,
        augment: dict | None = None,
    ):
        super().__init__()
        import librosa

        self.backbone = Backbone.of(backbone, "encoder.audio.backbone") if backbone else None
        self.path = resolve(model, "encoder.audio.model", self.backbone)
        self.model_path = str(Path(self.path) / "model.bin")
        self.reference = self.backbone.name if self.backbone else model_reference(model)
        state, sizes = whisper_encoder(read_ctranslate2(Path(self.model_path), "encoder/"))
        self.model = WhisperNetwork(**sizes)
        load_into(self.model, state, f"encoder.audio.model={model}")
        max_frames = min(int(max_seconds * 100), 2 * sizes["positions"])
        mel = librosa.filters.mel(
            sr=self.sample_rate, n_fft=400, n_mels=sizes["mels"]
        )  # Whisper's own filters
        self.register_buffer("mel", torch.from_numpy(mel).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(400), persistent=False)
        self.freeze, self.max_frames, self.featurize_batch_size = freeze, max_frames, featurize_batch_size
        if output_layer is not None and not 1 <= output_layer <= sizes["layers"]:
            raise ConfigError(
                f"encoder.audio.output_layer={output_layer}: this Whisper encoder has blocks 1 to "
                f"{sizes['layers']}; null takes the last one through the final norm."
            )
        if freeze and augment:
            raise ConfigError(
                "encoder.audio.augment needs encoder.audio.freeze=false: a frozen encoder's features are "
                "computed once, before any augmentation could apply."
            )
        self.output_layer = output_layer
        if output_layer is not None:
            self.model.keep_blocks(output_layer)
        self.augment = SpecAugment(**(augment or {}))
        self.out_dim = sizes["width"]
        set_trainable(self.model, not freeze)

    def layer_ids(self) -> tuple[dict[str, int], int]:
        layer_of, top = transformer_layer_ids(self.model)
        front = ("conv1.", "conv2.", "position")  # the input side; the final norm stays on top
        layer_of.update({f"model.{n}": 0 for n, _ in self.model.named_parameters() if n.startswith(front)})
        return layer_of, top

    def cache_key(self) -> dict | None:
        if not self.freeze:
            return None
        return {
            "encoder": type(self).__name__,
            "files": self.fingerprint(),
            "max_frames": self.max_frames,
            "output_layer": self.output_layer,
            "format": 1,
        }

    @torch.no_grad()
    def frames(self, wave: torch.Tensor) -> torch.Tensor:
        """A clip -> Whisper's log-mel frames [T, mels] of the clip alone (no 30-s padding), as
        openai/whisper's log_mel_spectrogram computes them."""
        wave = wave[: self.max_frames * 160]
        wave = nn.functional.pad(wave, (0, max(0, 401 - len(wave))))  # at least one frame
        spec = torch.stft(wave, 400, 160, window=self.window, return_complex=True)[:, :-1].abs() ** 2
        log_spec = (self.mel @ spec).clamp(min=1e-10).log10()
        log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
        return ((log_spec + 4.0) / 4.0).T.contiguous()

    def input_spec(self) -> dict:
        if self.freeze:
            return {
                "shape": ["batch", "length", self.out_dim],
                "dtype": "float32",
                "what": f"last hidden states of the frozen Whisper encoder {self.reference} over its log-mel "
                "frames",
            }
        return {
            "shape": ["batch", "length", self.model.conv1.in_channels],
            "dtype": "float32",
            "what": "Whisper's log-mel frames: mono 16 kHz, n_fft 400, hop 160, log10 floored 8 decades "
            "below the clip's peak, (x + 4) / 4",
        }

    def featurize(self, raws: list) -> list[torch.Tensor]:
        mels = [self.frames(w) for w in waveforms(raws, self.sample_rate)]
        if not self.freeze:
            return mels

        def encode(x, mask):
            tokens, token_mask = self.model(x, mask)
            return [t[m] for t, m in zip(tokens, token_mask)]

        return run_frozen(self.model, mels, self.featurize_batch_size, encode)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> EncoderOutput:
        if self.freeze:
            tokens, token_mask = x * mask.unsqueeze(-1), mask
        else:
            tokens, token_mask = self.model(self.augment(x, mask), mask)
        return EncoderOutput(tokens, token_mask, masked_mean(tokens, token_mask))
