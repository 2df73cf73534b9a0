"""Which files a ``data.path`` names and their format: light (no pandas, no torch), so a wrong path
is answered before anything heavy is imported (config/validate.py asks here first)."""

from __future__ import annotations

import glob
from pathlib import Path

from mmtrain.core.errors import ConfigError

READERS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".json": "jsonl",
}


def manifest_kind(path: Path, key: str = "data.path") -> str:
    """csv, tsv, parquet or jsonl from the suffix; a ConfigError for another suffix or no file."""
    kind = READERS.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(
            f"{key}={path}: unknown manifest format '{path.suffix}'. Use .csv, .tsv, .parquet or .jsonl."
        )
    if not path.is_file():
        raise ConfigError(
            f"{key}={path}: no such file. Point {key} at the manifest (CSV, Parquet "
            f"or JSONL); relative media paths in it are read from its folder."
        )
    return kind


def locate(path, key: str = "data.path") -> tuple[list[Path], str, Path]:
    """What ``path`` names -> (its files, their format, the folder relative media paths are read from).

    A manifest file; a folder holding one ``manifest.*`` (that file); or a folder or glob
    (``shards/part-*.parquet``) of Parquet shards, read in name order as one table.
    """
    path = Path(str(path)).expanduser()
    if glob.has_magic(str(path)):
        files = sorted(Path(f) for f in glob.glob(str(path), recursive=True) if Path(f).is_file())
        root = Path(
            *[part for part in path.parts[: next(i for i, p in enumerate(path.parts) if glob.has_magic(p))]]
        )
        if not files:
            raise ConfigError(f"{key}={path}: the pattern matches no file.")
    elif path.is_dir():
        own = [f for f in sorted(path.glob("manifest.*")) if f.suffix.lower() in READERS]
        files, root = own if len(own) == 1 else sorted(path.glob("*.parquet")), path
        if not files:
            raise ConfigError(
                f"{key}={path}: the folder holds no manifest.* file and no .parquet shards; point "
                f"{key} at the manifest file, or at a folder (or glob) of Parquet shards."
            )
    else:
        files, root = [path], path.parent
    kinds = {manifest_kind(f, key) for f in files}
    if len(files) > 1 and kinds != {"parquet"}:
        raise ConfigError(
            f"{key}={path}: {len(files)} files of {sorted(kinds)}; several files are read as one "
            f"table only when they are Parquet shards. Point {key} at one file."
        )
    return files, kinds.pop(), root.absolute()
