"""What a manifest's columns are, decided once before training and printed (and put in report.md).

- Missing cells: empty or blank text, None, NaN, pd.NA, NaT, and the sentinel cells of
  ``data.na_values`` (pandas' default list plus ``?``; padded with spaces too) are read as missing, in
  every column and dtype (pandas 3 ``str``, nullable ``Int64``/``Float64``/``boolean``, ``category``,
  Arrow dictionary and large_string columns from Parquet).
- Each column's type, as a person would say (docs/data.md has the table): the modality types claim
  the columns they read (mmtrain/modalities/); a column none claims (an identifier: one short value
  per row; or a column with no value at all) is left out with a warning naming it.
- A column named ``id`` is the row id; a column named like a split (split, fold, set) holding
  train/val/test is the split.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mmtrain.core.cells import filled, has_lists, id_like, mostly_numbers, require_column
from mmtrain.core.errors import ConfigError
from mmtrain.modalities import MODALITIES
from mmtrain.tasks import TASKS

log = logging.getLogger(__name__)
# pandas' default missing-value strings (pandas.read_csv's na_values), which data.keep_default_na keeps
PANDAS_NA = (
    "",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "<NA>",
    "N/A",
    "NA",
    "NULL",
    "NaN",
    "None",
    "n/a",
    "nan",
    "null",
)
SPLIT_NAMES = ("split", "fold", "set", "subset", "partition")
SPLIT_VALUES = {"train", "val", "valid", "validation", "test"}
VAL_ALIASES = {"valid": "val", "validation": "val"}


@dataclass(frozen=True)
class Missing:
    """How missing cells are spelt: ``data.na_values`` (extra sentinels) and ``data.keep_default_na``
    (pandas' list as well). Saved in the data spec, so predict reads new files the same way."""

    na_values: tuple[str, ...] = ("?",)
    keep_default_na: bool = True

    @classmethod
    def of(cls, spec: dict | None) -> Missing:
        spec = spec or {}
        values = spec.get("na_values", ("?",))
        if isinstance(values, str) or not all(isinstance(v, (str, int, float)) for v in values or []):
            raise ConfigError(
                f"data.na_values={values} must be a list of cell texts read as missing, e.g. "
                f"data.na_values='[?, -, unknown]' (pandas' own list is kept with data.keep_default_na=true)."
            )
        keep = spec.get("keep_default_na", True)
        if not isinstance(keep, bool):
            raise ConfigError(f"data.keep_default_na={keep} must be true or false.")
        return cls(tuple(str(v) for v in values or ()), keep)

    def spec(self) -> dict:
        return {"na_values": list(self.na_values), "keep_default_na": self.keep_default_na}

    @property
    def sentinels(self) -> frozenset[str]:
        return frozenset(v.strip() for v in self.na_values + (PANDAS_NA if self.keep_default_na else ())) - {
            ""
        }


def read_missing(frame: pd.DataFrame, missing: Missing) -> tuple[pd.DataFrame, dict[str, int]]:
    """The frame with every missing cell as NaN/None and plain dtypes (nullable numbers -> float64,
    nullable booleans and categories -> object), and per column the number of sentinel cells read
    as missing. CSV is read with no missing-value strings (``na_values=[""]``), so this is the one
    place that decides, for every format."""
    sentinels, counts, columns = missing.sentinels, {}, {}
    for name in frame.columns:
        column = frame[name]
        if (
            isinstance(column.dtype, pd.CategoricalDtype)
            or pd.api.types.is_bool_dtype(column)
            and column.hasnans
        ):
            column = column.astype(object)
        elif (
            pd.api.types.is_extension_array_dtype(column)
            and pd.api.types.is_numeric_dtype(column)
            and not pd.api.types.is_bool_dtype(column)
        ):
            column = column.astype("float64")  # Int64/Float64 with <NA>
        elif isinstance(column.dtype, pd.ArrowDtype) and pd.api.types.is_string_dtype(column):
            column = column.astype(object)
        if column.dtype == object or pd.api.types.is_string_dtype(column):
            text = (
                column.str.strip()
                if pd.api.types.is_string_dtype(column)
                else column.map(lambda v: v.strip() if isinstance(v, str) else None)
            )
            sentinel = text.isin(sentinels).fillna(False).astype(bool)
            gone = sentinel | text.eq("").fillna(False).astype(bool)
            if sentinel.any():
                counts[name] = int(sentinel.sum())
            if gone.any():
                column = column.mask(gone)
                rest = column.dropna()
                if (
                    sentinel.any()
                    and len(rest)
                    and not has_lists(rest)
                    and pd.to_numeric(rest, errors="coerce").notna().all()
                ):
                    column = pd.to_numeric(column)  # numbers with "?" cells, which kept the column text
        columns[name] = column
    return pd.DataFrame(columns, index=frame.index), counts


@dataclass
class ColumnInfo:
    """What was found in one column, for the log and report.md."""

    column: str
    use: str  # "modality <name> (<kind>)", "target <task> (<type>)", "split", "id", "group", "left out: .."
    missing: float  # share of rows with a missing cell
    sentinels: int  # cells of data.na_values read as missing

    def row(self) -> dict:
        return {
            "column": self.column,
            "use": self.use,
            "missing": round(self.missing, 4),
            "sentinels": self.sentinels,
        }


def infer_type(series: pd.Series) -> str | None:
    """The modality type of a column, from its values: the first type (in infer_order) that claims
    it; None when none does (a column with no value, or an identifier)."""
    values = filled(series)
    if values.empty:
        return None
    return next(
        (t.name for t in sorted(MODALITIES, key=lambda t: t.infer_order) if t.claims(series, values)), None
    )


def why_left_out(series: pd.Series) -> str:
    values = filled(series)
    if values.empty:
        return "no value in any row"
    if id_like(series, values):
        return "an identifier (one distinct value per row)"
    return "no modality type reads it"


def find_split_column(frame: pd.DataFrame, reserved: set) -> str | None:
    """A column named like a split (split, fold, set, ...) whose values are train/val/test."""
    for column in frame.columns:
        if column.lower() in SPLIT_NAMES and column not in reserved:
            values = set(filled(frame[column]).astype(str).str.strip().str.lower())
            if "train" in values and values <= SPLIT_VALUES:
                return column
    return None


def modality_specs(
    frame: pd.DataFrame, declared: dict, reserved: set
) -> tuple[dict[str, dict], dict[str, str]]:
    """(name -> the resolved spec of its modality type ({"type", "column"}, or {"type": "tabular",
    "numeric", "categorical", "dates"}), with ``inferred`` telling whether the type was guessed;
    the columns left out, each with why)."""
    left_out, guessed = {}, not declared
    if not declared:  # one modality per column; the columns of a multi-column type (tabular) together
        kinds = {}
        for c in frame.columns:
            if c in reserved:
                continue
            kind = infer_type(frame[c])
            if kind is None:
                left_out[c] = why_left_out(frame[c])
            else:
                kinds[c] = MODALITIES.get(kind)
        declared = {c: {"column": c} for c, kind in kinds.items() if not kind.multi_column}
        for kind in {k.name: k for k in kinds.values() if k.multi_column}.values():
            declared[kind.name] = {"type": kind.name, "columns": [c for c, k in kinds.items() if k is kind]}
    specs = {}
    for name, spec in declared.items():
        spec, key = dict(spec or {}), f"data.modalities.{name}"
        kind = spec.pop("type", None)
        inferred = kind is None or guessed
        if kind is None and set(spec) - {"column"}:  # column lists: the multi-column type that takes them
            kind = next((t.name for t in MODALITIES if t.multi_column and set(spec) <= set(t.settings)), None)
        if kind is None:
            spec["column"] = spec.get("column") or name
            require_column(frame, spec["column"], f"{key}.column")
            kind = infer_type(frame[spec["column"]])
            if kind is None:
                raise ConfigError(
                    f"{key}: cannot tell what column '{spec['column']}' holds "
                    f"({why_left_out(frame[spec['column']])}): set {key}.type to one of "
                    f"{MODALITIES.names()}."
                )
        modality = MODALITIES.get(kind, f"{key}.type")
        unknown = set(spec) - set(modality.settings)
        if unknown:
            raise ConfigError(
                f"{key}: unknown setting(s) {sorted(unknown)}; a {kind} modality takes type and "
                f"{', '.join(modality.settings)}."
            )
        specs[name] = {**modality.resolve(name, spec, frame, reserved), "inferred": inferred}
    if not specs:
        shown = ", ".join(f"'{c}' ({why})" for c, why in left_out.items()) or "none"
        raise ConfigError(
            f"No input column is left once the targets, split and id are set aside (left out: {shown}). "
            f"Declare the inputs: data.modalities.<name>.column=<column> with "
            f"data.modalities.<name>.type=text|tabular|image|audio|sequence."
        )
    return specs, left_out


def target_spec(frame: pd.DataFrame, task: str, spec: dict) -> dict:
    key = f"data.targets.{task}"
    unknown = set(spec) - {"column", "type", "separator"}
    if unknown:
        raise ConfigError(
            f"{key}: unknown setting(s) {sorted(unknown)}; a target takes column, type and "
            f"separator (multilabel)."
        )
    column = spec.get("column") or task
    require_column(frame, column, f"{key}.column")
    kind, separator = spec.get("type"), spec.get("separator") or "|"
    if kind is not None:
        TASKS.get(kind, f"{key}.type")
    else:
        values = filled(frame[column])
        if values.empty:
            raise ConfigError(
                f"{key}.column={column}: no row has a value in that column: choose the column to predict."
            )
        numbers = pd.to_numeric(values, errors="coerce").dropna() if mostly_numbers(values) else None
        kind = next(
            t.name
            for t in sorted(TASKS, key=lambda t: t.infer_order)
            if t.claims(values, numbers, separator, key, column)
        )
    return {
        "task": task,
        "column": column,
        "type": kind,
        "separator": separator,
        "inferred": spec.get("type") is None,
    }


def columns_found(
    frame: pd.DataFrame, specs: dict, target_specs: dict, left_out: dict, roles: dict, sentinels: dict
) -> list[ColumnInfo]:
    """One ColumnInfo per column of the manifest (in its order)."""
    uses = dict(roles)
    for name, spec in specs.items():
        for column, kind in MODALITIES.get(spec["type"]).column_kinds(spec).items():
            uses[column] = f"modality {name} ({kind})"
    for task, spec in target_specs.items():
        uses[spec["column"]] = f"target {task} ({spec['type']})"
    uses.update({c: f"left out: {why}" for c, why in left_out.items()})
    missing = frame.isna().mean()
    return [
        ColumnInfo(c, uses.get(c, "not used"), float(missing[c]), sentinels.get(c, 0)) for c in frame.columns
    ]


def describe(
    path,
    specs: dict,
    target_specs: dict,
    tasks: dict,
    split: np.ndarray,
    bad,
    columns: list[ColumnInfo],
    dropped: dict[str, int],
    unlabelled: dict[str, int],
) -> None:
    """The mapping from columns to modalities and targets, and what each column held, printed
    before training."""
    names, counts = np.unique(split, return_counts=True)
    lines = [
        f"Data: {path} ({len(split)} rows: " + ", ".join(f"{n} {c}" for n, c in zip(names, counts)) + ")"
    ]
    for name, spec in specs.items():
        how = "inferred" if spec["inferred"] else "given"
        lines.append(
            f"  modality {name:<12} {spec['type']:<9} <- {MODALITIES.get(spec['type']).describe(spec)} "
            f"(type {how})"
        )
    for task, spec in target_specs.items():
        classes = tasks[task].classes
        detail = f"{len(classes)} {TASKS.get(spec['type']).class_word}" if classes else "values"
        how = "inferred" if spec["inferred"] else "given"
        lines.append(f"  target   {task:<12} {spec['type']:<9} <- {spec['column']} ({detail}; type {how})")
    width = max(len(c.column) for c in columns)
    lines.append(f"  {'column':<{width}}  {'missing':>7}  used as")
    for c in columns:
        sentinel = f" ({c.sentinels} cells of data.na_values)" if c.sentinels else ""
        lines.append(f"  {c.column:<{width}}  {c.missing:>7.1%}  {c.use}{sentinel}")
    for what, n in dropped.items():
        lines.append(f"  {n} rows have {what}: left out")
    for task, n in unlabelled.items():
        lines.append(f"  {n} rows have no {task} target: left out of {task}'s loss and metrics")
    if bad.rows:
        lines.append(f"  {bad.summary()}")
    log.info("\n".join(lines))
    left_out = [
        f"'{c.column}' ({c.use.removeprefix('left out: ')})" for c in columns if c.use.startswith("left out")
    ]
    if left_out:
        log.warning(
            "data: columns left out: %s. To use one anyway, "
            "declare it: data.modalities.<name>.column=<column> "
            "and data.modalities.<name>.type=<type>.",
            ", ".join(left_out),
        )
