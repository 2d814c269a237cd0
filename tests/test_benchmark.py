"""The benchmark's plain-DuckDB yardstick computes the same core marts as the dbt models."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from benchmarks import bench, bench_days
from retention.generate import generate
from tests.conftest import GENERATED, Warehouse, quiet


def test_the_plain_duckdb_yardstick_agrees_with_the_marts(
    generated_build: Warehouse, tmp_path: Path
) -> None:
    """Two implementations of the same rules (dirty rows, versions, fx, churn window, RFM)
    give the same rows; a yardstick that drifted from the models would time other work."""
    shutil.copy(generated_build.paths.warehouse, tmp_path / "warehouse.duckdb")
    subprocess.run(
        [
            sys.executable,
            "-c",
            bench.PLAIN_RUNNER,
            str(bench.ROOT / "benchmarks" / "plain_duckdb.sql"),
            str(bench.ROOT / "seeds"),
            str(tmp_path / "yardstick.duckdb"),
            str(tmp_path / "warehouse.duckdb"),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    differences = bench.compare_plain(tmp_path)
    assert set(differences) == {
        f"{mart}: rows only in {side}"
        for mart in ("retention_monthly", "customer_cohorts", "customers")
        for side in ("plain", "wh")
    }
    assert differences == dict.fromkeys(differences, 0)


def test_the_benchmark_reports_every_landed_row(generated_build: Warehouse, tmp_path: Path) -> None:
    """The scale a benchmark states is what the warehouse received: every generated row, dirty
    rows and later versions included (the same arguments write the same files)."""
    written = generate(tmp_path / "landing", progress=quiet, **GENERATED)
    assert bench.landed_rows(generated_build.paths.data_dir) == written.rows
    assert written.rows["orders"] > written.rows["customers"] > 0


def test_the_benchmark_says_which_machine_and_how_fast_it_was() -> None:
    """Two machines of the same kind gave full runs of 122.8 and 233.3 s on the same code
    (README, runs 7 and 8): a report names the machine, the versions and the speed of fixed
    work, so that runs can be compared."""
    info = bench.machine()
    assert info["cpus"] == os.cpu_count()
    assert info["memory_gib"] > 0
    assert info["packages"]["duckdb"] == duckdb.__version__
    assert set(info["packages"]) == set(bench.PACKAGES)
    assert info["commit"] is None or re.fullmatch(r"[0-9a-f]{7,40}(-dirty)?", info["commit"])
    probes = bench.speed_probes(rows=200_000)
    threads = os.cpu_count() or 1
    assert set(probes) == {"aggregate_1_threads", f"aggregate_{threads}_threads", "write_table"}
    assert all(seconds > 0 for seconds in probes.values())
    text = bench.describe(info, {"before": probes})
    assert f"duckdb {duckdb.__version__}" in text
    assert "speed probes before: aggregate_1_threads" in text


def test_the_benchmark_profiles_a_dbt_run_from_its_run_results(tmp_path: Path) -> None:
    """Where a build's time went, from run_results.json: hooks are not nodes, the busy share is
    node seconds over threads x elapsed, and the slowest nodes come first."""
    target = tmp_path / "dbt" / "target"
    target.mkdir(parents=True)

    def node(unique_id: str, thread: str, seconds: float) -> dict:
        return {"unique_id": unique_id, "thread_id": thread, "execution_time": seconds}

    results = [
        node("operation.retention.retention-on-run-start-0", "Thread-1", 1.0),
        node("model.retention.int_customer_months", "Thread-1", 6.0),
        node("test.retention.unique_orders_order_id.fed79b3a6e", "Thread-2", 5.0),
        node("model.retention.customers", "Thread-2", 4.0),
    ]
    (target / "run_results.json").write_text(json.dumps({"elapsed_time": 10.0, "results": results}))
    profile = bench.dbt_profile(bench.run_results(tmp_path), slowest=2)
    # (6 + 5 + 4) s of nodes over 2 threads x 10 s; the hook's second is not a node's
    assert profile == {
        "elapsed_seconds": 10.0,
        "threads": 2,
        "busy_share": 0.75,
        "slowest": [
            {"node": "model.int_customer_months", "seconds": 6.0},
            {"node": "test.unique_orders_order_id.fed79b3a6e", "seconds": 5.0},
        ],
    }
    text = bench.describe_profile("incremental_build", profile)
    assert text.splitlines()[0] == (
        "incremental_build: 10.0 s on 2 threads, busy 75% of the time; slowest nodes:"
    )
    assert text.splitlines()[1].split() == ["6.00", "model.int_customer_months"]


def test_a_step_reports_its_cpu_seconds_with_its_childrens(tmp_path: Path) -> None:
    """A step's CPU seconds count the processes it starts (dbt runs in a child of the CLI): a
    parent that only waits for a busy child is charged the child's work, and its step timers
    ("build done in 1.5s") are read from its output."""
    busy_child = (
        "import time; end = time.process_time() + 0.5\nwhile time.process_time() < end: pass"
    )
    parent = (
        "import subprocess, sys; "
        f"subprocess.run([sys.executable, '-c', {busy_child!r}], check=True); "
        "print('    build done in 1.5s')"
    )
    result = bench.measure([sys.executable, "-c", parent], tmp_path)
    assert result["cpu_seconds"] >= 0.5
    assert result["cpu_seconds"] <= result["seconds"] * (os.cpu_count() or 1) + 0.1
    assert result["build seconds"] == 1.5
    assert result["peak_rss_mib"] > 0


def test_a_step_reports_its_own_peak_memory_not_the_benchmarks(tmp_path: Path) -> None:
    """A child started with vfork (as subprocess starts one) inherits its parent's peak resident
    memory on Linux: measured from a benchmark that had held half a gigabyte, every small step
    reported half a gigabyte (the floor's build at 1,000 customers: 1.8 GiB after the
    comparisons of a run at 1 M customers, 0.4 GiB alone). A failed step says so with its
    output."""
    ballast = bytearray(512 * 1024**2)
    ballast[::4096] = b"\x01" * len(ballast[::4096])
    small = "x = bytearray(64 * 1024**2)\nx[:: 4096] = b'\\x01' * len(x[:: 4096])"
    result = bench.measure([sys.executable, "-c", small], tmp_path)
    assert 64 <= result["peak_rss_mib"] < 256
    del ballast
    with pytest.raises(SystemExit, match=r"step .* failed:\n.*no such step"):
        bench.measure(
            [sys.executable, "-c", "import sys; print('no such step'); sys.exit(3)"], tmp_path
        )


def test_a_steps_memory_counts_its_processes_together(tmp_path: Path) -> None:
    """`retention run`'s CLI and its dbt process hold memory at the same time: the peak of the
    largest process alone (wait4) understates what the step needs; the tree's is sampled."""
    hold = "x = bytearray({mib} * 1024**2); x[::4096] = b'\\x01' * len(x[::4096]); {then}"
    child = hold.format(mib=300, then="import time; time.sleep(1.5)")
    parent = hold.format(
        mib=300, then=f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}])"
    )
    result = bench.measure([sys.executable, "-c", parent], tmp_path)
    assert 300 <= result["peak_rss_mib"] < 450
    assert result["peak_tree_pss_mib"] >= 600


def test_the_days_benchmark_runs_each_held_day_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bench_days builds the history, then lands and runs one held-back day at a time: each
    daily run is validated as of its own day (the generator dates nothing after END), and the
    warehouse's size and blocks are reported for every run."""
    monkeypatch.setattr(bench_days, "speed_probes", lambda: {"aggregate_1_threads": 0.0})
    out = tmp_path / "days.json"
    bench_days.main(
        ["--customers", "1000", "--days", "2", "--data-dir", str(tmp_path / "bench"),
         "--out", str(out)]
    )  # fmt: skip
    report = json.loads(out.read_text())
    runs = report["runs"]
    first, end = (bench.END - timedelta(days=1)).isoformat(), bench.END.isoformat()
    assert [r["day"] for r in runs] == ["history", first, end]
    # the history ends the day before the held days; each held day moves as_of_date to itself
    assert [r["as_of_date"] for r in runs] == [
        (bench.END - timedelta(days=2)).isoformat(), first, end,
    ]  # fmt: skip
    assert report["summary"]["daily_runs"] == len(runs) - 1
    for r in runs:
        assert r["file_mb"] > 0
        assert r["used_blocks"] + r["free_blocks"] == r["total_blocks"]
        assert r["build seconds"] > 0
    assert 0 < report["summary"]["compacted_mb"] <= runs[-1]["file_mb"]
    # the days' increments give what a full refresh does
    assert report["summary"]["incremental_vs_full_refresh_differences"] == []
    assert report["summary"]["incremental_vs_full_refresh_relations"] >= 30
    assert report["summary"]["full_refresh_build_seconds"] > 0


def test_fingerprints_tell_which_relations_two_builds_disagree_on(
    generated_build: Warehouse, tmp_path: Path
) -> None:
    """The benchmarks' comparison of increments with a full refresh: one changed value, a
    missing row or a missing relation is named; the landed rows and the increments' bookkeeping
    columns are not compared."""
    shutil.copy(generated_build.paths.warehouse, tmp_path / "warehouse.duckdb")
    before = bench.fingerprints(tmp_path)
    assert {"marts.customers", "marts.orders", "staging.int_customer_months"} <= set(before)
    assert {"reference.fx_rates", "quarantine.orders"} <= set(before)
    assert not any(name.startswith("raw.") for name in before)
    assert before["marts.customers"][0] == generated_build.scalar(
        "select count(*) from marts.customers"
    )
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        con.execute("update raw.orders set amount = '0'")
        con.execute("update staging.int_customer_months set _loaded_through = null")
    assert bench.differing(before, bench.fingerprints(tmp_path)) == []
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        con.execute(
            "update marts.customers set total_revenue = total_revenue + 0.01 "
            "where customer_id = (select min(customer_id) from marts.customers)"
        )
        con.execute(
            "delete from staging.int_customer_purchase_days "
            "where customer_id = (select min(customer_id) from staging.int_customer_purchase_days)"
        )
        con.execute("drop table marts.clv_summary")
    assert bench.differing(before, bench.fingerprints(tmp_path)) == [
        "marts.clv_summary", "marts.customers", "staging.int_customer_purchase_days",
    ]  # fmt: skip
    assert bench.same_as_full_refresh(3, []).endswith("all 3 relations identical")
    assert "DIFFERENT marts.customers" in bench.same_as_full_refresh(3, ["marts.customers"])
