"""An ensemble dir (written by ``mmtrain-ensemble``) as a model: each member predicts with its own saved
preprocessing (a cv member's fold models are averaged), and their probabilities or values are combined
as fitted on val (weights or a stacker). Same ``predict`` output as one run's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from mmtrain.core import artefacts
from mmtrain.core.errors import ConfigError
from mmtrain.data.preflight import BadRows
from mmtrain.ensembling.selection import combine
from mmtrain.evaluation import predictions
from mmtrain.tasks import TASKS


class EnsembleModel:
    def __init__(self, path: Path):
        from mmtrain.inference import load_model

        self.path = Path(path)
        self.saved = json.loads((self.path / artefacts.ENSEMBLE).read_text())
        self.tasks = self.saved["tasks"]
        self.members = [
            [load_model(self.path / m) for m in member["models"]] for member in self.saved["members"]
        ]
        self.models = [model for member in self.members for model in member]
        modalities = {m: spec for model in self.models for m, spec in model.spec["modalities"].items()}
        self.spec = {**self.models[0].spec, "modalities": modalities}  # what the members read, together

    def keep_resident(self) -> None:
        for model in self.models:
            model.keep_resident()

    def columns(self, targets: bool = False) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for model in self.models:
            out.update(model.columns(targets))
        return out

    def check_columns(self, frame: pd.DataFrame, source: str, targets: bool = False) -> None:
        for model in self.models:
            model.check_columns(frame, source, targets)

    def check(self, frame: pd.DataFrame, root: Path, targets: bool = False, split=None) -> BadRows:
        """Every member's preflight of these rows, merged (a row bad for one member is bad for all, so
        every member keeps the same rows)."""
        merged = BadRows(len(frame))
        for model in self.models:
            for row, problems in model.check(frame, root, targets, split).rows.items():
                merged.rows[row] += [p for p in problems if p not in merged.rows[row]]
        return merged

    def id_column(self, frame: pd.DataFrame) -> str | None:
        return self.models[0].id_column(frame)

    def ids(self, frame: pd.DataFrame, offset: int = 0) -> np.ndarray:
        return self.models[0].ids(frame, offset)

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
        """As a run's ``predict``: the id column (or ``row``), per task ``pred_<task>`` and
        ``prob_<task>_<class>`` of the ensemble, ``present_<modality>`` of every member's modalities,
        then the input's other columns."""
        self.check_columns(frame, "the frame")
        bad = self.check(frame, Path(root).absolute()) if bad is None else bad
        outs = [
            [
                model.predict(frame, root, on_bad_row, batch_size, cache_dir, device, bad, offset)
                for model in member
            ]
            for member in self.members
        ]
        first = outs[0][0]
        if any(len(o) != len(first) for member in outs for o in member):
            raise ConfigError(
                "The ensemble's members kept different rows of this file; set data.on_bad_row=missing "
                "(a bad cell becomes a missing modality) so that every member predicts every row."
            )
        values = {}
        for task, spec in self.tasks.items():
            per_member = [
                np.mean([predictions.values(o, task, spec) for o in member], axis=0) for member in outs
            ]
            values[task] = combine(spec, self.saved["combine"][task], per_member)
        outputs = predictions.outputs_of(self.tasks, values)
        columns = {first.columns[0]: first[first.columns[0]].to_numpy()}
        for task, spec in self.tasks.items():
            columns.update(TASKS.get(spec["type"]).predictions(task, outputs[task], spec["classes"], None))
        for member in outs:
            for c in member[0].columns:
                if c.startswith("present_") and c not in columns:
                    columns[c] = member[0][c].to_numpy()
        for c in first.columns[1:]:
            if c not in columns and not c.startswith(("pred_", "prob_", "present_")):
                columns[c] = first[c].to_numpy()
        return pd.DataFrame(columns)

    def export_refusal(self) -> ConfigError:
        names = ", ".join(str(self.path / m) for member in self.saved["members"] for m in member["models"])
        return ConfigError(
            f"run={self.path} is an ensemble of {len(self.models)} models: ONNX exports one network, so "
            f"export each member instead (mmtrain-export run=<member>; its models: {names}) and combine "
            f"their outputs with the weights in {artefacts.ENSEMBLE}."
        )
