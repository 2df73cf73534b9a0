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
    array = np.asarray([np.asarray(v, dtype=np.float32) for v in value] if len(value) and
                       isinstance(value[0], (list, np.ndarray)) else value, dtype=np.float32)
    return array.reshape(len(array), -1)


def filled(series):
    """The non-empty cells of a column."""
    return series[series.map(lambda v: not is_empty(v))]


def mostly_numbers(values) -> bool:
    """Whether at least 90 % of these (filled) cells read as numbers (the rest are bad rows)."""
    import pandas as pd

    if not len(values) or values.map(lambda v: isinstance(v, (list, np.ndarray))).any():
        return False
    return pd.to_numeric(values, errors="coerce").notna().mean() >= 0.9


def require_column(frame, column: str, key: str) -> None:
    """A ConfigError naming ``key`` when the manifest has no ``column`` (with a did-you-mean)."""
    import difflib

    from mmtrain.errors import ConfigError

    if column not in frame.columns:
        close = difflib.get_close_matches(column, list(frame.columns), n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ConfigError(f"{key}={column}: the manifest has no such column. {hint}Its columns: "
                          f"{list(frame.columns)}.")
