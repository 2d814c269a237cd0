"""Backtest of the purchase model: refit BG/NBD with the last clv_holdout_days held out and
compare the predicted repeat purchases in the holdout with the actual ones.

One row per calibration frequency (0 .. 6 and '7+', the classic BTYD validation table) and a
'total' row, with per-customer error metrics over the customers of the row.
"""

import numpy as np
import pandas as pd

from retention import clv


def model(dbt, session):
    dbt.config(materialized="table")
    minimum = int(dbt.config.get("clv_min_repeat_customers"))
    # a fixed row order keeps the floating-point sums, and so the table, identical run to run
    data = dbt.ref("int_clv_backtest_summary").df().sort_values("customer_id", ignore_index=True)
    columns = [
        "frequency_bucket",
        "customers",
        "actual_purchases",
        "predicted_purchases",
        "actual_per_customer",
        "predicted_per_customer",
        "mean_absolute_error",
        "root_mean_squared_error",
        "total_error_pct",
        "calibration_end",
        "holdout_days",
        "status",
    ]
    frequency = data["frequency"].to_numpy(float)
    if int((frequency > 0).sum()) < minimum:
        return pd.DataFrame(
            [
                (
                    "total",
                    len(data),
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    "insufficient_data",
                )
            ],
            columns=columns,
        )
    holdout = float(data["holdout_days"].iloc[0])
    fit = clv.fit_bg_nbd(frequency, data["recency"].to_numpy(float), data["t_days"].to_numpy(float))
    data["predicted"] = clv.bg_nbd_expected_purchases(
        fit.params,
        holdout,
        frequency,
        data["recency"].to_numpy(float),
        data["t_days"].to_numpy(float),
    )
    data["bucket"] = np.where(frequency >= 7, "7+", frequency.astype(int).astype(str))

    def summarise(name, part):
        error = part["predicted"] - part["actual_purchases"]
        actual, predicted = float(part["actual_purchases"].sum()), float(part["predicted"].sum())
        return (
            name,
            len(part),
            actual,
            predicted,
            actual / len(part),
            predicted / len(part),
            float(error.abs().mean()),
            float(np.sqrt((error**2).mean())),
            100.0 * (predicted - actual) / actual if actual else None,
            part["calibration_end"].iloc[0],
            int(holdout),
            "converged",
        )

    rows = [summarise(bucket, part) for bucket, part in data.groupby("bucket", sort=True)]
    rows.append(summarise("total", data))
    frame = pd.DataFrame(rows, columns=columns)
    frame["calibration_end"] = pd.to_datetime(frame["calibration_end"]).dt.date
    return frame
