"""One real value per row: a linear output, MSE or Huber loss."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mmtrain.cells import is_empty
from mmtrain.tasks import TASKS, TaskType


@TASKS.register
class Regression(TaskType):
    """Targets: float [B]; outputs: [B, 1]."""

    name = "regression"
    infer_order = 30
    has_classes = False
    main_metric = "r2"

    def claims(self, values, numbers, separator, key, column):
        return numbers is not None and not np.allclose(numbers, np.round(numbers))  # a stray word: a bad row

    def encode(self, series, spec, classes):
        return pd.to_numeric(series).to_numpy(np.float32)

    def check(self, series, field, spec, known, train, bad):
        numbers = pd.to_numeric(series, errors="coerce").to_numpy(np.float64)
        for row in np.flatnonzero(~np.isfinite(numbers)):
            value = series.iloc[row]
            bad.add(int(row), field, series.name,
                    "no target value" if is_empty(value) else f"not a finite number: {value!r}")

    def num_outputs(self, classes):
        return 1

    def loss(self, task, loss):
        from mmtrain.losses import regression_loss

        return regression_loss(loss.regression, loss.huber_delta)

    def metrics(self, classes, **kwargs):
        import torchmetrics as tm

        return tm.MetricCollection({"mae": tm.MeanAbsoluteError(**kwargs),
                                    "rmse": tm.MeanSquaredError(squared=False, **kwargs), "r2": tm.R2Score(**kwargs)})

    def metric_inputs(self, outputs, targets):
        return outputs.squeeze(-1), targets.to(outputs.dtype)

    def predictions(self, task, outputs, classes, calibration):
        return {f"pred_{task}": outputs[:, 0].float().numpy()}
