"""Any number of labels per row: a list cell or a ``separator``-joined string; one sigmoid per
label, binary cross-entropy."""

from __future__ import annotations

import numpy as np

from mmtrain.core.cells import has_lists, labels_of
from mmtrain.core.errors import ConfigError
from mmtrain.tasks import TASKS, TaskType
from mmtrain.tasks.multiclass import class_order, per_class_rows


@TASKS.register
class Multilabel(TaskType):
    """Targets: 0/1 [B, L]; outputs: logits [B, L]."""

    name = "multilabel"
    infer_order = 10
    class_word = "labels"
    main_metric = "f1_macro"

    def claims(self, values, numbers, separator, key, column):
        return has_lists(values) or bool(values.astype(str).str.contains(separator, regex=False).any())

    def missing(self, series):
        """Never: an empty cell is a row with none of the labels."""
        return np.zeros(len(series), dtype=bool)

    def fit_classes(self, series, spec, train):
        classes = class_order(
            {label for v, t in zip(series, train) if t for label in labels_of(v, spec["separator"])}
        )
        if len(classes) < 2:
            raise ConfigError(
                f"data.targets.{spec['task']}: the train split has {len(classes)} label(s) {classes} "
                f"in column '{spec['column']}': multilabel needs at least 2 (one label: type=binary)."
            )
        return classes

    def encode(self, series, spec, classes):
        index = {c: i for i, c in enumerate(classes)}
        matrix = np.zeros((len(series), len(classes)), dtype=np.float32)
        for row, value in enumerate(series):
            matrix[row, [index[label] for label in labels_of(value, spec["separator"]) if label in index]] = 1
        return matrix

    def check(self, series, field, spec, known, train, bad):
        lists = [labels_of(v, spec["separator"]) for v in series]
        seen = (
            known
            if known is not None
            else {label for labels, t in zip(lists, train) if t for label in labels}
        )
        for row, labels in enumerate(lists):
            unseen = [label for label in labels if label not in seen]
            if unseen and (known is not None or not train[row]):
                bad.add(row, field, series.name, f"label(s) {unseen} never seen in the train split")

    def train_weights(self, targets, classes, loss):
        from mmtrain.tasks.losses import positive_weights

        return positive_weights(targets.sum(0), len(targets), loss.pos_weight)

    def loss(self, task, loss):
        from mmtrain.tasks.losses import LabelLoss

        return LabelLoss(task.get("weights"), loss.focal_gamma)

    def metrics(self, classes, **kwargs):
        import torchmetrics as tm

        n = len(classes)
        return tm.MetricCollection(
            {
                "f1_macro": tm.classification.MultilabelF1Score(n, average="macro", **kwargs),
                "f1_micro": tm.classification.MultilabelF1Score(n, average="micro", **kwargs),
                "ap": tm.classification.MultilabelAveragePrecision(n, average="macro", **kwargs),
                "f1": tm.classification.MultilabelF1Score(n, average=None, **kwargs),  # per label: f1/<label>
            }
        )

    def metric_inputs(self, outputs, targets):
        return outputs.sigmoid(), targets.long()

    def fit_calibration(self, outputs, targets, settings):
        """One temperature for all labels, then per label the threshold on the calibrated val
        probabilities that maximises that label's F1 (0.5 where val has no positive)."""
        from mmtrain.tasks.calibration import best_f1_threshold, fit_temperature

        temperature = fit_temperature(outputs, targets, self.nll)
        probs = (outputs / temperature).sigmoid()
        return {
            "temperature": temperature,
            "thresholds": [best_f1_threshold(probs[:, j], targets[:, j]) for j in range(probs.shape[1])],
        }

    @staticmethod
    def nll(logits, targets):
        """Per-row binary cross-entropy, summed over the labels [B]."""
        from torch import nn

        return nn.functional.binary_cross_entropy_with_logits(logits, targets.float(), reduction="none").sum(
            -1
        )

    def calibration_metrics(self, classes):
        import torchmetrics as tm

        return {"ece": tm.classification.BinaryCalibrationError(n_bins=15, norm="l1"), "nll": tm.MeanMetric()}

    def update_calibration(self, metrics, outputs, targets, calibration):
        scaled = outputs / (calibration or {}).get("temperature", 1.0)
        metrics["ece"].update(scaled.sigmoid().flatten(), targets.long().flatten())
        metrics["nll"].update(self.nll(scaled.float(), targets))

    def probabilities(self, outputs, calibration):
        return (outputs / (calibration or {}).get("temperature", 1.0)).sigmoid()

    def decide(self, probs, calibration):
        """0/1 [B, L]: each label at its threshold (0.5 before calibration)."""
        import torch

        return (probs >= torch.tensor((calibration or {}).get("thresholds") or [0.5] * probs.shape[1])).long()

    def predictions(self, task, outputs, classes, calibration):
        probs = self.probabilities(outputs.float(), calibration)
        chosen = self.decide(probs, calibration)
        columns = {
            f"pred_{task}": ["|".join(c for c, on in zip(classes, row) if on) for row in chosen.tolist()]
        }
        columns.update({f"prob_{task}_{c}": probs[:, i].numpy() for i, c in enumerate(classes)})
        return columns

    def outputs_of(self, values):
        return values.clamp(1e-7, 1 - 1e-7).logit()

    def per_class(self, outputs, targets, classes, calibration):
        decided = self.decide(self.probabilities(outputs.float(), calibration), calibration)
        return per_class_rows(classes, decided, targets, multilabel=True)

    def confidences(self, outputs, targets, calibration):
        return self.probabilities(outputs.float(), calibration).flatten(), targets.float().flatten()

    def vote(self, preds, weights):
        share = (weights * (preds > 0).to(preds.dtype)).sum(1).clamp(1e-4, 1 - 1e-4)
        return share.logit()
