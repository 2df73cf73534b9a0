"""A user's own data: a manifest (CSV, Parquet or JSONL; one row per sample) -> MultimodalTable.

Columns map to modalities (``data.modalities.<name>``: a type and its column(s)) and to targets
(``data.targets.<task>``: a column and a type). Types left out are inferred from the values, and the
resulting mapping is printed before training. Media paths are relative to the manifest's folder.
Every row is checked before training (mmtrain/data/preflight.py); preprocessing is fitted on the
train split only (mmtrain/data/preprocess.py).
"""

from __future__ import annotations

import difflib
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from mmtrain.cells import is_empty, label_name, media_path, read_sequence
from mmtrain.data.preflight import BadRows, check_rows
from mmtrain.data.preprocess import fit_sequence, fit_tabular
from mmtrain.data.table import MODALITY_TYPES, MultimodalTable, TaskSpec
from mmtrain.errors import ConfigError
from mmtrain.media import AUDIO_SUFFIXES, IMAGE_SUFFIXES
from mmtrain.tasks import TASKS

log = logging.getLogger(__name__)
READERS = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl",
           ".json": "jsonl"}


def load_manifest(path: str, modalities: dict | None = None, targets: dict | None = None,
                  split_column: str | None = None, split_fractions=(0.7, 0.15, 0.15), split_seed: int = 0,
                  test_splits=("test",), id_column: str | None = None, ignore_columns=(),
                  on_bad_row: str = "error", use=None, report_dir: str | None = None) -> MultimodalTable:
    """Read the manifest at ``path`` and turn it into a MultimodalTable (see the module docstring).

    use: the modalities this run trains on (the top-level ``modalities``); only those are loaded and
    checked. report_dir: where bad_rows.csv goes when the preflight finds bad rows.
    """
    if report_dir:  # a report left by an earlier run in this run dir is not this run's
        (Path(report_dir) / "bad_rows.csv").unlink(missing_ok=True)
    if on_bad_row not in ("error", "skip", "missing"):
        raise ConfigError(f"data.on_bad_row={on_bad_row} is not known: use error, skip or missing.")
    path = Path(str(path)).expanduser()
    frame = read_manifest(path)
    root = path.parent.absolute()
    targets = {k: dict(v or {}) for k, v in (targets or {}).items()}
    if not targets:
        raise ConfigError(f"data.targets is empty: name what to predict, e.g. data.targets.label.column=label "
                          f"(columns of {path.name}: {list(frame.columns)}).")
    target_specs = {task: target_spec(frame, task, spec) for task, spec in targets.items()}
    id_column = id_column or ("id" if "id" in frame.columns else None)
    reserved = {s["column"] for s in target_specs.values()} | {split_column, id_column, *ignore_columns}
    specs = modality_specs(frame, dict(modalities or {}), reserved)
    if use:
        missing = [m for m in use if m not in specs]
        if missing:
            named = ", ".join(f"{m} ({s['type']})" for m, s in specs.items())
            raise ConfigError(f"modalities={list(use)}: {missing} not in this manifest's modalities: {named}. "
                              f"Use those names (e.g. modalities=[{next(iter(specs))}]).")
        specs = {m: specs[m] for m in use}
    split = assign_split(frame, split_column, split_fractions, split_seed, target_specs)
    used = ["train", "val", *test_splits]
    unused = sorted(set(split) - set(used))
    if unused:
        log.warning("Rows of split(s) %s are not used: add them to data.test_splits to evaluate on them.", unused)
        frame, split = frame[np.isin(split, used)].reset_index(drop=True), split[np.isin(split, used)]
    require_splits(split, used, split_column)
    ids = frame[id_column].astype(str).to_numpy() if id_column else np.array([str(i) for i in range(len(frame))])
    bad = check_rows(frame, specs, target_specs, split, root)
    keep, absent = bad.resolve(on_bad_row, ids, report_dir)
    if len(keep) < len(frame):  # dropped train rows can leave a val/test class unseen in train: drop those too
        again = check_rows(frame.iloc[keep].reset_index(drop=True), {}, target_specs, split[keep], root)
        if again.rows:
            log.warning("data: %d more rows dropped: their class no longer appears in the kept train rows.",
                        len(again.rows))
            keep = np.delete(keep, sorted(again.rows))
    frame, split, ids = frame.iloc[keep].reset_index(drop=True), split[keep], ids[keep]
    require_splits(split, used, split_column, after="after dropping bad rows")
    absent = {m: rows[np.isin(rows, keep)] for m, rows in absent.items()}
    remap = {old: new for new, old in enumerate(keep)}
    train = split == "train"
    raws, preprocessing = {}, {}
    for name, spec in specs.items():
        values = modality_values(frame, spec, root)
        for old in absent.get(name, []):
            values[remap[old]] = None
        raws[name] = values
        if spec["type"] == "tabular":
            preprocessing[name] = fit_tabular([v for v, t in zip(values, train) if t and v is not None],
                                              spec["numeric"], spec["categorical"])
        elif spec["type"] == "sequence":
            preprocessing[name] = fit_sequence([v for v, t in zip(values, train) if t and v is not None])
    tasks, target_arrays = {}, {}
    for task, spec in target_specs.items():
        tasks[task], target_arrays[task] = encode_target(frame[spec["column"]], spec, train)
    describe(path, specs, target_specs, tasks, split, bad)
    return MultimodalTable(raws, target_arrays, tasks, split, None,
                           {m: s["type"] for m, s in specs.items()}, preprocessing)


def require_splits(split: np.ndarray, names: list[str], split_column: str | None, after: str = "") -> None:
    for name in names:
        if not (split == name).any():
            raise ConfigError(f"No '{name}' rows{' ' + after if after else ''}: the split "
                              f"({'column ' + split_column if split_column else 'generated'}) has {sorted(set(split))}. "
                              f"Name them train/val/test, or set data.test_splits to the test splits present.")


def read_manifest(path: Path) -> pd.DataFrame:
    kind = READERS.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(f"data.path={path}: unknown manifest format '{path.suffix}'. Use .csv, .tsv, "
                          f".parquet or .jsonl.")
    if not path.is_file():
        raise ConfigError(f"data.path={path}: no such file. Point data.path at the manifest (CSV, Parquet "
                          f"or JSONL); relative media paths in it are read from its folder.")
    try:
        if kind == "parquet":
            frame = pd.read_parquet(path)
        elif kind == "jsonl":
            frame = pd.read_json(path, lines=True)
        else:
            frame = pd.read_csv(path, sep="\t" if kind == "tsv" else ",")
    except Exception as err:
        raise ConfigError(f"data.path={path}: could not read it as {kind} ({type(err).__name__}: "
                          f"{str(err).splitlines()[0][:200]}).") from err
    if frame.empty:
        raise ConfigError(f"data.path={path}: the manifest has no rows.")
    frame.columns = [str(c) for c in frame.columns]
    return frame


def require_column(frame: pd.DataFrame, column: str, key: str) -> None:
    if column not in frame.columns:
        close = difflib.get_close_matches(column, list(frame.columns), n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ConfigError(f"{key}={column}: the manifest has no such column. {hint}Its columns: "
                          f"{list(frame.columns)}.")


def filled(series: pd.Series) -> pd.Series:
    return series[series.map(lambda v: not is_empty(v))]




def infer_type(series: pd.Series) -> str:
    """text | audio | image | tabular | sequence from a column's values."""
    values = filled(series)
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series) or mostly_numbers(values):
        return "tabular"  # a few non-numbers in it are bad rows for the preflight, not a reason for text
    if len(values) and values.map(lambda v: isinstance(v, (list, np.ndarray))).all():
        return "sequence"
    text = values.astype(str).str.lower()
    if len(text) and text.str.endswith(AUDIO_SUFFIXES).all():
        return "audio"
    if len(text) and text.str.endswith(IMAGE_SUFFIXES).all():
        return "image"
    if len(text) and (text.str.endswith((".npy", ".csv")) | text.str.lstrip().str.startswith("[")).all():
        return "sequence"  # series files, or JSON lists of numbers
    return "text"


def mostly_numbers(values: pd.Series) -> bool:
    if not len(values) or values.map(lambda v: isinstance(v, (list, np.ndarray))).any():
        return False
    return pd.to_numeric(values, errors="coerce").notna().mean() >= 0.9


def is_categorical(series: pd.Series) -> bool:
    """A string column with few distinct values is a category, not free text."""
    values = filled(series)
    if pd.api.types.is_numeric_dtype(series) or mostly_numbers(values) or \
            values.map(lambda v: isinstance(v, (list, np.ndarray))).any():
        return False
    return values.nunique() <= max(2, min(20, len(values) // 4))


def modality_specs(frame: pd.DataFrame, declared: dict, reserved: set) -> dict[str, dict]:
    """name -> {"type", "column"} (text/audio/image/sequence) or {"type": "tabular", "numeric",
    "categorical"}, with each type given or inferred (``inferred`` lists what was guessed)."""
    if not declared:  # one modality per column (all numbers and categories together as "tabular")
        columns = [c for c in frame.columns if c not in reserved]
        tabular = [c for c in columns if infer_type(frame[c]) == "tabular" or is_categorical(frame[c])]
        declared = {c: {"column": c} for c in columns if c not in tabular}
        if tabular:
            declared["tabular"] = {"type": "tabular", "columns": tabular}
    specs = {}
    for name, spec in declared.items():
        spec = dict(spec or {})
        key = f"data.modalities.{name}"
        unknown = set(spec) - {"type", "column", "columns", "numeric", "categorical", "encoder"}
        if unknown:
            raise ConfigError(f"{key}: unknown setting(s) {sorted(unknown)}; a modality takes type and column "
                              f"(tabular: numeric and categorical column lists, or columns).")
        kind = spec.get("type")
        if kind is not None and kind not in MODALITY_TYPES:
            raise ConfigError(f"{key}.type={kind} is not known: use one of {', '.join(MODALITY_TYPES)}.")
        if kind == "tabular" and "column" in spec and not any(k in spec for k in ("columns", "numeric", "categorical")):
            spec["columns"] = [spec.pop("column")]
        if kind is None and "column" in spec and spec["column"] in frame.columns and is_categorical(frame[spec["column"]]):
            spec = {"columns": [spec["column"]]}  # a few repeated strings: a category, not text
        if kind == "tabular" or any(k in spec for k in ("columns", "numeric", "categorical")):
            numeric, categorical = list(spec.get("numeric") or []), list(spec.get("categorical") or [])
            for column in spec.get("columns") or []:
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
            specs[name] = {"type": "tabular", "numeric": numeric, "categorical": categorical,
                           "inferred": "columns" in spec}
            continue
        column = spec.get("column") or name
        require_column(frame, column, f"{key}.column")
        if column in reserved:
            raise ConfigError(f"{key}.column={column} is a target, the split or the id: it cannot also be an input.")
        specs[name] = {"type": kind or infer_type(frame[column]), "column": column, "inferred": kind is None}
        if specs[name]["type"] == "tabular":
            specs[name].update(numeric=[column], categorical=[])
    return specs


def target_spec(frame: pd.DataFrame, task: str, spec: dict) -> dict:
    key = f"data.targets.{task}"
    unknown = set(spec) - {"column", "type", "separator"}
    if unknown:
        raise ConfigError(f"{key}: unknown setting(s) {sorted(unknown)}; a target takes column, type and "
                          f"separator (multilabel).")
    column = spec.get("column") or task
    require_column(frame, column, f"{key}.column")
    kind, separator = spec.get("type"), spec.get("separator") or "|"
    if kind is not None:
        TASKS.get(kind, f"{key}.type")
    else:
        values = filled(frame[column])
        numbers = pd.to_numeric(values, errors="coerce").dropna() if mostly_numbers(values) else None
        kind = next(t.name for t in sorted(TASKS, key=lambda t: t.infer_order)
                    if t.claims(values, numbers, separator, key, column))
    return {"task": task, "column": column, "type": kind, "separator": separator, "inferred": spec.get("type") is None}


def encode_target(series: pd.Series, spec: dict, train: np.ndarray) -> tuple[TaskSpec, np.ndarray]:
    """Targets as arrays; classes (and multilabel labels) are those seen in the train split."""
    task = TASKS.get(spec["type"])
    classes = task.fit_classes(series, spec, train)
    return TaskSpec(spec["type"], classes), task.encode(series, spec, classes)


def assign_split(frame: pd.DataFrame, split_column: str | None, fractions, seed: int,
                 target_specs: dict) -> np.ndarray:
    """The split column's values, or a seeded split stratified by the first class target."""
    if split_column:
        require_column(frame, split_column, "data.split_column")
        empty = np.flatnonzero(frame[split_column].map(is_empty).to_numpy())
        if len(empty):
            raise ConfigError(f"data.split_column={split_column}: {len(empty)} rows have no split (rows "
                              f"{empty[:5].tolist()}, counting data rows from 0): fill in train/val/test for them.")
        return frame[split_column].astype(str).str.strip().to_numpy()
    fractions = list(fractions)
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ConfigError(f"data.split_fractions={fractions} must be three positive shares of train, val "
                          f"and test that add up to 1 (e.g. [0.7, 0.15, 0.15]).")
    strata = np.zeros(len(frame), dtype=object)
    for spec in target_specs.values():
        if TASKS.get(spec["type"]).stratifies:
            strata = frame[spec["column"]].map(label_name).to_numpy()
            break
    rng = np.random.default_rng(seed)
    split = np.empty(len(frame), dtype=object)
    for stratum in pd.unique(strata):
        rows = rng.permutation(np.flatnonzero(strata == stratum))
        cut = np.round(np.cumsum(fractions) * len(rows)).astype(int)
        split[rows[: cut[0]]], split[rows[cut[0]: cut[1]]], split[rows[cut[1]:]] = "train", "val", "test"
    return split.astype(str)


def modality_values(frame: pd.DataFrame, spec: dict, root: Path) -> list:
    """The raw value per row that the modality's encoder featurizes (None for an empty cell)."""
    kind = spec["type"]
    if kind == "tabular":
        numeric = [pd.to_numeric(frame[c], errors="coerce").to_numpy(np.float64) for c in spec["numeric"]]
        categorical = [frame[c].map(lambda v: None if is_empty(v) else label_name(v)).to_list()
                       for c in spec["categorical"]]
        return [tuple(float(col[i]) for col in numeric) + tuple(col[i] for col in categorical)
                for i in range(len(frame))]
    values = []
    for value in frame[spec["column"]]:
        if not isinstance(value, (list, np.ndarray)) and is_empty(value):
            values.append(None)
        elif kind in ("audio", "image"):
            values.append(media_path(value, root))
        elif kind == "sequence":
            values.append(read_sequence(value, root))
        else:
            values.append(str(value))
    return values






def describe(path: Path, specs: dict, target_specs: dict, tasks: dict, split: np.ndarray, bad: BadRows) -> None:
    """The mapping from columns to modalities and targets, printed before training."""
    names, counts = np.unique(split, return_counts=True)
    lines = [f"Data: {path} ({len(split)} rows: " + ", ".join(f"{n} {c}" for n, c in zip(names, counts)) + ")"]
    for name, spec in specs.items():
        columns = spec.get("column") or "; ".join(
            f"{kind} {', '.join(spec[kind])}" for kind in ("numeric", "categorical") if spec[kind])
        how = "inferred" if spec["inferred"] else "given"
        lines.append(f"  modality {name:<12} {spec['type']:<9} <- {columns} (type {how})")
    for task, spec in target_specs.items():
        classes = tasks[task].classes
        detail = f"{len(classes)} {TASKS.get(spec['type']).class_word}" if classes else "values"
        how = "inferred" if spec["inferred"] else "given"
        lines.append(f"  target   {task:<12} {spec['type']:<9} <- {spec['column']} ({detail}; type {how})")
    if bad.rows:
        lines.append(f"  {bad.summary()}")
    log.info("\n".join(lines))
