"""The one exception for user mistakes: the CLI prints its message and exits with code 2."""


class ConfigError(ValueError):
    """A bad config value or bad input, with a message that names the key and the fix."""
