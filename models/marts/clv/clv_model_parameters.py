"""Fitted BG/NBD and Gamma-Gamma parameters, one row per (model, parameter).

The fit uses every customer with a purchase up to as_of_date (int_customer_btyd_summary) and
the same functions as the Python API (retention.clv). A fit that does not converge fails the
build. With fewer than clv_min_repeat_customers repeat buyers there is nothing to fit: the rows
are written with status 'insufficient_data' and null values, and predictions downstream are null.
"""

import pandas as pd

from retention import clv


def model(dbt, session):
    dbt.config(materialized="table")
    minimum = int(dbt.config.get("clv_min_repeat_customers"))
    summary = dbt.ref("int_customer_btyd_summary").fetchnumpy()
    frequency = summary["frequency"].astype(float)
    recency = summary["recency"].astype(float)
    t_days = summary["t_days"].astype(float)
    monetary = pd.to_numeric(pd.Series(summary["monetary_value"]), errors="coerce")
    as_of = summary["as_of_date"][0] if len(frequency) else None
    repeaters = int((frequency > 0).sum())

    rows = []
    if repeaters < minimum:
        for model_name, names in (
            ("bg_nbd", clv.BG_NBD_PARAMETERS),
            ("gamma_gamma", clv.GAMMA_GAMMA_PARAMETERS),
        ):
            for name in names:
                rows.append((model_name, name, None, None, 0, None, "insufficient_data"))
    else:
        bg = clv.fit_bg_nbd(frequency, recency, t_days)
        positive = (frequency > 0) & (monetary.fillna(0).to_numpy() > 0)
        gg = clv.fit_gamma_gamma(frequency[positive], monetary.to_numpy()[positive])
        for fit in (bg, gg):
            for name, value in fit.params.items():
                rows.append(
                    (
                        fit.model,
                        name,
                        value,
                        fit.log_likelihood,
                        fit.n_customers,
                        fit.iterations,
                        "converged",
                    )
                )
    frame = pd.DataFrame(
        rows,
        columns=[
            "model",
            "parameter",
            "value",
            "log_likelihood",
            "n_customers",
            "iterations",
            "status",
        ],
    )
    frame["time_unit"] = "day"
    frame["as_of_date"] = pd.to_datetime(as_of).date() if as_of is not None else None
    frame["value"] = frame["value"].astype("float64")
    frame["log_likelihood"] = frame["log_likelihood"].astype("float64")
    frame["iterations"] = frame["iterations"].astype("Int64")
    return frame[
        [
            "model",
            "parameter",
            "value",
            "time_unit",
            "as_of_date",
            "n_customers",
            "log_likelihood",
            "iterations",
            "status",
        ]
    ]
