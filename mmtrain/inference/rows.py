"""What every trained model (a network, boosted trees) shares: reading new rows as training read them,
from the saved column mapping (data spec), tasks and fitted preprocessing, and ``predict`` (the
columns mmtrain-predict writes) over the model's ``outputs``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mmtrain.core.errors import ConfigError
from mmtrain.data.files import locate
from mmtrain.data.manifest import check_table, make_table, read_manifest
from mmtrain.data.preflight import BadRows
from mmtrain.data.schema import Missing, read_missing
from mmtrain.modalities import MODALITIES
from mmtrain.tasks import TASKS


class RowReader:
    """spec: the data spec; tasks: {task: {"type", "classes", ...}}; modalities: those the model reads;
    preprocessing: {modality: fitted settings}. Subclasses give ``outputs``, ``calibration`` and
    ``precision``."""

    precision = "32-true"

    def __init__(self, spec: dict, tasks: dict, modalities: list[str], preprocessing: dict):
        self.spec, self.tasks, self.modalities, self.preprocessing = spec, tasks, modalities, preprocessing

    def outputs(self, table, batch_size: int = 64, cache_dir=None, device="cpu"):
        """(outputs {task: [N, K]} as the model gives them, present [N, M] bool) for the table's rows."""
        raise NotImplementedError

    def keep_resident(self) -> None:
        """Keep frozen encoders' networks loaded between calls (a server predicts again and again; a
        run lets them go once their features are computed)."""

    def columns(self, targets: bool = False) -> dict[str, list[str]]:
        """What the model reads: {modality (or "target <task>"): its columns}."""
        out = {m: MODALITIES.get(s["type"]).columns(s) for m, s in self.spec["modalities"].items()}
        if targets:
            out.update({f"target {t}": [s["column"]] for t, s in self.spec["targets"].items()})
        return out

    def check_columns(self, frame: pd.DataFrame, source: str, targets: bool = False) -> None:
        expected = self.columns(targets)
        for field, columns in expected.items():
            for column in columns:
                if column not in frame.columns:
                    described = ", ".join(f"{c} ({f})" for f, cs in expected.items() for c in cs)
                    raise ConfigError(
                        f"{source}: no column '{column}', which "
                        f"{field if field.startswith('target') else 'modality ' + field}"
                        " is read from. This run reads the columns: "
                        f"{described}. Rename the file's columns to "
                        f"these (an empty cell means the modality is missing in that row)."
                    )

    def id_column(self, frame: pd.DataFrame) -> str | None:
        for name in (self.spec.get("id_column"), "id"):
            if name and name in frame.columns:
                return name
        return None

    def ids(self, frame: pd.DataFrame, offset: int = 0) -> np.ndarray:
        column = self.id_column(frame)
        return (
            frame[column].astype(str).to_numpy()
            if column
            else np.arange(offset, offset + len(frame)).astype(str)
        )

    def _spec(self, targets: bool) -> dict:
        return self.spec if targets else {**self.spec, "targets": {}}

    def read(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The rows with their missing cells read as training read them (the saved data.na_values)."""
        return read_missing(frame, Missing.of(self.spec.get("missing")))[0]

    def check(self, frame: pd.DataFrame, root: Path, targets: bool = False, split=None) -> BadRows:
        """The preflight of these rows; an empty cell is a missing modality, not a bad row."""
        split = np.full(len(frame), "predict") if split is None else split
        return check_table(self.read(frame), self._spec(targets), split, root, self.tasks if targets else {})

    def table(
        self,
        frame: pd.DataFrame,
        root: Path,
        on_bad_row: str = "error",
        report_dir=None,
        targets: bool = False,
        split=None,
        bad: BadRows | None = None,
        offset: int = 0,
    ):
        """Rows -> (MultimodalTable read with the saved column mapping and preprocessing, kept rows)."""
        split = np.full(len(frame), "predict") if split is None else np.asarray(split)
        table, kept, _ = make_table(
            self.read(frame),
            self._spec(targets),
            split,
            root,
            self.ids(frame, offset),
            on_bad_row,
            report_dir,
            self.tasks if targets else {},
            self.preprocessing,
            bad,
        )
        return table, kept

    def table_of(
        self,
        path,
        on_bad_row: str = "error",
        report_dir=None,
        evaluate: bool = False,
        split_column: str | None = None,
    ):
        """A labelled manifest file -> (table, kept rows); split = the split column's values (the
        run's split column by default, if the file has it), else "eval" for every row."""
        path = Path(str(path)).expanduser()
        frame = read_manifest(path)
        root = locate(path)[2]
        self.check_columns(frame, f"data.path={path}", targets=evaluate)
        column = split_column or self.spec.get("split_column")
        if split_column and split_column not in frame.columns:
            raise ConfigError(f"data.split_column={split_column}: {path.name} has no such column.")
        split = (
            frame[column].astype(str).str.strip().to_numpy()
            if column in frame.columns
            else np.full(len(frame), "eval")
        )
        return self.table(frame, root, on_bad_row, report_dir, evaluate, split)

    def predict(
        self,
        frame: pd.DataFrame,
        root=".",
        on_bad_row: str = "error",
        batch_size: int = 64,
        cache_dir=None,
        device="cpu",
        bad: BadRows | None = None,
        offset: int = 0,
    ) -> pd.DataFrame:
        """One output row per kept input row, in input order: the id column (or ``row``), then per
        task ``pred_<task>`` and ``prob_<task>_<class>``, ``present_<modality>``, then the input's
        other columns. Relative media paths are read from ``root``."""
        self.check_columns(frame, "the frame")
        table, kept = self.table(frame, Path(root).absolute(), on_bad_row, None, False, None, bad, offset)
        columns: dict[str, object] = {}
        id_column = self.id_column(frame)
        columns[id_column or "row"] = frame[id_column].to_numpy()[kept] if id_column else kept + offset
        if len(kept):
            outputs, present = self.outputs(table, batch_size, cache_dir, device)
            for task, spec in self.tasks.items():
                columns.update(
                    TASKS.get(spec["type"]).predictions(
                        task, outputs[task], spec["classes"], self.calibration.get(task)
                    )
                )
            for i, m in enumerate(self.modalities):
                columns[f"present_{m}"] = present[:, i].to(torch.int64).numpy()
        used = {c for cs in self.columns().values() for c in cs} | {id_column}
        for column in frame.columns:
            if column not in used and column not in columns:
                columns[column] = frame[column].to_numpy()[kept]
        return pd.DataFrame(columns)
