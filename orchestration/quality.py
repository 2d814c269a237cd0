"""Great Expectations suites as blocking Dagster asset checks.

The raw suites run after loading and block staging, the staging suites run after the staging
dbt step and block the marts, and the mart suites
run after the marts and block publishing. Both call retention.validation, like `retention
validate`; the mart check writes the validation report that publishing requires.
"""

import dagster as dg

from retention import validation

from .dbt import MART_KEYS
from .locking import data_directory

RAW_TABLES = ["raw.customers", "raw.orders"]
STAGING_TABLES = [
    "staging.stg_shop__customers",
    "staging.stg_shop__orders",
    "quarantine.customers",
    "quarantine.orders",
]
MART_TABLES = [".".join(key.path) for key in MART_KEYS]


def _key(table: str) -> dg.AssetKey:
    return dg.AssetKey(table.split("."))


def _specs(tables: list[str]) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            "gx_suite",
            asset=_key(table),
            blocking=True,
            description=f"Great Expectations suite for {table} (gx/suites.py)",
        )
        for table in tables
    ]


def check_results(report: validation.ValidationReport, tables: list[str]):
    """One AssetCheckResult per table, with the failing expectations as metadata."""
    for table in tables:
        outcomes = [o for o in report.outcomes if o.table == table]
        bad = [o for o in outcomes if o.status != validation.PASSED]
        yield dg.AssetCheckResult(
            asset_key=_key(table),
            check_name="gx_suite",
            passed=bool(outcomes) and not bad,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "expectations": len(outcomes),
                "failed": len([o for o in bad if o.status == validation.FAILED]),
                "engine_errors": len([o for o in bad if o.status == validation.ERROR]),
                "rows": report.row_counts.get(table, 0),
                "not_passing": dg.MetadataValue.json(
                    [
                        {
                            "expectation": o.expectation,
                            "column": o.column,
                            "status": o.status,
                            "observed": o.observed or o.detail,
                        }
                        for o in bad
                    ]
                ),
                "data_docs": dg.MetadataValue.path(report.data_docs),
            },
        )


@dg.multi_asset_check(specs=_specs(RAW_TABLES))
def raw_quality(context: dg.AssetCheckExecutionContext):
    with data_directory(context) as paths:
        report = validation.validate(
            paths, progress=context.log.info, tables=RAW_TABLES, write_report=False
        )
    yield from check_results(report, RAW_TABLES)


@dg.multi_asset_check(specs=_specs(STAGING_TABLES))
def staging_quality(context: dg.AssetCheckExecutionContext):
    with data_directory(context) as paths:
        report = validation.validate(
            paths, progress=context.log.info, tables=STAGING_TABLES, write_report=False
        )
    yield from check_results(report, STAGING_TABLES)


@dg.multi_asset_check(specs=_specs(MART_TABLES))
def marts_quality(context: dg.AssetCheckExecutionContext):
    with data_directory(context) as paths:
        report = validation.validate(paths, progress=context.log.info)
    yield from check_results(report, MART_TABLES)
