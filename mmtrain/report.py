"""``mmtrain-report <dir>``: a sweep dir -> its leaderboard (leaderboard.md/csv/png over every job
under it); a run dir (it holds run.json) -> its report.md again, from its own files; an ensemble dir ->
its report.md (as mmtrain-ensemble wrote it)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mmtrain.core import artefacts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mmtrain-report", description=__doc__.splitlines()[0].strip("`"))
    parser.add_argument("dir", type=Path, help="a multirun dir (one sub-dir per job) or one run dir")
    args = parser.parse_args(argv)
    print(report(args.dir).read_text())


def report(folder: Path) -> Path:
    """The leaderboard of a sweep dir, or the report.md of a run dir; returns the file written."""
    if not folder.is_dir():
        raise SystemExit(f"mmtrain-report: {folder} is not a directory.")
    if (folder / artefacts.ENSEMBLE).is_file():  # written whole by mmtrain-ensemble from its members
        return folder / artefacts.REPORT
    if (folder / artefacts.RUN_INFO).is_file():
        from mmtrain.reporting.run_report import write

        return write(folder)
    from mmtrain.reporting.leaderboard import write

    return write(folder)


if __name__ == "__main__":
    main()
