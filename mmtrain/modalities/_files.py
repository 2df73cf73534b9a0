"""Modalities whose cells name media files (audio, image): paths relative to the manifest's folder,
every file decoded once by the preflight."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from mmtrain.core.cells import is_empty, media_path, value_kind
from mmtrain.modalities import ColumnModality


class FileModality(ColumnModality):
    suffixes: tuple[str, ...]

    def claims(self, series, values):
        if not len(values) or value_kind(values) != "string":
            return False
        return bool(values.str.lower().str.endswith(self.suffixes).all())

    def read_cell(self, value, root):
        return media_path(value, root)

    def check_file(self, path) -> str | None:
        """None if the file decodes, else the reason."""
        raise NotImplementedError

    def check(self, frame, name, spec, root, bad):
        """Decode every file (threads: soundfile and PIL release the GIL while decoding)."""
        column = spec["column"]
        todo = {}
        for row, value in enumerate(frame[column]):
            if is_empty(value):  # missing in this row
                continue
            path = media_path(value, root)
            if not path.is_file():
                bad.add(row, name, column, f"file not found: {path}")
            else:
                todo[row] = path
        with ThreadPoolExecutor(max_workers=4) as pool:
            for row, reason in zip(todo, pool.map(self.check_file, todo.values())):
                if reason:
                    bad.add(
                        row, name, column, reason if str(todo[row]) in reason else f"{reason}: {todo[row]}"
                    )
