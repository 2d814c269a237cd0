"""Comparing the same table built by two engines.

Rows are matched by the table's key. Money (decimals) must agree to the cent, whole numbers and
text exactly, dates and times to the microsecond, and floating-point figures (rates, CLV model
outputs) within a relative 1e-9.
"""

from __future__ import annotations

import json
import math
import subprocess
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from retention import dbt
from retention.config import Paths
from retention.load import COLUMNS
from tests.conftest import write_csv

#: The key of every mart, to match rows across engines.
MART_KEYS: dict[str, tuple[str, ...]] = {
    "customers": ("customer_id",),
    "customer_cohorts": ("cohort_month", "period_number", "segment_type", "segment_value"),
    "retention_monthly": ("month", "segment_type", "segment_value"),
    "orders": ("order_id",),
    "customer_lifecycle_monthly": ("customer_id", "month"),
    "winback_candidates": ("customer_id",),
    "clv_summary": ("segment_type", "segment_value"),
    "channel_economics": ("month", "acquisition_channel"),
    "nps_monthly": ("month", "segment_type", "segment_value"),
    "customer_lifetime_value": ("customer_id",),
    "clv_model_parameters": ("model", "parameter"),
    "clv_backtest": ("frequency_bucket",),
}
CORE_MARTS = ("customers", "customer_cohorts", "retention_monthly")
#: When a row was loaded: each engine's warehouse loads the same landing files at its own time.
LOAD_TIME_COLUMNS = ("_loaded_at",)

CENT = Decimal("0.01")
#: The columns of a raw table every engine must hold alike, the last two its order.
RAW_LINEAGE = ("_extra", "_load_issue", "_source_file", "_source_row")


class Tables(Protocol):
    def table(self, relation: str) -> tuple[list[str], list[tuple]]: ...


def raw_rows(warehouse: Tables, entity: str) -> list[tuple]:
    """An entity's raw rows in the order they were landed (source file, then row), whichever
    engine holds them."""
    columns, rows = warehouse.table(f"raw.{entity}")
    wanted = [columns.index(c) for c in (*COLUMNS[entity], *RAW_LINEAGE)]
    return sorted((tuple(row[i] for i in wanted) for row in rows), key=lambda r: (r[-2], r[-1]))


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "exact"
    if isinstance(value, Decimal):
        return "money"
    if isinstance(value, int):
        return "exact"
    if isinstance(value, float):
        return "float"
    if isinstance(value, datetime | date):
        return "time"
    return "exact"


def _time(value: Any) -> str:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _same(kind: str, left: Any, right: Any) -> bool:
    if left is None or right is None:
        return left is None and right is None
    if kind == "money":
        return Decimal(str(left)).quantize(CENT) == Decimal(str(right)).quantize(CENT)
    if kind == "float":
        left, right = float(left), float(right)
        if math.isnan(left) or math.isnan(right):
            return math.isnan(left) and math.isnan(right)
        return math.isclose(left, right, rel_tol=1e-9, abs_tol=1e-12)
    if kind == "time":
        return _time(left) == _time(right)
    if isinstance(left, int | float | Decimal) and isinstance(right, int | float | Decimal):
        return left == right
    return left == right


def table_differences(
    name: str,
    left: tuple[list[str], list[tuple]],
    right: tuple[list[str], list[tuple]],
    limit: int = 5,
) -> list[str]:
    """What differs between two engines' copies of a table (empty when they agree)."""
    (left_columns, left_rows), (right_columns, right_rows) = left, right
    if left_columns != right_columns:
        return [f"{name}: columns differ: {left_columns} vs {right_columns}"]
    if len(left_rows) != len(right_rows):
        return [f"{name}: {len(left_rows)} rows vs {len(right_rows)}"]
    keys = [left_columns.index(k) for k in MART_KEYS[name]]

    def key(row: tuple) -> tuple:
        return tuple(_time(row[i]) if row[i] is not None else "" for i in keys)

    left_rows, right_rows = sorted(left_rows, key=key), sorted(right_rows, key=key)
    problems = []
    for column, column_name in enumerate(left_columns):
        if column_name in LOAD_TIME_COLUMNS:
            continue
        sample = next((r[column] for r in left_rows if r[column] is not None), None)
        if sample is None:
            sample = next((r[column] for r in right_rows if r[column] is not None), None)
        kind = _kind(sample)
        for a, b in zip(left_rows, right_rows, strict=True):
            if key(a) != key(b):
                return [f"{name}: keys differ: {key(a)} vs {key(b)}"]
            if not _same(kind, a[column], b[column]):
                problems.append(f"{name}.{column_name} at {key(a)}: {a[column]!r} vs {b[column]!r}")
                if len(problems) >= limit:
                    return problems
    return problems


def land_an_unfittable_history(paths: Paths) -> None:
    """30 customers with two purchases each, 3 of them for 1,000,000: the CLV fits cannot
    converge (no dropout to see, a mean spend without a mean)."""
    paths.ensure()
    customers = [[f"C{i}", f"c{i}@example.com", "2024-01-01", "US", "seo", ""] for i in range(30)]
    orders = [[f"A{i}", f"C{i}", "2024-01-05", "completed", "10.00", "USD", ""] for i in range(30)]
    orders += [
        [f"B{i}", f"C{i}", f"2024-03-0{i % 9 + 1}", "completed",
         "1000000.00" if i < 3 else "10.00", "USD", ""]
        for i in range(30)
    ]  # fmt: skip
    write_csv(paths.landing_dir("customers") / "c.csv", list(COLUMNS["customers"]), customers)
    write_csv(paths.landing_dir("orders") / "o.csv", list(COLUMNS["orders"]), orders)


#: Text the parsing macros (macros/parsing.sql) must read alike on every engine, as landed
#: (chr(10), chr(13): a line break ending the field), with what they must give. A minute-precision
#: time with a zone was NULL on Spark; a trailing line break passed Spark's patterns only.
PARSING_CASES: list[tuple[str, str, Any]] = [
    ("timestamp", "'2024-01-05T10:00Z'", "2024-01-05T10:00:00"),
    ("timestamp", "'2024-01-05 10:00+02:00'", "2024-01-05T08:00:00"),
    ("timestamp", "'2024-01-05T10:00-05'", "2024-01-05T15:00:00"),
    ("timestamp", "'2024-01-05T10:00'", "2024-01-05T10:00:00"),
    ("timestamp", "'2024-01-05T10:00:30+0530'", "2024-01-05T04:30:30"),
    ("timestamp", "'2024-01-05T10:00:00Z' || chr(10)", None),
    ("integer", "'9'", 9),
    ("integer", "'9' || chr(10)", None),
    ("integer", "'9' || chr(13)", None),
    ("decimal", "'12.50'", 12.5),
    ("decimal", "'12.50' || chr(13) || chr(10)", None),
    # four decimals kept, half away from zero: also what a float written out gives back
    ("decimal", "'10.004999999999999'", 10.005),
    ("decimal", "'-0.00005'", -0.0001),
    ("month", "'2024-01'", "2024-01-01"),
    ("month", "'2024-01' || chr(10)", None),
    ("month", "'2024-03-01'", "2024-03-01"),
    # a month is read on the clock it was written in (a Parquet column of local timestamps)
    ("month", "'2025-02-01 00:00:00.000000+0100'", "2025-02-01"),
    ("month", "'2025-02-01T00:00-05:00'", "2025-02-01"),
    ("month", "'2025-01-31T23:00:00Z'", None),
    ("month", "'2025-02-01T00:00:00+15:00'", None),
    # amount, USD per unit of its currency, USD per unit of the reporting currency: exactly,
    # then half away from zero (90.19 AUD in EUR is 51.315; a cross rate cut to 10 decimals
    # gave 51.31)
    ("convert", "90.19 0.66 1.16", 51.32),
    ("convert", "0.58 0.73 1.16", 0.37),
    ("convert", "10.005 1 1.16", 8.63),
    ("convert", "0.005 1 1.00000001", 0.0),  # 0.00499999995: not a half cent
    ("convert", "-0.005 1 1", -0.01),
    # the largest amount and rate (and the smallest reporting rate) the types allow
    (
        "convert",
        "999999999999.9999 9999999999.99999999 0.00000001",
        float("999999999999999899000000000000.00"),
    ),
]
_PARSERS = {
    "timestamp": "parse_timestamp_utc",
    "integer": "parse_integer",
    "decimal": "parse_decimal",
    "month": "parse_month",
}


def _macro_call(kind: str, text: str) -> str:
    if kind == "convert":  # the amount and the rates as typed in staging and in seed fx_rates
        amount, rate, reporting_rate = text.split()
        return (
            f'convert_to_reporting("cast({amount} as decimal(38, 4))", '
            f'rate_units("cast({rate} as decimal(18, 8))"), '
            f'rate_units("cast({reporting_rate} as decimal(18, 8))"))'
        )
    return f'{_PARSERS[kind]}("{text}")'


def dbt_executable(
    paths: Paths, args: list[str], target: str | None = None
) -> subprocess.CompletedProcess:
    """``dbt <args>`` run by the dbt executable, as ``run_dbt`` would set it up (output and
    errors together in ``stdout``)."""
    paths.data_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        dbt.dbt_command(args),
        cwd=dbt.dbt_cwd(paths, target),
        env=dbt.dbt_env(paths, target),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
        check=False,
    )


def parsed_cases(paths: Paths, target: str) -> list[Any]:
    """``PARSING_CASES`` parsed by the project's macros on ``target`` (``dbt show``), as JSON
    gives them: timestamps and dates as ISO text."""
    columns = ", ".join(
        f"{{{{ {_macro_call(kind, text)} }}}} as c{i}"
        for i, (kind, text, _) in enumerate(PARSING_CASES)
    )
    show = ["show", "--inline", f"select {columns}", "--output", "json", "--log-format", "json"]
    result = dbt_executable(paths, show, target)
    for line in result.stdout.splitlines():
        event = json.loads(line) if line.startswith("{") else {}
        if event.get("info", {}).get("name") == "ShowNode":
            (row,) = json.loads(event["data"]["preview"])
            return [_plain(row[f"c{i}"]) for i in range(len(PARSING_CASES))]
    raise AssertionError(result.stdout[-5000:])


def _plain(value: Any) -> Any:
    """A value as JSON gave it, numbers as numbers and times to the second in ISO text."""
    if isinstance(value, str) and len(value) >= 19 and value[10] in "T ":
        return value[:10] + "T" + value[11:19]
    if isinstance(value, str):
        try:
            return float(value) if "." in value else value
        except ValueError:
            return value
    return value


def expected_parsed_cases() -> list[Any]:
    return [expected for _, _, expected in PARSING_CASES]
