"""dbt's command line in a process started before it is needed.

``retention run`` starts this while it loads (see ``retention.dbt.warm_dbt``): the process
imports dbt and the target's adapter (about 1.5 s of one core) while the load leaves a core
idle, then waits for one line on standard input, a JSON list of dbt arguments, and runs dbt's
own command line with them, exactly as the ``dbt`` executable would (same output, same exit
code). An empty standard input (the pipeline stopped before the build) ends it quietly.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys


def main() -> None:
    from dbt.cli.main import cli

    target = os.environ.get("RETENTION_DBT_TARGET") or "duckdb"
    with contextlib.suppress(ImportError):  # dbt reports a missing adapter in its own words
        importlib.import_module(f"dbt.adapters.{target}")
    line = sys.stdin.readline()
    if not line.strip():
        return
    args = json.loads(line)
    sys.stdin = open(os.devnull)  # noqa: SIM115 (dbt reads no input)
    sys.argv = ["dbt", *args]
    sys.exit(cli(prog_name="dbt"))


if __name__ == "__main__":
    main()
