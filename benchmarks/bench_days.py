"""Consecutive days: the daily job run after run, as the schedule runs it in production.

    python -m benchmarks.bench_days --customers 1000000 --days 14 [--out FILE]

N customers are generated with the days from END - DAYS + 1 on as daily landing files (a
file's day is its rows' version time; nothing is dated after END), and every daily file is held
back. The first `retention run` builds the history; then each day's
files land and `retention run` processes them incrementally, one day at a time, in order.

For every run: wall and CPU seconds, peak memory, the pipeline's step times, the as_of_date it
validated, and the warehouse file: its size and DuckDB's used and free blocks. Incremental
models delete and insert rows every day; DuckDB reuses the blocks it frees and compacts row
groups at checkpoints, and this is where it shows whether the file and the runs keep growing.
At the end a compacted copy of the warehouse (`COPY FROM DATABASE`) gives the size the same
data takes when written once, and a full refresh of the same data must give every relation the
increments built, row for row (`bench.fingerprints`; the benchmark fails when one differs).
Results are printed as a table and saved as JSON.
"""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from pathlib import Path

import duckdb

from benchmarks.bench import (
    END,
    checked_arguments,
    describe,
    differing,
    fingerprints,
    generate_args,
    hold_back_days,
    land,
    machine,
    measure,
    retention,
    same_as_full_refresh,
    save,
    speed_probes,
)
from retention.config import Paths
from retention.validation import read_report


def warehouse_storage(warehouse: Path) -> dict[str, int]:
    """The file's size and DuckDB's block counts (pragma database_size)."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        total, used, free = con.execute(
            "select total_blocks, used_blocks, free_blocks from pragma_database_size()"
        ).fetchone()
    return {
        "file_mb": round(warehouse.stat().st_size / 1e6),
        "total_blocks": total,
        "used_blocks": used,
        "free_blocks": free,
    }


def compacted_mb(warehouse: Path, scratch: Path) -> int:
    """The size of a copy of ``warehouse`` written once (COPY FROM DATABASE)."""
    copy = scratch / "compacted.duckdb"
    with duckdb.connect() as con:
        con.execute("set enable_progress_bar = false")
        con.execute(f"attach '{warehouse}' as source (read_only)")
        con.execute(f"attach '{copy}' as compacted")
        con.execute("copy from database source to compacted")
        con.execute("detach compacted")
    size = round(copy.stat().st_size / 1e6)
    copy.unlink()
    return size


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument(
        "--days", type=int, default=14, help="daily files held back, END's included (>= 1)"
    )
    parser.add_argument("--data-dir", type=Path, help="default: a temporary folder")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/days.json"))
    args = parser.parse_args(argv)
    if args.days < 1:
        parser.error("--days must be at least 1")
    data_dir = checked_arguments(args.customers, args.data_dir, "retention-bench-days-")
    info = machine()
    probes = {"before": speed_probes()}
    print(describe(info, probes), flush=True)
    job = data_dir / "job"
    first_day = END - timedelta(days=args.days - 1)
    measure(retention(job, *generate_args(args.customers, first_day)), job)
    days = hold_back_days(job, first_day)
    runs: list[dict[str, object]] = []

    def run(label: str) -> None:
        print(f"{label} ...", flush=True)
        result = {"day": label, **measure(retention(job, "run"), job)}
        report = read_report(Paths(job))
        result["as_of_date"] = report.as_of_date if report else None
        result.update(warehouse_storage(Paths(job).warehouse))
        runs.append(result)
        print(
            f"    {result['seconds']:.1f} s, {result['cpu_seconds']:.1f} CPU s, "
            f"{result['peak_rss_mib']:.0f} MiB, as of {result['as_of_date']}, "
            f"file {result['file_mb']} MB",
            flush=True,
        )

    run("history")
    for day, files in days.items():
        land(job / "held", job, files)
        run(day)
    compacted = compacted_mb(Paths(job).warehouse, data_dir)
    # every day's increments against a full refresh of the same data
    incremental = fingerprints(job)
    print("full refresh ...", flush=True)
    full_refresh = measure(retention(job, "build", "--no-unit-tests", "--full-refresh"), job)
    differences = differing(incremental, fingerprints(job))
    probes["after"] = speed_probes()
    daily = runs[1:]
    summary = {
        "daily_runs": len(daily),
        "daily_run_seconds": {
            "first": daily[0]["seconds"],
            "last": daily[-1]["seconds"],
            "max": max(r["seconds"] for r in daily),
        },
        "daily_build_seconds": {
            "first": daily[0].get("build seconds"),
            "last": daily[-1].get("build seconds"),
            "max": max(r.get("build seconds", 0) for r in daily),
        },
        "file_mb": {"after_history": runs[0]["file_mb"], "last": runs[-1]["file_mb"]},
        "compacted_mb": compacted,
        "full_refresh_build_seconds": full_refresh["seconds"],
        "incremental_vs_full_refresh_relations": len(incremental),
        "incremental_vs_full_refresh_differences": differences,
    }
    report = {
        "customers": args.customers,
        "machine": {**info, "speed_probes": probes},
        "runs": runs,
        "summary": summary,
    }
    print("\n" + describe(info, probes))
    # the pipeline's step timers, by their heading in the table
    columns = {
        "load": "load",
        "build": "build",
        "validate": "validate",
        "v + publish": "validate + publish",
    }
    print(
        f"\n{'run':<12}{'as of':>12}{'seconds':>9}{'CPU s':>8}{'peak MiB':>10}"
        + "".join(f"{c:>12}" for c in columns)
        + f"{'file MB':>9}{'used blk':>10}{'free blk':>10}"
    )
    for r in runs:
        print(
            f"{r['day']:<12}{r['as_of_date'] or '-':>12}{r['seconds']:>9.1f}"
            f"{r['cpu_seconds']:>8.1f}{r['peak_rss_mib']:>10.0f}"
            + "".join(f"{r.get(f'{c} seconds', float('nan')):>12.1f}" for c in columns.values())
            + f"{r['file_mb']:>9}{r['used_blocks']:>10}{r['free_blocks']:>10}"
        )
    print(f"\n{json.dumps(summary)}")
    print(same_as_full_refresh(len(incremental), differences))
    save(report, args.out, data_dir)
    if differences:
        raise SystemExit("the daily increments and the full refresh differ: see above")


if __name__ == "__main__":
    main()
