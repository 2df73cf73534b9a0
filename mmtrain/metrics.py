"""torchmetrics collections per task, and their flat ``<stage>/<task>/<metric>`` names."""

from __future__ import annotations

import torch
from torch import nn

from mmtrain.tasks import TASKS


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
            {name: TASKS.get(t["type"]).metrics(t["classes"]) for name, t in tasks.items()})

    def update(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> None:
        for name, collection in self.collections.items():
            collection.update(*TASKS.get(self.tasks[name]["type"]).metric_inputs(outputs[name], targets[name]))

    def compute(self, stage: str) -> dict[str, float]:
        flat = {}
        for name, collection in self.collections.items():
            flat.update(flatten(f"{stage}/{name}", collection.compute(), self.tasks[name]["classes"]))
            collection.reset()
        return flat
