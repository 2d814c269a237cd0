"""The same models on PostgreSQL: raw shipping, the full dbt build with every data and unit test,
predictive CLV from the pipeline, and marts equal to DuckDB's on the same input (Spark:
test_spark.py, a module of its own so that pytest-xdist can run the two on different workers)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from retention import dbt, pipeline, targets
from retention.config import ENTITIES, Paths
from tests.conftest import (
    PostgresServer,
    PostgresWarehouse,
    Warehouse,
    quiet,
    write_csv,
)
from tests.engines import (
    CORE_MARTS,
    MART_KEYS,
    expected_parsed_cases,
    land_an_unfittable_history,
    parsed_cases,
    raw_rows,
    table_differences,
)
from tests.test_build import (
    CUSTOMER_HEADER,
    CUSTOMERS,
    EXPECTED_REJECTS,
    ORDER_HEADER,
    ORDERS,
    SPEND_REJECTS,
    land_nps_and_spend,
)
from tests.test_incremental import INCREMENTAL_MODELS

pytestmark = pytest.mark.slow

#: Text a CSV round trip could mangle: quotes, separators, line breaks, non-ASCII, empty vs
#: missing, and a NUL character (PostgreSQL text cannot hold it: it arrives as U+FFFD).
TRICKY = pa.table(
    {
        "customer_id": ["T1", "T2", "T3", "T4"],
        "email": ['a "quoted", name@example.com', "line\nbreak@example.com", "", None],
        "signup_at": ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"],
        "country": ["DE", "FR", "NL", "SE"],
        "acquisition_channel": ["café ☕", "tab\there", "back\\slash", "nul\x00byte"],
    }
)


def test_postgres_build_passes_every_model_and_test(postgres_build: PostgresWarehouse) -> None:
    events = postgres_build.query("select event from raw._dbt_builds order by happened_at")
    # two dbt steps around the CLV fit, both ending in success
    assert [e for (e,) in events] == ["started", "success", "started", "success"]
    for table in ("customers", "customer_lifetime_value", "clv_model_parameters", "clv_backtest"):
        assert postgres_build.scalar(f"select count(*) from marts.{table}") > 0
    # the settings each incremental model was built with, for the next build to compare
    recorded = postgres_build.query("select unique_id, settings from raw._dbt_incremental_settings")
    assert sorted(unique_id.rsplit(".", 1)[1] for unique_id, _ in recorded) == sorted(
        INCREMENTAL_MODELS
    )
    assert all('"var reporting_currency": "USD"' in settings for _, settings in recorded)


def test_postgres_refuses_an_increment_with_other_settings(
    postgres_build: PostgresWarehouse,
) -> None:
    """The settings check's queries on PostgreSQL: a build with another max_order_amount stops
    before it writes anything, the build log included."""
    builds = postgres_build.scalar("select count(*) from raw._dbt_builds")
    with (
        postgres_build.server.environment(postgres_build.dbname),
        pytest.raises(dbt.DbtFailure, match="var max_order_amount changed from 1000000 to 300"),
    ):
        dbt.run_dbt(
            ["build", "--exclude-resource-type", "unit_test"],
            postgres_build.paths,
            target="postgres",
            dbt_vars={"max_order_amount": 300},
        )
    assert postgres_build.scalar("select count(*) from raw._dbt_builds") == builds


@pytest.mark.parametrize("mart", CORE_MARTS)
def test_core_marts_equal_on_duckdb_and_postgres(
    mart: str, generated_build: Warehouse, postgres_build: PostgresWarehouse
) -> None:
    assert not table_differences(
        mart, generated_build.table(f"marts.{mart}"), postgres_build.table(f"marts.{mart}")
    )


@pytest.mark.parametrize("mart", sorted(set(MART_KEYS) - set(CORE_MARTS)))
def test_other_marts_equal_on_duckdb_and_postgres(
    mart: str, generated_build: Warehouse, postgres_build: PostgresWarehouse
) -> None:
    assert not table_differences(
        mart, generated_build.table(f"marts.{mart}"), postgres_build.table(f"marts.{mart}")
    )


def test_customers_get_predictive_clv_from_the_pipeline(postgres_build: PostgresWarehouse) -> None:
    statuses = postgres_build.query("select distinct status from marts.clv_model_parameters")
    assert statuses == [("converged",)]
    buyers, with_clv = postgres_build.query(
        "select count(*) filter (where purchase_count > 0), "
        "count(*) filter (where p_alive is not null and predicted_clv is not null) "
        "from marts.customers"
    )[0]
    assert buyers == with_clv > 0


def test_postgres_parses_the_edge_cases_as_duckdb_does(
    postgres_build: PostgresWarehouse,
) -> None:
    with postgres_build.server.environment(postgres_build.dbname):
        parsed = parsed_cases(postgres_build.paths, "postgres")
    assert parsed == expected_parsed_cases()


def test_raw_rows_are_shipped_whole_and_once(postgres_build: PostgresWarehouse) -> None:
    local = Warehouse(postgres_build.paths)
    for entity in ENTITIES:
        assert raw_rows(postgres_build, entity) == raw_rows(local, entity), entity
    ledger = "select entity, source_file, sha256, row_count from raw._landing_files order by 2"
    assert postgres_build.query(ledger) == local.query(ledger)
    before = postgres_build.scalar("select count(*) from raw.orders")
    with postgres_build.server.environment(postgres_build.dbname):
        summary = pipeline.load_step(postgres_build.paths, quiet, target="postgres")
    assert summary.loaded == []
    assert postgres_build.scalar("select count(*) from raw.orders") == before


def test_a_file_changed_back_is_shipped_again(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    """Its third landing has the first one's SHA-256: PostgreSQL gets it all the same."""
    from tests.test_load import _land_changed_back

    paths = Paths(tmp_path / "data")
    paths.ensure()
    dbname = postgres_server.create_database("changed_back")
    with postgres_server.environment(dbname):
        _land_changed_back(paths, lambda: pipeline.load_step(paths, quiet, target="postgres"))
        assert pipeline.load_step(paths, quiet, target="postgres").loaded == []
    warehouse = PostgresWarehouse(paths, postgres_server, dbname)
    amounts = "select amount from raw.orders order by _loaded_at"
    assert warehouse.query(amounts) == [("12.11",), ("99.99",), ("12.11",)]
    assert warehouse.scalar("select count(*) from raw._landing_files") == 3
    # the DuckDB warehouse rebuilt from the landing files (the damaged-warehouse advice):
    # PostgreSQL gets nothing twice
    paths.warehouse.unlink()
    with postgres_server.environment(dbname):
        assert pipeline.load_step(paths, quiet, target="postgres").rows() == 1
    assert warehouse.scalar("select count(*) from raw.orders") == 3


@pytest.fixture(scope="module")
def postgres_handmade(
    postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> PostgresWarehouse:
    """test_build's hand-written landing set (every reject reason, time zones, FX) on
    PostgreSQL, plus a Parquet file of text that a CSV round trip could mangle."""
    paths = Paths(tmp_path_factory.mktemp("postgres_handmade"))
    paths.ensure()
    write_csv(paths.landing_dir("customers") / "customers.csv", CUSTOMER_HEADER, CUSTOMERS)
    write_csv(paths.landing_dir("orders") / "orders.csv", ORDER_HEADER, ORDERS)
    land_nps_and_spend(paths)
    pq.write_table(TRICKY, paths.landing_dir("customers") / "tricky.parquet")
    dbname = postgres_server.create_database("handmade")
    # libpq settings of a user's environment that the pipeline must not follow: text sent as
    # LATIN1 would arrive as mojibake, and the build log would be in Kiritimati's time
    hostile = {"PGCLIENTENCODING": "LATIN1", "PGTZ": "Pacific/Kiritimati"}
    with postgres_server.environment(dbname), pytest.MonkeyPatch.context() as env:
        for name, value in hostile.items():
            env.setenv(name, value)
        pipeline.load_step(paths, quiet, target="postgres")
        pipeline.build_step(paths, quiet, target="postgres")
    return PostgresWarehouse(paths, postgres_server, dbname)


def test_postgres_parses_and_rejects_as_the_contract_says(
    postgres_handmade: PostgresWarehouse,
) -> None:
    rejected = postgres_handmade.query("select order_id, reject_reason from quarantine.orders")
    assert dict(rejected) == EXPECTED_REJECTS
    customers = dict(
        postgres_handmade.query("select customer_id, reject_reason from quarantine.customers")
    )
    assert customers == {
        "  ": "missing_id",
        "C9": "unparseable_timestamp",
        "C10": "timestamp_before_min_date",
    }
    nps = postgres_handmade.query(
        "select response_id, reject_reason from quarantine.nps_responses order by 1"
    )
    assert nps == [
        ("N2", "timestamp_before_min_date"),
        ("N4", "unparseable_score"),
        ("N5", "unparseable_score"),
        ("N7", "score_out_of_range"),
    ]
    scores = postgres_handmade.query(
        "select response_id, score from staging.stg_shop__nps_responses order by 1"
    )
    assert scores == [("N1", 9), ("N3", 10), ("N6", 0)]
    spend = postgres_handmade.query(
        "select month, reject_reason from quarantine.marketing_spend "
        "order by _source_file, _source_row"
    )
    assert spend == SPEND_REJECTS
    signups = dict(
        postgres_handmade.query(
            "select customer_id, signup_at::text from staging.stg_shop__customers"
        )
    )
    assert signups["C1"] == "2024-01-01 08:00:00"  # +02:00 honoured
    assert signups["C2"] == "2024-02-01 12:00:00"  # naive is UTC
    assert signups["C4"] == "2024-03-02 00:00:00"  # the version landed last
    assert postgres_handmade.query(
        "select ordered_at::text, ordered_date::text, order_month::text "
        "from marts.orders where order_id = 'O1'"
    ) == [("2024-01-06 01:30:00", "2024-01-06", "2024-01-01")]
    amounts = dict(postgres_handmade.query("select order_id, amount from marts.orders"))
    assert amounts["O1"] == Decimal("108.00")  # 100 EUR x 1.08
    assert amounts["O4"] == Decimal("6.60")  # 1000 JPY x 0.0066


def test_copy_keeps_every_character_but_nul(postgres_handmade: PostgresWarehouse) -> None:
    local = Warehouse(postgres_handmade.paths)
    shipped, landed = raw_rows(postgres_handmade, "customers"), raw_rows(local, "customers")
    assert len(shipped) == len(landed) == len(CUSTOMERS) + TRICKY.num_rows
    for ours, theirs in zip(shipped, landed, strict=True):
        assert ours == tuple(
            v.replace("\x00", "\ufffd") if isinstance(v, str) else v for v in theirs
        )
    emails = dict(postgres_handmade.query("select customer_id, email from raw.customers"))
    assert emails["T3"] == "" and emails["T4"] is None  # empty text stays apart from missing


NBSP = "\u00a0"
#: Text that engines compare or trim differently unless told: no-break spaces around values (a
#: spreadsheet export), and ties broken by text, where a language-aware collation (en-US) puts
#: "Orders_b.csv" before "orders_a.csv", "a9" before "B9" and "x-2" before "X1".
COLLATION_CUSTOMERS = [
    ["C1", "c1@example.com", "2023-01-01", "US", "seo", ""],
    [f"C2{NBSP}", f"c2@example.com{NBSP}", "2023-01-01", "US", "seo", ""],
    ["a9", "a9@example.com", "2023-01-01", "US", "seo", ""],
    ["B9", "b9@example.com", "2023-01-01", "US", "seo", ""],
]
COLLATION_ORDERS = {
    "orders_a.csv": [
        ["O1", "C2", "2023-02-01T10:00:00Z", "completed", f"12.50{NBSP}", "USD", ""],
        ["O2", "C1", "2023-02-01T10:00:00Z", f"completed{NBSP}", "5.00", "USD", ""],
        ["X1", "C1", "2023-03-01T10:00:00Z", "completed", "7.00", "USD", ""],
        ["x-2", "C1", "2023-03-01T10:00:00Z", "completed", "8.00", "USD", ""],
        ["A9", "a9", "2023-02-01T10:00:00Z", "completed", "9.00", "USD", ""],
        ["B9", "B9", "2023-02-01T10:00:00Z", "completed", "9.00", "USD", ""],
        ["V1", "C1", "2023-04-01T10:00:00Z", "completed", "40.00", "USD", "2023-04-02T00:00:00Z"],
        ["N1", "C1", "never", "bogus", "1.00", "USD", "not a time"],
        ["N1", "C1", "2023-04-01T10:00:00Z", "bogus", "2.00", "USD", "2023-04-03T00:00:00Z"],
        ["L1", "C1", "2024-06-30T10:00:00Z", "completed", "1.00", "USD", ""],
    ],
    "Orders_b.csv": [
        ["V1", "C1", "2023-04-01T10:00:00Z", "refunded", "40.00", "USD", "2023-04-02T00:00:00Z"],
    ],
}
COLLATION_SPEND = [
    [f"2023-02{NBSP}", "seo", "acquisition", "100.00", "USD"],
    ["2023-03", "seo", "acquisition", "50.00", "USD"],
]
COLLATION_QUERIES = {
    "spend": "select spend_month, amount from staging.stg_shop__marketing_spend",
    "customers": "select customer_id, email from staging.stg_shop__customers order by 1",
    "orders": "select order_id, customer_id, status, amount, purchase_number from marts.orders "
    "order by order_id",
    "versions": "select order_key, amount, version_rank from staging.base_shop__orders "
    "where order_key = 'N1' order by version_rank",
    "winback": "select customer_id, winback_rank from marts.winback_candidates "
    "where customer_id in ('a9', 'B9') order by winback_rank",
}


@pytest.fixture(scope="module")
def collation_case(
    postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Warehouse, PostgresWarehouse]:
    """COLLATION_* built on DuckDB and on a PostgreSQL database with an ICU en-US collation."""
    paths = Paths(tmp_path_factory.mktemp("collation"))
    paths.ensure()
    write_csv(paths.landing_dir("customers") / "c.csv", CUSTOMER_HEADER, COLLATION_CUSTOMERS)
    for name, rows in COLLATION_ORDERS.items():
        write_csv(paths.landing_dir("orders") / name, ORDER_HEADER, rows)
    write_csv(
        paths.landing_dir("marketing_spend") / "spend.csv",
        ["month", "channel", "spend_type", "amount", "currency"],
        COLLATION_SPEND,
    )
    try:
        dbname = postgres_server.create_database(
            "collation", "template template0 locale_provider icu icu_locale 'en-US'"
        )
    except Exception as exc:  # PostgreSQL before 15, or built without ICU
        pytest.skip(f"no ICU database on this server: {exc}")
    pipeline.load_step(paths, quiet)
    pipeline.build_step(paths, quiet, unit_tests=False)
    with postgres_server.environment(dbname):
        pipeline.load_step(paths, quiet, target="postgres")
        pipeline.build_step(paths, quiet, target="postgres")
    return Warehouse(paths), PostgresWarehouse(paths, postgres_server, dbname)


def test_text_is_trimmed_and_ordered_alike_on_duckdb_and_postgres(
    collation_case: tuple[Warehouse, PostgresWarehouse],
) -> None:
    duck, postgres = collation_case
    provider = "select datlocprovider from pg_database where datname = current_database()"
    assert postgres.scalar(provider) == "i"  # ICU
    for name, sql in COLLATION_QUERIES.items():
        # (sorted here: the queries' own order by would follow the collation too)
        assert sorted(duck.query(sql)) == sorted(postgres.query(sql)), name
    orders = {row[0]: row[1:] for row in duck.query(COLLATION_QUERIES["orders"])}
    # no-break spaces trimmed: C2's order joins C2, the amount and the status parse
    assert orders["O1"] == ("C2", "completed", Decimal("12.50"), 1)
    assert orders["O2"][1] == "completed"
    # a tie of versions goes to the file name last in byte order ("orders_a" > "Orders_b")
    assert orders["V1"][1] == "completed"
    # purchases at the same time are numbered by order id in byte order ("X1" < "x-2")
    assert orders["X1"][3] + 1 == orders["x-2"][3]
    # a version without a time ranks after the one with it
    assert [row[1:] for row in duck.query(COLLATION_QUERIES["versions"])] == [
        ("2.00", 1),
        ("1.00", 2),
    ]
    # equal win-back candidates are ranked by customer id in byte order ("B9" < "a9")
    assert [row[0] for row in duck.query(COLLATION_QUERIES["winback"])] == ["B9", "a9"]
    assert dict(duck.query(COLLATION_QUERIES["customers"]))["C2"] == "c2@example.com"
    # a month with a no-break space is still a month
    assert sorted(month.isoformat() for month, _ in duck.query(COLLATION_QUERIES["spend"])) == [
        "2023-02-01",
        "2023-03-01",
    ]


def test_a_clv_fit_that_fails_is_named_not_traced(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    paths = Paths(tmp_path)
    land_an_unfittable_history(paths)
    from retention.errors import UserError

    with postgres_server.environment(postgres_server.create_database("clv_fit")):
        pipeline.load_step(paths, quiet, target="postgres")
        with pytest.raises(UserError) as caught:
            pipeline.build_step(paths, quiet, target="postgres", as_of="2024-06-30")
    message = str(caught.value)
    assert message.startswith("predictive CLV on postgres: ")
    assert "fit did not converge" in message or "Gamma-Gamma q = " in message
    assert "what to do: check the repeat purchases" in message


def test_load_without_a_server_names_the_server(tmp_path: Path, monkeypatch) -> None:
    paths = Paths(tmp_path)
    paths.ensure()
    write_csv(paths.landing_dir("customers") / "c.csv", CUSTOMER_HEADER, CUSTOMERS[:1])
    monkeypatch.setenv("PGHOST", "127.0.0.1")
    monkeypatch.setenv("PGPORT", "1")  # nothing listens there
    from retention.errors import UserError

    with pytest.raises(UserError, match=r"cannot connect to PostgreSQL at 127\.0\.0\.1:1"):
        pipeline.load_step(paths, quiet, target="postgres")


def test_the_build_log_is_in_utc(postgres_handmade: PostgresWarehouse) -> None:
    """The latest build is found by its time: in the session's zone (PGTZ, the server's), a
    build after a change of zone or the autumn's hour sorted before older ones."""
    from datetime import UTC, datetime

    latest = postgres_handmade.scalar("select max(happened_at) from raw._dbt_builds")
    assert abs(datetime.now(UTC).replace(tzinfo=None) - latest).total_seconds() < 3600


def test_ids_with_line_breaks_are_read_back_whole(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    """The CLV fit reads its summaries back as CSV: a line break inside a quoted id at a block
    boundary (1 MB) split the row, and a customer id came back as 'x"'."""
    dbname = postgres_server.create_database("newlines")
    con = postgres_server.connect(dbname)
    with con, con.cursor() as cur:
        cur.execute("create schema staging")
        cur.execute(
            "create table staging.ids as select case when n % 2 = 0 then 'C' || n || E'\\nx' "
            "else 'C' || n end as customer_id, n as frequency from generate_series(1, 300000) n"
        )
    con.close()
    with postgres_server.environment(dbname):
        frame = targets._postgres_read(Paths(tmp_path), "staging.ids")
    assert len(frame) == 300_000
    assert set(frame["customer_id"]) == {
        f"C{n}\nx" if n % 2 == 0 else f"C{n}" for n in range(1, 300_001)
    }


def test_sessions_are_utc_and_keep_the_users_pgoptions(
    postgres_server: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pipeline's sessions set the zone as libpq options, which replace PGOPTIONS: a
    statement timeout or a pooler's endpoint given there was lost."""
    monkeypatch.setenv("PGOPTIONS", "-c statement_timeout=4321")
    monkeypatch.setenv("PGTZ", "Pacific/Kiritimati")
    with postgres_server.environment(postgres_server.create_database("options")):
        pg = targets.postgres_connect(Paths(tmp_path))
    try:
        with pg.cursor() as cur:
            cur.execute("select current_setting('statement_timeout'), current_setting('TimeZone')")
            assert cur.fetchone() == ("4321ms", "UTC")
    finally:
        pg.close()


def test_the_database_is_refused_or_shared_with_a_reason(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    """A database that cannot hold the landing files' text, a role without CREATE on the
    database, and a second writer from another data directory: said, not traced or doubled."""
    from retention.errors import UserError

    paths = Paths(tmp_path)
    paths.ensure()
    write_csv(paths.landing_dir("customers") / "c.csv", CUSTOMER_HEADER, CUSTOMERS[:2])

    latin1 = postgres_server.create_database(
        "latin1", "encoding 'LATIN1' lc_collate 'C' lc_ctype 'C' template template0"
    )
    with postgres_server.environment(latin1), pytest.raises(UserError, match="is in LATIN1"):
        pipeline.load_step(paths, quiet, target="postgres")

    # a role that may not create schemas, with the schema made for it: loads; without: advice
    dbname = postgres_server.create_database("privileges")
    con = postgres_server.connect(dbname)
    con.autocommit = True
    with con.cursor() as cur:
        cur.execute(f"revoke create on database {dbname} from current_user")
    with postgres_server.environment(dbname):
        with pytest.raises(UserError) as caught:
            pipeline.load_step(paths, quiet, target="postgres")
        message = str(caught.value)
        assert "PostgreSQL refused shipping the landing files' rows" in message
        assert f"grant create on database {dbname}" in message
        with con.cursor() as cur:
            cur.execute(f"grant create on database {dbname} to current_user")
            cur.execute("create schema raw")
            cur.execute(f"revoke create on database {dbname} from current_user")
        pipeline.load_step(paths, quiet, target="postgres")
        # another data directory (or machine) writing into the same database meanwhile
        other = Paths(tmp_path / "other")
        other.ensure()
        write_csv(other.landing_dir("customers") / "c.csv", CUSTOMER_HEADER, CUSTOMERS[:2])
        with con.cursor() as cur:
            cur.execute("select pg_advisory_lock(%s)", [targets._WRITE_LOCK])
            with pytest.raises(UserError, match="another retention command is loading"):
                pipeline.load_step(other, quiet, target="postgres")
            cur.execute("select pg_advisory_unlock(%s)", [targets._WRITE_LOCK])
        pipeline.load_step(other, quiet, target="postgres")
    con.close()
    pg = PostgresWarehouse(paths, postgres_server, dbname)
    # the same file from two data directories: the second found it shipped
    assert pg.scalar("select count(*) from raw._landing_files") == 1
    assert pg.scalar("select count(*) from raw.customers") == 2


def test_a_selection_with_as_of_refits_and_bi_views_stay(
    postgres_build: PostgresWarehouse, postgres_server: PostgresServer
) -> None:
    """`--select int_reporting_dates+ --as-of D` (what the CLI asks for with --as-of) moved the
    marts to D but kept the CLV fit of the day before on PostgreSQL; and a BI tool's view on a
    CLV mart made every build fail (the mart was dropped and created again)."""
    copy = postgres_server.create_database("as_of", f"template {postgres_build.dbname}")
    warehouse = PostgresWarehouse(postgres_build.paths, postgres_server, copy)
    latest = warehouse.scalar("select max(as_of_date) from marts.customers")
    as_of = latest + timedelta(days=15)  # (incremental models refuse an earlier date)
    con = postgres_server.connect(copy)
    with con, con.cursor() as cur:
        cur.execute(
            "create view public.bi_clv as select customer_id, predicted_clv "
            "from marts.customer_lifetime_value"
        )
    con.close()
    with postgres_server.environment(copy):
        pipeline.build_step(
            postgres_build.paths,
            quiet,
            target="postgres",
            as_of=as_of.isoformat(),
            select="int_reporting_dates+",
        )
    assert warehouse.scalar("select max(as_of_date) from marts.customers") == as_of
    fitted = warehouse.query("select distinct as_of_date from marts.clv_model_parameters")
    assert fitted == [(as_of,)]
    assert (
        warehouse.scalar("select count(*) from public.bi_clv")
        == warehouse.scalar("select count(*) from marts.customer_lifetime_value")
        > 0
    )
