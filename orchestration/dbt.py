"""The dbt project as Dagster assets: staging and marts in two separate @dbt_assets so that a
failing check on staging really stops the marts."""

import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from retention import dbt as retention_dbt
from retention.config import Paths, apply_environment, project_dir
from retention.errors import UserError

from .locking import data_directory

PROJECT_DIR = project_dir()


def absolute_data_dir() -> None:
    """Make a relative RETENTION_DATA_DIR absolute: dbt runs in the project folder, the other
    steps where this process started, and both must open the same warehouse."""
    if os.environ.get("RETENTION_DATA_DIR"):
        os.environ["RETENTION_DATA_DIR"] = str(Paths.from_env().data_dir)


dbt_project = DbtProject(
    project_dir=PROJECT_DIR,
    profiles_dir=PROJECT_DIR,
    target_path=PROJECT_DIR / "target",
)
dbt_project.prepare_if_dev()

RETRY = dg.RetryPolicy(max_retries=2, delay=20, backoff=dg.Backoff.EXPONENTIAL)
#: dbt failures worth a retry: another process holding the warehouse file for a moment. Any
#: other failure of a dbt step (a model's SQL, a failing test, a date refused) would fail again.
TRANSIENT_DBT_ERRORS = ("Could not set lock on file", "Conflicting lock is held")

STAGING_SELECT = "resource_type:seed path:models/staging"
MARTS_SELECT = "path:models/intermediate path:models/marts"


def manifest_is_current(manifest: Path, project: Path) -> bool:
    """Whether ``manifest`` is newer than every file of the project's dbt folders and than the
    folders themselves: a file deleted or renamed changes only its folder's time, and a model
    deleted since the parse stayed in the graph (a check of a test no longer there)."""
    sources = [project / "dbt_project.yml"]
    for folder in ("models", "macros", "seeds", "tests/dbt"):
        sources.append(project / folder)
        sources.extend((project / folder).rglob("*"))
    newest = max(p.stat().st_mtime for p in sources if p.exists())
    return manifest.exists() and manifest.stat().st_mtime >= newest


def ensure_manifest() -> None:
    """Parse the project when the manifest is missing or older than the project's files.

    `make install` prepares it; this keeps a checkout whose models changed since then loadable.
    In production, run `dbt parse` (or `dagster-dbt project prepare-and-package`) when building
    the image.
    """
    if manifest_is_current(dbt_project.manifest_path, PROJECT_DIR):
        return
    subprocess.run(
        [
            retention_dbt.dbt_executable(),
            "parse",
            "--quiet",
            "--target-path",
            str(dbt_project.target_path),
            "--profiles-dir",
            str(PROJECT_DIR),
        ],
        cwd=PROJECT_DIR,
        check=True,
    )


ensure_manifest()


class RetentionTranslator(DagsterDbtTranslator):
    """Asset keys follow the warehouse: [schema, table] (sources are the raw tables)."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey(["raw", dbt_resource_props["name"]])
        schema = dbt_resource_props.get("schema") or "main"
        name = dbt_resource_props.get("alias") or dbt_resource_props["name"]
        return dg.AssetKey([schema, name])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        schema = dbt_resource_props.get("schema")
        return {"staging": "staging", "quarantine": "staging", "reference": "reference"}.get(
            schema, "marts"
        )


translator = RetentionTranslator()


class BuildConfig(dg.Config):
    """Run configuration shared by the dbt steps."""

    as_of_date: str = ""  # YYYY-MM-DD; empty: the date of the latest valid order
    full_refresh: bool = False
    # dbt unit tests have fixed inputs: CI runs them, a scheduled run need not (as `retention run`)
    unit_tests: bool = False


def build_args(config: BuildConfig) -> list[str]:
    # "buildable": a test runs in the step that builds the last of its parents, so a test that
    # spans staging and marts runs with the marts, never against marts not yet rebuilt
    try:
        target = retention_dbt.resolve_target()
    except UserError as exc:
        raise dg.Failure(str(exc), allow_retries=False) from None
    if target != "duckdb":
        # the loader, the checks and publishing here read the DuckDB warehouse; on PostgreSQL
        # or Spark the raw rows must be shipped and the CLV fitted between two dbt builds
        raise dg.Failure(
            f"RETENTION_DBT_TARGET={target}: this Dagster flow builds, checks and publishes the "
            f"DuckDB warehouse. Schedule `retention run --target {target}` for {target} (it "
            "ships the landed rows and fits the CLV there), or unset RETENTION_DBT_TARGET",
            allow_retries=False,
        )
    try:
        retention_dbt.check_settings()
    except UserError as exc:
        raise dg.Failure(str(exc), allow_retries=False) from None
    args = ["build", "--indirect-selection", "buildable"]
    if config.full_refresh:
        args.append("--full-refresh")
    if not config.unit_tests:
        args += ["--exclude-resource-type", "unit_test"]
    dbt_vars = retention_dbt.command_line_vars(build_vars(config))
    return [*args, "--vars", json.dumps(dbt_vars)] if dbt_vars else args


def build_vars(config: BuildConfig) -> dict[str, Any]:
    """The run's dbt vars. Their as_of_date reaches dbt in its environment
    (``build_environment``), the others on its command line (``build_args``)."""
    as_of = config.as_of_date.strip() or None
    if as_of:
        try:
            date.fromisoformat(as_of)
        except ValueError:
            raise dg.Failure(
                f"as_of_date {as_of!r} is not a date written YYYY-MM-DD", allow_retries=False
            ) from None
    return retention_dbt.build_vars(as_of)


@contextmanager
def build_environment(config: BuildConfig) -> Iterator[None]:
    """This process's environment with the run's as_of_date (``retention.dbt.as_of_environment``)
    while a step starts its dbt command, which takes a copy of it."""
    changes = retention_dbt.as_of_environment(build_vars(config))
    saved = {name: os.environ.get(name) for name in changes}
    apply_environment(os.environ, changes)
    try:
        yield
    finally:
        apply_environment(os.environ, saved)


#: how many dbt steps' artifacts (manifest, run results, log: about 7 MB each) are kept
KEPT_STEP_TARGETS = 20


def run_target_path(paths: Paths, step: str) -> Path:
    """Where a step's dbt writes its artifacts: in the data directory (the project folder may be
    a read-only image), the latest KEPT_STEP_TARGETS steps' only. dagster-dbt's default, a new
    folder under the project's target/ for every step, grew by 13.5 MB a run, for ever."""
    root = paths.data_dir / "dbt" / "dagster-steps"
    root.mkdir(parents=True, exist_ok=True)
    earlier = sorted(root.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in earlier[KEPT_STEP_TARGETS - 1 :]:
        shutil.rmtree(old, ignore_errors=True)
    return root / step


def _dbt_step(name: str, select: str) -> dg.AssetsDefinition:
    """One `dbt build` step over a part of the project; its tests become asset checks."""

    @dbt_assets(
        manifest=dbt_project.manifest_path,
        project=dbt_project,
        select=select,
        dagster_dbt_translator=translator,
        retry_policy=RETRY,
        name=name,
    )
    def step(context: dg.AssetExecutionContext, dbt: DbtCliResource, config: BuildConfig):
        args = build_args(config)
        absolute_data_dir()
        with data_directory(context):
            target = run_target_path(Paths.from_env(), f"{name}-{context.run.run_id[:8]}")
            with build_environment(config):
                invocation = dbt.cli(
                    args, context=context, raise_on_error=False, target_path=target
                )
            yield from invocation.stream()
            error = invocation.get_error()
        if error is not None:
            if any(text in str(error) for text in TRANSIENT_DBT_ERRORS):
                raise error  # the step's retry policy applies
            raise dg.Failure(str(error), allow_retries=False) from error

    return step


# Seeds, typed staging and quarantine.
staging_dbt_assets = _dbt_step("staging_dbt_assets", STAGING_SELECT)
# Intermediate models and marts, including the CLV Python models.
marts_dbt_assets = _dbt_step("marts_dbt_assets", MARTS_SELECT)


MART_KEYS = sorted(
    (key for key in marts_dbt_assets.keys if key.path[0] == "marts"), key=lambda k: k.path
)

dbt_resource = DbtCliResource(
    project_dir=dbt_project, dbt_executable=retention_dbt.dbt_executable()
)
