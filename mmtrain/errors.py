"""The one exception for user mistakes: the CLI prints its message and exits with code 2."""


class ConfigError(ValueError):
    """A bad config value or bad input, with a message that names the key and the fix."""


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
