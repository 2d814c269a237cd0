"""Incremental runs: a new day of landing files, processed incrementally, gives exactly the
marts a full refresh gives, including late versions of old orders and late customers."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
import signal
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from retention import dbt, pipeline
from retention.config import Paths
from retention.generate import generate
from retention.load import COLUMNS

from .conftest import quiet, write_csv

ORDER_HEADER = list(COLUMNS["orders"])
CUSTOMER_HEADER = list(COLUMNS["customers"])
NPS_HEADER = list(COLUMNS["nps_responses"])
SPEND_HEADER = list(COLUMNS["marketing_spend"])
NEW_DAY = "2025-06-30"
INCREMENTAL_MODELS = (
    "base_shop__customers",
    "base_shop__nps_responses",
    "base_shop__orders",
    "int_orders_flagged",
    "int_customer_purchase_days",
    "int_customers_purchases_aggregated",
    "int_customer_months",
)


def _snapshot(paths: Paths) -> dict[str, list[tuple]]:
    """Every table and view of marts, plus the incremental models, in a stable order."""
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        relations = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema = 'marts' "
            f"or table_name in ({', '.join(repr(m) for m in INCREMENTAL_MODELS)}) order by 1, 2"
        ).fetchall()
        snapshot = {}
        for schema, table in relations:
            columns = [
                name
                for (name,) in con.execute(
                    "select column_name from information_schema.columns "
                    "where table_schema = ? and table_name = ? order by ordinal_position",
                    [schema, table],
                ).fetchall()
                # bookkeeping of incremental runs (latest load seen, as_of_date built for)
                if name not in ("_loaded_through", "_as_of_date")
            ]
            select = ", ".join(f'"{c}"' for c in columns)
            snapshot[f"{schema}.{table}"] = con.execute(
                f"select {select} from {schema}.{table} order by all"
            ).fetchall()
        return snapshot


def _compiled_code(paths: Paths, model: str) -> str:
    results = json.loads((paths.dbt_target / "run_results.json").read_text())
    (node,) = [r for r in results["results"] if r["unique_id"] == f"model.retention.{model}"]
    return node["compiled_code"]


def _test_statuses(result: dbt.DbtResult) -> list[str]:
    return [r["status"] for r in result.results if r["unique_id"].startswith("test.")]


def _record_build(paths: Paths, invocation: str, event: str) -> None:
    """A row of raw._dbt_builds a minute after the latest, as a build would have written it."""
    with duckdb.connect(str(paths.warehouse)) as con:
        con.execute(
            "insert into raw._dbt_builds select ?, ?, max(happened_at) + interval 1 minute,"
            " 'build', '', 0 from raw._dbt_builds",
            [invocation, event],
        )


def _first_rows(path: Path, count: int, where) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [row for row in csv.DictReader(handle) if where(row)][:count]


@pytest.fixture(scope="module")
def day_landed_incrementally(tmp_path_factory: pytest.TempPathFactory) -> Paths:
    """History up to the day before NEW_DAY built in full; then the new day, with late data,
    loaded and built incrementally."""
    paths = Paths(tmp_path_factory.mktemp("incremental"))
    generate(
        paths.landing,
        customers=2_000,
        seed=11,
        start=date(2023, 1, 1),
        end=date(2025, 6, 30),
        dirty_rate=0.02,
        progress=quiet,
        daily_from=date(2025, 6, 28),
    )
    held = paths.data_dir / "held"
    for file in sorted(paths.landing.glob(f"*/*_{NEW_DAY[:8]}3*")) + sorted(
        paths.landing.glob("*/*_2025-07-*")
    ):
        target = held / file.parent.name / file.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(file, target)
    assert (held / "orders" / f"orders_{NEW_DAY}.csv").exists()

    # an order whose customer has not landed yet: quarantined as unknown_customer for now
    write_csv(
        paths.landing / "orders" / "orders_early_unknown.csv",
        ORDER_HEADER,
        [
            ["O-LATE-1", "C-LATE-1", "2024-03-10T10:00:00Z", "completed", "80.00", "USD", ""],
            # a row without an order id: read again when its customer lands
            ["", "C-LATE-1", "2024-03-11T10:00:00Z", "completed", "81.00", "USD", ""],
        ],
    )
    # and the same customer's NPS response
    write_csv(
        paths.landing / "nps_responses" / "nps_responses_early_unknown.csv",
        NPS_HEADER,
        [["R-LATE-1", "C-LATE-1", "2024-03-20T10:00:00Z", "9"]],
    )
    # a file that will be exported again, changed, under the same name
    months = sorted((paths.landing / "orders").glob("orders_2023-0*.csv"))
    customer = _first_rows(months[0], 1, lambda r: r["status"] == "completed")[0]["customer_id"]
    reexported = paths.landing / "orders" / "orders_reexported.csv"
    first_export = [
        ["O-REEXPORT-1", customer, "2024-05-01T10:00:00Z", "completed", "30.00", "USD", ""],
        ["O-REEXPORT-2", customer, "2024-05-02T10:00:00Z", "completed", "40.00", "USD", ""],
    ]
    write_csv(reexported, ORDER_HEADER, first_export)
    # an order moved to the late customer: the move waits for the customer, the order stays
    # with its first customer until then
    april = sorted((paths.landing / "orders").glob("orders_2024-04*.csv"))[0]
    moved = _first_rows(april, 1, lambda r: r["status"] == "completed")[0]
    write_csv(
        paths.landing / "orders" / "orders_early_moved.csv",
        ORDER_HEADER,
        [
            [
                moved["order_id"],
                "C-LATE-1",
                *[moved[c] for c in ORDER_HEADER[2:6]],
                "2025-06-27T09:00:00Z",
            ],
            # without an id, of a customer who gets no new row: the increment classifies the
            # day's row without an id without this one, so neither is numbered against the other
            ["", customer, "2024-05-03T10:00:00Z", "completed", "83.00", "USD", ""],
        ],
    )
    # a value that will be changed and then changed back (sources without updated_at)
    _revert(paths, customer, "a", score="5", spend="100.00")
    pipeline.load_step(paths, quiet)
    pipeline.build_step(paths, quiet, unit_tests=False)
    assert "affected_orders" not in _compiled_code(paths, "base_shop__orders")
    assert "affected_responses" not in _compiled_code(paths, "base_shop__nps_responses")
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        assert con.execute(
            "select reject_reason from staging.base_shop__nps_responses "
            "where response_key = 'R-LATE-1'"
        ).fetchall() == [("unknown_customer",)]

    # the new day, with late versions of old orders and the late customer
    for folder in held.iterdir():
        for file in folder.iterdir():
            shutil.copy(file, paths.landing / folder.name / file.name)
    old = _first_rows(months[0], 2, lambda r: r["status"] == "completed")
    late_versions = [
        # a refund two years after the order
        [
            *[old[0][c] for c in ORDER_HEADER[:3]],
            "refunded",
            old[0]["amount"],
            old[0]["currency"],
            f"{NEW_DAY}T09:00:00Z",
        ],
        # an order corrected to another customer
        [
            old[1]["order_id"],
            old[0]["customer_id"],
            old[1]["ordered_at"],
            "completed",
            old[1]["amount"],
            old[1]["currency"],
            f"{NEW_DAY}T09:30:00Z",
        ],
        ["", old[0]["customer_id"], f"{NEW_DAY}T09:40:00Z", "completed", "82.00", "USD", ""],
    ]
    write_csv(paths.landing / "orders" / f"orders_{NEW_DAY}_late.csv", ORDER_HEADER, late_versions)
    # the file exported again: its first order refunded, its second unchanged, a third added
    write_csv(
        reexported,
        ORDER_HEADER,
        [
            [*first_export[0][:3], "refunded", "30.00", "USD", f"{NEW_DAY}T08:00:00Z"],
            first_export[1],
            ["O-REEXPORT-3", customer, f"{NEW_DAY}T07:00:00Z", "completed", "50.00", "USD", ""],
        ],
    )
    write_csv(
        paths.landing / "customers" / f"customers_{NEW_DAY}_late.csv",
        CUSTOMER_HEADER,
        [["C-LATE-1", "late@example.com", "2024-03-01T08:00:00Z", "DE", "email", ""]],
    )
    _revert(paths, customer, f"{NEW_DAY}_b", score="9", spend="120.00")
    _revert(paths, customer, f"{NEW_DAY}_c", score="5", spend="100.00")
    pipeline.load_step(paths, quiet)
    # the day loaded, not yet built (test_a_day_build_stopped_half_way_finishes_the_same)
    shutil.copytree(paths.data_dir, _before_the_build(paths), symlinks=True)
    pipeline.build_step(paths, quiet, unit_tests=False)
    return paths


def _revert(paths: Paths, customer: str, name: str, score: str, spend: str) -> None:
    # each file with a row of its own: a file with the content of one landed before is skipped
    write_csv(
        paths.landing / "nps_responses" / f"nps_responses_revert_{name}.csv",
        NPS_HEADER,
        [
            ["R-REVERT-1", customer, "2024-03-20T10:00:00Z", score],
            [f"R-REVERT-{name}", customer, "2024-03-21T10:00:00Z", "7"],
        ],
    )
    write_csv(
        paths.landing / "marketing_spend" / f"marketing_spend_revert_{name}.csv",
        SPEND_HEADER,
        [
            ["2024-02", "revert test", "retention", spend, "USD"],
            ["2024-02", f"revert test {name}", "retention", "1.00", "USD"],
        ],
    )


def test_a_value_changed_back_is_the_latest_version(day_landed_incrementally: Paths) -> None:
    """5, then 9, then 5 again: the third landing is no copy of the first but the latest
    version (an exact copy counts as a duplicate only of the version right before it)."""
    with duckdb.connect(str(day_landed_incrementally.warehouse), read_only=True) as con:
        nps = con.execute(
            "select score, _source_file, row_disposition from staging.base_shop__nps_responses "
            "where response_key = 'R-REVERT-1' order by _source_file"
        ).fetchall()
        spend = con.execute(
            "select amount_value::double, _source_file, row_disposition "
            "from staging.base_shop__marketing_spend where channel_key = 'revert test' "
            "order by _source_file"
        ).fetchall()
    assert [(r[0], r[2]) for r in nps] == [
        ("9", "superseded"),
        ("5", "current"),
        ("5", "superseded"),
    ]
    assert nps[1][1].endswith("_c.csv") and nps[2][1].endswith("_a.csv")
    assert [(r[0], r[2]) for r in spend] == [
        (120.0, "superseded"),
        (100.0, "current"),
        (100.0, "superseded"),
    ]


def _before_the_build(paths: Paths) -> Path:
    return paths.data_dir.with_name(f"{paths.data_dir.name}-before-the-day-build")


def test_a_new_day_is_processed_incrementally(day_landed_incrementally: Paths) -> None:
    paths = day_landed_incrementally
    assert "affected_orders" in _compiled_code(paths, "base_shop__orders")
    assert "affected_responses" in _compiled_code(paths, "base_shop__nps_responses")
    assert "new_customers" in _compiled_code(paths, "base_shop__customers")
    assert "prior_last_purchase_date" in _compiled_code(paths, "int_customer_months")
    for model in (
        "int_orders_flagged",
        "int_customer_purchase_days",
        "int_customers_purchases_aggregated",
    ):
        assert "customers_to_recompute" in _compiled_code(paths, model)
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        # the late customer's order, quarantined before, now counts from its 2024 cohort
        cohort = con.execute(
            "select cohort_month, count(*) from staging.int_customer_months "
            "where customer_id = 'C-LATE-1' group by 1"
        ).fetchall()
        assert cohort == [(date(2024, 3, 1), 16)]  # March 2024 .. June 2025
        assert con.execute(
            "select row_disposition from staging.base_shop__orders where order_key = 'O-LATE-1'"
        ).fetchall() == [("current",)]
        # its NPS response too, quarantined as unknown_customer by the first build
        assert con.execute(
            "select row_disposition from staging.base_shop__nps_responses "
            "where response_key = 'R-LATE-1'"
        ).fetchall() == [("current",)]
        assert con.execute("select max(month) from staging.int_customer_months").fetchone() == (
            date(2025, 6, 1),
        )
        # the order moved to it, with it now; its first customer lost it
        (moved,) = con.execute(
            "select order_key from staging.base_shop__orders "
            "where _source_file = 'orders/orders_early_moved.csv' and order_key is not null"
        ).fetchone()
        assert con.execute(
            "select customer_id from staging.int_orders_flagged where order_id = ?", [moved]
        ).fetchall() == [("C-LATE-1",)]


def test_a_file_landed_again_under_its_name_adds_versions(day_landed_incrementally: Paths) -> None:
    """A raw row is (file, record, load): the rows of a file exported again under the same name
    are new rows, classified next to the first export's (the build's tests passed)."""
    with duckdb.connect(str(day_landed_incrementally.warehouse), read_only=True) as con:
        rows = con.execute(
            "select order_key, _source_row, order_status, row_disposition "
            "from staging.base_shop__orders where _source_file = 'orders/orders_reexported.csv' "
            "order by _source_row, _loaded_at"
        ).fetchall()
        mart = con.execute(
            "select order_id, status from marts.orders where order_id like 'O-REEXPORT-%' "
            "order by 1"
        ).fetchall()
    assert rows == [
        ("O-REEXPORT-1", 1, "completed", "superseded"),
        ("O-REEXPORT-1", 1, "refunded", "current"),
        ("O-REEXPORT-2", 2, "completed", "current"),
        ("O-REEXPORT-2", 2, "completed", "duplicate"),
        ("O-REEXPORT-3", 3, "completed", "current"),
    ]
    assert mart == [
        ("O-REEXPORT-1", "refunded"),
        ("O-REEXPORT-2", "completed"),
        ("O-REEXPORT-3", "completed"),
    ]


def test_a_duplicate_written_by_the_increment_fails_the_grain_test(
    day_landed_incrementally: Paths,
) -> None:
    """The grain tests of incremental models check the latest increment only: a duplicate in
    it still fails the build's test."""
    paths = day_landed_incrementally
    table = "staging.int_customer_months"
    with duckdb.connect(str(paths.warehouse)) as con:
        con.execute(
            f"insert into {table} select * from {table} "
            f"where _loaded_through = (select max(_loaded_through) from {table}) limit 1"
        )
    try:
        result = dbt.run_dbt(
            ["test", "--select", "int_customer_months,test_name:unique_combination"],
            paths,
            check=False,
        )
        assert _test_statuses(result) == ["fail"]
    finally:
        with duckdb.connect(str(paths.warehouse)) as con:
            con.execute(f"delete from {table} where rowid = (select max(rowid) from {table})")
    passed = dbt.run_dbt(
        ["test", "--select", "int_customer_months,test_name:unique_combination"], paths
    )
    assert _test_statuses(passed) == ["pass"]


def test_a_duplicate_left_by_a_failed_build_fails_the_next_grain_test(
    day_landed_incrementally: Paths,
) -> None:
    """A build whose grain test failed leaves its rows in the table: the next build checks every
    row, not only its own increment, so the failure is not forgotten. After a successful build the
    check is the latest increment again."""
    paths = day_landed_incrementally
    table = "staging.int_customer_months"
    select = ["test", "--select", "int_customer_months,test_name:unique_combination"]

    with duckdb.connect(str(paths.warehouse)) as con:
        # a duplicate in an older increment, as a failed build would have left it
        con.execute(
            f"insert into {table} select * from {table} "
            f"where _loaded_through = (select min(_loaded_through) from {table}) limit 1"
        )
    try:
        _record_build(paths, "a-failed-build", "started")
        _record_build(paths, "a-failed-build", "failed")
        failing = dbt.run_dbt(select, paths, check=False)
        assert _test_statuses(failing) == ["fail"]
        _record_build(paths, "a-killed-build", "started")  # no end row
        assert _test_statuses(dbt.run_dbt(select, paths, check=False)) == ["fail"]
        _record_build(paths, "a-later-build", "started")
        _record_build(paths, "a-later-build", "success")
        # scoped to the latest increment again: the older duplicate is outside it
        assert _test_statuses(dbt.run_dbt(select, paths, check=False)) == ["pass"]
    finally:
        with duckdb.connect(str(paths.warehouse)) as con:
            con.execute(f"delete from {table} where rowid = (select max(rowid) from {table})")
            con.execute(
                "delete from raw._dbt_builds where invocation_id in "
                "('a-failed-build', 'a-killed-build', 'a-later-build')"
            )
    assert _test_statuses(dbt.run_dbt(select, paths)) == ["pass"]


@pytest.mark.parametrize(
    ("select", "test_name", "table", "plant_sql"),
    [
        (  # two copies of a raw order row
            "source:shop.orders",
            "unique_combination",
            "raw.orders",
            "insert into raw.orders select * exclude (range) replace (?::timestamp as _loaded_at)"
            " from (select * from raw.orders limit 1), range(2)",
        ),
        (  # a current order of a customer staging does not know
            "stg_shop__orders",
            "relationships_of_new_rows",
            "staging.base_shop__orders",
            "insert into staging.base_shop__orders select * replace (?::timestamp as _loaded_at,"
            " 'no-such-customer' as customer_key, 'planted' as order_key)"
            " from staging.base_shop__orders where row_disposition = 'current' limit 1",
        ),
    ],
)
def test_tests_of_new_rows_count_the_rows_landed_after_their_last_pass(
    day_landed_incrementally: Paths, select: str, test_name: str, table: str, plant_sql: str
) -> None:
    """The tests given new_rows_column (the uniqueness of raw rows, the customers of the staged
    orders) count only the rows landed after the latest `_loaded_at` a pass of theirs saw
    (raw._dbt_checked_through): the rows up to it were checked then. Without a pass on record
    every row is counted."""
    paths = day_landed_incrementally
    command = ["test", "--select", f"{select},test_name:{test_name}"]
    manifest = json.loads((paths.dbt_target / "manifest.json").read_text())
    (test_id,) = [
        unique_id
        for unique_id, node in manifest["nodes"].items()
        if node.get("test_metadata", {}).get("name") == test_name
        and node["test_metadata"]["kwargs"].get("new_rows_column")
        and (node["attached_node"] or node["depends_on"]["nodes"][0]).endswith(
            select.replace("source:", "")
        )
    ]
    with duckdb.connect(str(paths.warehouse)) as con:
        last_row, latest = con.execute(
            f"select max(rowid), max(_loaded_at) from {table}"
        ).fetchone()
        recorded = con.execute(
            "select * from raw._dbt_checked_through where unique_id = ?", [test_id]
        ).fetchall()
    # the fixture's builds passed it, the day's one having seen the day's rows
    assert max(checked for _, _, checked in recorded) == latest

    def plant(loaded_at: datetime) -> None:
        with duckdb.connect(str(paths.warehouse)) as con:
            con.execute(plant_sql, [loaded_at])

    try:
        plant(latest)  # as if landed by the day's load: the day's pass saw it
        assert _test_statuses(dbt.run_dbt(command, paths, check=False)) == ["pass"]
        # unless rows may be committed late (the lookback of the incremental models): then
        # the rows stamped within it are counted again
        lookback = dbt.run_dbt(
            command, paths, dbt_vars={"incremental_lookback_hours": 1}, check=False
        )
        assert _test_statuses(lookback) == ["fail"]
        plant(latest + timedelta(minutes=1))  # landed after the pass
        assert _test_statuses(dbt.run_dbt(command, paths, check=False)) == ["fail"]
        with duckdb.connect(str(paths.warehouse)) as con:
            con.execute(f"delete from {table} where _loaded_at > ?", [latest])
            con.execute("delete from raw._dbt_checked_through where unique_id = ?", [test_id])
        # no pass on record: the row planted with the day's rows counts too
        assert _test_statuses(dbt.run_dbt(command, paths, check=False)) == ["fail"]
    finally:
        with duckdb.connect(str(paths.warehouse)) as con:
            con.execute(f"delete from {table} where rowid > ?", [last_row])
            con.execute("delete from raw._dbt_checked_through where unique_id = ?", [test_id])
            con.executemany("insert into raw._dbt_checked_through values (?, ?, ?)", recorded)
    assert _test_statuses(dbt.run_dbt(command, paths)) == ["pass"]


@pytest.mark.parametrize(
    ("table", "model", "only"),
    [
        ("staging.int_orders_flagged", "orders", ""),
        ("staging.base_shop__orders", "stg_shop__orders", "and row_disposition = 'current'"),
    ],
)
def test_order_ids_are_counted_where_the_increment_wrote_them(
    day_landed_incrementally: Paths, table: str, model: str, only: str
) -> None:
    """unique_where_changed after a day's build counts the order ids of the latest increment over
    the whole table: a copy of one of them among the older rows (an order whose customer changed)
    fails. A duplicate among the older rows only was the concern of the builds that wrote them,
    until an invocation other than a successful build comes first: then every id is counted."""
    paths = day_landed_incrementally
    select = ["test", "--select", f"{model},test_name:unique_where_changed"]

    def plant(increment: str) -> None:
        """A copy of a row of the latest or the oldest increment, stamped with the oldest."""
        with duckdb.connect(str(paths.warehouse)) as con:
            con.execute(
                f"insert into {table} select * replace ("
                f"(select min(_loaded_through) from {table}) as _loaded_through) from {table} "
                f"where _loaded_through = (select {increment}(_loaded_through) from {table}) "
                f"{only} limit 1"
            )

    def remove_planted() -> None:
        with duckdb.connect(str(paths.warehouse)) as con:
            con.execute(f"delete from {table} where rowid = (select max(rowid) from {table})")

    try:
        plant("max")
        assert _test_statuses(dbt.run_dbt(select, paths, check=False)) == ["fail"]
        remove_planted()
        plant("min")
        # the older duplicate is outside the latest increment: not counted after a build
        assert _test_statuses(dbt.run_dbt(select, paths, check=False)) == ["pass"]
        _record_build(paths, "a-failed-build", "started")
        _record_build(paths, "a-failed-build", "failed")
        assert _test_statuses(dbt.run_dbt(select, paths, check=False)) == ["fail"]
        remove_planted()
    finally:
        with duckdb.connect(str(paths.warehouse)) as con:
            con.execute(
                f"delete from {table} where rowid in (select rowid from {table} "
                f"qualify count(*) over (partition by _source_file, _source_row, _loaded_at) > 1 "
                f"and rowid = max(rowid) over (partition by _source_file, _source_row, _loaded_at))"
            )
            con.execute("delete from raw._dbt_builds where invocation_id = 'a-failed-build'")
    assert _test_statuses(dbt.run_dbt(select, paths)) == ["pass"]


def test_incremental_run_equals_full_refresh(day_landed_incrementally: Paths) -> None:
    paths = day_landed_incrementally
    incremental = _snapshot(paths)
    pipeline.build_step(paths, quiet, full_refresh=True, unit_tests=False)
    assert "affected_orders" not in _compiled_code(paths, "base_shop__orders")
    assert "affected_responses" not in _compiled_code(paths, "base_shop__nps_responses")
    full = _snapshot(paths)
    assert incremental.keys() == full.keys()
    assert {"marts.customers", "marts.customer_cohorts", "marts.retention_monthly"} <= set(full)
    for name in full:
        assert incremental[name] == full[name], f"{name} differs after the incremental run"


def test_a_day_build_stopped_half_way_finishes_the_same(
    day_landed_incrementally: Paths, tmp_path: Path
) -> None:
    """SIGTERM to the day's `retention build` once `base_shop__orders` has taken the day's rows
    (its increment committed, models after it still to build): the build stops, and the next
    one leaves every mart and incremental model as the uninterrupted build did."""
    expected = _snapshot(day_landed_incrementally)
    data_dir = tmp_path / "data"
    shutil.copytree(_before_the_build(day_landed_incrementally), data_dir, symlinks=True)
    command = [sys.executable, "-m", "retention", "--data-dir", str(data_dir), "build"]
    stopped = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert stopped.stdout is not None
    try:
        for line in stopped.stdout:
            if "OK created sql incremental model staging.base_shop__orders" in line:
                stopped.send_signal(signal.SIGTERM)
                break
        out, err = stopped.communicate(timeout=300)
    finally:
        if stopped.poll() is None:
            stopped.kill()
    assert stopped.returncode == 128 + signal.SIGTERM, out[-2000:] + err
    paths = Paths(data_dir)
    assert _snapshot(paths) != expected  # stopped with models still to take the day
    finished = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr
    after = _snapshot(paths)
    assert after.keys() == expected.keys()
    for name in expected:
        assert after[name] == expected[name], f"{name} differs after the stopped build"


@pytest.mark.parametrize("selection", ["int_customer_months", "path:models/intermediate"])
def test_a_part_built_ahead_of_its_parents_catches_up_with_them(
    day_landed_incrementally: Paths, tmp_path: Path, selection: str
) -> None:
    """The day loaded, then only models downstream of the base models built (their parents
    still without the day): the next whole build leaves every mart and incremental model as the
    day's build did. A model stamped with the day's load time would have skipped the day's rows
    its parents took in afterwards."""
    expected = _snapshot(day_landed_incrementally)
    shutil.copytree(_before_the_build(day_landed_incrementally), tmp_path / "data", symlinks=True)
    paths = Paths(tmp_path / "data")
    pipeline.build_step(paths, quiet, select=selection, unit_tests=False)
    pipeline.build_step(paths, quiet, unit_tests=False)
    after = _snapshot(paths)
    assert after.keys() == expected.keys()
    for name in expected:
        assert after[name] == expected[name], f"{name} differs after the partial build"


def test_a_day_of_orders_alone_built_in_part_first_catches_up(
    day_landed_incrementally: Paths, tmp_path: Path
) -> None:
    """A day with orders and no customer rows (base_shop__customers takes in nothing), built
    first for int_customer_months alone: the next whole build gives what a full refresh gives."""
    shutil.copytree(day_landed_incrementally.data_dir, tmp_path / "data", symlinks=True)
    paths = Paths(tmp_path / "data")
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        # the raw text of a completed order, its only version
        order = con.execute(
            "select order_id, customer_id, ordered_at, amount, currency from raw.orders "
            "where order_id in (select order_id from staging.stg_shop__orders "
            "where status = 'completed') qualify count(*) over (partition by order_id) = 1 "
            "order by order_id limit 1"
        ).fetchone()
    write_csv(
        paths.landing / "orders" / "orders_refund.csv",
        ORDER_HEADER,
        [[*order[:3], "refunded", *order[3:], "2025-06-30T12:00:00Z"]],
    )
    pipeline.load_step(paths, quiet)
    pipeline.build_step(paths, quiet, select="int_customer_months", unit_tests=False)
    pipeline.build_step(paths, quiet, unit_tests=False)
    incremental = _snapshot(paths)
    pipeline.build_step(paths, quiet, full_refresh=True, unit_tests=False)
    full = _snapshot(paths)
    for name in full:
        assert incremental[name] == full[name], f"{name} differs after the partial build"


def test_an_earlier_as_of_date_needs_a_full_refresh(day_landed_incrementally: Paths) -> None:
    with pytest.raises(dbt.DbtFailure, match="full-refresh"):
        pipeline.build_step(day_landed_incrementally, quiet, as_of="2025-01-15", unit_tests=False)


def test_a_later_as_of_date_adds_the_orders_already_loaded(day_landed_incrementally: Paths) -> None:
    """Built for an earlier as_of_date, then incrementally for the latest one with nothing new
    loaded: the orders between the two dates join the per-customer models."""
    paths = day_landed_incrementally
    pipeline.build_step(paths, quiet, as_of="2025-03-10", full_refresh=True, unit_tests=False)
    pipeline.build_step(paths, quiet, unit_tests=False)
    assert "customers_to_recompute" in _compiled_code(paths, "int_orders_flagged")
    incremental = _snapshot(paths)
    pipeline.build_step(paths, quiet, full_refresh=True, unit_tests=False)
    full = _snapshot(paths)
    assert incremental["marts.orders"] == full["marts.orders"]
    for name in full:
        assert incremental[name] == full[name], f"{name} differs after the incremental run"


def test_a_build_without_a_date_continues_from_a_later_one(
    day_landed_incrementally: Paths,
) -> None:
    """The Dagster schedule builds for its day; the landing sensor's run after it has no date,
    and the latest order is from the day before: it continues from the schedule's date instead
    of being refused for moving as_of_date back. A full refresh starts from the orders again."""
    paths = day_landed_incrementally

    def as_of() -> tuple[date, date]:
        with duckdb.connect(str(paths.warehouse), read_only=True) as con:
            return con.execute(
                "select (select as_of_date from staging.int_reporting_dates), "
                "(select max(ordered_at)::date from staging.stg_shop__orders)"
            ).fetchone()

    pipeline.build_step(paths, quiet, as_of="2025-07-02", unit_tests=False)
    # a date before the one the incremental models hold rows for is refused, and a build
    # without a date after it still continues from the later one
    with pytest.raises(dbt.DbtFailure, match="give a date from 2025-06-30 on, or rebuild"):
        pipeline.build_step(paths, quiet, as_of="2025-06-29", unit_tests=False)
    pipeline.build_step(paths, quiet, unit_tests=False)
    built_for, latest_order = as_of()
    assert (built_for, latest_order) == (date(2025, 7, 2), date(2025, 6, 30))
    incremental = _snapshot(paths)
    pipeline.build_step(paths, quiet, as_of="2025-07-02", full_refresh=True, unit_tests=False)
    assert _snapshot(paths) == incremental
    pipeline.build_step(paths, quiet, full_refresh=True, unit_tests=False)
    assert as_of() == (date(2025, 6, 30), date(2025, 6, 30))


def test_a_table_from_an_earlier_version_asks_for_a_full_refresh(
    day_landed_incrementally: Paths,
) -> None:
    paths = day_landed_incrementally
    with duckdb.connect(str(paths.warehouse)) as con:
        con.execute("alter table staging.int_orders_flagged drop column _as_of_date")
    with pytest.raises(dbt.DbtFailure, match="int_orders_flagged has no column _as_of_date"):
        pipeline.build_step(paths, quiet, unit_tests=False)
    pipeline.build_step(paths, quiet, full_refresh=True, unit_tests=False)


def test_a_changed_setting_needs_a_full_refresh(
    day_landed_incrementally: Paths, tmp_path: Path
) -> None:
    """The incremental models were built with the default vars and seeds: an increment with
    another reporting currency or fx rate file would keep their old rows beside new ones. The
    build stops before changing anything and names what changed; each model rebuilt in full
    with the new settings may then take increments with them."""
    data_dir = tmp_path / "data"
    shutil.copytree(_before_the_build(day_landed_incrementally), data_dir, symlinks=True)
    paths = Paths(data_dir)
    no_unit_tests = ["--exclude-resource-type", "unit_test"]
    euros = {"reporting_currency": "eur", "max_order_amount": 300}

    def builds() -> int:
        with duckdb.connect(str(paths.warehouse), read_only=True) as con:
            return con.execute("select count(*) from raw._dbt_builds").fetchone()[0]

    before, builds_before = _snapshot(paths), builds()
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        assert con.execute("select max(amount) > 300 from marts.orders").fetchone() == (True,)
    with pytest.raises(dbt.DbtFailure) as refused:
        dbt.run_dbt(["build", *no_unit_tests], paths, dbt_vars=euros)
    assert (
        "var max_order_amount changed from 1000000 to 300; "
        "var reporting_currency changed from USD to EUR since the incremental models "
        "staging.base_shop__customers, staging.base_shop__nps_responses, "
        "staging.base_shop__orders, staging.int_customer_months, "
    ) in str(refused.value)
    assert "retention build --full-refresh" in str(refused.value)
    assert "> called by" not in str(refused.value)  # dbt's macro call stack: not for the user
    assert _snapshot(paths) == before and builds() == builds_before

    # another fx_rates file (its checksum) concerns only the models downstream of the seed
    with duckdb.connect(str(paths.warehouse)) as con:
        con.execute(
            "update raw._dbt_incremental_settings "
            'set settings = replace(settings, \'"seed fx_rates": "\', \'"seed fx_rates": "0\') '
            "where unique_id like '%.base_shop__%'"
        )
    with pytest.raises(
        dbt.DbtFailure,
        match=r"seed fx_rates changed since the incremental "
        r"models staging\.base_shop__orders were built:",
    ):
        dbt.run_dbt(["run", "--select", "base_shop__orders+"], paths)
    # nor is a selection without incremental models checked
    dbt.run_dbt(["run", "--select", "int_reporting_dates"], paths, dbt_vars=euros)

    # rebuilt in full with the new settings, one model takes increments with them; the others,
    # not rebuilt (a full refresh that failed before them), still ask for the full refresh
    dbt.run_dbt(["run", "--select", "base_shop__orders", "--full-refresh"], paths, dbt_vars=euros)
    dbt.run_dbt(["run", "--select", "base_shop__orders"], paths, dbt_vars=euros)
    with pytest.raises(dbt.DbtFailure, match="since the incremental models") as refused:
        dbt.run_dbt(["build", *no_unit_tests], paths, dbt_vars=euros)
    assert "staging.base_shop__customers" in str(refused.value)
    assert "staging.base_shop__orders" not in str(refused.value)
    dbt.run_dbt(["build", "--full-refresh", *no_unit_tests], paths, dbt_vars=euros)
    dbt.run_dbt(["build", *no_unit_tests], paths, dbt_vars=euros)
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        # orders above 300 euros are quarantined, however old
        assert con.execute("select max(amount) <= 300 from marts.orders").fetchone() == (True,)


def test_changed_sql_or_an_earlier_version_needs_a_full_refresh(
    day_landed_incrementally: Paths, tmp_path: Path
) -> None:
    """An upgrade that changed what int_customer_months' columns mean published wrong averages
    from its old rows beside new ones, every check green. The SQL of each incremental model and
    of the models upstream of it is recorded (dbt's checksums of their files); a change, or a
    record made by an earlier version without it, asks for the full refresh."""
    data_dir = tmp_path / "data"
    shutil.copytree(_before_the_build(day_landed_incrementally), data_dir, symlinks=True)
    paths = Paths(data_dir)

    def edit_record(model: str, pattern: str, replacement: str) -> None:
        with duckdb.connect(str(paths.warehouse)) as con:
            con.execute(
                "update raw._dbt_incremental_settings "
                "set settings = regexp_replace(settings, ?, ?) where unique_id like ?",
                [pattern, replacement, f"%.{model}"],
            )

    edit_record(
        "int_customer_months", '"code int_customer_months": "', '"code int_customer_months": "0'
    )
    with pytest.raises(
        dbt.DbtFailure,
        match=r"the SQL of model int_customer_months changed since the incremental models "
        r"staging\.int_customer_months were built: .* Rebuild them with `retention run "
        r"--full-refresh`",
    ) as refused:
        dbt.run_dbt(["run", "--select", "int_customer_months"], paths)
    assert "put the settings back" not in str(refused.value)  # there are none to put back
    edit_record(
        "int_customer_months", '"code int_customer_months": "0', '"code int_customer_months": "'
    )
    dbt.run_dbt(["run", "--select", "int_customer_months"], paths)

    # a macro that only the increment calls: dbt's depends_on of the model does not list it
    edit_record(
        "base_shop__orders", '"macro raw_rows_to_classify": "', '"macro raw_rows_to_classify": "0'
    )
    with pytest.raises(
        dbt.DbtFailure,
        match=r"the SQL of macro raw_rows_to_classify changed since the incremental models "
        r"staging\.base_shop__orders were built: ",
    ):
        dbt.run_dbt(["run", "--select", "base_shop__orders"], paths)
    edit_record(
        "base_shop__orders", '"macro raw_rows_to_classify": "0', '"macro raw_rows_to_classify": "'
    )
    dbt.run_dbt(["run", "--select", "base_shop__orders"], paths)

    # a record from before a setting existed (an earlier version of the project)
    edit_record("base_shop__orders", '"var min_event_date": "[^"]*", ', "")
    with pytest.raises(
        dbt.DbtFailure,
        match=r"the incremental models staging\.base_shop__orders were built without a record "
        r"of var min_event_date \(by an earlier version of the project, or before that was "
        r"added\):",
    ):
        dbt.run_dbt(["run", "--select", "base_shop__orders"], paths)


def _recorded_settings(paths: Paths, model: str) -> dict[str, str]:
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        (settings,) = con.execute(
            "select settings from raw._dbt_incremental_settings where unique_id = ? "
            "order by happened_at desc limit 1",
            [f"model.retention.{model}"],
        ).fetchone()
    return json.loads(settings)


def test_the_settings_cover_the_project_macros_the_incremental_models_call(
    day_landed_incrementally: Paths,
) -> None:
    """A fix to a macro changes the rows an increment writes, as a change to a model's file
    does. Each incremental model records the SQL (its md5) of the project's macros that it, the
    models upstream of it and their hooks call: also those its increment alone calls (dbt's
    depends_on lists only what the parse called), a dispatched macro's implementation for the
    target and the default one; not dbt's own macros, nor those of models downstream."""
    paths = day_landed_incrementally
    manifest = json.loads((paths.dbt_target / "manifest.json").read_text())
    settings = _recorded_settings(paths, "base_shop__orders")
    macros = {key[len("macro ") :] for key in settings if key.startswith("macro ")}
    assert {
        "raw_rows_to_classify",  # called in the is_incremental() branch only
        "keys_to_reclassify",
        "customers_with_new_rows",  # called by the two above
        "parse_decimal",
        "trim_spaces",  # dispatched: this target's implementation and the default one
        "duckdb__trim_spaces",
        "default__trim_spaces",
        "analyze_table",  # the post-hook of every staging model
        "default__analyze_table",
    } <= macros
    assert (
        not {
            "postgres__analyze_table",  # another target's
            "customer_months_to_recompute",  # int_customer_months' (downstream)
            "clv_mart",
            "record_build_start",
            "is_incremental",  # dbt's
        }
        & macros
    )
    for name in ("raw_rows_to_classify", "duckdb__trim_spaces"):
        sql = manifest["macros"][f"macro.retention.{name}"]["macro_sql"]
        assert settings[f"macro {name}"] == hashlib.md5(sql.encode()).hexdigest()
    # a model downstream records the macros of the models upstream of it, and its own
    months = _recorded_settings(paths, "int_customer_months")
    assert {"macro raw_rows_to_classify", "macro customer_months_to_recompute"} <= set(months)


def test_the_settings_checked_cover_the_vars_the_incremental_models_read(
    day_landed_incrementally: Paths,
) -> None:
    """A var read by an incremental model, or by a model or project macro upstream of one, is
    among the settings each incremental model records (macros/incremental_settings.sql), unless
    it cannot change the rows they keep."""
    paths = day_landed_incrementally
    manifest = json.loads((paths.dbt_target / "manifest.json").read_text())
    nodes, macros = manifest["nodes"], manifest["macros"]
    incremental = {
        unique_id
        for unique_id, node in nodes.items()
        if node["resource_type"] == "model" and node["config"]["materialized"] == "incremental"
    }
    assert {unique_id.rsplit(".", 1)[1] for unique_id in incremental} == set(INCREMENTAL_MODELS)
    upstream, called, todo = set(incremental), set(), list(incremental)
    while todo:
        node = nodes.get(todo.pop(), {"depends_on": {}})  # a source has no node
        for parent in set(node["depends_on"].get("nodes", [])) - upstream:
            upstream.add(parent)
            todo.append(parent)
        macro_todo = list(node["depends_on"].get("macros", []))
        while macro_todo:
            macro = macro_todo.pop()
            if macro not in called:
                called.add(macro)
                macro_todo += macros[macro]["depends_on"]["macros"]
    # and those only an increment calls, which depends_on does not list (recorded with the rest)
    for model in INCREMENTAL_MODELS:
        called |= {
            f"macro.retention.{key[len('macro ') :]}"
            for key in _recorded_settings(paths, model)
            if key.startswith("macro ")
        }
    code = [nodes[u]["raw_code"] for u in upstream if u in nodes] + [
        macros[m]["macro_sql"] for m in called if m.startswith("macro.retention.")
    ]
    pattern = re.compile(r"\b(?:int_)?var\(\s*['\"](\w+)['\"]")
    read = {name for text in code for name in pattern.findall(text)}
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        recorded = {
            key[len("var ") :]
            for (settings,) in con.execute(
                "select settings from raw._dbt_incremental_settings "
                "where unique_id = 'model.retention.int_customer_months'"
            ).fetchall()
            for key in json.loads(settings)
            if key.startswith("var ")
        }
    # as_of_date moves every day and the models follow it (macros/incremental.sql); the lookback
    # only widens what is re-processed; int_reporting_dates carries the win-back window, which
    # no incremental model reads from it, and checks the CLV vars (read by the CLV models only)
    exempt = {
        "as_of_date",
        "incremental_lookback_hours",
        "winback_min_inactive_days",
        "clv_horizon_days",
        "clv_min_repeat_customers",
    }
    reporting_dates = nodes["model.retention.int_reporting_dates"]["raw_code"]
    assert "do int_var('clv_horizon_days', 1)" in reporting_dates  # a check, not a column
    assert not any("winback" in nodes[u]["raw_code"] for u in incremental)
    assert recorded == read - exempt
