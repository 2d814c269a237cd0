"""Errors that are the user's to fix: the CLI prints them without a traceback."""

from __future__ import annotations

import os
import sys


class UserError(Exception):
    """A problem with input, configuration or environment that the user can act on."""


#: The operating system's words for the errors DuckDB passes on in its own exceptions (a full
#: disk at a checkpoint is a ``duckdb.FatalException``, not an ``IOException``)
_OS_PROBLEMS = (
    "No space left on device",
    "Disk quota exceeded",
    "Permission denied",
    "Read-only file system",
)


def mentions_environment_problem(text: str) -> bool:
    """Whether an error's text names a full disk, a quota or missing permissions."""
    return any(words in text for words in _OS_PROBLEMS)


def is_environment_error(exc: BaseException) -> bool:
    """An operating-system error (``OSError``: no space left, permission denied) or DuckDB's own
    for one (``duckdb.IOException``, or any DuckDB error that carries the system's words for
    it), as opposed to a bug."""
    duckdb = sys.modules.get("duckdb")  # imported by then if DuckDB raised it
    if isinstance(exc, OSError):
        return True
    if duckdb is None or not isinstance(exc, duckdb.Error):
        return False
    return isinstance(exc, duckdb.IOException) or mentions_environment_problem(str(exc))


#: What DuckDB says of a database file whose bytes are not those it wrote (a disk fault, a copy
#: cut short, another program writing into it)
_DAMAGED = (
    "Corrupt database file",
    "Could not read enough bytes from file",
    "but it is not a valid DuckDB database file",
)


#: DuckDB's errors for a write-ahead log that does not belong to the database file beside it:
#: a command stopped with its log not yet checkpointed, and the file then restored from a backup
_FOREIGN_WAL = ("Failure while replaying WAL", "WAL does not match database file")


def mentions_damaged_database(text: str) -> bool:
    return any(words in text for words in (*_DAMAGED, *_FOREIGN_WAL))


def is_damaged_database(exc: BaseException) -> bool:
    """DuckDB's error for a damaged database file."""
    duckdb = sys.modules.get("duckdb")
    return (
        duckdb is not None and isinstance(exc, duckdb.Error) and mentions_damaged_database(str(exc))
    )


#: DuckDB's words for a query that did not fit its memory_limit (also in dbt's messages)
_OUT_OF_MEMORY = ("Out of Memory Error", "could not allocate block of size")


def is_out_of_memory(exc: BaseException) -> bool:
    """Python's ``MemoryError`` (pyarrow's too) or DuckDB's out-of-memory error."""
    duckdb = sys.modules.get("duckdb")
    if isinstance(exc, MemoryError):
        return True
    return duckdb is not None and isinstance(exc, duckdb.OutOfMemoryException)


def mentions_out_of_memory(text: str) -> bool:
    """Whether an error's text (a dbt model's, say) is DuckDB running out of memory."""
    return any(words in text for words in _OUT_OF_MEMORY)


def memory_advice(again: str) -> str:
    """What to do when DuckDB or Python ran out of memory; ``again``: how to carry on."""
    limit = os.environ.get("RETENTION_DUCKDB_MEMORY_LIMIT", "3GB")
    return (
        f"what to do: RETENTION_DUCKDB_MEMORY_LIMIT (now {limit}) is DuckDB's ceiling, beyond "
        "which it spills to disk: raise it if the machine has the memory free, lower it if the "
        f"machine has less (or free memory, or give the machine more), {again}"
    )


def environment_advice(data_dir: str | None, again: str) -> str:
    """What to do about a full disk or missing permissions; ``again``: how to carry on."""
    return (
        "what to do: check the free disk space and the permissions under "
        f"{data_dir or 'the data directory'}, {again}"
    )


def damaged_database_advice(data_dir: str | None, error: str = "") -> str:
    """What to do about a damaged build warehouse (``error``: DuckDB's message): nothing rebuilds
    raw.* but its landing files."""
    warehouse = f"{data_dir}/warehouse.duckdb" if data_dir else "warehouse.duckdb"
    if any(words in error for words in _FOREIGN_WAL):
        return (
            f"what to do: {warehouse}.wal, the log of writes not yet in {warehouse}, does not "
            "belong to it (was the warehouse restored from a backup after a command was "
            f"stopped?). Move {warehouse}.wal aside and run `retention run`: a landing file "
            "whose rows were only in that log is loaded again, and the build redone."
        )
    return (
        f"what to do: the build warehouse ({warehouse}) is damaged. Restore it "
        f"from a backup (and move aside any {warehouse}.wal beside it, which belongs to the "
        "damaged file); or, if every file loaded so far is still under landing/, move both "
        "aside and run `retention run`, which loads them all again (rows of landing files "
        "removed since are only in the damaged file). serving/ keeps the last release published."
    )
