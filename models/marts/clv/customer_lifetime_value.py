"""Predictive CLV per customer: P(alive), expected purchases and value, discounted CLV.

Uses the parameters of clv_model_parameters (fitted once) on each customer's BTYD summary.
Customers without repeat purchases get the Gamma-Gamma population mean spend.
"""

import numpy as np
import pandas as pd

from retention import clv


def model(dbt, session):
    dbt.config(materialized="table")
    horizon = float(dbt.config.get("clv_horizon_days"))
    discount = float(dbt.config.get("clv_annual_discount_rate"))
    summary = dbt.ref("int_customer_btyd_summary").df()
    parameters = dbt.ref("clv_model_parameters").df()
    frame = summary[["customer_id", "frequency", "recency", "t_days", "monetary_value"]].copy()
    frame = frame.rename(columns={"t_days": "T"})
    fitted = parameters[parameters["status"] == "converged"]
    if len(fitted) == 0 or len(frame) == 0:
        for column in (
            "p_alive",
            "expected_purchases",
            "expected_avg_order_value",
            "predicted_clv",
        ):
            frame[column] = np.nan
    else:
        params = {(row.model, row.parameter): float(row.value) for row in fitted.itertuples()}
        prediction = clv.predict_clv(
            {k: params[("bg_nbd", k)] for k in clv.BG_NBD_PARAMETERS},
            {k: params[("gamma_gamma", k)] for k in clv.GAMMA_GAMMA_PARAMETERS},
            frame["frequency"].to_numpy(float),
            frame["recency"].to_numpy(float),
            frame["T"].to_numpy(float),
            pd.to_numeric(frame["monetary_value"], errors="coerce").to_numpy(float),
            horizon,
            discount,
        )
        frame["p_alive"] = prediction.p_alive
        frame["expected_purchases"] = prediction.expected_purchases
        frame["expected_avg_order_value"] = prediction.expected_avg_order_value
        frame["predicted_clv"] = prediction.predicted_clv
    frame["monetary_value"] = pd.to_numeric(frame["monetary_value"], errors="coerce")
    frame["frequency"] = frame["frequency"].astype("int64")
    frame["recency"] = frame["recency"].astype("int64")
    frame["T"] = frame["T"].astype("int64")
    frame["horizon_days"] = int(horizon)
    return frame.rename(columns={"T": "t_days"})
