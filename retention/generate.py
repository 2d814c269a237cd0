"""Synthetic landing files for customers, orders, marketing spend and NPS responses.

The data tells the story the retention models are built for:

* customers arrive over the date range with a growth trend, a yearly season and a
  November/December peak;
* after a first purchase each customer follows the BG/NBD buying process: purchases arrive as a
  Poisson process with a customer-specific rate (Gamma distributed), and after every purchase the
  customer drops out with a customer-specific probability (Beta distributed);
* order values follow the Gamma-Gamma story: each customer has a mean spend (itself Gamma
  distributed) and individual orders vary around it;
* acquisition channels and regions shift both the purchase rate and the dropout probability, so
  they genuinely differ in retention;
* orders are in the customer's local currency; ~5 % are cancelled and ~3 % are refunded later,
  the refund arriving as a newer version of the same order in a later file;
* with ``dirty_rate`` > 0, extra rows carry the common defects (``DIRTY_KINDS``: a missing id,
  an unparseable or future timestamp, a negative or unparseable amount, an unknown currency,
  status or customer, a score out of range) plus exact duplicates; rarer reject reasons
  (conflicting rows in a file, amounts out of range, dates before ``min_event_date``) are
  covered by the tests' hand-made files, not here.

Everything is vectorised with NumPy/PyArrow (no Python loop over customers or orders) and fully
determined by the seed.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from retention.config import ENTITIES, project_dir
from retention.errors import UserError

log = logging.getLogger(__name__)

US_PER_DAY = 86_400_000_000

# country: (share of signups, currency, UTC offset in hours used by the source system,
#           purchase-rate multiplier, dropout multiplier)
COUNTRIES: dict[str, tuple[float, str, int, float, float]] = {
    "US": (0.28, "USD", -5, 1.00, 1.00),
    "CA": (0.06, "CAD", -5, 0.95, 1.00),
    "MX": (0.03, "MXN", -6, 0.80, 1.40),
    "BR": (0.05, "BRL", -3, 0.80, 1.45),
    "GB": (0.10, "GBP", 0, 1.05, 0.90),
    "DE": (0.10, "EUR", 1, 1.10, 0.80),
    "FR": (0.07, "EUR", 1, 1.05, 0.85),
    "ES": (0.04, "EUR", 1, 0.95, 0.95),
    "IT": (0.04, "EUR", 1, 0.95, 0.95),
    "NL": (0.03, "EUR", 1, 1.10, 0.80),
    "SE": (0.03, "SEK", 1, 1.15, 0.75),
    "CH": (0.02, "CHF", 1, 1.10, 0.80),
    "PL": (0.02, "PLN", 1, 0.95, 1.00),
    "JP": (0.05, "JPY", 9, 1.00, 1.10),
    "AU": (0.05, "AUD", 10, 1.00, 1.05),
    "IN": (0.03, "INR", 5, 0.85, 1.35),
}

# channel group: (share of signups, free-text spellings the source system uses,
#                 purchase-rate multiplier, dropout multiplier, acquisition cost per customer USD)
CHANNELS: dict[str, tuple[float, tuple[str, ...], float, float, float]] = {
    "organic_search": (
        0.22,
        ("Organic Search", "organic", "google organic", "SEO"),
        1.0,
        0.90,
        8.0,
    ),
    "paid_search": (
        0.20,
        ("Paid Search", "google / cpc", "Google Ads", "bing ads"),
        0.9,
        1.20,
        38.0,
    ),
    "paid_social": (0.18, ("facebook", "Instagram", "Paid Social", "TikTok Ads"), 0.75, 1.55, 45.0),
    "email": (0.08, ("email", "Newsletter"), 1.30, 0.70, 5.0),
    "referral": (0.10, ("referral", "Refer-a-friend"), 1.20, 0.65, 20.0),
    "affiliate": (0.08, ("affiliate", "Affiliates"), 0.80, 1.30, 30.0),
    "direct": (0.14, ("direct", "(direct)"), 1.10, 0.80, 0.0),
}

# BG/NBD population (time unit: days) and Gamma-Gamma population (USD).
BG_R, BG_ALPHA = 0.8, 12.0  # purchase rate ~ Gamma(r, scale=1/alpha): very heterogeneous
# dropout after each purchase ~ Beta(a, b): many loyal, a quarter of buyers one-off; with the
# default four years, 1 M customers place ~9.7 M orders (~10 M order rows with the refunds)
BG_A, BG_B = 0.55, 3.0
GG_P, GG_Q, GG_GAMMA = 5.0, 4.0, 45.0  # order value ~ Gamma(p, nu), nu ~ Gamma(q, gamma): ~75 USD
NEVER_PURCHASE_SHARE = 0.18  # sign up and never buy
CANCEL_SHARE = 0.05
REFUND_SHARE = 0.03
NPS_RESPONSE_SHARE = 0.08

DIRTY_KINDS: dict[str, tuple[str, ...]] = {
    "customers": ("missing_id", "unparseable_timestamp", "future_timestamp", "exact_duplicate"),
    "orders": (
        "missing_id",
        "unparseable_timestamp",
        "future_timestamp",
        "negative_amount",
        "unparseable_amount",
        "unknown_currency",
        "unknown_status",
        "unknown_customer",
        "exact_duplicate",
    ),
    "nps_responses": (
        "missing_id",
        "unparseable_timestamp",
        "score_out_of_range",
        "unknown_customer",
        "exact_duplicate",
    ),
    "marketing_spend": ("negative_amount", "unknown_currency", "exact_duplicate"),
}


@dataclass
class GenerateSummary:
    """What ``generate`` wrote: row counts per entity and the files."""

    rows: dict[str, int] = field(default_factory=dict)
    #: the dirty rows by kind (the quarantine reason they should get, or ``exact_duplicate``)
    dirty_kinds: dict[str, dict[str, int]] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    @property
    def dirty_rows(self) -> dict[str, int]:
        """The dirty rows per entity."""
        return {entity: sum(kinds.values()) for entity, kinds in self.dirty_kinds.items()}


def _fx_table() -> dict[str, list[tuple[int, float]]]:
    """USD per unit of each currency by year, from the ``fx_rates`` seed."""
    table = pacsv.read_csv(
        project_dir() / "seeds" / "fx_rates.csv",
        convert_options=pacsv.ConvertOptions(
            column_types={"valid_from": pa.string(), "valid_to": pa.string()}
        ),
    ).to_pylist()
    rates: dict[str, list[tuple[int, float]]] = {}
    for row in table:
        year = int(row["valid_from"][:4])
        rates.setdefault(row["currency"], []).append((year, float(row["rate_to_usd"])))
    return rates


def _to_us(day: date) -> int:
    return (day - date(1970, 1, 1)).days * US_PER_DAY


def _segment_cumsum(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Cumulative sum of ``values`` restarting at every segment given by ``counts``."""
    if len(values) == 0:  # no segment has an element (no orders in a short window)
        return np.asarray(values, dtype=float)
    total = np.cumsum(values)
    ends = np.cumsum(counts)
    starts = ends - counts
    before = np.where(starts > 0, total[np.maximum(starts - 1, 0)], 0.0)
    return total - np.repeat(before, counts)


def _signup_times(rng: np.random.Generator, n: int, start_us: int, end_us: int) -> np.ndarray:
    """Signup timestamps (microseconds) with growth, yearly season and a holiday peak."""
    n_days = (end_us - start_us) // US_PER_DAY + 1  # end_us is in the last day: it counts
    t = np.arange(n_days)
    day_of_year = ((start_us // US_PER_DAY + t) - 4) % 365.25  # ~ days since Jan 1
    growth = np.exp(1.2 * t / max(n_days, 365))  # ~+50 % a year
    season = 1.0 + 0.15 * np.sin(2 * np.pi * (day_of_year - 80) / 365.25)
    holiday = 1.0 + 0.8 * np.exp(-(((day_of_year - 330) / 12.0) ** 2))  # late November
    weights = growth * season * holiday
    days = rng.choice(n_days, size=n, p=weights / weights.sum())
    seconds = rng.integers(0, 86_400, size=n)
    return start_us + days * US_PER_DAY + seconds * 1_000_000


def _format_timestamps(
    rng: np.random.Generator, ts_us: np.ndarray, offsets_h: np.ndarray
) -> pa.Array:
    """ISO-8601 strings the way a mixed set of source systems sends them.

    60 % ``...Z``, 25 % naive (which the contract reads as UTC), 15 % local time with an offset.
    Each style is formatted only for its own rows, then the rows are put back in order.
    """
    seconds = ts_us // 1_000_000
    style = rng.choice(3, size=len(ts_us), p=[0.60, 0.25, 0.15])
    parts: list[pa.Array] = []
    positions: list[np.ndarray] = []
    for kind in range(3):
        rows = np.flatnonzero(style == kind)
        offset = offsets_h[rows] if kind == 2 else 0
        text = pc.cast(pa.array(seconds[rows] + offset * 3600, type=pa.timestamp("s")), pa.string())
        if kind in (0, 2):
            text = pc.replace_substring(text, " ", "T", max_replacements=1)
        if kind == 0:
            text = pc.binary_join_element_wise(text, "Z", "")
        if kind == 2:
            hours = pc.utf8_lpad(pc.cast(pa.array(np.abs(offset)), pa.string()), 2, "0")
            sign = pa.array(np.where(offset < 0, "-", "+"))
            text = pc.binary_join_element_wise(text, sign, hours, ":00", "")
        parts.append(text)
        positions.append(rows)
    order = np.argsort(np.concatenate(positions), kind="stable")
    return pa.concat_arrays(
        [p.combine_chunks() if isinstance(p, pa.ChunkedArray) else p for p in parts]
    ).take(pa.array(order))


def _same_text(n: int, text: str) -> np.ndarray:
    """n references to one str (np.full(n, text, dtype=object) stores a copy per row: ~550 MB
    for 10 M orders)."""
    values = np.empty(n, dtype=object)
    values[:] = text
    return values


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    digits = pc.utf8_lpad(pc.cast(pa.array(numbers), pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, digits, "")


class _Generator:
    def __init__(
        self,
        customers: int,
        seed: int,
        start: date,
        end: date,
        dirty_rate: float,
    ) -> None:
        if customers < 1:
            raise UserError("--customers must be at least 1")
        if end <= start:
            raise UserError(f"--end ({end}) must be after --start ({start})")
        if not 0 <= dirty_rate < 1:
            raise UserError("--dirty-rate must be in [0, 1)")
        if seed < 0:
            raise UserError(f"--seed must be 0 or more, not {seed}")
        self.n = customers
        self.rng = np.random.default_rng(seed)
        self.start_us = _to_us(start)
        self.end_us = _to_us(end) + US_PER_DAY - 1_000_000  # end is inclusive
        self.dirty_rate = dirty_rate
        self.fx = _fx_table()

    # ------------------------------------------------------------------ customers
    def customers(self) -> dict[str, np.ndarray]:
        rng, n = self.rng, self.n
        country_codes = np.array(list(COUNTRIES))
        shares = np.array([v[0] for v in COUNTRIES.values()])
        country_idx = rng.choice(len(country_codes), size=n, p=shares / shares.sum())
        channel_names = list(CHANNELS)
        ch_shares = np.array([v[0] for v in CHANNELS.values()])
        channel_idx = rng.choice(len(channel_names), size=n, p=ch_shares / ch_shares.sum())
        # free-text spelling of the channel, as the source system records it
        spellings = [CHANNELS[c][1] for c in channel_names]
        max_sp = max(len(s) for s in spellings)
        spelling_table = np.array(
            [list(s) + [s[0]] * (max_sp - len(s)) for s in spellings], dtype=object
        )
        spelling_pick = rng.random(n) * np.array([len(s) for s in spellings])[channel_idx]
        channel_raw = spelling_table[channel_idx, spelling_pick.astype(int)]

        signup_us = _signup_times(rng, n, self.start_us, self.end_us)
        # BG/NBD heterogeneity shifted by channel and country
        rate_mult = (
            np.array([v[2] for v in CHANNELS.values()])[channel_idx]
            * np.array([v[3] for v in COUNTRIES.values()])[country_idx]
        )
        drop_mult = (
            np.array([v[3] for v in CHANNELS.values()])[channel_idx]
            * np.array([v[4] for v in COUNTRIES.values()])[country_idx]
        )
        lam = rng.gamma(BG_R, 1.0 / BG_ALPHA, size=n) * rate_mult
        p_drop = np.clip(rng.beta(BG_A, BG_B, size=n) * drop_mult, 0.002, 0.98)
        nu = rng.gamma(GG_Q, 1.0 / GG_GAMMA, size=n)  # Gamma-Gamma scale per customer
        self.cust = {
            "number": np.arange(1, n + 1),
            "country_idx": country_idx,
            "channel_idx": channel_idx,
            "signup_us": signup_us,
            "lam": lam,
            "p_drop": p_drop,
            "nu": nu,
            "channel_raw": channel_raw,
        }
        return self.cust

    # --------------------------------------------------------------------- orders
    def orders(self) -> dict[str, np.ndarray]:
        rng, c = self.rng, self.cust
        n = self.n
        buys = rng.random(n) >= NEVER_PURCHASE_SHARE
        delay_us = (rng.exponential(4.0, size=n) * US_PER_DAY).astype(np.int64)
        first_us = c["signup_us"] + delay_us
        buys &= first_us <= self.end_us
        buyer = np.flatnonzero(buys)
        first_us = first_us[buyer]
        remaining_days = (self.end_us - first_us) / US_PER_DAY
        lam, p = c["lam"][buyer], c["p_drop"][buyer]
        # Repeat purchases: Poisson process on the remaining window, cut at dropout.
        # Given M events on [0, w], their times are sorted uniforms; the first J of them are
        # w * (E_1 + ... + E_j) / (E_1 + ... + E_{M+1}) with E ~ Exp(1).
        m = rng.poisson(lam * remaining_days)
        k = rng.geometric(p) - 1  # repeat purchases before dropping out
        j = np.minimum(m, k)
        e = rng.exponential(1.0, size=int(j.sum()))
        head = _segment_cumsum(e, j)
        rest = rng.gamma(np.maximum(m - j + 1, 1).astype(float))
        head_total = np.zeros(len(buyer))
        ends = np.cumsum(j)
        has = j > 0
        head_total[has] = head[ends[has] - 1]
        denom = np.repeat(head_total + rest, j)
        repeat_us = np.repeat(first_us, j) + (
            head / denom * np.repeat(remaining_days, j) * US_PER_DAY
        ).astype(np.int64)

        owner = np.concatenate([buyer, np.repeat(buyer, j)])
        ordered_us = np.concatenate([first_us, repeat_us])
        order_rank = np.concatenate(
            [np.zeros(len(buyer), np.int64), np.ones(len(repeat_us), np.int64)]
        )
        order = np.lexsort((owner, ordered_us))
        owner, ordered_us, order_rank = owner[order], ordered_us[order], order_rank[order]
        n_orders = len(owner)

        # Gamma-Gamma order values in USD, converted into the customer's local currency.
        usd = rng.gamma(GG_P, 1.0 / c["nu"][owner])
        usd = np.clip(usd, 1.0, None)
        currency_by_country = np.array([v[1] for v in COUNTRIES.values()])
        currency = currency_by_country[c["country_idx"][owner]]
        years = (ordered_us // US_PER_DAY).astype("datetime64[D]").astype("datetime64[Y]")
        year = years.astype(int) + 1970
        rate = np.ones(n_orders)
        for cur, by_year in self.fx.items():
            mask = currency == cur
            if not mask.any():
                continue
            yrs = np.array([y for y, _ in by_year])
            vals = np.array([r for _, r in by_year])
            idx = np.clip(np.searchsorted(yrs, year[mask], side="right") - 1, 0, len(yrs) - 1)
            rate[mask] = vals[idx]
        local = usd / rate
        decimals = np.where(currency == "JPY", 0, 2)
        local = np.where(decimals == 0, np.round(local), np.round(local, 2))

        u = rng.random(n_orders)
        status = _same_text(n_orders, "completed")
        status[u < CANCEL_SHARE] = "cancelled"
        refunded = (u >= CANCEL_SHARE) & (u < CANCEL_SHARE + REFUND_SHARE)
        recent = ordered_us > self.end_us - 2 * US_PER_DAY
        pending = recent & (rng.random(n_orders) < 0.3) & (status == "completed") & ~refunded
        status[pending] = "pending"
        updated_us = ordered_us + (rng.exponential(0.2, n_orders) * US_PER_DAY).astype(np.int64)
        cancelled = status == "cancelled"
        updated_us[~cancelled] = ordered_us[~cancelled]
        # the files are what the shop knows at the end of --end: an order cancelled after it is
        # still pending then
        later = cancelled & (updated_us > self.end_us)
        status[later] = "pending"
        updated_us[later] = ordered_us[later]

        refund_us = ordered_us + (rng.uniform(3, 45, n_orders) * US_PER_DAY).astype(np.int64)
        refund_rows = np.flatnonzero(refunded & (refund_us <= self.end_us))

        base = {
            "order_number": np.arange(1, n_orders + 1),
            "owner": owner,
            "ordered_us": ordered_us,
            "status": status,
            "amount": local,
            "currency": currency,
            "updated_us": updated_us,
            "is_repeat": order_rank,
        }
        versions = {k: v[refund_rows] for k, v in base.items()}
        versions["status"] = _same_text(len(refund_rows), "refunded")
        versions["updated_us"] = refund_us[refund_rows]
        self.orders_data = {k: np.concatenate([base[k], versions[k]]) for k in base}
        self.n_orders = n_orders
        return self.orders_data

    # ------------------------------------------------------------------ marketing
    def marketing_spend(self) -> dict[str, np.ndarray]:
        rng, c = self.rng, self.cust
        months = np.arange(
            np.datetime64(self.start_us // US_PER_DAY, "D").astype("datetime64[M]"),
            np.datetime64(self.end_us // US_PER_DAY, "D").astype("datetime64[M]") + 1,
        )
        signup_month = (
            (c["signup_us"] // US_PER_DAY).astype("datetime64[D]").astype("datetime64[M]")
        )
        month_idx = (signup_month - months[0]).astype(int)
        n_ch = len(CHANNELS)
        new_by = np.zeros((len(months), n_ch))
        np.add.at(new_by, (month_idx, c["channel_idx"]), 1)
        order_month = (
            (self.orders_data["ordered_us"][: self.n_orders] // US_PER_DAY)
            .astype("datetime64[D]")
            .astype("datetime64[M]")
        )
        o_month_idx = (order_month - months[0]).astype(int)
        o_channel = c["channel_idx"][self.orders_data["owner"][: self.n_orders]]
        orders_by = np.zeros((len(months), n_ch))
        np.add.at(orders_by, (o_month_idx, o_channel), 1)
        cac = np.array([v[4] for v in CHANNELS.values()])
        noise = rng.lognormal(0.0, 0.15, size=(len(months), n_ch, 2))
        acquisition = new_by * cac * noise[:, :, 0]
        retention = orders_by * 1.2 * noise[:, :, 1]  # CRM, loyalty and email costs per order
        month_grid = np.repeat(months, n_ch * 2)
        channel_grid = np.tile(np.repeat(np.array(list(CHANNELS)), 2), len(months))
        type_grid = np.tile(np.array(["acquisition", "retention"]), len(months) * n_ch)
        amount = np.stack([acquisition, retention], axis=2).reshape(-1)
        keep = amount > 0
        return {
            "month": month_grid[keep],
            "channel": channel_grid[keep],
            "spend_type": type_grid[keep],
            "amount": np.round(amount[keep], 2),
            "currency": np.full(int(keep.sum()), "USD"),
        }

    # ------------------------------------------------------------------------ NPS
    def nps(self) -> dict[str, np.ndarray]:
        rng, o, c = self.rng, self.orders_data, self.cust
        first_version = np.arange(len(o["owner"])) < self.n_orders
        completed = first_version & (o["status"] == "completed")
        pick = np.flatnonzero(completed & (rng.random(len(completed)) < NPS_RESPONSE_SHARE))
        responded = o["ordered_us"][pick] + (rng.uniform(1, 14, len(pick)) * US_PER_DAY).astype(
            np.int64
        )
        keep = responded <= self.end_us
        pick, responded = pick[keep], responded[keep]
        owner = o["owner"][pick]
        loyal = 1.0 - np.clip(c["p_drop"][owner] * 3, 0, 1)  # low dropout, happier customer
        score = np.clip(np.round(rng.normal(5.5 + 4.0 * loyal, 1.8)), 0, 10).astype(int)
        order = np.argsort(responded, kind="stable")
        return {
            "number": np.arange(1, len(pick) + 1),
            "owner": owner[order],
            "responded_us": responded[order],
            "score": score[order],
        }


# ---------------------------------------------------------------------- tables
def _customer_table(g: _Generator, c: dict[str, np.ndarray]) -> tuple[pa.Table, np.ndarray]:
    rng = g.rng
    n = g.n
    # ~3 % of customers later change their email: a newer version of the customer row
    changed = np.flatnonzero(rng.random(n) < 0.03)
    change_us = c["signup_us"][changed] + (rng.uniform(10, 400, len(changed)) * US_PER_DAY).astype(
        np.int64
    )
    keep = change_us <= g.end_us
    changed, change_us = changed[keep], change_us[keep]
    rows = np.concatenate([np.arange(n), changed])
    updated_us = np.concatenate([c["signup_us"], change_us])
    number = c["number"][rows]
    domains = np.array(["example.com", "example.org", "example.net"])
    domain = domains[rng.integers(0, 3, len(rows))]
    suffix = np.where(np.arange(len(rows)) < n, "@", ".new@")
    email = pc.binary_join_element_wise(
        "customer", pc.cast(pa.array(number), pa.string()), pa.array(suffix), pa.array(domain), ""
    )
    offsets = np.array([v[2] for v in COUNTRIES.values()])[c["country_idx"][rows]]
    table = pa.table(
        {
            "customer_id": _ids("C", number, 7),
            "email": email,
            "signup_at": _format_timestamps(rng, c["signup_us"][rows], offsets),
            "country": pa.array(np.array(list(COUNTRIES))[c["country_idx"][rows]]),
            "acquisition_channel": pa.array(c["channel_raw"][rows].astype(str)),
            "updated_at": _format_timestamps(rng, updated_us, offsets),
        }
    )
    return table, updated_us


def _order_table(g: _Generator, o: dict[str, np.ndarray]) -> tuple[pa.Table, np.ndarray]:
    c = g.cust
    offsets = np.array([v[2] for v in COUNTRIES.values()])[c["country_idx"][o["owner"]]]
    # decimal text as a shop system exports it: two decimals, none for JPY
    amount = pa.array(o["amount"])
    amount_text = pc.if_else(
        pc.equal(pa.array(o["currency"]), "JPY"),
        pc.cast(pc.cast(amount, pa.decimal128(18, 0)), pa.string()),
        pc.cast(pc.cast(amount, pa.decimal128(18, 2)), pa.string()),
    )
    table = pa.table(
        {
            "order_id": _ids("O", o["order_number"], 8),
            "customer_id": _ids("C", c["number"][o["owner"]], 7),
            "ordered_at": _format_timestamps(g.rng, o["ordered_us"], offsets),
            "status": pa.array(o["status"].astype(str)),
            "amount": amount_text,
            "currency": pa.array(o["currency"]),
            "updated_at": _format_timestamps(g.rng, o["updated_us"], offsets),
        }
    )
    return table, o["updated_us"]


def _marketing_table(m: dict[str, np.ndarray]) -> tuple[pa.Table, np.ndarray]:
    months_us = m["month"].astype("datetime64[D]").astype(np.int64) * US_PER_DAY
    table = pa.table(
        {
            "month": pa.array(m["month"].astype("datetime64[D]").astype(str)),
            "channel": pa.array(m["channel"]),
            "spend_type": pa.array(m["spend_type"]),
            "amount": pc.cast(pc.cast(pa.array(m["amount"]), pa.decimal128(18, 2)), pa.string()),
            "currency": pa.array(m["currency"]),
        }
    )
    return table, months_us


def _nps_table(g: _Generator, r: dict[str, np.ndarray]) -> tuple[pa.Table, np.ndarray]:
    c = g.cust
    offsets = np.array([v[2] for v in COUNTRIES.values()])[c["country_idx"][r["owner"]]]
    table = pa.table(
        {
            "response_id": _ids("R", r["number"], 8),
            "customer_id": _ids("C", c["number"][r["owner"]], 7),
            "responded_at": _format_timestamps(g.rng, r["responded_us"], offsets),
            "score": pa.array(r["score"].astype(str)),
        }
    )
    return table, r["responded_us"]


# ----------------------------------------------------------------------- dirty
_ID_COLUMN = {
    "customers": "customer_id",
    "orders": "order_id",
    "nps_responses": "response_id",
    "marketing_spend": None,
}
_TS_COLUMN = {
    "customers": "signup_at",
    "orders": "ordered_at",
    "nps_responses": "responded_at",
    "marketing_spend": "month",
}


def _dirty_rows(
    rng: np.random.Generator, entity: str, table: pa.Table, when_us: np.ndarray, rate: float
) -> tuple[pa.Table, np.ndarray, dict[str, int]]:
    """Extra rows, copies of real ones with one defect each, one kind after another."""
    n_dirty = round(rate * table.num_rows)
    kinds = DIRTY_KINDS[entity]
    if n_dirty == 0:
        return table.slice(0, 0), when_us[:0], {}
    n_dirty = max(n_dirty, len(kinds))  # every kind at least once
    src = rng.choice(table.num_rows, size=n_dirty, replace=n_dirty > table.num_rows)
    kind = np.array(kinds)[np.arange(n_dirty) % len(kinds)]
    cols = {name: table.column(name).take(pa.array(src)).to_pylist() for name in table.column_names}
    id_col, ts_col = _ID_COLUMN[entity], _TS_COLUMN[entity]
    unparseable = ["not a date", "2024-13-45", "31/02/2024 25:61", "yesterday"]
    for i, k in enumerate(kind):
        if id_col and k not in ("exact_duplicate",):
            cols[id_col][i] = f"{cols[id_col][i]}-X{i}"  # a new id, so no real row is hidden
        if k == "missing_id" and id_col:
            cols[id_col][i] = "" if i % 2 else "   "
        elif k == "unparseable_timestamp":
            cols[ts_col][i] = unparseable[i % len(unparseable)]
        elif k == "future_timestamp":
            cols[ts_col][i] = "2099-01-01T00:00:00Z"
            if "updated_at" in cols:
                cols["updated_at"][i] = "2099-01-01T00:00:00Z"
        elif k == "negative_amount":
            cols["amount"][i] = "-" + str(cols["amount"][i]).lstrip("-")
        elif k == "unparseable_amount":
            cols["amount"][i] = "12,34.5x"
        elif k == "unknown_currency":
            cols["currency"][i] = "XYZ"
        elif k == "unknown_status":
            cols["status"][i] = "shipped-ish"
        elif k == "unknown_customer":
            cols["customer_id"][i] = f"C9{i:09d}"
        elif k == "score_out_of_range":
            cols["score"][i] = str(11 + i % 5)
    dirty = pa.table({name: pa.array(vals, type=pa.string()) for name, vals in cols.items()})
    counts = {str(k): int((kind == k).sum()) for k in kinds}
    return dirty, when_us[src], counts


# ----------------------------------------------------------------------- write
def _write(
    entity: str,
    table: pa.Table,
    when_us: np.ndarray,
    out: Path,
    fmt: str,
    daily_from: date | None = None,
) -> list[Path]:
    """One file per calendar month (of the version's timestamp), rows in time order.

    Rows from ``daily_from`` on go to one file per day instead, as a shop's daily export would
    land them (used to try and measure incremental runs).
    """
    folder = out / entity
    folder.mkdir(parents=True, exist_ok=True)
    if len(when_us) == 0:  # a short window and few customers: no NPS answers, say
        return []
    # each file takes its rows from the table (sorting the whole table first would hold a
    # second copy of it: ~1 GB of order text at 1 M customers)
    order = np.argsort(when_us, kind="stable")
    when_us = when_us[order]
    days = (when_us // US_PER_DAY).astype("datetime64[D]")
    months = days.astype("datetime64[M]")
    daily = np.zeros(len(days), dtype=bool)
    if daily_from is not None:
        daily = days >= np.datetime64(daily_from, "D")
    # one integer per file: the month number, or the day number past all month numbers
    periods = np.where(daily, days.astype(np.int64) + 10**7, months.astype(np.int64))
    bounds = np.flatnonzero(np.r_[True, periods[1:] != periods[:-1], True])
    files = []
    for lo, hi in itertools.pairwise(bounds):
        part = table.take(pa.array(order[lo:hi]))
        name = f"{entity}_{days[lo] if daily[lo] else months[lo]}.{fmt}"
        path = folder / name
        # under a dot-name until complete (the loader skips those), then renamed: a load, the
        # Dagster sensor or a stopped run never sees a file half-written
        partial = folder / f".{name}.partial"
        try:
            if fmt == "csv":
                options = pacsv.WriteOptions(quoting_style="needed")
                pacsv.write_csv(part, partial, write_options=options)
            else:
                pq.write_table(part, partial, compression="zstd")
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        files.append(path)
    return files


def generate(
    out_dir: Path,
    customers: int,
    seed: int = 42,
    start: date = date(2022, 1, 1),
    end: date = date(2025, 12, 31),
    dirty_rate: float = 0.0,
    fmt: str = "csv",
    progress: Callable[[str], None] | None = None,
    daily_from: date | None = None,
) -> GenerateSummary:
    """Write synthetic landing files under ``out_dir/<entity>/``.

    Args:
        out_dir: the landing folder (``$RETENTION_DATA_DIR/landing``).
        customers: number of customers to simulate.
        seed: random seed; the same seed and arguments write byte-identical files.
        start: first signup day.
        end: last day of the simulated history (inclusive).
        dirty_rate: share of extra defective rows per entity (0 for clean data).
        fmt: ``csv`` or ``parquet``.
        progress: optional callback for progress messages.
        daily_from: write rows dated from this day on as one file per day
            (``orders_2025-12-31.csv``) instead of one file per month.

    Returns:
        Row counts and the files written.
    """
    if fmt not in ("csv", "parquet"):
        raise UserError(f"--format must be csv or parquet, not {fmt!r}")
    say = progress or log.info
    g = _Generator(customers, seed, start, end, dirty_rate)
    say(f"simulating {customers:,} customers from {start} to {end} (seed {seed})")
    started = time.perf_counter()
    g.customers()
    g.orders()
    marketing = g.marketing_spend()
    nps = g.nps()
    # the simulation is a third of the time at scale (12 s of 30 at 1 M customers): say it
    # ended before the files are formatted and written, one line per entity
    say(
        f"  simulated {len(g.orders_data['order_number']):,} order rows and {len(nps['score']):,} "
        f"NPS responses in {time.perf_counter() - started:.1f}s; writing files"
    )
    summary = GenerateSummary()
    # every entity is written into a folder of its own first and the folders swapped in at the
    # end: an interrupted --replace leaves the landing files as they were, not new customers
    # beside the old orders (dot-names: the loader never reads them)
    scratch = out_dir / ".generating"
    for folder in (out_dir / entity for entity in ENTITIES):
        if folder.exists() and not folder.is_dir():  # the user's file, not landing files
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(folder))
    if scratch.exists():  # from an interrupted run
        shutil.rmtree(scratch)
    builders = {
        "customers": lambda: _customer_table(g, g.cust),
        "orders": lambda: _order_table(g, g.orders_data),
        "marketing_spend": lambda: _marketing_table(marketing),
        "nps_responses": lambda: _nps_table(g, nps),
    }
    for entity in ENTITIES:
        table, when_us = builders[entity]()
        dirty, dirty_when, counts = _dirty_rows(g.rng, entity, table, when_us, dirty_rate)
        if dirty.num_rows:
            table = pa.concat_tables([table, dirty])
            when_us = np.concatenate([when_us, dirty_when])
        files = _write(entity, table, when_us, scratch, fmt, daily_from)
        summary.rows[entity] = table.num_rows
        summary.dirty_kinds[entity] = dict(counts)
        summary.files.extend(out_dir / f.relative_to(scratch) for f in files)
        say(f"  {entity}: {table.num_rows:,} rows in {len(files)} files")
    replaced = out_dir / ".replaced"
    if replaced.exists():
        shutil.rmtree(replaced)
    replaced.mkdir()
    for entity in ENTITIES:
        if (out_dir / entity).exists():
            os.replace(out_dir / entity, replaced / entity)
        os.replace(scratch / entity, out_dir / entity)
    shutil.rmtree(replaced)
    scratch.rmdir()
    return summary
