"""Loss settings (the ``loss`` config node), class-imbalance weights (from the train split only)
and the loss modules the task types build (mmtrain/tasks/)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import nn

from mmtrain.errors import ConfigError, unknown_keys

CLASS_WEIGHTS = ("none", "balanced", "effective_number")
POS_WEIGHTS = ("none", "balanced")
REGRESSION = ("mse", "huber")


@dataclass(frozen=True)
class LossSettings:
    """The ``loss`` node: its keys are this class's fields, checked when it is made."""

    class_weights: Any = "none"  # none | balanced | effective_number | one weight per class
    beta: float = 0.999  # effective_number: (1 - beta) / (1 - beta ** n_c)
    pos_weight: str = "none"  # multilabel: none | balanced
    regression: str = "mse"  # mse | huber
    huber_delta: float = 1.0
    label_smoothing: float = 0.0  # multiclass

    def __post_init__(self):
        weights = self.class_weights
        if isinstance(weights, str) and weights not in CLASS_WEIGHTS:
            raise ConfigError(f"loss.class_weights={weights} is not known: use one of {', '.join(CLASS_WEIGHTS)}, "
                              f"or a list with one weight per class (e.g. loss.class_weights=[2.0,0.5,1.0]).")
        if not 0.0 <= self.beta < 1.0:
            raise ConfigError(f"loss.beta={self.beta} must be in [0, 1) (typical: 0.9-0.9999).")
        if self.pos_weight not in POS_WEIGHTS:
            raise ConfigError(f"loss.pos_weight={self.pos_weight} is not known: use none or balanced.")
        if self.regression not in REGRESSION:
            raise ConfigError(f"loss.regression={self.regression} is not known: use mse or huber.")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"loss.label_smoothing={self.label_smoothing} must be in [0, 1) (e.g. 0.1).")

    @classmethod
    def of(cls, node: dict) -> LossSettings:
        unknown_keys(node, [f.name for f in fields(cls)], "loss")
        return cls(**node)


def class_weights(counts: Sequence[int], mode, beta: float = 0.999) -> list[float] | None:
    """Weights for the classes of a multiclass task, from their train counts.

    none -> None; balanced -> N / (C * n_c) (inverse frequency, as scikit-learn);
    effective_number -> Cui et al. 2019: (1 - beta) / (1 - beta ** n_c), normalised to sum to C;
    a list -> used as given (one weight per class).
    """
    counts = np.asarray(counts, dtype=np.float64)
    num_classes = len(counts)
    if mode is not None and not isinstance(mode, str):  # a list (or ListConfig) of weights
        weights = [float(w) for w in mode]
        if len(weights) != num_classes or min(weights) < 0:
            raise ConfigError(f"loss.class_weights={weights} needs {num_classes} non-negative weights, "
                              f"one per class.")
        return weights
    if mode in (None, "none"):
        return None
    if (counts == 0).any():
        raise ConfigError(f"loss.class_weights={mode}: a class has no train sample (train counts "
                          f"{counts.astype(int).tolist()}); use an explicit list or none.")
    if mode == "balanced":
        return (counts.sum() / (num_classes * counts)).tolist()
    weights = (1.0 - beta) / (1.0 - np.power(beta, counts))  # effective_number
    return (weights / weights.sum() * num_classes).tolist()


def positive_weights(positives: Sequence[float], total: int, mode: str) -> list[float] | None:
    """pos_weight for a multilabel task: none, or balanced = negatives / positives per label."""
    if mode in (None, "none"):
        return None
    positives = np.asarray(positives, dtype=np.float64)
    return ((total - positives) / np.maximum(positives, 1.0)).tolist()


def regression_loss(kind: str, huber_delta: float = 1.0) -> nn.Module:
    """values [B, 1] + targets [B] -> MSE or Huber."""
    return _Regression(nn.MSELoss() if kind == "mse" else nn.HuberLoss(delta=huber_delta))


class _Regression(nn.Module):
    def __init__(self, loss: nn.Module):
        super().__init__()
        self.loss = loss

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.loss(outputs.squeeze(-1), targets.to(outputs.dtype))
