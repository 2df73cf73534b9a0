"""Preprocessing fitted on the train split only, as plain containers (they travel in the
checkpoint's hyperparameters, so prediction repeats exactly what training did).

Tabular: numeric columns standardised with the train mean/std, a missing value imputed with the
mean (0 after standardising) and flagged; categorical columns indexed by the train vocabulary,
index 0 for a value never seen in train or missing. Sequence: each channel standardised.
"""

from __future__ import annotations

import numpy as np
import torch


def fit_tabular(rows: list[tuple], numeric: list[str], categorical: list[str]) -> dict:
    """rows: train rows, each (numeric values as floats with NaN for missing, then category strings
    or None)."""
    values = np.array([r[: len(numeric)] for r in rows], dtype=np.float64).reshape(len(rows), len(numeric))
    with np.errstate(all="ignore"):
        mean = np.nan_to_num(np.nanmean(values, axis=0)) if len(rows) else np.zeros(len(numeric))
        std = np.nan_to_num(np.nanstd(values, axis=0)) if len(rows) else np.ones(len(numeric))
    vocab = [sorted({r[len(numeric) + j] for r in rows} - {None}) for j in range(len(categorical))]
    return {"numeric": list(numeric), "mean": mean.tolist(), "std": np.where(std > 0, std, 1.0).tolist(),
            "categorical": list(categorical), "vocab": vocab}


def apply_tabular(pre: dict, rows: list[tuple]) -> list[torch.Tensor]:
    """-> per row [1, 2 * n_numeric + n_categorical]: standardised values, missing flags, category
    indices (as floats; exact for any realistic vocabulary)."""
    n = len(pre["numeric"])
    index = [{v: i + 1 for i, v in enumerate(vocab)} for vocab in pre["vocab"]]
    values = np.array([r[:n] for r in rows], dtype=np.float64).reshape(len(rows), n)
    missing = np.isnan(values)
    scaled = np.where(missing, 0.0, (values - np.array(pre["mean"])) / np.array(pre["std"]))
    codes = np.array([[index[j].get(r[n + j], 0) for j in range(len(index))] for r in rows],
                     dtype=np.float64).reshape(len(rows), len(index))
    features = torch.from_numpy(np.concatenate([scaled, missing, codes], axis=1).astype(np.float32))
    return list(features.unsqueeze(1))


def fit_sequence(series: list[np.ndarray]) -> dict:
    """series: train time series [T, C]."""
    if not series:
        return {"mean": [0.0], "std": [1.0]}
    stacked = np.concatenate(series, axis=0)
    std = stacked.std(axis=0)
    return {"mean": stacked.mean(axis=0).tolist(), "std": np.where(std > 0, std, 1.0).tolist()}


def apply_sequence(pre: dict, series: list[np.ndarray]) -> list[torch.Tensor]:
    mean, std = np.array(pre["mean"], dtype=np.float32), np.array(pre["std"], dtype=np.float32)
    return [torch.from_numpy((np.asarray(s, dtype=np.float32) - mean) / std) for s in series]
