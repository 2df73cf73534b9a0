"""One real value per row: a linear output, MSE or Huber loss."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mmtrain.core.cells import is_empty
from mmtrain.tasks import TASKS, TaskType


@TASKS.register
class Regression(TaskType):
    """Targets: float [B]; outputs: [B, 1]."""

    name = "regression"
    infer_order = 30
    main_metric = "r2"

    def claims(self, values, numbers, separator, key, column):
        return numbers is not None and not np.allclose(numbers, np.round(numbers))  # a stray word: a bad row

    def encode(self, series, spec, classes):
        """The value per row; NaN where the row has no target (left out of this task's loss and metrics)."""
        return pd.to_numeric(series, errors="coerce").to_numpy(np.float32, na_value=np.nan)

    def known(self, targets):
        import torch

        return torch.isfinite(targets) if isinstance(targets, torch.Tensor) else np.isfinite(targets)

    def check(self, series, field, spec, known, train, bad):
        numbers = pd.to_numeric(series, errors="coerce").to_numpy(np.float64, na_value=np.nan)
        for row in np.flatnonzero(~np.isfinite(numbers)):
            value = series.iloc[row]
            if not is_empty(value):
                bad.add(int(row), field, series.name, f"not a finite number: {value!r}")

    def num_outputs(self, classes):
        return 1

    def loss(self, task, loss):
        from mmtrain.tasks.losses import regression_loss

        return regression_loss(loss.regression, loss.huber_delta)

    def metrics(self, classes, **kwargs):
        import torchmetrics as tm

        return tm.MetricCollection(
            {
                "mae": tm.MeanAbsoluteError(**kwargs),
                "rmse": tm.MeanSquaredError(squared=False, **kwargs),
                "r2": tm.R2Score(**kwargs),
            }
        )

    def metric_inputs(self, outputs, targets):
        return outputs.squeeze(-1), targets.to(outputs.dtype)

    def value_columns(self, task, classes):
        return [f"pred_{task}"]

    def outputs_of(self, values):
        return values

    def predictions(self, task, outputs, classes, calibration):
        return {f"pred_{task}": outputs[:, 0].float().numpy()}
