"""The in-memory form every dataset is turned into before training."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

@dataclass
class TaskSpec:
    """A prediction target: ``type`` is multiclass, multilabel or regression; ``classes`` names the
    classes (multiclass) or labels (multilabel)."""

    type: str
    classes: list[str] | None = None


@dataclass
class MultimodalTable:
    """Rows of raw inputs and targets.

    modalities: name -> one raw value per row (a ``str`` for text, a float32 waveform for audio),
        ``None`` where the row lacks that modality.
    targets: task -> array with one entry per row: class index [N] (multiclass), 0/1 matrix
        [N, L] (multilabel) or float [N] (regression).
    split: "train" | "val" | "test" per row.
    """

    modalities: dict[str, list]
    targets: dict[str, np.ndarray]
    tasks: dict[str, TaskSpec]
    split: np.ndarray
    sample_rate: int | None = None

    def __len__(self) -> int:
        return len(self.split)

    def indices(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == split)
