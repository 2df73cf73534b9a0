"""Weights in their publisher's layout -> the state dict of the module that runs them. Converted when
loaded, so the file on disk stays the publisher's bytes (the pinned sha256) wherever it comes from.

- EfficientNet-Lite (lukemelas EfficientNet-PyTorch names) -> timm's ``tf_efficientnet_lite0/1/2``.
- Whisper's encoder in a CTranslate2 ``model.bin`` (format 6, as faster-whisper ships it) ->
  ``encoders.audio.WhisperNetwork``.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import torch

from mmtrain.core.errors import ConfigError

# One block of EfficientNet-PyTorch -> timm: a depthwise-separable block (no expansion) ...
_DS_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
# ... and an inverted-residual block.
_IR_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}


def efficientnet_to_timm(state: dict, stage_sizes: list[int]) -> dict:
    """lukemelas names (``_blocks.<n>.<part>``, flat n) -> timm's (``blocks.<stage>.<index>.<part>``):
    block n is the n-th of timm's stages in order (``stage_sizes``: how many blocks each stage has)."""
    places = [(s, i) for s, size in enumerate(stage_sizes) for i in range(size)]
    expands = {int(k.split(".")[1]) for k in state if k.startswith("_blocks.") and "._expand_conv." in k}
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            n = int(parts[1])
            if n >= len(places):
                raise ConfigError(f"EfficientNet weights: block {n} has no place in {stage_sizes} stages.")
            table = _IR_BLOCK if n in expands else _DS_BLOCK
            stage, index = places[n]
            out[".".join(["blocks", str(stage), str(index), table[parts[2]], *parts[3:]])] = value
        elif parts[0] in _TOP:
            out[".".join([_TOP[parts[0]], *parts[1:]])] = value
        else:
            raise ConfigError(f"EfficientNet weights: the key {key} is not an EfficientNet-PyTorch name.")
    return out


def load_into(module: torch.nn.Module, state: dict, what: str) -> None:
    """A strict load, but for the counters BatchNorm keeps (num_batches_tracked) and a classifier the
    backbone does not use; anything else missing or unexpected is an error naming the keys."""
    own = module.state_dict()
    state = {k: v for k, v in state.items() if k in own or not k.startswith("classifier.")}
    result = module.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise ConfigError(
            f"{what}: the weights do not fit the model ({len(missing)} missing keys, e.g. {missing[:3]}; "
            f"{len(result.unexpected_keys)} unexpected, e.g. {result.unexpected_keys[:3]})."
        )


_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def read_ctranslate2(path: Path, prefix: str = "") -> dict[str, torch.Tensor]:
    """The variables of a CTranslate2 model.bin (binary format 6) whose names start with ``prefix``;
    the others are skipped without being read."""
    out = {}
    with open(path, "rb") as f:

        def number(fmt: str) -> int:
            return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]

        def string() -> str:
            return f.read(number("<H")).rstrip(b"\0").decode()

        version = number("<I")
        if version != 6:
            raise ConfigError(f"{path}: CTranslate2 format {version}; mmtrain reads format 6.")
        string(), number("<I")  # the spec's name and revision
        for _ in range(number("<I")):
            name = string()
            shape = [number("<I") for _ in range(number("<B"))]
            dtype, size = number("<B"), number("<I")
            if not name.startswith(prefix):
                f.seek(size, 1)
                continue
            if dtype not in _CT2_DTYPES:
                raise ConfigError(f"{path}: variable {name} has the unknown dtype code {dtype}.")
            data = np.frombuffer(f.read(size), dtype=_CT2_DTYPES[dtype]).reshape(shape)
            out[name[len(prefix) :]] = torch.from_numpy(data.astype(np.float32))
    return out


_WHISPER_LAYER = {
    "self_attention/layer_norm/gamma": "norm1.weight",
    "self_attention/layer_norm/beta": "norm1.bias",
    "self_attention/linear_0/weight": "self_attn.in_proj_weight",  # q, k, v fused, as torch's attention
    "self_attention/linear_0/bias": "self_attn.in_proj_bias",  # k's bias is stored as zeros
    "self_attention/linear_1/weight": "self_attn.out_proj.weight",
    "self_attention/linear_1/bias": "self_attn.out_proj.bias",
    "ffn/layer_norm/gamma": "norm2.weight",
    "ffn/layer_norm/beta": "norm2.bias",
    "ffn/linear_0/weight": "linear1.weight",
    "ffn/linear_0/bias": "linear1.bias",
    "ffn/linear_1/weight": "linear2.weight",
    "ffn/linear_1/bias": "linear2.bias",
}
_WHISPER_TOP = {
    "conv1/weight": "conv1.weight",
    "conv1/bias": "conv1.bias",
    "conv2/weight": "conv2.weight",
    "conv2/bias": "conv2.bias",
    "position_encodings/encodings": "position",
    "layer_norm/gamma": "norm.weight",
    "layer_norm/beta": "norm.bias",
}


def whisper_encoder(variables: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    """CTranslate2 ``encoder/...`` variables (prefix removed) -> (the WhisperNetwork state dict, its
    sizes: mels, width, heads, layers, positions)."""
    out = {}
    for name, value in variables.items():
        found = re.fullmatch(r"layer_(\d+)/(.+)", name)
        if found and found.group(2) in _WHISPER_LAYER:
            out[f"body.layers.{found.group(1)}.{_WHISPER_LAYER[found.group(2)]}"] = value
        elif name in _WHISPER_TOP:
            out[_WHISPER_TOP[name]] = value
        elif name != "num_heads":
            raise ConfigError(f"Whisper weights: the CTranslate2 variable encoder/{name} is not known.")
    layers = {int(k.split(".")[2]) for k in out if k.startswith("body.layers.")}
    sizes = {
        "mels": out["conv1.weight"].shape[1],
        "width": out["conv1.weight"].shape[0],
        "heads": int(variables["num_heads"].item()),
        "layers": len(layers),
        "positions": out["position"].shape[0],
    }
    return out, sizes
