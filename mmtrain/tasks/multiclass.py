"""One class per row out of several: softmax over C logits, cross-entropy."""

from __future__ import annotations

import numpy as np

from mmtrain.core.cells import is_empty, label_name
from mmtrain.core.errors import ConfigError
from mmtrain.tasks import TASKS, TaskType

# A column of whole numbers with more distinct values than this (or than half its rows) is not
# taken for classes without being told.
MAX_INFERRED_CLASSES = 50


def class_order(names) -> list[str]:
    """Numeric class names in numeric order, others alphabetically."""
    try:
        return sorted(names, key=float)
    except ValueError:
        return sorted(names)


@TASKS.register
class Multiclass(TaskType):
    """Targets: class index [B]; outputs: logits [B, C]."""

    name = "multiclass"
    infer_order = 90
    stratifies = True
    main_metric = "f1_macro"

    def claims(self, values, numbers, separator, key, column):
        if numbers is not None and values.nunique() > min(MAX_INFERRED_CLASSES, len(values) // 2):
            raise ConfigError(
                f"{key}: column '{column}' holds {values.nunique()} distinct whole numbers; say "
                f"whether they are classes or values: {key}.type=multiclass or =regression."
            )
        return True

    def fit_classes(self, series, spec, train):
        names = {label_name(v) for v, t in zip(series, train) if t and not is_empty(v)}
        classes = class_order(names)
        if len(classes) < 2:
            raise ConfigError(
                f"data.targets.{spec['task']}: the train split has {len(classes)} class(es) {classes} "
                f"in column '{spec['column']}': a classifier needs at least 2."
            )
        return classes

    def encode(self, series, spec, classes):
        """Class index per row; -1 where the row has no target (left out of this task's loss and metrics)."""
        index = {c: i for i, c in enumerate(classes)}
        return np.array([-1 if is_empty(v) else index[label_name(v)] for v in series], dtype=np.int64)

    def known(self, targets):
        return targets >= 0

    def check(self, series, field, spec, known, train, bad):
        names = [None if is_empty(v) else label_name(v) for v in series]
        seen = known if known is not None else {n for n, t in zip(names, train) if t and n is not None}
        for row, label in enumerate(names):
            if label is not None and label not in seen:
                bad.add(row, field, series.name, f"class {label!r} never seen in the train split")

    def train_weights(self, targets, classes, loss):
        from mmtrain.tasks.losses import class_weights

        return class_weights(np.bincount(targets, minlength=len(classes)), loss.class_weights, loss.beta)

    def train_priors(self, targets, classes):
        counts = np.bincount(targets, minlength=len(classes)).astype(np.float64)
        return (counts / max(1.0, counts.sum())).tolist()

    def loss(self, task, loss):
        from mmtrain.tasks.losses import ClassLoss

        return ClassLoss(
            task.get("weights"),
            loss.label_smoothing,
            loss.focal_gamma,
            loss.logit_adjust_tau,
            task.get("priors"),
        )

    def metrics(self, classes, **kwargs):
        import torchmetrics as tm

        c = len(classes)
        return tm.MetricCollection(
            {
                "acc": tm.classification.MulticlassAccuracy(c, average="micro", **kwargs),
                "f1_macro": tm.classification.MulticlassF1Score(c, average="macro", **kwargs),
                "balanced_acc": tm.classification.MulticlassRecall(c, average="macro", **kwargs),
                "auroc": tm.classification.MulticlassAUROC(c, average="macro", **kwargs),
                "recall": tm.classification.MulticlassRecall(c, average=None, **kwargs),
            }
        )

    def metric_inputs(self, outputs, targets):
        return outputs.softmax(-1), targets

    def confusion(self, classes):
        import torchmetrics as tm

        return tm.classification.MulticlassConfusionMatrix(len(classes))

    def fit_calibration(self, outputs, targets, settings):
        from mmtrain.tasks.calibration import fit_temperature

        return {"temperature": fit_temperature(outputs, targets, self.nll)}

    @staticmethod
    def nll(logits, targets):
        """Per-row negative log-likelihood of the true class [B]."""
        from torch import nn

        return nn.functional.cross_entropy(logits, targets, reduction="none")

    def calibration_metrics(self, classes):
        import torchmetrics as tm

        return {
            "ece": tm.classification.MulticlassCalibrationError(len(classes), n_bins=15, norm="l1"),
            "nll": tm.MeanMetric(),
        }

    def update_calibration(self, metrics, outputs, targets, calibration):
        scaled = outputs / (calibration or {}).get("temperature", 1.0)
        metrics["ece"].update(scaled.softmax(-1), targets)
        metrics["nll"].update(self.nll(scaled.float(), targets))

    def probabilities(self, outputs, calibration):
        return (outputs / (calibration or {}).get("temperature", 1.0)).softmax(-1)

    def decide(self, probs, calibration):
        """Class index per row [B]: the most probable class."""
        return probs.argmax(-1)

    def predictions(self, task, outputs, classes, calibration):
        probs = self.probabilities(outputs.float(), calibration)
        columns = {f"pred_{task}": [classes[i] for i in self.decide(probs, calibration).tolist()]}
        columns.update({f"prob_{task}_{c}": probs[:, i].numpy() for i, c in enumerate(classes)})
        return columns

    def outputs_of(self, values):
        return values.clamp(min=1e-7).log()

    def per_class(self, outputs, targets, classes, calibration):
        decided = self.decide(self.probabilities(outputs.float(), calibration), calibration)
        return per_class_rows(classes, decided, targets, multilabel=False)

    def confidences(self, outputs, targets, calibration):
        probs = self.probabilities(outputs.float(), calibration)
        confidence, chosen = probs.max(-1)
        return confidence, (chosen == targets).float()

    def vote(self, preds, weights):
        from torch import nn

        votes = nn.functional.one_hot(preds.argmax(-1), preds.shape[-1]).to(preds.dtype)
        # Mean probability breaks ties; it is far smaller than one vote.
        share = (weights * (votes + 1e-3 * preds.softmax(-1))).sum(1)
        return share.clamp(min=1e-6).log()


def per_class_rows(classes, predicted, targets, multilabel: bool) -> list[dict]:
    """Precision, recall, F1 and support per class (or label) of hard predictions."""
    import torchmetrics.functional.classification as F

    n = len(classes)
    kw = dict(num_labels=n, average=None) if multilabel else dict(num_classes=n, average=None)
    prefix = "multilabel" if multilabel else "multiclass"
    scores = {
        name: getattr(F, f"{prefix}_{name}")(predicted, targets.long(), **kw).tolist()
        for name in ("precision", "recall", "f1_score")
    }
    support = targets.sum(0).tolist() if multilabel else [int((targets == i).sum()) for i in range(n)]
    return [
        {
            "class": c,
            "precision": scores["precision"][i],
            "recall": scores["recall"][i],
            "f1": scores["f1_score"][i],
            "support": int(support[i]),
        }
        for i, c in enumerate(classes)
    ]
