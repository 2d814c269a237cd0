"""Predictive CLV per customer: P(alive), expected purchases and value, discounted CLV.

Uses the parameters of clv_model_parameters (fitted once) on each customer's BTYD summary.
Customers without repeat purchases get the Gamma-Gamma population mean spend.

dbt Python models run on DuckDB only; on the other targets the pipeline writes this table with
the same code (retention.targets.run_clv).
"""

from retention import clv_marts


def model(dbt, session):
    dbt.config(materialized="table")
    return clv_marts.lifetime_values(
        dbt.ref("int_customer_btyd_summary").df(),
        dbt.ref("clv_model_parameters").df(),
        horizon_days=clv_marts.whole_var("clv_horizon_days", dbt.config.get("clv_horizon_days"), 1),
        annual_discount_rate=clv_marts.rate_var(
            "clv_annual_discount_rate", dbt.config.get("clv_annual_discount_rate")
        ),
    )
