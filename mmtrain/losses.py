"""Per-task losses and class-imbalance weights (computed from the train split only)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from mmtrain.checks import CLASS_WEIGHTS
from mmtrain.errors import ConfigError



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
    if mode == "effective_number":
        if not 0.0 <= beta < 1.0:
            raise ConfigError(f"loss.beta={beta} must be in [0, 1) (typical: 0.9-0.9999).")
        weights = (1.0 - beta) / (1.0 - np.power(beta, counts))
        return (weights / weights.sum() * num_classes).tolist()
    raise ConfigError(f"loss.class_weights={mode} is not known: use one of {', '.join(CLASS_WEIGHTS)}, "
                      f"or a list with one weight per class (e.g. loss.class_weights=[2.0,0.5,1.0]).")


def positive_weights(positives: Sequence[float], total: int, mode: str) -> list[float] | None:
    """pos_weight for a multilabel task: none, or balanced = negatives / positives per label."""
    if mode in (None, "none"):
        return None
    if mode != "balanced":
        raise ConfigError(f"loss.pos_weight={mode} is not known: use none or balanced.")
    positives = np.asarray(positives, dtype=np.float64)
    return ((total - positives) / np.maximum(positives, 1.0)).tolist()


def build_loss(task_type: str, weights: list[float] | None, regression: str = "mse",
               huber_delta: float = 1.0, label_smoothing: float = 0.0) -> nn.Module:
    """A loss taking (outputs, targets): logits [B, C] + class index [B]; logits [B, L] + 0/1
    [B, L]; or values [B, 1] + values [B]."""
    weight = None if weights is None else torch.tensor(weights, dtype=torch.float32)
    if task_type == "multiclass":
        return nn.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing)
    if task_type == "multilabel":
        return nn.BCEWithLogitsLoss(pos_weight=weight)
    if regression == "mse":
        return _Regression(nn.MSELoss())
    if regression == "huber":
        return _Regression(nn.HuberLoss(delta=huber_delta))
    raise ConfigError(f"loss.regression={regression} is not known: use mse or huber.")


class _Regression(nn.Module):
    def __init__(self, loss: nn.Module):
        super().__init__()
        self.loss = loss

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.loss(outputs.squeeze(-1), targets.to(outputs.dtype))
