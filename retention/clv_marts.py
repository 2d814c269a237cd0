"""The three predictive-CLV marts as DataFrames, from the BTYD summaries computed in SQL.

One implementation for every engine: the dbt Python models (DuckDB) are thin wrappers around
these functions, and on targets without dbt Python models (PostgreSQL, Spark) the pipeline calls
them on the summaries read from the warehouse (``retention.targets.run_clv``).

- ``model_parameters``: BG/NBD and Gamma-Gamma fitted on ``int_customer_btyd_summary``;
- ``lifetime_values``: P(alive), expected purchases and value, discounted CLV per customer;
- ``backtest``: BG/NBD refitted on ``int_clv_backtest_summary`` against the holdout.

The marts do not depend on the order in which an engine returns the rows: the fits sum over
rows in a fixed order of their own (``retention.clv.compress``), the predictions are per
customer, and the backtest's sums are exact (``math.fsum``). (Sorting 1 M customer ids first
took up to a second per model, three times a day.)
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from retention import clv


def whole_var(name: str, value: Any, minimum: int) -> int:
    """A dbt var that must be a whole number of at least ``minimum``; ValueError names it."""
    text = str(value).strip()
    if not re.fullmatch(r"[0-9]+", text) or int(text) < minimum:
        raise ValueError(f"var {name} must be a whole number of at least {minimum}, got {text!r}")
    return int(text)


def rate_var(name: str, value: Any) -> float:
    """A dbt var that must be a yearly rate from 0 to 1 (0.10 is 10 %); ValueError names it."""
    text = str(value).strip()
    try:
        rate = float(text)
    except ValueError:
        rate = math.nan
    if not 0 <= rate <= 1:
        raise ValueError(f"var {name} must be a number from 0 to 1 (0.10 is 10 %), got {text!r}")
    return rate


#: Column types of the marts (the DuckDB Python models produce exactly these).
SCHEMAS: dict[str, pa.Schema] = {
    "clv_model_parameters": pa.schema(
        [
            ("model", pa.string()),
            ("parameter", pa.string()),
            ("value", pa.float64()),
            ("time_unit", pa.string()),
            ("as_of_date", pa.date32()),
            ("n_customers", pa.int64()),
            ("log_likelihood", pa.float64()),
            ("iterations", pa.int64()),
            ("status", pa.string()),
        ]
    ),
    "customer_lifetime_value": pa.schema(
        [
            ("customer_id", pa.string()),
            ("frequency", pa.int64()),
            ("recency", pa.int64()),
            ("t_days", pa.int64()),
            ("monetary_value", pa.float64()),
            ("p_alive", pa.float64()),
            ("expected_purchases", pa.float64()),
            ("expected_avg_order_value", pa.float64()),
            ("predicted_clv", pa.float64()),
            ("horizon_days", pa.int64()),
        ]
    ),
    "clv_backtest": pa.schema(
        [
            ("frequency_bucket", pa.string()),
            ("customers", pa.int64()),
            ("actual_purchases", pa.float64()),
            ("predicted_purchases", pa.float64()),
            ("actual_per_customer", pa.float64()),
            ("predicted_per_customer", pa.float64()),
            ("mean_absolute_error", pa.float64()),
            ("root_mean_squared_error", pa.float64()),
            ("total_error_pct", pa.float64()),
            ("calibration_end", pa.date32()),
            ("holdout_days", pa.int64()),
            ("status", pa.string()),
        ]
    ),
}


def _monetary_value(summary: pd.DataFrame) -> pd.Series:
    """Mean revenue of the repeat purchase days, NaN without repeats.

    Computed here from the exact ``repeat_revenue`` rather than read from ``monetary_value``:
    engines round a decimal quotient to a double differently in the last bit, and the fits
    would then differ too.
    """
    frequency = summary["frequency"].astype("float64")
    revenue = pd.to_numeric(summary["repeat_revenue"], errors="coerce").astype("float64")
    return (revenue / frequency).where(frequency > 0)


def _as_date(value: object):
    return None if value is None or pd.isna(value) else pd.Timestamp(value).date()


def _largest_spend(
    summary: pd.DataFrame, monetary: pd.Series, positive: np.ndarray, shown: int = 3
) -> str:
    """The customers with the largest mean repeat purchase values, against the median: what
    to look at when the Gamma-Gamma fit does not converge (a few outliers can stop it)."""
    values = pd.Series(
        monetary.to_numpy()[positive], index=summary["customer_id"].to_numpy()[positive]
    )
    largest = ", ".join(
        f"{customer} {value:,.2f}" for customer, value in values.nlargest(shown).items()
    )
    return (
        f"The largest mean repeat purchase values: {largest} (median {values.median():,.2f}); a "
        "few outliers can stop the Gamma-Gamma fit: check those customers' orders (or "
        "quarantine such amounts with a lower max_order_amount)."
    )


def model_parameters(summary: pd.DataFrame, min_repeat_customers: int) -> pd.DataFrame:
    """Fitted BG/NBD and Gamma-Gamma parameters, one row per (model, parameter).

    ``summary`` is ``int_customer_btyd_summary``. With fewer than ``min_repeat_customers``
    repeat buyers nothing is fitted: the rows say ``insufficient_data`` and hold nulls.
    A fit that does not converge raises ``clv.ClvFitError``.
    """
    frequency = summary["frequency"].to_numpy(float)
    recency = summary["recency"].to_numpy(float)
    t_days = summary["t_days"].to_numpy(float)
    monetary = _monetary_value(summary)
    as_of = _as_date(summary["as_of_date"].iloc[0]) if len(summary) else None
    repeaters = int((frequency > 0).sum())

    rows = []
    if repeaters < min_repeat_customers:
        for model_name, names in (
            ("bg_nbd", clv.BG_NBD_PARAMETERS),
            ("gamma_gamma", clv.GAMMA_GAMMA_PARAMETERS),
        ):
            for name in names:
                rows.append((model_name, name, None, None, 0, None, "insufficient_data"))
    else:
        bg = clv.fit_bg_nbd(frequency, recency, t_days)
        positive = (frequency > 0) & (monetary.fillna(0).to_numpy() > 0)
        try:
            gg = clv.fit_gamma_gamma(frequency[positive], monetary.to_numpy()[positive])
        except clv.ClvFitError as exc:
            raise clv.ClvFitError(f"{exc} {_largest_spend(summary, monetary, positive)}") from None
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
    frame["as_of_date"] = as_of
    frame["value"] = frame["value"].astype("float64")
    frame["log_likelihood"] = frame["log_likelihood"].astype("float64")
    frame["n_customers"] = frame["n_customers"].astype("int64")
    frame["iterations"] = frame["iterations"].astype("Int64")
    return frame[SCHEMAS["clv_model_parameters"].names]


def lifetime_values(
    summary: pd.DataFrame,
    parameters: pd.DataFrame,
    horizon_days: float,
    annual_discount_rate: float,
) -> pd.DataFrame:
    """P(alive), expected purchases and order value, and discounted CLV per customer.

    Applies the fitted ``parameters`` (``model_parameters``) to every customer of the BTYD
    ``summary`` without refitting; customers without repeat purchases get the Gamma-Gamma
    population mean spend. Without converged parameters the predictions are null.
    """
    frame = summary[["customer_id", "frequency", "recency", "t_days"]].copy()
    frame["monetary_value"] = _monetary_value(summary)
    fitted = parameters[parameters["status"] == "converged"]
    predictions = ("p_alive", "expected_purchases", "expected_avg_order_value", "predicted_clv")
    if len(fitted) == 0 or len(frame) == 0:
        for column in predictions:
            frame[column] = np.nan
    else:
        params = {(row.model, row.parameter): float(row.value) for row in fitted.itertuples()}
        prediction = clv.predict_clv(
            {k: params[("bg_nbd", k)] for k in clv.BG_NBD_PARAMETERS},
            {k: params[("gamma_gamma", k)] for k in clv.GAMMA_GAMMA_PARAMETERS},
            frame["frequency"].to_numpy(float),
            frame["recency"].to_numpy(float),
            frame["t_days"].to_numpy(float),
            frame["monetary_value"].to_numpy(float),
            horizon_days,
            annual_discount_rate,
        )
        for column in predictions:
            frame[column] = getattr(prediction, column)
    for column in ("frequency", "recency", "t_days"):
        frame[column] = frame[column].astype("int64")
    frame["horizon_days"] = int(horizon_days)
    return frame[SCHEMAS["customer_lifetime_value"].names]


def backtest(data: pd.DataFrame, min_repeat_customers: int) -> pd.DataFrame:
    """Predicted vs actual repeat purchase days in the holdout, per calibration frequency.

    ``data`` is ``int_clv_backtest_summary``. One row per frequency bucket (0 .. 6, '7+') and a
    'total' row; a single 'total' row with status ``insufficient_data`` when there are fewer
    than ``min_repeat_customers`` repeat buyers in the calibration period.
    """
    columns = SCHEMAS["clv_backtest"].names
    frequency = data["frequency"].to_numpy(float)
    if int((frequency > 0).sum()) < min_repeat_customers:
        row = ("total", len(data), *([None] * 9), "insufficient_data")
        return pd.DataFrame([row], columns=columns)
    holdout = float(data["holdout_days"].iloc[0])
    recency = data["recency"].to_numpy(float)
    t_days = data["t_days"].to_numpy(float)
    fit = clv.fit_bg_nbd(frequency, recency, t_days)
    data = data.assign(
        predicted=clv.bg_nbd_expected_purchases(fit.params, holdout, frequency, recency, t_days),
        actual=data["actual_purchases"].astype("float64"),
        bucket=np.where(frequency >= 7, "7+", frequency.astype(int).astype(str)),
    )

    def summarise(name: str, part: pd.DataFrame) -> tuple:
        # exact sums: the same whatever order the rows came in
        actual_values = part["actual"].to_numpy()
        predicted_values = part["predicted"].to_numpy()
        error = predicted_values - actual_values
        actual, predicted = math.fsum(actual_values), math.fsum(predicted_values)
        return (
            name,
            len(part),
            actual,
            predicted,
            actual / len(part),
            predicted / len(part),
            math.fsum(np.abs(error)) / len(part),
            math.sqrt(math.fsum(error**2) / len(part)),
            100.0 * (predicted - actual) / actual if actual else None,
            _as_date(part["calibration_end"].iloc[0]),
            int(holdout),
            "converged",
        )

    rows = [summarise(bucket, part) for bucket, part in data.groupby("bucket", sort=True)]
    rows.append(summarise("total", data))
    return pd.DataFrame(rows, columns=columns)


def to_arrow(name: str, frame: pd.DataFrame) -> pa.Table:
    """A mart frame as an Arrow table with the mart's column types."""
    return pa.Table.from_pandas(frame, schema=SCHEMAS[name], preserve_index=False)
