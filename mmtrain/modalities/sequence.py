"""Numeric time series [T, C]: a JSON list per cell, a list cell (Parquet/JSONL), or a .npy/.csv
file. Each channel is standardised with the train split's mean and std."""

from __future__ import annotations

import numpy as np
import torch

from mmtrain.core.cells import has_lists, is_empty, is_listlike, read_sequence, value_kind
from mmtrain.modalities import MODALITIES, ColumnModality


@MODALITIES.register
class Sequence(ColumnModality):
    name = "sequence"
    infer_order = 20

    def claims(self, series, values):
        if not len(values):
            return False
        if has_lists(values) and values.map(is_listlike).all():  # of numbers (or rows of them)
            first = np.asarray(values.iloc[0], dtype=object).ravel()
            return bool(len(first)) and isinstance(first[0], (int, float, np.number, list, np.ndarray))
        if value_kind(values) != "string":
            return False
        text = values.str.lower()
        return bool((text.str.endswith((".npy", ".csv")) | text.str.lstrip().str.startswith("[")).all())

    def read_cell(self, value, root):
        return read_sequence(value, root)

    def check(self, frame, name, spec, root, bad):
        series, channels = frame[spec["column"]], None
        for row, value in enumerate(series):
            if is_empty(value):  # missing in this row
                continue
            try:
                array = read_sequence(value, root)
            except Exception as err:
                bad.add(row, name, series.name, f"not a time series ({type(err).__name__}: {str(err)[:80]})")
                continue
            if len(array) == 0:
                bad.add(row, name, series.name, "empty time series")
            elif not np.isfinite(array).all():
                bad.add(row, name, series.name, "time series holds NaN/inf")
            elif channels is not None and array.shape[1] != channels:
                bad.add(
                    row, name, series.name, f"{array.shape[1]} channels where earlier rows have {channels}"
                )
            else:
                channels = array.shape[1]

    def fit(self, spec, values):
        """values: train time series [T, C] -> each channel's mean and std."""
        if not values:
            return {"mean": [0.0], "std": [1.0]}
        stacked = np.concatenate(values, axis=0)
        std = stacked.std(axis=0)
        return {"mean": stacked.mean(axis=0).tolist(), "std": np.where(std > 0, std, 1.0).tolist()}


def apply(pre: dict, series: list[np.ndarray]) -> list[torch.Tensor]:
    """Time series [T, C] -> standardised float32 tensors with the fitted ``pre``."""
    mean, std = np.array(pre["mean"], dtype=np.float32), np.array(pre["std"], dtype=np.float32)
    return [torch.from_numpy((np.asarray(s, dtype=np.float32) - mean) / std) for s in series]
