"""Errors that are the user's to fix: the CLI prints them without a traceback."""


class UserError(Exception):
    """A problem with input, configuration or environment that the user can act on."""
