"""Task types: what a prediction target is (multiclass, binary, multilabel, regression).

A task type owns everything that differs between kinds of target: how its type is inferred from a
column, how targets are read and checked, its output count, loss, metrics, how decision-level
fusion votes, and how outputs become predictions. Code elsewhere looks the type up by its name
(``TASKS.get(spec["type"])``) and never branches on it. A new task type is one module in this
package that subclasses :class:`TaskType` and registers itself with ``@TASKS.register``.

At run time a task is a plain dict ``{"type", "classes", "weights"}`` (it travels in checkpoints).
"""

from __future__ import annotations

import numpy as np

from mmtrain.core.registry import Registry


class TaskType:
    """The interface; see the subclasses for each type's behaviour.

    Shapes: outputs [B, num_outputs] (logits, or values for regression); targets [B] class indices,
    [B, L] 0/1, or [B] values.
    """

    name: str
    infer_order: int = 100  # inference tries the types in this order; the first that claims a column wins
    stratifies = False  # a seeded split is stratified by the first task type that does
    class_word = "classes"
    main_metric: str  # the metric per-modality contributions and robustness curves report

    # -- reading targets (mmtrain/data/manifest.py, preflight.py)
    def claims(self, values, numbers, separator: str, key: str, column: str) -> bool:
        """Whether a column with these filled ``values`` (and ``numbers``: the values as floats when
        they are mostly numbers, else None) is of this type, when the user did not say."""
        return False

    def fit_classes(self, series, spec: dict, train: np.ndarray) -> list[str] | None:
        """The classes (labels) of this task, from the train rows."""
        return None

    def encode(self, series, spec: dict, classes: list[str] | None) -> np.ndarray:
        """One target per row (class index, 0/1 label row, or value); rows already checked."""
        raise NotImplementedError

    def check(self, series, field: str, spec: dict, known: set | None, train: np.ndarray, bad) -> None:
        """Add bad rows (``bad.add(row, field, column, reason)``): unreadable targets, and classes
        outside ``known`` (the saved classes) or, when that is None, never in a train row. An empty
        cell is not bad: the row has no target for this task (see ``missing``)."""
        raise NotImplementedError

    def missing(self, series) -> np.ndarray:
        """bool per row: the row has no target for this task (an empty cell)."""
        from mmtrain.core.cells import is_empty

        return series.map(is_empty).to_numpy(dtype=bool)

    def known(self, targets):
        """bool per row of encoded ``targets`` (numpy or torch): the row has a target (see ``encode``)."""
        import torch

        return (
            torch.ones(len(targets), dtype=torch.bool, device=targets.device)
            if isinstance(targets, torch.Tensor)
            else np.ones(len(targets), dtype=bool)
        )

    # -- training (mmtrain/model/module.py, tasks/losses.py)
    def num_outputs(self, classes: list[str] | None) -> int:
        return len(classes)

    def train_weights(self, targets: np.ndarray, classes, loss) -> list[float] | None:
        """Class or positive weights for the loss, from the train targets and the loss settings."""
        return None

    def train_priors(self, targets: np.ndarray, classes) -> list[float] | None:
        """Each class's share of the train rows (logit adjustment), or None."""
        return None

    def loss(self, task: dict, loss):
        """A module taking (outputs, targets); ``task`` holds the train-split "weights" and "priors"."""
        raise NotImplementedError

    def metrics(self, classes, **kwargs):
        """A torchmetrics MetricCollection (``kwargs`` go to each metric, e.g. sync_on_compute);
        metrics that give one value per class are flattened to ``<metric>/<class>``."""
        raise NotImplementedError

    def metric_inputs(self, outputs, targets):
        """Outputs and targets as the metrics take them."""
        raise NotImplementedError

    def confusion(self, classes):
        """A confusion-matrix metric (updated with outputs and targets), or None."""
        return None

    # -- calibration, fitted on val after training (evaluation/calibration.py), used by predict
    def fit_calibration(self, outputs, targets, settings: dict) -> dict:
        """Calibration of this task from its val outputs and targets (plain containers): e.g.
        {"temperature": T}. ``settings``: the ``decision`` config (e.g. a binary threshold)."""
        return {}

    def calibration_metrics(self, classes) -> dict | None:
        """{"ece": metric, "nll": metric}, updated by :meth:`update_calibration`; None if the type
        has no probabilities."""
        return None

    def update_calibration(self, metrics: dict, outputs, targets, calibration: dict | None) -> None:
        raise NotImplementedError

    # -- predictions (mmtrain/predict.py)
    def probabilities(self, outputs, calibration: dict | None):
        """Calibrated probabilities [B, K] (None for a type without them)."""
        return None

    def predictions(self, task: str, outputs, classes, calibration: dict | None) -> dict:
        """Output columns for one batch: ``pred_<task>`` and, for classification,
        ``prob_<task>_<class>`` per class; values are numpy arrays or lists."""
        raise NotImplementedError

    # -- ensembles (mmtrain/ensemble/): members' saved predictions, combined
    def value_columns(self, task: str, classes) -> list[str]:
        """The columns of ``predictions`` an ensemble averages (probabilities per class, or values)."""
        return [f"prob_{task}_{c}" for c in classes]

    def outputs_of(self, values):
        """Outputs (as the network gives them) whose probabilities are ``values`` [N, K] (a torch
        tensor): what metrics, calibration and ``predictions`` take."""
        raise NotImplementedError

    # -- the run report (mmtrain/evaluation/analysis.py)
    def per_class(self, outputs, targets, classes, calibration: dict | None) -> list[dict] | None:
        """Rows {class, precision, recall, f1, support} of the predictions predict would make."""
        return None

    def confidences(self, outputs, targets, calibration: dict | None):
        """(confidence [N'], correct [N'] 0/1) for a reliability diagram; None without probabilities."""
        return None

    # -- decision-level fusion (mmtrain/fusion/base.py)
    def vote(self, preds, weights):
        """preds [B, G, K] from G members, weights [B, G, 1] (summing to 1 over present members) ->
        [B, K] outputs of the members' majority vote."""
        return (weights * preds).sum(1)


TASKS: Registry[TaskType] = Registry(__name__, "task type")


def labelled(task_type: str, outputs, targets):
    """(outputs, targets) of the rows that have a target for a task of this type (multi-task data
    may lack one task's target in some rows)."""
    keep = TASKS.get(task_type).known(targets)
    return (outputs, targets) if bool(keep.all()) else (outputs[keep], targets[keep])
