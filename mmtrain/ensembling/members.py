"""The candidates of an ensemble: every finished run dir under the folders given, with its saved val
and test predictions (evaluation/predictions.py). A cross-validated run (cv.folds=k) is one member
whose fold models are bagged: its val predictions are out-of-fold (each row scored by the fold model
that held it out) and its test predictions the mean of the fold models'."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mmtrain.core import artefacts
from mmtrain.core.errors import ConfigError
from mmtrain.evaluation import predictions


@dataclass
class Member:
    name: str  # its path under the folder given (or its dir name)
    path: Path
    models: list[Path]  # the run dir, or a cv run's fold dirs
    facts: dict  # predictions/tasks.json: tasks, monitor, targets
    val: pd.DataFrame
    tests: dict[str, pd.DataFrame] = field(default_factory=dict)

    def values(self, split: str, task: str) -> np.ndarray:
        frame = self.val if split == "val" else self.tests[split]
        return predictions.values(frame, task, self.facts["tasks"][task])


def is_run(folder: Path) -> bool:
    return any(
        (folder / name).is_file() for name in (artefacts.METRICS, artefacts.FAILED, artefacts.RUN_INFO)
    )


def run_dirs(folder: Path) -> list[Path]:
    """The run dirs at or under ``folder``, at any depth; a cv run's fold dirs and ensemble dirs are not
    candidates of their own."""
    if is_run(folder) or (folder / artefacts.CV).is_file():
        return [folder]
    found = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if (sub / artefacts.ENSEMBLE).is_file():
            continue
        found += run_dirs(sub)
    return found


def find(runs: list[Path]) -> tuple[list[Member], list[tuple[str, str]]]:
    """(the members, the runs skipped with why) among ``runs`` (run dirs or folders holding them)."""
    members, skipped = [], []
    for given in runs:
        if not given.is_dir():
            raise ConfigError(f"runs={given}: no such folder. Give a sweep dir, a run dir or a list of them.")
        for path in run_dirs(given):
            name = label(path, given)
            member, why = load(path, name)
            if member is None:
                skipped.append((name, why))
            else:
                members.append(member)
    return members, skipped


def label(path: Path, given: Path) -> str:
    """A member's name: its sweep overrides (Hydra's .hydra/overrides.yaml) where it has them, else
    its path under the folder given."""
    overrides = path / ".hydra" / "overrides.yaml"
    if overrides.is_file():
        import yaml

        chosen = [o for o in yaml.safe_load(overrides.read_text()) or [] if not o.startswith("hydra.")]
        if chosen:
            return f"{path.name}: {','.join(chosen)}" if path != given else ",".join(chosen)
    return str(path.relative_to(given)) if path != given else path.name


def load(path: Path, name: str) -> tuple[Member | None, str]:
    """The member of the run dir ``path``, or (None, why it cannot be one)."""
    folds = sorted(path.glob("fold_*"), key=lambda p: int(p.name.split("_")[1]))
    models = folds if (path / artefacts.CV).is_file() else [path]
    if not (path / artefacts.METRICS).is_file():
        failed = path / artefacts.FAILED
        why = json.loads(failed.read_text()).get("error", "") if failed.is_file() else "no metrics.json"
        return None, f"failed: {why.splitlines()[0][:160] if why else 'unknown error'}"
    facts = predictions.read_tasks(models[0]) if models else None
    vals = [predictions.read(m, "val") for m in models]
    if facts is None or any(v is None for v in vals):
        return None, "no saved predictions (trained before runs kept them): train it again"
    tests = {}
    for split in sorted(p.stem for p in (models[0] / artefacts.PREDICTIONS).glob("*.parquet")):
        if split != "val":
            frames = [predictions.read(m, split) for m in models]
            if all(f is not None for f in frames):
                tests[split] = mean_of(frames, facts["tasks"])
    val = pd.concat(vals, ignore_index=True).sort_values("row", kind="stable").reset_index(drop=True)
    if val["row"].duplicated().any():
        return None, "its folds' val rows overlap"
    return Member(name, path, models, facts, val, tests), ""


def mean_of(frames: list[pd.DataFrame], tasks: dict) -> pd.DataFrame:
    """The fold models' predictions of one split averaged (bagging)."""
    if len(frames) == 1:
        return frames[0]
    out = frames[0].copy()
    for task, spec in tasks.items():
        columns = predictions.value_columns(task, spec)
        out[columns] = np.mean([f[columns].to_numpy(np.float64) for f in frames], axis=0)
    return out


def check(members: list[Member]) -> None:
    """Members must predict the same tasks (and classes) for the same val and test rows."""
    if not members:
        raise ConfigError("runs=: no finished run with saved predictions was found there.")
    first = members[0]
    for other in members[1:]:
        differs = what_differs(first, other)
        if differs:
            raise ConfigError(
                f"runs: {other.name} cannot join an ensemble with {first.name}: {differs}. Members must "
                f"be trained on the same data with the same split (data.split_column / data.split_seed, "
                f"cv.folds) and targets; leave {other.name} out or train it again with those settings."
            )


def what_differs(a: Member, b: Member) -> str:
    if a.facts["tasks"] != b.facts["tasks"]:
        return f"its tasks {b.facts['tasks']} differ from {a.facts['tasks']}"
    for split in ["val", *a.tests]:
        fa = a.val if split == "val" else a.tests[split]
        fb = b.val if split == "val" else b.tests.get(split)
        if fb is None:
            return f"it has no {split} predictions"
        if len(fa) != len(fb) or not (fa["id"].to_numpy() == fb["id"].to_numpy()).all():
            return f"its {split} rows differ ({len(fb)} rows against {len(fa)})"
        targets = [c for c in fa.columns if c.startswith("target_")]
        if not fa[targets].equals(fb[targets]):
            return f"its {split} targets differ"
    return ""
