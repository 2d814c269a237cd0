"""Great Expectations suites for the retention warehouse, as code.

One suite per validated table. `retention validate` loads this module, builds the suites with
the run's parameters (as_of_date, row counts of the previous published copy) and validates each
table as a DataFrame read from DuckDB through Arrow, selecting only the columns the suite uses.

Add an expectation here and it runs on the next `retention validate`; the tests in
tests/test_validation.py show how a suite is expected to fail.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import great_expectations.expectations as gxe

LIFECYCLE_STAGES = ["new", "active", "at_risk", "churned", "reactivated"]
SEGMENT_TYPES = ["all", "acquisition_channel", "region"]
ORDER_STATUSES = ["completed", "cancelled", "refunded", "pending"]
REJECT_REASONS = [
    "malformed_row",
    "invalid_encoding",
    "missing_id",
    "unparseable_timestamp",
    "future_timestamp",
    "timestamp_before_min_date",
    "unknown_status",
    "unparseable_amount",
    "negative_amount",
    "unknown_currency",
    "amount_out_of_range",
    "unknown_customer",
    "unparseable_score",
    "score_out_of_range",
    "unknown_spend_type",
    "conflicting_rows_in_file",
]


@dataclass(frozen=True)
class SuiteParameters:
    as_of_date: date
    project_dir: Path
    #: row counts of the previously published copy, by table ("marts.customers": 1234)
    previous_row_counts: dict[str, int] = field(default_factory=dict)
    #: a mart may shrink by at most this share against the previous published copy
    max_shrink: float = 0.5
    #: the latest order must be at most this many days before as_of_date
    freshness_days: int = 3


@dataclass
class TableSuite:
    table: str
    expectations: list
    #: columns the expectations read that are not named in their `column` arguments
    extra_columns: list[str] = field(default_factory=list)


#: The tables of millions of rows whose key uniqueness is left to dbt's test on the same rows.
#: GX's pandas uniqueness hashes every key in the frame: on these four tables it was 13.5 s of
#: the 23 s validation took at 1 M customers, for a check the build made minutes before in SQL
#: on the same relation (customer_lifecycle_monthly is a projection of int_customer_months),
#: and a failed dbt test fails the build, which blocks publishing. Smaller tables keep their
#: key check in GX too: there it costs milliseconds. tests/test_validation.py checks that each
#: of these dbt tests exists.
LARGE_KEYS_LEFT_TO_DBT = {
    "raw.orders": ("source:shop.orders", ("_source_file", "_source_row", "_loaded_at")),
    "staging.stg_shop__orders": ("stg_shop__orders", ("order_id",)),
    "marts.orders": ("orders", ("order_id",)),
    "marts.customer_lifecycle_monthly": ("int_customer_months", ("customer_id", "month")),
}


def _unique(*columns: str):
    if len(columns) == 1:
        return gxe.ExpectColumnValuesToBeUnique(column=columns[0])
    return gxe.ExpectCompoundColumnsToBeUnique(column_list=list(columns))


def _not_null(column: str):
    return gxe.ExpectColumnValuesToNotBeNull(column=column)


def _between(column: str, low=None, high=None, **kwargs):
    return gxe.ExpectColumnValuesToBeBetween(column=column, min_value=low, max_value=high, **kwargs)


def _in_set(column: str, values: list):
    return gxe.ExpectColumnValuesToBeInSet(column=column, value_set=values)


def _rfm_segments(project_dir: Path) -> list[str]:
    with (project_dir / "seeds" / "rfm_segments.csv").open() as handle:
        return sorted({row["rfm_segment"] for row in csv.DictReader(handle)})


def build_suites(params: SuiteParameters) -> list[TableSuite]:
    """Every suite, with the run's parameters filled in."""
    rates = ["retained_from_start_rate", "churn_rate", "repeat_purchase_rate"]
    suites = [
        # ---------------------------------------------------------------- raw inputs
        TableSuite("raw.customers", [_not_null("_source_file"), _not_null("_source_row"),
                                     _unique("_source_file", "_source_row", "_loaded_at"),
                                     gxe.ExpectTableRowCountToBeBetween(min_value=1)]),
        TableSuite("raw.orders", [_not_null("_source_file"), _not_null("_source_row"),
                                  gxe.ExpectTableRowCountToBeBetween(min_value=1)]),
        # ------------------------------------------------------------------- staging
        TableSuite("staging.stg_shop__customers", [_unique("customer_id"),
                                                   _not_null("customer_id")]),
        TableSuite("staging.stg_shop__orders", [
            _not_null("order_id"), _not_null("customer_id"),
            _in_set("status", ORDER_STATUSES), _between("amount", 0), _not_null("amount"),
        ]),
        TableSuite("quarantine.orders", [_not_null("reject_reason"),
                                         _in_set("reject_reason", REJECT_REASONS)]),
        TableSuite("quarantine.customers", [_not_null("reject_reason"),
                                            _in_set("reject_reason", REJECT_REASONS)]),
        # --------------------------------------------------------------------- marts
        TableSuite("marts.customers", [
            _unique("customer_id"), _not_null("customer_id"),
            _between("purchase_count", 0), _between("total_revenue", 0),
            _between("avg_order_value", 0), _between("p_alive", 0, 1),
            _between("predicted_clv", 0), _in_set("lifecycle_stage", LIFECYCLE_STAGES),
            _in_set("rfm_segment", _rfm_segments(params.project_dir)),
            *(_between(c, 1, 5) for c in ("recency_score", "frequency_score", "monetary_score")),
        ]),
        TableSuite("marts.orders", [
            _not_null("order_id"), _not_null("customer_id"),
            _in_set("status", ORDER_STATUSES), _between("amount", 0), _between("revenue", 0),
            gxe.ExpectColumnMaxToBeBetween(
                column="ordered_date",
                min_value=params.as_of_date - timedelta(days=params.freshness_days),
                max_value=params.as_of_date,
            ),
        ]),
        TableSuite("marts.retention_monthly", [
            _unique("month", "segment_type", "segment_value"),
            _in_set("segment_type", SEGMENT_TYPES),
            _between("customer_retention_rate", 0),
            *(_between(c, 0, 1) for c in rates),
            _between("customers_start", 0), _between("customers_end", 0),
            _between("revenue", 0),
        ]),
        TableSuite(
            "marts.customer_cohorts",
            [
                _unique("cohort_month", "period_number", "segment_type", "segment_value"),
                _in_set("segment_type", SEGMENT_TYPES),
                _between("retention_rate", 0, 1),
                # distribution: every cohort starts with all its customers active
                _between("retention_rate", 1, 1, row_condition="period_number == 0",
                         condition_parser="pandas"),
                _between("cohort_size", 1), _between("revenue", 0),
            ],
            extra_columns=["period_number"],
        ),
        TableSuite("marts.customer_lifecycle_monthly", [
            _in_set("lifecycle_stage", LIFECYCLE_STAGES),
        ]),
        TableSuite("marts.winback_candidates", [
            _unique("customer_id"), _unique("winback_rank"), _between("p_alive", 0, 1),
            _between("days_since_last_purchase", 0),
        ]),
        TableSuite("marts.clv_summary", [
            _unique("segment_type", "segment_value"), _between("historical_clv", 0),
            _between("avg_order_value", 0),
        ]),
        TableSuite("marts.customer_lifetime_value", [
            _unique("customer_id"), _between("p_alive", 0, 1), _between("predicted_clv", 0),
            _between("expected_purchases", 0), _between("expected_avg_order_value", 0),
        ]),
        TableSuite("marts.clv_model_parameters", [
            _unique("model", "parameter"), _between("value", 0, strict_min=True),
            _in_set("time_unit", ["day", "week"]),
        ]),
        TableSuite("marts.clv_backtest", [_unique("frequency_bucket")]),
        TableSuite("marts.channel_economics", [
            _unique("month", "acquisition_channel"), _between("acquisition_cost_per_customer", 0),
            _between("retention_cost_per_active_customer", 0),
        ]),
        TableSuite("marts.nps_monthly", [
            _unique("month", "segment_type", "segment_value"), _between("nps", -100, 100),
        ]),
    ]
    for suite in suites:
        previous = params.previous_row_counts.get(suite.table)
        if previous:
            suite.expectations.append(
                gxe.ExpectTableRowCountToBeBetween(
                    min_value=int(previous * (1 - params.max_shrink)),
                    meta={
                        "why": f"the published copy has {previous} rows and a mart may lose "
                        f"at most {params.max_shrink:.0%} of its rows from one publish to the "
                        "next",
                        "what_to_do": "if the change is intended (a var or seed changed), "
                        "`retention run --accept-shrink` (or `retention validate "
                        "--accept-shrink`, then `retention publish`)",
                    },
                )
            )
    return suites
