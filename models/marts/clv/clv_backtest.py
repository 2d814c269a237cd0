"""Backtest of the purchase model: refit BG/NBD with the last clv_holdout_days held out and
compare the predicted repeat purchases in the holdout with the actual ones.

One row per calibration frequency (0 .. 6 and '7+', the classic BTYD validation table) and a
'total' row, with per-customer error metrics over the customers of the row.

dbt Python models run on DuckDB only; on the other targets the pipeline writes this table with
the same code (retention.targets.run_clv).
"""

from retention import clv_marts


def model(dbt, session):
    dbt.config(materialized="table")
    minimum = clv_marts.whole_var(
        "clv_min_repeat_customers", dbt.config.get("clv_min_repeat_customers"), 1
    )
    return clv_marts.backtest(dbt.ref("int_clv_backtest_summary").df(), minimum)
