"""Image encoders: a small CNN trained from scratch (fast; the tests use it), or any timm model
(random init, a named pretrained backbone such as EfficientNet-Lite, or local weights: timm runs
offline here).

Both featurize by decoding each file once into a normalised pixel tensor [1, C, H, W]; a frozen
timm model goes further and keeps its feature-map tokens. forward: x [B, 1, C, H, W] (pixels) or
[B, T, D] (frozen tokens), mask [B, 1 or T] -> tokens [B, h*w, out_dim].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from mmtrain.backbones.catalog import Backbone
from mmtrain.backbones.convert import efficientnet_to_timm, load_into
from mmtrain.backbones.locate import resolve
from mmtrain.core.errors import ConfigError, summary
from mmtrain.core.media import load_image
from mmtrain.core.tensors import masked_mean
from mmtrain.encoders.augment import ImageAugment
from mmtrain.encoders.base import Encoder, EncoderOutput, run_frozen, set_trainable


def feature_tokens(features: torch.Tensor) -> torch.Tensor:
    """A CNN's [B, C, h, w] feature map or a ViT's [B, N, D] tokens -> [B, tokens, dim]."""
    return features.flatten(2).transpose(1, 2) if features.dim() == 4 else features


def pixel_mask(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """An image is one input slot: its tokens are all real when the image is present."""
    return mask[:, :1].expand(-1, tokens.shape[1])


class ImageCNNEncoder(Encoder):
    """Conv-BN-GELU-maxpool blocks, doubling the width each block: a [C, S, S] image gives
    (S / 2**layers)² tokens of width ``width * 2**(layers-1)``."""

    def __init__(
        self,
        image_size: int = 32,
        channels: int = 1,
        width: int = 32,
        layers: int = 3,
        dropout: float = 0.1,
        mean: float = 0.5,
        std: float = 0.5,
        augment: dict | None = None,
    ):
        super().__init__()
        if channels not in (1, 3):
            raise ConfigError(f"encoder (image CNN) channels={channels}: use 1 (grayscale) or 3 (RGB).")
        if image_size < 2**layers:
            raise ConfigError(
                f"encoder (image CNN) image_size={image_size} is too small for layers={layers} "
                f"(each block halves it): use image_size >= {2**layers}."
            )
        self.image_size, self.channels, self.mean, self.std = image_size, channels, mean, std
        self.augment = ImageAugment(**(augment or {}))
        blocks, in_width = [], channels
        for i in range(layers):
            out_width = width * 2**i
            blocks += [
                nn.Conv2d(in_width, out_width, 3, padding=1),
                nn.BatchNorm2d(out_width),
                nn.GELU(),
                nn.MaxPool2d(2),
                nn.Dropout(dropout),
            ]
            in_width = out_width
        self.body = nn.Sequential(*blocks)
        self.out_dim = in_width

    def input_spec(self) -> dict:
        return {
            "shape": ["batch", 1, self.channels, self.image_size, self.image_size],
            "dtype": "float32",
            "what": "pixels: the image as "
            f"{'grayscale' if self.channels == 1 else 'RGB'}, bilinear resize to "
            f"{self.image_size}x{self.image_size}, /255, (x - {self.mean}) / {self.std}",
        }

    def featurize(self, raws: list) -> list[torch.Tensor]:
        from PIL import Image

        mode, size = ("L" if self.channels == 1 else "RGB"), (self.image_size, self.image_size)
        out = []
        for path in raws:
            pixels = np.asarray(load_image(path, mode).resize(size, Image.BILINEAR), dtype=np.float32) / 255
            pixels = torch.from_numpy((pixels - self.mean) / self.std).reshape(*size, -1).permute(2, 0, 1)
            out.append(pixels.unsqueeze(0))
        return out

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> EncoderOutput:
        tokens = feature_tokens(self.body(self.augment(x[:, 0])))
        token_mask = pixel_mask(tokens, mask)
        tokens = tokens * token_mask.unsqueeze(-1)
        return EncoderOutput(tokens, token_mask, masked_mean(tokens, token_mask))


class TimmImageEncoder(Encoder):
    """Any timm model by name, without its classifier. Weights: a named backbone (``model``: its name,
    with its ``backbone`` block; the EfficientNet-Lite files are renamed into timm's layout when loaded),
    ``pretrained=true`` with a local file in ``pretrained_cfg_overlay: {file: /path/weights.safetensors}``,
    or ``checkpoint_path``. Images are resized and normalised per the model's pretrained config
    (``image_size`` overrides the size). freeze=true: the network runs once in featurize and its tokens
    are cached (on disk too)."""

    def __init__(
        self,
        name: str = "resnet18",
        model: str | None = None,
        backbone: dict | None = None,
        pretrained: bool = False,
        checkpoint_path: str | None = None,
        pretrained_cfg_overlay: dict | None = None,
        freeze: bool = False,
        image_size: int | None = None,
        featurize_batch_size: int = 64,
        augment: dict | None = None,
    ):
        super().__init__()
        import timm

        if name not in timm.list_models() and name not in timm.list_models(pretrained=True):
            close = timm.list_models(f"*{name.split('.')[0][:6]}*")[:5]
            raise ConfigError(
                f"encoder (timm) name={name} is not a timm "
                f"model{' (close: ' + ', '.join(close) + ')' if close else ''}; "
                f"timm.list_models() lists them."
            )
        try:
            self.model = timm.create_model(
                name,
                pretrained=pretrained,
                num_classes=0,
                checkpoint_path=checkpoint_path or "",
                pretrained_cfg_overlay=dict(pretrained_cfg_overlay or {}),
            )
        except Exception as err:  # most often: pretrained weights that are not on this machine
            raise ConfigError(
                f"encoder (timm {name}) could not be built ({summary(err)}). "
                "mmtrain runs offline: give local weights with "
                f"pretrained_cfg_overlay={{file: /path/to/weights}} "
                f"or checkpoint_path=/path/to/checkpoint, or pretrained=false."
            ) from err
        self.backbone = Backbone.of(backbone, "encoder.image.backbone") if backbone else None
        weights = self.load_backbone(model) if model else None
        config = timm.data.resolve_model_data_config(self.model)
        if image_size:
            config.update(input_size=(3, image_size, image_size), crop_pct=1.0)
        self.transform = timm.data.create_transform(**config, is_training=False)
        self.name, self.freeze, self.featurize_batch_size = name, freeze, featurize_batch_size
        self.model_path = weights or checkpoint_path or (pretrained_cfg_overlay or {}).get("file")
        self.pretrained = bool(pretrained or checkpoint_path or weights)
        self.reference = self.backbone.name if self.backbone else name
        self.image_size = config["input_size"][-1]
        if freeze and augment:
            raise ConfigError(
                "encoder (timm) augment needs freeze=false: a frozen model's features are computed "
                "once, before any augmentation could apply."
            )
        self.augment = ImageAugment(**(augment or {}))
        self.out_dim = self.model.num_features
        set_trainable(self.model, not freeze)
        # channels-last: EfficientNet-Lite0's convolutions ran 1.6x faster on CPU
        self.model.to(memory_format=torch.channels_last)

    def load_backbone(self, model: str) -> str:
        """A named backbone's weights into the timm model; the weights file's path."""
        from timm.models import load_state_dict

        if self.backbone is None:
            raise ConfigError(
                f"encoder.image.model={model} names a pretrained backbone, and this encoder has no backbone "
                "block: use a named one (encoder/image=efficientnet_lite0) or checkpoint_path=<weights file>."
            )
        folder = resolve(model, "encoder.image.model", self.backbone)
        path = str(Path(folder) / next(iter(self.backbone.files)))
        state = load_state_dict(path, weights_only=True)
        if any(k.startswith("_blocks.") for k in state):  # EfficientNet-PyTorch names
            state = efficientnet_to_timm(state, [len(stage) for stage in self.model.blocks])
        load_into(self.model, state, f"encoder.image.model={model}")
        return path

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(pixels.contiguous(memory_format=torch.channels_last))

    def layer_ids(self) -> tuple[dict[str, int], int]:
        """timm's own grouping of the model's layers (its group_matcher), as timm.optim uses it."""
        from timm.models import group_parameters

        layer_of = group_parameters(self.model, self.model.group_matcher(coarse=False), reverse=True)
        return {f"model.{n}": i for n, i in layer_of.items()}, max(layer_of.values()) + 1

    def cache_key(self) -> dict | None:
        if not self.freeze:
            return None
        return {
            "encoder": type(self).__name__,
            "name": self.name,
            "weights": self.fingerprint(),
            "image_size": self.image_size,
            "format": 2,
        }

    def input_spec(self) -> dict:
        if self.freeze:
            return {
                "shape": ["batch", "length", self.out_dim],
                "dtype": "float32",
                "what": f"feature-map tokens of the frozen timm {self.name} over its eval transform",
            }
        return {
            "shape": ["batch", 1, 3, self.image_size, self.image_size],
            "dtype": "float32",
            "what": f"pixels: RGB through timm's eval transform for {self.name} ({self.transform})",
        }

    def featurize(self, raws: list) -> list[torch.Tensor]:
        pixels = [self.transform(load_image(path, "RGB")).unsqueeze(0) for path in raws]
        if not self.freeze:
            return pixels
        return run_frozen(
            self.model,
            pixels,
            self.featurize_batch_size,
            lambda x, mask: list(feature_tokens(self.features(x[:, 0]))),
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> EncoderOutput:
        tokens = x if self.freeze else feature_tokens(self.features(self.augment(x[:, 0])))
        token_mask = pixel_mask(tokens, mask)
        tokens = tokens * token_mask.unsqueeze(-1)
        return EncoderOutput(tokens, token_mask, masked_mean(tokens, token_mask))
