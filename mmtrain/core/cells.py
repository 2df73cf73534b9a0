"""Reading one manifest cell: emptiness, class names, label lists, media paths, time series."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def is_empty(value) -> bool:
    """None, NaN, pd.NA (nullable Parquet columns) or blank text; a list cell is never empty here."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return False
    if isinstance(value, str):
        return not value.strip()
    import pandas as pd

    return bool(pd.isna(value))


def label_name(value) -> str:
    """Class names as text; 3.0 read from a CSV with gaps is the class "3"."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def labels_of(value, separator: str) -> list[str]:
    if isinstance(value, (list, np.ndarray)):
        return [label_name(v) for v in value]
    if is_empty(value):
        return []
    return [s.strip() for s in str(value).split(separator) if s.strip()]


def media_path(value, root: Path) -> Path:
    path = Path(str(value).strip()).expanduser()
    return path if path.is_absolute() else root / path


def read_sequence(value, root: Path) -> np.ndarray:
    """A time series [T, C] from a list cell, a JSON list string, or a .npy/.csv file path."""
    if isinstance(value, str) and value.strip().startswith("["):
        value = json.loads(value)
    elif isinstance(value, str):
        path = media_path(value, root)
        value = np.load(path) if path.suffix == ".npy" else np.loadtxt(path, delimiter=",", ndmin=2)
    array = np.asarray(
        [np.asarray(v, dtype=np.float32) for v in value]
        if len(value) and isinstance(value[0], (list, np.ndarray))
        else value,
        dtype=np.float32,
    )
    return array.reshape(len(array), -1)


def filled(series):
    """The non-empty cells of a column (vectorised: a long column is read in well under a second)."""
    values = series.dropna()
    if values.dtype == object or str(values.dtype) in ("str", "string"):
        text = (
            values.map(lambda v: v.strip() if isinstance(v, str) else "x")
            if values.dtype == object
            else values.str.strip()
        )
        values = values[text.ne("").to_numpy(dtype=bool)]
    return values


def is_listlike(value) -> bool:
    return isinstance(value, (list, tuple, np.ndarray))


def value_kind(values) -> str:
    """pandas' name for what the cells hold: "string", "floating", "integer", "boolean", "datetime",
    "mixed" (lists among them), ... (a C loop, so cheap enough to ask often)."""
    import pandas as pd

    return pd.api.types.infer_dtype(values, skipna=True)


def has_lists(values) -> bool:
    return value_kind(values).startswith("mixed") and bool(values.map(is_listlike).any())


def word_stats(values, sample: int = 5000) -> tuple[float, float]:
    """(mean words, mean characters) per cell of these filled string cells (of a seeded sample of a
    long column)."""
    if len(values) > sample:
        values = values.sample(sample, random_state=0)
    text = values.astype(str)
    return float(text.str.split().str.len().mean()), float(text.str.len().mean())


def looks_like_text(values) -> bool:
    """Free text: several words per cell (3 or more on average) that are long or mostly unique; a short
    phrase that repeats ("Driver & Passenger") is a category."""
    if not len(values) or has_lists(values) or mostly_numbers(values):
        return False
    words, chars = word_stats(values)
    return words >= 3 and (chars >= 40 or values.nunique() >= 0.5 * len(values))


def looks_like_dates(values, sample: int = 500) -> bool:
    """Dates or times written as text ("2024-03-01", "03/01/2024 10:00"): 90 % of a sample parse as
    dates, and each holds a digit and 6+ characters (so "May" or a number is not a date)."""
    import pandas as pd

    if not len(values) or mostly_numbers(values) or has_lists(values):
        return False
    head = values.iloc[:sample].astype(str).str.strip()
    if not (head.str.len().ge(6) & head.str.contains(r"\d")).all():
        return False
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(head, errors="coerce", format="mixed")
    return bool(parsed.notna().mean() >= 0.9)


MIN_ID_ROWS = 20  # below this, a column of distinct values may just be a small table


def id_like(series, values) -> bool:
    """An identifier rather than an input: one distinct value per row (20+ filled cells), being a row
    number (consecutive whole numbers) or a short code or name (under 3 words; not dates)."""
    import pandas as pd

    if len(values) < MIN_ID_ROWS or has_lists(values) or values.nunique() < len(values):
        return False
    if pd.api.types.is_bool_dtype(series):
        return False
    if pd.api.types.is_numeric_dtype(series) or mostly_numbers(values):
        numbers = pd.to_numeric(values, errors="coerce")
        return bool(
            numbers.notna().all()
            and (numbers == numbers.round()).all()
            and numbers.max() - numbers.min() + 1 == len(numbers)
        )
    return not looks_like_dates(values) and word_stats(values)[0] < 3


def mostly_numbers(values) -> bool:
    """Whether at least 90 % of these (filled) cells read as numbers (the rest are bad rows)."""
    import pandas as pd

    kind = value_kind(values)
    if kind in ("integer", "floating", "mixed-integer-float", "decimal"):
        return True
    if not len(values) or kind == "boolean" or has_lists(values):
        return False
    if kind == "mixed" and values.map(lambda v: isinstance(v, (bool, np.bool_))).any():
        return False  # booleans are categories
    if (
        len(values) > 2000
        and pd.to_numeric(values.sample(2000, random_state=0), errors="coerce").notna().mean() < 0.8
    ):
        return False  # clearly not numbers: the sample tells, cheaply
    return pd.to_numeric(values, errors="coerce").notna().mean() >= 0.9


def require_column(frame, column: str, key: str) -> None:
    """A ConfigError naming ``key`` when the manifest has no ``column`` (with a did-you-mean)."""
    from mmtrain.core.errors import ConfigError, closest

    if column not in frame.columns:
        close = closest(column, frame.columns)
        hint = f"did you mean {close}? " if close else ""
        raise ConfigError(
            f"{key}={column}: the manifest has no such column. {hint}Its columns: {list(frame.columns)}."
        )
