"""Errors that are the user's to fix: the CLI prints them without a traceback."""

from __future__ import annotations

import sys


class UserError(Exception):
    """A problem with input, configuration or environment that the user can act on."""


def is_environment_error(exc: BaseException) -> bool:
    """An operating-system error (``OSError``: no space left, permission denied) or DuckDB's own
    for one (``duckdb.IOException``), as opposed to a bug."""
    duckdb = sys.modules.get("duckdb")  # imported by then if DuckDB raised it
    return isinstance(exc, OSError) or (duckdb is not None and isinstance(exc, duckdb.IOException))
