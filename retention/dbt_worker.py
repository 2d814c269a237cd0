"""dbt's command line in a process started before it is needed.

``retention run`` starts this while it loads (see ``retention.dbt.warm_dbt``): the process
imports dbt and the target's adapter (about 1.5 s of one core) while the load leaves a core
idle (on DuckDB, if its command has not come by then, the CLV models' modules too), then
waits for one line on standard input, a JSON object of dbt arguments (``args``) and the
environment they need (``environment``), and runs dbt's own command line with them, exactly as
the ``dbt`` executable would (same output, same exit code). An empty standard input (the
pipeline stopped before the build) ends it quietly.

``retention`` runs every dbt command through it, started ahead or not: at exit, the interpreter
would collect the objects dbt leaves behind (its manifest, its results), 0.4-0.5 s of every
build whatever its size, only to free memory the process returns anyway. They are frozen out of
that collection instead (``gc.freeze``); the exit handlers still run (dbt-duckdb closes the
warehouse there, with its checkpoint) and the standard streams are still flushed. While dbt
runs, the collector runs less often (``config.GC_THRESHOLDS``).

SIGINT and SIGTERM stop dbt as Ctrl-C does in a terminal (it cancels its queries, writes its run
results and exits), whatever the process that started this one ignored (a shell's background
job ignores SIGINT, and its children inherit that); the first one does, the next are ignored.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import select
import signal
import sys

from retention.config import GC_THRESHOLDS, apply_environment


def _interrupt(signum: int, frame: object) -> None:
    """The first SIGINT or SIGTERM stops dbt; later ones are ignored. The command that started
    this one passes a stop on (``dbt.stop_started``), and Ctrl-C in a terminal reaches this
    process as well: a second KeyboardInterrupt would cut short dbt's cancelling of its
    queries. What must end at once is killed (SIGKILL)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def _command_waiting() -> bool:
    """Whether standard input can be read without waiting (a command, or its end)."""
    try:
        return bool(select.select([sys.stdin], [], [], 0)[0])
    except (OSError, ValueError):  # not a pipe or a terminal
        return True


def main() -> None:
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    gc.set_threshold(*GC_THRESHOLDS)  # before dbt's imports, which make objects too
    from dbt.cli.main import cli

    target = os.environ.get("RETENTION_DBT_TARGET") or "duckdb"
    with contextlib.suppress(ImportError):  # dbt reports a missing adapter in its own words
        importlib.import_module(f"dbt.adapters.{target}")
    if target == "duckdb" and not _command_waiting():
        # what the CLV models import (pandas, SciPy: about a second of the first one's time), while
        # the caller is still busy (loading, in `retention run`); not when the command is here
        importlib.import_module("retention.clv_marts")
    line = sys.stdin.readline()
    if not line.strip():
        return
    request = json.loads(line)
    # the environment the command needs that this process, started before the command was
    # known, may not have: a name given None is removed (retention.dbt.as_of_environment)
    apply_environment(os.environ, request.get("environment", {}))
    args = request["args"]
    sys.stdin = open(os.devnull)  # noqa: SIM115 (dbt reads no input)
    sys.argv = ["dbt", *args]
    try:
        sys.exit(cli(prog_name="dbt"))
    finally:
        gc.freeze()


if __name__ == "__main__":
    main()
