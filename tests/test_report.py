"""The HTML report: built from serving only, self-contained, and rendered by a real browser."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from retention.report import build_report, phase_title
from tests.conftest import Warehouse, quiet

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def report(published: Warehouse):
    return build_report(published.paths, progress=quiet)


def test_report_is_self_contained_and_has_no_pii(report) -> None:
    page = report.path.read_text(encoding="utf-8")
    assert report.path.name == "retention_report.html" and report.charts == 8
    assert not re.search(r"<script[^>]+src=", page)  # plotly.js is inlined, no CDN
    # nothing fetched from the web (the inlined plotly.js bundle itself is skipped)
    markup = re.sub(r"<script>.*?</script>", "", page, count=1, flags=re.S)
    assert not re.search(r"""(src|href)=["']https?://""", markup)
    assert "@example." not in page  # emails never reach the report
    for label in (
        "Customer retention rate",
        "Churn rate",
        "Repeat purchase rate",
        "Active customers",
        "New customers",
        "Reactivated customers",
        "Revenue",
        "Top win-back candidates",
    ):
        assert label in page
    assert page.count("class='card") == 8
    assert "&middot; amounts in USD</div>" in page  # the currency publish recorded


def test_report_refuses_without_a_published_copy(tmp_path: Path) -> None:
    from retention.config import Paths
    from retention.errors import UserError

    with pytest.raises(UserError, match="run `retention publish` first"):
        build_report(Paths(tmp_path))


def test_a_moved_data_directory_is_named_with_what_to_do(
    published: Warehouse, tmp_path: Path
) -> None:
    """The published views name their Parquet files by absolute path (README): after a move,
    the report says to publish again, not to check the disk."""
    from retention import publish
    from retention.config import Paths
    from retention.errors import UserError

    before = tmp_path / "before"
    shutil.copytree(published.paths.data_dir, before, symlinks=True)
    publish.publish(Paths(before), progress=quiet)
    after = before.rename(tmp_path / "after")
    with pytest.raises(UserError, match="run `retention publish` again"):
        build_report(Paths(after), progress=quiet)
    publish.publish(Paths(after), progress=quiet)
    assert build_report(Paths(after), progress=quiet).path.exists()


@pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)",
)
def test_every_chart_renders_in_headless_chromium(report) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,3400",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(report.path.as_uri())
        WebDriverWait(driver, 60).until(
            lambda d: (
                d.execute_script(
                    "return document.querySelectorAll('.js-plotly-plot .main-svg').length"
                )
                >= 8
            )
        )
        marks = driver.execute_script("""
            return Array.from(document.querySelectorAll('.js-plotly-plot')).map(plot =>
                plot.querySelectorAll('.main-svg path, .main-svg rect, .main-svg image').length);
        """)
        assert len(marks) == 8 and all(count > 0 for count in marks), marks
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "retention_report.png"))
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
    finally:
        driver.quit()
    assert (ARTIFACTS / "retention_report.png").stat().st_size > 50_000


def test_dbt_docs_generate_with_exposures_and_metrics(published: Warehouse) -> None:
    import json

    from retention import dbt

    dbt.run_dbt(["docs", "generate"], published.paths)
    target = published.paths.dbt_target
    assert (target / "index.html").stat().st_size > 10_000
    catalog = json.loads((target / "catalog.json").read_text())
    assert "customer_retention_rate" in str(
        catalog["nodes"]["model.retention.retention_monthly"]["columns"]
    )
    manifest = json.loads((target / "manifest.json").read_text())
    assert {
        "exposure.retention.retention_report",
        "exposure.retention.bi_retention_dashboard",
    } <= set(manifest["exposures"])
    metrics = {m["name"] for m in manifest["metrics"].values()}
    assert {
        "customer_retention_rate",
        "churn_rate",
        "repeat_purchase_rate",
        "revenue",
        "average_predicted_clv",
    } <= metrics
    assert len(manifest["semantic_models"]) == 3


@pytest.mark.parametrize(
    ("periods", "title"),
    [
        (
            {"early": (1, 3), "mid": (4, 6), "late": (7, 30)},
            "Early (months 1-3), mid (4-6) and late (7+)",
        ),
        (
            {"early": (1, 1), "mid": (2, 12), "late": (13, 13)},
            "Early (month 1), mid (2-12) and late (13+)",
        ),
        ({"early": (1, 2)}, "Early (months 1-2)"),
    ],
)
def test_the_phase_chart_names_the_months_of_its_phases(periods, title) -> None:
    """The phases follow var retention_phase_bounds; the chart's title says which months."""
    con = duckdb.connect()
    con.execute("create table customer_cohorts (retention_phase varchar, period_number int)")
    con.execute("insert into customer_cohorts values ('acquisition', 0)")
    for phase, (first, last) in periods.items():
        for period in range(first, last + 1):
            con.execute("insert into customer_cohorts values (?, ?)", [phase, period])
    assert phase_title(con) == title


@pytest.mark.parametrize(
    ("days", "text"),
    [(365, "next 12 months"), (730, "next 24 months"), (90, "next 90 days"), (None, "no horizon")],
)
def test_the_clv_chart_says_the_horizon_of_the_build(days, text) -> None:
    """var clv_horizon_days, not a fixed "12 months"."""
    from retention.report import horizon_text

    assert horizon_text(days).startswith(text)


def _monthly(con, rows) -> None:
    """A serving copy's retention_monthly with ``rows``, and its customer_cohorts and customers
    tables, empty."""
    con.execute(
        "create table customer_cohorts (cohort_month date, period_number int, segment_type "
        "varchar, segment_value varchar, cohort_size int, active_customers int, "
        "retention_rate double, retention_phase varchar)"
    )
    con.execute(
        "create table customers (first_purchase_at timestamp, last_purchase_at timestamp, "
        "churned_at date)"
    )
    con.execute(
        "create table retention_monthly (month date, segment_type varchar, customers_start int, "
        "customer_retention_rate double, churn_rate double, repeat_purchase_rate double, "
        "active_customers int, new_customers int, reactivated_customers int, revenue double)"
    )
    for month, retention, new, revenue in rows:
        con.execute(
            "insert into retention_monthly values (?, 'all', 100, ?, ?, 0.25, 50, ?, 3, ?)",
            [month, retention, 1 - retention, new, revenue],
        )


@pytest.mark.parametrize(
    ("as_of", "through", "heading"),
    [
        (
            "2025-12-10",
            "2025-11-01",
            "headline figures and charts for complete months, through November 2025 "
            "(December 2025 to date, 10 of 31 days, is in the marts)",
        ),
        ("2025-12-31", "2025-12-01", "headline figures for December 2025"),
        ("2024-02-29", "2024-02-01", "headline figures for February 2024"),  # leap day ends it
        ("2024-02-28", "2024-01-01", None),
    ],
)
def test_the_headline_figures_are_of_the_last_complete_month(as_of, through, heading) -> None:
    """The marts hold the month of as_of to date: ten days of new customers and revenue are not
    a month's, so the headline figures are the last complete month's, and the heading says so."""
    from datetime import date

    from retention.report import _kpis, reporting_window

    con = duckdb.connect()
    months = ["2024-01-01", "2024-02-01", "2025-11-01", "2025-12-01"]
    _monthly(con, [(m, 0.5 + i / 10, 10 * (i + 1), 1000.0 * (i + 1)) for i, m in enumerate(months)])
    window = reporting_window(con, date.fromisoformat(as_of))
    assert window.through == date.fromisoformat(through) and not window.to_date
    if heading:
        assert window.heading() == heading
    kpis = dict(_kpis(con, window))
    i = months.index(through)
    assert kpis["New customers"] == f"{10 * (i + 1)}"
    assert kpis["Customer retention rate"] == f"{100 * (0.5 + i / 10):.1f} %"
    assert kpis["Revenue"] == f"{1000 * (i + 1):,}"


def test_a_first_month_not_yet_complete_is_shown_to_date() -> None:
    from datetime import date

    from retention.report import _kpis, _trend, reporting_window

    con = duckdb.connect()
    _monthly(con, [("2025-12-01", 0.0, 28, 14652.0)])
    window = reporting_window(con, date(2025, 12, 10))
    assert window.to_date and window.through == date(2025, 12, 1)
    assert window.heading() == "headline figures for December 2025 to date (10 of 31 days)"
    assert dict(_kpis(con, window))["New customers"] == "28"
    # one month: the axis spans days around it with monthly ticks, not milliseconds
    axis = _trend(con, window, None).layout.xaxis
    assert axis.dtick == "M1" and axis.tickformat == "%b %Y"
    assert (pd.Timestamp(axis.range[1]) - pd.Timestamp(axis.range[0])).days == 40


def test_cohort_charts_end_at_the_last_complete_month() -> None:
    """A cohort's period that falls in the month of as_of holds ten days of purchases: the
    heatmap, curves and phases leave those cells out rather than show a drop."""
    from datetime import date

    from retention.report import _cohort_heatmap, _curves, reporting_window

    con = duckdb.connect()
    _monthly(con, [("2025-10-01", 0.0, 10, 1.0), ("2025-11-01", 0.5, 10, 1.0)])
    cells = [
        ("2025-10-01", 0, 10, 10),
        ("2025-10-01", 1, 10, 6),  # November
        ("2025-10-01", 2, 10, 1),  # December, to date
        ("2025-11-01", 0, 20, 20),
        ("2025-11-01", 1, 20, 2),  # December, to date
    ]
    for cohort, period, size, active in cells:
        for segment_type, value in (("all", "all"), ("acquisition_channel", "email")):
            con.execute(
                "insert into customer_cohorts values (?, ?, ?, ?, ?, ?, ?, 'early')",
                [cohort, period, segment_type, value, size, active, active / size],
            )
    window = reporting_window(con, date(2025, 12, 10))
    heatmap = _cohort_heatmap(con, window).data[0]
    assert list(heatmap.y) == ["2025-10", "2025-11"] and list(heatmap.x) == ["0", "1"]
    assert heatmap.z[0].tolist() == [100.0, 60.0]
    assert heatmap.z[1][0] == 100.0 and pd.isna(heatmap.z[1][1])
    curve = _curves(con, "acquisition_channel", "curves", window).data[0]
    assert list(curve.x) == [1] and list(curve.y) == [60.0]  # 6 of 10, not (6 + 2) of 30
    assert list(curve.customdata) == [10]


def test_a_month_without_new_customers_keeps_its_heatmap_row() -> None:
    """Cohort labels are categories: a month nobody first bought in would vanish from the axis,
    and the rows below it would sit one month off from where a reader counts them."""
    from datetime import date

    from retention.report import _cohort_heatmap, reporting_window

    con = duckdb.connect()
    _monthly(con, [("2025-09-01", 0.0, 10, 1.0), ("2025-11-01", 0.5, 10, 1.0)])
    for cohort, period, rate in [
        ("2025-09-01", 0, 1.0),
        ("2025-09-01", 1, 0.5),
        ("2025-09-01", 2, 0.3),
        ("2025-11-01", 0, 1.0),
    ]:
        con.execute(
            "insert into customer_cohorts values (?, ?, 'all', 'all', 10, ?, ?, 'early')",
            [cohort, period, int(rate * 10), rate],
        )
    heatmap = _cohort_heatmap(con, reporting_window(con, date(2025, 11, 30))).data[0]
    assert list(heatmap.y) == ["2025-09", "2025-10", "2025-11"]
    assert heatmap.z[0].tolist() == [100.0, 50.0, 30.0]
    assert pd.isna(heatmap.z[1]).all() and heatmap.z[2][0] == 100.0


def test_the_trend_shades_the_months_nobody_could_churn_in() -> None:
    """A customer churns churn_inactivity_days after the last purchase: until that long after
    the shop's first purchase, churn is 0 and retention 100 % by definition, and the chart and
    the definitions say so with the build's own number of days."""
    from datetime import date

    from retention.report import (
        _definitions,
        _trend,
        churn_window,
        reporting_window,
        warm_up_months,
    )

    con = duckdb.connect()
    months = ["2025-01-01", "2025-02-01", "2025-03-01", "2025-04-01", "2025-05-01"]
    _monthly(con, [(m, 1.0, 10, 1.0) for m in months])
    con.execute(
        "insert into customers values "
        "('2025-01-10 08:00', '2025-01-10 08:00', date '2025-04-10'), "  # 90 days later
        "('2025-02-03 23:30', '2025-05-02 10:00', null)"
    )
    con.execute("create table customer_lifetime_value (horizon_days int)")
    con.execute("insert into customer_lifetime_value values (365)")
    # March ends on the 31st, before anyone can churn on 10 April; April can have churn
    warm = warm_up_months(con, pd.Series(pd.to_datetime(months)), 90)
    assert [m.strftime("%Y-%m") for m in warm] == ["2025-01", "2025-02", "2025-03"]
    window = reporting_window(con, date(2025, 5, 31))
    # a release of an earlier version: the days read back from a churned customer
    assert churn_window(con, {"reporting_currency": "USD"}) == 90
    figure = _trend(con, window, churn_window(con, None))
    (shade,) = figure.layout.shapes
    assert pd.Timestamp(shade.x0) < pd.Timestamp("2025-01-01") < pd.Timestamp(shade.x1)
    assert pd.Timestamp("2025-03-01") < pd.Timestamp(shade.x1) < pd.Timestamp("2025-04-01")
    assert "nobody 90 days without a purchase" in figure.layout.annotations[0].text
    text = _definitions(90, 365)
    assert "at least one purchase in the last 90 days" in text and "next 12 months" in text
    # nobody churned yet (a history shorter than the window): the published manifest has the
    # days, and every month is shaded
    con.execute("update customers set churned_at = null")
    assert churn_window(con, {"churn_inactivity_days": 180}) == 180
    (shade,) = _trend(con, window, 180).layout.shapes
    assert pd.Timestamp("2025-05-01") < pd.Timestamp(shade.x1)
    # a release of an earlier version, and nobody churned: unknown, nothing shaded
    assert churn_window(con, None) is None
    assert not _trend(con, window, None).layout.shapes
    assert "churn_inactivity_days (nobody churned yet)" in _definitions(None, 365)


def test_clv_to_cac_counts_the_new_customers_of_months_with_spend_data_only() -> None:
    """A month without spend rows is unknown, not free acquisition: with spend landed for one
    month of twelve, dividing it by the new customers of all twelve made the CAC twelve times
    too small and the ratio twelve times too large."""
    from datetime import date

    from retention.report import _clv_cac, reporting_window

    con = duckdb.connect()
    _monthly(con, [(f"2025-{m:02d}-01", 0.5, 10, 1.0) for m in range(1, 13)])
    con.execute(
        "create table channel_economics (month date, acquisition_channel varchar, "
        "new_customers int, acquisition_spend decimal(18, 2), historical_clv decimal(18, 2))"
    )
    for m in range(1, 13):
        # paid_social: 200 spent in January on 10 new customers; no spend data for the rest
        # seo: no spend at all; email: 50 a month on 5 new customers, every month
        con.execute(
            "insert into channel_economics values (?, 'paid_social', 10, ?, 60), "
            "(?, 'seo', 7, null, 40), (?, 'email', 5, 50, 30)",
            [date(2025, m, 1), 200 if m == 1 else None, date(2025, m, 1), date(2025, m, 1)],
        )
    for m in range(7, 13):  # tv: a channel since July, with spend every month of it
        con.execute("insert into channel_economics values (?, 'tv', 2, 20, 30)", [date(2025, m, 1)])
    figure = _clv_cac(con, reporting_window(con, date(2025, 12, 31)))
    bars = dict(zip(figure.data[0].x, figure.data[0].y, strict=True))
    assert bars == {"email": 30 / (600 / 60), "paid_social": 60 / (200 / 10), "tv": 30 / 10}
    (note,) = [a.text for a in figure.layout.annotations if "spend" in a.text]
    assert note == (
        "no acquisition spend: seo; CAC from the months with spend data only: paid_social 1 of 12"
    )
