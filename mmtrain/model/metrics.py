"""torchmetrics collections per task, and their flat ``<stage>/<task>/<metric>`` names."""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics.aggregation import SumMetric

from mmtrain.tasks import TASKS, labelled


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
    """One metric collection per task for one stage (val or test). Once the model is calibrated
    (``calibration`` given to update), also each classification task's ECE and NLL, raw
    (``ece_raw``, ``nll_raw``) and calibrated (``ece``, ``nll``)."""

    def __init__(self, tasks: dict[str, dict]):
        super().__init__()
        self.tasks = tasks
        self.collections = nn.ModuleDict(
            {name: TASKS.get(t["type"]).metrics(t["classes"]) for name, t in tasks.items()}
        )
        self.calibration = nn.ModuleDict()
        for name, t in tasks.items():
            for variant in ("raw", "calibrated"):
                metrics = TASKS.get(t["type"]).calibration_metrics(t["classes"])
                if metrics is not None:
                    self.calibration[f"{name}:{variant}"] = nn.ModuleDict(metrics)
        self.calibrated = False
        self.rows = SumMetric()  # rows seen since the last compute, over every rank

    def update(
        self,
        outputs: dict[str, torch.Tensor],
        targets: dict[str, torch.Tensor],
        calibration: dict | None = None,
    ) -> None:
        self.rows.update(len(next(iter(targets.values()))))
        rows = {
            name: labelled(self.tasks[name]["type"], outputs[name], targets[name])
            for name in self.collections
        }
        for name, collection in self.collections.items():
            collection.update(*TASKS.get(self.tasks[name]["type"]).metric_inputs(*rows[name]))
        if not calibration:
            return
        self.calibrated = True
        for key, metrics in self.calibration.items():
            name, variant = key.split(":")
            TASKS.get(self.tasks[name]["type"]).update_calibration(
                metrics, *rows[name], calibration.get(name) if variant == "calibrated" else None
            )

    def compute(self, stage: str) -> dict[str, float]:
        flat = {}
        for name, collection in self.collections.items():
            flat.update(flatten(f"{stage}/{name}", collection.compute(), self.tasks[name]["classes"]))
            collection.reset()
        if self.calibrated:
            for key, metrics in self.calibration.items():
                name, variant = key.split(":")
                suffix = "_raw" if variant == "raw" else ""
                for metric_name, metric in metrics.items():
                    flat[f"{stage}/{name}/{metric_name}{suffix}"] = float(metric.compute())
                    metric.reset()
        self.calibrated = False
        self.rows.reset()
        return flat

    def rows_seen(self) -> int:
        return int(self.rows.compute())

    def reset(self) -> None:
        """Forget the rows seen without computing (too few rows for a metric: r2 needs 2)."""
        for module in self.modules():
            if module is not self and hasattr(module, "reset"):
                module.reset()
        self.calibrated = False
