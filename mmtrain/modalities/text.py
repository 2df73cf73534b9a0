"""Free text: one string per cell, tokenized by the text encoder."""

from __future__ import annotations

from mmtrain.cells import is_empty
from mmtrain.modalities import MODALITIES, ColumnModality


@MODALITIES.register
class Text(ColumnModality):
    name = "text"
    infer_order = 90  # any column nothing else claims

    def claims(self, series, values):
        return True

    def check(self, frame, name, spec, root, bad):
        for row, value in enumerate(frame[spec["column"]]):
            if is_empty(value):
                bad.add(row, name, spec["column"], "empty text")

    def corrupt(self, x, mask, level, generator, preprocessing):
        """Each real token but the first (CLS) dropped with probability ``level``."""
        import torch

        keep = torch.rand(mask.shape, generator=generator, device="cpu").to(mask.device) >= level
        keep[:, 0] = True
        return x, mask & keep
