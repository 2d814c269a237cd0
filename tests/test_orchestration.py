"""Dagster: definitions, asset graph, in-process runs, blocking checks, schedule and sensor."""

from __future__ import annotations

import json
import os
import threading
from contextlib import ExitStack
from datetime import date, datetime
from pathlib import Path

import dagster as dg
import pytest

from retention.config import ENTITIES, Paths
from retention.generate import generate
from retention.locking import Busy, exclusive
from tests.conftest import PostgresServer, quiet, write_csv


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    monkeypatch.setenv("RETENTION_DATA_DIR", str(tmp_path))
    return Paths(tmp_path)


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    from orchestration.definitions import defs

    return defs


def _key(path: str) -> dg.AssetKey:
    return dg.AssetKey(path.split("/"))


def test_definitions_load(defs: dg.Definitions) -> None:
    dg.Definitions.validate_loadable(defs)
    assert defs.resolve_job_def("retention_job")
    assert defs.resolve_schedule_def("daily_retention_schedule")
    assert defs.resolve_sensor_def("landing_file_sensor")
    assert defs.resolve_sensor_def("run_failure_log")


def test_asset_graph_has_real_lineage(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    keys = {"/".join(k.path) for k in graph.get_all_asset_keys()}
    assert {f"landing/{e}" for e in ENTITIES} | {f"raw/{e}" for e in ENTITIES} <= keys
    assert {
        "staging/stg_shop__orders",
        "quarantine/orders",
        "marts/customers",
        "marts/customer_lifetime_value",
        "marts/clv_model_parameters",
        "serving/marts",
    } <= keys

    def upstream(key: str) -> set[str]:
        return {"/".join(k.path) for k in graph.get(_key(key)).parent_keys}

    assert upstream("raw/orders") == {"landing/orders"}
    assert upstream("staging/base_shop__orders") >= {
        "raw/orders",
        "staging/stg_shop__customers",
        "reference/fx_rates",
    }
    assert "marts/customer_lifetime_value" in upstream("marts/customers")
    assert "marts/customers" in upstream("serving/marts")
    assert upstream("reports/retention_report") == {"serving/marts"}
    checks = {(".".join(c.asset_key.path), c.name) for c in graph.asset_check_keys}
    assert ("staging.stg_shop__orders", "gx_suite") in checks
    assert ("marts.customer_cohorts", "gx_suite") in checks
    # dbt tests
    assert any(name.startswith("unique_where_changed_orders_order_id") for _, name in checks)


def _landing(paths: Paths, customers: int, seed: int, end: date) -> None:
    generate(
        paths.landing, customers=customers, seed=seed, start=date(2024, 1, 1), end=end,
        progress=quiet,
    )  # fmt: skip


def test_job_materialises_every_asset(defs: dg.Definitions, data_dir: Paths) -> None:
    _landing(data_dir, customers=600, seed=4, end=date(2024, 12, 31))
    job = defs.resolve_job_def("retention_job")
    from orchestration.automation import run_config

    result = job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), run_config=run_config()
    )
    assert result.success
    materialised = {"/".join(e.asset_key.path) for e in result.get_asset_materialization_events()}
    expected = {"/".join(k.path) for k in job.asset_layer.executable_asset_keys}
    assert materialised == expected
    assert "serving/marts" in materialised and "marts/customer_lifetime_value" in materialised
    assert "reports/retention_report" in materialised
    # dbt's artifacts in the data directory, one folder a step, not in the project's target/
    steps = data_dir.data_dir / "dbt" / "dagster-steps"
    run = result.run_id[:8]
    assert sorted(p.name for p in steps.iterdir()) == [
        f"marts_dbt_assets-{run}",
        f"staging_dbt_assets-{run}",
    ]
    assert (steps / f"marts_dbt_assets-{run}" / "run_results.json").is_file()
    checks = [
        e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    assert checks and all(c.passed for c in checks)
    assert (data_dir.serving / "serving.duckdb").exists()


def test_failing_staging_check_blocks_marts_and_publish(
    defs: dg.Definitions, data_dir: Paths
) -> None:
    # customers but no orders at all: the raw.orders suite (at least one row) fails
    data_dir.ensure()
    write_csv(
        data_dir.landing_dir("customers") / "customers.csv",
        ["customer_id", "email", "signup_at", "country", "acquisition_channel"],
        [["C1", "a@example.com", "2024-01-01", "DE", "email"]],
    )
    job = defs.resolve_job_def("retention_job")
    from orchestration.automation import run_config

    instance = dg.DagsterInstance.ephemeral()
    result = job.execute_in_process(
        instance=instance, run_config=run_config(), raise_on_error=False
    )
    assert not result.success
    materialised = {"/".join(e.asset_key.path) for e in result.get_asset_materialization_events()}
    assert "raw/orders" in materialised
    assert not any(k.startswith("marts/") for k in materialised)
    assert "serving/marts" not in materialised
    failed_checks = [
        e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.event_specific_data.passed
    ]
    assert any(c.asset_key == _key("raw/orders") for c in failed_checks)
    assert not data_dir.serving.exists()
    # the failure log says why, not only which step ("Steps failed: ['raw_quality']")
    logged = _logged_failure(instance, result, data_dir)
    assert "Steps failed" in logged and "raw/orders" in logged and "blocking" in logged


def test_sensor_triggers_once_per_new_file(defs: dg.Definitions, data_dir: Paths) -> None:
    sensor = defs.resolve_sensor_def("landing_file_sensor")
    data_dir.ensure()
    first = dg.build_sensor_context(cursor=None)
    assert isinstance(sensor(first), dg.SkipReason)
    write_csv(data_dir.landing_dir("orders") / "orders_1.csv", ["order_id"], [["O1"]])
    context = dg.build_sensor_context(cursor=first.cursor)
    request = sensor(context)
    assert isinstance(request, dg.RunRequest)
    assert request.run_key == _landing_key(data_dir, ["orders/orders_1.csv"])
    # the same file does not trigger twice, nor what the load does not read
    (data_dir.landing_dir("orders") / "_SUCCESS").write_bytes(b"")
    write_csv(data_dir.landing_dir("orders") / ".orders_2.csv.partial", ["order_id"], [["O2"]])
    again = dg.build_sensor_context(cursor=context.cursor)
    assert isinstance(sensor(again), dg.SkipReason)
    write_csv(data_dir.landing_dir("orders") / "orders_2.csv", ["order_id"], [["O2"]])
    later = dg.build_sensor_context(cursor=again.cursor)
    request = sensor(later)
    assert isinstance(request, dg.RunRequest)
    assert request.run_key == _landing_key(data_dir, ["orders/orders_2.csv"])


def test_a_file_changed_back_starts_a_run_again(defs: dg.Definitions, data_dir: Paths) -> None:
    """A correction withdrawn: the file changed back to its first version, which the loader
    loads again. Its key was the first run's, and Dagster starts one run per key."""
    sensor = defs.resolve_sensor_def("landing_file_sensor")
    data_dir.ensure()
    file = data_dir.landing_dir("orders") / "orders_1.csv"
    write_csv(file, ["order_id", "amount"], [["O1", "10"]])
    first_version = file.read_bytes(), file.stat().st_mtime_ns
    ticks = [dg.build_sensor_context(cursor=None)]
    keys = [sensor(ticks[0]).run_key]
    for content, mtime_ns in [
        (b"order_id,amount\nO1,20\n", first_version[1] + 10**9),
        first_version,
    ]:
        file.write_bytes(content)
        os.utime(file, ns=(mtime_ns, mtime_ns))
        ticks.append(dg.build_sensor_context(cursor=ticks[-1].cursor))
        keys.append(sensor(ticks[-1]).run_key)
    assert len(set(keys)) == 3, keys


def test_a_file_name_that_is_not_utf8_does_not_stop_the_sensor(
    defs: dg.Definitions, data_dir: Paths
) -> None:
    """A Latin-1 name (from a file share) failed every tick while hashing the run key: no file
    started a run. The run starts, and its load names the file it rejects."""
    sensor = defs.resolve_sensor_def("landing_file_sensor")
    data_dir.ensure()
    first = dg.build_sensor_context(cursor=None)
    sensor(first)
    orders = data_dir.landing_dir("orders")
    latin1 = os.fsdecode(os.fsencode(orders) + b"/Bestellungen_M\xe4rz.csv")
    write_csv(Path(latin1), ["order_id"], [["O1"]])
    write_csv(orders / "orders_new.csv", ["order_id"], [["O2"]])
    context = dg.build_sensor_context(cursor=first.cursor)
    request = sensor(context)
    assert isinstance(request, dg.RunRequest)
    assert request.tags["new_landing_files"] == "2"
    again = dg.build_sensor_context(cursor=context.cursor)
    assert isinstance(sensor(again), dg.SkipReason)


def _logged_failure(
    instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult, data_dir: Paths
) -> str:
    """What run_failure_log writes for the failed run ``result``: its one line's error."""
    from orchestration.automation import run_failure_log

    (failure,) = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_log",
        dagster_event=failure.dagster_event,
        dagster_instance=instance,
        dagster_run=result.dagster_run,
    ).for_run_failure()
    run_failure_log(context)
    (line,) = (data_dir.data_dir / "logs" / "run_failures.log").read_text().splitlines()
    return json.loads(line)["error"]


def test_the_failure_log_says_what_caused_a_step_error(data_dir: Paths) -> None:
    """An exception that is not a dg.Failure reaches the run as Dagster's "Error occurred while
    executing op"; the full disk behind it was left out of the log."""

    @dg.op
    def publish_step() -> None:
        raise OSError(28, "No space left on device", "serving_releases")

    @dg.job
    def failing() -> None:
        publish_step()

    instance = dg.DagsterInstance.ephemeral()
    result = failing.execute_in_process(instance=instance, raise_on_error=False)
    logged = _logged_failure(instance, result, data_dir)
    assert "publish_step: " in logged
    assert "caused by: OSError: [Errno 28] No space left on device: 'serving_releases'" in logged


def _landing_key(data_dir: Paths, names: list[str]) -> str:
    from orchestration.automation import landing_run_key, landing_signatures

    return landing_run_key(names, landing_signatures(data_dir))


def test_only_the_latest_steps_keep_their_dbt_artifacts(tmp_path: Path) -> None:
    from orchestration.dbt import KEPT_STEP_TARGETS, run_target_path

    paths = Paths(tmp_path)
    made = []
    for i in range(KEPT_STEP_TARGETS + 5):
        target = run_target_path(paths, f"step-{i:02d}")
        target.mkdir()
        os.utime(target, (1_700_000_000 + i, 1_700_000_000 + i))
        made.append(target.name)
    kept = sorted(p.name for p in target.parent.iterdir())
    assert kept == made[-KEPT_STEP_TARGETS:]


def test_a_deleted_model_makes_the_manifest_stale(tmp_path: Path) -> None:
    from orchestration.dbt import manifest_is_current

    (tmp_path / "dbt_project.yml").write_text("name: x")
    for folder in ("models/marts", "macros", "seeds", "tests/dbt"):
        (tmp_path / folder).mkdir(parents=True)
    model = tmp_path / "models" / "marts" / "gone.sql"
    model.write_text("select 1")
    manifest = tmp_path / "target" / "manifest.json"
    manifest.parent.mkdir()
    manifest.write_text("{}")
    os.utime(manifest, (2_000_000_000, 2_000_000_000))
    assert manifest_is_current(manifest, tmp_path)
    os.utime(manifest, (1_000_000_000, 1_000_000_000))
    for path in tmp_path.rglob("*"):  # every file and folder older than the manifest
        os.utime(path, (900_000_000, 900_000_000))
    assert manifest_is_current(manifest, tmp_path)
    model.unlink()  # the folder's time is now
    assert not manifest_is_current(manifest, tmp_path)


def test_a_tick_over_many_files_has_a_short_key(data_dir: Paths) -> None:
    """A sensor turned on over months of daily files: the key listed every file (45 KB for
    789), past what Dagster's PostgreSQL storage indexes, and the run was never created."""
    from orchestration.automation import landing_run_key

    names = [f"orders/orders_{day:04d}.csv" for day in range(800)]
    signatures = {name: "1024:1700000000000000000" for name in names}
    key = landing_run_key(names, signatures)
    assert len(key) < 64 and key.startswith("landing-800-")
    assert key == landing_run_key(list(names), dict(signatures))  # the same versions: once
    signatures[names[0]] = "1025:1700000000000000001"  # a file changed: another run
    assert landing_run_key(names, signatures) != key


def test_the_schedule_and_sensors_run_once_deployed(defs: dg.Definitions) -> None:
    """Dagster's default is stopped: a deployment ran nothing until someone switched each on."""
    assert defs.resolve_schedule_def("daily_retention_schedule").default_status == (
        dg.DefaultScheduleStatus.RUNNING
    )
    for sensor in ("landing_file_sensor", "run_failure_log"):
        assert defs.resolve_sensor_def(sensor).default_status == dg.DefaultSensorStatus.RUNNING


def test_schedule_passes_the_scheduled_day(defs: dg.Definitions) -> None:
    schedule = defs.resolve_schedule_def("daily_retention_schedule")
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2025, 3, 4, 5, 0))
    request = schedule.evaluate_tick(context).run_requests[0]
    ops = request.run_config["ops"]
    assert ops["staging_dbt_assets"]["config"]["as_of_date"] == "2025-03-04"
    assert ops["marts_dbt_assets"]["config"]["as_of_date"] == "2025-03-04"
    assert request.tags["as_of_date"] == "2025-03-04"


def test_run_failures_are_logged(tmp_path: Path) -> None:
    from orchestration.automation import record_failure

    log_file = tmp_path / "logs" / "run_failures.log"
    record_failure(log_file, "run-1", "retention_job", "staging check failed")
    record_failure(log_file, "run-2", "retention_job", "lock")
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [line["run_id"] for line in lines] == ["run-1", "run-2"]
    assert lines[0]["error"] == "staging check failed"


def test_a_dbt_step_that_would_fail_again_is_not_retried(
    defs: dg.Definitions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A date after every order fails the staging build on the data, not by chance: the step
    fails once (no retry 20 s later, with the same result). The data directory is given
    relative to where Dagster started; dbt, which runs in the project folder, opens the same
    warehouse as the load."""
    paths = Paths(tmp_path / "relative")
    _landing(paths, customers=200, seed=4, end=date(2024, 6, 30))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RETENTION_DATA_DIR", "relative")
    from orchestration.automation import run_config

    result = defs.resolve_job_def("retention_job").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        run_config=run_config("2099-01-01"),
        raise_on_error=False,
    )
    assert not result.success
    events = [e.event_type_value for e in result.all_events]
    assert "STEP_UP_FOR_RETRY" not in events
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failure.step_key == "staging_dbt_assets"
    assert "Cannot open file" not in failure.message
    assert "2099-01-01" in str(failure.event_specific_data.error)
    assert (paths.data_dir / "warehouse.duckdb").exists()


def test_production_instance_config_uses_postgres_from_the_environment(tmp_path: Path) -> None:
    from dagster._core.instance.config import dagster_instance_config

    root = Path(__file__).resolve().parent.parent
    (tmp_path / "dagster.yaml").write_text((root / "orchestration/dagster.prod.yaml").read_text())
    config, _ = dagster_instance_config(str(tmp_path))
    database = config["storage"]["postgres"]["postgres_db"]
    assert database["password"] == {"env": "DAGSTER_PG_PASSWORD"}
    credentials = {k: v for k, v in database.items() if k != "scheme"}
    assert all(isinstance(v, dict) and "env" in v for v in credentials.values())
    # a crashed run is run again; a failed step has its own policy
    assert config["run_retries"]["retry_on_asset_or_op_failure"] is False
    # ticks store the landing sensor's cursor: skipped ones do not pile up
    assert config["retention"]["sensor"]["purge_after_days"]["skipped"] == 1


def test_the_daemon_finds_the_definitions_without_arguments(tmp_path: Path) -> None:
    """The README's production commands: `dagster-daemon run` with no -m exited at once ("no
    [tool.dagster] block in pyproject.toml"), so the schedule, the sensors and the run queue
    never ran. Dagster's commands find the module in pyproject.toml, as the daemon does."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [Path(sys.executable).parent / "dagster", "definitions", "validate"],
        cwd=root,
        env={**os.environ, "DAGSTER_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Validation successful for code location orchestration.definitions" in (
        done.stdout + done.stderr
    )


def test_the_production_instance_starts_on_postgres(
    tmp_path: Path, postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon and the webserver build this instance first: with a bare postgresql:// URL
    SQLAlchemy 2.1 asked for psycopg 3, which is not installed, and neither started."""
    from dagster import DagsterInstance

    root = Path(__file__).resolve().parent.parent
    (tmp_path / "dagster.yaml").write_text((root / "orchestration/dagster.prod.yaml").read_text())
    s = postgres_server.settings
    for name, value in {
        "DAGSTER_PG_HOST": s["PGHOST"],
        "DAGSTER_PG_PORT": s["PGPORT"],
        "DAGSTER_PG_DB": postgres_server.create_database("dagster"),
        "DAGSTER_PG_USER": s["PGUSER"],
        "DAGSTER_PG_PASSWORD": s["PGPASSWORD"],
    }.items():
        monkeypatch.setenv(name, value)
    instance = DagsterInstance.from_config(str(tmp_path))
    try:
        assert instance.get_runs() == []
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    finally:
        instance.dispose()


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("RETENTION_DUCKDB_MEMORY_LIMIT", "lots", "RETENTION_DUCKDB_MEMORY_LIMIT='lots' is not a"),
        ("RETENTION_DBT_TARGET", "postgres", "Schedule `retention run --target postgres`"),
        ("RETENTION_DBT_TARGET", "oracle", "unknown target 'oracle'"),
    ],
)
def test_a_dbt_setting_the_flow_cannot_use_fails_the_step_without_retries(
    monkeypatch, variable: str, value: str, said: str
) -> None:
    from orchestration.dbt import BuildConfig, build_args

    monkeypatch.setenv(variable, value)
    with pytest.raises(dg.Failure) as failure:
        build_args(BuildConfig())
    assert said in str(failure.value)
    assert not failure.value.allow_retries


def test_scheduled_builds_leave_unit_tests_to_ci() -> None:
    from orchestration.dbt import BuildConfig, build_args

    assert build_args(BuildConfig())[-2:] == ["--exclude-resource-type", "unit_test"]
    assert "unit_test" not in build_args(BuildConfig(unit_tests=True))


def test_a_step_gives_dbt_its_date_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not in --vars, which would make dbt parse the whole project again for every new date
    (retention.dbt.as_of_environment); a date left in the step's environment is not taken by a
    run without one, and the environment is as it was once the step has started dbt."""
    from orchestration.dbt import BuildConfig, build_args, build_environment
    from retention.dbt import AS_OF_ENV

    monkeypatch.setenv(AS_OF_ENV, "2025-01-01")
    dated = BuildConfig(as_of_date=" 2025-03-04 ")
    assert "--vars" not in build_args(dated)
    with build_environment(dated):
        assert os.environ[AS_OF_ENV] == "2025-03-04"
    with build_environment(BuildConfig()):
        assert AS_OF_ENV not in os.environ
    assert os.environ[AS_OF_ENV] == "2025-01-01"
    with (
        pytest.raises(dg.Failure, match="is not a date written YYYY-MM-DD"),
        build_environment(BuildConfig(as_of_date="2025-02-30")),
    ):
        pass


# ------------------------------------------------------------------ the data directory's lock
def test_a_step_waits_for_a_command_and_holds_the_data_directory_itself(
    data_dir: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step started while a `retention` command holds the data directory logs that it waits,
    runs once the command has ended, and holds the directory itself meanwhile: a command started
    then is told which step of which run has it."""
    from orchestration import ingest

    _landing(data_dir, customers=200, seed=5, end=date(2024, 6, 30))
    monkeypatch.setenv("RETENTION_DAGSTER_LOCK_WAIT", "60")
    seen: list[str] = []
    real_load = ingest.load

    def load_and_look(paths: Paths, progress) -> object:
        try:
            with exclusive(paths, "load"):
                seen.append("free")
        except Busy as exc:
            seen.append(str(exc))
        return real_load(paths, progress=progress)

    monkeypatch.setattr(ingest, "load", load_and_look)
    instance = dg.DagsterInstance.ephemeral()
    command = ExitStack()
    command.enter_context(exclusive(data_dir, "run"))
    timer = threading.Timer(1.5, command.close)  # the command ends
    timer.start()
    try:
        result = dg.materialize([ingest.raw_tables], instance=instance)
    finally:
        timer.cancel()
        command.close()
    assert result.success
    messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any(
        "waiting up to 60 s for the data directory" in m and '"command": "run"' in m
        for m in messages
    )
    assert len(seen) == 1
    assert f"dagster run {result.run_id[:8]}, step raw_tables" in seen[0]


def test_a_step_that_cannot_have_the_data_directory_fails_once_and_says_why(
    data_dir: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestration import ingest

    _landing(data_dir, customers=200, seed=5, end=date(2024, 6, 30))
    monkeypatch.setenv("RETENTION_DAGSTER_LOCK_WAIT", "0.5")
    instance = dg.DagsterInstance.ephemeral()
    with exclusive(data_dir, "run"):
        result = dg.materialize([ingest.raw_tables], instance=instance, raise_on_error=False)
    assert not result.success
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert len(failures) == 1
    message = failures[0].step_failure_data.user_failure_data.description
    assert "another retention command is running" in message and '"command": "run"' in message
    assert "set RETENTION_DAGSTER_LOCK_WAIT (seconds, now 0) to wait longer" in message
    assert not any(e.event_type_value == "STEP_UP_FOR_RETRY" for e in result.all_events)
    assert not result.get_asset_materialization_events()


def test_a_malformed_lock_wait_fails_the_step_without_retries(monkeypatch) -> None:
    from orchestration.locking import lock_wait_seconds

    monkeypatch.setenv("RETENTION_DAGSTER_LOCK_WAIT", "an hour")
    with pytest.raises(dg.Failure) as failure:
        lock_wait_seconds()
    assert "RETENTION_DAGSTER_LOCK_WAIT='an hour' is not a number of seconds" in str(failure.value)
    assert not failure.value.allow_retries
    monkeypatch.setenv("RETENTION_DAGSTER_LOCK_WAIT", "")
    assert lock_wait_seconds() == 3600
