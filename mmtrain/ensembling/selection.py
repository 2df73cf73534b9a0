"""Combining members' predictions of one task, fitted on val.

greedy: ensemble selection with replacement (Caruana et al. 2004, AutoGluon's weighted ensemble): each
round adds the member whose addition scores best, and the ensemble kept is the best round's, so it never
scores below the best member on val. stack: a regularised linear model on the members' outputs (log
probabilities, logits or values), cross-fitted: a val row's own prediction comes from a model fitted
without it, so its val score is honest.

Values are numpy [N, K]: probabilities per class (classification) or the value (regression).
"""

from __future__ import annotations

import numpy as np
import torch

from mmtrain.core.errors import ConfigError
from mmtrain.tasks import TASKS, labelled

METHODS = ("greedy", "stack")


class Scorer:
    """One metric of one task on fixed targets, for many candidate value matrices."""

    def __init__(self, task: dict, targets: torch.Tensor, metric: str, mode: str):
        self.kind, self.task, self.metric = TASKS.get(task["type"]), task, metric
        self.targets, self.sign = targets, 1.0 if mode == "max" else -1.0
        self.collection = self.kind.metrics(task["classes"], sync_on_compute=False)
        if metric not in self.collection:
            raise ConfigError(
                f"ensemble.metric: {metric} is not a metric of a {task['type']} task "
                f"({', '.join(self.collection)})."
            )

    def __call__(self, values: np.ndarray) -> float:
        """The metric, signed so that higher is better."""
        outputs = self.kind.outputs_of(torch.as_tensor(values, dtype=torch.float32))
        self.collection.reset()
        self.collection.update(*self.kind.metric_inputs(*labelled(self.task["type"], outputs, self.targets)))
        return self.sign * float(self.collection[self.metric].compute())


def greedy(members: list[np.ndarray], score: Scorer, rounds: int) -> np.ndarray:
    """Weights (summing to 1) of the best ensemble over ``rounds`` rounds of greedy selection."""
    if rounds < 1:
        raise ConfigError(f"ensemble.size={rounds} must be 1 or more (rounds of greedy selection).")
    counts, total = np.zeros(len(members)), np.zeros_like(members[0])
    best, best_counts = -np.inf, None
    for r in range(1, rounds + 1):
        scores = [score((total + m) / r) for m in members]
        pick = int(np.argmax(scores))  # ties: the earlier member
        counts[pick] += 1
        total += members[pick]
        if scores[pick] > best + 1e-12:
            best, best_counts = scores[pick], counts.copy()
    return best_counts / best_counts.sum()


def average(members: list[np.ndarray], weights) -> np.ndarray:
    return sum(w * m for w, m in zip(weights, members) if w > 0)


def combine(task: dict, fitted: dict, members: list[np.ndarray]) -> np.ndarray:
    """The ensemble's values from its members' (``fitted``: {"weights"} or {"stack"})."""
    if "weights" in fitted:
        return average(members, fitted["weights"])
    return apply_linear(task, fitted["stack"], members)


# -- stacking


def features(task: dict, members: list[np.ndarray]) -> list[np.ndarray]:
    """The stacker's inputs: one [N, F] matrix (one per label for multilabel) of the members' outputs."""
    kind = TASKS.get(task["type"])
    outs = [kind.outputs_of(torch.as_tensor(m, dtype=torch.float64)).numpy() for m in members]
    if task["type"] == "multilabel":
        return [np.stack([o[:, j] for o in outs], axis=1) for j in range(members[0].shape[1])]
    return [np.concatenate(outs, axis=1)]


def fit_linear(task: dict, x: np.ndarray, y: np.ndarray, classes: int, strength: float) -> dict:
    """A regularised linear model (L2, ``strength`` = 1/C or ridge alpha) -> {"coef" [K, F], "intercept" [K]}
    whose softmax (multiclass), sigmoid (multilabel, K=1) or value (regression) is the prediction."""
    from sklearn.linear_model import LogisticRegression, Ridge

    if task["type"] == "regression":
        model = Ridge(alpha=strength).fit(x, y)
        return {"coef": [model.coef_.tolist()], "intercept": [float(model.intercept_)]}
    model = LogisticRegression(C=1.0 / strength, max_iter=2000).fit(x, y)
    coef, intercept = model.coef_, model.intercept_
    if task["type"] == "multilabel":  # one label: its logit
        return {"coef": coef.tolist(), "intercept": intercept.tolist()}
    if len(model.classes_) == 2:  # sklearn keeps one row (the second class's logit): as a softmax pair
        coef, intercept = (
            np.concatenate([-coef / 2, coef / 2]),
            np.array([-intercept[0] / 2, intercept[0] / 2]),
        )
    # a class no fitting row has (a small fold) gets no chance
    full_coef, full_intercept = np.zeros((classes, x.shape[1])), np.full(classes, -30.0)
    seen = model.classes_.astype(int)
    full_coef[seen], full_intercept[seen] = coef, intercept
    return {"coef": full_coef.tolist(), "intercept": full_intercept.tolist()}


def apply_linear(task: dict, params: list[dict], members: list[np.ndarray]) -> np.ndarray:
    out = []
    for x, p in zip(features(task, members), params):
        z = x @ np.asarray(p["coef"]).T + np.asarray(p["intercept"])
        if task["type"] == "regression":
            out.append(z)
        elif task["type"] == "multilabel":
            out.append(1.0 / (1.0 + np.exp(-z)))
        else:
            z = z - z.max(axis=1, keepdims=True)
            out.append(np.exp(z) / np.exp(z).sum(axis=1, keepdims=True))
    return np.concatenate(out, axis=1)


def stack(
    task: dict, members: list[np.ndarray], targets: torch.Tensor, folds: int, strength: float, seed: int
) -> tuple[list[dict], np.ndarray]:
    """(the stacker fitted on every labelled val row, its cross-fitted val values: each row's from the
    stacker fitted on the other ``folds`` - 1 parts)."""
    from sklearn.model_selection import KFold

    kind = TASKS.get(task["type"])
    known = np.asarray(kind.known(targets))
    known = known.all(axis=1) if known.ndim == 2 else known
    y = np.asarray(targets)[known]
    xs = [x[known] for x in features(task, members)]
    rows = np.flatnonzero(known)
    if len(rows) < 2 * folds:
        raise ConfigError(
            f"ensemble.method=stack: {len(rows)} labelled val rows are too few for {folds} folds: "
            f"use ensemble.method=greedy or fewer ensemble.stack_folds."
        )
    classes = len(task["classes"] or [None])

    def fit(part: np.ndarray) -> list[dict]:
        if task["type"] == "multilabel":
            return [single_label(x[part], y[part, j], strength) for j, x in enumerate(xs)]
        return [fit_linear(task, xs[0][part], y[part], classes, strength)]

    oof = np.array(average(members, [1.0 / len(members)] * len(members)), dtype=np.float64)
    for train, held in KFold(folds, shuffle=True, random_state=seed).split(rows):
        params = fit(train)
        oof[rows[held]] = apply_linear(task, params, [m[rows[held]] for m in members])
    return fit(np.arange(len(rows))), oof


def single_label(x: np.ndarray, y: np.ndarray, strength: float) -> dict:
    """One label's logistic regression (a constant where the rows hold one value only)."""
    if len(np.unique(y)) < 2:
        p = float(np.clip(y.mean(), 1e-4, 1 - 1e-4))
        return {"coef": [[0.0] * x.shape[1]], "intercept": [float(np.log(p / (1 - p)))]}
    return fit_linear({"type": "multilabel"}, x, y, 1, strength)
