"""Dagster steps take the data directory's lock, as `retention` commands do.

A step that writes or reads the warehouse (load, the dbt steps, the Great Expectations checks,
publish, report) holds ``$RETENTION_DATA_DIR/.retention.lock`` while it runs
(``retention.locking``). A `retention run` started by hand while a scheduled run is in one of
its steps then queues behind the step, or says which step holds the directory, instead of
failing on DuckDB's own lock; a step that finds a command running waits for it
(``RETENTION_DAGSTER_LOCK_WAIT`` seconds, one hour by default) and logs that it does.

Runs of the job do not interleave with one another (the run queue starts one at a time:
dagster.prod.yaml); a command may run between two steps of a run, as it could between two
commands.
"""

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import dagster as dg

from retention.config import Paths
from retention.locking import Busy, exclusive

LOCK_WAIT_ENV = "RETENTION_DAGSTER_LOCK_WAIT"
DEFAULT_LOCK_WAIT_SECONDS = 3600.0


def lock_wait_seconds() -> float:
    """How long a step waits for the data directory (``RETENTION_DAGSTER_LOCK_WAIT``)."""
    text = os.environ.get(LOCK_WAIT_ENV, "").strip()
    if not text:
        return DEFAULT_LOCK_WAIT_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also NaN
        raise dg.Failure(
            f"{LOCK_WAIT_ENV}={text!r} is not a number of seconds (0 or more)",
            allow_retries=False,
        )
    return seconds


@contextmanager
def data_directory(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
) -> Iterator[Paths]:
    """The data directory, held by this step for the block."""
    paths = Paths.from_env()
    step = f"dagster run {context.run.run_id[:8]}, step {context.op_def.name}"
    wait = lock_wait_seconds()
    with ExitStack() as held:
        try:
            held.enter_context(
                exclusive(
                    paths,
                    step,
                    wait_seconds=wait,
                    on_wait=context.log.info,
                    how_to_wait=f"set {LOCK_WAIT_ENV} (seconds, now {wait:.0f}) to wait longer",
                )
            )
        except Busy as exc:
            # the step has waited already: Dagster's retries would only wait again
            raise dg.Failure(description=str(exc), allow_retries=False) from None
        yield paths
