"""Predictive customer lifetime value: BG/NBD and Gamma-Gamma, fitted by maximum likelihood.

Conventions follow the BTYD literature (Fader, Hardie & Lee 2005):

* purchases are counted per day; ``frequency`` is the number of repeat purchase days,
  ``recency`` the customer's age (days since the first purchase) at the last purchase and ``T``
  the age at the end of the observation period;
* Gamma-Gamma is fitted on the mean value of the repeat purchases of customers with
  ``frequency > 0``.

Everything is vectorised. Customers with identical ``(frequency, recency, T)`` are compressed into
one weighted row before fitting, so a million customers fit in seconds. Log-likelihoods are
computed in log space with ``scipy.special``; gradients are analytic; parameters are optimised
on the log scale so they stay positive. A fit that does not converge raises ``ClvFitError``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import optimize, special

BG_NBD_PARAMETERS = ("r", "alpha", "a", "b")
GAMMA_GAMMA_PARAMETERS = ("p", "q", "gamma")
_LOG_BOUND = 15.0  # parameters are searched in [e^-15, e^15]


class ClvFitError(RuntimeError):
    """The maximum-likelihood fit did not converge; no parameters are returned."""


@dataclass(frozen=True)
class FitResult:
    """Fitted parameters by name, with the evidence that the fit converged."""

    model: str
    params: dict[str, float]
    log_likelihood: float
    n_customers: int
    n_rows: int
    iterations: int
    gradient_norm: float
    converged: bool = True
    extra: dict[str, float] = field(default_factory=dict)

    def __getitem__(self, name: str) -> float:
        return self.params[name]


def _as_float(values: ArrayLike, name: str) -> NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} has missing or infinite values")
    return array


def _unique_rows(
    stacked: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.intp], NDArray[np.int64]]:
    """Unique rows of a 2-D array, each row's index into them, and their counts.

    Whole, non-negative numbers below 2^20 (days, counts) in at most three columns are packed
    into one int64 key, which np.unique sorts an order of magnitude faster than rows.
    """
    whole = np.all(stacked == np.round(stacked)) and stacked.min() >= 0
    if whole and stacked.max() < 2**20 and stacked.shape[1] <= 3:
        ints = stacked.astype(np.int64)
        key = np.zeros(len(ints), dtype=np.int64)
        for i in range(ints.shape[1]):
            key = (key << 20) | ints[:, i]
        _, first, inverse, counts = np.unique(
            key, return_index=True, return_inverse=True, return_counts=True
        )
        return stacked[first], inverse.reshape(-1), counts
    unique, inverse, counts = np.unique(stacked, axis=0, return_inverse=True, return_counts=True)
    return unique, inverse.reshape(-1), counts


def compress(*columns: NDArray[np.float64]) -> tuple[list[NDArray[np.float64]], NDArray[np.int64]]:
    """Unique rows of the stacked columns and how often each occurs."""
    unique, _, counts = _unique_rows(np.column_stack(columns))
    return [unique[:, i] for i in range(unique.shape[1])], counts


def _check_bg_nbd_data(frequency, recency, T):
    x = _as_float(frequency, "frequency")
    t_x = _as_float(recency, "recency")
    t = _as_float(T, "T")
    if not len(x) == len(t_x) == len(t):
        raise ValueError("frequency, recency and T must have the same length")
    if len(x) == 0:
        raise ValueError("no customers to fit")
    if np.any(x < 0) or np.any(x != np.round(x)):
        raise ValueError("frequency must be whole numbers >= 0")
    if np.any(t_x < 0) or np.any(t_x > t):
        raise ValueError("recency must be between 0 and T")
    if np.any((x == 0) & (t_x != 0)):
        raise ValueError("recency must be 0 for customers with frequency 0")
    return x, t_x, t


def _check_weights(weights: ArrayLike, n: int) -> NDArray[np.float64]:
    """Weights of ``n`` rows: finite, >= 0, one per row, not all 0."""
    w = _as_float(weights, "weights")
    if len(w) != n:
        raise ValueError(f"weights must have one value per row ({n}), got {len(w)}")
    if np.any(w < 0):
        raise ValueError("weights must be >= 0")
    if not w.sum() > 0:
        raise ValueError("weights must not all be 0")
    return w


def _weighted_sum(w: NDArray[np.float64], values: NDArray[np.float64]) -> float:
    """sum(w * values) on the calling thread.

    Not ``np.dot``: that is BLAS, and OpenBLAS splits a long dot product across one thread per
    core, whose threads then spin for the next call. The fits run inside the dbt process beside
    DuckDB's queries, and at 1 M customers the spinning took about 5 of the full build's CPU
    seconds from them on two cores. (``einsum`` without ``optimize`` never calls BLAS.)
    """
    return float(np.einsum("i,i->", w, values))


# ------------------------------------------------------------------------------------ BG/NBD
def _levels(x: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    """Distinct frequencies and each row's index into them: the special functions of both
    models depend on the customer only through the frequency, so they are evaluated once per
    distinct frequency (a few hundred) instead of once per customer."""
    levels, index = np.unique(x, return_inverse=True)
    return levels, index.reshape(-1)


def bg_nbd_log_likelihood(
    params: ArrayLike,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    weights: ArrayLike | None = None,
    gradient: bool = False,
    _levels_cache: tuple[NDArray[np.float64], NDArray[np.intp]] | None = None,
) -> float | tuple[float, NDArray[np.float64]]:
    """Sum of BG/NBD log-likelihoods; with ``gradient`` also d/d(r, alpha, a, b).

    ``ln L = ln G(r+x) - ln G(r) + r ln alpha
             + logaddexp(ln B(a, b+x) - ln B(a, b) - (r+x) ln(alpha+T),
                         [x>0] ln B(a+1, b+x-1) - ln B(a, b) - (r+x) ln(alpha+t_x))``
    """
    r, alpha, a, b = (float(v) for v in params)
    x = np.asarray(frequency, dtype=np.float64)
    t_x = np.asarray(recency, dtype=np.float64)
    t = np.asarray(T, dtype=np.float64)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    lx, idx = _levels_cache or _levels(x)
    lrep = lx > 0
    beta_ab = special.betaln(a, b)
    # per distinct frequency
    g1 = special.gammaln(r + lx) - special.gammaln(r) + r * np.log(alpha)
    g2 = special.betaln(a, b + lx) - beta_ab
    g3 = np.full_like(lx, -np.inf)
    g3[lrep] = special.betaln(a + 1, b + lx[lrep] - 1) - beta_ab
    # per customer
    log_alpha_t = np.log(alpha + t)
    log_alpha_tx = np.log(alpha + t_x)
    a2 = g2[idx] - (r + x) * log_alpha_t
    a3 = g3[idx] - (r + x) * log_alpha_tx
    ll = g1[idx] + np.logaddexp(a2, a3)
    total = _weighted_sum(w, ll)
    if not gradient:
        return total
    share3 = special.expit(a3 - a2)  # weight of the second term; 0 where x = 0
    share2 = 1.0 - share3
    dg = special.digamma
    dg_ab = dg(a + b)
    dg_abx = dg(a + b + lx)
    h_r = dg(r + lx) - dg(r) + np.log(alpha)
    h_a2 = dg_ab - dg_abx
    h_a3 = dg(a + 1) - dg_abx - dg(a) + dg_ab
    h_b2 = dg(b + lx) - dg_abx - dg(b) + dg_ab
    h_b3 = dg(np.where(lrep, b + lx - 1, b)) - dg_abx - dg(b) + dg_ab
    d_r = h_r[idx] - share2 * log_alpha_t - share3 * log_alpha_tx
    d_alpha = r / alpha - (r + x) * (share2 / (alpha + t) + share3 / (alpha + t_x))
    d_a = share2 * h_a2[idx] + share3 * h_a3[idx]
    d_b = share2 * h_b2[idx] + share3 * h_b3[idx]
    grad = np.array([_weighted_sum(w, d) for d in (d_r, d_alpha, d_a, d_b)])
    return total, grad


def _fit(
    model: str,
    names: tuple[str, ...],
    objective,
    start: NDArray[np.float64],
    n_customers: int,
    n_rows: int,
    tolerance: float,
) -> FitResult:
    """Minimise the mean negative log-likelihood over log-parameters with L-BFGS-B."""

    def negative(log_params: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        params = np.exp(log_params)
        ll, grad = objective(params)
        if not np.isfinite(ll):
            return 1e300, np.zeros_like(log_params)
        return -ll / n_customers, -grad * params / n_customers

    result = optimize.minimize(
        negative,
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=[(-_LOG_BOUND, _LOG_BOUND)] * len(start),
        options={"maxiter": 2000, "gtol": 1e-9, "ftol": 1e-14},
    )
    params = np.exp(result.x)
    gradient_norm = float(np.max(np.abs(result.jac)))
    at_bound = np.any(np.abs(result.x) >= _LOG_BOUND - 1e-6)
    # Convergence is judged by the gradient at the optimum: L-BFGS-B can also stop with an
    # "abnormal" line search when it is already at the optimum and no step improves further.
    if gradient_norm > tolerance or at_bound or not np.isfinite(result.fun):
        detail = dict(zip(names, params.round(6).tolist(), strict=True))
        reason = "a parameter ran to its bound" if at_bound else result.message
        raise ClvFitError(
            f"{model} fit did not converge ({reason}; max |gradient| {gradient_norm:.2e}, "
            f"parameters {detail}). The data may not support the model: check that there are "
            "enough repeat purchases and that as_of_date is after the purchases."
        )
    return FitResult(
        model=model,
        params=dict(zip(names, params.tolist(), strict=True)),
        log_likelihood=float(-result.fun * n_customers),
        n_customers=n_customers,
        n_rows=n_rows,
        iterations=int(result.nit),
        gradient_norm=gradient_norm,
    )


def fit_bg_nbd(
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    weights: ArrayLike | None = None,
    tolerance: float = 1e-4,
) -> FitResult:
    """Fit BG/NBD (r, alpha, a, b) by maximum likelihood.

    Args:
        frequency: repeat purchase days per customer.
        recency: age at the last purchase (same time unit as ``T``).
        T: age at the end of the observation period.
        weights: optional number of customers each row stands for.
        tolerance: largest accepted |gradient| of the mean log-likelihood at the optimum.

    Returns:
        The fit, with ``params`` ``{"r", "alpha", "a", "b"}``.

    Raises:
        ClvFitError: when the optimiser does not converge.
    """
    x, t_x, t = _check_bg_nbd_data(frequency, recency, T)
    if weights is None:
        (x, t_x, t), w = compress(x, t_x, t)
    else:
        w = _check_weights(weights, len(x))
    n_customers = int(w.sum())
    if not np.any(x > 0):
        raise ClvFitError("BG/NBD needs customers with repeat purchases; there are none")
    start = np.log([1.0, max(float(np.average(t, weights=w)) / 10, 1e-3), 1.0, 1.0])
    levels = _levels(x)
    fit = _fit(
        "bg_nbd",
        BG_NBD_PARAMETERS,
        lambda p: bg_nbd_log_likelihood(p, x, t_x, t, w, gradient=True, _levels_cache=levels),
        start,
        n_customers,
        len(x),
        tolerance,
    )
    return fit


def bg_nbd_p_alive(
    params: dict[str, float], frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> NDArray[np.float64]:
    """P(alive at T | x, t_x, T) = 1 / (1 + [x>0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))."""
    r, alpha, a, b = (params[k] for k in BG_NBD_PARAMETERS)
    x = np.asarray(frequency, dtype=np.float64)
    t_x = np.asarray(recency, dtype=np.float64)
    t = np.asarray(T, dtype=np.float64)
    log_odds = np.full_like(x, -np.inf)
    repeat = x > 0
    xr = x[repeat]
    log_odds[repeat] = (
        np.log(a)
        - np.log(b + xr - 1)
        + (r + xr) * (np.log(alpha + t[repeat]) - np.log(alpha + t_x[repeat]))
    )
    return special.expit(-log_odds)


def _expected_purchases_if_alive(
    params: dict[str, float], horizon: NDArray, x: NDArray, t: NDArray
) -> NDArray[np.float64]:
    """Expected purchases in (T, T + horizon] of a customer still alive at T: the numerator of
    Fader, Hardie & Lee (2005), equation 10. It depends on the frequency and T, not on the
    recency, which enters only through P(alive).

    Equation 10 has ``(1 - z)^(r+x) 2F1(r+x, b+x; a+b+x-1; z)``, z = horizon / (alpha + T +
    horizon); for frequent buyers over long horizons the power underflows while the
    hypergeometric function overflows (x = 300 purchase days in a year, a 10-year horizon: inf).
    Euler's transformation gives the same product as ``(1 - z)^(a-1) 2F1(a+b-1-r, a-1;
    a+b+x-1; z)``, whose terms stay finite.
    """
    r, alpha, a, b = (params[k] for k in BG_NBD_PARAMETERS)
    z = horizon / (alpha + t + horizon)
    log_rest = np.log(alpha + t) - np.log(alpha + t + horizon)  # ln(1 - z)
    hyp = special.hyp2f1(a + b - 1 - r, a - 1, a + b + x - 1, z)
    return (a + b + x - 1) / (a - 1) * (1 - np.exp((a - 1) * log_rest) * hyp)


def bg_nbd_expected_purchases(
    params: dict[str, float],
    horizon: ArrayLike,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
) -> NDArray[np.float64]:
    """Expected purchases in (T, T + horizon] given (x, t_x, T).

    Fader, Hardie & Lee (2005), equation 10: the purchases expected if alive (a Gaussian
    hypergeometric function, evaluated once per distinct frequency, T and horizon) times
    P(alive).
    """
    x = np.asarray(frequency, dtype=np.float64)
    t_x = np.asarray(recency, dtype=np.float64)
    t = np.asarray(T, dtype=np.float64)
    h = np.broadcast_to(np.asarray(horizon, dtype=np.float64), x.shape)
    if x.size == 0:
        return np.zeros(x.shape)
    keys, inverse, _ = _unique_rows(np.column_stack([x, t, h]))
    if_alive = _expected_purchases_if_alive(params, keys[:, 2], keys[:, 0], keys[:, 1])
    return if_alive[inverse] * bg_nbd_p_alive(params, x, t_x, t)


def bg_nbd_expected_purchases_new(params: dict[str, float], horizon: ArrayLike) -> NDArray:
    """E[X(t)] for a new customer (no history): the unconditional BG/NBD expectation, that of
    a customer alive at age 0 with no purchases yet."""
    t = np.asarray(horizon, dtype=np.float64)
    return _expected_purchases_if_alive(params, t, np.zeros_like(t), np.zeros_like(t))


# ------------------------------------------------------------------------------ Gamma-Gamma
def gamma_gamma_log_likelihood(
    params: ArrayLike,
    frequency: ArrayLike,
    monetary_value: ArrayLike,
    weights: ArrayLike | None = None,
    gradient: bool = False,
    _levels_cache: tuple[NDArray[np.float64], NDArray[np.intp]] | None = None,
) -> float | tuple[float, NDArray[np.float64]]:
    """Sum of Gamma-Gamma log-likelihoods of mean spend; with ``gradient`` d/d(p, q, gamma).

    ``ln L = ln G(px+q) - ln G(px) - ln G(q) + q ln gamma + (px-1) ln m + px ln x
             - (px+q) ln(gamma + x m)``
    """
    p, q, g = (float(v) for v in params)
    x = np.asarray(frequency, dtype=np.float64)
    m = np.asarray(monetary_value, dtype=np.float64)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    lx, idx = _levels_cache or _levels(x)
    plx = p * lx
    k1 = special.gammaln(plx + q) - special.gammaln(plx) - special.gammaln(q)  # per frequency
    px = p * x
    log_total = np.log(g + x * m)
    log_m, log_x = np.log(m), np.log(x)
    ll = k1[idx] + q * np.log(g) + (px - 1) * log_m + px * log_x - (px + q) * log_total
    total = _weighted_sum(w, ll)
    if not gradient:
        return total
    dg = special.digamma
    k_p = lx * (dg(plx + q) - dg(plx))
    k_q = dg(plx + q) - dg(q)
    d_p = k_p[idx] + x * (log_m + log_x - log_total)
    d_q = k_q[idx] + np.log(g) - log_total
    d_g = q / g - (px + q) / (g + x * m)
    grad = np.array([_weighted_sum(w, d) for d in (d_p, d_q, d_g)])
    return total, grad


def fit_gamma_gamma(
    frequency: ArrayLike,
    monetary_value: ArrayLike,
    weights: ArrayLike | None = None,
    tolerance: float = 1e-4,
) -> FitResult:
    """Fit Gamma-Gamma (p, q, gamma) by maximum likelihood on customers with frequency > 0.

    Args:
        frequency: repeat purchase days per customer (customers with 0 are ignored).
        monetary_value: mean value of those repeat purchases (must be > 0 where frequency > 0;
            ignored, and may be missing, where it is 0).
        weights: optional number of customers each row stands for.
        tolerance: largest accepted |gradient| of the mean log-likelihood at the optimum.

    Raises:
        ClvFitError: when the optimiser does not converge.
    """
    x = _as_float(frequency, "frequency")
    m = np.asarray(monetary_value, dtype=np.float64)
    if m.ndim != 1 or len(x) != len(m):
        raise ValueError("frequency and monetary_value must have the same length")
    w = np.ones_like(x) if weights is None else _check_weights(weights, len(x))
    keep = x > 0
    if not np.all(np.isfinite(m[keep])):
        raise ValueError("monetary_value has missing or infinite values where frequency > 0")
    if np.any(m[keep] <= 0):
        raise ValueError("monetary_value must be > 0 for customers with frequency > 0")
    # a fixed order makes the floating-point sums, and so the fit, identical on every run
    order = np.lexsort((m[keep], x[keep]))
    x, m, w = x[keep][order], m[keep][order], w[keep][order]
    if len(x) < 3:
        raise ClvFitError("Gamma-Gamma needs customers with repeat purchases; there are too few")
    n_customers = int(w.sum())
    mean = float(np.average(m, weights=w))
    start = np.log([1.0, 2.0, mean])
    levels = _levels(x)
    return _fit(
        "gamma_gamma",
        GAMMA_GAMMA_PARAMETERS,
        lambda p: gamma_gamma_log_likelihood(p, x, m, w, gradient=True, _levels_cache=levels),
        start,
        n_customers,
        len(x),
        tolerance,
    )


def gamma_gamma_expected_value(
    params: dict[str, float], frequency: ArrayLike, monetary_value: ArrayLike
) -> NDArray[np.float64]:
    """E[spend | x, m_x] = p (gamma + x m_x) / (p x + q - 1); the population mean
    p gamma / (q - 1) for customers without repeat purchases."""
    p, q, g = (params[k] for k in GAMMA_GAMMA_PARAMETERS)
    if q <= 1:
        raise ClvFitError(f"Gamma-Gamma q = {q:.3f} <= 1: the mean spend is not defined")
    x = np.asarray(frequency, dtype=np.float64)
    m = np.nan_to_num(np.asarray(monetary_value, dtype=np.float64))
    return np.where(x > 0, p * (g + x * m) / (p * x + q - 1), p * g / (q - 1))


# ------------------------------------------------------------------------------------- CLV
#: the parts of the horizon whose expected purchases are discounted one by one
DISCOUNT_STEPS = 12


def _discounted_purchases_if_alive(
    params: dict[str, float],
    x: NDArray,
    t: NDArray,
    horizon_days: float,
    annual_discount_rate: float,
    steps: int,
) -> NDArray[np.float64]:
    """The discounted sum of ``discounted_expected_purchases`` for customers alive at T, row by
    row: it depends on the frequency and T only."""
    edges = np.linspace(0.0, horizon_days, steps + 1)
    cumulative = np.stack(
        [np.zeros_like(x)] + [_expected_purchases_if_alive(params, e, x, t) for e in edges[1:]]
    )
    per_step = np.diff(cumulative, axis=0)
    midpoints_years = (edges[:-1] + edges[1:]) / 2 / 365.0
    discount = (1.0 + annual_discount_rate) ** -midpoints_years
    # einsum, not `discount @ per_step`: no BLAS threads (see _weighted_sum)
    return np.einsum("k,kn->n", discount, per_step)


def discounted_expected_purchases(
    params: dict[str, float],
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    horizon_days: float,
    annual_discount_rate: float,
    steps: int = DISCOUNT_STEPS,
) -> NDArray[np.float64]:
    """Expected purchases over the horizon, each step's purchases discounted to T.

    The horizon is cut into ``steps`` equal parts; the purchases expected in part k are
    discounted by (1 + rate)^-(mid-point of k in years). Every part's purchases are those
    expected if alive times P(alive), so the discounted sum is computed if alive, once per
    distinct (frequency, T) (at 1 M customers a sixth of the distinct (x, t_x, T)), and then
    multiplied by P(alive).
    """
    x, t_x, t = (np.asarray(v, dtype=np.float64) for v in (frequency, recency, T))
    if x.size == 0:
        return np.zeros(x.shape)
    pairs, inverse, _ = _unique_rows(np.column_stack([x, t]))
    if_alive = _discounted_purchases_if_alive(
        params, pairs[:, 0], pairs[:, 1], horizon_days, annual_discount_rate, steps
    )
    return if_alive[inverse] * bg_nbd_p_alive(params, x, t_x, t)


@dataclass(frozen=True)
class ClvPrediction:
    p_alive: NDArray[np.float64]
    expected_purchases: NDArray[np.float64]
    expected_avg_order_value: NDArray[np.float64]
    predicted_clv: NDArray[np.float64]


def predict_clv(
    bg_nbd: dict[str, float],
    gamma_gamma: dict[str, float],
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    monetary_value: ArrayLike,
    horizon_days: float,
    annual_discount_rate: float,
) -> ClvPrediction:
    """p_alive, expected purchases, expected order value and discounted CLV per customer.

    Computed once per distinct (frequency, recency, T) and spread back to the customers; the
    purchases expected if alive once per distinct (frequency, T).
    """
    x, t_x, t = (np.asarray(v, dtype=np.float64) for v in (frequency, recency, T))
    unique, inverse, _ = _unique_rows(np.column_stack([x, t_x, t]))
    ux, utx, ut = unique[:, 0], unique[:, 1], unique[:, 2]
    alive = bg_nbd_p_alive(bg_nbd, ux, utx, ut)
    pairs, pair_of, _ = _unique_rows(np.column_stack([ux, ut]))
    px, pt = pairs[:, 0], pairs[:, 1]
    expected_if_alive = _expected_purchases_if_alive(bg_nbd, horizon_days, px, pt)
    discounted_if_alive = _discounted_purchases_if_alive(
        bg_nbd, px, pt, horizon_days, annual_discount_rate, DISCOUNT_STEPS
    )
    p_alive = alive[inverse]
    expected = (expected_if_alive[pair_of] * alive)[inverse]
    discounted = (discounted_if_alive[pair_of] * alive)[inverse]
    value = gamma_gamma_expected_value(gamma_gamma, x, monetary_value)
    return ClvPrediction(p_alive, expected, value, discounted * value)


# ------------------------------------------------------------------------------- simulation
def simulate_bg_nbd(
    params: dict[str, float], T: ArrayLike, rng: np.random.Generator
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Draw (frequency, recency, T) from the BG/NBD model, one customer per entry of ``T``.

    Repeat purchases arrive as a Poisson process with rate lambda ~ Gamma(r, 1/alpha); after
    each repeat purchase the customer drops out with probability p ~ Beta(a, b).
    """
    r, alpha, a, b = (params[k] for k in BG_NBD_PARAMETERS)
    t = np.asarray(T, dtype=np.float64)
    n = len(t)
    lam = rng.gamma(r, 1.0 / alpha, size=n)
    p = rng.beta(a, b, size=n)
    m = rng.poisson(lam * t)  # purchases on (0, T] if the customer never dropped out
    k = rng.geometric(p)  # the k-th repeat purchase is the last
    x = np.minimum(m, k)
    # the x-th of m sorted uniform points on (0, T] is T * Beta(x, m - x + 1)
    recency = np.zeros(n)
    has = x > 0
    recency[has] = t[has] * rng.beta(x[has], m[has] - x[has] + 1)
    return x.astype(np.float64), recency, t


def simulate_gamma_gamma(
    params: dict[str, float], frequency: ArrayLike, rng: np.random.Generator
) -> NDArray[np.float64]:
    """Mean spend of ``frequency`` purchases per customer under the Gamma-Gamma model."""
    p, q, g = (params[k] for k in GAMMA_GAMMA_PARAMETERS)
    x = np.asarray(frequency, dtype=np.float64)
    nu = rng.gamma(q, 1.0 / g, size=len(x))
    # the sum of x Gamma(p, nu) draws is Gamma(p x, nu)
    total = rng.gamma(np.maximum(p * x, 1e-12), 1.0 / nu)
    return np.where(x > 0, total / np.maximum(x, 1), np.nan)
