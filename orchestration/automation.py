"""The job, its daily schedule, the landing-file sensor and the run-failure log."""

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from retention.config import Paths
from retention.load import discover, printable

from .dbt import marts_dbt_assets, staging_dbt_assets
from .ingest import raw_tables
from .serving import retention_report, serving_marts

retention_job = dg.define_asset_job(
    "retention_job",
    selection=dg.AssetSelection.assets(
        raw_tables, staging_dbt_assets, marts_dbt_assets, serving_marts, retention_report
    ),
    description="load -> dbt staging -> checks -> dbt marts (with CLV) -> checks -> publish "
    "-> report",
)


def run_config(as_of_date: str | None = None, full_refresh: bool = False) -> dict[str, Any]:
    """Run config giving both dbt steps the same as_of_date."""
    config = {"as_of_date": as_of_date or "", "full_refresh": full_refresh}
    return {
        "ops": {
            "staging_dbt_assets": {"config": config},
            "marts_dbt_assets": {"config": config},
        }
    }


# running from the moment a daemon loads them: a deployment whose schedule waits for someone to
# switch it on in the UI runs nothing, and says nothing
@dg.schedule(
    job=retention_job,
    cron_schedule="0 5 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def daily_retention_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Every day at 05:00 UTC, with as_of_date = the scheduled day."""
    day = context.scheduled_execution_time.date().isoformat()
    return dg.RunRequest(
        run_key=f"daily-{day}", run_config=run_config(day), tags={"as_of_date": day}
    )


def landing_signatures(paths: Paths) -> dict[str, str]:
    """Every landing file with its size and modification time."""
    signatures = {}
    for _, path in discover(paths):
        try:
            stat = path.stat()
        except FileNotFoundError:  # moved away since it was listed: the next tick sees
            continue
        relative = path.relative_to(paths.landing).as_posix()
        signatures[relative] = f"{stat.st_size}:{stat.st_mtime_ns}"
    return signatures


def landing_run_key(
    new: list[str], signatures: dict[str, str], seen: dict[str, str] | None = None
) -> str:
    """A short key of the new files' versions, the same for the same change. The list itself
    grows with the files: 45 KB for 789 of them, which Dagster's PostgreSQL storage cannot
    index (its tags' btree takes 2704 bytes), and the run was not created.

    Each file's previous version (``seen``) is part of it: a file changed and then changed back
    (a correction withdrawn) is a change the loader loads again, and Dagster starts one run per
    key, so the version alone gave the revert the key of the file's first run and no run.
    A name that is not UTF-8 (a Latin-1 share) is hashed as its bytes: encoding it failed
    every tick, and no other file started a run either."""
    seen = seen or {}
    listing = "|".join(f"{name}@{seen.get(name, '')}>{signatures[name]}" for name in new)
    digest = hashlib.sha256(listing.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return f"landing-{len(new)}-{digest}"


@dg.sensor(
    job=retention_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def landing_file_sensor(context: dg.SensorEvaluationContext):
    """Start a run when new or changed landing files appear; each file version triggers once."""
    seen = json.loads(context.cursor) if context.cursor else {}
    current = landing_signatures(Paths.from_env())
    new = sorted(name for name, signature in current.items() if seen.get(name) != signature)
    context.update_cursor(json.dumps(current, sort_keys=True))
    if not new:
        return dg.SkipReason("no new landing files")
    shown = ", ".join(printable(name) for name in new[:20])
    shown += f" and {len(new) - 20} more" if len(new) > 20 else ""
    context.log.info(f"{len(new)} new landing file(s): {shown}")
    return dg.RunRequest(
        run_key=landing_run_key(new, current, seen),
        run_config=run_config(),
        tags={"new_landing_files": str(len(new))},
    )


def record_failure(log_file: Path, run_id: str, job_name: str, message: str) -> None:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    line = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "run_id": run_id,
        "job": job_name,
        "error": message,
    }
    with log_file.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")


def _failure_reason(error: Any) -> str:
    """A failed step's error with what caused it: Dagster wraps an exception that is not a
    ``dg.Failure`` ("Error occurred while executing op ...") and keeps the exception itself
    (a full disk, a DuckDB error after the retries) as its cause, which the log left out."""
    lines = [error.message.strip()]
    while error.cause is not None:
        error = error.cause
        lines.append(error.message.strip())
    return "\n  caused by: ".join(lines)


@dg.run_failure_sensor(
    monitored_jobs=[retention_job], default_status=dg.DefaultSensorStatus.RUNNING
)
def run_failure_log(context: dg.RunFailureSensorContext) -> None:
    """Append each failed run to $RETENTION_DATA_DIR/logs/run_failures.log (JSON lines), with
    why its steps failed (the run's own message names only the steps)."""
    steps = [
        f"{event.step_key}: {_failure_reason(event.step_failure_data.error)}"
        for event in context.get_step_failure_events()
        if event.step_failure_data.error is not None
    ]
    record_failure(
        Paths.from_env().data_dir / "logs" / "run_failures.log",
        context.dagster_run.run_id,
        context.dagster_run.job_name,
        "\n".join([context.failure_event.message or "run failed", *steps]),
    )
