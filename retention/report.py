"""The HTML retention report, built from the published serving copy only.

One self-contained file (plotly.js inlined once, no CDN, works offline) at
``$RETENTION_DATA_DIR/reports/retention_report.html``: headline KPIs, a cohort heatmap,
retention curves by channel and region, phase comparison, CRR and churn trend, CLV distribution
and CLV : CAC, top win-back candidates (no emails: serving has none) and the NPS trend.
"""

from __future__ import annotations

import html
import logging
from calendar import monthrange
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from retention.config import Paths, write_whole
from retention.errors import UserError
from retention.publish import published_manifest

log = logging.getLogger(__name__)

REPORT_NAME = "retention_report.html"
PALETTE = ["#1f6f8b", "#e07a5f", "#3d9970", "#f2cc8f", "#81b29a", "#6d597a", "#b56576", "#355070"]


@dataclass
class Report:
    path: Path
    charts: int
    as_of_date: str


@dataclass(frozen=True)
class Window:
    """The months the report shows: through ``through`` (a first of month). The marts hold the
    month of ``as_of`` too, but until its last day it is a part of a month (ten days of new
    customers and revenue, rates over ten days): the headline figures and the charts end at the
    last complete month, and say so. Only when no month is complete yet (a first build within
    its first month) do they show the month to date, and say that instead."""

    as_of: date
    through: date
    to_date: bool  # ``through`` is the month of as_of, not yet complete

    @property
    def sql_through(self) -> str:
        return f"date '{self.through.isoformat()}'"

    @property
    def days(self) -> tuple[int, int]:
        """Days of the month of as_of that the marts hold, and the days it has."""
        return self.as_of.day, monthrange(self.as_of.year, self.as_of.month)[1]

    @property
    def month_complete(self) -> bool:
        """Whether as_of is the last day of its month."""
        held, days = self.days
        return held == days

    def heading(self) -> str:
        month = self.through.strftime("%B %Y")
        held, days = self.days
        if self.to_date:
            return f"headline figures for {month} to date ({held} of {days} days)"
        if self.through == self.as_of.replace(day=1):
            return f"headline figures for {month}"
        current = self.as_of.strftime("%B %Y")
        return (
            f"headline figures and charts for complete months, through {month} "
            f"({current} to date, {held} of {days} days, is in the marts)"
        )


def reporting_window(con: duckdb.DuckDBPyConnection, as_of: date) -> Window:
    """The last complete month on or before ``as_of`` that retention_monthly holds, else the
    month of as_of to date."""
    current = as_of.replace(day=1)
    whole = Window(as_of, current, to_date=False)
    if whole.month_complete:
        return whole
    previous = (current - timedelta(days=1)).replace(day=1)
    (earlier,) = con.execute(
        "select count(*) from retention_monthly where month <= ?", [previous]
    ).fetchone()
    if earlier:
        return Window(as_of, previous, to_date=False)
    return Window(as_of, current, to_date=True)


def _note(fig: go.Figure, text: str, size: int, **position: object) -> None:
    """A line of grey text on a chart, placed in its paper coordinates."""
    fig.add_annotation(
        text=html.escape(text),
        xref="paper",
        yref="paper",
        showarrow=False,
        font={"size": size, "color": "#5b6472"},
        **position,
    )


def _no_data(fig: go.Figure, reason: str) -> go.Figure:
    """A chart without data says why, rather than showing bare axes."""
    _note(fig, reason, 14, x=0.5, y=0.5)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    return fig


def _monthly_axis(fig: go.Figure, months: pd.Series) -> None:
    """Months as months: with one or two points plotly zooms a date axis to milliseconds."""
    fig.update_xaxes(tickformat="%b %Y")
    if 0 < months.nunique() <= 2:
        first, last = pd.Timestamp(months.min()), pd.Timestamp(months.max())
        fig.update_xaxes(
            dtick="M1", range=[first - pd.Timedelta(days=20), last + pd.Timedelta(days=20)]
        )


def _frame(con: duckdb.DuckDBPyConnection, sql: str) -> pd.DataFrame:
    """Query result as pandas, decimals as floats."""
    return con.execute(sql).df()


def _layout(fig: go.Figure, title: str, height: int = 380) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0.01, "font": {"size": 15}},
        height=height,
        margin={"l": 60, "r": 20, "t": 50, "b": 45},
        template="plotly_white",
        colorway=PALETTE,
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def _kpis(con: duckdb.DuckDBPyConnection, window: Window) -> list[tuple[str, str]]:
    row = _frame(
        con,
        f"""
        select * from retention_monthly
        where segment_type = 'all' and month <= {window.sql_through}
        order by month desc limit 1
        """,
    )
    if row.empty:
        raise UserError("retention_monthly is empty in serving; nothing to report")
    r = row.iloc[0]

    def pct(value) -> str:
        return "n/a" if pd.isna(value) else f"{100 * float(value):.1f} %"

    return [
        ("Customer retention rate", pct(r["customer_retention_rate"])),
        ("Churn rate", pct(r["churn_rate"])),
        ("Repeat purchase rate", pct(r["repeat_purchase_rate"])),
        ("Active customers", f"{int(r['active_customers']):,}"),
        ("New customers", f"{int(r['new_customers']):,}"),
        ("Reactivated customers", f"{int(r['reactivated_customers']):,}"),
        ("Revenue", f"{float(r['revenue']):,.0f}"),
    ]


def _through(window: Window) -> str:
    """customer_cohorts' rows whose calendar month (cohort month + period) the window shows."""
    return f"cohort_month + to_months(period_number::integer) <= {window.sql_through}"


def _cohort_heatmap(con, window: Window) -> go.Figure:
    data = _frame(
        con,
        f"""
        select strftime(cohort_month, '%Y-%m') as cohort, period_number, retention_rate
        from customer_cohorts
        where segment_type = 'all' and period_number <= 24 and {_through(window)}
          and cohort_month >= {window.sql_through} - interval 24 month
        order by cohort_month, period_number
        """,
    )
    grid = data.pivot(index="cohort", columns="period_number", values="retention_rate")
    if len(grid):  # a month without new customers keeps its row, empty, rather than vanish
        months = pd.period_range(grid.index[0], grid.index[-1], freq="M").strftime("%Y-%m")
        grid = grid.reindex(months)
    later = data.loc[data["period_number"] > 0, "retention_rate"]
    # period 0 is 100 % by definition; scale the colours to the later months
    top = float(later.quantile(0.98)) * 100 if len(later) else 100.0
    fig = go.Figure(
        go.Heatmap(
            z=grid.to_numpy() * 100,
            zmin=0,
            zmax=max(top, 1.0),
            x=[str(c) for c in grid.columns],
            y=list(grid.index),
            colorscale="Blues",
            colorbar={"title": "%"},
            hovertemplate="cohort %{y}, month %{x}: %{z:.1f} %<extra></extra>",
        )
    )
    # categories: plotly reads "2025-12" as a date, and zooms one cohort to milliseconds
    fig.update_yaxes(autorange="reversed", title="cohort (first purchase)", type="category")
    fig.update_xaxes(type="category")
    fig.update_xaxes(title="months since first purchase")
    return _layout(fig, "Cohort retention: share of each cohort purchasing, by month", 520)


def _curves(con, segment_type: str, title: str, window: Window) -> go.Figure:
    data = _frame(
        con,
        f"""
        select segment_value, period_number, sum(cohort_size) as customers,
               sum(active_customers) / sum(cohort_size) as retention_rate
        from customer_cohorts
        where segment_type = '{segment_type}' and period_number between 1 and 24
          and {_through(window)}
        group by 1, 2 order by 1, 2
        """,
    )
    fig = go.Figure()
    if data.empty:
        _no_data(fig, "no cohort has a complete month after its first yet")
    for value, part in data.groupby("segment_value"):
        fig.add_trace(
            go.Scatter(
                x=part["period_number"],
                y=part["retention_rate"] * 100,
                customdata=part["customers"],
                name=str(value),
                mode="lines",
                # the tail of a curve comes from the oldest cohorts only: say how many
                hovertemplate="month %{x}: %{y:.1f} % of %{customdata:,} customers",
            )
        )
    fig.update_layout(showlegend=True)  # one channel alone would have no name
    fig.update_xaxes(title="months since first purchase")
    fig.update_yaxes(title="% of cohort purchasing")
    return _layout(fig, title)


def _phases(con, window: Window) -> go.Figure:
    data = _frame(
        con,
        f"""
        select segment_value, retention_phase,
               sum(active_customers) / sum(cohort_size) as retention_rate
        from customer_cohorts
        where segment_type = 'acquisition_channel' and retention_phase != 'acquisition'
          and {_through(window)}
        group by 1, 2
        """,
    )
    fig = go.Figure()
    if data.empty:
        _no_data(fig, "no cohort has a complete month after its first yet")
    for phase in ("early", "mid", "late"):
        part = data[data["retention_phase"] == phase].sort_values("segment_value")
        fig.add_trace(go.Bar(x=part["segment_value"], y=part["retention_rate"] * 100, name=phase))
    fig.update_layout(barmode="group")
    fig.update_yaxes(title="% of cohort purchasing per month")
    return _layout(fig, f"{phase_title(con)} retention by channel")


def phase_title(con) -> str:
    """ "Early (months 1-3), mid (4-6) and late (7+)", from the months the phases hold in the
    published cohorts (var retention_phase_bounds); a phase no cohort reached yet is left out."""
    spans = dict(
        (phase, (first, last))
        for phase, first, last in con.execute(
            "select retention_phase, min(period_number), max(period_number) "
            "from customer_cohorts group by 1"
        ).fetchall()
    )
    parts = []
    for phase in (p for p in ("early", "mid", "late") if p in spans):
        first, last = spans[phase]
        months = f"{first}-{last}" if last > first else f"{first}"
        if phase == "late":
            months = f"{first}+"
        if not parts:  # the first names the unit: "Early (months 1-3)", "Early (month 1)"
            phase = phase.capitalize()
            months = ("month " if months == str(first) else "months ") + months
        parts.append(f"{phase} ({months})")
    if not parts:
        return "Early, mid and late"
    return ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]


def _trend(con, window: Window, days: int | None) -> go.Figure:
    """``days``: churn_inactivity_days (``churn_window``), for the warm-up months."""
    data = _frame(
        con,
        f"""
        select month, customer_retention_rate, churn_rate from retention_monthly
        where segment_type = 'all' and customers_start > 0 and month <= {window.sql_through}
        order by month
        """,
    )
    fig = go.Figure()
    if data.empty:
        _no_data(fig, "needs a month that starts with customers: one more month of orders")
    fig.add_trace(
        go.Scatter(
            x=data["month"],
            y=data["customer_retention_rate"] * 100,
            name="customer retention rate",
            mode="lines+markers",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=data["month"], y=data["churn_rate"] * 100, name="churn rate", mode="lines+markers"
        )
    )
    fig.update_yaxes(title="%")
    _monthly_axis(fig, data["month"])
    warm = warm_up_months(con, data["month"], days)
    if len(warm):  # months whose churn is 0 by definition, not by loyalty
        half_month = pd.Timedelta(days=15)
        fig.add_vrect(
            x0=pd.Timestamp(warm.min()) - half_month,
            x1=pd.Timestamp(warm.max()) + half_month,
            fillcolor="#d9dde3",
            opacity=0.5,
            line_width=0,
            layer="below",
        )
        _note(
            fig,
            f"shaded: nobody {days} days without a purchase yet, so no churn",
            12,
            x=0,
            y=1.08,
            xanchor="left",
        )
    return _layout(fig, "Monthly customer retention rate and churn rate")


def churn_window(con, manifest: dict | None) -> int | None:
    """The build's churn_inactivity_days: from the published manifest, else (a release of an
    earlier version) read back from customers, whose churned_at is the last purchase's day plus
    it; None then while nobody has churned."""
    days = (manifest or {}).get("churn_inactivity_days")
    if isinstance(days, int):
        return days
    (days,) = con.execute(
        "select max(churned_at - cast(last_purchase_at as date)) from customers "
        "where churned_at is not null"
    ).fetchone()
    return days


def warm_up_months(con, months: pd.Series, days: int | None) -> pd.Series:
    """The months among ``months`` that end before anyone can have churned: a customer churns
    churn_inactivity_days after the last purchase, so until that long after the first purchase
    of all, every month's churn is 0 and its retention 100 % by definition. ``days`` is
    churn_inactivity_days (``churn_window``)."""
    (first,) = con.execute("select min(cast(first_purchase_at as date)) from customers").fetchone()
    if days is None or first is None or months.empty:
        return months.iloc[:0]
    month_ends = pd.to_datetime(months) + pd.offsets.MonthEnd(0)
    return months[month_ends < pd.Timestamp(first + timedelta(days=days))]


def horizon_text(days: int | None) -> str:
    """The CLV horizon (var clv_horizon_days) in words: "next 12 months" for 365 days."""
    if days is None:
        return "no horizon (nothing predicted)"
    if days % 365 == 0:
        return f"next {12 * days // 365} months"
    return f"next {days} days"


def _clv_distribution(con, horizon: int | None) -> go.Figure:
    data = _frame(
        con, "select predicted_clv from customer_lifetime_value where predicted_clv is not null"
    )
    cap = float(data["predicted_clv"].quantile(0.99)) if len(data) else 0.0
    fig = go.Figure(go.Histogram(x=data["predicted_clv"].clip(upper=cap), nbinsx=50))
    if data.empty:
        _no_data(fig, "no predictions: clv_model_parameters' status says why")
    fig.update_xaxes(
        title=f"predicted CLV, {horizon_text(horizon)} (capped at the 99th percentile)"
    )
    fig.update_yaxes(title="customers")
    return _layout(fig, "Predicted customer lifetime value (BG/NBD + Gamma-Gamma)")


def _clv_cac(con, window: Window) -> go.Figure:
    data = _frame(
        con,
        f"""
        select acquisition_channel,
               max(historical_clv) as historical_clv,
               -- a month without spend data is unknown, not free: its new customers are left
               -- out of the CAC, as channel_economics leaves its CAC null
               sum(acquisition_spend)
                   / nullif(sum(new_customers) filter (where acquisition_spend is not null), 0)
                   as cac,
               count(acquisition_spend) as months_with_spend,
               count(*) as months
        from channel_economics
        where month > {window.sql_through} - interval 12 month
          and month <= {window.sql_through}
        group by 1 order by 1
        """,
    )
    data["cac"] = data["cac"].where(data["cac"] > 0)
    data["ratio"] = data["historical_clv"] / data["cac"]
    shown = data[data["ratio"].notna()]
    fig = go.Figure(go.Bar(x=shown["acquisition_channel"], y=shown["ratio"]))
    if shown.empty:
        if data["cac"].notna().any():
            reason = "no historical CLV yet: no churn in the last 12 complete months (clv_summary)"
        else:
            reason = "no acquisition spend landed for these months (marketing_spend files)"
        _no_data(fig, reason)
    else:
        fig.add_hline(y=3, line_dash="dot", annotation_text="3 : 1")
        unpaid = data.loc[data["cac"].isna(), "acquisition_channel"].astype(str).tolist()
        notes = []
        if unpaid:  # direct, organic: no spend, so no ratio
            notes.append("no acquisition spend: " + ", ".join(unpaid))
        partial = shown[shown["months_with_spend"] < shown["months"]]
        if not partial.empty:
            notes.append(
                "CAC from the months with spend data only: "
                + ", ".join(
                    f"{row.acquisition_channel} {row.months_with_spend} of {row.months}"
                    for row in partial.itertuples()
                )
            )
        if notes:
            _note(fig, "; ".join(notes), 12, x=1, y=1.08, xanchor="right")
    fig.update_yaxes(title="historical CLV / CAC (last 12 months)")
    return _layout(fig, "CLV : CAC by acquisition channel")


def _nps(con, window: Window) -> go.Figure:
    data = _frame(
        con,
        "select month, nps, responses from nps_monthly "
        f"where segment_type = 'all' and responses > 0 and month <= {window.sql_through} "
        "order by month",
    )
    fig = go.Figure(go.Scatter(x=data["month"], y=data["nps"], mode="lines+markers", name="NPS"))
    fig.update_yaxes(title="NPS", range=[-100, 100])
    if data.empty:
        _no_data(fig, "no NPS responses landed for these months (nps_responses files)")
    _monthly_axis(fig, data["month"])
    return _layout(fig, "Net Promoter Score by month")


def _winback_table(con, limit: int = 20) -> str:
    data = _frame(
        con,
        f"""
        select winback_rank, customer_id, acquisition_channel, region, rfm_segment,
               days_since_last_purchase, purchase_count, total_revenue,
               round(p_alive, 3) as p_alive, predicted_clv
        from winback_candidates order by winback_rank limit {int(limit)}
        """,
    )
    if data.empty:
        return (
            "<p class='empty'>No customer qualifies yet: a candidate has purchased and been "
            "inactive for at least <code>winback_min_inactive_days</code>.</p>"
        )
    header = "".join(f"<th>{html.escape(c.replace('_', ' '))}</th>" for c in data.columns)
    rows = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape('' if pd.isna(v) else str(v))}</td>" for v in row)
        + "</tr>"
        for row in data.itertuples(index=False)
    )
    return f"<table class='winback'><thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table>"


STYLE = """
body { font-family: -apple-system, Segoe UI, Roboto, Helvetica, Arial, sans-serif; margin: 0;
       color: #1d2330; background: #f5f6f8; }
header { background: #1f3a4d; color: white; padding: 24px 32px; }
header h1 { margin: 0 0 4px 0; font-size: 24px; }
main { padding: 16px 32px 48px; max-width: 1400px; }
.kpis { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 12px; }
.kpi { background: white; border-radius: 8px; padding: 14px 16px; box-shadow: 0 1px 2px #0002; }
.kpi .label { font-size: 12px; color: #5b6472; text-transform: uppercase; letter-spacing: .04em; }
.kpi .value { font-size: 26px; font-weight: 600; margin-top: 4px; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(600px, 1fr)); gap: 16px;
        margin-top: 16px; }
.card { background: white; border-radius: 8px; padding: 8px; box-shadow: 0 1px 2px #0002;
        min-width: 0; }
.card.wide { grid-column: 1 / -1; }
h2 { font-size: 18px; margin: 28px 0 8px; }
table.winback { border-collapse: collapse; width: 100%; background: white; font-size: 13px; }
table.winback th, table.winback td { padding: 6px 8px; border-bottom: 1px solid #e4e7eb;
                                      text-align: left; }
table.winback th { background: #eef1f4; }
p.empty { color: #5b6472; }
dl.definitions { font-size: 13px; background: white; border-radius: 8px; padding: 8px 16px;
                 box-shadow: 0 1px 2px #0002; }
dl.definitions dt { font-weight: 600; margin-top: 8px; }
dl.definitions dd { margin: 2px 0 8px 0; color: #3a4250; }
footer { color: #5b6472; font-size: 12px; padding: 0 32px 24px; }
"""


def _definitions(days: int | None, horizon: int | None) -> str:
    """What the figures mean, with the build's own settings (``days``: churn_window;
    ``horizon``: clv_horizon_days): a reader of the file has neither the marts' documentation
    nor the dbt vars at hand."""
    window = f"{days} days" if days is not None else "churn_inactivity_days (nobody churned yet)"
    terms = [
        (
            "Purchase",
            "a completed order; cancelled, refunded and pending orders are not purchases and "
            "carry no revenue. Months are calendar months in UTC.",
        ),
        ("Active customer", f"at least one purchase in the last {window}."),
        (
            "Customer retention rate",
            "(customers active at the end of the month − new customers of the month) / "
            "customers active at its start.",
        ),
        (
            "Churn rate",
            "customers active at the start of the month and not at its end / customers active "
            f"at its start. A customer churns {window} after the last purchase.",
        ),
        (
            "Cohort retention",
            "the share of a cohort (the customers whose first purchase was in that month) "
            "with a purchase in the n-th month after it; month 0 is 100 %.",
        ),
        (
            "Predicted CLV",
            f"the value of the purchases expected over the {horizon_text(horizon)}, discounted "
            "(BG/NBD for the number of purchase days, Gamma-Gamma for their value).",
        ),
        (
            "CLV : CAC",
            "historical CLV (average order value × purchases per year × expected lifespan in "
            "years, 1 / annual churn) / acquisition spend per new customer, last 12 months.",
        ),
        ("NPS", "% promoters (scores 9-10) − % detractors (0-6)."),
    ]
    items = "".join(
        f"<dt>{html.escape(term)}</dt><dd>{html.escape(text)}</dd>" for term, text in terms
    )
    return f"<dl class='definitions'>{items}</dl>"


def _manifest(paths: Paths) -> dict | None:
    """The published release's manifest, if it can be read."""
    try:
        manifest = published_manifest(paths)
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _published_currency(manifest: dict | None) -> str:
    """ " · amounts in USD" from the published manifest, or nothing when it does not say."""
    currency = (manifest or {}).get("reporting_currency")
    return f" &middot; amounts in {html.escape(currency)}" if isinstance(currency, str) else ""


def build_report(paths: Paths, progress: Callable[[str], None] | None = None) -> Report:
    """Write the report from serving/serving.duckdb (the validated, published copy)."""
    say = progress or log.info
    database = paths.serving / "serving.duckdb"
    if not database.exists():
        raise UserError(f"{database} does not exist: run `retention publish` first")
    con = duckdb.connect(str(database), read_only=True)
    try:
        manifest_as_of = con.execute("select max(as_of_date) from customers").fetchone()[0]
        if manifest_as_of is None:
            raise UserError("customers is empty in serving; nothing to report")
        manifest = _manifest(paths)
        currency = _published_currency(manifest)
        days = churn_window(con, manifest)
        # the CLV horizon (var clv_horizon_days): the chart's axis and the definitions
        (horizon,) = con.execute("select max(horizon_days) from customer_lifetime_value").fetchone()
        window = reporting_window(con, manifest_as_of)
        kpis = _kpis(con, window)
        figures = [
            _cohort_heatmap(con, window),
            _curves(con, "acquisition_channel", "Retention curves by acquisition channel", window),
            _curves(con, "region", "Retention curves by region", window),
            _phases(con, window),
            _trend(con, window, days),
            _clv_distribution(con, horizon),
            _clv_cac(con, window),
            _nps(con, window),
        ]
        winback = _winback_table(con)
        definitions = _definitions(days, horizon)
    except duckdb.IOException as exc:
        if "No files found" not in str(exc):
            raise
        # the views name the release's Parquet files by absolute path
        raise UserError(
            f"the published views point at Parquet files that are not there ({exc}); was the "
            "data directory moved?\n  what to do: run `retention publish` again (it writes the "
            "views for where the data directory is now), then `retention report`"
        ) from exc
    finally:
        con.close()
    charts = "".join(
        f"<div class='card{' wide' if i == 0 else ''}'>"
        + fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            config={"displaylogo": False, "responsive": True},
        )
        + "</div>"
        for i, fig in enumerate(figures)
    )
    kpi_html = "".join(
        f"<div class='kpi'><div class='label'>{html.escape(label)}</div>"
        f"<div class='value'>{html.escape(value)}</div></div>"
        for label, value in kpis
    )
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Customer retention report, as of {manifest_as_of}</title>
<style>{STYLE}</style>
<script>{get_plotlyjs()}</script>
</head>
<body>
<header>
  <h1>Customer retention</h1>
  <div>As of {manifest_as_of} &middot; {html.escape(window.heading())}{currency}</div>
</header>
<main>
  <div class="kpis">{kpi_html}</div>
  <div class="grid">{charts}</div>
  <h2>Top win-back candidates</h2>
  {winback}
  <h2>Definitions</h2>
  {definitions}
</main>
<footer>Built from the published serving copy on {generated}.</footer>
</body>
</html>
"""
    paths.reports.mkdir(parents=True, exist_ok=True)
    target = paths.reports / REPORT_NAME
    write_whole(target, page)
    say(f"  report: {target} ({len(figures)} charts)")
    return Report(target, len(figures), str(manifest_as_of))
