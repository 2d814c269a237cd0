"""Work on the Spark target that needs a Spark session, run as a process of its own.

``python -m retention.spark_jobs JOB DATA_DIR VARS_JSON`` with JOB one of

- ``register-raw``: declare the shipped raw Parquet folders as external tables ``raw.*``;
- ``clv``: fit the predictive CLV on the BTYD summaries and write the three CLV marts.

The local Spark target keeps its metastore in an embedded Derby database, which only one JVM
at a time may open; a separate process (like dbt's own) releases it when it ends. The last line
printed is the job's result as JSON; the pipeline (``retention.targets``) starts these jobs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from retention import targets
from retention.config import Paths
from retention.errors import UserError


def main(argv: Sequence[str] | None = None) -> int:
    job, data_dir, dbt_vars = [*(sys.argv[1:] if argv is None else argv), "", "", ""][:3]
    if job not in ("register-raw", "clv") or not data_dir:
        print(__doc__, file=sys.stderr)
        return 2
    paths = Paths(Path(data_dir))
    try:
        spark = targets.spark_session(paths)
        try:
            if job == "register-raw":
                targets.register_spark_raw(spark, paths)
                result: object = {}
            else:
                result = targets.spark_clv(spark, json.loads(dbt_vars or "{}"))
        finally:
            spark.stop()
    except targets.clv_marts.clv.ClvFitError as exc:
        print(f"error: {targets.clv_fit_failed('spark', exc)}", file=sys.stderr)
        return 1
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
