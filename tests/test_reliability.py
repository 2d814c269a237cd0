"""Reliability: a corpus of bad input, property-based reconciliation, idempotency, crashes,
concurrency, late data and security."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retention import dbt, pipeline, publish
from retention.config import Paths
from retention.load import COLUMNS, LoadErrors, load
from retention.locking import Busy, exclusive
from tests.conftest import Warehouse, quiet, write_csv

ROOT = Path(__file__).resolve().parent.parent
ORDER_HEADER = list(COLUMNS["orders"])

ACCOUNTED = """
    select raw._source_file, raw._source_row
    from raw.{entity} as raw
    left join staging.base_shop__{entity} as base
        on base._source_file = raw._source_file and base._source_row = raw._source_row
    where base.row_disposition is null
       or (base.row_disposition = 'quarantined' and base.reject_reason is null)
"""


def _dispositions(warehouse: Warehouse, entity: str) -> dict[str, int]:
    return dict(
        warehouse.query(
            f"select row_disposition, count(*) from staging.base_shop__{entity} group by 1"
        )
    )


# --------------------------------------------------------------------------- bad input
BAD_INPUT_KINDS = [
    "missing id",
    "unparseable timestamp",
    "impossible timestamp (Feb 30)",
    "timezone offsets",
    "future timestamp",
    "negative amount",
    "absurdly large amount",
    "unknown currency",
    "unknown status",
    "orphan order (unknown customer)",
    "duplicates with conflicting versions",
    "exact duplicates",
    "embedded quotes, newlines and delimiters",
    "non-UTF-8 bytes",
    "BOM",
    "empty file",
    "header-only file",
    "extra column",
    "missing optional columns",
    "missing required column",
    "reordered columns",
    "SQL-looking strings",
    "too many fields",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    paths = Paths(tmp_path_factory.mktemp("corpus"))
    paths.ensure()
    customers = paths.landing_dir("customers")
    (customers / "c1_mixed.csv").write_text(
        "\ufeffcountry,customer_id,email,signup_at,acquisition_channel,loyalty_tier\n"
        'DE,C1,"a,b""quoted""@example.com",2024-01-01T10:00:00+02:00,Google Ads,gold\n'
        'US,C2,"x\'); drop table raw.orders; --@example.com",2024-01-02 09:00:00,'
        '"multi\nline channel",silver\n'
        "GB,C3,c3@example.com,2024-01-03,referral,\n"
        "FR,,missing@example.com,2024-01-04,seo,\n"
        "IT,C4,c4@example.com,2024-02-30,seo,\n"
        "ES,C5,c5@example.com,2099-01-01,seo,\n",
        encoding="utf-8",
    )
    write_csv(customers / "c2_header_only.csv", list(COLUMNS["customers"]), [])
    write_csv(
        customers / "c3_optional_missing.csv",
        ["customer_id", "signup_at"],
        [["C6", "2024-01-05T00:00:00Z"]],
    )
    (customers / "c4_latin1.csv").write_bytes(
        b"customer_id,email,signup_at,country\n"
        b"C7,c7@example.com,2024-01-06,SE\n"
        b"C7b,ren\xe9@example.com,2024-01-06,SE\n"
    )
    (customers / "c5_fields.csv").write_text(
        "customer_id,email,signup_at,country\n"
        "C8,c8@example.com,2024-01-07,NL\n"
        "C9,c9@example.com,2024-01-07,NL,surplus\n"
    )
    orders = paths.landing_dir("orders")
    write_csv(
        orders / "o1.csv",
        ORDER_HEADER,
        [
            ["O1", "C1", "2024-03-01T10:00:00Z", "completed", "10.00", "EUR", ""],
            ["O2", "C1", "2024-03-02T23:30:00-05:00", "completed", "20.00", "USD", ""],
            ["O3", "C2", "2024-03-03", "completed", "-1.00", "USD", ""],
            ["O4", "C2", "2024-03-03", "completed", "99999999999", "USD", ""],
            ["O5", "C3", "2024-03-03", "completed", "5.00", "ABC", ""],
            ["O6", "C3", "2024-03-03", "lost", "5.00", "USD", ""],
            ["O7", "C99", "2024-03-03", "completed", "5.00", "USD", ""],
            ["O8", "C1", "2024-03-04", "completed", "10.00", "USD", "2024-03-04T00:00:00Z"],
            ["O8", "C1", "2024-03-04", "completed", "12.00", "USD", "2024-03-04T00:00:00Z"],
            ["O9", "C1", "2024-03-05", "completed", "7.00", "USD", ""],
            ["O9", "C1", "2024-03-05", "completed", "7.00", "USD", ""],
            ["", "C1", "2024-03-05", "completed", "7.00", "USD", ""],
            ["O11", "C1", "yesterday", "completed", "7.00", "USD", ""],
            ["O12", "C1", "2099-03-05", "completed", "7.00", "USD", ""],
        ],
    )
    (orders / "o2_empty.csv").write_bytes(b"")
    write_csv(
        orders / "o3_no_amount.csv",
        [c for c in ORDER_HEADER if c != "amount"],
        [["O20", "C1", "2024-03-06", "completed", "USD", ""]],
    )
    with pytest.raises(LoadErrors) as caught:
        load(paths, progress=quiet)
    message = str(caught.value)
    assert "orders/o2_empty.csv" in message and "orders/o3_no_amount.csv" in message
    assert "missing required column(s) amount" in message
    pipeline.build_step(paths, quiet, select="resource_type:seed path:models/staging")
    return Warehouse(paths)


def test_every_bad_row_is_accounted_for_and_nothing_valid_is_lost(corpus: Warehouse) -> None:
    assert len(BAD_INPUT_KINDS) >= 15
    for entity in ("customers", "orders"):
        assert corpus.query(ACCOUNTED.format(entity=entity)) == [], entity
    customers = {c for (c,) in corpus.query("select customer_id from staging.stg_shop__customers")}
    assert customers == {"C1", "C2", "C3", "C6", "C7", "C8"}
    orders = dict(corpus.query("select order_id, amount from staging.stg_shop__orders"))
    assert set(orders) == {"O1", "O2", "O8", "O9"}
    assert float(orders["O8"]) == 12.0  # conflicting versions: the one landed last wins
    reasons = dict(
        corpus.query("select coalesce(customer_id, '?'), reject_reason from quarantine.customers")
    )
    assert reasons["C4"] == "unparseable_timestamp" and reasons["C5"] == "future_timestamp"
    assert reasons["C7b"] == "invalid_encoding" and reasons["C9"] == "malformed_row"
    order_reasons = dict(corpus.query("select order_id, reject_reason from quarantine.orders"))
    assert order_reasons == {
        "O3": "negative_amount",
        "O4": "amount_out_of_range",
        "O5": "unknown_currency",
        "O6": "unknown_status",
        "O7": "unknown_customer",
        "": "missing_id",
        "O11": "unparseable_timestamp",
        "O12": "future_timestamp",
    }
    assert _dispositions(corpus, "orders") == {
        "current": 4,
        "superseded": 1,
        "duplicate": 1,
        "quarantined": 8,
    }
    # text survives exactly: quotes, delimiters, newlines and SQL-looking strings are data
    emails = {e for (e,) in corpus.query("select email from staging.stg_shop__customers")}
    assert 'a,b"quoted"@example.com' in emails
    assert "x'); drop table raw.orders; --@example.com" in emails
    channel = corpus.scalar(
        "select acquisition_channel_raw from staging.stg_shop__customers where customer_id = 'C2'"
    )
    assert channel == "multi\nline channel"
    assert corpus.scalar("select count(*) from raw.orders") == 14  # the table is still there
    extra = corpus.scalar("select _extra from raw.customers where customer_id = 'C1'")
    assert extra == '{"loyalty_tier":"gold"}'


# ------------------------------------------------------------------ property-based mix
_valid_order = st.builds(
    lambda i, day, amount, status: [
        f"P{i}",
        "C1",
        f"2024-04-{day:02d}T10:00:00Z",
        status,
        f"{amount:.2f}",
        "USD",
        "",
    ],
    st.integers(0, 30),
    st.integers(1, 28),
    st.floats(0, 5000),
    st.sampled_from(["completed", "cancelled", "refunded", "pending"]),
)
_invalid_order = st.one_of(
    st.builds(
        lambda i: [f"Q{i}", "C1", "not a date", "completed", "1", "USD", ""], st.integers(0, 9)
    ),
    st.builds(
        lambda i: [f"Q{i}", "C1", "2024-04-01", "completed", "-3", "USD", ""], st.integers(0, 9)
    ),
    st.builds(
        lambda i: [f"Q{i}", "C404", "2024-04-01", "completed", "3", "USD", ""], st.integers(0, 9)
    ),
    st.builds(lambda i: [f"Q{i}", "C1", "2024-04-01", "??", "3", "XXX", ""], st.integers(0, 9)),
    st.just(["", "C1", "2024-04-01", "completed", "3", "USD", ""]),
)


@settings(
    max_examples=3,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(rows=st.lists(st.one_of(_valid_order, _invalid_order), min_size=1, max_size=40))
def test_random_mixes_of_rows_always_reconcile(rows, tmp_path_factory) -> None:
    paths = Paths(tmp_path_factory.mktemp("property"))
    paths.ensure()
    write_csv(
        paths.landing_dir("customers") / "c.csv",
        ["customer_id", "signup_at"],
        [["C1", "2024-01-01"]],
    )
    write_csv(paths.landing_dir("orders") / "o.csv", ORDER_HEADER, rows)
    load(paths, progress=quiet)
    pipeline.build_step(
        paths, quiet, select="resource_type:seed path:models/staging"
    )  # includes the reconciliation test
    warehouse = Warehouse(paths)
    assert warehouse.query(ACCOUNTED.format(entity="orders")) == []
    counts = _dispositions(warehouse, "orders")
    assert sum(counts.values()) == len(rows)
    distinct_valid = {tuple(r) for r in rows if r[0].startswith("P")}
    valid_ids = {r[0] for r in distinct_valid}
    assert counts.get("current", 0) == len(valid_ids)
    assert counts.get("duplicate", 0) + counts.get("superseded", 0) == (
        len([r for r in rows if r[0].startswith("P")]) - len(valid_ids)
    )


# ------------------------------------------------------------------------- idempotency
def _marts_fingerprint(paths: Paths) -> dict[str, str]:
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        tables = [
            t
            for (t,) in con.execute(
                "select table_name from information_schema.tables where table_schema = 'marts'"
            ).fetchall()
        ]
        return {
            t: hashlib.sha256(
                repr(con.execute(f"select * from marts.{t} order by all").fetchall()).encode()
            ).hexdigest()
            for t in tables
        }


def test_two_runs_on_the_same_input_give_identical_marts(
    generated_build: Warehouse, tmp_path: Path
) -> None:
    shutil.copytree(generated_build.paths.data_dir, tmp_path / "data")
    paths = Paths(tmp_path / "data")
    first = _marts_fingerprint(paths)
    again = pipeline.load_step(paths, quiet)
    assert again.rows() == 0  # re-landing the same files loads nothing
    pipeline.build_step(paths, quiet, unit_tests=False)
    assert _marts_fingerprint(paths) == first
    assert len(first) == 12


# ------------------------------------------------------------------ crashes, concurrency
def _run(data_dir: Path, *args: str, **kwargs) -> subprocess.Popen:
    options = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **kwargs}
    return subprocess.Popen(
        [sys.executable, "-m", "retention", "--data-dir", str(data_dir), *args],
        text=True,
        start_new_session=True,
        **options,
    )


def _stat_fields(stat: Path) -> list[str]:
    """The fields of a /proc stat file after the command name (state, parent, process group,
    ...), or none when the process or thread has gone."""
    try:
        return stat.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _kill_group(process: subprocess.Popen, timeout: float = 60) -> None:
    """SIGKILL the run's whole process group and wait until every member has exited.

    ``process.wait()`` only reaps the direct child; the dbt grandchild that holds the
    warehouse lock may still be tearing down, so poll /proc until no process of the group has
    a live (non-zombie) thread. Threads, not processes: a killed process's main thread becomes
    a zombie at once while its other threads (DuckDB's) still exit, and the files they share,
    the warehouse and its lock among them, close only when the last one has gone.
    """
    with contextlib.suppress(ProcessLookupError):  # every member may have ended already
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = _live_members(process.pid)
        if not alive:
            return
        time.sleep(0.1)
    raise AssertionError(f"processes {alive} of the killed run did not exit")


def _copy(published: Warehouse, tmp_path: Path) -> Paths:
    """A copy of the published warehouse's data directory to run commands on."""
    shutil.copytree(published.paths.data_dir, tmp_path / "data", symlinks=True)
    return Paths(tmp_path / "data")


def _run_to_the_end(paths: Paths) -> None:
    """`retention run`, which must succeed."""
    finished = _run(paths.data_dir, "run")
    out, err = finished.communicate(timeout=900)
    assert finished.returncode == 0, out[-2000:] + err


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _until_building(process: subprocess.Popen, timeout: float = 120) -> None:
    """Read a command's output until its dbt build starts a table model (or ``timeout``)."""
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    for line in process.stdout:
        if "START sql table model" in line or time.monotonic() > deadline:
            return


def _live_members(group: int) -> list[str]:
    """The processes of a process group with a live (non-zombie) thread."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        if _stat_fields(stat)[2:3] != [str(group)]:  # not of the group, or gone
            continue
        states = (_stat_fields(task)[:1] for task in stat.parent.glob("task/*/stat"))
        if any(state not in ([], ["Z"]) for state in states):
            alive.append(stat.parent.name)
    return alive


def test_a_run_killed_during_the_build_leaves_serving_alone(
    published: Warehouse, tmp_path: Path
) -> None:
    paths = _copy(published, tmp_path)
    before = paths.serving.resolve()
    manifest = (paths.serving / "_manifest.json").read_text()
    process = _run(paths.data_dir, "run")
    _until_building(process)
    _kill_group(process)
    assert paths.serving.resolve() == before
    assert (paths.serving / "_manifest.json").read_text() == manifest
    with pytest.raises(publish.PublishRefused, match="did not finish"):
        publish.publish(paths, progress=quiet)
    _run_to_the_end(paths)
    assert paths.serving.resolve() != before


def test_a_build_left_running_by_a_killed_command_keeps_the_data_directory_locked(
    published: Warehouse, tmp_path: Path
) -> None:
    """Killed alone (not its process group), `retention build` leaves its dbt build running and
    writing the warehouse. The data directory stays locked until that build has ended: the next
    command says so (not that the warehouse is "in use by another process"), and with --wait it
    queues behind the build and then runs."""
    paths = _copy(published, tmp_path)
    process = _run(paths.data_dir, "build")
    try:
        _until_building(process)
        os.kill(process.pid, signal.SIGKILL)  # the command only: its dbt build goes on
        process.wait()
        refused = _run(paths.data_dir, "build")
        _, err = refused.communicate(timeout=300)
        assert refused.returncode == 1, err
        assert "another retention command is running" in err
        assert "that command has ended, but a dbt build it started is still running" in err
        queued = _run(paths.data_dir, "--wait", "600", "build")
        out, err = queued.communicate(timeout=900)
        assert queued.returncode == 0, out[-2000:] + err
        if "waiting up to 600 s" in out:  # the orphaned build had not ended yet: it says so
            assert "that command has ended, but a dbt build it started is still running" in out
    finally:
        _kill_group(process)


@pytest.mark.parametrize(
    ("stop", "how", "group"),
    [
        (signal.SIGTERM, "stopped (SIGTERM)", False),
        (signal.SIGINT, "interrupted", False),
        (signal.SIGINT, "interrupted", True),  # Ctrl-C: dbt has it twice, and stops once
    ],
    ids=["SIGTERM", "SIGINT", "Ctrl-C"],
)
def test_a_stopped_run_stops_its_dbt_build_and_frees_the_data_directory(
    published: Warehouse, tmp_path: Path, stop: signal.Signals, how: str, group: bool
) -> None:
    """SIGTERM to `retention run` alone (a service manager stopping it, a scheduler's timeout),
    or SIGINT to it alone (`kill -INT`, a supervisor whose stop signal is SIGINT, unlike Ctrl-C
    in a terminal, which reaches dbt too): its dbt build stops too (with SIGINT it ran on until
    killed after 30 s), and the command exits (143 or 130, a message, no traceback) only once it
    has; the data directory is free at once, serving/ is as it was, and the next run
    finishes."""
    paths = _copy(published, tmp_path)
    before = paths.serving.resolve()
    # for SIGTERM, started as a shell's background job is: SIGINT ignored (inherited by its
    # dbt process, which must stop all the same)
    # for SIGINT, as a shell's foreground job is (pytest-xdist's workers ignore SIGINT, and a
    # command that inherits that leaves it ignored)
    disposition = _ignore_sigint if stop == signal.SIGTERM else _default_sigint
    process = _run(paths.data_dir, "run", preexec_fn=disposition)
    try:
        _until_building(process)
        # the command only, as `kill` or systemd send it; or its process group, as a terminal
        (os.killpg if group else os.kill)(process.pid, stop)
        out, err = process.communicate(timeout=120)
        left_running = _live_members(process.pid)
    finally:
        _kill_group(process)
    assert process.returncode == 128 + stop, out[-2000:] + err
    assert f"{how} with the dbt build it had started" in err
    assert "did not stop within" not in out + err  # stopped, not killed after the grace
    assert "Traceback" not in out + err
    assert "CANCEL" in out  # dbt's own account of what it stopped
    assert left_running == []
    with exclusive(paths, "check"):  # free without waiting: no dbt build holds it
        pass
    assert paths.serving.resolve() == before
    _run_to_the_end(paths)
    assert paths.serving.resolve() != before


@pytest.mark.parametrize("errors_too", [False, True], ids=["stdout", "stdout-and-stderr"])
def test_a_command_whose_output_is_closed_stops_with_its_dbt_build(
    published: Warehouse, tmp_path: Path, errors_too: bool
) -> None:
    """`retention build | head`: once the reader has gone, the command stops (141, as a process
    killed by SIGPIPE) with its dbt build, and says so on standard error, without a traceback
    or advice about the disk. With `2>&1 | head` that message has nowhere to go: still 141."""
    paths = _copy(published, tmp_path)
    read, write = os.pipe()
    process = _run(
        paths.data_dir, "build", stdout=write, **({"stderr": write} if errors_too else {})
    )
    os.close(write)
    try:
        with os.fdopen(read) as reader:  # closed after the first table model starts
            for line in reader:
                if "START sql table model" in line:
                    break
        _, err = process.communicate(timeout=300)
        left_running = _live_members(process.pid)
    finally:
        _kill_group(process)
    assert process.returncode == 128 + signal.SIGPIPE, err
    if not errors_too:
        assert "stopped: its standard output was closed with the dbt build it had started" in err
        assert "Traceback" not in err and "disk space" not in err
    assert left_running == []
    with exclusive(paths, "check"):
        pass


def test_a_stop_that_duckdb_reports_as_its_own_error_is_still_a_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """DuckDB answers a signal that arrives during its statement with its own error: it catches
    the handler's exception and raises ``RuntimeError("Query interrupted")`` (when it notices
    the signal depends on how its threads share the statement's work, so the step below does
    what DuckDB does). The command still reports a stop, not a bug."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers are installed on the main thread only")
    from retention import cli

    def interrupted_load(paths: Paths, say, target=None) -> None:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)
        except KeyboardInterrupt:
            raise RuntimeError("Query interrupted") from None

    monkeypatch.setattr(pipeline, "load_step", interrupted_load)
    handler = signal.getsignal(signal.SIGTERM)
    assert cli.main(["--data-dir", str(tmp_path), "load"]) == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    # nothing published in this data directory yet: no word of serving/
    assert "stopped (SIGTERM).\n  what to do: run `retention load` again" in err
    assert "Traceback" not in err and "Query interrupted" not in err
    assert signal.getsignal(signal.SIGTERM) is handler  # put back for whoever called main
    with exclusive(Paths(tmp_path), "check"):
        pass


def test_a_stop_during_the_pipelines_import_takes_effect_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A SIGTERM in a command's first second landed while DuckDB's native module registered its
    types, and the exception raised there aborted the interpreter (exit 134, "Critical nanobind
    error"). The import finishes first; the command then stops as usual."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers are installed on the main thread only")
    import retention
    from retention import cli

    imported: list[str] = []
    # imported anew below; the package's attribute and sys.modules are put back afterwards
    monkeypatch.delattr(retention, "pipeline")
    monkeypatch.delitem(sys.modules, "retention.pipeline")

    class Finder:
        """Sends the signal while retention.pipeline is being imported, then lets it finish."""

        def find_spec(self, name, path=None, target=None):
            if name == "retention.pipeline" and not imported:
                imported.append(name)
                os.kill(os.getpid(), signal.SIGTERM)
            return None

    monkeypatch.setattr(sys, "meta_path", [Finder(), *sys.meta_path])
    assert cli.main(["--data-dir", str(tmp_path), "load"]) == 128 + signal.SIGTERM
    assert imported == ["retention.pipeline"]
    assert sys.modules.get("retention.pipeline") is not None  # the import was not cut short
    err = capsys.readouterr().err
    # nothing published in this data directory yet: no word of serving/
    assert "stopped (SIGTERM).\n  what to do: run `retention load` again" in err
    assert "Traceback" not in err


def _stubborn_dbt() -> subprocess.Popen:
    """A process that ignores SIGINT, as a dbt process this one started (``dbt.stop_started``
    stops those)."""
    code = (
        "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(120)"
    )
    process = dbt._started_process([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline() == "ready\n"
    return process


def test_a_dbt_process_that_does_not_stop_is_killed_after_the_grace() -> None:
    stubborn = _stubborn_dbt()
    lines: list[str] = []
    started = time.monotonic()
    assert dbt.stop_started(lines.append, grace=1) == 1
    assert stubborn.returncode == -signal.SIGKILL
    assert 1 <= time.monotonic() - started < 30
    assert any(
        f"dbt (process {stubborn.pid}) did not stop within 1 s: killed" in line for line in lines
    )
    assert dbt.stop_started(lines.append) == 0  # nothing left to stop


def test_ctrl_c_while_dbt_stops_kills_it_at_once() -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers run on the main thread only")
    stubborn = _stubborn_dbt()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    started = time.monotonic()
    try:
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            dbt.stop_started(quiet, grace=60)
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert stubborn.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 30


def test_a_publish_that_dies_half_way_changes_nothing(
    published: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _copy(published, tmp_path)
    before = paths.serving.resolve()
    releases = paths.data_dir / "serving_releases"
    count = len(list(releases.iterdir()))

    def crash(_path):
        raise OSError("disk full")

    monkeypatch.setattr(publish, "_read_only", crash)
    with pytest.raises(OSError, match="disk full"):
        publish.publish(paths, progress=quiet)
    assert paths.serving.resolve() == before
    assert len(list(releases.iterdir())) == count  # the half-written release is gone
    monkeypatch.undo()
    (releases / "20000101T000000000000-deadbeef").mkdir()  # left by a killed publish
    publish.publish(paths, progress=quiet)
    assert paths.serving.resolve() != before
    assert not (releases / "20000101T000000000000-deadbeef").exists()


def test_a_second_run_waits_or_exits_clearly(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    with exclusive(paths, "run"):
        with (
            pytest.raises(Busy, match="another retention command is running"),
            exclusive(paths, "run"),
        ):
            pass
        second = _run(tmp_path, "load")
        _, err = second.communicate(timeout=120)
        assert second.returncode == 1
        assert "another retention command is running" in err and "Traceback" not in err
        waiting = _run(tmp_path, "--wait", "30", "load")
        assert waiting.stdout is not None
        told = waiting.stdout.readline()  # then the lock is released: it goes on
    assert "waiting up to 30 s for the data directory" in told and '"command": "run"' in told
    _, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, err


# ---------------------------------------------------------------------------- late data
def test_a_late_refund_updates_revenue_clv_and_churn(
    generated_build: Warehouse, tmp_path: Path
) -> None:
    shutil.copytree(generated_build.paths.data_dir, tmp_path / "data")
    warehouse = Warehouse(Paths(tmp_path / "data"))
    order_id, customer_id, ordered_at, amount, currency, revenue = warehouse.query("""
        select o.order_id, o.customer_id, strftime(o.ordered_at, '%Y-%m-%dT%H:%M:%SZ'),
               o.amount_original::varchar, o.currency, c.total_revenue
        from marts.orders o join marts.customers c using (customer_id)
        where o.is_purchase and c.purchase_count = 3
        order by o.ordered_at limit 1
    """)[0]
    refunded_amount = warehouse.scalar(
        "select amount from marts.orders where order_id = ?", [order_id]
    )
    clv_before = warehouse.scalar(
        "select monetary_value from marts.customer_lifetime_value where customer_id = ?",
        [customer_id],
    )
    write_csv(
        warehouse.paths.landing_dir("orders") / "late_refund.csv",
        ORDER_HEADER,
        [[order_id, customer_id, ordered_at, "refunded", amount, currency, "2025-06-29T12:00:00Z"]],
    )
    pipeline.load_step(warehouse.paths, quiet)
    pipeline.build_step(warehouse.paths, quiet, unit_tests=False)
    assert (
        warehouse.scalar("select status from marts.orders where order_id = ?", [order_id])
        == "refunded"
    )
    assert (
        warehouse.scalar(
            "select total_revenue from marts.customers where customer_id = ?", [customer_id]
        )
        == revenue - refunded_amount
    )
    assert (
        warehouse.scalar(
            "select purchase_count from marts.customers where customer_id = ?", [customer_id]
        )
        == 2
    )
    clv_after = warehouse.scalar(
        "select monetary_value from marts.customer_lifetime_value where customer_id = ?",
        [customer_id],
    )
    assert clv_after != clv_before
    months = warehouse.scalar(
        "select count(*) from marts.customer_lifecycle_monthly where customer_id = ? "
        "and purchases > 0",
        [customer_id],
    )
    assert months <= 2


# ----------------------------------------------------------------------------- security
def test_no_secret_is_written_in_the_repository() -> None:
    for name in ("profiles.yml", "orchestration/dagster.prod.yaml", "dbt_project.yml"):
        text = (ROOT / name).read_text()
        for line in text.splitlines():
            if line.strip().startswith("#") or ":" not in line:
                continue
            key, value = (part.strip() for part in line.split(":", 1))
            if "password" in key.lower():
                # a password key may only be followed by an env lookup (a nested `env:` line)
                assert value == "" or "env_var" in value, f"{name}: {line}"


def test_vars_are_never_interpolated_into_sql(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    with pytest.raises(dbt.DbtFailure, match="must be a date"):
        dbt.run_dbt(
            ["compile", "--select", "int_reporting_dates"],
            paths,
            dbt_vars={"as_of_date": "2024-01-01'); drop table raw.orders; --"},
        )
