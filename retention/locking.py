"""One writer at a time per data directory.

Commands that write (load, build, validate, publish, report, run, demo) hold an exclusive lock
on ``$RETENTION_DATA_DIR/.retention.lock`` for their whole duration. A second command started
meanwhile waits up to ``wait_seconds`` and then exits with a clear message; it never interleaves
with the first. The lock is released by the operating system when its process ends, so a killed
run never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from retention.config import Paths
from retention.errors import UserError


class Busy(UserError):
    """Another retention command holds the data directory."""


@contextmanager
def exclusive(paths: Paths, command: str, wait_seconds: float = 0.0) -> Iterator[None]:
    paths.data_dir.mkdir(parents=True, exist_ok=True)
    lock_path = paths.data_dir / ".retention.lock"
    handle = lock_path.open("a+")
    deadline = time.monotonic() + wait_seconds
    try:
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "unknown"
                    raise Busy(
                        f"another retention command is running on {paths.data_dir} ({holder}).\n"
                        "  what to do: wait for it to finish, or pass --wait SECONDS to queue."
                    ) from None
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
        yield
    finally:
        handle.close()  # closing the descriptor releases the lock
