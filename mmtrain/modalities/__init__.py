"""Modality types: what kind of input a modality is (text, audio, image, tabular, sequence).

A modality type owns what differs between kinds of input: the settings of ``data.modalities.<name>``,
whether a column looks like it (inference), which columns it reads, how a cell is read and
checked before training, and the preprocessing it fits on the train split (plain containers, saved
with the model). Code elsewhere looks the type up (``MODALITIES.get(spec["type"])``) and never
branches on its name. A new modality type is one module in this package that subclasses
:class:`ModalityType` (or :class:`ColumnModality`) and registers itself with ``@MODALITIES.register``.

Modality *names* are the user's (``data.modalities.<name>``, ``modalities=[...]``); type names are
these. They never share a namespace: ``encoder.<type>`` is a type's default encoder,
``encoder_for.<name>`` one modality's own.
"""

from __future__ import annotations

from pathlib import Path

from mmtrain.core.cells import is_empty, require_column
from mmtrain.core.errors import ConfigError
from mmtrain.core.registry import Registry


class ModalityType:
    """The interface. A resolved spec is a plain dict: ``{"type", "inferred", ...}`` plus the
    type's own keys (``column``, or ``numeric``/``categorical`` for tabular)."""

    name: str
    infer_order: int = 100  # inference tries the types in this order; the first that claims a column wins
    settings: tuple[str, ...] = ("column",)  # keys data.modalities.<name> takes besides `type`
    multi_column = False  # reads several columns: with no modalities declared, they form one modality

    def claims(self, series, values) -> bool:
        """Whether a column (``values``: its filled cells) holds this kind of input."""
        return False

    def resolve(self, name: str, spec: dict, frame, reserved: set) -> dict:
        """``data.modalities.<name>`` (type given or inferred) -> the resolved spec; columns checked."""
        raise NotImplementedError

    def columns(self, spec: dict) -> list[str]:
        raise NotImplementedError

    def describe(self, spec: dict) -> str:
        return ", ".join(self.columns(spec))

    def column_kinds(self, spec: dict) -> dict[str, str]:
        """column -> how this type reads it, for the data table in the log and report."""
        return dict.fromkeys(self.columns(spec), self.name)

    def read(self, frame, spec: dict, root: Path) -> list:
        """The raw value per row that the encoder featurizes, None for an empty cell."""
        raise NotImplementedError

    def check(self, frame, name: str, spec: dict, root: Path, bad) -> None:
        """Add the rows whose cells cannot be used (``bad.add(row, name, column, reason)``)."""
        raise NotImplementedError

    def fit(self, spec: dict, values: list) -> dict | None:
        """Preprocessing fitted on the train rows' raw values (None: nothing to fit)."""
        return None

    def corrupt(self, x, mask, level: float, generator, preprocessing: dict | None):
        """A featurized batch (x [B, T, ...], mask [B, T]) corrupted at ``level`` in [0, 1], for the
        robustness sweep (MultiBench's protocol): by default Gaussian noise of ``level`` times the
        values' std over real entries. Returns (x, mask)."""
        import torch

        if not x.is_floating_point() or not mask.any():
            return x, mask
        std = x[mask].float().std().nan_to_num(0.0)
        noise = torch.randn(x.shape, generator=generator, device="cpu").to(x.device, x.dtype)
        return x + level * std * noise, mask


class ColumnModality(ModalityType):
    """A modality read from one column, one raw value per cell."""

    def resolve(self, name, spec, frame, reserved):
        key = f"data.modalities.{name}"
        column = spec.get("column") or name
        require_column(frame, column, f"{key}.column")
        if column in reserved:
            raise ConfigError(
                f"{key}.column={column} is a target, the split or the id: it cannot also be an input."
            )
        return {"type": self.name, "column": column}

    def columns(self, spec):
        return [spec["column"]]

    def read(self, frame, spec, root):
        return [None if is_empty(v) else self.read_cell(v, root) for v in frame[spec["column"]]]

    def read_cell(self, value, root: Path):
        return str(value)


MODALITIES: Registry[ModalityType] = Registry(__name__, "modality type")
