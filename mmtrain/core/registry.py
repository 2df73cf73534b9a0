"""A registry of named types (task types, modality types) filled by the modules of one package, as
timm's model registry is: each module of the package defines one type and registers it, so a new
type is one new file. The package's modules are imported on the first look-up."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Generic, TypeVar

from mmtrain.core.errors import ConfigError, closest

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, package: str, what: str):
        self.package, self.what = package, what
        self._items: dict[str, T] = {}
        self._loaded = False

    def register(self, cls: type[T]) -> type[T]:
        """Class decorator: registers one instance under ``cls.name``."""
        if cls.name in self._items:
            raise ValueError(f"{self.what} '{cls.name}' is registered twice")
        self._items[cls.name] = cls()
        return cls

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for info in pkgutil.iter_modules(importlib.import_module(self.package).__path__):
                if not info.name.startswith("_"):
                    importlib.import_module(f"{self.package}.{info.name}")

    def names(self) -> list[str]:
        """Sorted, whatever order the modules were imported in."""
        self._load()
        return sorted(self._items)

    def __iter__(self):
        return iter([self._items[name] for name in self.names()])

    def __contains__(self, name) -> bool:
        self._load()
        return name in self._items

    def get(self, name: str, key: str | None = None) -> T:
        """The type called ``name``; an unknown one is a ConfigError naming ``key`` (the config key
        that gave it) and the known names."""
        self._load()
        if name in self._items:
            return self._items[name]
        close = closest(name, self._items)
        hint = f"did you mean {close}? " if close else ""
        raise ConfigError(
            f"{key + '=' if key else ''}{name} is not a known {self.what}: {hint}use one of "
            f"{', '.join(self.names())}."
        )
