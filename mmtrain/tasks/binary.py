"""Two classes: a multiclass task with exactly two (softmax over 2 logits), inferred for a column
with two distinct values."""

from __future__ import annotations

from mmtrain.errors import ConfigError
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
            raise ConfigError(f"data.targets.{spec['task']}.type=binary, but the train split has {len(classes)} "
                              f"classes {classes[:6]} in column '{spec['column']}': use type=multiclass.")
        return classes
