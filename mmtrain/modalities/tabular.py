"""Numbers and categories from one or more columns (``numeric: [...]``, ``categorical: [...]``, or
``columns: [...]`` sorted into the two by their values).

Preprocessing, fitted on the train split: numeric columns standardised with the train mean/std, a
missing value imputed with the mean (0 after standardising) and flagged; categorical columns
indexed by the train vocabulary, index 0 for a value never seen in train or missing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from mmtrain.cells import filled, is_empty, label_name, mostly_numbers, require_column
from mmtrain.errors import ConfigError
from mmtrain.modalities import MODALITIES, ModalityType


def is_categorical(series: pd.Series) -> bool:
    """A string column with few distinct values is a category, not free text."""
    values = filled(series)
    if pd.api.types.is_numeric_dtype(series) or mostly_numbers(values) or \
            values.map(lambda v: isinstance(v, (list, np.ndarray))).any():
        return False
    return values.nunique() <= max(2, min(20, len(values) // 4))


def is_numeric(series: pd.Series, values: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series) or mostly_numbers(values))


@MODALITIES.register
class Tabular(ModalityType):
    name = "tabular"
    infer_order = 10  # numbers and few-valued strings, before anything else
    settings = ("column", "columns", "numeric", "categorical")
    multi_column = True

    def claims(self, series, values):
        return is_numeric(series, values) or is_categorical(series)

    def resolve(self, name, spec, frame, reserved):
        key = f"data.modalities.{name}"
        numeric, categorical = list(spec.get("numeric") or []), list(spec.get("categorical") or [])
        columns = list(spec.get("columns") or []) + ([spec["column"]] if spec.get("column") else [])
        for column in columns:
            require_column(frame, column, f"{key}.columns")
            (categorical if is_categorical(frame[column]) else numeric).append(column)
        for column in numeric:
            require_column(frame, column, f"{key}.numeric")
        for column in categorical:
            require_column(frame, column, f"{key}.categorical")
        used_as_target = sorted(set(numeric + categorical) & reserved)
        if used_as_target:
            raise ConfigError(f"{key}: column(s) {used_as_target} are a target, the split or the id: they "
                              f"cannot also be inputs.")
        if not numeric + categorical:
            raise ConfigError(f"{key}: a tabular modality needs columns: {key}.numeric=[...] and/or "
                              f"{key}.categorical=[...].")
        return {"type": self.name, "numeric": numeric, "categorical": categorical}

    def columns(self, spec):
        return spec["numeric"] + spec["categorical"]

    def describe(self, spec):
        return "; ".join(f"{kind} {', '.join(spec[kind])}" for kind in ("numeric", "categorical") if spec[kind])

    def read(self, frame, spec, root):
        """Per row: the numeric values as floats (NaN where missing), then the category names (None)."""
        numeric = [pd.to_numeric(frame[c], errors="coerce").to_numpy(np.float64) for c in spec["numeric"]]
        categorical = [frame[c].map(lambda v: None if is_empty(v) else label_name(v)).to_list()
                       for c in spec["categorical"]]
        return [tuple(float(col[i]) for col in numeric) + tuple(col[i] for col in categorical)
                for i in range(len(frame))]

    def check(self, frame, name, spec, root, bad):
        """Text in a numeric column or an infinite number is bad; an empty cell is missing (imputed)."""
        for column in spec["numeric"]:
            raw = frame[column]
            numbers = pd.to_numeric(raw, errors="coerce")
            for row in np.flatnonzero(numbers.isna().to_numpy() & ~raw.map(is_empty).to_numpy()):
                bad.add(int(row), name, column, f"not a number: {raw.iloc[row]!r}")
            for row in np.flatnonzero(np.isinf(numbers.to_numpy(np.float64))):
                bad.add(int(row), name, column, "infinite value")

    def fit(self, spec, values):
        """values: train rows as made by ``read``."""
        numeric, categorical = spec["numeric"], spec["categorical"]
        table = np.array([r[: len(numeric)] for r in values], dtype=np.float64).reshape(len(values), len(numeric))
        with np.errstate(all="ignore"):
            mean = np.nan_to_num(np.nanmean(table, axis=0)) if len(values) else np.zeros(len(numeric))
            std = np.nan_to_num(np.nanstd(table, axis=0)) if len(values) else np.ones(len(numeric))
        vocab = [sorted({r[len(numeric) + j] for r in values} - {None}) for j in range(len(categorical))]
        return {"numeric": list(numeric), "mean": mean.tolist(), "std": np.where(std > 0, std, 1.0).tolist(),
                "categorical": list(categorical), "vocab": vocab}

    def corrupt(self, x, mask, level, generator, preprocessing):
        """Gaussian noise on the standardised numeric values only (not on missing flags or
        category codes): ``level`` times their unit std."""
        n = len(preprocessing["numeric"])
        noise = torch.randn(x[..., :n].shape, generator=generator, device="cpu").to(x.device, x.dtype)
        x = x.clone()
        x[..., :n] += level * noise
        return x, mask


def apply(pre: dict, rows: list[tuple]) -> list[torch.Tensor]:
    """Rows as made by ``Tabular.read`` -> per row [1, 2 * n_numeric + n_categorical]: standardised
    values, missing flags, category indices (as floats; exact for any realistic vocabulary)."""
    n = len(pre["numeric"])
    index = [{v: i + 1 for i, v in enumerate(vocab)} for vocab in pre["vocab"]]
    values = np.array([r[:n] for r in rows], dtype=np.float64).reshape(len(rows), n)
    missing = np.isnan(values)
    scaled = np.where(missing, 0.0, (values - np.array(pre["mean"])) / np.array(pre["std"]))
    codes = np.array([[index[j].get(r[n + j], 0) for j in range(len(index))] for r in rows],
                     dtype=np.float64).reshape(len(rows), len(index))
    features = torch.from_numpy(np.concatenate([scaled, missing, codes], axis=1).astype(np.float32))
    return list(features.unsqueeze(1))
