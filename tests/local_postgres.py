"""A real PostgreSQL on a free loopback port, for the shared-study tests and scripts/bench_sweeps.py:
initdb + pg_ctl (as the postgres user when root), in a folder of its own, stopped and removed after."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path


def bin_dir() -> Path | None:
    """Where pg_ctl and initdb are (on PATH, or Debian's /usr/lib/postgresql/<version>/bin), or None."""
    found = [Path(p).parent for p in [shutil.which("pg_ctl")] if p] + sorted(
        Path("/usr/lib/postgresql").glob("*/bin")
    )
    return found[0] if found else None


@contextmanager
def running_postgres():
    """Yields the URL of a fresh PostgreSQL (database postgres, user mmtrain, trust auth)."""
    binaries, folder = bin_dir(), Path(tempfile.mkdtemp(prefix="mmtrain-pg-"))
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(folder, "postgres")
    data = folder / "data"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctl = [*as_user, str(binaries / "pg_ctl"), "-D", str(data)]
    try:
        subprocess.run(
            [*as_user, str(binaries / "initdb"), "-D", str(data), "-U", "mmtrain", "--auth=trust"],
            check=True,
            capture_output=True,
        )
        # the server's output goes to its log file: pipes it inherited would keep subprocess.run waiting
        start = [*ctl, "-o", f"-p {port} -k {folder} -h 127.0.0.1", "-l", str(folder / "log"), "-w", "start"]
        subprocess.run(start, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        yield f"postgresql://mmtrain@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
