"""Any number of labels per row: a list cell or a ``separator``-joined string; one sigmoid per
label, binary cross-entropy."""

from __future__ import annotations

import numpy as np

from mmtrain.cells import labels_of
from mmtrain.errors import ConfigError
from mmtrain.tasks import TASKS, TaskType
from mmtrain.tasks.multiclass import class_order


@TASKS.register
class Multilabel(TaskType):
    """Targets: 0/1 [B, L]; outputs: logits [B, L]."""

    name = "multilabel"
    infer_order = 10
    class_word = "labels"
    main_metric = "f1_macro"

    def claims(self, values, numbers, separator, key, column):
        return bool(values.map(lambda v: isinstance(v, (list, np.ndarray))).any()
                    or values.map(lambda v: isinstance(v, str) and separator in v).any())

    def fit_classes(self, series, spec, train):
        classes = class_order({label for v, t in zip(series, train) if t for label in labels_of(v, spec["separator"])})
        if len(classes) < 2:
            raise ConfigError(f"data.targets.{spec['task']}: the train split has {len(classes)} label(s) {classes} "
                              f"in column '{spec['column']}': multilabel needs at least 2 (one label: type=binary).")
        return classes

    def encode(self, series, spec, classes):
        index = {c: i for i, c in enumerate(classes)}
        matrix = np.zeros((len(series), len(classes)), dtype=np.float32)
        for row, value in enumerate(series):
            matrix[row, [index[label] for label in labels_of(value, spec["separator"]) if label in index]] = 1
        return matrix

    def check(self, series, field, spec, known, train, bad):
        lists = [labels_of(v, spec["separator"]) for v in series]
        seen = known if known is not None else {label for labels, t in zip(lists, train) if t for label in labels}
        for row, labels in enumerate(lists):
            unseen = [label for label in labels if label not in seen]
            if unseen and (known is not None or not train[row]):
                bad.add(row, field, series.name, f"label(s) {unseen} never seen in the train split")

    def train_weights(self, targets, classes, loss):
        from mmtrain.losses import positive_weights

        return positive_weights(targets.sum(0), len(targets), loss.pos_weight)

    def loss(self, weights, loss):
        import torch
        from torch import nn

        return nn.BCEWithLogitsLoss(pos_weight=None if weights is None else torch.tensor(weights, dtype=torch.float32))

    def metrics(self, classes):
        import torchmetrics as tm

        n = len(classes)
        return tm.MetricCollection({
            "f1_macro": tm.classification.MultilabelF1Score(n, average="macro"),
            "f1_micro": tm.classification.MultilabelF1Score(n, average="micro"),
            "ap": tm.classification.MultilabelAveragePrecision(n, average="macro"),
            "f1": tm.classification.MultilabelF1Score(n, average=None),  # per label: f1/<label>
        })

    def metric_inputs(self, outputs, targets):
        return outputs.sigmoid(), targets.long()

    def vote(self, preds, weights):
        share = (weights * (preds > 0).to(preds.dtype)).sum(1).clamp(1e-4, 1 - 1e-4)
        return share.logit()
