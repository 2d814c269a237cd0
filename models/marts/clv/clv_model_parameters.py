"""Fitted BG/NBD and Gamma-Gamma parameters, one row per (model, parameter).

The fit uses every customer with a purchase up to as_of_date (int_customer_btyd_summary) and
the same functions as the Python API (retention.clv, through retention.clv_marts). A fit that
does not converge fails the build. With fewer than clv_min_repeat_customers repeat buyers there
is nothing to fit: the rows are written with status 'insufficient_data' and null values, and
predictions downstream are null.

dbt Python models run on DuckDB only; on the other targets the pipeline writes this table with
the same code (retention.targets.run_clv).
"""

from retention import clv_marts


def model(dbt, session):
    dbt.config(materialized="table")
    minimum = clv_marts.whole_var(
        "clv_min_repeat_customers", dbt.config.get("clv_min_repeat_customers"), 1
    )
    return clv_marts.model_parameters(dbt.ref("int_customer_btyd_summary").df(), minimum)
