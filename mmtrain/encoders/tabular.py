"""Tabular encoders over columns preprocessed with train-split statistics
(mmtrain/modalities/tabular.py): an MLP with categorical embeddings, or an FT-Transformer-style
encoder that turns every column into a token.

Input per row: x [B, 1, 2 * n_numeric + n_categorical] = standardised values, missing flags,
category indices (0 = unknown). ``preprocessing`` (column names, means, vocabularies) comes from the
data and is saved with the checkpoint.
"""

from __future__ import annotations

import torch
from torch import nn

from mmtrain.core.errors import ConfigError
from mmtrain.encoders.base import Encoder, EncoderOutput
from mmtrain.modalities.tabular import RARE_FROM
from mmtrain.modalities.tabular import apply as apply_tabular


class _TabularEncoder(Encoder):
    def __init__(self, preprocessing: dict | None, embed_dim: int, category_dropout: float = 0.0):
        super().__init__()
        if not 0 <= category_dropout < 1:
            raise ConfigError(f"encoder (tabular) category_dropout={category_dropout} must be in [0, 1).")
        if not preprocessing:
            raise ConfigError(
                "A tabular encoder needs the data's columns: use it for a modality of type tabular "
                "(data.modalities.<name>.type=tabular)."
            )
        self.preprocessing = preprocessing
        self.num_numeric = len(preprocessing["numeric"])
        self.embeddings = nn.ModuleList(nn.Embedding(len(v) + 1, embed_dim) for v in preprocessing["vocab"])
        # A column with more train values than RARE_FROM is high-cardinality (an id, a shopper): in
        # training its categories drop to "unknown" with probability category_dropout, so the network
        # cannot memorise rows through it and learns what to do with a value it has never seen.
        wide = [len(v) > RARE_FROM for v in preprocessing["vocab"]]
        self.register_buffer("drop_rate", torch.tensor(wide, dtype=torch.float32) * category_dropout, False)

    def featurize(self, raws: list[tuple]) -> list[torch.Tensor]:
        return apply_tabular(self.preprocessing, raws)

    def input_spec(self) -> dict:
        pre = self.preprocessing
        return {
            "shape": ["batch", 1, 2 * self.num_numeric + len(self.embeddings)],
            "dtype": "float32",
            "what": f"per row: numeric {pre['numeric']} standardised with the saved mean/std (missing -> 0), "
            f"then their missing flags, then the index of {pre['categorical']} in the saved "
            f"vocabularies (0 = unknown)",
        }

    def split(self, x: torch.Tensor):
        """x [B, 1, F] -> values [B, n], missing flags [B, n], category indices [B, c] (in training, those
        of high-cardinality columns dropped to 0 = unknown with probability category_dropout)."""
        x, n = x[:, 0], self.num_numeric
        codes = x[:, 2 * n :].long()
        if self.training and bool(self.drop_rate.any()):
            codes = codes.masked_fill(torch.rand_like(codes, dtype=torch.float32) < self.drop_rate, 0)
        return x[:, :n], x[:, n : 2 * n], codes


class TabularMLPEncoder(_TabularEncoder):
    """-> one token [B, 1, dim]: an MLP over values, missing flags and category embeddings."""

    def __init__(
        self,
        preprocessing: dict | None = None,
        dim: int = 64,
        hidden: int = 128,
        layers: int = 2,
        embed_dim: int = 8,
        dropout: float = 0.1,
        category_dropout: float = 0.2,
    ):
        super().__init__(preprocessing, embed_dim, category_dropout)
        width = 2 * self.num_numeric + embed_dim * len(self.embeddings)
        blocks = []
        for _ in range(layers - 1):
            blocks += [nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout)]
            width = hidden
        self.body = nn.Sequential(*blocks, nn.Linear(width, dim))
        self.out_dim = dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> EncoderOutput:
        values, missing, codes = self.split(x)
        parts = [values, missing] + [emb(codes[:, j]) for j, emb in enumerate(self.embeddings)]
        pooled = self.body(torch.cat(parts, dim=1)) * mask[:, :1]
        return EncoderOutput(pooled.unsqueeze(1), mask[:, :1], pooled)


class FTTransformerEncoder(_TabularEncoder):
    """One token per column (numeric: value · w_j + b_j, or a learned "missing" token;
    categorical: its embedding) plus a [CLS] token, through a transformer.
    -> tokens [B, n_columns, dim]; pooled = the [CLS] output (Gorishniy et al., 2021)."""

    def __init__(
        self,
        preprocessing: dict | None = None,
        dim: int = 64,
        layers: int = 2,
        heads: int = 4,
        dropout: float = 0.1,
        category_dropout: float = 0.2,
    ):
        super().__init__(preprocessing, dim, category_dropout)
        if dim % heads:
            raise ConfigError(f"encoder (FT-Transformer) dim={dim} must be divisible by heads={heads}.")
        n = self.num_numeric
        self.weight = nn.Parameter(torch.randn(n, dim) * 0.1)
        self.bias = nn.Parameter(torch.zeros(n, dim))
        self.missing = nn.Parameter(torch.zeros(n, dim))
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout, batch_first=True, norm_first=True)
        self.body = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out_dim = dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> EncoderOutput:
        values, missing, codes = self.split(x)
        numeric = values.unsqueeze(-1) * self.weight + self.bias
        numeric = torch.where(missing.unsqueeze(-1) > 0, self.missing.expand_as(numeric), numeric)
        columns = [numeric] + [emb(codes[:, j]).unsqueeze(1) for j, emb in enumerate(self.embeddings)]
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), *columns], dim=1)
        h = self.body(tokens) * mask[:, :1].unsqueeze(-1)
        token_mask = mask[:, :1].expand(-1, h.shape[1] - 1)
        return EncoderOutput(h[:, 1:], token_mask, h[:, 0])
