"""A request's rows -> the DataFrame ``predict`` takes, or a clear 4xx (``BadRequest``) naming the row,
the key and the fix. Nothing here trusts the client: keys must be input columns (or the id column,
or ``serve.passthrough``), values must be of their column's JSON type, numbers finite, media base64
or an uploaded part (or, with ``serve.allow_root``, a path inside that folder)."""

from __future__ import annotations

import base64
import binascii
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mmtrain.core.errors import closest
from mmtrain.data.schema import Missing
from mmtrain.modalities import MODALITIES

MEDIA = ("image", "audio")


class BadRequest(Exception):
    """A request the server refuses: HTTP ``status`` with a ``kind`` (for /metrics) and a message."""

    def __init__(self, status: int, kind: str, message: str):
        super().__init__(message)
        self.status, self.kind = status, kind


@dataclass
class Signature:
    """What a model reads: each input column's modality, its type and (tabular) kind; the id column;
    the cell texts its training read as missing (data.na_values, e.g. "?")."""

    columns: dict[str, tuple[str, str, str]]  # column -> (modality, modality type, kind)
    id_column: str | None
    passthrough: list[str] = field(default_factory=list)
    missing: frozenset = frozenset()

    @classmethod
    def of(cls, model, passthrough=()) -> Signature:
        columns = {}
        for m, spec in model.spec["modalities"].items():
            kind_of = MODALITIES.get(spec["type"]).column_kinds(spec) if spec["type"] == "tabular" else {}
            for column in MODALITIES.get(spec["type"]).columns(spec):
                kind = kind_of.get(column, spec["type"]).split(", ")[-1]
                columns[column] = (m, spec["type"], kind)
        missing = Missing.of(model.spec.get("missing")).sentinels | {""}
        return cls(columns, model.spec.get("id_column") or "id", list(passthrough), missing)

    def describe(self) -> dict:
        return {c: {"modality": m, "type": t, "kind": k} for c, (m, t, k) in self.columns.items()}


def rows_of(body) -> list:
    if not isinstance(body, dict) or not ("rows" in body or "row" in body):
        raise BadRequest(
            400, "no_rows", 'The body must be a JSON object {"rows": [{column: value, ...}, ...]}.'
        )
    rows = body.get("rows", body.get("row"))
    rows = [rows] if isinstance(rows, dict) else rows
    if not isinstance(rows, list) or not rows:
        raise BadRequest(400, "no_rows", '"rows" must be a non-empty list of objects {column: value, ...}.')
    return rows


def frame_of(
    rows: list, signature: Signature, files: dict[str, bytes], folder: Path, allow_root, max_rows: int
):
    """(the rows as a DataFrame with every input column, media written under ``folder``; the values to
    echo back per row: the id column and ``serve.passthrough`` keys)."""
    if len(rows) > max_rows:
        raise BadRequest(
            413, "too_many_rows", f"{len(rows)} rows in one request; at most serve.max_rows={max_rows}."
        )
    allowed = set(signature.columns) | {signature.id_column, *signature.passthrough}
    cells, echoes = [], []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise BadRequest(
                400, "bad_row", f"row {i} is {type(row).__name__}, not an object {{column: value}}."
            )
        for key in row:
            if key not in allowed:
                near = closest(key, allowed)
                raise BadRequest(
                    400,
                    "unknown_column",
                    f"row {i}: '{key}' is not an input column"
                    + (f" (did you mean '{near}'?)" if near else "")
                    + f". The model reads {sorted(signature.columns)}; the id column '{signature.id_column}'"
                    + (f" and {list(signature.passthrough)} are" if signature.passthrough else " is")
                    + " echoed back. Leave a column out (or null) when the row lacks it.",
                )
        cell = {
            c: cell_of(row.get(c), c, spec, i, files, folder, allow_root, signature.missing)
            for c, spec in signature.columns.items()
        }
        if all(v is None for v in cell.values()):
            raise BadRequest(
                400, "empty_row", f"row {i} has no input: give at least one of {sorted(signature.columns)}."
            )
        cells.append(cell)
        echoes.append({k: row[k] for k in (signature.id_column, *signature.passthrough) if k in row})
    frame = pd.DataFrame(cells, columns=list(signature.columns))
    if any(signature.id_column in e for e in echoes):
        frame[signature.id_column] = [e.get(signature.id_column) for e in echoes]
    return frame, echoes


def cell_of(value, column: str, spec: tuple, row: int, files, folder: Path, allow_root, missing: frozenset):
    """One checked cell (None when missing: null, or a text in ``missing``, as training read a file)."""
    _, modality_type, kind = spec
    where = f"row {row}, column '{column}'"
    if value is None or isinstance(value, str) and value.strip() in missing:
        return None
    if modality_type in MEDIA:
        return media_cell(value, where, modality_type, files, folder, allow_root)
    if modality_type == "tabular" and kind == "numeric":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadRequest(
                400, "wrong_type", f"{where}: expected a number, got {json_type(value)} {value!r:.40}."
            )
        if not math.isfinite(value):
            raise BadRequest(
                400, "not_finite", f"{where}: {value} is not a finite number (use null for missing)."
            )
        return float(value)
    if modality_type == "tabular":  # categories and dates: a word, a number or a boolean
        if (
            not isinstance(value, (str, int, float, bool))
            or isinstance(value, float)
            and not math.isfinite(value)
        ):
            raise BadRequest(400, "wrong_type", f"{where}: expected a value, got {json_type(value)}.")
        return value
    if modality_type == "sequence":
        if not isinstance(value, (str, list)):
            raise BadRequest(
                400, "wrong_type", f"{where}: expected a list of numbers, got {json_type(value)}."
            )
        return value if isinstance(value, str) else str(value)
    if not isinstance(value, str):
        raise BadRequest(400, "wrong_type", f"{where}: expected text, got {json_type(value)} {value!r:.40}.")
    return value


def media_cell(value, where: str, modality_type: str, files, folder: Path, allow_root) -> str:
    """An image/audio cell -> the path of its bytes on this machine: {"b64": ...} is decoded into the
    request's temporary folder, a name of an uploaded part is that part, any other string a path
    (only inside serve.allow_root)."""
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        try:
            data = base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError) as err:
            raise BadRequest(400, "bad_base64", f"{where}: the b64 value is not base64 ({err}).") from err
        return written(data, folder)
    if not isinstance(value, str):
        raise BadRequest(
            400,
            "wrong_type",
            f'{where}: expected {{"b64": "<base64 {modality_type}>"}} or the name of an uploaded file part, '
            f"got {json_type(value)}.",
        )
    if value in files:
        return written(files[value], folder)
    if allow_root is None:
        raise BadRequest(
            403,
            "path_refused",
            f"{where}: '{value:.80}' is neither an uploaded part nor base64, and file paths are refused: "
            "send "
            f'the file as {{"b64": ...}} or as a multipart part named by the cell (the server reads paths '
            f"only when started with serve.allow_root=<folder>).",
        )
    root = Path(allow_root).resolve()
    path = (root / value).resolve()  # an absolute value replaces root; symlinks and .. are resolved
    if not path.is_relative_to(root):
        raise BadRequest(403, "path_refused", f"{where}: '{value:.80}' is outside serve.allow_root ({root}).")
    return str(path)


def written(data: bytes, folder: Path) -> str:
    with tempfile.NamedTemporaryFile(dir=folder, delete=False) as f:
        f.write(data)
    return f.name


def json_type(value) -> str:
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "text",
        list: "a list",
        dict: "an object",
    }.get(type(value), type(value).__name__)
