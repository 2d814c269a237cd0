"""Pipeline benchmark: wall time and peak memory of each step at a given scale.

    python benchmarks/bench.py --customers 1000000 [--out FILE]

The scenario a production warehouse lives through:

1. generate N customers; the last day's landing files (and later cancellations) are held back;
2. the production job on that history: one `retention run` (load, build, validate and publish
   side by side, report), timed as a whole: the figure the full-run target is about;
3. the same job step by step on a second data directory with the same landing files (load,
   full build, validate, publish, report), each its own process, for each step's time and peak
   memory (its builds, like `retention run`, leave out the dbt unit tests);
4. the held-back day lands in both directories: `retention run` processes it incrementally in
   the first; load and an incremental build in the second. What a day costs without its rows:
   the same build again with nothing new to process, and `dbt run` of only the models
   downstream of the reporting date (as_of_date), without tests. Then a full-refresh build of
   the same data for comparison, whose relations must be the rows those increments built
   (``fingerprints``: the names of any that differ are reported);
5. plain: benchmarks/plain_duckdb.sql computes customers, customer_cohorts and
   retention_monthly from the second directory's raw tables without dbt (the yardstick for
   dbt's overhead), and its results are compared with the dbt marts built on the same data;
   then `dbt run --full-refresh` computes the same parts (those marts and everything upstream
   except the predictive CLV models), for the wall time to compare. This comes last: a `dbt run`
   before the incremental build would make its grain tests check every row (a `dbt run` tests
   nothing, see tests/dbt/generic/unique_combination.sql), which a daily build does not do;
6. the floor: steps 1, 2 and 4 at FLOOR_CUSTOMERS customers in a third data directory, where the
   data costs next to nothing, for the incremental build of one day: what dbt's start and its
   nodes cost whatever the scale, against the 10 % of the full build the target allows.

Each measured command runs as its own process, measured by a small launcher (not by the
benchmark, whose own memory Linux would count as the command's: see LAUNCHER): wait4's peak
resident memory of its largest process, and the peak of all its processes together, sampled.
Results are printed as a table and saved as JSON, with the machine they were taken on: its CPU,
memory and package versions, and the seconds of fixed work (speed probes) before the first step
and after the last.
Machines of the same kind differ in speed, and a shared one changes from hour to hour: compare
figures whose probes agree. For the full build and the day's incremental build it also records
where dbt's time went (run_results.json): how busy its threads were and its slowest nodes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from importlib import metadata
from pathlib import Path

import duckdb

from retention.config import ENTITIES, Paths
from retention.dbt import dbt_command, dbt_cwd, dbt_env
from retention.load import raw_tables

ROOT = Path(__file__).resolve().parents[1]
END = date(2025, 12, 31)
# the dbt models the plain script also computes (its "parts"): everything upstream of the three
# marts except the predictive CLV models, whose columns the plain script leaves out
CLV_MODELS = ("clv_model_parameters", "customer_lifetime_value", "clv_backtest")
# the one-row model of the reporting parameters (as_of_date): everything downstream of it is
# computed again for every customer when the date moves, however little data a day brings
AS_OF_MODEL = "int_reporting_dates"
#: the scale of the floor: a daily build whose data costs next to nothing
FLOOR_CUSTOMERS = 1_000
COMPARED = {
    "retention_monthly": [
        "month", "segment_type", "segment_value", "customers_start", "new_customers",
        "customers_end", "retained_customers", "reactivated_customers", "churned_customers",
        "round(customer_retention_rate, 9)", "round(churn_rate, 9)", "revenue",
    ],
    "customer_cohorts": [
        "cohort_month", "period_number", "segment_type", "segment_value", "cohort_size",
        "active_customers", "round(retention_rate, 9)", "revenue",
        "cumulative_revenue_per_customer",
    ],
    "customers": [
        "customer_id", "acquisition_channel", "region", "cohort_month", "purchase_count",
        "total_revenue", "days_since_last_purchase", "lifecycle_stage", "recency_score",
        "frequency_score", "monetary_score", "rfm_segment", "is_churned",
    ],
}  # fmt: skip


#: The targets for TARGET_CUSTOMERS customers on a 2-core machine: (summary key, upper bound).
TARGETS = {
    "full_run_seconds": 90,
    "dbt_models_vs_plain_duckdb": 1.5,
    "incremental_vs_full_build": 0.10,
    "full_run_peak_tree_pss_mib": 4096,
}
TARGET_CUSTOMERS = 1_000_000
#: fewer, and the generator may write nothing for the held-back day
MIN_CUSTOMERS = 1_000


#: the packages whose versions decide the figures
PACKAGES = ("duckdb", "dbt-core", "dbt-duckdb", "numpy", "pandas", "great-expectations")
#: rows of the speed probes (a second or two each on a 2-core machine)
PROBE_ROWS = 10_000_000


def _best_of_three(work: Callable[[], object]) -> float:
    times = []
    for _ in range(3):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return round(min(times), 3)


def speed_probes(rows: int = PROBE_ROWS) -> dict[str, float]:
    """Seconds of fixed DuckDB work, the best of three: grouping text keys on one thread and on
    every core, and writing a table with text columns into a database file (the step where the
    build's tables cost more than the yardstick's temporary ones)."""
    with tempfile.TemporaryDirectory(prefix="retention-probe-") as folder:
        con = duckdb.connect(str(Path(folder) / "probe.duckdb"))
        try:
            con.execute("set enable_progress_bar = false")
            # a stored table, not range() straight away: a table function is read by one thread
            con.execute(f"create temp table numbers as select range as i from range({rows})")
            aggregate = (
                "select count(*) from (select 'customer-' || (i % 1000003) as k, count(*) "
                "from numbers group by k)"
            )
            probes = {}
            for threads in (1, os.cpu_count() or 1):
                con.execute(f"set threads = {threads}")
                probes[f"aggregate_{threads}_threads"] = _best_of_three(
                    lambda: con.sql(aggregate).fetchall()
                )
            con.execute("reset threads")
            write = (
                "create or replace table probe as select i as id, "
                "'customer-' || (i % 100003) as customer_id, "
                "['completed', 'refunded', 'cancelled'][1 + i % 3] as status "
                f"from numbers where i < {rows // 2}"
            )
            probes["write_table"] = _best_of_three(lambda: con.execute(write))
        finally:
            con.close()
    return probes


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, object]:
    """What the figures were taken on: CPU, memory, Python, the packages that decide them and
    the project's commit ("-dirty" with uncommitted changes; null outside a git checkout)."""
    try:
        memory_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        memory_gib = None
    try:
        described = subprocess.run(
            # --exclude='*': the commit's hash even where a tag names it or an ancestor
            ["git", "describe", "--always", "--dirty", "--abbrev=7", "--exclude=*"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        commit = described.stdout.strip() if described.returncode == 0 else None
    except OSError:
        commit = None
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": memory_gib,
        "python": platform.python_version(),
        "packages": {name: metadata.version(name) for name in PACKAGES},
        "commit": commit,
    }


def describe(info: dict[str, object], probes: dict[str, dict[str, float]]) -> str:
    packages = ", ".join(f"{name} {version}" for name, version in info["packages"].items())
    lines = [
        f"machine: {info['cpu_model']}, {info['cpus']} CPUs, {info['memory_gib']} GiB, "
        f"Python {info['python']}, commit {info['commit']}",
        f"packages: {packages}",
    ]
    for when, seconds in probes.items():
        lines.append(
            f"speed probes {when}: " + ", ".join(f"{k} {v:.2f} s" for k, v in seconds.items())
        )
    return "\n".join(lines)


#: Runs a measured command and writes its wall time, CPU seconds and peak memory to a file. The
#: command is a child of this small process, not of the benchmark: subprocess starts a child with
#: vfork, and Linux then counts the parent's peak resident memory (the benchmark's, which its
#: speed probes and comparisons raise past a gigabyte) as the child's from its start.
#: Two peaks: wait4's (the largest single process of the tree: Linux keeps each process's own
#: high-water mark), and the tree's together, sampled five times a second: the proportional
#: set size (shared pages split between the processes that map them) of every process below
#: the command, summed. `retention run`'s CLI and its dbt process overlap, so the first alone
#: understates what the job needs; a spike shorter than the sampling interval can escape the
#: second. A SIGTERM is passed on to the command, which stops as it documents; Ctrl-C reaches the
#: command from the terminal itself (the launcher ignores it and waits for the command).
LAUNCHER = """
import json, os, signal, subprocess, sys, threading, time
def tree(root):
    children = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found
def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0
started = time.perf_counter()
process = subprocess.Popen(sys.argv[2:])
signal.signal(signal.SIGTERM, lambda n, _: process.send_signal(n))
signal.signal(signal.SIGINT, signal.SIG_IGN)
peak = [0]
done = threading.Event()
def sample():
    while not done.wait(0.2):
        peak[0] = max(peak[0], sum(pss_kib(pid) for pid in tree(process.pid)))
threading.Thread(target=sample, daemon=True).start()
_, status, usage = os.wait4(process.pid, 0)
seconds = time.perf_counter() - started
done.set()
with open(sys.argv[1], "w") as out:
    json.dump({"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime,
               "peak_rss_kib": usage.ru_maxrss, "peak_tree_pss_kib": peak[0]}, out)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def measure(
    command: list[str], data_dir: Path, env: dict[str, str] | None = None
) -> dict[str, float]:
    """Run ``command`` for ``data_dir``: a `retention` command, or with ``env`` (``dbt_env``)
    dbt itself, in the directory the pipeline runs it in (``dbt_cwd``)."""
    with tempfile.TemporaryFile() as output, tempfile.TemporaryDirectory() as scratch:
        usage_file = Path(scratch) / "usage.json"
        process = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, str(usage_file), *command],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env or {**os.environ, "RETENTION_DATA_DIR": str(data_dir)},
            cwd=dbt_cwd(Paths(data_dir)) if env else None,
        )
        try:
            process.wait()
        except BaseException:  # stopped: the command stops too, rather than run on orphaned
            process.terminate()
            process.wait()
            raise
        usage = json.loads(usage_file.read_text()) if usage_file.exists() else None
        output.seek(0)
        text = output.read().decode(errors="replace")
    if process.returncode != 0 or usage is None:
        raise SystemExit(f"step {' '.join(command)} failed:\n{text[-4000:]}")
    result = {
        "seconds": round(usage["seconds"], 2),
        # the step's processes together, dbt's included: on two cores a step that takes twice its
        # seconds in CPU seconds is bound by the work, not by waiting
        "cpu_seconds": round(usage["cpu_seconds"], 1),
        "peak_rss_mib": round(usage["peak_rss_kib"] / 1024, 1),
        # the processes together (sampled; 0 for a step shorter than the interval)
        "peak_tree_pss_mib": round(usage["peak_tree_pss_kib"] / 1024, 1),
    }
    # the pipeline's own step timers ("    build done in 61.2s")
    for name, value in re.findall(r"^\s*(.+?) done in ([0-9.]+)s$", text, re.MULTILINE):
        result[f"{name} seconds"] = float(value)
    return result


def save(report: dict[str, object], out: Path, data_dir: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nsaved {out}; the benchmark's data is in {data_dir}")


def retention(data_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "retention", "--data-dir", str(data_dir), *args]


def generate_args(customers: int, daily_from: date = END) -> list[str]:
    """`retention generate` of ``customers``, the days from ``daily_from`` on as daily files."""
    return [
        "generate", "--customers", str(customers), "--seed", "42", "--daily-from", str(daily_from),
    ]  # fmt: skip


def hold_back_days(data_dir: Path, first_day: date) -> dict[str, list[Path]]:
    """Move the daily landing files of ``first_day`` and later aside (into ``held/``); return
    them by day, in order."""
    held = data_dir / "held"
    days: dict[str, list[Path]] = {}
    for entity in ENTITIES:
        for file in sorted((data_dir / "landing" / entity).glob(f"{entity}_????-??-??.*")):
            day = file.stem.rsplit("_", 1)[1]
            if day >= first_day.isoformat():
                (held / entity).mkdir(parents=True, exist_ok=True)
                shutil.move(file, held / entity / file.name)
                days.setdefault(day, []).append(held / entity / file.name)
    if not days:  # too few customers: the benchmark would measure a day of nothing
        raise SystemExit(f"the generator wrote no daily files from {first_day} on: nothing to hold")
    return dict(sorted(days.items()))


def checked_arguments(customers: int, data_dir: Path | None, prefix: str) -> Path:
    """The data directory to benchmark in (``data_dir``, else a new temporary folder named with
    ``prefix``); a scale too small for a held-back day or a data directory that is a file or
    not empty is refused, before the speed probes."""
    if customers < MIN_CUSTOMERS:
        raise SystemExit(f"--customers must be at least {MIN_CUSTOMERS:,}")
    if data_dir and data_dir.exists():
        if not data_dir.is_dir():
            raise SystemExit(f"--data-dir {data_dir} is a file; give an empty or new folder")
        if any(data_dir.iterdir()):
            raise SystemExit(f"{data_dir} is not empty; give an empty or new --data-dir")
    return data_dir or Path(tempfile.mkdtemp(prefix=prefix))


def hold_back_last_day(data_dir: Path) -> Path:
    """Move the landing files of END and later (one per day) aside; return the folder."""
    hold_back_days(data_dir, END)
    return data_dir / "held"


def land(held: Path, data_dir: Path, files: list[Path] | None = None) -> None:
    """Copy held-back landing files (all of them, or ``files``) into ``data_dir``'s landing."""
    for file in files if files is not None else sorted(held.glob("*/*")):
        shutil.copy(file, data_dir / "landing" / file.parent.name / file.name)


def link_landing(source: Path, data_dir: Path) -> None:
    """The same landing files in a second data directory (hard links: no copy, read only)."""
    shutil.copytree(source / "landing", data_dir / "landing", copy_function=os.link)


def run_results(data_dir: Path) -> dict:
    """The run_results.json of the last dbt command in a data directory."""
    return json.loads((data_dir / "dbt" / "target" / "run_results.json").read_text())


def _kind_and_name(unique_id: str) -> tuple[str, str]:
    """("model", "customers") of "model.retention.customers": the package is always ours."""
    kind, _, name = unique_id.split(".", 2)
    return kind, name


def dbt_seconds(results: dict, exclude: tuple[str, ...] = ()) -> dict[str, float]:
    """Model and test seconds of a dbt run, from its run_results."""
    models = tests = 0.0
    for result in results["results"]:
        kind, name = _kind_and_name(result["unique_id"])
        if kind == "model" and name not in exclude:
            models += result["execution_time"]
        elif kind in ("test", "unit_test"):
            tests += result["execution_time"]
    return {"models": round(models, 2), "tests": round(tests, 2)}


def dbt_profile(results: dict, slowest: int = 10) -> dict[str, object]:
    """Where a dbt run's time went, from its run_results: its elapsed seconds, the share of that
    time its threads were running a node (near 1: the run is bound by the work, not by waiting
    for the slowest node), and its slowest nodes, as ``kind.name`` with seconds."""
    nodes = [r for r in results["results"] if not r["unique_id"].startswith("operation.")]
    threads = len({r["thread_id"] for r in nodes}) or 1
    elapsed = results["elapsed_time"]
    busy = sum(r["execution_time"] for r in nodes) / (threads * elapsed) if elapsed else 0.0
    ranked = sorted(nodes, key=lambda r: r["execution_time"], reverse=True)[:slowest]
    return {
        "elapsed_seconds": round(elapsed, 2),
        "threads": threads,
        "busy_share": round(busy, 3),
        "slowest": [
            {
                "node": ".".join(_kind_and_name(r["unique_id"])),
                "seconds": round(r["execution_time"], 2),
            }
            for r in ranked
        ],
    }


def describe_profile(name: str, profile: dict[str, object]) -> str:
    lines = [
        f"{name}: {profile['elapsed_seconds']:.1f} s on {profile['threads']} threads, "
        f"busy {profile['busy_share']:.0%} of the time; slowest nodes:"
    ]
    lines += [f"  {n['seconds']:>7.2f}  {n['node']}" for n in profile["slowest"]]
    return "\n".join(lines)


def landed_rows(data_dir: Path) -> dict[str, int]:
    """Rows of each raw table: the scale actually measured (orders count every landed version)."""
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        tables = raw_tables(con)
        return {
            entity: con.execute(f"select count(*) from raw.{entity}").fetchone()[0]
            for entity in ENTITIES
            if entity in tables
        }


def compare_plain(data_dir: Path) -> dict[str, int]:
    """Rows of each plain mart missing from the dbt mart, and the other way round."""
    con = duckdb.connect(str(data_dir / "yardstick.duckdb"), read_only=True)
    con.execute(f"attach '{data_dir / 'warehouse.duckdb'}' as wh (read_only)")
    differences = {}
    for mart, columns in COMPARED.items():
        select = ", ".join(columns)
        for a, b in (("plain", "wh.marts"), ("wh.marts", "plain")):
            count = con.execute(
                f"select count(*) from (select {select} from {a}.{mart} "
                f"except all select {select} from {b}.{mart})"
            ).fetchone()[0]
            differences[f"{mart}: rows only in {a.split('.')[0]}"] = count
    return differences


#: what a full refresh does not rebuild (the landed rows, the build log), and the columns that
#: record which increment wrote a row (the latest load it saw, the as_of_date it was built for)
NOT_REBUILT_SCHEMAS = ("raw",)
BOOKKEEPING_COLUMNS = ("_loaded_through", "_as_of_date")


def fingerprints(data_dir: Path) -> dict[str, tuple[int, int]]:
    """Rows and the sum of the rows' hashes of every relation dbt builds (each mart, staging and
    intermediate model, quarantine view and seed), by "schema.name": two builds of the same
    data compare in one scan of each relation, without a copy of either.

    A changed, added or dropped row changes a fingerprint; different rows with the same one need
    hash sums that collide. The bookkeeping columns are left out (BOOKKEEPING_COLUMNS).
    """
    with duckdb.connect(str(Paths(data_dir).warehouse), read_only=True) as con:
        columns: dict[str, list[str]] = {}
        for schema, table, column in con.execute(
            "select table_schema, table_name, column_name from information_schema.columns "
            f"where table_schema not in ({', '.join('?' * len(NOT_REBUILT_SCHEMAS))}) "
            "order by table_schema, table_name, ordinal_position",
            list(NOT_REBUILT_SCHEMAS),
        ).fetchall():
            if column not in BOOKKEEPING_COLUMNS:
                columns.setdefault(f'"{schema}"."{table}"', []).append(f'"{column}"')
        result = {}
        for relation, names in columns.items():
            rows, hash_sum = con.execute(
                "select count(*), coalesce(sum(hash(r)::hugeint), 0) "
                f"from (select {', '.join(names)} from {relation}) as r"
            ).fetchone()
            result[relation.replace('"', "")] = (rows, int(hash_sum))
        return result


def same_as_full_refresh(relations: int, differences: list[str]) -> str:
    """The verdict of ``differing`` in one line."""
    if not differences:
        return f"incremental builds against a full refresh: all {relations} relations identical"
    return "incremental builds against a full refresh: DIFFERENT " + ", ".join(differences)


def differing(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> list[str]:
    """The relations whose fingerprints differ, or that only one side has."""
    return sorted(
        name for name in before.keys() | after.keys() if before.get(name) != after.get(name)
    )


PLAIN_RUNNER = """
import sys, duckdb
sql = open(sys.argv[1]).read().replace("{seeds}", sys.argv[2])
con = duckdb.connect(sys.argv[3])
con.execute("attach '" + sys.argv[4] + "' as wh (read_only)")
con.execute(sql)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--data-dir", type=Path, help="default: a temporary folder")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/latest.json"))
    args = parser.parse_args()
    data_dir = checked_arguments(args.customers, args.data_dir, "retention-bench-")

    def stop(number: int, _frame: object) -> None:
        # the measured command is stopped with it (measure), not left running orphaned
        raise SystemExit(f"stopped by signal {number}; the benchmark's data is in {data_dir}")

    signal.signal(signal.SIGTERM, stop)
    steps: dict[str, dict[str, float]] = {}
    extra: dict[str, object] = {}
    info = machine()
    probes = {"before": speed_probes()}
    print(describe(info, probes), flush=True)
    # the production job runs in job/, the step-by-step breakdown in steps/
    job, steps_dir = data_dir / "job", data_dir / "steps"

    def run(name: str, command: list[str], where: Path, env: dict[str, str] | None = None) -> None:
        print(f"{name} ...", flush=True)
        steps[name] = measure(command, where, env)
        step = steps[name]
        print(
            f"    {step['seconds']:.1f} s, {step['cpu_seconds']:.1f} CPU s, "
            f"{step['peak_rss_mib']:.0f} MiB (all its processes {step['peak_tree_pss_mib']:.0f})"
        )

    run("generate", retention(job, *generate_args(args.customers)), job)
    held = hold_back_last_day(job)
    link_landing(job, steps_dir)
    run("full_run", retention(job, "run"), job)
    rows = landed_rows(job)
    print("    landed rows: " + ", ".join(f"{n:,} {entity}" for entity, n in rows.items()))

    def step(name: str, *command: str) -> None:
        run(name, retention(steps_dir, *command), steps_dir)

    def dbt_step(name: str, *args: str) -> None:
        """dbt itself in the step-by-step directory (what `retention build` runs, minus the CLI)."""
        run(name, dbt_command(args), steps_dir, dbt_env(Paths(steps_dir)))

    step("load", "load")
    # what `retention run` builds: every data test, no unit tests (fixed inputs: CI runs them)
    build = ("build", "--no-unit-tests")
    step("build", *build)
    results = run_results(steps_dir)
    extra["build_dbt_seconds"] = dbt_seconds(results)
    profiles = {"build": dbt_profile(results)}
    step("validate", "validate")
    step("publish", "publish")
    step("report", "report")
    land(held, job)
    run("incremental_run", retention(job, "run"), job)
    land(held, steps_dir)
    step("incremental_load", "load")
    step("incremental_build", *build)
    results = run_results(steps_dir)
    extra["incremental_dbt_seconds"] = dbt_seconds(results)
    profiles["incremental_build"] = dbt_profile(results)
    # what a day costs without its rows: the same build with nothing new to process, and only
    # the models downstream of the reporting date (as_of_date moves every day), without tests
    step("nothing_new_build", *build)
    dbt_step("as_of_models_run", "run", "--select", f"{AS_OF_MODEL}+")
    # the marts the increments built, against a full refresh of the same data (unmeasured scans)
    incremental = fingerprints(steps_dir)
    step("full_refresh_build", *build, "--full-refresh")
    extra["incremental_vs_full_refresh_relations"] = len(incremental)
    extra["incremental_vs_full_refresh_differences"] = differing(
        incremental, fingerprints(steps_dir)
    )
    script = ROOT / "benchmarks" / "plain_duckdb.sql"
    yardstick, warehouse = steps_dir / "yardstick.duckdb", steps_dir / "warehouse.duckdb"
    plain = [sys.executable, "-c", PLAIN_RUNNER, str(script), str(ROOT / "seeds")]
    run("plain_duckdb", [*plain, str(yardstick), str(warehouse)], steps_dir)
    extra["plain_vs_dbt_row_differences"] = compare_plain(steps_dir)
    # the same parts in dbt, from scratch and without tests, as one command: the wall time to
    # compare with the plain script's (summing the models' own seconds would count twice the
    # time two models spend sharing the two cores)
    parts = ["run", "--full-refresh", "--select", *(f"+{mart}" for mart in COMPARED)]
    dbt_step("dbt_plain_parts", *parts, "--exclude", *CLV_MODELS)
    extra["dbt_plain_parts_models"] = sorted(
        _kind_and_name(r["unique_id"])[1] for r in run_results(steps_dir)["results"]
    )

    # the floor: the same day's build where the data costs next to nothing (unmeasured set-up)
    floor_dir = data_dir / "floor"
    measure(retention(floor_dir, *generate_args(FLOOR_CUSTOMERS)), floor_dir)
    floor_held = hold_back_last_day(floor_dir)
    measure(retention(floor_dir, "run"), floor_dir)
    land(floor_held, floor_dir)
    measure(retention(floor_dir, "load"), floor_dir)
    run("floor_incremental_build", retention(floor_dir, *build), floor_dir)

    probes["after"] = speed_probes()
    summary = {
        "full_run_seconds": steps["full_run"]["seconds"],
        "full_run_peak_rss_mib": steps["full_run"]["peak_rss_mib"],
        "full_run_peak_tree_pss_mib": steps["full_run"]["peak_tree_pss_mib"],
        "full_run_cpu_seconds": steps["full_run"]["cpu_seconds"],
        "steps_sum_seconds": round(
            sum(steps[s]["seconds"] for s in ("load", "build", "validate", "publish", "report")), 1
        ),
        "dbt_models_vs_plain_duckdb": round(
            steps["dbt_plain_parts"]["seconds"] / steps["plain_duckdb"]["seconds"], 2
        ),
        "incremental_vs_full_build": round(
            steps["incremental_build"]["seconds"] / steps["build"]["seconds"], 3
        ),
        "nothing_new_build_vs_full_build": round(
            steps["nothing_new_build"]["seconds"] / steps["build"]["seconds"], 3
        ),
        "as_of_models_run_vs_full_build": round(
            steps["as_of_models_run"]["seconds"] / steps["build"]["seconds"], 3
        ),
        "floor_incremental_build_vs_full_build": round(
            steps["floor_incremental_build"]["seconds"] / steps["build"]["seconds"], 3
        ),
        "incremental_run_vs_full_run": round(
            steps["incremental_run"]["seconds"] / steps["full_run"]["seconds"], 3
        ),
    }
    at_scale = args.customers == TARGET_CUSTOMERS  # the targets are for that scale only
    targets = {
        key: {
            "value": summary[key],
            "at_most": bound,
            "met": summary[key] <= bound if at_scale else None,
        }
        for key, bound in TARGETS.items()
    }
    report = {
        "customers": args.customers,
        "landed_rows": rows,
        "machine": {**info, "speed_probes": probes},
        "steps": steps,
        "details": extra,
        "dbt_profiles": profiles,
        "summary": summary,
        "targets": targets,
    }
    print("\n" + describe(info, probes))
    # peak MiB: the largest process's own peak; all MiB: its processes together (sampled)
    print(f"\n{'step':<26}{'seconds':>10}{'CPU s':>10}{'peak MiB':>10}{'all MiB':>10}")
    for name, r in steps.items():
        print(
            f"{name:<26}{r['seconds']:>10.1f}{r['cpu_seconds']:>10.1f}"
            f"{r['peak_rss_mib']:>10.0f}{r['peak_tree_pss_mib']:>10.0f}"
        )
        for part, seconds in r.items():
            if part.endswith(" seconds"):
                print(f"  {part.removesuffix(' seconds'):<24}{seconds:>10.1f}")
    print()
    for key, value in {**summary, **extra}.items():
        print(f"{key}: {value}")
    for name, profile in profiles.items():
        print("\n" + describe_profile(name, profile))
    print(f"\ntargets (for {TARGET_CUSTOMERS:,} customers on 2 cores):")
    for key, target in targets.items():
        verdict = {True: "met", False: "MISSED", None: "(not judged at this scale)"}
        print(f"  {key} <= {target['at_most']}: {target['value']} {verdict[target['met']]}")
    differences = extra["incremental_vs_full_refresh_differences"]
    print("\n" + same_as_full_refresh(extra["incremental_vs_full_refresh_relations"], differences))
    plain_differences = {k: n for k, n in extra["plain_vs_dbt_row_differences"].items() if n}
    save(report, args.out, data_dir)
    if differences:
        raise SystemExit("the incremental builds and the full refresh differ: see above")
    if plain_differences:
        # the yardstick computes something else: its time says nothing of dbt's overhead
        raise SystemExit(f"the plain script's marts differ from dbt's: {plain_differences}")


if __name__ == "__main__":
    main()
