"""Predictive CLV: BG/NBD and Gamma-Gamma fits, closed forms and the dbt models."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, optimize, special, stats

from retention import clv, clv_marts, pipeline, targets
from retention.config import Paths
from retention.errors import UserError
from tests.conftest import Warehouse, quiet

BG_TRUE = {"r": 0.8, "alpha": 12.0, "a": 0.6, "b": 1.5}
GG_TRUE = {"p": 5.0, "q": 4.0, "gamma": 45.0}


def _standard_errors(log_likelihood, params: dict[str, float]) -> np.ndarray:
    """Standard errors of log-parameters from the observed information (finite differences of
    the analytic gradient)."""
    theta = np.log(list(params.values()))

    def grad(log_params: np.ndarray) -> np.ndarray:
        values = np.exp(log_params)
        return log_likelihood(values)[1] * values

    step = 1e-5
    hessian = np.array(
        [(grad(theta + step * e) - grad(theta - step * e)) / (2 * step) for e in np.eye(len(theta))]
    )
    return np.sqrt(np.diag(np.linalg.inv(-(hessian + hessian.T) / 2)))


@pytest.fixture(scope="module")
def bg_sample() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(20)
    return clv.simulate_bg_nbd(BG_TRUE, rng.uniform(100, 700, 20_000), rng)


def test_bg_nbd_recovers_known_parameters(bg_sample) -> None:
    """With 20,000 customers each parameter is recovered within 4 standard errors (on the log
    scale, from the observed information): a tolerance that follows the sample size."""
    x, t_x, t = bg_sample
    fit = clv.fit_bg_nbd(x, t_x, t)
    se = _standard_errors(
        lambda p: clv.bg_nbd_log_likelihood(p, x, t_x, t, gradient=True), fit.params
    )
    errors = np.log(list(fit.params.values())) - np.log(list(BG_TRUE.values()))
    assert np.all(np.abs(errors) < 4 * se), (fit.params, se)
    assert np.all(se < 0.15)  # the sample is informative: within ~15 % at one SE
    assert set(fit.params) == {"r", "alpha", "a", "b"}
    assert fit.n_customers == 20_000 and fit.gradient_norm < 1e-4


def test_gamma_gamma_recovers_known_parameters(bg_sample) -> None:
    x, _, _ = bg_sample
    rng = np.random.default_rng(21)
    spend = clv.simulate_gamma_gamma(GG_TRUE, x, rng)
    fit = clv.fit_gamma_gamma(x, np.nan_to_num(spend))
    repeat = x > 0
    se = _standard_errors(
        lambda p: clv.gamma_gamma_log_likelihood(p, x[repeat], spend[repeat], gradient=True),
        fit.params,
    )
    errors = np.log(list(fit.params.values())) - np.log(list(GG_TRUE.values()))
    assert np.all(np.abs(errors) < 4 * se), (fit.params, se)
    assert fit.n_customers == int(repeat.sum())


def test_analytic_gradients_match_finite_differences(bg_sample) -> None:
    x, t_x, t = bg_sample
    point = np.array([0.7, 10.0, 0.5, 1.2])
    error = optimize.check_grad(
        lambda p: clv.bg_nbd_log_likelihood(p, x, t_x, t),
        lambda p: clv.bg_nbd_log_likelihood(p, x, t_x, t, gradient=True)[1],
        point,
    )
    scale = np.abs(clv.bg_nbd_log_likelihood(point, x, t_x, t, gradient=True)[1]).max()
    assert error / scale < 1e-4
    spend = clv.simulate_gamma_gamma(GG_TRUE, x, np.random.default_rng(3))
    repeat = x > 0
    point = np.array([4.0, 3.0, 40.0])
    error = optimize.check_grad(
        lambda p: clv.gamma_gamma_log_likelihood(p, x[repeat], spend[repeat]),
        lambda p: clv.gamma_gamma_log_likelihood(p, x[repeat], spend[repeat], gradient=True)[1],
        point,
    )
    scale = np.abs(
        clv.gamma_gamma_log_likelihood(point, x[repeat], spend[repeat], gradient=True)[1]
    ).max()
    assert error / scale < 1e-4


def test_compressed_weighted_rows_give_the_same_fit() -> None:
    rng = np.random.default_rng(5)
    x, t_x, t = clv.simulate_bg_nbd(BG_TRUE, rng.integers(50, 400, 3_000).astype(float), rng)
    t_x = np.floor(t_x)
    (cx, ctx, ct), counts = clv.compress(x, t_x, t)
    assert len(cx) < len(x) and counts.sum() == len(x)
    weighted = clv.fit_bg_nbd(cx, ctx, ct, weights=counts)
    direct = clv.bg_nbd_log_likelihood(list(weighted.params.values()), x, t_x, t)
    assert direct == pytest.approx(weighted.log_likelihood, rel=1e-9)


def test_p_alive_closed_form() -> None:
    params = {"r": 1.0, "alpha": 1.0, "a": 1.0, "b": 1.0}
    p = clv.bg_nbd_p_alive(params, [0, 1, 1], [0, 1, 2], [2, 2, 2])
    # x = 0: alive for sure; x = 1, t_x = 1, T = 2: 1 / (1 + 1/1 * (3/2)^2) = 1 / 3.25
    # x = 1, t_x = T: 1 / (1 + 1) = 0.5
    assert p == pytest.approx([1.0, 1 / 3.25, 0.5])


def _posterior_expectation(params, horizon, x, t_x, t, grid=1500):
    """E[purchases in (T, T+h] | x, t_x, T] by integrating the model over a quantile grid of
    the priors, from the individual-level BG/NBD definitions."""
    r, alpha, a, b = (params[k] for k in clv.BG_NBD_PARAMETERS)
    u = (np.arange(grid) + 0.5) / grid
    lam = stats.gamma.ppf(u, r, scale=1 / alpha)[:, None]
    p = stats.beta.ppf(u, a, b)[None, :]
    alive = (1 - p) ** x * lam**x * np.exp(-lam * t)
    died = p * (1 - p) ** (x - 1) * lam**x * np.exp(-lam * t_x) if x > 0 else 0.0
    future = (1 - np.exp(-lam * p * horizon)) / p  # E[X(h) | lambda, p, alive]
    return float((alive * future).sum() / (alive + died).sum())


@pytest.mark.parametrize(
    ("x", "t_x", "t"), [(0, 0, 100), (3, 80, 100), (10, 250, 300), (4, 60, 300)]
)
def test_expected_purchases_match_the_model_definition(x, t_x, t) -> None:
    params = {"r": 2.0, "alpha": 30.0, "a": 1.5, "b": 4.0}
    closed = clv.bg_nbd_expected_purchases(params, 90.0, [x], [t_x], [t])[0]
    assert closed == pytest.approx(_posterior_expectation(params, 90.0, x, t_x, t), rel=5e-3)


def test_expected_purchases_of_a_new_customer() -> None:
    params = {"r": 2.0, "alpha": 30.0, "a": 1.5, "b": 4.0}
    unconditional = clv.bg_nbd_expected_purchases_new(params, 90.0)
    assert clv.bg_nbd_expected_purchases(params, 90.0, [0], [0], [0])[0] == pytest.approx(
        unconditional
    )
    assert unconditional == pytest.approx(_posterior_expectation(params, 90.0, 0, 0, 0), rel=5e-3)


def _expected_if_alive_by_quadrature(params, horizon, x, t) -> float:
    """E[purchases in (T, T+h] | alive at T, x, T] as a one-dimensional integral: given alive,
    lambda ~ Gamma(r+x, alpha+T) and p ~ Beta(a, b+x) independently; averaging
    (1 - exp(-lambda p h)) / p over lambda gives (1 - ((alpha+T)/(alpha+T+p h))^(r+x)) / p,
    integrated against the Beta density (QUADPACK's algebraic weight p^(a-1) (1-p)^(b+x-1))."""
    r, alpha, a, b = (params[k] for k in clv.BG_NBD_PARAMETERS)

    def purchases(p: float) -> float:
        if p == 0:
            return (r + x) * horizon / (alpha + t)
        return -math.expm1(-(r + x) * math.log1p(p * horizon / (alpha + t))) / p

    integral, _ = integrate.quad(purchases, 0, 1, weight="alg", wvar=(a - 1, b + x - 1), limit=200)
    return integral / math.exp(special.betaln(a, b + x))


@pytest.mark.parametrize(
    ("x", "t_x", "t", "horizon"),
    [
        (300, 360, 365, 3650),  # a purchase day nearly every day for a year, ten years ahead
        (364, 365, 365, 3650),
        (1000, 1450, 1460, 1825),
        (40, 300, 330, 365),
        (3, 80, 100, 365),
        (0, 0, 200, 365),
        (0, 0, 0, 30),
    ],
)
def test_expected_purchases_of_frequent_buyers_over_long_horizons(x, t_x, t, horizon) -> None:
    """Equation 10 as written overflows for frequent buyers over long horizons ((1-z)^(r+x)
    underflows, 2F1 overflows: inf, then nan); the transformed form is finite and exact."""
    params = {"r": 0.452830, "alpha": 8.990151, "a": 0.607642, "b": 4.642440}  # a fitted build
    expected = clv.bg_nbd_expected_purchases(params, horizon, [x], [t_x], [t])[0]
    alive = clv.bg_nbd_p_alive(params, [x], [t_x], [t])[0]
    by_quadrature = alive * _expected_if_alive_by_quadrature(params, horizon, x, t)
    assert expected == pytest.approx(by_quadrature, rel=1e-9)
    prediction = clv.predict_clv(params, GG_TRUE, [x], [t_x], [t], [50.0], horizon, 0.10)
    assert np.isfinite(prediction.predicted_clv).all()
    assert 0 < prediction.predicted_clv[0] < expected * prediction.expected_avg_order_value[0]


def test_gamma_gamma_expected_value_closed_form() -> None:
    params = {"p": 2.0, "q": 3.0, "gamma": 10.0}
    value = clv.gamma_gamma_expected_value(params, [2, 0], [5.0, np.nan])
    # 2 (10 + 2 x 5) / (2 x 2 + 3 - 1) = 40 / 6; no repeats: population mean 2 x 10 / (3 - 1)
    assert value == pytest.approx([40 / 6, 10.0])


def test_discounting() -> None:
    params = {"r": 2.0, "alpha": 30.0, "a": 1.5, "b": 4.0}
    args = ([3.0], [80.0], [100.0])
    plain = clv.bg_nbd_expected_purchases(params, 365.0, *args)
    assert clv.discounted_expected_purchases(params, *args, 365.0, 0.0) == pytest.approx(plain)
    discounted = clv.discounted_expected_purchases(params, *args, 365.0, 0.10)
    assert plain / 1.1 < discounted < plain
    prediction = clv.predict_clv(params, GG_TRUE, [3.0], [80.0], [100.0], [50.0], 365.0, 0.10)
    expected_value = clv.gamma_gamma_expected_value(GG_TRUE, [3.0], [50.0])
    assert prediction.predicted_clv == pytest.approx(discounted * expected_value)


@pytest.mark.parametrize(
    "T", [[100.0, 100.0, 100.0, 300.0, 0.0], [100.5, 100.5, 100.5, 300.0, 0.0]]
)
def test_discounting_customer_by_customer(T: list[float]) -> None:
    """The discounted purchases of many customers at once (computed if alive once per
    frequency and T, then times each customer's P(alive)) are each customer's own: the
    purchases expected in each twelfth of the horizon, discounted from its mid-point."""
    params = {"r": 2.0, "alpha": 30.0, "a": 1.5, "b": 4.0}
    x, t_x = [3.0, 3.0, 0.0, 3.0, 0.0], [80.0, 20.0, 0.0, 80.0, 0.0]
    together = clv.discounted_expected_purchases(params, x, t_x, T, 365.0, 0.10)
    for i in range(len(x)):
        one = ([x[i]], [t_x[i]], [T[i]])
        edges = np.linspace(0.0, 365.0, 13)
        cumulative = [clv.bg_nbd_expected_purchases(params, e, *one)[0] for e in edges]
        by_hand = sum(
            (cumulative[k + 1] - cumulative[k]) * 1.10 ** -((edges[k] + edges[k + 1]) / 2 / 365)
            for k in range(12)
        )
        assert together[i] == pytest.approx(by_hand, rel=1e-12)
    # the same frequency and T, a later last purchase: more likely alive, more purchases
    assert together[0] > together[1] > 0


def test_a_fit_that_cannot_converge_fails_loudly() -> None:
    # everybody keeps buying up to the last day: no evidence of dropout, b runs away
    with pytest.raises(clv.ClvFitError, match="did not converge"):
        clv.fit_bg_nbd(np.full(200, 5.0), np.full(200, 100.0), np.full(200, 100.0))
    with pytest.raises(clv.ClvFitError, match="repeat purchases"):
        clv.fit_bg_nbd(np.zeros(10), np.zeros(10), np.full(10, 30.0))
    with pytest.raises(ValueError, match="recency must be between 0 and T"):
        clv.fit_bg_nbd([1.0], [50.0], [40.0])


def test_gamma_gamma_ignores_the_missing_spend_of_customers_without_repeats() -> None:
    """The BTYD summary has no mean repeat spend (null) for customers with frequency 0: the
    fit takes the columns as they are, as fit_bg_nbd does."""
    rng = np.random.default_rng(3)
    x = rng.integers(1, 6, 300).astype(float)
    m = rng.gamma(4.0, 10.0, 300)
    with_none = clv.fit_gamma_gamma(np.r_[x, 0, 0], np.r_[m, np.nan, np.nan])
    assert with_none.params == clv.fit_gamma_gamma(x, m).params
    with pytest.raises(ValueError, match="missing or infinite values where frequency > 0"):
        clv.fit_gamma_gamma(np.r_[x, 2], np.r_[m, np.nan])


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([1.0, 1.0], "one value per row"),
        ([1.0, -1.0, 2.0], "must be >= 0"),
        ([0.0, 0.0, 0.0], "must not all be 0"),
        ([1.0, np.nan, 1.0], "missing or infinite"),
    ],
)
def test_fits_refuse_weights_that_count_no_customers(weights, message) -> None:
    with pytest.raises(ValueError, match=message):
        clv.fit_bg_nbd([1.0, 0.0, 2.0], [5.0, 0.0, 8.0], [10.0, 20.0, 30.0], weights=weights)
    with pytest.raises(ValueError, match=message):
        clv.fit_gamma_gamma([1.0, 2.0, 3.0], [5.0, 6.0, 7.0], weights=weights)


def test_a_spend_fit_stopped_by_outliers_names_them() -> None:
    """Three customers whose repeat purchases average 90,000 among ~50 take the Gamma-Gamma
    fit to its bound: the error names them against the median, and what to do."""
    rng = np.random.default_rng(6)
    n = 300
    x, t_x, t = clv.simulate_bg_nbd(BG_TRUE, np.floor(rng.uniform(100, 700, n)), rng)
    t_x = np.where(x > 0, np.minimum(np.ceil(t_x), t), 0.0)
    revenue = np.where(x > 0, x * rng.gamma(4.0, 12.0, n), 0.0)
    outliers = np.flatnonzero(x > 0)[:3]
    revenue[outliers] = x[outliers] * 90_000.0
    ids = np.array([f"C{i:04d}" for i in range(n)])
    summary = pd.DataFrame(
        {
            "customer_id": ids,
            "frequency": x,
            "recency": t_x,
            "t_days": t,
            "repeat_revenue": revenue,
            "as_of_date": pd.Timestamp("2025-06-30"),
        }
    )
    with pytest.raises(clv.ClvFitError, match="gamma_gamma fit did not converge") as raised:
        clv_marts.model_parameters(summary, 30)
    message = str(raised.value)
    listed = ", ".join(f"{customer} 90,000.00" for customer in ids[outliers])
    assert f"The largest mean repeat purchase values: {listed} (median " in message
    assert "lower max_order_amount" in message


# ---------------------------------------------------------------------------- dbt models
def test_clv_marts_do_not_depend_on_the_order_of_the_rows() -> None:
    """Engines return the summaries in any order (DuckDB's in a different one each run); the
    marts must come out the same to the last bit, so a rebuild or another engine agrees."""
    import pandas as pd

    from retention import clv_marts

    rng = np.random.default_rng(7)
    n = 6_000
    x, t_x, t = clv.simulate_bg_nbd(BG_TRUE, rng.integers(200, 700, n).astype(float), rng)
    spend = clv.simulate_gamma_gamma(GG_TRUE, x, rng)
    summary = pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(n)],
            "frequency": x.astype(int),
            "recency": np.floor(t_x).astype(int),
            "t_days": t.astype(int),
            "repeat_revenue": np.where(x > 0, np.round(x * np.nan_to_num(spend), 2), 0.0),
            "as_of_date": pd.Timestamp("2025-06-30"),
        }
    )
    holdout = summary[["customer_id", "frequency", "recency", "t_days"]].assign(
        actual_purchases=rng.poisson(0.3 + x / 4), holdout_days=180
    )
    holdout["calibration_end"] = pd.Timestamp("2025-01-01")

    def marts(order: np.ndarray) -> tuple:
        rows, checks = summary.iloc[order], holdout.iloc[order]
        parameters = clv_marts.model_parameters(rows, 10)
        values = clv_marts.lifetime_values(rows, parameters, 365, 0.1)
        values = values.sort_values("customer_id", ignore_index=True)
        return parameters, values, clv_marts.backtest(checks, 10)

    first = marts(np.arange(n))
    assert (first[0]["status"] == "converged").all() and len(first[2]) == 9
    for _ in range(2):
        for left, right in zip(first, marts(rng.permutation(n)), strict=True):
            pd.testing.assert_frame_equal(left, right, check_exact=True)


def test_clv_marts_build_on_generated_data(generated_build: Warehouse) -> None:
    params = dict(
        generated_build.query(
            "select model || '.' || parameter, value from marts.clv_model_parameters"
        )
    )
    assert set(params) == {
        "bg_nbd.r",
        "bg_nbd.alpha",
        "bg_nbd.a",
        "bg_nbd.b",
        "gamma_gamma.p",
        "gamma_gamma.q",
        "gamma_gamma.gamma",
    }
    assert all(v > 0 for v in params.values())
    units = generated_build.query(
        "select distinct time_unit, status from marts.clv_model_parameters"
    )
    assert units == [("day", "converged")]
    # the Gamma-Gamma story of the generator is recovered from the warehouse
    assert params["gamma_gamma.p"] == pytest.approx(5.0, rel=0.25)
    n, n_customers = generated_build.query("""
        select count(*), (select count(*) from marts.customers where has_purchased)
        from marts.customer_lifetime_value
    """)[0]
    assert n == n_customers
    bounds = generated_build.query("""
        select min(p_alive), max(p_alive), min(predicted_clv),
               count(*) filter (predicted_clv is null)
        from marts.customers where has_purchased
    """)[0]
    assert 0 <= bounds[0] < bounds[1] <= 1 and bounds[2] >= 0 and bounds[3] == 0
    total = generated_build.query(
        "select actual_purchases, predicted_purchases from marts.clv_backtest "
        "where frequency_bucket = 'total'"
    )[0]
    assert total[0] > 0 and abs(total[1] - total[0]) / total[0] < 0.5


def test_as_of_date_changes_the_fit(generated_build: Warehouse, tmp_path: Path) -> None:
    shutil.copytree(generated_build.paths.data_dir, tmp_path / "copy")
    earlier = Warehouse(Paths(tmp_path / "copy"))
    before = dict(
        generated_build.query(
            "select parameter, value from marts.clv_model_parameters where model = 'bg_nbd'"
        )
    )
    pipeline.build_step(
        earlier.paths, quiet, as_of="2024-09-30", full_refresh=True, unit_tests=False
    )
    after = dict(
        earlier.query(
            "select parameter, value from marts.clv_model_parameters where model = 'bg_nbd'"
        )
    )
    assert earlier.scalar(
        "select distinct as_of_date::varchar from marts.clv_model_parameters"
    ) == ("2024-09-30")
    assert not any(math.isclose(before[k], after[k], rel_tol=1e-6) for k in before)


@pytest.mark.parametrize(
    ("dbt_vars", "expected"),
    [
        (
            {"clv_horizon_days": "365.5"},
            "var clv_horizon_days must be a whole number of at least 1",
        ),
        (
            {"clv_annual_discount_rate": "10%"},
            "clv_annual_discount_rate must be a number from 0 to 1",
        ),
        ({"clv_min_repeat_customers": "x"}, "var clv_min_repeat_customers must be a whole number"),
    ],
)
def test_clv_vars_on_other_engines_are_checked_as_on_duckdb(dbt_vars, expected) -> None:
    with pytest.raises(UserError, match=expected):
        targets.clv_settings(dbt_vars)
    assert targets.clv_settings({"clv_annual_discount_rate": "0"})["clv_annual_discount_rate"] == 0
