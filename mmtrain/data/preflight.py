"""The preflight: every row of a manifest is checked before training, so bad input fails (or is
skipped, or made a missing modality) up front with a report, never mid-epoch.

What is bad is each modality type's and task type's to say (their ``check``, mmtrain/modalities/
and mmtrain/tasks/): an empty cell of a text/audio/image/sequence column, a missing or undecodable
media file, a time series that does not parse or holds NaN/inf, text where a number should be or an
infinite number in a tabular column (NaN there is a missing value: imputed and flagged), an empty
or non-numeric target, and a class (or label) of a val/test row that the train split never has.
"""

from __future__ import annotations

import csv
import logging
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from mmtrain.core import artefacts
from mmtrain.core.errors import DataError
from mmtrain.modalities import MODALITIES
from mmtrain.tasks import TASKS

log = logging.getLogger(__name__)
SHOWN = 5  # bad rows quoted in the error message; the report file has all of them


class BadRows:
    """row -> [(field, column, reason)]; field is a modality name or ``target <task>``."""

    def __init__(self, num_rows: int):
        self.num_rows = num_rows
        self.rows: dict[int, list[tuple[str, str, str]]] = defaultdict(list)
        self.numbers: np.ndarray | None = (
            None  # each row's number in the file, where rows were left out before
        )

    def add(self, row: int, field: str, column: str, reason: str) -> None:
        self.rows[row].append((field, column, reason))

    def number(self, row: int) -> int:
        return row if self.numbers is None else int(self.numbers[row])

    def summary(self) -> str:
        return f"{len(self.rows)} of {self.num_rows} rows are bad"

    def resolve(self, on_bad_row: str, ids, report_dir: str | None):
        """-> (rows to keep, {modality: rows where it becomes absent}), after writing bad_rows.csv.
        error: raise with the first rows and reasons; skip: drop bad rows; missing: a bad modality
        becomes absent for that row (a bad target still drops the row)."""
        everything = np.arange(self.num_rows)
        if not self.rows:
            return everything, {}
        report = self.write(ids, report_dir)
        first = "; ".join(
            f"row {self.number(row)} (id {ids[row]}): "
            + ", ".join(f"{column}: {reason}" for _, column, reason in problems)
            for row, problems in sorted(self.rows.items())[:SHOWN]
        )
        where = f" All of them: {report}." if report else ""
        where += " (Rows count data rows from 0: row 0 is the CSV's second line.)"
        if on_bad_row == "error":
            raise DataError(
                f"data: {self.summary()} (first: {first}).{where} Fix or remove those rows, or set "
                f"data.on_bad_row=skip (leave those rows out) or data.on_bad_row=missing (treat the bad "
                f"modality as absent in those rows)."
            )
        keep, absent = self.decide(on_bad_row)
        log.warning(
            "data: %s; data.on_bad_row=%s: %d rows dropped, %d made a missing modality.%s",
            self.summary(),
            on_bad_row,
            self.num_rows - len(keep),
            len({r for rows in absent.values() for r in rows} & set(keep.tolist())),
            where,
        )
        return keep, absent

    def decide(self, on_bad_row: str):
        """(rows to keep, {modality: rows where it becomes absent}) for skip or missing, without
        reporting: skip drops bad rows; missing makes a bad modality absent (a bad target drops)."""
        absent: dict[str, list[int]] = defaultdict(list)
        dropped = set()
        for row, problems in self.rows.items():
            for field, _, _ in problems:
                if on_bad_row == "skip" or field.startswith("target "):
                    dropped.add(row)
                else:
                    absent[field].append(row)
        keep = np.array([r for r in range(self.num_rows) if r not in dropped], dtype=np.int64)
        return keep, {m: np.array(rows, dtype=np.int64) for m, rows in absent.items()}

    def write(self, ids: np.ndarray, report_dir: str | None) -> Path | None:
        if not report_dir:
            return None
        path = Path(report_dir) / artefacts.BAD_ROWS
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["row", "id", "field", "column", "reason"])
            for row, problems in sorted(self.rows.items()):
                for field, column, reason in problems:
                    writer.writerow([self.number(row), ids[row], field, column, reason])
        return path


def check_rows(
    frame: pd.DataFrame,
    specs: dict,
    target_specs: dict,
    split: np.ndarray,
    root: Path,
    known: dict[str, set] | None = None,
) -> BadRows:
    """Check every row of every used modality and target (specs as made by manifest.py). known:
    task -> its classes (a trained model's); without it, the classes are those of the train rows."""
    start = time.perf_counter()
    log.info("Checking %d rows (%s) ...", len(frame), ", ".join(specs))
    bad = BadRows(len(frame))
    for name, spec in specs.items():
        MODALITIES.get(spec["type"]).check(frame, name, spec, root, bad)
    for task, spec in target_specs.items():
        TASKS.get(spec["type"]).check(
            frame[spec["column"]], f"target {task}", spec, (known or {}).get(task), split == "train", bad
        )
    log.info(
        "Checked %d rows in %.1f s: %s",
        len(frame),
        time.perf_counter() - start,
        bad.summary() if bad.rows else "all good",
    )
    return bad
