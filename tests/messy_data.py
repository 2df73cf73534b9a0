"""Messy manifests for the fuzz test (tests/test_fuzz.py, scripts/fuzz_manifests.py): a Hypothesis
strategy draws a *recipe* (columns of random kinds, dtypes, missing rates and sentinel cells, media
files that exist, are missing or are corrupt, a target of any task type, a file format), and
``build`` writes it as files, deterministically from the recipe's seed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import strategies as st

KINDS = ("number", "integer", "category", "coded", "boolean", "text", "id", "date", "list", "audio", "image")
TASKS = ("multiclass", "binary", "regression", "multilabel")
FORMATS = ("csv", "tsv", "parquet", "jsonl")
SENTINELS = (None, "?", "N/A", " ? ", "NA", "null")
WORDS = "the market fell sharply after weak earnings while bonds rallied on rate cut hopes".split()


@dataclass(frozen=True)
class Column:
    kind: str
    missing: float  # share of rows whose cell is missing (1.0: the whole column)
    sentinel: str | None  # how a missing cell is spelt (None: an empty cell / null)
    dtype: str  # "plain", or the pandas dtype variant: "nullable", "category", "datetime"
    fault: str  # media: "none", "missing file", "corrupt file"


@dataclass(frozen=True)
class Recipe:
    rows: int
    fmt: str
    columns: tuple[Column, ...]
    task: str
    target_missing: float
    empty_row: bool  # one row with every input missing
    split_column: bool
    on_bad_row: str
    seed: int

    def column_names(self) -> list[str]:
        return [f"{c.kind}_{i}" for i, c in enumerate(self.columns)]


@st.composite
def columns(draw) -> Column:
    kind = draw(st.sampled_from(KINDS))
    dtypes = {
        "number": ["plain", "nullable"],
        "integer": ["plain", "nullable"],
        "category": ["plain", "category"],
        "coded": ["plain", "nullable"],
        "boolean": ["plain", "nullable"],
        "date": ["plain", "datetime"],
    }
    return Column(
        kind,
        draw(st.sampled_from([0.0, 0.0, 0.15, 0.5, 1.0])),
        draw(st.sampled_from(SENTINELS)),
        draw(st.sampled_from(dtypes.get(kind, ["plain"]))),
        draw(st.sampled_from(["none", "none", "missing file", "corrupt file"]))
        if kind in ("audio", "image")
        else "none",
    )


@st.composite
def recipes(draw) -> Recipe:
    return Recipe(
        rows=draw(st.integers(24, 48)),
        fmt=draw(st.sampled_from(FORMATS)),
        columns=tuple(draw(st.lists(columns(), min_size=1, max_size=5))),
        task=draw(st.sampled_from(TASKS)),
        target_missing=draw(st.sampled_from([0.0, 0.0, 0.1])),
        empty_row=draw(st.booleans()),
        split_column=draw(st.booleans()),
        on_bad_row=draw(st.sampled_from(["error", "skip", "missing"])),
        seed=draw(st.integers(0, 2**16)),
    )


def cells(column: Column, rows: int, y: np.ndarray, rng, media: Path, start: int) -> list:
    """One column's cells (missing ones as None) for rows whose class is ``y``."""
    n = rows
    if column.kind == "number":
        values = list(y + rng.normal(size=n))
    elif column.kind == "integer":
        values = [int(v) for v in y * 10 + rng.integers(0, 5, n)]
    elif column.kind == "category":
        values = [["red", "green", "blue"][v] for v in (y + (rng.random(n) < 0.2)) % 3]
    elif column.kind == "coded":
        values = [int(v) + 1 for v in y]
    elif column.kind == "boolean":
        values = [bool(v % 2) for v in y] if rng.random() < 0.5 else [["no", "yes"][v % 2] for v in y]
    elif column.kind == "text":
        values = [
            " ".join(rng.choice(WORDS, int(rng.integers(3, 12)))) + f" {['down', 'flat', 'up'][v]}" for v in y
        ]
    elif column.kind == "id":
        values = [f"u{start + i:05d}" for i in range(n)]
    elif column.kind == "date":
        values = [
            f"2024-{1 + v * 3 + int(rng.integers(0, 3)):02d}-{1 + int(rng.integers(0, 28)):02d}" for v in y
        ]
    elif column.kind == "list":
        values = [list(np.round(v + rng.normal(size=int(rng.integers(2, 6))), 3)) for v in y]
    else:
        values = [write_media(column, media, start + i, int(v), rng) for i, v in enumerate(y)]
    missing = rng.random(n) < column.missing if column.missing < 1 else np.ones(n, dtype=bool)
    return [None if gone else value for value, gone in zip(values, missing)]


def write_media(column: Column, media: Path, i: int, y: int, rng) -> str:
    suffix = "wav" if column.kind == "audio" else "png"
    path = media / f"{column.kind}_{i}.{suffix}"
    fault = column.fault if rng.random() < 0.15 else "none"
    if fault == "missing file":
        return f"media/gone_{i}.{suffix}"
    if fault == "corrupt file":
        path.write_bytes(b"not a media file")
    elif column.kind == "audio":
        import soundfile

        t = np.arange(800) / 8000
        soundfile.write(path, (0.3 * np.sin(2 * np.pi * (200 + 200 * y) * t)).astype(np.float32), 8000)
    else:
        from PIL import Image

        pixels = rng.integers(0, 80, (8, 8)).astype(np.uint8)
        pixels[:, y * 2 : y * 2 + 2] = 250
        Image.fromarray(pixels).save(path)
    return f"media/{path.name}"


def frame_of(recipe: Recipe, folder: Path, seed_offset: int = 0, target: bool = True) -> pd.DataFrame:
    """The recipe's rows as a DataFrame with its dtypes (media written under folder/media)."""
    rng = np.random.default_rng(recipe.seed + seed_offset)
    media = folder / "media"
    media.mkdir(parents=True, exist_ok=True)
    n, start = recipe.rows, seed_offset * 1000
    y = np.arange(n) % 3
    data = {}
    for name, column in zip(recipe.column_names(), recipe.columns):
        values = cells(column, n, y, rng, media, start)
        if recipe.empty_row:
            values[0] = None
        data[name] = typed(values, column, recipe.fmt)
    if target:
        data["y"] = typed(
            target_cells(recipe, y, rng), Column("target", 0, None, "plain", "none"), recipe.fmt
        )
    if recipe.split_column:
        data["split"] = ["train" if i % 10 < 6 else "val" if i % 10 < 8 else "test" for i in range(n)]
    return pd.DataFrame(data)


def target_cells(recipe: Recipe, y: np.ndarray, rng) -> list:
    values = {
        "multiclass": lambda v: ["down", "flat", "up"][v],
        "binary": lambda v: ["no", "yes"][v % 2],
        "regression": lambda v: float(v + rng.normal() * 0.2),
        "multilabel": lambda v: "|".join(["a", "b", "c"][: v + 1]),
    }[recipe.task]
    return [None if rng.random() < recipe.target_missing else values(int(v)) for v in y]


def typed(values: list, column: Column, fmt: str):
    """The cells as the column's dtype variant; a missing cell spelt as its sentinel where the format
    can hold text in that column (CSV/TSV/JSONL: anywhere; Parquet: in text columns only)."""
    textual = column.kind in ("category", "text", "id", "date", "audio", "image") or fmt != "parquet"
    if column.kind == "list" and (fmt in ("csv", "tsv") or fmt == "parquet" and column.sentinel is not None):
        # a list in a text file, or beside text cells in a Parquet column, is written as JSON
        values = [json.dumps([float(x) for x in v]) if isinstance(v, list) else v for v in values]
    if column.sentinel is not None and textual and column.dtype != "datetime":
        return [column.sentinel if v is None else v for v in values]
    if column.dtype == "nullable":
        kind = {"number": "Float64", "integer": "Int64", "coded": "Int64"}.get(column.kind, "boolean")
        if kind == "boolean":
            values = [None if v is None else v in (True, "yes") for v in values]
        return pd.array(values, dtype=kind)
    if column.dtype == "category":
        return pd.Categorical(values)
    if column.dtype == "datetime":
        return pd.to_datetime(pd.Series(values, dtype=object))
    return values


def build(recipe: Recipe, folder: Path) -> Path:
    """folder/manifest.<fmt> of the recipe (with its target), media under folder/media."""
    frame = frame_of(recipe, folder)
    return write(frame, folder / f"manifest.{recipe.fmt}")


def write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True, date_format="iso")
    else:
        frame.to_csv(path, sep="\t" if path.suffix == ".tsv" else ",", index=False)
    return path
