"""Dagster definitions of the retention warehouse: `dagster dev -m orchestration.definitions`."""

import dagster as dg

from .automation import (
    daily_retention_schedule,
    landing_file_sensor,
    retention_job,
    run_failure_log,
)
from .dbt import dbt_resource, marts_dbt_assets, staging_dbt_assets
from .ingest import landing_files, raw_tables
from .quality import marts_quality, raw_quality, staging_quality
from .serving import retention_report, serving_marts

defs = dg.Definitions(
    assets=[
        *landing_files,
        raw_tables,
        staging_dbt_assets,
        marts_dbt_assets,
        serving_marts,
        retention_report,
    ],
    asset_checks=[raw_quality, staging_quality, marts_quality],
    jobs=[retention_job],
    schedules=[daily_retention_schedule],
    sensors=[landing_file_sensor, run_failure_log],
    resources={"dbt": dbt_resource},
)
