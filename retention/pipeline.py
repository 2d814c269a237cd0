"""The pipeline steps as plain functions: the CLI and the Dagster assets both call these."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from retention import dbt, publish, report, targets, validation
from retention.config import DEMO_CUSTOMERS, Paths
from retention.errors import UserError
from retention.generate import GenerateSummary, generate
from retention.load import LoadErrors, LoadSummary, discover, load, require_loaded
from retention.validation import ValidationReport

Say = Callable[[str], None]


@dataclass
class BuildSummary:
    as_of: str | None
    models: int
    tests: int
    seconds: float


@contextmanager
def step(name: str, say: Say) -> Iterator[None]:
    """Print a step header and its wall time."""
    say(f"==> {name}")
    started = time.perf_counter()
    yield
    say(f"    {name} done in {time.perf_counter() - started:.1f}s")


def generate_step(
    paths: Paths,
    customers: int,
    seed: int,
    start: date,
    end: date,
    dirty_rate: float,
    fmt: str,
    say: Say,
    daily_from: date | None = None,
    replace: bool = False,
) -> GenerateSummary:
    """Write synthetic landing files; refuse to replace files already there unless ``replace``
    (the generator empties each entity's folder before it writes)."""
    today = datetime.now(UTC).date()
    if end > today:
        raise UserError(
            f"--end {end} is after today ({today}): the orders and customers dated later would "
            "be quarantined as future_timestamp and the marts would end today\n"
            f"  what to do: give --end {today} or earlier"
        )
    existing = [path for _, path in discover(paths)]
    if existing and not replace:
        raise UserError(
            f"{paths.landing} already has {len(existing)} file(s) (for example "
            f"{existing[0].relative_to(paths.landing)}); generating would delete them.\n"
            "  what to do: generate into a new --data-dir, or pass --replace (rows already "
            "loaded stay in this warehouse, so its marts would mix the old and the new data)"
        )
    with step("generate", say):
        return generate(
            paths.landing,
            customers,
            seed,
            start,
            end,
            dirty_rate,
            fmt,
            progress=say,
            daily_from=daily_from,
        )


def load_step(paths: Paths, say: Say, target: str | None = None) -> LoadSummary:
    """Load new landing files into DuckDB's raw.*; on PostgreSQL or Spark, ship them there too."""
    target = dbt.resolve_target(target)
    with step("load", say):
        paths.ensure()
        try:
            summary = load(paths, progress=say)
        except LoadErrors:
            # the good files were loaded: they still go to the target before the error is shown
            if target in targets.EXTERNAL_TARGETS:
                targets.ship_raw(paths, target, say)
            raise
        if target in targets.EXTERNAL_TARGETS:
            targets.ship_raw(paths, target, say)
        return summary


def _models(
    paths: Paths,
    target: str,
    select: str,
    exclude: str | None = None,
    dbt_vars: dict[str, Any] | None = None,
) -> set[str]:
    """The models a selection names. ``dbt_vars``: the next build's, so that dbt parses once
    for both (other vars than the last parse's make dbt parse the whole project again)."""
    lines: list[str] = []
    args = ["ls", "--quiet", "--resource-type", "model", "--output", "name", "--select", select]
    if exclude:
        args += ["--exclude", exclude]
    dbt.run_dbt(args, paths, target=target, dbt_vars=dbt_vars, progress=lines.append)
    return {line.strip() for line in lines if line.strip()}


def _check_selection_takes_the_date(paths: Paths, target: str, as_of: str, select: str) -> None:
    """``--as-of`` moves the date every model downstream of int_reporting_dates reads: a
    selection that leaves some of them out would build a warehouse of two dates (or, without
    int_reporting_dates itself, ignore the date)."""
    left_out = _models(
        paths, target, "int_reporting_dates+", exclude=select, dbt_vars=dbt.build_vars(as_of)
    )
    if left_out:
        named = ", ".join(sorted(left_out)[:6]) + (", ..." if len(left_out) > 6 else "")
        raise UserError(
            f"--as-of {as_of} moves the date of every model that reads it, and --select "
            f"{select!r} leaves out {len(left_out)} of them ({named}); nothing was built\n"
            "  what to do: build without --select, or add `int_reporting_dates+` to the "
            "selection"
        )


def build_step(
    paths: Paths,
    say: Say,
    as_of: str | None = None,
    target: str | None = None,
    full_refresh: bool = False,
    select: str | None = None,
    unit_tests: bool = True,
    warm: dbt.WarmDbt | None = None,
) -> BuildSummary:
    """``dbt build``: seeds, models, the CLV models and every data test, and the unit tests
    unless ``unit_tests`` is false (the production job: their inputs are fixed, so they can only
    fail after a change to the project, which CI and ``retention build`` run them on).

    On targets without dbt Python models (PostgreSQL, Spark) the predictive CLV is fitted by the
    pipeline between two dbt steps: everything except the models that read the CLV marts, then
    ``targets.run_clv``, then those models (``source:clv+``) and their tests.

    ``warm`` (``dbt.warm_dbt``): a dbt process already started, for the first dbt command.
    """
    target = dbt.resolve_target(target)
    # on PostgreSQL other data directories or machines may build into the same database
    database_lock = targets.postgres_lock(paths) if target == "postgres" else nullcontext()
    with step("build", say), database_lock:
        require_loaded(paths)
        if as_of and select:
            _check_selection_takes_the_date(paths, target, as_of, select)
        started = time.perf_counter()
        dbt_vars = dbt.build_vars(as_of)
        args = ["build"]
        if full_refresh:
            args.append("--full-refresh")
        if not unit_tests:
            args += ["--exclude-resource-type", "unit_test"]

        def dbt_build(
            selection: str | None, extra: tuple[str, ...] = (), buildable: bool = bool(select)
        ) -> list[dict]:
            chosen = ["--select", selection] if selection else []
            if selection and buildable:
                # tests that also read models outside the selection wait for a full build
                chosen += ["--indirect-selection", "buildable"]
            return dbt.run_dbt(
                args + chosen + list(extra),
                paths,
                target=target,
                dbt_vars=dbt_vars,
                progress=lambda line: say(f"    {line}"),
                warm=warm,
            ).results

        if target in targets.EXTERNAL_TARGETS:
            clv_dependents = f"source:{targets.CLV_SOURCE}+"
            results = dbt_build(select, ("--exclude", clv_dependents))
            # a selection refits when it rebuilt the fit's inputs, as a DuckDB build of
            # int_reporting_dates+ runs the CLV models
            built = {r.get("unique_id", "").rsplit(".", 1)[-1] for r in results}
            refit = not select or bool(built & set(targets.CLV_INPUTS))
            if refit:
                targets.run_clv(paths, target, dbt_vars, say=lambda line: say(f"    {line}"))
            # then what reads the CLV marts: all of it after a refit (the marts' tests and the
            # customers and win-back lists that must agree with the new fit); without one, the
            # selection's part that does (in dbt's selection syntax a space is a union, a comma
            # an intersection)
            if refit:
                results += dbt_build(clv_dependents, buildable=False)
            else:
                parts = select.split()
                results += dbt_build(" ".join(f"{part},{clv_dependents}" for part in parts))
        else:
            results = dbt_build(select)
        if select and not results:
            raise UserError(
                f"--select {select!r} matches no model, seed or test of the project; nothing was "
                "built.\n  what to do: check the names (`dbt ls --select ...` lists what a "
                "selection matches)"
            )
        models = sum(1 for r in results if r.get("unique_id", "").startswith("model."))
        tests = sum(
            1 for r in results if r.get("unique_id", "").startswith(("test.", "unit_test."))
        )
        return BuildSummary(as_of, models, tests, time.perf_counter() - started)


def validate_step(paths: Paths, say: Say, accept_shrink: bool = False) -> ValidationReport:
    """Run the GX suites; raise ``ValidationFailed`` (after printing the summary) on failure.
    ``accept_shrink``: see ``validation.validate``."""
    with step("validate", say):
        report = validation.validate(paths, progress=say, accept_shrink=accept_shrink)
        for line in validation.summary_lines(report):
            say(line)
        if not report.success:
            raise validation.ValidationFailed(report)
        return report


def _published(paths: Paths, summary: publish.PublishSummary, say: Say) -> None:
    say(f"  published {len(summary.tables)} marts to {paths.serving} -> {summary.release.name}")


def publish_step(paths: Paths, say: Say) -> publish.PublishSummary:
    with step("publish", say):
        summary = publish.publish(paths, progress=say)
        _published(paths, summary, say)
        return summary


def validate_and_publish_step(
    paths: Paths, say: Say, accept_shrink: bool = False
) -> publish.PublishSummary:
    """Validate the build and write its release at the same time; publish only if it passed.

    Validation (Great Expectations on pandas: one core) and writing the release (DuckDB's Parquet
    writer: every core) read the same build, so they run side by side. The release stays
    invisible until ``publish.activate`` has checked the validation report and swapped it in; a
    failed validation (or a stop) cancels it, and serving/ keeps the previous copy.
    """
    cancel = publish.StageCancel()
    with (
        step("validate + publish", say),
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="stage-release") as writer,
    ):
        staging = None
        try:
            staging = writer.submit(
                publish.stage_release, paths, progress=lambda line: say(f"  {line}"), cancel=cancel
            )
            validate_step(paths, say, accept_shrink)
            staged = staging.result()  # a stop while the writer finishes lands here too
        except BaseException:
            # not to be published: stop writing it (in the middle of a mart, too) and remove it
            # (a writer that started before a stop in submit() sees the cancel and removes its
            # own folder)
            cancel.cancel()
            if staging is not None and staging.exception() is None:  # waits for the writer
                publish.discard(staging.result())
            raise
        summary = publish.activate(paths, staged)
        _published(paths, summary, say)
        return summary


def report_step(paths: Paths, say: Say) -> report.Report:
    with step("report", say):
        return report.build_report(paths, progress=say)


def outputs_message(paths: Paths) -> str:
    lines = [
        "outputs:",
        f"  warehouse (dbt build target): {paths.warehouse}",
        "    schemas: raw, staging, quarantine, marts",
        f"  serving copy for BI tools:     {paths.serving}",
        f"  report:                        {paths.reports / 'retention_report.html'}",
    ]
    return "\n".join(lines)


def run(
    paths: Paths,
    say: Say,
    as_of: str | None = None,
    target: str | None = None,
    full_refresh: bool = False,
    unit_tests: bool = False,
    warm: dbt.WarmDbt | None = None,
    accept_shrink: bool = False,
) -> BuildSummary:
    """The production job: load, build, validate, publish, report.

    The build runs every data test but no unit tests unless ``unit_tests`` (see build_step).
    Stops before publishing when validation fails: serving/ keeps the previous copy. On
    PostgreSQL and Spark the job is load and build: validation, publishing and the report read
    the DuckDB warehouse, and BI tools read the target's ``marts`` schema.

    ``warm``: a dbt process the caller started (``dbt.warm_dbt``) for the build; without it the
    job starts one on DuckDB.
    """
    target = dbt.resolve_target(target)
    dbt.check_settings(target)  # a malformed setting fails now, not after the load
    parse = None
    if target == "duckdb":
        validation.validation_memory()  # a malformed setting fails now, not after the build
        # a first build's parse runs during the load (on Spark a second process could meet the
        # load's session in the local metastore; PostgreSQL and Spark runs are not tuned here)
        parse = dbt.parse_in_background(paths, target, dbt.build_vars(as_of))
    # on DuckDB dbt imports itself while the load runs, then waits for the build's command
    # (``warm``: one the caller started earlier still)
    with (
        nullcontext(warm) if warm is not None or target != "duckdb" else dbt.warm_dbt(paths, target)
    ) as warm:
        try:
            load_step(paths, say, target=target)
        except BaseException:
            if parse is not None:
                parse.kill()
            raise
        finally:
            if parse is not None:
                dbt.finish_background(parse)
        if target == "duckdb":
            # the imports run on the core dbt leaves idle while it starts and parses
            validation.preload()
        summary = build_step(
            paths,
            say,
            as_of=as_of,
            target=target,
            full_refresh=full_refresh,
            unit_tests=unit_tests,
            warm=warm,
        )
    if target != "duckdb":
        say(
            f"the marts are built on {target} (schema marts); validate, publish and report "
            "work on the DuckDB target only"
        )
        return summary
    validate_and_publish_step(paths, say, accept_shrink)
    report_step(paths, say)
    return summary


def demo(
    paths: Paths, say: Say, customers: int = DEMO_CUSTOMERS, warm: dbt.WarmDbt | None = None
) -> BuildSummary:
    """Generate sample data when the landing folder is empty, then run the pipeline (``warm``:
    as for ``run``)."""
    if not discover(paths):
        generate_step(
            paths,
            customers=customers,
            seed=42,
            start=date(2022, 1, 1),
            end=date(2025, 12, 31),
            dirty_rate=0.01,
            fmt="csv",
            say=say,
        )
    else:
        say(f"landing folder {paths.landing} has files; using them")
    return run(paths, say, warm=warm)
