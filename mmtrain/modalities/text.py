"""Free text: one string per cell, tokenized by the text encoder."""

from __future__ import annotations

from mmtrain.core.cells import looks_like_text
from mmtrain.modalities import MODALITIES, ColumnModality


@MODALITIES.register
class Text(ColumnModality):
    name = "text"
    infer_order = 90

    def claims(self, series, values):
        return looks_like_text(values)

    def check(self, frame, name, spec, root, bad):
        """Any text can be read; an empty cell is a missing modality in that row."""

    def corrupt(self, x, mask, level, generator, preprocessing):
        """Each real token but the first (CLS) dropped with probability ``level``."""
        import torch

        keep = torch.rand(mask.shape, generator=generator, device="cpu").to(mask.device) >= level
        keep[:, 0] = True
        return x, mask & keep
