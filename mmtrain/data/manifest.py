"""A user's own data: a manifest (CSV, Parquet or JSONL; one row per sample) -> MultimodalTable.

Columns map to modalities (``data.modalities.<name>``: a type and its column(s)) and to targets
(``data.targets.<task>``: a column and a type). Missing cells and types left out are decided by
mmtrain/data/schema.py, and the resulting mapping is printed before training. Media paths are
relative to the manifest's folder. Every row is checked before training (mmtrain/data/preflight.py);
preprocessing is fitted on the train split only, by each modality type (mmtrain/modalities/). A row
without a target leaves the split (one task) or that task's loss and metrics (several tasks).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from mmtrain.core import artefacts
from mmtrain.core.cells import is_empty, label_name, require_column
from mmtrain.core.errors import ConfigError, summary
from mmtrain.core.files import atomic_write
from mmtrain.data.files import READERS, locate
from mmtrain.data.folds import fold_split, group_holdout, group_split
from mmtrain.data.preflight import BadRows, check_rows
from mmtrain.data.schema import (
    VAL_ALIASES,
    Missing,
    columns_found,
    describe,
    find_split_column,
    modality_specs,
    read_missing,
    target_spec,
)
from mmtrain.data.table import MultimodalTable, TaskSpec
from mmtrain.modalities import MODALITIES
from mmtrain.tasks import TASKS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ManifestSettings:
    """How a manifest is read and split: the ``data`` keys of that name (``cv.folds``/``cv.fold`` as
    folds/fold), checked when it is made."""

    split_column: str | None = None
    split_fractions: tuple = (0.7, 0.15, 0.15)
    split_seed: int = 0
    test_splits: tuple = ("test",)
    id_column: str | None = None
    ignore_columns: tuple = ()
    group_column: str | None = None  # kept whole by the seeded split, val_split=group and folds
    val_split: str | None = None  # null: as the split says; group: whole groups held out as val
    folds: int | None = None  # cv.folds: that fold of train + val becomes val
    fold: int | None = None
    on_bad_row: str = "error"
    na_values: tuple = ("?",)  # with keep_default_na: the cells read as missing (schema.Missing)
    keep_default_na: bool = True
    max_rows: int | None = None  # a seeded sample of that many rows (a quick check of a big table)

    def __post_init__(self):
        for key in ("split_fractions", "test_splits", "ignore_columns", "na_values"):
            object.__setattr__(self, key, tuple(getattr(self, key) or ()))
        if self.on_bad_row not in ("error", "skip", "missing"):
            raise ConfigError(f"data.on_bad_row={self.on_bad_row} is not known: use error, skip or missing.")
        if self.val_split not in (None, "group"):
            raise ConfigError(
                f"data.val_split={self.val_split} is not known: use null (as the split says) or group."
            )
        if self.max_rows is not None and self.max_rows < 1:
            raise ConfigError(f"data.max_rows={self.max_rows} must be 1 or more (or null for every row).")

    @property
    def missing(self) -> Missing:
        return Missing.of({"na_values": self.na_values, "keep_default_na": self.keep_default_na})


def load_manifest(
    path: str,
    modalities: dict | None = None,
    targets: dict | None = None,
    use=None,
    report_dir: str | None = None,
    **settings,
) -> MultimodalTable:
    """Read the manifest at ``path`` and turn it into a MultimodalTable (see the module docstring).
    settings: ManifestSettings' fields (preprocessing is fitted on the train rows they leave).
    use: the modalities this run trains on (the top-level ``modalities``); only those are loaded and
    checked. report_dir: where bad_rows.csv goes when the preflight finds bad rows.
    """
    if report_dir:  # a report left by an earlier run in this run dir is not this run's
        (Path(report_dir) / artefacts.BAD_ROWS).unlink(missing_ok=True)
    how = ManifestSettings(**settings)
    path = Path(str(path)).expanduser()
    _, _, root = locate(path)
    targets = {k: dict(v or {}) for k, v in (targets or {}).items()}
    columns = used_columns(path, modalities, targets, how)
    frame, sentinels = read_rows(path, columns, how)
    if not targets:
        raise ConfigError(
            f"data.targets is empty: name what to predict, e.g. data.targets.label.column=label "
            f"(columns of {path.name}: {list(frame.columns)})."
        )
    target_specs = {task: target_spec(frame, task, spec) for task, spec in targets.items()}
    id_column = how.id_column or ("id" if "id" in frame.columns else None)
    reserved = {s["column"] for s in target_specs.values()} | {
        id_column,
        how.group_column,
        *how.ignore_columns,
    }
    split_column = how.split_column or split_column_of(frame, reserved)
    how = replace(how, split_column=split_column, id_column=id_column)
    specs, left_out = modality_specs(frame, dict(modalities or {}), reserved | {split_column})
    specs = chosen(specs, use)
    split = regroup(frame, assign_split(frame, target_specs, how), target_specs, how)
    used = ["train", "val", *how.test_splits]
    unused = sorted(set(split) - set(used))
    if unused:
        log.warning(
            "Rows of split(s) %s are not used: add them to data.test_splits to evaluate on them.", unused
        )
    unlabelled = without_targets(frame, target_specs)
    roles = {
        c: role for c, role in ((split_column, "split"), (id_column, "id"), (how.group_column, "group")) if c
    }
    roles.update({c: "ignored (data.ignore_columns)" for c in how.ignore_columns})
    columns = columns_found(frame, specs, target_specs, left_out, roles, sentinels)
    keep = np.isin(split, used) & ~unlabelled
    if not keep.all():
        frame, split = frame[keep].reset_index(drop=True), split[keep]
    require_splits(split, used, split_column)
    ids = row_ids(frame, id_column)
    spec = {
        "modalities": {m: {k: v for k, v in s.items() if k != "inferred"} for m, s in specs.items()},
        "targets": {t: {k: s[k] for k in ("column", "type", "separator")} for t, s in target_specs.items()},
        "id_column": id_column,
        "split_column": split_column,
        "missing": how.missing.spec(),
    }
    table, _, bad = make_table(
        frame, spec, split, root, ids, how.on_bad_row, report_dir, numbers=np.flatnonzero(keep)
    )
    require_splits(table.split, used, split_column, after="after dropping bad rows")
    table.columns = [c.row() for c in columns]
    if unlabelled.any():
        what = next(iter(target_specs)) if len(target_specs) == 1 else "any"
        table.dropped = {f"no {what} target": int(unlabelled.sum())}
    partly = {t: int(TASKS.get(s["type"]).missing(frame[s["column"]]).sum()) for t, s in target_specs.items()}
    partly = {t: n for t, n in partly.items() if n} if len(target_specs) > 1 else {}
    describe(path, specs, target_specs, table.tasks, table.split, bad, columns, table.dropped, partly)
    return table


def read_rows(path: Path, columns, how: ManifestSettings):
    """(the manifest's rows, a seeded sample of ``how.max_rows`` of them, with missing cells read as
    missing; per column the sentinel cells read as missing)."""
    frame = read_manifest(path, columns=columns)
    if how.max_rows is not None and len(frame) > how.max_rows:
        frame = (
            frame.sample(int(how.max_rows), random_state=how.split_seed).sort_index().reset_index(drop=True)
        )
    return read_missing(frame, how.missing)


def split_column_of(frame: pd.DataFrame, reserved: set) -> str | None:
    """A column named like a split holding train/val/test (schema.find_split_column), said in the log."""
    column = find_split_column(frame, reserved)
    if column:
        log.info(
            "data: column '%s' holds train/val/test: it is the split (data.split_column=%s; "
            "set data.ignore_columns=[%s] to split at random instead).",
            column,
            column,
            column,
        )
    return column


def chosen(specs: dict, use) -> dict:
    """The modalities this run trains on (the top-level ``modalities``; all when empty)."""
    if not use:
        return specs
    absent = [m for m in use if m not in specs]
    if absent:
        named = ", ".join(f"{m} ({s['type']})" for m, s in specs.items())
        raise ConfigError(
            f"modalities={list(use)}: {absent} not in this manifest's modalities: {named}. "
            f"Use those names (e.g. modalities=[{next(iter(specs))}])."
        )
    return {m: specs[m] for m in use}


def without_targets(frame: pd.DataFrame, target_specs: dict) -> np.ndarray:
    """bool per row: the row has none of the targets (so it can be neither trained nor scored on)."""
    rows = np.ones(len(frame), dtype=bool)
    for spec in target_specs.values():
        rows &= TASKS.get(spec["type"]).missing(frame[spec["column"]])
    return rows


def used_columns(path, modalities: dict | None, targets: dict, how: ManifestSettings) -> list[str] | None:
    """The columns to read: with modalities declared, theirs and the targets', split and id columns; else
    all but ``ignore_columns``. None (read all) when one is missing, so its error lists the file's columns,
    or when the format has no header to read them from (JSONL)."""
    names = column_names(path)
    if names is None:
        return None
    if not modalities:
        wanted = [c for c in names if c not in set(how.ignore_columns)]
    else:
        wanted = {
            how.split_column,
            how.group_column,
            how.id_column or "id",
            *(spec.get("column") or task for task, spec in targets.items()),
        }
        for name, spec in modalities.items():
            spec = dict(spec or {})
            listed = [
                c
                for k, v in spec.items()
                if k != "type"
                for c in ([v] if isinstance(v, str) else list(v) if hasattr(v, "__iter__") else [])
            ]
            wanted |= set(listed) or {name}
        if not (wanted - {None, "id"}) <= set(names):
            return None
        wanted = [c for c in names if c in wanted]
    return wanted


def row_ids(frame: pd.DataFrame, id_column: str | None) -> np.ndarray:
    """Each row's id: the id column's value, else its row number."""
    return (
        frame[id_column].astype(str).to_numpy()
        if id_column
        else np.array([str(i) for i in range(len(frame))])
    )


def check_table(
    frame: pd.DataFrame, spec: dict, split: np.ndarray, root: Path, tasks: dict | None = None
) -> BadRows:
    """The preflight of make_table: every row's modalities and targets (known classes: ``tasks``')."""
    known = None if tasks is None else {t: set(tasks[t].get("classes") or []) for t in spec["targets"]}
    return check_rows(frame, spec["modalities"], spec["targets"], split, root, known)


def make_table(
    frame: pd.DataFrame,
    spec: dict,
    split: np.ndarray,
    root: Path,
    ids: np.ndarray,
    on_bad_row: str,
    report_dir: str | None,
    tasks: dict | None = None,
    preprocessing: dict | None = None,
    bad: BadRows | None = None,
    numbers: np.ndarray | None = None,
) -> tuple[MultimodalTable, np.ndarray, BadRows]:
    """Checked rows of ``frame`` -> (table, the kept rows' positions in ``frame``, the bad rows).

    spec: the data spec (modalities, targets, id/split columns; see MultimodalTable.spec). Training
    (``tasks`` None) fits the classes and the preprocessing on the train rows; a trained model
    passes its ``tasks`` (classes) and ``preprocessing`` instead. An empty cell makes the modality
    absent in that row. ``bad``: the rows' check, already made and reported (see check_table): only
    decided on here. ``numbers``: each row's number in the file, for reports (default: its position).
    """
    specs, targets = spec["modalities"], spec["targets"]
    if bad is None:
        bad = check_table(frame, spec, split, root, tasks)
        bad.numbers = numbers
        keep, absent = bad.resolve(on_bad_row, ids, report_dir)
    else:
        keep, absent = bad.decide(on_bad_row)
    if tasks is None and len(keep) < len(
        frame
    ):  # dropped train rows can leave a val/test class unseen in train
        again = check_rows(frame.iloc[keep].reset_index(drop=True), {}, targets, split[keep], root)
        if again.rows:
            log.warning(
                "data: %d more rows dropped: their class no longer appears in the kept train rows.",
                len(again.rows),
            )
            keep = np.delete(keep, sorted(again.rows))
    frame, split = frame.iloc[keep].reset_index(drop=True), split[keep]
    remap = {old: new for new, old in enumerate(keep)}
    train = split == "train"
    raws, fitted = {}, {}
    for name, modality_spec in specs.items():
        modality = MODALITIES.get(modality_spec["type"])
        gone = [remap[old] for old in absent.get(name, []) if old in remap]  # bad cells: not read at all
        part = frame
        if gone:
            part = frame.copy()
            part.loc[gone, modality.columns(modality_spec)] = None
        values = modality.read(part, modality_spec, root)
        for row in gone:
            values[row] = None
        raws[name] = values
        if preprocessing is None:
            pre = modality.fit(modality_spec, [v for v, t in zip(values, train) if t and v is not None])
            if pre is not None:
                fitted[name] = pre
    task_specs, target_arrays = {}, {}
    for task, target in targets.items():
        kind = TASKS.get(target["type"])
        series = frame[target["column"]]
        classes = (
            kind.fit_classes(series, {"task": task, **target}, train)
            if tasks is None
            else tasks[task]["classes"]
        )
        task_specs[task], target_arrays[task] = (
            TaskSpec(target["type"], classes),
            kind.encode(series, target, classes),
        )
    table = MultimodalTable(
        raws,
        target_arrays,
        task_specs,
        split,
        None,
        {m: s["type"] for m, s in specs.items()},
        fitted if preprocessing is None else dict(preprocessing),
        spec,
        ids=np.asarray(ids)[keep],
    )
    return table, keep, bad


def require_splits(split: np.ndarray, names: list[str], split_column: str | None, after: str = "") -> None:
    for name in names:
        if not (split == name).any():
            raise ConfigError(
                f"No '{name}' rows{' ' + after if after else ''}: the split "
                f"({'column ' + split_column if split_column else 'generated'}) "
                f"has {sorted(map(str, set(split)))}. "
                f"Name them train/val/test, or set data.test_splits to the test splits present."
            )


def unreadable(key: str, path, kind: str, err: Exception) -> ConfigError:
    return ConfigError(f"{key}={path}: could not read it as {kind} ({summary(err)}).")


def column_names(path, key: str = "data.path") -> list[str] | None:
    """The manifest's column names from its header (Parquet, CSV); None for JSONL, which has none."""
    files, kind, _ = locate(path, key)
    if kind == "jsonl":
        return None
    try:
        if kind == "parquet":
            import pyarrow.dataset as ds

            return list(ds.dataset([str(f) for f in files], format="parquet").schema.names)
        return [str(c) for c in pd.read_csv(files[0], sep="\t" if kind == "tsv" else ",", nrows=0).columns]
    except Exception as err:
        raise unreadable(key, path, kind, err) from err


def read_chunks(
    path, chunk_rows: int | None = None, key: str = "data.path", columns: list[str] | None = None
):
    """The manifest (see locate) as DataFrames of at most ``chunk_rows`` rows (all of it at once with
    None), so a long file is read in bounded memory; only ``columns`` (default: all) are read from
    Parquet and CSV. Column names become strings."""
    files, kind, _ = locate(path, key)
    reader = None
    try:
        if kind == "parquet":  # pyarrow reads only the asked columns of every shard
            import pyarrow.dataset as ds

            dataset = ds.dataset([str(f) for f in files], format="parquet")
            reader = (
                iter([dataset.to_table(columns=columns).to_pandas()])
                if chunk_rows is None
                else (
                    batch.to_pandas() for batch in dataset.to_batches(columns=columns, batch_size=chunk_rows)
                )
            )
        elif kind == "jsonl":
            reader = (
                iter([pd.read_json(files[0], lines=True)])
                if chunk_rows is None
                else pd.read_json(files[0], lines=True, chunksize=chunk_rows)
            )
        else:
            # only an empty field is NaN here: schema.read_missing decides on the other spellings
            reader = pd.read_csv(
                files[0],
                sep="\t" if kind == "tsv" else ",",
                usecols=columns,
                chunksize=chunk_rows,
                keep_default_na=False,
                na_values=[""],
            )
            reader = iter([reader]) if chunk_rows is None else reader
        while True:
            try:
                frame = next(reader)
            except StopIteration:
                return
            frame.columns = [str(c) for c in frame.columns]
            yield frame
    except ConfigError:
        raise
    except Exception as err:
        raise unreadable(key, path, kind, err) from err
    finally:
        if hasattr(reader, "close"):
            reader.close()


def read_manifest(path, key: str = "data.path", columns: list[str] | None = None) -> pd.DataFrame:
    frame = next(read_chunks(path, key=key, columns=columns))
    if frame.empty:
        raise ConfigError(f"{key}={path}: the manifest has no rows.")
    return frame


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """CSV, TSV, Parquet or JSONL by the suffix, written to a temporary file and renamed into place."""
    kind = READERS.get(path.suffix.lower())

    def write(tmp: Path) -> None:
        if kind == "parquet":
            frame.to_parquet(tmp, index=False)
        elif kind == "jsonl":
            frame.to_json(tmp, orient="records", lines=True)
        else:
            frame.to_csv(tmp, sep="\t" if kind == "tsv" else ",", index=False)

    atomic_write(path, write)


def assign_split(frame: pd.DataFrame, target_specs: dict, how: ManifestSettings) -> np.ndarray:
    """The split column's values, or a seeded split: of whole groups with ``how.group_column``,
    otherwise stratified by the first class target."""
    split_column, group_column = how.split_column, how.group_column
    if split_column:
        names = labels_of(
            frame, split_column, "data.split_column", "split", "fill in train/val/test for them"
        )
        lower = np.char.lower(names.astype(str))
        canonical = np.array([VAL_ALIASES.get(n, n) for n in lower])
        known = np.isin(canonical, ["train", "val", "test"])
        return np.where(known, canonical, names).astype(str).astype(object)
    fractions = list(how.split_fractions)
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ConfigError(
            f"data.split_fractions={fractions} must be three positive shares of train, val "
            f"and test that add up to 1 (e.g. [0.7, 0.15, 0.15])."
        )
    if group_column:
        return group_split(group_labels(frame, group_column), fractions, how.split_seed)
    strata = stratum_of(frame, target_specs)
    if strata is None:
        strata = np.zeros(len(frame), dtype=object)
    rng = np.random.default_rng(how.split_seed)
    split = np.empty(len(frame), dtype=object)
    for stratum in pd.unique(strata):
        rows = rng.permutation(np.flatnonzero(strata == stratum))
        cut = np.round(np.cumsum(fractions) * len(rows)).astype(int)
        split[rows[: cut[0]]], split[rows[cut[0] : cut[1]]], split[rows[cut[1] :]] = "train", "val", "test"
    return split.astype(str)


def labels_of(frame: pd.DataFrame, column: str, key: str, what: str, fix: str) -> np.ndarray:
    """Each row's value of ``column`` (named by the config ``key``) as stripped text; a row without one
    is an error naming the rows and the ``fix``."""
    require_column(frame, column, key)
    empty = np.flatnonzero(frame[column].map(is_empty).to_numpy())
    if len(empty):
        raise ConfigError(
            f"{key}={column}: {len(empty)} rows have no {what} (rows {empty[:5].tolist()}, "
            f"counting data rows from 0): {fix}."
        )
    return frame[column].astype(str).str.strip().to_numpy()


def group_labels(frame: pd.DataFrame, group_column: str) -> np.ndarray:
    """Each row's group; rows without one would otherwise all become one group named "nan"."""
    return labels_of(
        frame,
        group_column,
        "data.group_column",
        "group",
        f"fill in their {group_column} (e.g. a speaker, patient or user id) or drop those rows",
    )


def stratum_of(frame: pd.DataFrame, target_specs: dict) -> np.ndarray | None:
    """Each row's class in the first target that stratifies (a class target), or None."""
    for spec in target_specs.values():
        if TASKS.get(spec["type"]).stratifies:
            return frame[spec["column"]].map(label_name).to_numpy()
    return None


def regroup(frame: pd.DataFrame, split: np.ndarray, target_specs: dict, how: ManifestSettings) -> np.ndarray:
    """The split after data.val_split=group (whole groups of data.group_column held out as val) and
    cv.folds / cv.fold (that fold of the train + val rows as val; stratified, groups kept whole)."""
    groups = group_labels(frame, how.group_column) if how.group_column else None
    if how.val_split == "group":
        if groups is None:
            raise ConfigError(
                "data.val_split=group holds out whole groups: set data.group_column=<column> too "
                "(e.g. data.group_column=speaker)."
            )
        train, val = how.split_fractions[:2]
        split = group_holdout(split, groups, val / (train + val), how.split_seed)
    if how.folds:
        fold = 0 if how.fold is None else how.fold
        split = fold_split(split, stratum_of(frame, target_specs), groups, how.folds, fold, how.split_seed)
    return split
