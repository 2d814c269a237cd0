"""The loader: landing files to raw.* as text, idempotent, never half-loading a broken file."""

from __future__ import annotations

import json
import os
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import retention.load as loader
from retention.config import Paths
from retention.errors import UserError
from retention.load import COLUMNS, LoadErrors, load
from tests.conftest import quiet, write_csv

ORDER_HEADER = list(COLUMNS["orders"])


def _orders(n: int, start: int = 1) -> list[list[str]]:
    return [
        [f"O{i}", "C1", "2024-03-01T10:00:00Z", "completed", "10.50", "EUR", ""]
        for i in range(start, start + n)
    ]


def _count(paths: Paths, table: str) -> int:
    return _rows(paths, f"select count(*) from {table}")[0][0]


def _rows(paths: Paths, sql: str) -> list[tuple]:
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        return con.execute(sql).fetchall()


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    p = Paths(tmp_path)
    p.ensure()
    return p


def test_rows_land_as_text_with_lineage(paths: Paths) -> None:
    write_csv(paths.landing_dir("orders") / "a.csv", ORDER_HEADER, _orders(3))
    summary = load(paths, progress=quiet)
    assert summary.rows("orders") == 3
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        rows = con.execute(
            "select order_id, amount, _source_file, _source_row, updated_at from raw.orders "
            "order by _source_row"
        ).fetchall()
        types = {
            name: dtype
            for name, dtype in con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = 'raw' and table_name = 'orders'"
            ).fetchall()
        }
    assert rows == [
        ("O1", "10.50", "orders/a.csv", 1, ""),
        ("O2", "10.50", "orders/a.csv", 2, ""),
        ("O3", "10.50", "orders/a.csv", 3, ""),
    ]
    assert types["amount"] == "VARCHAR" and types["_source_row"] == "BIGINT"


def test_a_file_still_under_a_dot_name_is_not_loaded_until_renamed(paths: Paths) -> None:
    """The landing contract: write a file under a dot-name and rename it when complete; a load
    meanwhile does not read it half-written."""
    writing = write_csv(paths.landing_dir("orders") / ".a.csv.partial", ORDER_HEADER, _orders(2))
    write_csv(paths.landing_dir("orders") / "b.csv", ORDER_HEADER, _orders(1, start=10))
    assert load(paths, progress=quiet).rows("orders") == 1
    writing.rename(writing.with_name("a.csv"))
    assert load(paths, progress=quiet).rows("orders") == 2
    assert _count(paths, "raw.orders") == 3


def test_what_writers_leave_beside_their_files_is_not_loaded(paths: Paths) -> None:
    """Names starting with a dot or an underscore, at any depth, and office lock files: Spark
    writes `_SUCCESS` and works in `_temporary/`; a spreadsheet keeps `~$name` open."""
    orders = paths.landing_dir("orders")
    write_csv(orders / "spark" / "part-0.csv", ORDER_HEADER, _orders(1))
    (orders / "spark" / "_SUCCESS").write_bytes(b"")
    (orders / "spark" / ".part-0.csv.crc").write_bytes(b"\x00\x01")
    write_csv(orders / "spark" / "_temporary" / "part-1.csv", ORDER_HEADER, _orders(1, 5))
    write_csv(orders / ".drafts" / "a.csv", ORDER_HEADER, _orders(1, 6))
    (orders / "~$b.csv").write_bytes(b"\x00lock")
    assert load(paths, progress=quiet).rows("orders") == 1
    assert _rows(paths, "select _source_file from raw.orders") == [("orders/spark/part-0.csv",)]


def test_loading_twice_loads_nothing_new(paths: Paths) -> None:
    write_csv(paths.landing_dir("orders") / "a.csv", ORDER_HEADER, _orders(5))
    load(paths, progress=quiet)
    again = load(paths, progress=quiet)
    assert again.rows() == 0
    assert [f.status for f in again.files] == ["skipped"]
    assert _count(paths, "raw.orders") == 5


def test_same_content_under_another_name_is_skipped(paths: Paths) -> None:
    first = write_csv(paths.landing_dir("orders") / "a.csv", ORDER_HEADER, _orders(2))
    load(paths, progress=quiet)
    (paths.landing_dir("orders") / "copy_of_a.csv").write_bytes(first.read_bytes())
    said: list[str] = []
    again = load(paths, progress=said.append)
    assert again.rows() == 0
    assert again.skipped[-1].note == "same content as orders/a.csv"
    assert "  orders/copy_of_a.csv: same content as orders/a.csv, not loaded again" in said
    assert said[-1].endswith("2 file(s) already loaded, skipped")


def _land_changed_back(paths: Paths, ship=None) -> None:
    """a.csv landed as 12.11, then 99.99, then 12.11 again, loaded (and shipped) each time."""
    landing = paths.landing_dir("orders") / "a.csv"
    for amount in ("12.11", "99.99", "12.11"):
        row = ["O1", "C1", "2024-03-01T10:00:00Z", "completed", amount, "EUR", ""]
        write_csv(landing, ORDER_HEADER, [row])
        load(paths, progress=quiet)
        if ship:
            ship()


def test_a_file_changed_back_is_loaded_again(paths: Paths) -> None:
    """12.11, corrected to 99.99, the correction reverted: the file now says 12.11 and that
    landed last, so its rows land again (for a source without updated_at the last landed
    wins); skipping it as "already loaded" kept 99.99 in the marts. A copy of it under
    another name is still skipped."""
    landing = paths.landing_dir("orders") / "a.csv"
    _land_changed_back(paths)
    assert load(paths, progress=quiet).rows() == 0  # unchanged since: skipped
    (paths.landing_dir("orders") / "b.csv").write_bytes(landing.read_bytes())
    assert load(paths, progress=quiet).skipped[-1].note == "same content as orders/a.csv"
    amounts = _rows(paths, "select amount from raw.orders order by _loaded_at")
    assert amounts == [("12.11",), ("99.99",), ("12.11",)]
    ledger = _rows(
        paths, "select source_file, count(distinct sha256) from raw._landing_files group by all"
    )
    assert ledger == [("orders/a.csv", 2)] and _count(paths, "raw._landing_files") == 3
    # a copy of what a.csv held before it changed
    write_csv(landing, ORDER_HEADER, [["O2", "C1", "2024-03-02", "completed", "1", "EUR", ""]])
    load(paths, progress=quiet)
    copy = load(paths, progress=quiet).skipped[-1]
    assert (copy.source_file, copy.note) == (
        "orders/b.csv",
        "same content as an earlier version of orders/a.csv",
    )


def test_a_file_changed_back_is_shipped_to_spark_again(
    paths: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Spark's raw files are named by content: the third landing, with the first one's SHA-256,
    needs a name of its own, or Spark would hold two versions where DuckDB holds three."""
    from retention import targets

    monkeypatch.setattr(targets, "_spark_job", lambda *args: None)  # no Java needed
    shipped: list[int] = []
    _land_changed_back(paths, lambda: shipped.append(targets._ship_spark(paths, quiet).files))
    assert shipped == [1, 1, 1]
    assert targets._ship_spark(paths, quiet).files == 0  # nothing new: nothing shipped
    raw = pq.read_table(paths.data_dir / "spark" / "raw" / "orders")
    assert sorted(raw.column("amount").to_pylist()) == ["12.11", "12.11", "99.99"]
    ledger = pq.read_table(paths.data_dir / "spark" / "raw" / "landing_files")
    assert ledger.num_rows == 3
    # two files that take on a content loaded before in the same load: two names
    landing = paths.landing_dir("orders")
    x = (landing / "a.csv").read_bytes()  # 12.11
    y = [["O1", "C1", "2024-03-01T10:00:00Z", "completed", "99.99", "EUR", ""]]
    write_csv(landing / "a.csv", ORDER_HEADER, y)
    write_csv(
        landing / "b.csv", ORDER_HEADER, [["O2", "C1", "2024-03-02", "completed", "5", "EUR", ""]]
    )
    load(paths, progress=quiet)
    (landing / "a.csv").write_bytes(x)
    (landing / "b.csv").write_bytes(x)
    load(paths, progress=quiet)
    assert targets._ship_spark(paths, quiet).files == 4
    raw = pq.read_table(paths.data_dir / "spark" / "raw" / "orders")
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        duck = sorted(a for (a,) in con.execute("select amount from raw.orders").fetchall())
    assert sorted(raw.column("amount").to_pylist()) == duck and len(duck) == 7
    # the DuckDB warehouse rebuilt from the landing files: nothing is shipped again
    paths.warehouse.unlink()
    load(paths, progress=quiet)
    assert targets._ship_spark(paths, quiet).files == 0
    assert pq.read_table(paths.data_dir / "spark" / "raw" / "orders").num_rows == 7


def test_many_copies_are_counted_after_the_first_few(paths: Paths) -> None:
    first = write_csv(paths.landing_dir("orders") / "a.csv", ORDER_HEADER, _orders(2))
    for i in range(loader.COPIES_SHOWN + 2):
        (paths.landing_dir("orders") / f"copy_{i}.csv").write_bytes(first.read_bytes())
    said: list[str] = []
    load(paths, progress=said.append)
    named = [line for line in said if line.endswith("not loaded again")]
    assert len(named) == loader.COPIES_SHOWN
    assert "  ... and 2 more file(s) with the content of another" in said


def test_a_new_version_of_a_file_is_loaded(paths: Paths) -> None:
    path = write_csv(paths.landing_dir("orders") / "a.csv", ORDER_HEADER, _orders(2))
    load(paths, progress=quiet)
    write_csv(path, ORDER_HEADER, _orders(3))  # one row added upstream, file re-exported
    again = load(paths, progress=quiet)
    assert again.rows() == 3
    assert _count(paths, "raw.orders") == 5  # append-only: staging sorts out duplicates


def test_missing_required_column_names_the_file_and_loads_nothing_from_it(paths: Paths) -> None:
    write_csv(paths.landing_dir("orders") / "good.csv", ORDER_HEADER, _orders(2))
    header = [c for c in ORDER_HEADER if c != "amount"]
    write_csv(paths.landing_dir("orders") / "bad.csv", header, [r[:4] + r[5:] for r in _orders(4)])
    with pytest.raises(LoadErrors) as caught:
        load(paths, progress=quiet)
    message = str(caught.value)
    assert "orders/bad.csv" in message and "missing required column(s) amount" in message
    assert _count(paths, "raw.orders") == 2  # the good file loaded, nothing from the bad one
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        logged = con.execute("select source_file from raw._landing_files").fetchall()
    assert logged == [("orders/good.csv",)]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "the file is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a CSV text file"),
        (
            b'order_id,customer_id,ordered_at,status,amount,currency\nO1,C1,"2024-01-01,completed\n',
            "not a well-formed CSV file",
        ),
        (b"order_id,order_id,customer_id,ordered_at,status,amount,currency\n", "duplicate column"),
        (
            "order_id,customer_id,ordered_at,status,amount,currency\n".encode("utf-16"),
            "UTF-16 text",
        ),
        (b"order_id;customer_id;ordered_at;status;amount;currency\n", "separated by ';'"),
    ],
    ids=["empty", "binary", "unterminated-quote", "duplicate-header", "utf-16", "semicolons"],
)
def test_structurally_broken_files_are_rejected_whole(
    paths: Paths, content: bytes, problem: str
) -> None:
    (paths.landing_dir("orders") / "broken.csv").write_bytes(content)
    with pytest.raises(LoadErrors) as caught:
        load(paths, progress=quiet)
    assert "orders/broken.csv" in str(caught.value)
    assert problem in str(caught.value)
    assert _count(paths, "raw.orders") == 0


def test_unsupported_file_type(paths: Paths) -> None:
    (paths.landing_dir("customers") / "customers.xlsx").write_bytes(b"PK\x03\x04")
    with pytest.raises(LoadErrors, match=r"unsupported file type '\.xlsx'"):
        load(paths, progress=quiet)


def test_header_only_file_loads_zero_rows(paths: Paths) -> None:
    write_csv(paths.landing_dir("orders") / "empty.csv", ORDER_HEADER, [])
    assert load(paths, progress=quiet).rows() == 0
    assert _count(paths, "raw._landing_files") == 1


def test_bom_reordered_extra_and_missing_optional_columns(paths: Paths) -> None:
    text = (
        "\ufeffCurrency,Order_ID,customer_id,ordered_at,status,amount,coupon\n"
        'EUR,O1,C1,2024-01-01T00:00:00Z,completed,"1,000.00",SPRING\n'
    )
    (paths.landing_dir("orders") / "b.csv").write_text(text, encoding="utf-8")
    load(paths, progress=quiet)
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        row = con.execute(
            "select order_id, currency, amount, updated_at, _extra from raw.orders"
        ).fetchone()
    assert row == ("O1", "EUR", "1,000.00", None, '{"coupon":"SPRING"}')


def test_typed_parquet_is_loaded_as_text(paths: Paths) -> None:
    table = pa.table(
        {
            "order_id": ["O1"],
            "customer_id": ["C1"],
            "ordered_at": pa.array([1_700_000_000_000_000], pa.timestamp("us", tz="UTC")),
            "status": ["completed"],
            "amount": pa.array([12.5]),
            "currency": ["USD"],
        }
    )
    pq.write_table(table, paths.landing_dir("orders") / "o.parquet")
    load(paths, progress=quiet)
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        row = con.execute("select ordered_at, amount from raw.orders").fetchone()
        parsed = con.execute("select (?::timestamptz at time zone 'UTC')", [row[0]]).fetchone()[0]
    assert row[1] == "12.5"
    assert parsed.isoformat() == "2023-11-14T22:13:20"


def test_unreadable_records_are_kept_and_marked(paths: Paths) -> None:
    (paths.landing_dir("orders") / "mixed.csv").write_bytes(
        b"order_id,customer_id,ordered_at,status,amount,currency\n"
        b"O1,C1,2024-01-01,completed,1,EUR\n"
        b"O2,C1,2024-01-01,completed,1,EUR,surplus\n"
        b"O3,C\xe91,2024-01-01,completed,1,EUR\n"
    )
    assert load(paths, progress=quiet).rows() == 3
    rows = _rows(
        paths,
        "select order_id, customer_id, _load_issue, _extra, _source_row from raw.orders "
        "order by _source_row",
    )
    assert rows[0] == ("O1", "C1", None, None, 1)
    assert rows[1][2] == "malformed_row" and "surplus" in rows[1][3]
    assert rows[2][1:3] == ("C\ufffd1", "invalid_encoding")


def test_both_readers_read_a_quote_inside_a_field_alike(paths: Paths) -> None:
    """``"compl"eted`` reads as ``completed`` whether the file is read whole or, because another
    of its rows is malformed, record by record."""
    header = b"order_id,customer_id,ordered_at,status,amount,currency\n"
    row = b'%s,C1,2024-01-01,"compl"eted,1,EUR\n'
    (paths.landing_dir("orders") / "a.csv").write_bytes(header + row % b"O1")
    (paths.landing_dir("orders") / "b.csv").write_bytes(header + row % b"O2" + b"O3,short\n")
    assert load(paths, progress=quiet).rows() == 3
    rows = _rows(paths, "select order_id, status, _load_issue from raw.orders order by order_id")
    assert rows == [
        ("O1", "completed", None),
        ("O2", "completed", None),
        ("O3", None, "malformed_row"),
    ]


@pytest.mark.parametrize(
    ("header", "rows"),
    [
        # a malformed record first: the record-by-record reader reads the file
        (
            "order_id,customer_id,ordered_at,status,amount,currency",
            ["O1,C1,2024-01-01,completed,1,EUR,surplus", 'O2,C1,2024-01-01,"completed,1,EUR'],
        ),
        # the quote in the last column, every record whole: the fast reader reads the file, and
        # the record that swallows the rest of it has the right number of fields
        (
            "order_id,customer_id,ordered_at,status,amount,currency,note",
            ["O1,C1,2024-01-01,completed,1,EUR,", 'O2,C1,2024-01-01,completed,1,EUR,"gift wrap'],
        ),
        (
            "order_id,customer_id,ordered_at,status,amount,currency",
            ["O1,C1,2024-01-01,completed,1,EUR", 'O2,C1,2024-01-01,completed,1,"EUR'],
        ),
    ],
    ids=["malformed-row-first", "last-column-outside-the-contract", "last-column"],
)
def test_an_unterminated_quote_is_named_by_its_record(
    paths: Paths, header: str, rows: list[str]
) -> None:
    after = ["O3,C1,2024-01-01,completed,1,EUR" + ("," if header.endswith("note") else "")] * 2
    (paths.landing_dir("orders") / "a.csv").write_text("\n".join([header, *rows, *after]) + "\n")
    with pytest.raises(LoadErrors) as caught:
        load(paths, progress=quiet)
    assert "a quote in the record from line 3 on is never closed" in str(caught.value)
    assert _count(paths, "raw.orders") == 0


def test_any_column_name_outside_the_contract_is_kept_in_extra(paths: Paths) -> None:
    """Names are only keys of ``_extra``: quotes, a blank name (a header ending in a comma, as
    spreadsheets export it), and the names of the loader's own marks."""
    header = 'order_id,customer_id,ordered_at,status,amount,currency,"size 12""",it\'s,_load_issue,'
    (paths.landing_dir("orders") / "a.csv").write_text(
        f"{header}\nO1,C1,2024-01-01,completed,1,EUR,L,x,hello,\n"
    )
    (paths.landing_dir("orders") / "b.csv").write_text(
        "order_id,customer_id,ordered_at,status,amount,currency,_raw_fields,,\n"
        "O2,C1,2024-01-01,completed,1,EUR,r,,z\n"
        "O3,short\n"
    )
    assert load(paths, progress=quiet).rows() == 3
    rows = _rows(paths, "select order_id, _extra, _load_issue from raw.orders order by order_id")
    assert [(r[0], json.loads(r[1]), r[2]) for r in rows] == [
        (
            "O1",
            {'size 12"': "L", "it's": "x", "_load_issue": "hello", "column_10": ""},
            None,
        ),
        ("O2", {"_raw_fields": "r", "column_8": "", "column_9": "z"}, None),
        ("O3", {"_raw_fields": '["O3", "short"]'}, "malformed_row"),
    ]


def test_parquet_bytes_that_are_not_utf8_are_kept_and_marked(paths: Paths) -> None:
    columns = {c: [f"P{i}" for i in (1, 2)] for c in ORDER_HEADER}
    columns["amount"] = pa.array([b"1.5", b"\xff2"], pa.binary())
    pq.write_table(pa.table(columns), paths.landing_dir("orders") / "a.parquet")
    assert load(paths, progress=quiet).rows() == 2
    rows = _rows(paths, "select order_id, amount, _load_issue from raw.orders order by order_id")
    assert rows == [("P1", "1.5", None), ("P2", "\ufffd2", "invalid_encoding")]


def test_parquet_text_that_is_not_utf8_is_kept_and_marked(paths: Paths) -> None:
    """A text column holding bytes that are not UTF-8 (Parquet does not check what a writer put
    in): its rows are marked as binary columns' are, in the contract's columns and outside."""

    def text(*values: bytes) -> pa.Array:
        return pa.array(values, pa.binary()).view(pa.string())

    columns = {c: [f"P{i}" for i in (1, 2)] for c in ORDER_HEADER}
    columns["amount"] = text(b"1.5", b"\xff2")
    columns["segment"] = ["gold", "silver"]
    columns["note"] = text(b"caf\xe9", b"ok")
    pq.write_table(pa.table(columns), paths.landing_dir("orders") / "a.parquet")
    assert load(paths, progress=quiet).rows() == 2
    rows = _rows(
        paths, "select order_id, amount, _extra, _load_issue from raw.orders order by order_id"
    )
    assert [(r[0], r[1], json.loads(r[2]), r[3]) for r in rows] == [
        ("P1", "1.5", {"segment": "gold", "note": "caf\ufffd"}, "invalid_encoding"),
        ("P2", "\ufffd2", {"segment": "silver", "note": "ok"}, "invalid_encoding"),
    ]


def test_parquet_uuids_and_large_float_ids_land_as_their_usual_text(paths: Paths) -> None:
    """A UUID column as 8-4-4-4-12 hex digits; a double without an exponent (an id of
    12345678901 written as a double must still match the customer's "12345678901")."""
    ids = [uuid.UUID(int=1), uuid.UUID(int=2)]
    columns = {c: [f"P{i}" for i in (1, 2)] for c in ORDER_HEADER}
    columns["order_id"] = pa.array([u.bytes for u in ids], pa.uuid())
    columns["customer_id"] = pa.array([12345678901.0, 9001.0], pa.float64())
    columns["amount"] = pa.array([0.1 + 0.2, 1e-7], pa.float64())
    pq.write_table(pa.table(columns), paths.landing_dir("orders") / "a.parquet")
    assert load(paths, progress=quiet).rows() == 2
    rows = _rows(
        paths, "select order_id, customer_id, amount, _load_issue from raw.orders order by amount"
    )
    assert rows == [
        ("00000000-0000-0000-0000-000000000002", "9001", "0.0000001", None),
        ("00000000-0000-0000-0000-000000000001", "12345678901", "0.30000000000000004", None),
    ]


def test_parquet_fixed_width_bytes_are_read_as_bytes(paths: Paths) -> None:
    columns = {c: ["P1", "P2"] for c in ORDER_HEADER}
    columns["currency"] = pa.array([b"EUR", b"\xffUR"], pa.binary(3))
    pq.write_table(pa.table(columns), paths.landing_dir("orders") / "a.parquet")
    assert load(paths, progress=quiet).rows() == 2
    rows = _rows(paths, "select order_id, currency, _load_issue from raw.orders order by order_id")
    assert rows == [("P1", "EUR", None), ("P2", "\ufffdUR", "invalid_encoding")]


def test_parquet_decimals_land_without_an_exponent(paths: Paths) -> None:
    """Spark writes BigDecimal as decimal(38,18), and Arrow's text for a small one has an
    exponent (``0E-18``) that staging's amount grammar refuses: a free order was quarantined."""
    columns: dict[str, pa.Array | list] = {c: ["P1", "P2", "P3"] for c in ORDER_HEADER}
    columns["order_id"] = ["P1", "P2", "P3"]
    amounts = [Decimal("12.5"), Decimal("0"), Decimal("0.0000005")]
    columns["amount"] = pa.array(amounts, pa.decimal128(38, 18))
    pq.write_table(pa.table(columns), paths.landing_dir("orders") / "a.parquet")
    assert load(paths, progress=quiet).rows() == 3
    rows = _rows(paths, "select order_id, amount from raw.orders order by order_id")
    assert rows == [
        ("P1", "12.500000000000000000"),
        ("P2", "0.000000000000000000"),
        ("P3", "0.000000500000000000"),
    ]


def test_parquet_binary_columns_outside_the_contract_land_as_hex(paths: Paths) -> None:
    """A checksum column is binary data, not broken text: it must not quarantine the row."""
    columns: dict[str, pa.Array | list] = {c: ["P1", "P2"] for c in ORDER_HEADER}
    columns["row_md5"] = pa.array([b"\x00\xff" * 8, None], pa.binary(16))
    pq.write_table(pa.table(columns), paths.landing_dir("orders") / "a.parquet")
    assert load(paths, progress=quiet).rows() == 2
    rows = _rows(paths, "select order_id, _extra, _load_issue from raw.orders order by order_id")
    assert [(r[0], json.loads(r[1]), r[2]) for r in rows] == [
        ("P1", {"row_md5": "00ff" * 8}, None),
        ("P2", {"row_md5": None}, None),
    ]


def test_parquet_nested_columns_outside_the_contract_land_as_json(paths: Paths) -> None:
    columns: dict[str, pa.Array | list] = {c: ["P1", "P2"] for c in ORDER_HEADER}
    columns["items"] = pa.array([[{"sku": "A", "qty": 2}], None])
    columns["tags"] = pa.array([[("gift", True)], []], pa.map_(pa.string(), pa.bool_()))
    pq.write_table(pa.table(columns), paths.landing_dir("orders") / "a.parquet")
    assert load(paths, progress=quiet).rows() == 2
    rows = _rows(paths, "select order_id, _extra from raw.orders order by order_id")
    assert [(r[0], json.loads(r[1])) for r in rows] == [
        ("P1", {"items": '[{"sku":"A","qty":2}]', "tags": '{"gift":true}'}),
        ("P2", {"items": None, "tags": "{}"}),
    ]


def test_a_nested_contract_column_refuses_the_file(paths: Paths) -> None:
    columns: dict[str, pa.Array | list] = {c: ["P1"] for c in ORDER_HEADER}
    columns["amount"] = pa.array([[1.5, 2.5]])
    pq.write_table(pa.table(columns), paths.landing_dir("orders") / "a.parquet")
    with pytest.raises(LoadErrors) as caught:
        load(paths, progress=quiet)
    message = str(caught.value)
    assert "contract column amount has a nested type" in message
    assert "write amount as text, a number, a date or a timestamp" in message
    assert not paths.warehouse.exists() or _count(paths, "raw.orders") == 0


def test_a_header_longer_than_the_first_block_is_read_whole(paths: Paths) -> None:
    extras = [f"extra_{i:05d}" for i in range(8_000)]  # about 100 KiB of header
    write_csv(
        paths.landing_dir("orders") / "a.csv",
        ORDER_HEADER + extras,
        [["O1", "C1", "2024-01-01", "completed", "1", "EUR", "", *(["x"] * len(extras))]],
    )
    assert load(paths, progress=quiet).rows() == 1
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        ((extra, issue),) = con.execute("select _extra, _load_issue from raw.orders").fetchall()
    assert issue is None and json.loads(extra)["extra_07999"] == "x"


def test_a_blank_line_before_the_header_is_named(paths: Paths) -> None:
    (paths.landing_dir("orders") / "a.csv").write_text("\n" + ",".join(ORDER_HEADER) + "\n")
    with pytest.raises(LoadErrors) as caught:
        load(paths, progress=quiet)
    message = str(caught.value)
    assert (
        "the header row is empty" in message and "the first line must name the columns" in message
    )


def test_a_parquet_file_with_a_repeated_column_name_is_named(paths: Paths) -> None:
    table = pa.table([pa.array(["P1"])] * 7, names=[*ORDER_HEADER[:6], "order_id"])
    pq.write_table(table, paths.landing_dir("orders") / "a.parquet")
    with pytest.raises(LoadErrors) as caught:
        load(paths, progress=quiet)
    assert "duplicate column name(s) in the header: order_id" in str(caught.value)


def test_a_header_that_is_not_utf8_is_named_as_such(paths: Paths) -> None:
    """Two Latin-1 column names were reported as "duplicate column name(s): \ufffd"."""
    header = ",".join(ORDER_HEADER) + ",r\xe9gion,pa\xefs\n"
    (paths.landing_dir("orders") / "a.csv").write_bytes(header.encode("latin-1") + b"O1,C1\n")
    with pytest.raises(LoadErrors) as caught:
        load(paths, progress=quiet)
    message = str(caught.value)
    assert "the header row is not UTF-8 text" in message and "duplicate" not in message
    assert "save or export the file as CSV UTF-8" in message


def test_a_long_field_beside_a_malformed_record_loads(paths: Paths) -> None:
    long = "a" * 200_000
    write_csv(
        paths.landing_dir("orders") / "a.csv",
        ORDER_HEADER,
        [["O1", "C1", "2024-01-01", "completed", "1", "EUR", long], ["O2", "short"]],
    )
    assert load(paths, progress=quiet).rows() == 2
    rows = _rows(
        paths, "select order_id, length(updated_at), _load_issue from raw.orders order by order_id"
    )
    assert rows == [("O1", 200_000, None), ("O2", None, "malformed_row")]


def test_files_nothing_can_read_are_named(paths: Paths) -> None:
    landing = paths.landing_dir("orders")
    write_csv(landing / "good.csv", ORDER_HEADER, _orders(1))
    write_csv(landing / "caf\udce9.csv", ORDER_HEADER, _orders(1, start=2))
    (landing / "gone.csv").symlink_to(landing / "missing.csv")
    write_csv(paths.landing / "orders_extra.csv", ORDER_HEADER, _orders(1, start=3))
    (paths.landing / "Orders").mkdir()
    said: list[str] = []
    with pytest.raises(LoadErrors) as raised:
        load(paths, progress=said.append)
    problems = sorted(e.problem for e in raised.value.errors)
    assert problems[0].startswith("a symbolic link to nothing")
    assert problems[1].startswith("the file name is not UTF-8 text")
    assert "caf\\xe9.csv" in str(raised.value)
    assert "  ignored landing/Orders/: landing files go in landing/<entity>/ (" in said[:2][0]
    assert said[1].startswith("  ignored landing/orders_extra.csv: ")
    # the readable file is loaded all the same
    assert _count(paths, "raw.orders") == 1


def test_names_and_headers_cannot_write_to_the_terminal(paths: Paths) -> None:
    """A landing file's name or header is printed with its control characters escaped: an
    escape sequence would clear the screen or colour it, a newline would forge a log line."""
    landing = paths.landing_dir("orders")
    write_csv(landing / "esc\x1b[2Jred.csv", ["order_id", "customer_id"], [["1", "2"]])
    write_csv(landing / "ok\nload: 0 new file(s); FORGED.csv", ["order_id"], [["1"]])
    (landing / "header.csv").write_text("order_id,customer_id,\x1b[42mcolumn\n1,2,3\n")
    write_csv(landing / "good.csv", ORDER_HEADER, _orders(1))
    said: list[str] = []
    with pytest.raises(LoadErrors) as raised:
        load(paths, progress=said.append)
    printed = "\n".join([*said, str(raised.value)])
    assert "\x1b" not in printed
    assert "esc\\x1b[2Jred.csv" in printed and "\\x1b[42mcolumn" in printed
    assert not any(line.startswith("load: 0 new file(s); FORGED") for line in printed.splitlines())
    assert "ok\\nload: 0 new file(s); FORGED.csv" in printed
    assert _count(paths, "raw.orders") == 1


def test_a_folder_that_cannot_be_read_is_named(
    paths: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its files would be missed without a word (os.walk skips what it cannot list); the
    others load. (Simulated: as root, permissions do not stop a read.)"""
    landing = paths.landing_dir("orders")
    write_csv(landing / "a.csv", ORDER_HEADER, _orders(1))
    write_csv(landing / "2024" / "b.csv", ORDER_HEADER, _orders(1, start=2))
    write_csv(landing / "_temporary" / "c.csv", ORDER_HEADER, _orders(1, start=3))
    scandir = os.scandir

    def denied(path=".", *args):
        if Path(path).name in ("2024", "_temporary"):
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path, *args)

    monkeypatch.setattr(os, "scandir", denied)
    with pytest.raises(LoadErrors) as caught:
        load(paths, progress=quiet)
    (problem,) = caught.value.errors  # _temporary/ is ignored anyway
    assert problem.path.endswith("orders/2024")
    assert problem.problem == (
        "the folder cannot be read (Permission denied): its files were not loaded"
    )
    assert _count(paths, "raw.orders") == 1


def test_files_under_linked_folders_load_and_ignored_names_stay_ignored(
    paths: Paths, tmp_path: Path
) -> None:
    """A linked subfolder (an export mounted elsewhere) is read like any other, a link back up is
    read once; a dangling link under a name the load ignores (an editor's lock ``.#a.csv``,
    Spark's ``_temporary/``) does not fail it."""
    landing = paths.landing_dir("orders")
    export = tmp_path / "export" / "2024"
    write_csv(export / "a.csv", ORDER_HEADER, _orders(2))
    (landing / "2024").symlink_to(export)
    (export / "up").symlink_to(landing)  # a loop
    write_csv(landing / "b.csv", ORDER_HEADER, _orders(1, start=3))
    (landing / ".#b.csv").symlink_to("user@host.1234:1700000000")
    (landing / "_temporary").mkdir()
    (landing / "_temporary" / "part-0.csv").symlink_to(tmp_path / "gone.csv")
    summary = load(paths, progress=quiet)
    assert sorted(f.source_file for f in summary.loaded) == ["orders/2024/a.csv", "orders/b.csv"]
    assert _count(paths, "raw.orders") == 3


def test_hive_partition_folders_give_their_columns(paths: Paths) -> None:
    """Spark's ``partitionBy`` leaves the partition columns out of the files and names them in
    the folders: ``month=2024-01/`` must be the spend month (the file was rejected for a missing
    month), ``country=DE/`` the country (it was null without a word)."""
    import pyarrow.dataset as ds

    spend = pa.table(
        {
            "month": ["2024-01", "2024-01", "2024-02"],
            "channel": ["paid search", "email", "paid search"],
            "spend_type": ["acquisition"] * 3,
            "amount": ["10.00", "5.00", "12.50"],
            "currency": ["USD"] * 3,
        }
    )
    ds.write_dataset(
        spend,
        paths.landing_dir("marketing_spend"),
        format="parquet",
        partitioning=["month"],
        partitioning_flavor="hive",
    )
    customers = paths.landing_dir("customers")
    write_csv(customers / "country=DE" / "part-0.csv", ["customer_id"], [["C1"]])
    write_csv(customers / "country=C%C3%B4te" / "part-0.csv", ["customer_id"], [["C2"]])
    null = customers / "country=__HIVE_DEFAULT_PARTITION__" / "part-0.csv"
    write_csv(null, ["customer_id"], [["C3"]])
    # a column the file has wins over its folder's
    write_csv(customers / "country=FR" / "x.csv", ["customer_id", "country"], [["C4", "BE"]])
    load(paths, progress=quiet)
    rows = _rows(paths, "select month, channel, amount from raw.marketing_spend order by 1, 2")
    assert rows == [
        ("2024-01", "email", "5.00"),
        ("2024-01", "paid search", "10.00"),
        ("2024-02", "paid search", "12.50"),
    ]
    countries = _rows(paths, "select customer_id, country from raw.customers order by 1")
    assert countries == [("C1", "DE"), ("C2", "Côte"), ("C3", None), ("C4", "BE")]
    # the same bytes under another partition are other rows, not a copy; under the same
    # partition and another name they are a copy
    part = customers / "country=DE" / "part-0.csv"
    (customers / "country=AT").mkdir()
    (customers / "country=AT" / "part-0.csv").write_bytes(part.read_bytes())
    (customers / "country=DE" / "part-1.csv").write_bytes(part.read_bytes())
    again = load(paths, progress=quiet)
    assert [f.source_file for f in again.loaded] == ["customers/country=AT/part-0.csv"]
    notes = {f.source_file: f.note for f in again.skipped}
    assert notes["customers/country=DE/part-1.csv"] == (
        "same content as customers/country=DE/part-0.csv"
    )


def test_a_file_of_another_entity_is_refused(paths: Paths) -> None:
    """An orders export in landing/customers/ has the one column customers need, and landed as
    customers: the newest version of each, with blank emails, countries and channels."""
    write_csv(paths.landing_dir("customers") / "orders.csv", ORDER_HEADER, _orders(2))
    with pytest.raises(LoadErrors) as caught:
        load(paths, progress=quiet)
    message = str(caught.value)
    assert "this looks like a orders file, not a customers file" not in message
    assert "this looks like an orders file, not a customers file" in message
    assert "move it to landing/orders/" in message
    assert _count(paths, "raw.customers") == 0


def test_a_file_of_another_entity_is_named_before_the_columns_it_lacks(paths: Paths) -> None:
    """An NPS export in landing/orders/ lacks the order columns: that it is an NPS file is what
    to say (it got "missing required columns" and "a orders file needs")."""
    header = list(COLUMNS["nps_responses"])
    row = {"response_id": "R1", "customer_id": "C1", "responded_at": "2024-02-01", "score": "9"}
    write_csv(paths.landing_dir("orders") / "nps.csv", header, [[row.get(c, "") for c in header]])
    with pytest.raises(LoadErrors) as caught:
        load(paths, progress=quiet)
    message = str(caught.value)
    assert "this looks like a nps_responses file, not an orders file" in message
    assert "move it to landing/nps_responses/" in message
    # and a file of no entity says what this one needs, with its article
    (paths.landing_dir("orders") / "nps.csv").unlink()
    write_csv(paths.landing_dir("orders") / "other.csv", ["order_id", "note"], [["O1", "x"]])
    with pytest.raises(LoadErrors, match="an orders file needs the columns order_id, "):
        load(paths, progress=quiet)


def test_files_of_every_shape_written_together_keep_their_own_lineage(paths: Paths) -> None:
    """An entity's files are written by one insert: a typed Parquet file, a CSV file with an extra
    column and one without an optional column, and a CSV file with a malformed record, each row
    with its own file, record number and extras."""
    landing = paths.landing_dir("orders")
    pq.write_table(
        pa.table({**{c: [f"P{i}" for i in (1, 2)] for c in ORDER_HEADER}, "amount": [1.5, 2.0]}),
        landing / "a.parquet",
    )
    (landing / "b.csv").write_text(
        "order_id,customer_id,ordered_at,status,amount,currency,coupon\n"
        "B1,C1,2024-01-01,completed,1,EUR,SPRING\n"
    )
    (landing / "c.csv").write_text(
        "order_id,customer_id,ordered_at,status,amount,currency,updated_at\n"
        "C1,C1,2024-01-01,completed,1,EUR,2024-01-02\n"
        "C2,C1,2024-01-01,completed,1,EUR,2024-01-02,surplus\n"
    )
    assert load(paths, progress=quiet).rows() == 5
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        rows = con.execute(
            "select _source_file, _source_row, order_id, amount, updated_at, _extra, _load_issue "
            "from raw.orders order by _source_file, _source_row"
        ).fetchall()
        loaded_at = con.execute("select count(distinct _loaded_at) from raw.orders").fetchone()
    fields = ["C2", "C1", "2024-01-01", "completed", "1", "EUR", "2024-01-02", "surplus"]
    assert rows == [
        ("orders/a.parquet", 1, "P1", "1.5", "P1", None, None),
        ("orders/a.parquet", 2, "P2", "2", "P2", None, None),
        ("orders/b.csv", 1, "B1", "1", None, '{"coupon":"SPRING"}', None),
        ("orders/c.csv", 1, "C1", "1", "2024-01-02", None, None),
        ("orders/c.csv", 2, "C2", "1", "2024-01-02", rows[4][5], "malformed_row"),
    ]
    # a malformed record keeps every field it had
    assert json.loads(json.loads(rows[4][5])["_raw_fields"]) == fields
    assert loaded_at == (1,)


def test_load_times_increase_even_when_the_clock_steps_back(
    paths: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Incremental models take the rows loaded after the latest load time they saw."""
    import retention.load as loader

    write_csv(paths.landing_dir("orders") / "a.csv", list(COLUMNS["orders"]), _orders(2))
    load(paths, progress=quiet)

    class SteppedBack(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime(2000, 1, 1, tzinfo=tz)

    monkeypatch.setattr(loader, "datetime", SteppedBack)
    write_csv(paths.landing_dir("orders") / "b.csv", list(COLUMNS["orders"]), _orders(2, 3))
    load(paths, progress=quiet)
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        first, second = (
            t
            for (t,) in con.execute(
                "select max(_loaded_at) from raw.orders group by _source_file order by 1"
            ).fetchall()
        )
    assert second - first == timedelta(microseconds=1)


def test_an_error_while_writing_rolls_back_only_the_open_batch(
    paths: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files are committed in batches of rows; a failed write loses only the batch it is in."""
    import retention.load as loader

    for i, name in enumerate("abcd"):
        write_csv(paths.landing_dir("orders") / f"{name}.csv", ORDER_HEADER, _orders(2, 2 * i + 1))
    insert = loader._insert

    def failing_insert(con, entity, rows, loaded_at):
        if "orders/d.csv" in rows.column("_source_file").to_pylist():
            raise OSError("disk full")
        insert(con, entity, rows, loaded_at)

    monkeypatch.setattr(loader, "BATCH_ROWS", 3)  # a and b make a batch, c and d the next
    monkeypatch.setattr(loader, "_insert", failing_insert)
    # the machine's problem, said with what was kept and what to do
    with pytest.raises(UserError, match="disk full") as raised:
        load(paths, progress=quiet)
    message = str(raised.value)
    assert "2 landing file(s) (orders/c.csv, orders/d.csv) was written" in message
    assert "the files loaded before it stay loaded" in message
    assert "run the command again (`retention load`, or `retention run`)" in message
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        logged = con.execute("select source_file from raw._landing_files order by 1").fetchall()
    assert logged == [("orders/a.csv",), ("orders/b.csv",)]
    assert _count(paths, "raw.orders") == 4
    monkeypatch.setattr(loader, "_insert", insert)
    assert load(paths, progress=quiet).rows() == 4  # c, rolled back with d, loads again


def test_progress_is_said_as_each_entity_is_written(
    paths: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An entity's line comes when its rows are committed, before the next entity is written;
    a long entity says how far it got, and what was committed is said even if a later write
    fails."""
    import retention.load as loader

    customer_header = list(COLUMNS["customers"])
    write_csv(
        paths.landing_dir("customers") / "c.csv",
        customer_header,
        [["C1", "a@example.com", "2024-01-01T00:00:00Z", "DE", "organic", ""]],
    )
    for i, name in enumerate("abcd"):
        write_csv(paths.landing_dir("orders") / f"{name}.csv", ORDER_HEADER, _orders(2, 2 * i + 1))
    events: list[str] = []
    insert = loader._insert

    def recording_insert(con, entity, rows, loaded_at):
        if "orders/d.csv" in rows.column("_source_file").to_pylist():
            raise RuntimeError("the second batch fails")
        events.append(f"write {entity} {rows.num_rows}")
        insert(con, entity, rows, loaded_at)

    monkeypatch.setattr(loader, "BATCH_ROWS", 3)  # orders: a and b, then c and d
    monkeypatch.setattr(loader, "PROGRESS_SECONDS", 0)  # say it after every batch
    monkeypatch.setattr(loader, "_insert", recording_insert)
    with pytest.raises(RuntimeError, match="the second batch fails"):
        load(paths, progress=events.append)
    assert events == [
        "write customers 1",
        "  customers: 1 new file(s), 1 rows",
        "write orders 4",
        "  orders: 4 rows written so far",
    ]
    # c and d again, in one batch committed when full: the entity's total, no "so far" for it
    events.clear()
    monkeypatch.setattr(loader, "_insert", lambda *args: (events.append("write"), insert(*args)))
    load(paths, progress=events.append)
    assert events == [
        "write",
        "  orders: 2 new file(s), 4 rows",
        "load: 2 new file(s), 4 rows; 3 file(s) already loaded, skipped",
    ]


def test_a_failed_insert_reports_its_own_error(paths: Paths) -> None:
    """The statement's error (a full disk, here a broken constraint), not the aborted
    transaction's, which unregistering the batch's rows afterwards would raise."""
    import retention.load as loader

    write_csv(paths.landing_dir("orders") / "a.csv", ORDER_HEADER, _orders(1))
    load(paths, progress=quiet)  # creates raw.orders
    rows = pa.table({"order_id": ["O9"], "_source_file": ["orders/x.csv"], "_source_row": [None]})
    with duckdb.connect(str(paths.warehouse)) as con:
        con.execute("begin transaction")
        with pytest.raises(duckdb.ConstraintException, match="_source_row"):
            loader._insert(con, "orders", rows, datetime(2024, 3, 1))
        con.execute("rollback")
    assert _count(paths, "raw.orders") == 1


def test_a_copy_landed_in_the_same_run_is_skipped(paths: Paths) -> None:
    first = write_csv(paths.landing_dir("orders") / "a.csv", ORDER_HEADER, _orders(2))
    (paths.landing_dir("orders") / "b.csv").write_bytes(first.read_bytes())
    summary = load(paths, progress=quiet)
    assert [(f.source_file, f.status, f.note) for f in summary.files] == [
        ("orders/a.csv", "loaded", ""),
        ("orders/b.csv", "skipped", "same content as orders/a.csv"),
    ]
    assert _count(paths, "raw.orders") == 2


def test_files_loaded_before_are_not_read_again(
    paths: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    import retention.load as loader

    write_csv(paths.landing_dir("orders") / "a.csv", ORDER_HEADER, _orders(2))
    load(paths, progress=quiet)
    write_csv(paths.landing_dir("orders") / "b.csv", ORDER_HEADER, _orders(2, 3))
    read = []
    read_landing_file = loader.read_landing_file

    def counting_read(path, entity):
        read.append(path.name)
        return read_landing_file(path, entity)

    monkeypatch.setattr(loader, "read_landing_file", counting_read)
    assert load(paths, progress=quiet).rows() == 2
    assert read == ["b.csv"]


def test_an_error_while_reading_ahead_is_raised_and_writes_nothing(
    paths: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files are read in a background thread; an unexpected error there still stops the load."""
    import retention.load as loader

    for i, name in enumerate("abc"):
        write_csv(paths.landing_dir("orders") / f"{name}.csv", ORDER_HEADER, _orders(2, 2 * i + 1))
    read_landing_file = loader.read_landing_file

    def failing_read(path, entity):
        if path.name == "c.csv":
            raise RuntimeError(f"a bug reading {path.name}")
        return read_landing_file(path, entity)

    monkeypatch.setattr(loader, "read_landing_file", failing_read)
    with pytest.raises(RuntimeError, match=r"a bug reading c\.csv"):
        load(paths, progress=quiet)
    assert _count(paths, "raw.orders") == 0  # a and b were in the batch that was rolled back
    assert _count(paths, "raw._landing_files") == 0


def test_a_file_that_cannot_be_read_is_rejected_and_the_others_load(
    paths: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unreadable (permissions) or gone between listing and reading: that file is named, the
    others are loaded, and the next load takes it once it can be read."""
    for i, name in enumerate("abc"):
        write_csv(paths.landing_dir("orders") / f"{name}.csv", ORDER_HEADER, _orders(2, 2 * i + 1))
    sha256 = loader._sha256

    def unreadable(path):
        if path.name == "b.csv":
            raise PermissionError(13, "Permission denied")
        return sha256(path)

    monkeypatch.setattr(loader, "_sha256", unreadable)
    with pytest.raises(LoadErrors) as caught:
        load(paths, progress=quiet)
    assert "b.csv: the file cannot be read (Permission denied)" in str(caught.value)
    assert _count(paths, "raw.orders") == 4
    monkeypatch.setattr(loader, "_sha256", sha256)
    assert load(paths, progress=quiet).rows() == 2
    assert _count(paths, "raw._landing_files") == 3


def test_a_file_rewritten_while_it_is_read_is_not_recorded(
    paths: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The digest and the rows are two reads: rows read from a half-rewritten file must not be
    recorded under the digest of the whole one, or every later load would skip the file."""
    landing = paths.landing_dir("orders") / "a.csv"
    write_csv(landing, ORDER_HEADER, _orders(3, 1))
    os.utime(landing, (1_700_000_000, 1_700_000_000))  # any later write changes the time
    read_landing_file = loader.read_landing_file

    def rewritten_meanwhile(path, entity):
        content = path.read_bytes()
        lines = content.splitlines(keepends=True)
        path.write_bytes(b"".join(lines[:2]))  # an exporter truncates and starts writing
        try:
            return read_landing_file(path, entity)
        finally:
            path.write_bytes(content)  # and finishes: the same bytes as before

    monkeypatch.setattr(loader, "read_landing_file", rewritten_meanwhile)
    with pytest.raises(LoadErrors, match="the file changed while it was being read"):
        load(paths, progress=quiet)
    assert _count(paths, "raw._landing_files") == 0
    monkeypatch.setattr(loader, "read_landing_file", read_landing_file)
    assert load(paths, progress=quiet).rows() == 3
