"""The in-memory form every dataset is turned into before training."""

from __future__ import annotations

from dataclasses import dataclass, field

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

    modalities: name -> one raw value per row, ``None`` where the row lacks that modality: a ``str``
        for text; a float32 waveform or a ``Path`` to an audio file; a ``Path`` to an image; a tuple
        of cell values for tabular; a float32 array [T, C] for a sequence.
    modality_types: name -> its modality type (mmtrain/modalities/; picks the type's default encoder).
    preprocessing: name -> settings fitted on the train split (plain containers: means, vocabularies),
        passed to that modality's encoder and saved with the checkpoint.
    targets: task -> array with one entry per row: class index [N] (multiclass), 0/1 matrix
        [N, L] (multilabel) or float [N] (regression).
    split: split name per row: "train", "val", "test" and any further test splits.
    spec: where each modality and target comes from, as plain containers (saved with the model, so
        it can read new files): {"modalities": {name: {"type", "column"} or tabular's {"type",
        "numeric", "categorical"}}, "targets": {task: {"column", "type", "separator"}},
        "id_column", "split_column"}.
    """

    modalities: dict[str, list]
    targets: dict[str, np.ndarray]
    tasks: dict[str, TaskSpec]
    split: np.ndarray
    sample_rate: int | None = None
    modality_types: dict[str, str] = field(default_factory=dict)
    preprocessing: dict[str, dict] = field(default_factory=dict)
    spec: dict = field(default_factory=dict)
    columns: list[dict] = field(
        default_factory=list
    )  # per manifest column: its use, missing share, sentinels
    dropped: dict[str, int] = field(default_factory=dict)  # rows left out before training, by reason
    ids: np.ndarray | None = None  # each row's id (the id column's value, else its row number in the file)

    def __len__(self) -> int:
        return len(self.split)

    def indices(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == split)

    def row_ids(self, rows: np.ndarray) -> np.ndarray:
        """The ids of ``rows`` (their positions when the data has none)."""
        return (self.ids[rows] if self.ids is not None else rows).astype(str)
