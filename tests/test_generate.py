"""The synthetic data generator: deterministic, realistic, with every kind of dirty row."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import duckdb
import pytest

from retention.errors import UserError
from retention.generate import DIRTY_KINDS, generate
from tests.conftest import quiet


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


#: customers in this module's landing files
CUSTOMERS = 20_000


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("landing")
    generate(
        out,
        customers=CUSTOMERS,
        seed=11,
        start=date(2022, 1, 1),
        end=date(2025, 12, 31),
        progress=quiet,
    )
    return out


@pytest.fixture(scope="module")
def con(landing: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    for entity in ("customers", "orders"):
        con.execute(
            f"create view {entity} as select * from read_csv('{landing}/{entity}/*.csv', "
            "all_varchar = true, header = true)"
        )
    con.execute("""
        create view current_orders as
        select * from orders
        qualify row_number() over (partition by order_id order by updated_at::timestamptz desc) = 1
    """)
    con.execute("""
        create view buyers as
        select c.customer_id, lower(c.acquisition_channel) as channel, c.country,
               count(o.order_id) as purchases
        from (select distinct customer_id, acquisition_channel, country from customers) c
        join current_orders o on o.customer_id = c.customer_id and o.status = 'completed'
        group by all
    """)
    return con


def test_same_seed_writes_identical_files(tmp_path: Path) -> None:
    args = dict(
        customers=2_000,
        start=date(2024, 1, 1),
        end=date(2024, 12, 31),
        dirty_rate=0.02,
        progress=quiet,
    )
    generate(tmp_path / "a", seed=5, **args)
    generate(tmp_path / "b", seed=5, **args)
    generate(tmp_path / "c", seed=6, **args)
    first, second, other = (_digest(tmp_path / x) for x in "abc")
    assert first == second
    assert len(first) > 4 * 10
    assert first != other


def test_customers_arrive_with_growth_and_a_holiday_peak(con: duckdb.DuckDBPyConnection) -> None:
    by_year = dict(
        con.execute("""
        select year(signup_at::timestamptz), count(*) from customers
        where updated_at = signup_at group by 1
    """).fetchall()
    )
    assert by_year[2025] > 1.5 * by_year[2022]  # growth
    per_day = dict(
        con.execute("""
        select month(signup_at::timestamptz),
               count(*) / count(distinct signup_at::timestamptz::date)
        from customers where year(signup_at::timestamptz) = 2024 group by 1
    """).fetchall()
    )
    assert per_day[11] > 1.2 * per_day[2]  # November peak over February


def test_purchasing_is_heterogeneous(con: duckdb.DuckDBPyConnection) -> None:
    n_buyers, repeat_share, p90 = con.execute("""
        select count(*), avg((purchases >= 2)::int), quantile_cont(purchases, 0.9) from buyers
    """).fetchone()
    n_customers = con.execute("select count(distinct customer_id) from customers").fetchone()[0]
    assert 0.70 < n_buyers / n_customers < 0.90  # some customers never buy
    assert 0.45 < repeat_share < 0.85
    assert p90 >= 8  # a long tail of frequent buyers


def test_the_default_history_has_the_scale_the_benchmark_names(
    con: duckdb.DuckDBPyConnection,
) -> None:
    """DESIGN.md benchmarks 1 M customers with ~10 M orders: over the default four years the
    generator writes ~10 order rows (refunds included) per customer. A change to the population
    that shrank it would quietly benchmark a smaller warehouse."""
    order_rows, customers = con.execute("""
        select (select count(*) from orders), (select count(distinct customer_id) from customers)
    """).fetchone()
    assert customers == CUSTOMERS
    assert 9.0 < order_rows / customers < 11.0


def test_channels_and_regions_differ_in_retention(con: duckdb.DuckDBPyConnection) -> None:
    groups = {
        "referral": ("referral", "refer-a-friend"),
        "paid_social": ("facebook", "instagram", "paid social", "tiktok ads"),
    }
    repeat = {}
    for group, spellings in groups.items():
        repeat[group] = con.execute(
            f"select avg((purchases >= 2)::int) from buyers where channel in {spellings}"
        ).fetchone()[0]
    assert repeat["referral"] > repeat["paid_social"] + 0.08
    europe, latam = (
        con.execute(f"select avg(purchases) from buyers where country in {countries}").fetchone()[0]
        for countries in (("DE", "NL", "SE"), ("BR", "MX"))
    )
    assert europe > 1.3 * latam


def test_orders_have_currencies_statuses_and_late_refunds(con: duckdb.DuckDBPyConnection) -> None:
    currencies = con.execute("select count(distinct currency) from orders").fetchone()[0]
    assert currencies >= 8
    shares = dict(
        con.execute("""
        select status, count(*) / sum(count(*)) over () from current_orders group by 1
    """).fetchall()
    )
    assert 0.04 < shares["cancelled"] < 0.06
    assert 0.02 < shares["refunded"] < 0.04
    # a refund is a newer version of a completed order, landed in a later or the same file
    bad = con.execute("""
        select count(*) from orders r join orders c using (order_id)
        where r.status = 'refunded' and c.status = 'completed'
          and not (r.updated_at::timestamptz > c.updated_at::timestamptz)
    """).fetchone()[0]
    versions = con.execute("select count(*) from orders where status = 'refunded'").fetchone()[0]
    assert versions > 0 and bad == 0


def test_nothing_is_dated_after_the_last_day(con: duckdb.DuckDBPyConnection) -> None:
    """The files are a snapshot at the end of --end: an order cancelled a few hours after it is
    pending then, not cancelled in the future (which staging would hold as a future version)."""
    end = "timestamptz '2026-01-01 00:00:00+00'"
    for entity, column in (
        ("orders", "updated_at"),
        ("orders", "ordered_at"),
        ("customers", "updated_at"),
    ):
        (late,) = con.execute(
            f"select count(*) from {entity} where try_cast({column} as timestamptz) >= {end}"
        ).fetchone()
        assert late == 0, (entity, column)
    (pending,) = con.execute(
        "select count(*) from current_orders where status = 'pending' and "
        f"try_cast(ordered_at as timestamptz) < {end} - interval 2 day"
    ).fetchone()
    assert pending == 0


def test_order_values_vary_around_a_customer_mean(con: duckdb.DuckDBPyConnection) -> None:
    # Gamma-Gamma: spread between customers' mean spend, and within a customer's orders
    between, within = con.execute("""
        with usd as (
            select customer_id, amount::double as amount from current_orders
            where currency = 'USD' and status = 'completed'
        ), per_customer as (
            select customer_id, avg(amount) as mean_amount, stddev_samp(amount) as sd
            from usd group by 1 having count(*) >= 5
        )
        select stddev_samp(mean_amount) / avg(mean_amount), avg(sd / mean_amount) from per_customer
    """).fetchone()
    assert between > 0.25
    assert 0.2 < within < 0.8


def test_dirty_rows_cover_every_kind(tmp_path: Path) -> None:
    summary = generate(
        tmp_path,
        customers=1_000,
        seed=3,
        start=date(2024, 1, 1),
        end=date(2024, 12, 31),
        dirty_rate=0.02,
        progress=quiet,
    )
    for entity, kinds in DIRTY_KINDS.items():
        assert summary.dirty_rows[entity] >= len(kinds), entity
        assert set(summary.dirty_kinds[entity]) == set(kinds), entity
        assert sum(summary.dirty_kinds[entity].values()) == summary.dirty_rows[entity]
    con = duckdb.connect()
    orders = con.execute(
        f"select * from read_csv('{tmp_path}/orders/*.csv', all_varchar=true, header=true)"
    ).fetchdf()
    assert (orders["currency"] == "XYZ").any()
    assert orders["amount"].str.startswith("-").any()
    assert orders.duplicated().any()  # exact duplicates


def test_progress_says_the_simulation_ended_before_any_file_is_written(tmp_path: Path) -> None:
    lines: list[str] = []
    summary = generate(
        tmp_path, customers=500, seed=5, start=date(2024, 1, 1), end=date(2024, 6, 30),
        progress=lines.append,
    )  # fmt: skip
    assert lines[0].startswith("simulating 500 customers")
    assert lines[1].startswith(
        f"  simulated {summary.rows['orders']:,} order rows and "
        f"{summary.rows['nps_responses']:,} NPS responses in "
    )
    assert lines[2].startswith("  customers: ")  # the first entity written comes after it


def test_a_file_is_visible_only_once_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files are written under a dot-name (which the loader skips) and renamed when complete: a
    write that fails (a full disk, a stopped run) leaves no half-written landing file."""
    from retention import generate as module

    real_write = module.pacsv.write_csv
    written: list[Path] = []

    def fail_on_the_second(table, path, **kwargs):
        written.append(Path(path))
        if len(written) == 2:
            Path(path).write_text("customer_id,em")  # half a file
            raise OSError("No space left on device")
        return real_write(table, path, **kwargs)

    monkeypatch.setattr(module.pacsv, "write_csv", fail_on_the_second)
    with pytest.raises(OSError, match="No space left"):
        generate(
            tmp_path, customers=200, seed=3, start=date(2024, 1, 1), end=date(2024, 6, 30),
            progress=quiet,
        )  # fmt: skip
    assert all(path.name.startswith(".") for path in written)
    visible = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    assert visible == [written[0].name.removeprefix(".").removesuffix(".partial")]


def test_parquet_holds_the_same_rows_as_csv(tmp_path: Path) -> None:
    args = dict(
        customers=500, seed=9, start=date(2024, 1, 1), end=date(2024, 6, 30), progress=quiet
    )
    generate(tmp_path / "csv", fmt="csv", **args)
    generate(tmp_path / "pq", fmt="parquet", **args)
    con = duckdb.connect()
    from_csv = con.execute(
        f"select * from read_csv('{tmp_path}/csv/orders/*.csv', all_varchar=true) order by all"
    ).fetchall()
    from_parquet = con.execute(
        f"select * from read_parquet('{tmp_path}/pq/orders/*.parquet') order by all"
    ).fetchall()
    assert from_csv == from_parquet


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--end"):
        generate(tmp_path, customers=10, start=date(2024, 1, 1), end=date(2023, 1, 1))
    with pytest.raises(UserError, match="--format"):
        generate(tmp_path, customers=10, fmt="xlsx")
    with pytest.raises(UserError, match="--seed must be 0 or more, not -1"):
        generate(tmp_path, customers=10, seed=-1)


def test_a_window_too_short_for_some_rows_writes_what_it_has(tmp_path: Path) -> None:
    """One customer over two days: no order and no NPS answer. Those entities get no file (and
    the line says so) instead of an IndexError; the others are written."""
    lines: list[str] = []
    summary = generate(
        tmp_path,
        customers=1,
        start=date(2025, 12, 30),
        end=date(2025, 12, 31),
        progress=lines.append,
    )
    assert summary.rows["orders"] == summary.rows["nps_responses"] == 0
    assert summary.rows["customers"] == 1
    assert "  orders: 0 rows in 0 files" in lines
    assert sorted(p.parent.name for p in summary.files) == ["customers", "marketing_spend"]
    assert not list((tmp_path / "orders").iterdir())


def test_customers_sign_up_on_the_last_day_too(tmp_path: Path) -> None:
    """``end`` is inclusive: with two days, both have signups (the last day had none, so the
    day a benchmark holds back never brought a new customer)."""
    generate(
        tmp_path, customers=2_000, seed=5, start=date(2024, 1, 1), end=date(2024, 1, 2),
        progress=quiet,
    )  # fmt: skip
    days = dict(
        duckdb.sql(
            f"select signup_at::timestamptz::date as day, count(*) from read_csv("
            f"'{tmp_path}/customers/*.csv', all_varchar = true) group by 1"
        ).fetchall()
    )
    assert set(days) == {date(2024, 1, 1), date(2024, 1, 2)}
    assert 700 < days[date(2024, 1, 2)] < 1300


def test_an_interrupted_replace_leaves_the_files_that_were_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each entity's files are written aside and swapped in at the end: a run stopped while
    writing (a signal, a full disk) does not leave new customers beside the old orders."""
    from retention import generate as module

    args = {"customers": 300, "start": date(2024, 1, 1), "end": date(2024, 6, 30)}
    generate(tmp_path, seed=1, progress=quiet, **args)
    before = _digest(tmp_path)
    write = module._write

    def stopped(entity, *rest, **kwargs):
        if entity == "marketing_spend":  # customers and orders already written
            raise KeyboardInterrupt
        return write(entity, *rest, **kwargs)

    monkeypatch.setattr(module, "_write", stopped)
    with pytest.raises(KeyboardInterrupt):
        generate(tmp_path, seed=2, progress=quiet, **args)
    landed = {k: v for k, v in _digest(tmp_path).items() if not k.startswith(".")}
    assert landed == before
    monkeypatch.setattr(module, "_write", write)
    summary = generate(tmp_path, seed=2, progress=quiet, **args)
    after = _digest(tmp_path)
    assert after.keys() == {f.relative_to(tmp_path).as_posix() for f in summary.files}
    assert after != before and not any(k.startswith(".") for k in after)
