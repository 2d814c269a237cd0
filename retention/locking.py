"""One writer at a time per data directory.

Commands that write (load, build, validate, publish, report, run, demo) hold an exclusive lock
on ``$RETENTION_DATA_DIR/.retention.lock`` for their whole duration. A second command started
meanwhile waits up to ``wait_seconds`` and then exits with a clear message; it never interleaves
with the first. The lock is released by the operating system when its process ends, so a killed
run never leaves a stale lock behind.

The dbt processes a command starts share the lock (``inherited_descriptors``: they inherit its
descriptor): a command killed alone leaves its dbt build running, writing the warehouse, and
the data directory stays locked until that build has ended too, so the next command queues
behind it instead of failing on the warehouse's own lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import IO

from retention.config import Paths
from retention.errors import UserError


class Busy(UserError):
    """Another retention command holds the data directory."""


#: the descriptor of the lock this process holds (``exclusive``), if any
_held: list[int] = []


def inherited_descriptors() -> tuple[int, ...]:
    """Descriptors for ``subprocess``'s ``pass_fds`` when starting a process that writes the
    warehouse: the data directory's lock, while this process holds it. The lock belongs to the
    open file, so it is released only when every process holding the file has ended."""
    return tuple(_held)


def _holder(handle: IO[str]) -> str:
    """What the lock's holder wrote in it (its pid, command and start)."""
    handle.seek(0)
    return handle.read().strip() or "unknown"


def _ended_note(holder: str) -> str:
    """When the command that took the lock has ended (killed) and its dbt build has not: say so."""
    try:
        os.kill(int(json.loads(holder)["pid"]), 0)
    except ProcessLookupError:
        return "; that command has ended, but a dbt build it started is still running"
    except (ValueError, KeyError, TypeError, OSError):
        pass
    return ""


@contextmanager
def exclusive(
    paths: Paths,
    command: str,
    wait_seconds: float = 0.0,
    on_wait: Callable[[str], None] | None = None,
    how_to_wait: str = "pass --wait SECONDS to queue",
) -> Iterator[None]:
    """Hold the data directory for ``command`` (what the busy message names) for the block.

    If another process holds it, wait up to ``wait_seconds`` (``on_wait`` is told once, with
    who holds it), then raise ``Busy`` (its advice ends with ``how_to_wait``).
    """
    paths.data_dir.mkdir(parents=True, exist_ok=True)
    lock_path = paths.data_dir / ".retention.lock"
    handle = lock_path.open("a+")
    deadline = time.monotonic() + wait_seconds
    told = False
    try:
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _holder(handle)
                    raise Busy(
                        f"another retention command is running on {paths.data_dir} ({holder})"
                        f"{_ended_note(holder)}.\n"
                        f"  what to do: wait for it to finish, or {how_to_wait}."
                    ) from None
                if on_wait is not None and not told:
                    holder = _holder(handle)
                    on_wait(
                        f"waiting up to {wait_seconds:.0f} s for the data directory "
                        f"{paths.data_dir}: another retention command holds it "
                        f"({holder}){_ended_note(holder)}"
                    )
                    told = True
                time.sleep(0.5)
        handle.seek(0)
        handle.truncate()
        handle.write(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "command": command,
                    "since": datetime.now(UTC).isoformat(timespec="seconds"),
                }
            )
        )
        handle.flush()
        _held.append(handle.fileno())
        yield
    finally:
        if _held and _held[-1] == handle.fileno():
            _held.pop()
        handle.close()  # closing the descriptor releases the lock (once no child holds it)
