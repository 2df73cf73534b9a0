"""The one exception for user mistakes: the CLI prints its message and exits with code 2."""

from __future__ import annotations

import difflib


class ConfigError(ValueError):
    """A bad config value or bad input, with a message that names the key and the fix."""


def unknown_keys(node, known, where: str, hints: dict[str, str] | None = None) -> None:
    """A ConfigError for the first key of ``node`` that is not in ``known``, with a did-you-mean
    (``hints`` maps a common mistake to the key meant)."""
    for key in node or {}:
        if key in known:
            continue
        full = f"{where}.{key}" if where else key
        close = [hints[key]] if hints and key in hints else difflib.get_close_matches(key, list(known), n=1)
        prefix = f"{where}." if where else ""
        hint = f"did you mean {prefix}{close[0]}?" if close else f"known keys: {', '.join(sorted(known))}."
        raise ConfigError(f"{full} is not a setting of mmtrain: {hint} (mmtrain --cfg job shows them all).")


def build(node, key: str, **kwargs):
    """``hydra.utils.instantiate`` that lets a ConfigError through as it is, and turns any other
    failure to build into a ConfigError naming the config key."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, ConfigError):
            raise cause from None
        target = node.get("_target_") if hasattr(node, "get") else None
        raise ConfigError(f"{key}: could not build {target}: {cause or err}. Check the keys under "
                          f"{key} (mmtrain --cfg job shows them).") from err
