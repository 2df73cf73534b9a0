"""Numbers, categories and dates from one or more columns (``numeric: [...]``, ``categorical: [...]``,
``dates: [...]``, or ``columns: [...]`` sorted into the three by their values).

Preprocessing, fitted on the train split: numeric columns standardised with the train mean/std, a
missing value imputed with the mean (0 after standardising) and flagged; a date column read as three
numbers (year, day of year, weekday), treated like numeric ones; categorical columns (booleans in any
spelling included) indexed by the train vocabulary, index 0 for a value never seen in train, rare
(see ``vocabulary``) or missing.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter

import numpy as np
import pandas as pd
import torch

from mmtrain.core.cells import (
    filled,
    has_lists,
    id_like,
    is_empty,
    label_name,
    looks_like_dates,
    looks_like_text,
    mostly_numbers,
    require_column,
    value_kind,
)
from mmtrain.core.errors import ConfigError
from mmtrain.modalities import MODALITIES, ModalityType

log = logging.getLogger(__name__)
KINDS = ("numeric", "categorical", "dates")
DATE_PARTS = ("year", "day_of_year", "weekday")
MAX_CATEGORIES = 1000  # per column, the most frequent train values; the rest share index 0
RARE_FROM = 50  # a column with more distinct train values than this keeps only values seen twice or more
FEW_VALUES = 20  # a mostly numeric column with a word in it and at most this many values is a category


def column_kind(series: pd.Series, values: pd.Series | None = None) -> str:
    """numeric, categorical or dates, from a column's dtype and values: booleans in any spelling
    (True/False, yes/no, 0/1) are categories; numbers are numeric (a stray word in them is a bad row),
    unless a word shows up among a few distinct values; text that parses as dates is dates; any other
    string is a category."""
    values = filled(series) if values is None else values
    if pd.api.types.is_datetime64_any_dtype(series):
        return "dates"
    if pd.api.types.is_bool_dtype(series) or value_kind(values) == "boolean":
        return "categorical"
    if pd.api.types.is_numeric_dtype(series) or mostly_numbers(values):
        numbers = pd.to_numeric(values, errors="coerce")
        if numbers.isna().any() and values.nunique() <= FEW_VALUES:
            return "categorical"  # a few numbers and a word (cylinders 4, 6, 8, "rotary") are categories
        return (
            "categorical" if numbers.notna().any() and set(numbers.dropna().unique()) <= {0, 1} else "numeric"
        )
    return "dates" if looks_like_dates(values) else "categorical"


def read_dates(series: pd.Series) -> pd.Series:
    """Each cell as a timestamp (NaT where missing or not a date); time zones to UTC."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if pd.api.types.is_datetime64_any_dtype(series):
            stamps = series
        else:
            stamps = pd.to_datetime(
                series.map(lambda v: None if is_empty(v) else str(v).strip()),
                errors="coerce",
                format="mixed",
                utc=True,
            )
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    return stamps


def date_numbers(series: pd.Series) -> list[np.ndarray]:
    """A date column -> its year, day of year and weekday as floats (NaN where missing)."""
    stamps = read_dates(series)
    return [
        getattr(stamps.dt, part).to_numpy(np.float64, na_value=np.nan)
        for part in ("year", "dayofyear", "weekday")
    ]


def numbers_of(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").to_numpy(np.float64, na_value=np.nan)


@MODALITIES.register
class Tabular(ModalityType):
    name = "tabular"
    infer_order = 50  # after the media and sequence types, whose paths and lists are strings too
    settings = ("column", "columns", *KINDS)
    multi_column = True

    def claims(self, series, values):
        if has_lists(values) or looks_like_text(values):
            return False
        return not id_like(series, values)

    def resolve(self, name, spec, frame, reserved):
        key = f"data.modalities.{name}"
        kinds = {kind: list(spec.get(kind) or []) for kind in KINDS}
        for column in list(spec.get("columns") or []) + ([spec["column"]] if spec.get("column") else []):
            require_column(frame, column, f"{key}.columns")
            kinds[column_kind(frame[column])].append(column)
        for kind, columns in kinds.items():
            for column in columns:
                require_column(frame, column, f"{key}.{kind}")
        listed = [c for columns in kinds.values() for c in columns]
        used_as_target = sorted(set(listed) & reserved)
        if used_as_target:
            raise ConfigError(
                f"{key}: column(s) {used_as_target} are a target, the split or the id: they "
                f"cannot also be inputs."
            )
        if not listed:
            raise ConfigError(
                f"{key}: a tabular modality needs columns: {key}.numeric=[...], "
                f"{key}.categorical=[...] and/or {key}.dates=[...]."
            )
        return {"type": self.name, **kinds}

    def columns(self, spec):
        return [c for kind in KINDS for c in spec.get(kind) or []]

    def describe(self, spec):
        return "; ".join(f"{kind} {', '.join(spec[kind])}" for kind in KINDS if spec.get(kind))

    def column_kinds(self, spec):
        return {c: f"{self.name}, {kind}" for kind in KINDS for c in spec.get(kind) or []}

    def read(self, frame, spec, root):
        """Per row: the numbers as floats (NaN where missing; each date column as three), then the
        category names (None where missing)."""
        numbers = [numbers_of(frame[c]) for c in spec["numeric"]]
        for column in spec.get("dates") or []:
            numbers += date_numbers(frame[column])
        categories = [[None if is_empty(v) else label_name(v) for v in frame[c]] for c in spec["categorical"]]
        return [
            tuple(float(col[i]) for col in numbers) + tuple(col[i] for col in categories)
            for i in range(len(frame))
        ]

    def check(self, frame, name, spec, root, bad):
        """Text in a numeric column, an infinite number or a date that does not parse is bad; an empty
        cell is missing (imputed)."""
        for column in spec["numeric"]:
            raw = frame[column]
            numbers = pd.to_numeric(raw, errors="coerce")
            for row in np.flatnonzero(numbers.isna().to_numpy() & ~raw.map(is_empty).to_numpy()):
                bad.add(int(row), name, column, f"not a number: {raw.iloc[row]!r}")
            for row in np.flatnonzero(np.isinf(numbers.to_numpy(np.float64, na_value=np.nan))):
                bad.add(int(row), name, column, "infinite value")
        for column in spec.get("dates") or []:
            raw = frame[column]
            for row in np.flatnonzero(read_dates(raw).isna().to_numpy() & ~raw.map(is_empty).to_numpy()):
                bad.add(int(row), name, column, f"not a date: {raw.iloc[row]!r}")

    def fit(self, spec, values):
        """values: train rows as made by ``read``."""
        names = list(spec["numeric"]) + [
            f"{c}:{part}" for c in spec.get("dates") or [] for part in DATE_PARTS
        ]
        n, categorical = len(names), spec["categorical"]
        table = np.array([r[:n] for r in values], dtype=np.float64).reshape(len(values), n)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a column with no train value: mean 0, std 1
            mean = np.nan_to_num(np.nanmean(table, axis=0)) if len(values) else np.zeros(n)
            std = np.nan_to_num(np.nanstd(table, axis=0)) if len(values) else np.ones(n)
        vocab = [
            vocabulary(column, Counter(r[n + j] for r in values if r[n + j] is not None))
            for j, column in enumerate(categorical)
        ]
        return {
            "numeric": names,
            "mean": mean.tolist(),
            "std": np.where(std > 0, std, 1.0).tolist(),
            "categorical": list(categorical),
            "vocab": vocab,
            "dates": list(spec.get("dates") or []),
        }

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
    codes = np.array(
        [[index[j].get(r[n + j], 0) for j in range(len(index))] for r in rows], dtype=np.float64
    ).reshape(len(rows), len(index))
    features = torch.from_numpy(np.concatenate([scaled, missing, codes], axis=1).astype(np.float32))
    return list(features.unsqueeze(1))


def vocabulary(column: str, counts: Counter) -> list[str]:
    """The categories a column's embedding learns, from their train counts: all of them for a column
    of up to RARE_FROM values; otherwise those seen at least twice, at most MAX_CATEGORIES (the most
    frequent), so that a near-unique column (names, codes) cannot be memorised row by row."""
    if len(counts) <= RARE_FROM:
        return sorted(counts)
    kept = sorted(v for v, c in counts.most_common(MAX_CATEGORIES) if c >= 2)
    log.info(
        "tabular column %s: %d distinct train values; the %d seen twice or more (at most %d) keep their "
        "own embedding, the other %d share the 'unknown' one.",
        column,
        len(counts),
        len(kept),
        MAX_CATEGORIES,
        len(counts) - len(kept),
    )
    return kept
