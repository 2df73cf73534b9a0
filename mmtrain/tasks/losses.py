"""Loss settings (the ``loss`` config node), class-imbalance weights (from the train split only)
and the loss modules the task types build (mmtrain/tasks/)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import nn

from mmtrain.core.errors import ConfigError, unknown_keys

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
    focal_gamma: float = 0.0  # classification: focal loss (1 - p_t)^gamma x CE, Lin et al. 2017 (0: plain CE)
    logit_adjust_tau: float = 0.0  # multiclass: CE on z + tau log(prior), Menon et al. 2021 (0: off)

    def __post_init__(self):
        weights = self.class_weights
        if isinstance(weights, str) and weights not in CLASS_WEIGHTS:
            raise ConfigError(
                f"loss.class_weights={weights} is not known: use one of {', '.join(CLASS_WEIGHTS)}, "
                f"or a list with one weight per class (e.g. loss.class_weights=[2.0,0.5,1.0])."
            )
        if not 0.0 <= self.beta < 1.0:
            raise ConfigError(f"loss.beta={self.beta} must be in [0, 1) (typical: 0.9-0.9999).")
        if self.pos_weight not in POS_WEIGHTS:
            raise ConfigError(f"loss.pos_weight={self.pos_weight} is not known: use none or balanced.")
        if self.regression not in REGRESSION:
            raise ConfigError(f"loss.regression={self.regression} is not known: use mse or huber.")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"loss.label_smoothing={self.label_smoothing} must be in [0, 1) (e.g. 0.1).")
        if not 0 <= self.focal_gamma <= 10:
            raise ConfigError(
                f"loss.focal_gamma={self.focal_gamma} must be in [0, 10] (2 is usual; 0 is plain CE)."
            )
        if not 0 <= self.logit_adjust_tau <= 5:
            raise ConfigError(
                f"loss.logit_adjust_tau={self.logit_adjust_tau} must be in [0, 5] (1 is usual; 0: off)."
            )

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
            raise ConfigError(
                f"loss.class_weights={weights} needs {num_classes} non-negative weights, one per class."
            )
        return weights
    if mode in (None, "none"):
        return None
    if (counts == 0).any():
        raise ConfigError(
            f"loss.class_weights={mode}: a class has no train sample (train counts "
            f"{counts.astype(int).tolist()}); use an explicit list or none."
        )
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


class ClassLoss(nn.Module):
    """Cross-entropy for logits [B, C] and class indices [B], with class weights, label smoothing,
    focal modulation (Lin et al. 2017: each row's loss x (1 - p_true)^gamma) and logit adjustment
    (Menon et al. 2021: trained on z + tau log(prior), so plain z predicts for balanced error).
    Weighted rows average as in torch: sum(w_y loss) / sum(w_y)."""

    def __init__(
        self, weights=None, label_smoothing: float = 0.0, gamma: float = 0.0, tau: float = 0.0, priors=None
    ):
        super().__init__()
        self.label_smoothing, self.gamma = label_smoothing, gamma
        self.register_buffer(
            "weight", None if weights is None else torch.tensor(weights, dtype=torch.float32)
        )
        shift = (
            tau * torch.log(torch.tensor(priors, dtype=torch.float32).clamp(min=1e-12))
            if tau and priors
            else None
        )
        self.register_buffer("shift", shift)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.shift is not None:
            logits = logits + self.shift.to(logits.dtype)
        if not self.gamma:
            return nn.functional.cross_entropy(
                logits, targets, weight=self.weight, label_smoothing=self.label_smoothing
            )
        per_row = nn.functional.cross_entropy(
            logits, targets, reduction="none", label_smoothing=self.label_smoothing
        )
        p_true = logits.float().softmax(-1).gather(1, targets.unsqueeze(1)).squeeze(1)
        per_row = (1 - p_true).pow(self.gamma) * per_row
        w = torch.ones_like(per_row) if self.weight is None else self.weight[targets].to(per_row.dtype)
        return (w * per_row).sum() / w.sum().clamp(min=1e-12)


class LabelLoss(nn.Module):
    """Binary cross-entropy per label for logits [B, L] and 0/1 targets [B, L], with pos_weight and
    sigmoid focal modulation ((1 - p_t)^gamma, Lin et al. 2017)."""

    def __init__(self, pos_weight=None, gamma: float = 0.0):
        super().__init__()
        self.gamma = gamma
        self.register_buffer(
            "pos_weight", None if pos_weight is None else torch.tensor(pos_weight, dtype=torch.float32)
        )

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        targets = targets.to(logits.dtype)
        per = nn.functional.binary_cross_entropy_with_logits(
            logits, targets, pos_weight=self.pos_weight, reduction="none"
        )
        if self.gamma:
            p = logits.sigmoid()
            per = (1 - (p * targets + (1 - p) * (1 - targets))).pow(self.gamma) * per
        return per.mean()


def regression_loss(kind: str, huber_delta: float = 1.0) -> nn.Module:
    """values [B, 1] + targets [B] -> MSE or Huber."""
    return _Regression(nn.MSELoss() if kind == "mse" else nn.HuberLoss(delta=huber_delta))


class _Regression(nn.Module):
    def __init__(self, loss: nn.Module):
        super().__init__()
        self.loss = loss

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.loss(outputs.squeeze(-1), targets.to(outputs.dtype))
