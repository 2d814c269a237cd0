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
    # Not read: it orders this model after the other two Python models. Run beside one of them
    # in dbt's other thread, both were slower than one after the other (at 1 M customers the
    # parameters and the backtest took 6.3 s together against 1.7 + 2.1 s in turn): their
    # NumPy code takes turns at the interpreter lock, and each one's DuckDB reads and writes
    # want both cores.
    dbt.ref("customer_lifetime_value")
    minimum = clv_marts.whole_var(
        "clv_min_repeat_customers", dbt.config.get("clv_min_repeat_customers"), 1
    )
    return clv_marts.backtest(dbt.ref("int_clv_backtest_summary").df(), minimum)
