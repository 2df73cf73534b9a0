"""The encoder contract shared by every modality.

An encoder works in two stages:
- ``featurize(raws) -> list[Tensor]``: the part that never trains (tokenizing, a log-mel front
  end, or the whole network when it is frozen). Cheap featurizing runs once before training and its
  per-sample outputs ``[T_i, ...]`` are kept in memory; a frozen network (an encoder with a
  ``cache_key``) runs once, on the trainer's device, into the on-disk feature store
  (``data.feature_store``), read per batch; files whose encoder trains are decoded per batch.
- ``forward(x [B, T, ...], mask [B, T]) -> EncoderOutput``: the trainable part, on padded batches.
A row without the modality arrives as an all-False mask row; encoders must return finite values
for it (fusion zeroes it out through the ``present`` mask).
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from mmtrain.core.tensors import pad


@dataclass
class EncoderOutput:
    tokens: torch.Tensor  # [B, T, out_dim]
    mask: torch.Tensor  # [B, T] bool, True where a token is real
    pooled: torch.Tensor  # [B, out_dim]


class Encoder(nn.Module):
    out_dim: int
    pretrained: bool = False  # pretrained weights train at optim.encoder_lr, with optim.layer_decay per layer
    model_path: str | None = None  # the local files (folder or weights file) pretrained weights come from
    backbone = None  # a named backbone (backbones.catalog.Backbone) the weights are pinned to, if any

    def layer_ids(self) -> tuple[dict[str, int], int]:
        """(parameter name -> its layer, 0 = the input side, and the number of layers) for layer-wise
        lr decay; names missing from the map count as the top layer. Default: one layer."""
        return {}, 1

    def load(self) -> None:
        """Build what featurizing needs that construction left out (a frozen network; see
        HFTextEncoder.load). Called before features are computed."""

    def unload(self) -> None:
        """Let go of what ``load`` built once the features are computed."""

    def frozen_parameters(self) -> int:
        """The weights this encoder does not train (also those not loaded: see load)."""
        return sum(p.numel() for p in self.parameters() if not p.requires_grad)

    def fingerprint(self) -> str | None:
        """Of the model files this encoder was built from; saved in checkpoints and checked on load. A
        named backbone's are its pinned hashes (already verified): the same model found in the cache, a
        package or the hub, whose folders hold different side files, is the same model."""
        if self.backbone is not None:
            return hashlib.sha256(json.dumps(self.backbone.files, sort_keys=True).encode()).hexdigest()
        return files_fingerprint(self.model_path)

    def featurize(self, raws: list) -> list[torch.Tensor]:
        raise NotImplementedError

    def input_spec(self) -> dict:
        """What ``forward`` takes after ``featurize``: {"shape": [...], "dtype": ..., "what": ...};
        in the shape "batch" and "length" are the dynamic axes (the mask is [batch, length]), numbers
        are fixed. Export, its signature.json and ``empty_input`` are built from it."""
        raise NotImplementedError

    def empty_input(self) -> torch.Tensor:
        """The per-sample input of a row without the modality: [0, ...] (no token) in ``input_spec``'s
        dtype and fixed sizes, known even when no row of the data has the modality."""
        spec = self.input_spec()
        return torch.zeros((0, *spec["shape"][2:]), dtype=getattr(torch, spec["dtype"]))

    def cache_key(self) -> dict | None:
        """What ``featurize``'s output depends on besides the inputs, for the on-disk feature store;
        None (the default) when featurizing is cheap enough not to cache."""
        return None

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> EncoderOutput:
        raise NotImplementedError


def run_frozen(model: nn.Module, inputs: list[torch.Tensor], batch_size: int, encode) -> list[torch.Tensor]:
    """A frozen network over per-sample inputs [T_i, ...], in batches of similar length (less
    padding), in eval mode without gradients. encode(x [B, T, ...], mask [B, T]) -> list of B
    per-sample outputs; they come back in the inputs' order, on the CPU, in float32 (also when the
    caller runs it under a bf16 autocast). Runs on the model's device."""
    model.eval()
    device = next(model.parameters()).device
    out: list[torch.Tensor] = [None] * len(inputs)
    order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]))
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            x, mask = pad([inputs[i] for i in chunk])
            for i, result in zip(chunk, encode(x.to(device), mask.to(device))):
                out[i] = result.to("cpu", torch.float32 if result.is_floating_point() else None).clone()
    return out


def transformer_layer_ids(model: nn.Module, prefix: str = "model.") -> tuple[dict[str, int], int]:
    """Layers of a transformers model by parameter name: embeddings and feature front ends 0, block i
    (``...layer.i.`` / ``...layers.i.``) i + 1, the rest (final norms, pooler) the top, L + 1."""
    import re

    names = [n for n, _ in model.named_parameters()]
    blocks = [int(m.group(1)) for n in names if (m := re.search(r"\.layers?\.(\d+)\.", n))]
    top = (max(blocks) + 2) if blocks else 1
    layer_of = {}
    for n in names:
        found = re.search(r"\.layers?\.(\d+)\.", n)
        if found:
            layer_of[prefix + n] = int(found.group(1)) + 1
        elif re.match(r"(embeddings|feature_|encoder\.pos_conv|masked_spec)", n):
            layer_of[prefix + n] = 0
        else:
            layer_of[prefix + n] = top
    return layer_of, top + 1


def set_trainable(module: nn.Module, trainable: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(trainable)


# The files a pretrained model is made of (config, weights, tokenizer); not READMEs.
MODEL_FILE_SUFFIXES = (".json", ".safetensors", ".bin", ".pt", ".pth", ".txt", ".model", ".npz")


def files_fingerprint(path: str | None) -> str | None:
    """sha256 of a model's files by content (a folder's model files, or one weights file), so a
    checkpoint or a feature-cache entry can tell when the files at a path changed; the same files
    copied to another machine give the same value. None without a local path (random weights)."""
    if not path:
        return None
    target = Path(path).expanduser()
    if not target.exists():
        return None
    files = (
        sorted(p for p in target.iterdir() if p.is_file() and p.suffix in MODEL_FILE_SUFFIXES)
        if target.is_dir()
        else [target]
    )
    return _digest(tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files))


@functools.lru_cache(maxsize=64)
def _digest(files: tuple) -> str:
    """Memoised by (path, size, mtime): MiniLM's 90 MB hash once per process (~0.1 s)."""
    digest = hashlib.sha256()
    for name, _, _ in files:
        digest.update(Path(name).name.encode())
        with open(name, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def model_reference(model: str) -> str:
    """How an exported signature names a model: ``pkg://package/dir`` as configured, a local folder
    by its name only (no path of the machine it was trained on)."""
    return model if model.startswith("pkg://") else Path(model).name
