"""The exceptions for user mistakes (the CLI prints the message and exits with code 2): ConfigError
for a setting, DataError for the data. Anything else is a bug in mmtrain, reported as one (see
``summary`` and mmtrain/cli.py)."""

from __future__ import annotations

import difflib


class ConfigError(ValueError):
    """A bad config value or bad input, with a message that names the key and the fix."""


class DataError(ConfigError):
    """Data that cannot be used as it is, with a message that names the column, the rows and the fix."""


def explained(err: BaseException) -> str | None:
    """The message a person can act on, for a failure that is not a bug: a ConfigError/DataError, a
    training loss that diverged, memory that ran out. None for anything else (a bug in mmtrain)."""
    if isinstance(err, (ConfigError, FloatingPointError)):
        return str(err)
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":
        return (
            f"out of memory ({summary(err)}): lower data.batch_size, use trainer.precision=bf16-mixed, "
            f"or freeze the pretrained encoders (preset=fast)."
        )
    return None


def internal_error(err: BaseException, log_path) -> str:
    """The one paragraph shown for a bug, with where its full traceback was written."""
    return (
        f"mmtrain hit an internal error ({summary(err)}). This is a bug in mmtrain, not a problem with your "
        f"settings or data. The full traceback is in {log_path}; please report it with that file."
    )


def closest(word: str, choices) -> str | None:
    """The one did-you-mean: the choice closest to a misspelt ``word``, or None when none is close."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return close[0] if close else None


def summary(err: BaseException, limit: int = 200) -> str:
    """``TypeName: first line of the message`` (at most ``limit`` characters), for any exception."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0][:limit]}" if lines else type(err).__name__


def unknown_keys(node, known, where: str, hints: dict[str, str] | None = None) -> None:
    """A ConfigError for the first key of ``node`` that is not in ``known``, with a did-you-mean
    (``hints`` maps a common mistake to the key meant)."""
    for key in node or {}:
        if key in known:
            continue
        full = f"{where}.{key}" if where else key
        close = hints[key] if hints and key in hints else closest(key, known)
        prefix = f"{where}." if where else ""
        hint = f"did you mean {prefix}{close}?" if close else f"known keys: {', '.join(sorted(known))}."
        raise ConfigError(f"{full} is not a setting of mmtrain: {hint} (mmtrain --cfg job shows them all).")


def build(node, key: str, **kwargs):
    """``hydra.utils.instantiate`` that turns what the config got wrong (a ``_target_`` that cannot be
    found, a key the target does not take, a missing argument) into a ConfigError naming the config
    key, and lets everything raised while the target runs through as it is: a ConfigError/DataError
    is the user's to fix, any other error is a bug, not a config problem."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = root = err.__cause__
        while root is not None and root.__cause__ is not None:
            root = root.__cause__
        target = node.get("_target_") if hasattr(node, "get") else None
        if cause is None or _names_nothing(root) or _is_call_mismatch(cause):
            raise ConfigError(
                f"{key}: could not build {target}: {summary(cause or err)}. Check the keys under "
                f"{key} (mmtrain --cfg job shows them)."
            ) from err
        raise root from None


def check_arguments(node, key: str) -> None:
    """A ConfigError with a did-you-mean for a key of the ``_target_`` node ``node`` (config key
    ``key``) that its class or function does not take, before anything is built (a target taking
    ``**kwargs`` takes any)."""
    import inspect

    from hydra.utils import get_object

    parameters = inspect.signature(get_object(node["_target_"])).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    for name in node:
        if not str(name).startswith("_") and name not in parameters:
            close = closest(name, parameters)
            hint = f"did you mean {key}.{close}?" if close else f"it takes {', '.join(parameters)}."
            raise ConfigError(f"{key}.{name} is not an argument of {node['_target_']}: {hint}")


def _names_nothing(err: BaseException) -> bool:
    """``_target_`` names no module or no attribute of one (as opposed to code that fails to import)."""
    return isinstance(err, (ModuleNotFoundError, AttributeError)) and "Error loading" not in str(err)


def _is_call_mismatch(err: BaseException) -> bool:
    """A TypeError from calling the target with the config's keys (not one raised inside it)."""
    return isinstance(err, TypeError) and any(
        words in str(err)
        for words in (
            "unexpected keyword argument",
            "required positional argument",
            "required keyword-only argument",
            "takes no arguments",
        )
    )
