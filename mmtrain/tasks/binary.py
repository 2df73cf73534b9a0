"""Two classes: a multiclass task with exactly two (softmax over 2 logits), inferred for a column
with two distinct values."""

from __future__ import annotations

from mmtrain.core.errors import ConfigError
from mmtrain.tasks import TASKS
from mmtrain.tasks.multiclass import Multiclass


@TASKS.register
class Binary(Multiclass):
    name = "binary"
    infer_order = 20

    def claims(self, values, numbers, separator, key, column):
        return values.nunique() == 2

    def fit_classes(self, series, spec, train):
        classes = super().fit_classes(series, spec, train)
        if len(classes) != 2:
            raise ConfigError(
                f"data.targets.{spec['task']}.type=binary, but the train split has {len(classes)} "
                f"classes {classes[:6]} in column '{spec['column']}': use type=multiclass."
            )
        return classes

    def fit_calibration(self, outputs, targets, settings):
        """Also ``threshold`` (``decision.threshold``): the probability of the second class above
        which it is predicted (None: the more probable class)."""
        threshold = (settings or {}).get("threshold")
        if threshold is not None and not 0 < threshold < 1:
            raise ConfigError(
                f"decision.threshold={threshold} must be in (0, 1) (e.g. 0.3 to favour the second "
                f"class), or null for the more probable class."
            )
        return {**super().fit_calibration(outputs, targets, settings), "threshold": threshold}

    def decide(self, probs, calibration):
        threshold = (calibration or {}).get("threshold")
        return probs.argmax(-1) if threshold is None else (probs[:, 1] >= threshold).long()
