"""The HTML retention report, built from the published serving copy only.

One self-contained file (plotly.js inlined once, no CDN, works offline) at
``$RETENTION_DATA_DIR/reports/retention_report.html``: headline KPIs, a cohort heatmap,
retention curves by channel and region, phase comparison, CRR and churn trend, CLV distribution
and CLV : CAC, top win-back candidates (no emails: serving has none) and the NPS trend.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
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


def _kpis(con: duckdb.DuckDBPyConnection) -> tuple[str, list[tuple[str, str]]]:
    row = _frame(
        con,
        """
        select * from retention_monthly
        where segment_type = 'all'
        order by month desc limit 1
        """,
    )
    if row.empty:
        raise UserError("retention_monthly is empty in serving; nothing to report")
    r = row.iloc[0]

    def pct(value) -> str:
        return "n/a" if pd.isna(value) else f"{100 * float(value):.1f} %"

    month = pd.Timestamp(r["month"]).strftime("%B %Y")
    return month, [
        ("Customer retention rate", pct(r["customer_retention_rate"])),
        ("Churn rate", pct(r["churn_rate"])),
        ("Repeat purchase rate", pct(r["repeat_purchase_rate"])),
        ("Active customers", f"{int(r['active_customers']):,}"),
        ("New customers", f"{int(r['new_customers']):,}"),
        ("Reactivated customers", f"{int(r['reactivated_customers']):,}"),
        ("Revenue", f"{float(r['revenue']):,.0f}"),
    ]


def _cohort_heatmap(con) -> go.Figure:
    data = _frame(
        con,
        """
        select strftime(cohort_month, '%Y-%m') as cohort, period_number, retention_rate
        from customer_cohorts
        where segment_type = 'all' and period_number <= 24
          and cohort_month >= (select max(cohort_month) from customer_cohorts) - interval 24 month
        order by cohort_month, period_number
        """,
    )
    grid = data.pivot(index="cohort", columns="period_number", values="retention_rate")
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
    fig.update_yaxes(autorange="reversed", title="cohort (first purchase)")
    fig.update_xaxes(title="months since first purchase")
    return _layout(fig, "Cohort retention: share of each cohort purchasing, by month", 520)


def _curves(con, segment_type: str, title: str) -> go.Figure:
    data = _frame(
        con,
        f"""
        select segment_value, period_number,
               sum(active_customers) / sum(cohort_size) as retention_rate
        from customer_cohorts
        where segment_type = '{segment_type}' and period_number between 1 and 24
        group by 1, 2 order by 1, 2
        """,
    )
    fig = go.Figure()
    for value, part in data.groupby("segment_value"):
        fig.add_trace(
            go.Scatter(
                x=part["period_number"],
                y=part["retention_rate"] * 100,
                name=str(value),
                mode="lines",
            )
        )
    fig.update_xaxes(title="months since first purchase")
    fig.update_yaxes(title="% of cohort purchasing")
    return _layout(fig, title)


def _phases(con) -> go.Figure:
    data = _frame(
        con,
        """
        select segment_value, retention_phase,
               sum(active_customers) / sum(cohort_size) as retention_rate
        from customer_cohorts
        where segment_type = 'acquisition_channel' and retention_phase != 'acquisition'
        group by 1, 2
        """,
    )
    fig = go.Figure()
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


def _trend(con) -> go.Figure:
    data = _frame(
        con,
        """
        select month, customer_retention_rate, churn_rate from retention_monthly
        where segment_type = 'all' and customers_start > 0 order by month
        """,
    )
    fig = go.Figure()
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
    return _layout(fig, "Monthly customer retention rate and churn rate")


def horizon_text(days: int | None) -> str:
    """The CLV horizon (var clv_horizon_days) in words: "next 12 months" for 365 days."""
    if days is None:
        return "no horizon (nothing predicted)"
    if days % 365 == 0:
        return f"next {12 * days // 365} months"
    return f"next {days} days"


def _clv_distribution(con) -> go.Figure:
    data = _frame(
        con, "select predicted_clv from customer_lifetime_value where predicted_clv is not null"
    )
    cap = float(data["predicted_clv"].quantile(0.99)) if len(data) else 0.0
    (horizon,) = con.execute("select max(horizon_days) from customer_lifetime_value").fetchone()
    fig = go.Figure(go.Histogram(x=data["predicted_clv"].clip(upper=cap), nbinsx=50))
    fig.update_xaxes(
        title=f"predicted CLV, {horizon_text(horizon)} (capped at the 99th percentile)"
    )
    fig.update_yaxes(title="customers")
    return _layout(fig, "Predicted customer lifetime value (BG/NBD + Gamma-Gamma)")


def _clv_cac(con) -> go.Figure:
    data = _frame(
        con,
        """
        select acquisition_channel,
               max(historical_clv) as historical_clv,
               sum(acquisition_spend) / nullif(sum(new_customers), 0) as cac
        from channel_economics
        where month > (select max(month) from channel_economics) - interval 12 month
        group by 1 order by 1
        """,
    )
    data["ratio"] = data["historical_clv"] / data["cac"].where(data["cac"] > 0)
    fig = go.Figure(go.Bar(x=data["acquisition_channel"], y=data["ratio"]))
    fig.add_hline(y=3, line_dash="dot", annotation_text="3 : 1")
    fig.update_yaxes(title="historical CLV / CAC (last 12 months)")
    return _layout(fig, "CLV : CAC by acquisition channel")


def _nps(con) -> go.Figure:
    data = _frame(
        con,
        "select month, nps, responses from nps_monthly "
        "where segment_type = 'all' and responses > 0 order by month",
    )
    fig = go.Figure(go.Scatter(x=data["month"], y=data["nps"], mode="lines+markers", name="NPS"))
    fig.update_yaxes(title="NPS", range=[-100, 100])
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
footer { color: #5b6472; font-size: 12px; padding: 0 32px 24px; }
"""


def _published_currency(paths: Paths) -> str:
    """ " · amounts in USD" from the published manifest, or nothing when it does not say."""
    try:
        manifest = published_manifest(paths)
    except (OSError, ValueError):
        return ""
    currency = manifest.get("reporting_currency") if isinstance(manifest, dict) else None
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
        currency = _published_currency(paths)
        month, kpis = _kpis(con)
        figures = [
            _cohort_heatmap(con),
            _curves(con, "acquisition_channel", "Retention curves by acquisition channel"),
            _curves(con, "region", "Retention curves by region"),
            _phases(con),
            _trend(con),
            _clv_distribution(con),
            _clv_cac(con),
            _nps(con),
        ]
        winback = _winback_table(con)
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
  <div>As of {manifest_as_of} &middot; headline figures for {html.escape(month)}{currency}</div>
</header>
<main>
  <div class="kpis">{kpi_html}</div>
  <div class="grid">{charts}</div>
  <h2>Top win-back candidates</h2>
  {winback}
</main>
<footer>Built from the published serving copy on {generated}. Definitions: DECISIONLOG.md.</footer>
</body>
</html>
"""
    paths.reports.mkdir(parents=True, exist_ok=True)
    target = paths.reports / REPORT_NAME
    write_whole(target, page)
    say(f"  report: {target} ({len(figures)} charts)")
    return Report(target, len(figures), str(manifest_as_of))
