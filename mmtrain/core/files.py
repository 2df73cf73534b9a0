"""Writing a file so that a reader (or a crash) never sees half of it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: Path, write: Callable[[Path], None], mode: int = 0o644) -> Path:
    """``write(tmp)`` into a fresh temporary file beside ``path``, then rename it over ``path``
    (atomic on one file system; concurrent writers each use their own temporary name)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(Path(tmp))
        os.chmod(tmp, mode)  # mkstemp makes it private; outputs are as readable as any other file
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path
