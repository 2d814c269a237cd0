"""The HTML report: built from serving only, self-contained, and rendered by a real browser."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import duckdb
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
