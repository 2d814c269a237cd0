"""Publishing the validated marts to serving/ for BI tools, and the report built from it."""

import dagster as dg

from retention import publish, report

from .dbt import MART_KEYS, RETRY
from .locking import data_directory


@dg.asset(
    key=["serving", "marts"],
    deps=MART_KEYS,
    group_name="serving",
    retry_policy=RETRY,
    description="Parquet + serving.duckdb of the validated marts, swapped in atomically.",
)
def serving_marts(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    try:
        with data_directory(context) as paths:
            summary = publish.publish(paths, progress=context.log.info)
    except publish.PublishRefused as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    return dg.MaterializeResult(
        metadata={
            "release": str(summary.release),
            "rows": dg.MetadataValue.json(summary.tables),
            "seconds": summary.seconds,
        }
    )


@dg.asset(
    key=["reports", "retention_report"],
    deps=[serving_marts],
    group_name="serving",
    description="The HTML retention report, built from the published serving copy.",
)
def retention_report(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    with data_directory(context) as paths:
        built = report.build_report(paths, progress=context.log.info)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(built.path)),
            "charts": built.charts,
            "as_of_date": built.as_of_date,
        }
    )
