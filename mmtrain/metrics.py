"""torchmetrics collections per task, and their flat ``<stage>/<task>/<metric>`` names."""

from __future__ import annotations

import torch
import torchmetrics as tm
from torch import nn


def task_metrics(task_type: str, classes: list[str] | None) -> tm.MetricCollection:
    if task_type == "multiclass":
        c = len(classes)
        return tm.MetricCollection({
            "acc": tm.classification.MulticlassAccuracy(c, average="micro"),
            "f1_macro": tm.classification.MulticlassF1Score(c, average="macro"),
            "balanced_acc": tm.classification.MulticlassRecall(c, average="macro"),
            "auroc": tm.classification.MulticlassAUROC(c, average="macro"),
            "recall": tm.classification.MulticlassRecall(c, average=None),
        })
    if task_type == "multilabel":
        n = len(classes)
        return tm.MetricCollection({
            "f1_macro": tm.classification.MultilabelF1Score(n, average="macro"),
            "f1_micro": tm.classification.MultilabelF1Score(n, average="micro"),
            "ap": tm.classification.MultilabelAveragePrecision(n, average="macro"),
            "f1": tm.classification.MultilabelF1Score(n, average=None),  # per label: f1/<label>
        })
    return tm.MetricCollection({"mae": tm.MeanAbsoluteError(),
                                "rmse": tm.MeanSquaredError(squared=False),
                                "r2": tm.R2Score()})


def metric_inputs(task_type: str, outputs: torch.Tensor, targets: torch.Tensor):
    """Model outputs -> what the task's metrics take (probabilities, or values)."""
    if task_type == "multiclass":
        return outputs.softmax(-1), targets
    if task_type == "multilabel":
        return outputs.sigmoid(), targets.long()
    return outputs.squeeze(-1), targets.to(outputs.dtype)


def flatten(prefix: str, values: dict, classes: list[str] | None) -> dict[str, float]:
    """{'recall': tensor([..])} -> {'<prefix>/recall/<class>': ..}; scalars keep their name."""
    flat = {}
    for name, value in values.items():
        value = value.detach().float().cpu()
        if value.ndim == 0:
            flat[f"{prefix}/{name}"] = value.item()
        else:
            for cls, v in zip(classes, value.tolist()):
                flat[f"{prefix}/{name}/{cls}"] = v
    return flat


class StageMetrics(nn.Module):
    """One metric collection per task for one stage (val or test)."""

    def __init__(self, tasks: dict[str, dict]):
        super().__init__()
        self.tasks = tasks
        self.collections = nn.ModuleDict(
            {name: task_metrics(t["type"], t["classes"]) for name, t in tasks.items()})

    def update(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> None:
        for name, collection in self.collections.items():
            collection.update(*metric_inputs(self.tasks[name]["type"], outputs[name], targets[name]))

    def compute(self, stage: str) -> dict[str, float]:
        flat = {}
        for name, collection in self.collections.items():
            flat.update(flatten(f"{stage}/{name}", collection.compute(), self.tasks[name]["classes"]))
            collection.reset()
        return flat
