"""The base of every error caused by bad input: entry points print its message as one line and exit with 2."""


class UserError(Exception):
    """Bad input or configuration; the message names the problem (file, row, key) and the fix."""


class UserConfigError(UserError, ValueError):
    """A config value that cannot work; the message names the key."""
