"""report.md of an ensemble dir: its members with their weights, each member's val/test score beside the
ensemble's, how often members disagree (disagreement.csv/png), and the cost (parameters, inference time)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mmtrain.core import artefacts
from mmtrain.evaluation import predictions
from mmtrain.reporting.results import _pyplot
from mmtrain.reporting.run_report import _seconds, _table
from mmtrain.tasks import TASKS


def write(out: Path, members: list, spec: dict, values: dict, metrics: dict, wall: float) -> Path:
    tasks, combine = spec["tasks"], spec["combine"]
    splits = list(values)
    lines = [
        "# Ensemble report",
        "",
        f"Ensemble dir `{out.name}`: {len(members)} members, method `{spec['method']}` "
        f"(fitted on the members' saved val predictions in {_seconds(wall)}; no model ran again).",
        "",
    ]
    for task, fitted in combine.items():
        metric = fitted["metric"]
        rows = []
        for i, member in enumerate(members):
            row = {"member": member.name, "models": len(member.models)}
            if "weights" in fitted:
                row["weight"] = fitted["weights"][i]
            for split in splits:
                score = predictions.metrics(
                    {task: tasks[task]}, {task: member.values(split, task)}, frame(member, split), split
                )
                row[f"{split} {metric}"] = score.get(f"{split}/{task}/{metric}", float("nan"))
            rows.append(row)
        ensemble_row = {"member": "**ensemble**", "models": sum(len(m.models) for m in members)}
        if "weights" in fitted:
            ensemble_row["weight"] = 1.0
        ensemble_row.update(
            {f"{s} {metric}": metrics.get(f"{s}/{task}/{metric}", float("nan")) for s in splits}
        )
        table = pd.DataFrame(rows + [ensemble_row])
        lines += [f"## Task `{task}`: members and the ensemble ({metric})", ""]
        if spec["method"] == "stack":
            lines += [
                "A cross-fitted linear stacker combines every member (its val score is out-of-fold).",
                "",
            ]
        lines += _table(table)
        disagreement(out, task, tasks[task], members, splits[-1])
        lines += [
            f"### How often members disagree ({splits[-1]}, task `{task}`)",
            "",
            f"![disagreement]({artefacts.DISAGREEMENT}_{task}.png) "
            f"(table: `{artefacts.DISAGREEMENT}_{task}.csv`; "
            "share of rows where two members decide differently, or 1 - correlation for values)",
            "",
        ]
    lines += _cost(members)
    if spec["skipped"]:
        lines += ["## Runs left out", ""] + [f"- `{s['name']}`: {s['why']}" for s in spec["skipped"]] + [""]
    path = out / artefacts.REPORT
    path.write_text("\n".join(lines))
    return path


def frame(member, split: str) -> pd.DataFrame:
    return member.val if split == "val" else member.tests[split]


def disagreement(out: Path, task: str, spec: dict, members: list, split: str) -> None:
    kind = TASKS.get(spec["type"])
    decided = []
    for member in members:
        v = member.values(split, task)
        decided.append(
            v[:, 0] if spec["type"] == "regression" else kind.decide(torch.as_tensor(v), None).numpy()
        )
    n = len(members)
    matrix = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if spec["type"] == "regression":
                matrix[i, j] = 1 - float(np.corrcoef(decided[i], decided[j])[0, 1]) if i != j else 0.0
            else:
                differ = decided[i] != decided[j]
                matrix[i, j] = float(np.mean(differ.any(axis=-1) if differ.ndim > 1 else differ))
    names = [m.name for m in members]
    pd.DataFrame(matrix, index=names, columns=names).to_csv(out / f"{artefacts.DISAGREEMENT}_{task}.csv")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(2 + 0.6 * n, 1.5 + 0.6 * n))
    image = ax.imshow(matrix, cmap="viridis", vmin=0)
    ax.set_xticks(range(n), [str(i) for i in range(n)])
    ax.set_yticks(range(n), [f"{i}: {name[-30:]}" for i, name in enumerate(names)])
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", color="w", fontsize=7)
    fig.colorbar(image, ax=ax)
    ax.set_title(f"{task}: disagreement on {split}")
    fig.tight_layout()
    fig.savefig(out / f"{artefacts.DISAGREEMENT}_{task}.png", dpi=110)
    plt.close(fig)


def _cost(members: list) -> list[str]:
    rows = []
    for member in members:
        infos = [
            json.loads((m / artefacts.RUN_INFO).read_text())
            for m in member.models
            if (m / artefacts.RUN_INFO).is_file()
        ]
        params = sum(sum((i.get("parameters") or {}).values()) for i in infos)
        walls = [i.get("wall_s") or {} for i in infos]
        rows.append(
            {
                "member": member.name,
                "parameters": f"{params:,}",
                "train": _seconds(sum(w.get("train", 0.0) for w in walls)),
                "val + test inference": _seconds(
                    sum(w.get("evaluate", 0.0) + w.get("report", 0.0) for w in walls)
                ),
            }
        )
    return [
        "## Cost",
        "",
        "Predicting runs every member (shared frozen features are computed once).",
        "",
    ] + _table(pd.DataFrame(rows))
