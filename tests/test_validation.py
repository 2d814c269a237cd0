"""Great Expectations validation and write-audit-publish."""

from __future__ import annotations

import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import weakref
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import duckdb
import great_expectations.expectations as gxe
import pytest

from retention import cli, pipeline, publish, validation
from retention.config import Paths, project_dir
from retention.errors import UserError
from tests.conftest import Warehouse, quiet, storage_version


@pytest.fixture
def copy(published: Warehouse, tmp_path: Path) -> Warehouse:
    shutil.copytree(published.paths.data_dir, tmp_path / "data", symlinks=True)
    return Warehouse(Paths(tmp_path / "data"))


def _sql(warehouse: Warehouse, *statements: str) -> None:
    with duckdb.connect(str(warehouse.paths.warehouse)) as con:
        for statement in statements:
            con.execute(statement)


def _serving_state(warehouse: Warehouse) -> tuple[str, dict[str, str]]:
    serving = warehouse.paths.serving
    files = {p.name: p.read_bytes().hex()[:64] + str(p.stat().st_size) for p in serving.iterdir()}
    return str(serving.resolve()), files


def test_suites_pass_on_good_data(published: Warehouse) -> None:
    report = validation.read_report(published.paths)
    assert report is not None and report.success
    assert not report.errors and not report.failures
    tables = {o.table for o in report.outcomes}
    assert {
        "raw.orders",
        "staging.stg_shop__orders",
        "marts.customers",
        "marts.customer_cohorts",
        "marts.customer_lifetime_value",
        "marts.nps_monthly",
    } <= tables
    assert len(report.outcomes) > 60
    assert Path(report.data_docs).is_file()
    # Data Docs file the results under a run named for the data, not GX's "__none__"
    run = f"as_of_{report.as_of_date}_build_{report.build_id[:8]}"
    pages = Path(report.data_docs).parent / "validations" / "marts" / "customers" / run
    assert len(list(pages.glob("*/*.html"))) == 1
    # period-0 retention is checked as a distribution expectation
    assert any("period_number == 0" in o.column for o in report.outcomes)


def test_keys_left_to_dbt_are_tested_by_dbt(published: Warehouse) -> None:
    """The large tables whose key GX does not check again have that key's dbt test, and the
    suites of every other table still check their key in GX."""
    suites = validation._load_suites_module()
    left = suites.LARGE_KEYS_LEFT_TO_DBT
    manifest = json.loads((published.paths.dbt_target / "manifest.json").read_text())
    dbt_keys = set()
    for node in manifest["nodes"].values():
        metadata = node.get("test_metadata") or {}
        if metadata.get("name") not in ("unique", "unique_combination", "unique_where_changed"):
            continue
        kwargs = metadata["kwargs"]
        columns = kwargs.get("columns") or [kwargs["column_name"]]
        # the tested model (a test may also read another: unique_where_changed's increment)
        parent = (node.get("attached_node") or node["depends_on"]["nodes"][0]).split(".")
        relation = f"source:{parent[2]}.{parent[3]}" if parent[0] == "source" else parent[2]
        dbt_keys.add((relation, tuple(columns)))
    assert set(left.values()) <= dbt_keys, set(left.values()) - dbt_keys

    params = suites.SuiteParameters(as_of_date=datetime(2024, 1, 1), project_dir=project_dir())
    key_checks = {
        suite.table
        for suite in suites.build_suites(params)
        for e in suite.expectations
        if e.expectation_type.endswith("_to_be_unique")
    }
    assert not key_checks & set(left)
    assert {"marts.customers", "raw.customers", "marts.retention_monthly"} <= key_checks


def test_broken_marts_fail_with_the_right_expectation(copy: Warehouse) -> None:
    _sql(
        copy,
        "insert into marts.customers select * from marts.customers limit 1",
        "update marts.customer_lifetime_value set predicted_clv = -5 "
        "where customer_id = (select min(customer_id) from marts.customer_lifetime_value)",
        "update marts.retention_monthly set churn_rate = 1.5 "
        "where month = (select max(month) from marts.retention_monthly) and segment_type = 'all'",
    )
    report = validation.validate(copy.paths, progress=quiet)
    failed = {(o.table, o.expectation, o.column) for o in report.failures}
    assert ("marts.customers", "expect_column_values_to_be_unique", "customer_id") in failed
    assert (
        "marts.customer_lifetime_value",
        "expect_column_values_to_be_between",
        "predicted_clv",
    ) in failed
    assert ("marts.retention_monthly", "expect_column_values_to_be_between", "churn_rate") in failed
    assert not report.errors and not report.success
    lines = "\n".join(validation.summary_lines(report))
    assert "marts.customer_lifetime_value" in lines and "1 unexpected" in lines
    assert "e.g. [-5.0]" in lines  # the unexpected value itself, not only the count


def test_a_validated_table_is_freed_before_it_is_reported(
    published: Warehouse, monkeypatch
) -> None:
    """The frame of a table is gone when its line is said, whatever GX keeps in reference cycles:
    automatic collection is off here, so only validate()'s own collection can free them. The
    two validation threads hold at most two frames at a time, within the memory budget."""
    read: dict[str, weakref.ref] = {}
    original = validation._frame

    def tracked(con, table, columns):
        frame = original(con, table, columns)
        read[table] = weakref.ref(frame)
        return frame

    monkeypatch.setattr(validation, "_frame", tracked)
    still_alive: list[str] = []
    reported: list[str] = []

    def progress(line: str) -> None:
        reported.append(line.split()[1].rstrip(":"))
        still_alive.extend(t for t in reported if read[t]() is not None)

    gc.disable()
    try:
        validation.validate(published.paths, progress=progress, write_report=False)
    finally:
        gc.enable()
    assert len(reported) > 10 and set(reported) == set(read)
    assert still_alive == []


def test_tables_are_validated_two_at_a_time_within_the_memory_budget(
    published: Warehouse, monkeypatch
) -> None:
    in_flight: list[str] = []
    together: set[frozenset[str]] = set()
    lock = threading.Lock()
    original = validation._frame

    def tracked(con, table, columns):
        with lock:
            in_flight.append(table)
            if len(in_flight) > 1:
                together.add(frozenset(in_flight))
        return original(con, table, columns)

    def reported(line: str) -> None:
        with lock:
            in_flight.remove(line.split()[1].rstrip(":"))

    monkeypatch.setattr(validation, "_frame", tracked)
    # one byte less than the two largest tables need together: those two never overlap
    sizes = {}
    with duckdb.connect(str(published.paths.warehouse), read_only=True) as con:
        suites = validation._load_suites_module()
        parameters = suites.SuiteParameters(
            as_of_date=datetime(2025, 12, 31), project_dir=validation.project_dir()
        )
        for spec in suites.build_suites(parameters):
            # what the scheduler holds a whole table to (a budget no table exceeds: no parts)
            (whole,) = validation._parts(con, spec, budget=2**62)
            sizes[spec.table] = whole.size
    largest, second = sorted(sizes, key=sizes.get, reverse=True)[:2]
    budget = sizes[largest] + sizes[second] - 1
    monkeypatch.setenv("RETENTION_VALIDATION_MEMORY", str(budget))
    report = validation.validate(published.paths, progress=reported, write_report=False)
    assert report.success
    assert together, "no two tables were validated at the same time"
    assert frozenset({largest, second}) not in together
    assert all(sum(sizes[t] for t in pair) <= budget for pair in together)
    # the report keeps the suites' order, whichever thread finished first
    tables = list(dict.fromkeys(o.table for o in report.outcomes))
    assert tables[:2] == ["raw.customers", "raw.orders"]


def test_a_table_over_the_budget_is_validated_in_parts_with_the_same_outcomes(
    copy: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over the budget a suite is split by the columns its expectations read: the frames hold
    those columns only, and the outcomes are those of the whole table, failures included."""
    whole = validation.validate(copy.paths, progress=quiet, write_report=False)
    frames: list[tuple[str, tuple[str, ...]]] = []
    original = validation._frame

    def tracked(con, table, columns):
        frames.append((table, tuple(columns)))
        return original(con, table, columns)

    monkeypatch.setattr(validation, "_frame", tracked)
    monkeypatch.setenv("RETENTION_VALIDATION_MEMORY", "1KB")  # every table over it
    lines: list[str] = []
    parted = validation.validate(copy.paths, progress=lines.append, write_report=False)

    def key(o: validation.Outcome) -> tuple:
        return (o.table, o.expectation, o.column, o.status, o.observed)

    assert sorted(map(key, parted.outcomes)) == sorted(map(key, whole.outcomes))
    assert [o.table for o in parted.outcomes] == [o.table for o in whole.outcomes]
    assert parted.row_counts == whole.row_counts
    orders = sorted(columns for table, columns in frames if table == "marts.orders")
    read = ("amount", "customer_id", "order_id", "ordered_date", "revenue", "status")
    assert orders == [(c,) for c in read]
    # a compound key stays together, a row condition brings the column it reads
    cohorts = {columns for table, columns in frames if table == "marts.customer_cohorts"}
    assert ("cohort_month", "period_number", "segment_type", "segment_value") in cohorts
    assert ("retention_rate", "period_number") in cohorts
    assert any(line.strip().startswith("ok     marts.orders (status):") for line in lines)

    # a failure in one part is found and named as on the whole table
    _sql(
        copy,
        "update staging.int_orders_flagged set status = 'lost' "
        "where order_id = (select min(order_id) from staging.int_orders_flagged)",
    )
    report = validation.validate(copy.paths, progress=quiet, write_report=False)
    assert {(o.table, o.expectation, o.column) for o in report.failures} == {
        ("marts.orders", "expect_column_values_to_be_in_set", "status")
    }


def test_a_memory_budget_that_is_not_a_size_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setenv("RETENTION_VALIDATION_MEMORY", "lots")
    with pytest.raises(UserError, match="RETENTION_VALIDATION_MEMORY='lots' is not a size"):
        validation.validation_memory()
    monkeypatch.setenv("RETENTION_VALIDATION_MEMORY", "800MiB")
    assert validation.validation_memory() == 800 * 2**20


def _releases(warehouse: Warehouse) -> set[str]:
    return {p.name for p in (warehouse.paths.data_dir / "serving_releases").iterdir()}


def test_the_run_writes_the_release_while_validating_and_discards_it_on_failure(
    copy: Warehouse,
) -> None:
    """`retention run` validates and writes the release side by side; a failed validation
    leaves serving/ and the releases as they were."""
    before, releases = _serving_state(copy), _releases(copy)
    _sql(copy, "update marts.customers set p_alive = 1.5 where purchase_count = 1")
    lines: list[str] = []
    with pytest.raises(validation.ValidationFailed, match="expectation"):
        pipeline.validate_and_publish_step(copy.paths, lines.append)
    assert _serving_state(copy) == before
    assert _releases(copy) == releases
    report = validation.read_report(copy.paths)
    assert report is not None
    assert ("marts.customers", "expect_column_values_to_be_between", "p_alive") in {
        (o.table, o.expectation, o.column) for o in report.failures
    }


def test_a_cancelled_release_stops_before_its_next_mart_and_leaves_nothing(
    copy: Warehouse,
) -> None:
    before, releases = _serving_state(copy), _releases(copy)
    cancel = publish.StageCancel()
    written: list[str] = []

    def cancel_after_the_first(line: str) -> None:
        written.append(line)
        cancel.cancel()

    with pytest.raises(publish.StageCancelled):
        publish.stage_release(copy.paths, progress=cancel_after_the_first, cancel=cancel)
    assert len(written) == 1
    assert _releases(copy) == releases
    assert _serving_state(copy) == before


def test_cancelling_a_release_interrupts_the_statement_writing_it() -> None:
    """A mart of 10 M rows takes seconds to write: the cancel interrupts it (DuckDB's
    interrupt on the writer's connection) instead of waiting for it."""
    cancel = publish.StageCancel()
    con = duckdb.connect()
    cancel.watch(con)
    threading.Timer(0.3, cancel.cancel).start()
    started = time.monotonic()
    with pytest.raises(duckdb.InterruptException):
        con.execute("select sum(i) from range(1_000_000_000_000) as t(i)").fetchall()
    assert time.monotonic() - started < 30
    cancel.watch(None)
    con.close()
    cancel.cancel()  # nothing to interrupt any more: no error


def test_the_run_publishes_what_it_validated(copy: Warehouse) -> None:
    before = copy.paths.serving.resolve()
    first = "(select min(customer_id) from marts.customers)"
    _sql(copy, f"update marts.customers set total_revenue = 12345.67 where customer_id = {first}")
    summary = pipeline.validate_and_publish_step(copy.paths, quiet)
    serving = copy.paths.serving.resolve()
    assert serving != before and serving == summary.release
    manifest = json.loads((serving / "_manifest.json").read_text())
    report = validation.read_report(copy.paths)
    assert report is not None and report.success and manifest["build_id"] == report.build_id
    with duckdb.connect(str(serving / "serving.duckdb"), read_only=True) as con:
        revenue = con.execute(
            "select total_revenue from customers order by customer_id limit 1"
        ).fetchone()[0]
    assert float(revenue) == 12345.67


def test_only_the_projects_marts_are_published(copy: Warehouse) -> None:
    """dbt never drops the table of a renamed or removed model; nothing validates it, and it may
    hold columns the PII tags no longer name."""
    _sql(
        copy,
        "create table marts.customers_old as "
        "select customer_id, email as contact from staging.stg_shop__customers",
    )
    said: list[str] = []
    summary = pipeline.validate_and_publish_step(copy.paths, said.append)
    assert "customers_old" not in summary.tables and "customers" in summary.tables
    assert any("left out marts.customers_old: no model of the project builds it" in s for s in said)
    with duckdb.connect(str(copy.paths.serving / "serving.duckdb"), read_only=True) as con:
        sql = "select view_name from duckdb_views() where not internal"
        views = {v for (v,) in con.execute(sql).fetchall()}
    assert "customers_old" not in views and "customers" in views
    assert not (copy.paths.serving / "customers_old.parquet").exists()


def test_every_published_mart_has_a_suite(published: Warehouse) -> None:
    manifest = publish.dbt_manifest(published.paths)
    suites = validation._load_suites_module()
    params = suites.SuiteParameters(
        as_of_date=datetime(2025, 1, 1).date(), project_dir=project_dir()
    )
    validated = {s.table for s in suites.build_suites(params)}
    assert {f"marts.{m}" for m in publish.mart_models(manifest)} <= validated
    assert len(publish.mart_models(manifest)) == 12


def test_pruning_keeps_the_live_release_and_what_is_not_a_release(copy: Warehouse) -> None:
    """After the clock stepped back, the new release and the one it replaced (a reader may have
    it open) are not the newest by name: they are kept all the same, and the releases stay
    three. A file or folder someone put beside the releases is left alone."""
    releases = copy.paths.data_dir / "serving_releases"
    ahead = [f"2999010{day}T000000000000-{letter * 8}" for day, letter in ((1, "a"), (2, "b"))]
    for name in [*ahead, "29990103T000000000000-cccccccc"]:
        (releases / name).mkdir()
        (releases / name / "_manifest.json").write_text("{}")
    (releases / "NOTES.txt").write_text("ours")
    (releases / "by_hand").mkdir()
    previous = copy.paths.serving.resolve()
    summary = pipeline.validate_and_publish_step(copy.paths, quiet)
    assert copy.paths.serving.resolve() == summary.release
    assert (summary.release / "serving.duckdb").exists()
    # the new release, the one a reader may still have open, and the newest other by name
    assert _releases(copy) == {
        summary.release.name,
        previous.name,
        "29990103T000000000000-cccccccc",
        "NOTES.txt",
        "by_hand",
    }
    again = pipeline.validate_and_publish_step(copy.paths, quiet)
    assert _releases(copy) == {
        again.release.name,
        summary.release.name,
        previous.name,  # replaced a moment ago (REPLACED_RELEASE_GRACE)
        "29990103T000000000000-cccccccc",
        "NOTES.txt",
        "by_hand",
    }
    assert (releases / "NOTES.txt").read_text() == "ours"


def test_a_reader_keeps_its_release_through_publishes_until_the_grace_ends(
    copy: Warehouse,
) -> None:
    """A BI connection reads the release it opened: three publishes in a row used to delete it
    under the connection ("No files found"). Kept for REPLACED_RELEASE_GRACE after it was
    replaced, then pruned as before."""
    opened = copy.paths.serving.resolve()
    reader = duckdb.connect(str(copy.paths.serving / "serving.duckdb"), read_only=True)
    try:
        rows = reader.execute("select count(*), sum(total_revenue) from customers").fetchone()
        for _ in range(3):
            pipeline.validate_and_publish_step(copy.paths, quiet)
        assert opened.exists()
        assert reader.execute("select count(*), sum(total_revenue) from customers").fetchone() == (
            rows
        )
    finally:
        reader.close()
    # the grace over: every manifest published two hours ago
    for manifest in (copy.paths.data_dir / "serving_releases").glob("*/_manifest.json"):
        content = json.loads(manifest.read_text())
        content["published_at"] = (
            datetime.fromisoformat(content["published_at"]) - publish.REPLACED_RELEASE_GRACE * 2
        ).isoformat()
        manifest.parent.chmod(0o755)
        manifest.chmod(0o644)
        manifest.write_text(json.dumps(content))
    latest = pipeline.validate_and_publish_step(copy.paths, quiet)
    assert not opened.exists()
    assert len(_releases(copy)) == publish.KEEP_RELEASES
    assert latest.release.name in _releases(copy)


def test_a_report_cut_short_leaves_the_last_one_whole(
    copy: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills while the report is written: the previous report stays as it was, and a
    report damaged some other way is named with what to do, not a traceback."""
    latest = copy.paths.validation / "latest.json"
    before = latest.read_text()
    write_text = Path.write_text

    def disk_fills(path: Path, text: str, *args, **kwargs) -> int:
        if "latest.json" not in path.name:
            return write_text(path, text, *args, **kwargs)
        write_text(path, text[:100], *args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", disk_fills)
    with pytest.raises(OSError, match="No space left"):
        validation.validate(copy.paths, progress=quiet)
    monkeypatch.undo()
    assert latest.read_text() == before
    assert [p.name for p in copy.paths.validation.glob(".*tmp")] == []
    latest.write_text(before[:100])
    with pytest.raises(UserError, match="run `retention validate` again"):
        publish.publish(copy.paths)


def test_a_stop_after_validation_cancels_the_release_being_written(
    copy: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Validation passed, the release is still being written (at scale the writer takes
    longer), and Ctrl-C arrives: the writer is cancelled and its folder removed, instead of the
    stop waiting for the whole release and leaving it unpublished."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals are delivered to the main thread")
    before, releases = _serving_state(copy), _releases(copy)
    validated = threading.Event()
    validate_step, stage_release = pipeline.validate_step, publish.stage_release

    def validate_and_say(*args, **kwargs):
        result = validate_step(*args, **kwargs)
        validated.set()
        return result

    def slow_writer(*args, **kwargs):
        validated.wait(60)
        time.sleep(1.0)  # the stop arrives while the writer is still at work
        return stage_release(*args, **kwargs)

    def stop_once_validated() -> None:
        validated.wait(60)
        time.sleep(0.3)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    monkeypatch.setattr(pipeline, "validate_step", validate_and_say)
    monkeypatch.setattr(publish, "stage_release", slow_writer)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Thread(target=stop_once_validated, daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            pipeline.validate_and_publish_step(copy.paths, quiet)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert validated.is_set()
    assert _releases(copy) == releases
    assert _serving_state(copy) == before


def test_a_release_that_cannot_be_written_is_not_published(
    copy: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    before, releases = _serving_state(copy), _releases(copy)

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    # the Parquet files are written, then creating serving.duckdb fails
    monkeypatch.setattr(publish, "duckdb", SimpleNamespace(connect=disk_full))
    with pytest.raises(OSError, match="No space left"):
        pipeline.validate_and_publish_step(copy.paths, quiet)
    report = validation.read_report(copy.paths)
    assert report is not None and report.success  # the validation itself ran and passed
    assert _serving_state(copy) == before
    assert _releases(copy) == releases


def test_a_staged_release_of_an_older_build_is_not_published(copy: Warehouse) -> None:
    before = _serving_state(copy)
    staged = publish.stage_release(copy.paths, progress=quiet)
    _sql(
        copy,
        "insert into raw._dbt_builds select 'a-later-build', event, happened_at + interval 1 hour,"
        " command, as_of_date, failures from raw._dbt_builds"
        f" where invocation_id = '{staged.build_id}'",
    )
    with pytest.raises(publish.PublishRefused, match="latest build is a-later-build"):
        publish.activate(copy.paths, staged)
    assert not staged.path.exists()
    assert _serving_state(copy) == before


def test_publish_refuses_a_validation_older_than_the_build(copy: Warehouse) -> None:
    before = _serving_state(copy)
    # a build after validation (a dbt build by hand, say) makes the validation stale
    from retention import dbt

    dbt.run_dbt(["build", "--select", "fx_rates"], copy.paths)
    with pytest.raises(publish.PublishRefused, match="older than the latest build"):
        publish.publish(copy.paths, progress=quiet)
    # and a build that never finished (killed half-way) blocks publishing too
    _sql(
        copy, "insert into raw._dbt_builds values ('killed-run', 'started', now(), 'build', '', 0)"
    )
    with pytest.raises(publish.PublishRefused, match="did not finish"):
        publish.publish(copy.paths, progress=quiet)
    assert _serving_state(copy) == before


def test_a_test_that_failed_blocks_publishing_until_it_passes_again(copy: Warehouse) -> None:
    from retention import dbt

    before = _serving_state(copy)
    # one lapsed customer-month marked active at its end, without being retained or reactivated:
    # retention_monthly built from it breaks E - N = retained + reactivated, a dbt test that
    # Great Expectations does not repeat
    lapsed = (
        "(select rowid from staging.int_customer_months where not is_active_at_start "
        "and not is_active_at_end and purchases = 0 order by customer_id, month limit 1)"
    )
    _sql(
        copy,
        f"update staging.int_customer_months set is_active_at_end = true where rowid = {lapsed}",
    )
    failed = dbt.run_dbt(["build", "--select", "retention_monthly"], copy.paths, check=False)
    identities = "test.retention.assert_retention_monthly_invariants"
    assert [r["status"] for r in failed.results if r["unique_id"] == identities] == ["fail"]
    # validating that build: every expectation may pass, the build did not
    report = validation.validate(copy.paths, progress=quiet)
    assert not report.success
    assert [(o.table, o.expectation, o.observed) for o in report.errors] == [
        ("dbt build", "latest_build_succeeded", "failed")
    ]
    # a later build of something else succeeds, and validation passes: the test still failed
    dbt.run_dbt(["build", "--select", "fx_rates"], copy.paths)
    assert validation.validate(copy.paths, progress=quiet).success
    with pytest.raises(publish.PublishRefused) as refused:
        publish.publish(copy.paths, progress=quiet)
    message = str(refused.value)
    assert "1 node(s) did not pass the last time they ran" in message
    assert "test assert_retention_monthly_invariants (fail)" in message
    assert _serving_state(copy) == before
    with duckdb.connect(str(copy.paths.warehouse), read_only=True) as con:
        assert validation.latest_node_failures(con) == [(identities, "fail")]
        # a test deleted from the project no longer holds publishing back
        assert publish._successful_build(con, {"nodes": {}})
    # the customer-months built again, and the mart after them: the gate opens
    dbt.run_dbt(["build", "--select", "int_customer_months+", "--full-refresh"], copy.paths)
    assert validation.validate(copy.paths, progress=quiet).success
    summary = publish.publish(copy.paths, progress=quiet)
    assert summary.tables["retention_monthly"] > 0
    assert _serving_state(copy) != before


def test_a_dbt_test_run_by_hand_counts_for_publishing(copy: Warehouse) -> None:
    """A `dbt test` after validation that fails holds publishing back; once it passes again,
    publishing goes ahead. It records its tests, not a build."""
    from retention import dbt

    before = _serving_state(copy)
    with duckdb.connect(str(copy.paths.warehouse), read_only=True) as con:
        builds = con.execute("select count(*) from raw._dbt_builds").fetchone()[0]
    # a customer's row written a second time into the mart, after the build was validated
    _sql(
        copy,
        "insert into marts.customers select * from marts.customers order by customer_id limit 1",
    )
    unique = "test.retention.unique_customers_customer_id."
    failed = dbt.run_dbt(["test", "--select", "customers"], copy.paths, check=False)
    assert [r["status"] for r in failed.results if r["unique_id"].startswith(unique)] == ["fail"]
    with pytest.raises(publish.PublishRefused) as refused:
        publish.publish(copy.paths, progress=quiet)
    assert "test unique_customers_customer_id (fail)" in str(refused.value)
    assert _serving_state(copy) == before
    # the second row deleted and the tests run again by hand: the gate opens
    _sql(copy, "delete from marts.customers where rowid = (select max(rowid) from marts.customers)")
    passed = dbt.run_dbt(["test", "--select", "customers"], copy.paths)
    assert [r["status"] for r in passed.results if r["unique_id"].startswith(unique)] == ["pass"]
    with duckdb.connect(str(copy.paths.warehouse), read_only=True) as con:
        assert con.execute("select count(*) from raw._dbt_builds").fetchone()[0] == builds
        assert validation.latest_node_failures(con) == []
    summary = publish.publish(copy.paths, progress=quiet)
    assert summary.tables["customers"] > 0
    assert _serving_state(copy) != before


def test_a_shrinking_mart_fails_the_row_count_check(copy: Warehouse) -> None:
    # marts.orders is a view over int_orders_flagged
    _sql(
        copy,
        "delete from staging.int_orders_flagged where order_id > "
        "(select quantile_disc(order_id, 0.3) from staging.int_orders_flagged)",
    )
    report = validation.validate(copy.paths, progress=quiet, tables=["marts.orders"])
    (shrunk,) = [
        o for o in report.failures if o.expectation == "expect_table_row_count_to_be_between"
    ]
    published = publish.published_row_counts(copy.paths)["marts.orders"]
    # the limit, why, and the way out of a shrink made on purpose (it blocked every publish)
    assert shrunk.observed == (
        f"{copy.scalar('select count(*) from marts.orders')} (at least {published // 2} "
        f"expected; the published copy has {published} rows and a mart may lose at most 50% "
        "of its rows from one publish to the next); what to do: if the change is intended (a "
        "var or seed changed), `retention run --accept-shrink` (or `retention validate "
        "--accept-shrink`, then `retention publish`)"
    )
    accepted = validation.validate(
        copy.paths, progress=quiet, tables=["marts.orders"], accept_shrink=True
    )
    # not compared with the published copy; the other checks still hold (the latest orders
    # went too: the freshness check says so)
    assert "expect_table_row_count_to_be_between" not in {o.expectation for o in accepted.outcomes}
    assert [(o.expectation, o.column) for o in accepted.failures] == [
        ("expect_column_max_to_be_between", "ordered_date")
    ]
    assert cli._parser().parse_args(["run", "--accept-shrink"]).accept_shrink


@pytest.mark.parametrize(
    ("text", "said", "line"),
    [
        ("x = 1\ndef build_suites(params)\n    return []\n", "SyntaxError: ", 2),
        ("x = 1\nimport great_expectations as gx\ny = gx.no_such\n", "AttributeError: ", 3),
    ],
)
def test_a_mistake_in_the_suites_file_is_named_not_traced(
    text: str, said: str, line: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gx/suites.py is the user's to extend: a slip in it is named with its line, not a
    traceback."""
    (tmp_path / "gx").mkdir()
    (tmp_path / "gx" / "suites.py").write_text(text)
    monkeypatch.setenv("RETENTION_PROJECT_DIR", str(tmp_path))
    with pytest.raises(UserError) as caught:
        validation._load_suites_module()
    message = str(caught.value)
    assert message.startswith(f"the expectation suites could not be made: {said}")
    assert f"({tmp_path / 'gx' / 'suites.py'}, line {line})" in message
    assert "what to do: correct that line of the suites file" in message


def test_an_engine_error_is_an_error_not_a_pass(copy: Warehouse, monkeypatch) -> None:
    real = validation._load_suites_module()

    def suites(params):
        broken = real.TableSuite(
            "marts.customers",
            [
                gxe.ExpectColumnValuesToBeBetween(
                    column="lifecycle_stage", min_value=0, max_value=1
                ),
                gxe.ExpectColumnValuesToBeUnique(column="customer_id"),
            ],
        )
        return [broken]

    module = SimpleNamespace(SuiteParameters=real.SuiteParameters, build_suites=suites)
    monkeypatch.setattr(validation, "_load_suites_module", lambda: module)
    report = validation.validate(copy.paths, progress=quiet)
    statuses = {o.expectation: o.status for o in report.outcomes}
    assert statuses["expect_column_values_to_be_between"] == validation.ERROR
    assert statuses["expect_column_values_to_be_unique"] == validation.PASSED
    assert not report.success and report.errors and not report.failures
    # Data Docs show the results of expectations, not what stopped one: the message says where
    message = str(validation.ValidationFailed(report))
    assert f"errors in {copy.paths.validation / 'latest.json'}; see " in message
    with pytest.raises(publish.PublishRefused):
        publish.publish(copy.paths, progress=quiet)


def test_the_release_holds_every_row_of_every_mart(published: Warehouse) -> None:
    """Each published file has exactly the rows of its mart (as a multiset: the files keep no
    order), every column but the PII ones."""
    serving = published.paths.serving
    manifest = json.loads((serving / "_manifest.json").read_text())
    with duckdb.connect(str(serving / "serving.duckdb"), read_only=True) as con:
        con.execute(f"attach '{published.paths.warehouse}' as wh (read_only)")
        marts = {
            t
            for (t,) in con.execute(
                "select table_name from information_schema.tables "
                "where table_catalog = 'wh' and table_schema = 'marts'"
            ).fetchall()
        }
        assert marts == set(manifest["tables"])
        for mart in sorted(marts):
            columns = ", ".join(f'"{c}"' for c in manifest["tables"][mart]["columns"])
            rows = con.execute(f"select count(*) from {mart}").fetchone()[0]
            assert rows == manifest["tables"][mart]["rows"], mart
            for a, b in ((mart, f"wh.marts.{mart}"), (f"wh.marts.{mart}", mart)):
                (differ,) = con.execute(
                    f"select count(*) from (select {columns} from {a} "
                    f"except all select {columns} from {b})"
                ).fetchone()
                assert differ == 0, (mart, a)


def test_serving_has_no_pii_and_is_read_only(published: Warehouse) -> None:
    serving = published.paths.serving
    assert serving.is_symlink()
    with duckdb.connect(str(serving / "serving.duckdb"), read_only=True) as con:
        views = [
            v
            for (v,) in con.execute(
                "select view_name from duckdb_views() where not internal"
            ).fetchall()
        ]
        assert {"customers", "orders", "winback_candidates", "customer_cohorts"} <= set(views)
        for view in views:
            columns = [r[0] for r in con.execute(f"describe {view}").fetchall()]
            assert "email" not in columns, view
        assert con.execute("select count(*) from customers").fetchone()[0] > 1000
    manifest = json.loads((serving / "_manifest.json").read_text())
    assert manifest["tables"]["customers"]["dropped_pii"] == ["email"]
    assert manifest["reporting_currency"] == "USD"
    assert manifest["churn_inactivity_days"] == 180  # the report's definitions read it
    assert not any(p.stat().st_mode & 0o222 for p in serving.iterdir())


def test_releases_are_readable_by_others_whatever_the_umask(copy: Warehouse) -> None:
    """A service publishing under umask 077 made serving_releases/ 0700: a BI tool's account
    could not reach the release made readable for it. A folder that exists keeps its mode."""
    releases = copy.paths.data_dir / "serving_releases"
    publish._remove(releases)
    copy.paths.serving.unlink()
    previous = os.umask(0o077)
    try:
        publish.publish(copy.paths, progress=quiet)
        assert releases.stat().st_mode & 0o777 == 0o755
        (release,) = releases.iterdir()
        assert release.stat().st_mode & 0o777 == 0o555
        assert {p.stat().st_mode & 0o777 for p in release.iterdir()} == {0o444}
        releases.chmod(0o750)  # narrowed to a group by its owner
        publish.publish(copy.paths, progress=quiet)
        assert releases.stat().st_mode & 0o777 == 0o750
    finally:
        os.umask(previous)
    with duckdb.connect(str(copy.paths.serving / "serving.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from customers").fetchone()[0] > 1000


def test_the_serving_file_opens_in_duckdb_1x_clients(published: Warehouse) -> None:
    """DuckDB 2 writes its own storage format unless told otherwise; BI drivers that bundle a
    DuckDB 1.x open only versions 64-68. The serving file is created at v1.0.0; the build
    warehouse, which BI tools never open, keeps DuckDB 2's format (its builds are faster)."""
    assert storage_version(published.paths.serving / "serving.duckdb") == ("v1.0.0+", 64)
    assert storage_version(published.paths.warehouse)[0] == "v2.0.0+"


def test_serving_views_carry_the_dbt_descriptions(published: Warehouse) -> None:
    """SQL clients and BI tools show a view's and its columns' comments next to their names."""
    import yaml

    spec = yaml.safe_load((project_dir() / "models/marts/core/_core__models.yml").read_text())
    orders = next(m for m in spec["models"] if m["name"] == "orders")
    described = {c["name"]: c["description"] for c in orders["columns"]}
    with duckdb.connect(str(published.paths.serving / "serving.duckdb"), read_only=True) as con:
        (comment,) = con.execute(
            "select comment from duckdb_views() where view_name = 'orders'"
        ).fetchone()
        columns = dict(
            con.execute(
                "select column_name, comment from duckdb_columns() where table_name = 'orders'"
            ).fetchall()
        )
        emails = con.execute(
            "select count(*) from duckdb_columns() where column_name = 'email'"
        ).fetchone()[0]
    assert comment == " ".join(orders["description"].split())
    assert comment.startswith("One row per current valid order up to as_of_date")
    assert columns["order_id"] == "Order key." == described["order_id"]
    assert columns["ordered_at"] == "Order time (UTC)."
    assert set(columns) <= set(described) and len(columns) > 5
    assert emails == 0  # a PII column's description does not bring it back


def test_a_reader_holding_serving_open_does_not_block_a_run(copy: Warehouse) -> None:
    reader = duckdb.connect(str(copy.paths.serving / "serving.duckdb"), read_only=True)
    old_release = copy.paths.serving.resolve()
    before = reader.execute("select count(*) from orders").fetchone()[0]
    result = subprocess.run(
        [sys.executable, "-m", "retention", "--data-dir", str(copy.paths.data_dir), "run"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    assert "==> validate + publish" in result.stdout
    assert reader.execute("select count(*) from orders").fetchone()[0] == before  # old copy
    reader.close()
    assert copy.paths.serving.resolve() != old_release
    with duckdb.connect(str(copy.paths.serving / "serving.duckdb"), read_only=True) as fresh:
        assert fresh.execute("select count(*) from orders").fetchone()[0] == before


def test_a_failed_preload_is_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    """The import ahead of validation runs beside dbt's output: when it fails (short of memory)
    validate's own import says so later, not a thread's traceback amid dbt's lines."""
    import sys
    import threading

    tracebacks: list[object] = []
    monkeypatch.setattr(threading, "excepthook", tracebacks.append)
    monkeypatch.setitem(sys.modules, "great_expectations", None)  # import fails
    validation.preload().join()
    assert tracebacks == []


def test_great_expectations_imports_in_a_process_spawned_from_python_m(tmp_path: Path) -> None:
    """Dagster's run worker (`python -m dagster api execute_run`) spawns each step: the step's
    __main__ has no spec and no file, and pyspark (imported by GX when installed) took that for
    a doctest run and exited the step with SystemExit(0): every launched run failed."""
    pytest.importorskip("pyspark")
    package = tmp_path / "launcher"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "step.py").write_text(
        "def step():\n"
        "    from retention.validation import import_great_expectations\n"
        "    import_great_expectations()\n"
        "    print('imported', flush=True)\n"
    )
    (package / "__main__.py").write_text(
        "import multiprocessing, sys\n"
        "from launcher.step import step\n"
        "if __name__ == '__main__':\n"
        "    child = multiprocessing.get_context('spawn').Process(target=step)\n"
        "    child.start()\n"
        "    child.join()\n"
        "    sys.exit(child.exitcode)\n"
    )
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-m", "launcher"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{root}"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "imported", result.stderr


@pytest.mark.parametrize(("configured", "kept"), [("128MB", "122.0 MiB"), ("3GB", "488.2 MiB")])
def test_validation_does_not_raise_a_lowered_memory_limit(configured: str, kept: str) -> None:
    """Validation caps DuckDB at 512MB; a RETENTION_DUCKDB_MEMORY_LIMIT lowered below that for a
    small machine was raised to it."""
    con = duckdb.connect(config={"memory_limit": configured})
    validation._cap_memory(con)
    assert con.execute("select current_setting('memory_limit')").fetchone() == (kept,)
