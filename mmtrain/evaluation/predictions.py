"""Each run's predictions on val and on its test splits, kept in its run dir
(``predictions/<split>.parquet``): one row per row of the split, with the row's position in the table
and its id, what ``mmtrain-predict`` writes for it (calibrated probabilities or values) and its targets.
Ensembling reads these, so it never runs a model over val or test again."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mmtrain.core import artefacts
from mmtrain.evaluation import analysis
from mmtrain.tasks import TASKS


def write(
    out_dir: Path, module, datamodule, splits: list[str], monitor: tuple, device="cpu", precision=None
) -> None:
    """predictions/<split>.parquet for each of ``splits`` and predictions/tasks.json (the tasks, the
    run's monitored metric and mode, the targets' columns)."""
    folder = Path(out_dir) / artefacts.PREDICTIONS
    write_tasks(folder, module.tasks, monitor, datamodule.table.spec)
    for split in splits:
        rows = datamodule.ordered(split)
        loader = datamodule.loader(split, shard=False)
        outputs, targets, _ = analysis.run(module.model, loader, device, precision=precision)
        frame = frame_of(
            module.tasks, rows, datamodule.table.row_ids(rows), outputs[None], targets, module.calibration
        )
        frame.to_parquet(folder / f"{split}.parquet", index=False)


def write_tasks(folder: Path, tasks: dict, monitor: tuple, spec: dict | None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    facts = {
        "tasks": {t: {"type": s["type"], "classes": s["classes"]} for t, s in tasks.items()},
        "monitor": list(monitor),
        "targets": (spec or {}).get("targets"),
    }
    (folder / artefacts.PREDICTED_TASKS).write_text(json.dumps(facts, indent=2) + "\n")


def read_tasks(run_dir: Path) -> dict | None:
    path = Path(run_dir) / artefacts.PREDICTIONS / artefacts.PREDICTED_TASKS
    return json.loads(path.read_text()) if path.is_file() else None


def targets_frame(tasks: dict, targets: dict) -> pd.DataFrame:
    """The ``target_`` columns of a predictions frame, from encoded targets {task: array}."""
    columns = {}
    for task, spec in tasks.items():
        y = np.asarray(targets[task])
        if y.ndim == 2:
            columns.update({f"target_{task}_{label}": y[:, i] for i, label in enumerate(spec["classes"])})
        else:
            columns[f"target_{task}"] = y
    return pd.DataFrame(columns)


def frame_of(tasks: dict, rows, ids, outputs: dict, targets: dict, calibration: dict) -> pd.DataFrame:
    """The predictions frame of one split, sorted by row: ``row``, ``id``, then per task the columns
    predict writes and ``target_<task>`` (``target_<task>_<label>`` per label of a multilabel task)."""
    columns: dict[str, object] = {"row": np.asarray(rows), "id": np.asarray(ids).astype(str)}
    for task, spec in tasks.items():
        kind = TASKS.get(spec["type"])
        columns.update(kind.predictions(task, outputs[task], spec["classes"], (calibration or {}).get(task)))
    columns.update(targets_frame(tasks, targets).to_dict("series"))
    return pd.DataFrame(columns).sort_values("row", kind="stable").reset_index(drop=True)


def read(run_dir: Path, split: str) -> pd.DataFrame | None:
    path = Path(run_dir) / artefacts.PREDICTIONS / f"{split}.parquet"
    return pd.read_parquet(path) if path.is_file() else None


def value_columns(task: str, spec: dict) -> list[str]:
    return TASKS.get(spec["type"]).value_columns(task, spec["classes"])


def values(frame: pd.DataFrame, task: str, spec: dict) -> np.ndarray:
    """[N, K] what a model predicts for ``task``: probabilities per class, or the value."""
    return frame[value_columns(task, spec)].to_numpy(np.float64)


def targets(frame: pd.DataFrame, task: str, spec: dict) -> torch.Tensor:
    if spec["type"] == "multilabel":
        return torch.as_tensor(
            frame[[f"target_{task}_{label}" for label in spec["classes"]]].to_numpy().copy()
        )
    return torch.as_tensor(frame[f"target_{task}"].to_numpy().copy())


def outputs_of(tasks: dict, values: dict) -> dict[str, torch.Tensor]:
    """{task: outputs} whose probabilities (or values) are ``values`` {task: [N, K]}."""
    return {
        t: TASKS.get(tasks[t]["type"]).outputs_of(torch.as_tensor(v, dtype=torch.float32))
        for t, v in values.items()
    }


def metrics(
    tasks: dict, values: dict, frame: pd.DataFrame, stage: str, calibration: dict | None = None
) -> dict[str, float]:
    """The run's metrics (``<stage>/<task>/<metric>``, as training writes them) of ``values``
    {task: [N, K]} against the targets kept in the predictions ``frame`` of the same rows; ece/nll
    after ``calibration`` (of those values' outputs), the _raw ones before."""
    from mmtrain.model.metrics import StageMetrics

    collected = StageMetrics(tasks)
    targets_of = {t: targets(frame, t, s) for t, s in tasks.items()}
    collected.update(
        outputs_of(tasks, values), targets_of, {t: (calibration or {}).get(t) or {} for t in tasks}
    )
    return collected.compute(stage)


def combined_frame(tasks: dict, values: dict, frame: pd.DataFrame) -> pd.DataFrame:
    """The predictions frame of combined ``values`` for the rows (and targets) of ``frame``."""
    targets_of = {t: targets(frame, t, s).numpy() for t, s in tasks.items()}
    return frame_of(tasks, frame["row"], frame["id"], outputs_of(tasks, values), targets_of, {})
