"""The command line: clear errors without tracebacks, and the whole run from landing files."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

import duckdb
import pytest

from retention import dbt
from retention.config import Paths, project_dir
from tests.conftest import write_csv
from tests.engines import dbt_executable


def retention(
    *args: str, data_dir: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "retention", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=None if env is None else {**os.environ, **env},
    )


def test_a_bad_date_is_a_usage_error(tmp_path: Path) -> None:
    result = retention("build", "--as-of", "2024-13-01", data_dir=tmp_path)
    assert result.returncode == 2
    assert "'2024-13-01' is not a date written YYYY-MM-DD" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_empty_data_dir_or_a_future_history_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--data-dir "$UNSET"` wrote landing/ into the current directory; `generate --end` after
    today wrote orders the build then quarantined as future_timestamp, without a word."""
    monkeypatch.chdir(tmp_path)
    empty = subprocess.run(
        [sys.executable, "-m", "retention", "--data-dir", "", "generate", "--customers", "5"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert empty.returncode == 2
    assert "argument --data-dir: is empty: give a folder" in empty.stderr
    assert list(tmp_path.iterdir()) == []
    tomorrow = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
    future = retention("generate", "--customers", "5", "--end", tomorrow, data_dir=tmp_path / "d")
    assert future.returncode == 1
    assert f"--end {tomorrow} is after today" in future.stderr
    assert "what to do: give --end" in future.stderr
    assert not (tmp_path / "d" / "landing").exists() or not any((tmp_path / "d").rglob("*.csv"))


def test_malformed_dbt_settings_are_named_before_dbt_starts(tmp_path: Path) -> None:
    from retention import dbt
    from retention.errors import UserError

    for name, value, message in (
        ("RETENTION_DBT_THREADS", "two", "RETENTION_DBT_THREADS='two' is not a positive whole"),
        ("RETENTION_DBT_THREADS", "0", "RETENTION_DBT_THREADS='0' is not a positive whole"),
        ("RETENTION_DUCKDB_MEMORY_LIMIT", "lots", "RETENTION_DUCKDB_MEMORY_LIMIT='lots' is not a"),
        ("RETENTION_DUCKDB_MEMORY_LIMIT", "150%", "RETENTION_DUCKDB_MEMORY_LIMIT='150%' is not a"),
    ):
        with pytest.MonkeyPatch.context() as env:
            env.setenv(name, value)
            with pytest.raises(UserError, match=re.escape(message)):
                dbt.check_settings()
    # local Spark's, on that target only (Java's stack trace, or "install Java", said it)
    for name, value, meant in (
        ("RETENTION_SPARK_CORES", "two", "a positive whole number or *"),
        ("RETENTION_SPARK_DRIVER_MEMORY", "2GB", "a size as Java's -Xmx takes it (2g, 4096m)"),
        ("RETENTION_SPARK_SHUFFLE_PARTITIONS", "0", "a positive whole number"),
    ):
        with pytest.MonkeyPatch.context() as env:
            env.setenv(name, value)
            with pytest.raises(UserError, match=re.escape(f"{name}={value!r} is not {meant}")):
                dbt.check_settings("spark")
            dbt.check_settings("duckdb")
    for name, value in (("RETENTION_SPARK_CORES", "*"), ("RETENTION_SPARK_DRIVER_MEMORY", "4096m")):
        with pytest.MonkeyPatch.context() as env:
            env.setenv(name, value)
            dbt.check_settings("spark")
    # the PostgreSQL profile's port, on that target only
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PGPORT", "abc")
        with pytest.raises(UserError, match=re.escape("PGPORT='abc' is not a port number")):
            dbt.check_settings("postgres")
        dbt.check_settings("duckdb")
    for name, value in (
        ("RETENTION_DBT_THREADS", "3"),
        ("RETENTION_DUCKDB_MEMORY_LIMIT", "2 GB"),
        ("RETENTION_DUCKDB_MEMORY_LIMIT", "75%"),  # of the machine's memory (DuckDB 2.0)
    ):
        with pytest.MonkeyPatch.context() as env:
            env.setenv(name, value)
            dbt.check_settings()
    # the production job stops before it loads anything
    write_csv(tmp_path / "landing" / "customers" / "c.csv", ["customer_id"], [["C1"]])
    result = retention("run", data_dir=tmp_path, env={"RETENTION_DBT_THREADS": "two"})
    assert result.returncode == 1
    assert "RETENTION_DBT_THREADS='two' is not a positive whole number" in result.stderr
    assert "==> load" not in result.stdout
    assert "Traceback" not in result.stderr


def test_paths_the_engines_would_read_otherwise_are_refused(tmp_path: Path) -> None:
    """DuckDB reads a backslash in a file path as a folder separator: `a\\b` would write its
    warehouse into a/b, outside the data directory and its lock. Local Spark's settings put
    the data directory into Java's options and the metastore's URL: a space made Java look for
    a main class named after the rest of the path."""
    from retention import dbt
    from retention.errors import UserError

    data_dir = tmp_path / "back\\slash"
    write_csv(data_dir / "landing" / "customers" / "c.csv", ["customer_id"], [["C1"]])
    for command in ("load", "run"):
        result = retention(command, data_dir=data_dir)
        assert result.returncode == 1
        assert "has a backslash in its path, which DuckDB reads as a folder separator" in (
            result.stderr
        )
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "back").exists()
    for name in ("sp ace", "semi;colon", "quo'te"):
        with pytest.MonkeyPatch.context() as env:
            env.setenv("RETENTION_DATA_DIR", str(tmp_path / name))
            with pytest.raises(UserError, match=re.escape("local Spark's settings in profiles")):
                dbt.check_settings("spark")
            dbt.check_settings("duckdb")
            env.setenv("SPARK_REMOTE", "sc://spark:15002")  # a cluster: nothing local
            dbt.check_settings("spark")


def test_a_broken_landing_file_is_named_without_a_traceback(tmp_path: Path) -> None:
    write_csv(tmp_path / "landing" / "customers" / "customers.csv", ["id", "email"], [["1", "x"]])
    result = retention("load", data_dir=tmp_path)
    assert result.returncode == 1
    assert "customers/customers.csv" in result.stderr
    assert "missing required column(s) customer_id" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_malformed_validation_budget_stops_the_run_before_it_loads(tmp_path: Path) -> None:
    write_csv(tmp_path / "landing" / "customers" / "c.csv", ["customer_id"], [["C1"]])
    result = retention("run", data_dir=tmp_path, env={"RETENTION_VALIDATION_MEMORY": "half of it"})
    assert result.returncode == 1
    assert "RETENTION_VALIDATION_MEMORY='half of it' is not a size" in result.stderr
    assert "==> load" not in result.stdout and not (tmp_path / "warehouse.duckdb").exists()
    assert "Traceback" not in result.stderr


def test_commands_on_a_data_directory_with_nothing_in_it_say_what_to_do(tmp_path: Path) -> None:
    for command in ("build", "validate", "publish"):
        result = retention(command, data_dir=tmp_path / command)
        assert result.returncode == 1, command
        assert "error: no warehouse yet (warehouse.duckdb)" in result.stderr, command
        assert f"put the landing files in {tmp_path / command / 'landing'}" in result.stderr
        assert not (tmp_path / command / "warehouse.duckdb").exists(), command
        assert "Traceback" not in result.stderr, command
    # the production job on an empty landing folder stops before dbt, not at validation
    empty = tmp_path / "empty"
    result = retention("run", data_dir=empty)
    assert result.returncode == 1
    assert "load: 0 new file(s), 0 rows" in result.stdout
    assert "error: no customers and no orders loaded yet" in result.stderr
    assert not (empty / "dbt" / "target" / "run_results.json").exists()
    assert "Traceback" not in result.stderr
    # customers alone are not enough to build on
    write_csv(empty / "landing" / "customers" / "c.csv", ["customer_id"], [["C1"]])
    result = retention("run", data_dir=empty)
    assert result.returncode == 1
    assert "error: no orders loaded yet" in result.stderr
    # loaded but never built: nothing to validate yet
    result = retention("validate", data_dir=empty)
    assert result.returncode == 1
    assert "nothing to validate: no dbt build has been recorded" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("wait", ["nan", "inf", "-1", "soon"])
def test_a_wait_that_is_not_a_number_of_seconds_is_refused(
    wait: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from retention.cli import _parser

    with pytest.raises(SystemExit) as exited:
        _parser().parse_args(["publish", "--wait", wait])
    assert exited.value.code == 2
    assert "number of seconds" in capsys.readouterr().err


def test_the_shared_options_go_before_or_after_the_command(tmp_path: Path) -> None:
    from retention.cli import _parser

    parse = _parser().parse_args
    after = parse(["publish", "--data-dir", "d", "-v", "--wait", "5"])
    assert (after.data_dir, after.verbose, after.wait) == (Path("d"), True, 5.0)
    before = parse(["--data-dir", "d", "-v", "--wait", "5", "publish"])
    assert vars(before) == vars(after)
    # not given after the command: what was given before it stands
    assert parse(["--data-dir", "d", "run", "--as-of", "2025-01-31"]).data_dir == Path("d")
    assert parse(["--data-dir", "d", "run", "--data-dir", "e"]).data_dir == Path("e")
    assert parse(["run"]).wait == 0.0
    # a real command writes where the option after it says
    after_dir = tmp_path / "after"
    command = ["generate", "--customers", "20", "--data-dir", str(after_dir)]
    result = subprocess.run(
        [sys.executable, "-m", "retention", *command], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    assert any((after_dir / "landing" / "orders").iterdir())


def test_generate_does_not_replace_landing_files_unless_asked(tmp_path: Path) -> None:
    first = retention("generate", "--customers", "30", "--seed", "1", data_dir=tmp_path)
    assert first.returncode == 0, first.stderr
    files = {p: p.read_bytes() for p in (tmp_path / "landing").rglob("*") if p.is_file()}
    assert files
    again = retention("generate", "--customers", "40", "--seed", "2", data_dir=tmp_path)
    assert again.returncode == 1
    assert f"already has {len(files)} file(s)" in again.stderr
    assert "generating would delete them" in again.stderr and "--replace" in again.stderr
    assert {p: p.read_bytes() for p in (tmp_path / "landing").rglob("*") if p.is_file()} == files
    replaced = retention(
        "generate", "--customers", "40", "--seed", "2", "--replace", data_dir=tmp_path
    )
    assert replaced.returncode == 0, replaced.stderr
    assert {p: p.read_bytes() for p in (tmp_path / "landing").rglob("*") if p.is_file()} != files


def test_run_goes_from_generated_files_to_marts(tmp_path: Path) -> None:
    # a data directory whose path SQL would have to quote (dbt's profile, publish's COPY)
    tmp_path = tmp_path / "it's a dir"
    generated = retention(
        "generate",
        "--customers",
        "800",
        "--seed",
        "3",
        "--start",
        "2024-01-01",
        "--end",
        "2024-12-31",
        "--dirty-rate",
        "0.01",
        "--format",
        "parquet",
        data_dir=tmp_path,
    )
    assert generated.returncode == 0, generated.stderr
    result = retention("run", data_dir=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    for header in ("==> load", "==> build", "outputs:"):
        assert header in result.stdout
    # no library chatter without -v: Great Expectations' INFO log, pyspark's pandas warning
    assert not [line for line in result.stderr.splitlines() if line.startswith("INFO ")]
    assert "FutureWarning" not in result.stderr
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        customers = con.execute("select count(*) from marts.customers").fetchone()[0]
        buyers = con.execute("select count(*) from marts.customers where has_purchased").fetchone()[
            0
        ]
    assert customers == 800
    assert 0.6 * 800 < buyers < 800
    # the second run loads nothing new and rebuilds the same marts
    again = retention("run", data_dir=tmp_path)
    assert again.returncode == 0
    assert "load: 0 new file(s), 0 rows" in again.stdout
    # the production job runs every data test but no unit tests; `retention build` runs both
    assert _result_kinds(tmp_path) >= {"model", "test"}
    assert "unit_test" not in _result_kinds(tmp_path)
    built = retention("build", "--select", "int_reporting_dates", data_dir=tmp_path)
    assert built.returncode == 0, built.stdout[-3000:]
    assert "unit_test" in _result_kinds(tmp_path)
    # a selection that matches nothing (a typo) is an error, not a build of nothing
    typo = retention("build", "--select", "int_reporting_date", data_dir=tmp_path)
    assert typo.returncode == 1
    assert "--select 'int_reporting_date' matches no model, seed or test" in typo.stderr
    assert "Traceback" not in typo.stderr


def _result_kinds(data_dir: Path) -> set[str]:
    """The kinds of node (model, test, unit_test, ...) the last dbt invocation ran."""
    results = json.loads((data_dir / "dbt" / "target" / "run_results.json").read_text())
    return {result["unique_id"].split(".", 1)[0] for result in results["results"]}


def test_dbt_by_hand_before_any_load_says_what_to_do(tmp_path: Path) -> None:
    """README's "Running dbt by hand" on a new data directory: one message naming the fix, not
    a Catalog Error per model that reads raw.*."""
    result = dbt_executable(Paths(tmp_path / "data"), ["build"])
    assert result.returncode != 0
    assert "nothing loaded yet: raw.customers and raw.orders do not exist" in result.stdout
    assert "run `retention load`" in result.stdout
    assert "Catalog Error" not in result.stdout
    # a selection that reads neither table builds without them
    seeds = ["build", "--select", "resource_type:seed", "--exclude", "resource_type:test"]
    assert dbt_executable(Paths(tmp_path / "data"), seeds).returncode == 0


def test_dbt_commands_run_as_the_dbt_executable_runs_them(tmp_path: Path) -> None:
    """run_dbt runs dbt in retention.dbt_worker, started ahead or not: same output, same code."""
    paths = Paths(tmp_path)
    expected = dbt_executable(paths, ["no-such-command"])
    lines: list[str] = []
    result = dbt.run_dbt(["no-such-command"], paths, progress=lines.append, check=False)
    assert result.returncode == expected.returncode != 0
    assert lines == expected.stdout.splitlines()


def test_a_dbt_command_closes_the_warehouse_before_it_exits(tmp_path: Path) -> None:
    """The worker keeps dbt's objects out of the collection at exit, not the exit handlers:
    dbt-duckdb's closes the warehouse there, and writes what the command changed into the
    database file (no write-ahead log left to replay)."""
    paths = Paths(tmp_path)
    dbt.run_dbt(["seed", "--select", "channel_groups"], paths)
    assert paths.warehouse.exists()
    assert not paths.warehouse.with_name(paths.warehouse.name + ".wal").exists()
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        (rows,) = con.execute("select count(*) from reference.channel_groups").fetchone()
    assert rows > 0


def test_a_warm_dbt_runs_the_first_command_as_dbt_would(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    cold: list[str] = []
    warm_lines: list[str] = []
    expected = dbt.run_dbt(["no-such-command"], paths, progress=cold.append, check=False)
    with dbt.warm_dbt(paths) as warm:
        process = warm._process
        assert process is not None
        # started for this data directory and the default target only
        assert warm.take(Paths(tmp_path / "other"), None) is None
        assert warm.take(paths, "postgres") is None
        result = dbt.run_dbt(["no-such-command"], paths, progress=warm_lines.append, check=False)
        assert process.returncode is None  # not given to run_dbt: still waiting
        result = dbt.run_dbt(
            ["no-such-command"], paths, progress=warm_lines.append, check=False, warm=warm
        )
        assert process.returncode == expected.returncode != 0  # it ran there, with dbt's code
        assert warm.take(paths, None) is None  # once
    assert result.returncode == expected.returncode
    assert warm_lines[len(warm_lines) // 2 :] == cold


def _worker_imports(command_at_start: bool) -> list[str]:
    """The modules retention.dbt_worker imported (``-X importtime``) before it read its
    command, an empty line, given at once or once the process has waited for it a while."""
    process = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "retention.dbt_worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None and process.stderr is not None
    names: list[str] = []
    clv_imported = threading.Event()

    def read(stream: IO[str]) -> None:
        for line in stream:  # "import time: self | cumulative | name", as each import ends
            names.append(line.rsplit("|", 1)[-1].strip())
            if names[-1] == "retention.clv":
                clv_imported.set()

    reader = threading.Thread(target=read, args=(process.stderr,))
    reader.start()
    if not command_at_start:
        clv_imported.wait(timeout=120)
    process.stdin.write("\n")
    process.stdin.close()
    assert process.wait(timeout=120) == 0
    reader.join()
    return names


def test_a_waiting_dbt_imports_what_the_clv_models_need() -> None:
    """While `retention run` loads, the dbt process it started ahead has nothing to do once
    dbt is imported: it imports the CLV models' modules then (the first CLV model of a build
    took a second longer for them), but not when its command is already there."""
    assert "retention.clv" in _worker_imports(command_at_start=False)
    assert "retention.clv" not in _worker_imports(command_at_start=True)


def _reading_its_input(pid: int, timeout: float = 300) -> bool:
    """Whether the process is (within ``timeout``) blocked reading its standard input: Linux's
    /proc/PID/syscall starts with the call's number and first argument (read = 0, fd 0)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if Path(f"/proc/{pid}/syscall").read_text().startswith("0 0x0 "):
            return True
        time.sleep(0.05)
    return False


def test_an_unused_warm_dbt_ends(tmp_path: Path) -> None:
    """Ended, whatever it was doing: waiting for its command it exits quietly on the closed
    input; still importing (the CI run on a loaded machine found it so after 10 s), it is
    killed rather than waited for."""
    with dbt.warm_dbt(Paths(tmp_path)) as warm:
        process = warm._process
        assert process is not None and process.stdin is not None
        assert _reading_its_input(process.pid)
        # what close() does first; it then gives the exit a second, which a loaded machine's
        # CI run found too short (killed, harmlessly): the exit itself is what is tested here
        process.stdin.close()
        assert process.wait(timeout=60) == 0
    assert process.stdout is not None and process.stdout.closed
    with dbt.warm_dbt(Paths(tmp_path)) as warm:
        process = warm._process
        assert process is not None  # ended at once, in the middle of its imports
    assert process.returncode is not None
    assert process.stdout is not None and process.stdout.closed


def test_a_warm_dbt_that_ended_early_is_replaced_by_a_fresh_one(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    expected = dbt.run_dbt(["no-such-command"], paths, check=False)
    with dbt.warm_dbt(paths) as warm:
        process = warm._process
        assert process is not None
        process.kill()
        process.wait()
        lines: list[str] = []
        result = dbt.run_dbt(
            ["no-such-command"], paths, progress=lines.append, check=False, warm=warm
        )
    assert result.returncode == expected.returncode != 0
    assert any("No such command" in line for line in lines)


@pytest.mark.parametrize(
    "error",
    [
        OSError(28, "No space left on device"),
        duckdb.IOException('Could not write file "warehouse.duckdb": No space left on device'),
        # what DuckDB raises for a full disk at a checkpoint (the load's commit)
        duckdb.FatalException(
            "FATAL Error: Failed to create checkpoint because of error: Could not write file "
            '"warehouse.duckdb": No space left on device'
        ),
    ],
)
def test_a_full_disk_is_an_error_message_not_a_traceback(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    error: Exception,
) -> None:
    from retention import cli, pipeline

    monkeypatch.setenv("RETENTION_DATA_DIR", str(tmp_path))  # main() sets it; restored after

    def publish_step(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(pipeline, "publish_step", publish_step)
    assert cli.main(["--data-dir", str(tmp_path), "publish"]) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err
    assert f"check the free disk space and the permissions under {tmp_path.resolve()}" in err
    assert "run `retention publish` again" in err
    assert "Traceback" not in err


def test_dbt_failing_on_a_full_disk_says_so_without_its_stack(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """dbt writing its run results to a full disk fails with a Python stack: the message quoted
    the stack's last lines joined ('json.dump(...) File ".../json/__init__.py", line 180 ...')
    and no advice. It is the exception alone, and what to do."""
    tail = [
        "12:00:01  Finished running 180 table models in 0 hours 0 minutes and 9.10 seconds.",
        "Traceback (most recent call last):",
        '  File "/venv/lib/python3.11/site-packages/dbt/cli/requires.py", line 153, in wrapper',
        "    result, success = func(*args, **kwargs)",
        '  File "/usr/lib/python3.11/json/__init__.py", line 180, in dump',
        "    fp.write(chunk)",
        "OSError: [Errno 28] No space left on device",
        "",
    ]
    problems = dbt._error_lines(tail)
    assert problems == ["OSError: [Errno 28] No space left on device"]
    monkeypatch.setenv("RETENTION_DATA_DIR", "/srv/retention")
    message = str(dbt.DbtFailure("build", problems, 1))
    assert "File " not in message
    assert (
        "what to do: check the free disk space and the permissions under /srv/retention, then "
        "run the command again"
    ) in message
    # dbt's own errors keep their lines after "Encountered an error"
    compile_error = ["Encountered an error:", "Compilation Error in model customers", "> in macro"]
    assert dbt._error_lines(compile_error) == ["Compilation Error in model customers"]
    assert "what to do" not in str(dbt.DbtFailure("build", ["Compilation Error"], 2))


def test_a_damaged_warehouse_says_what_can_rebuild_it(tmp_path: Path) -> None:
    write_csv(tmp_path / "landing" / "customers" / "c.csv", ["customer_id"], [["C1"]])
    assert retention("load", data_dir=tmp_path).returncode == 0
    warehouse = tmp_path / "warehouse.duckdb"
    with warehouse.open("r+b") as handle:  # both of DuckDB's database headers
        handle.seek(4096)
        handle.write(b"\xff" * 8192)
    damaged = retention("load", data_dir=tmp_path)
    warehouse.write_text("not a database")
    not_duckdb = retention("load", data_dir=tmp_path)
    for result in (damaged, not_duckdb):
        assert result.returncode == 1
        assert f"what to do: the build warehouse ({warehouse}) is damaged" in result.stderr
        assert "move both aside and run `retention run`" in result.stderr
        assert "Traceback" not in result.stderr
    assert "Corrupt database file" in damaged.stderr
    assert "not a valid DuckDB database file" in not_duckdb.stderr
    # as it says: moved aside, the landing files load again
    warehouse.rename(tmp_path / "warehouse.damaged")
    assert "customers: 1 new file(s), 1 rows" in retention("load", data_dir=tmp_path).stdout


def test_a_write_ahead_log_left_beside_a_restored_warehouse_is_named(tmp_path: Path) -> None:
    """A command killed before its writes were checkpointed leaves warehouse.duckdb.wal; the
    warehouse then restored from a backup (as the damaged-file advice says) does not match it,
    and every command failed with advice about disk space and permissions, which never helps."""
    write_csv(tmp_path / "landing" / "customers" / "c.csv", ["customer_id"], [["C1"]])
    assert retention("load", data_dir=tmp_path).returncode == 0
    warehouse = tmp_path / "warehouse.duckdb"
    backup = tmp_path / "backup.duckdb"
    shutil.copy(warehouse, backup)
    write_csv(tmp_path / "landing" / "customers" / "d.csv", ["customer_id"], [["C2"]])
    assert retention("load", data_dir=tmp_path).returncode == 0
    killed = (
        "import duckdb, os, signal, sys; con = duckdb.connect(sys.argv[1]); "
        "con.execute(\"set checkpoint_threshold = '1TB'\"); "
        "con.execute('create table raw.t as select 1 as x'); os.kill(os.getpid(), signal.SIGKILL)"
    )
    subprocess.run([sys.executable, "-c", killed, str(warehouse)], check=False)
    assert warehouse.with_name("warehouse.duckdb.wal").exists()
    shutil.copy(backup, warehouse)
    result = retention("load", data_dir=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"what to do: {warehouse}.wal, the log of writes not yet in {warehouse}" in result.stderr
    assert "free disk space" not in result.stderr
    # as it says: the log moved aside, the load takes the file the backup did not have
    warehouse.with_name("warehouse.duckdb.wal").rename(tmp_path / "warehouse.wal.aside")
    assert "customers: 1 new file(s), 1 rows" in retention("load", data_dir=tmp_path).stdout


def test_running_out_of_memory_is_an_error_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from retention import cli, pipeline

    monkeypatch.setenv("RETENTION_DATA_DIR", str(tmp_path))

    def out_of_memory(*args: object, **kwargs: object) -> None:
        raise MemoryError("Unable to allocate 7.28 TiB")

    monkeypatch.setattr(pipeline, "generate", out_of_memory)
    assert cli.main(["generate", "--customers", "1000000000000", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "error: out of memory (Unable to allocate 7.28 TiB)" in err
    assert "(or generate fewer --customers)" in err
    assert "Traceback" not in err


def test_duckdb_out_of_memory_names_the_setting(tmp_path: Path) -> None:
    """DuckDB's out-of-memory error is not Python's MemoryError: it ended as a traceback. And the
    load ignored RETENTION_DUCKDB_MEMORY_LIMIT (DuckDB's default is 80 % of the machine)."""
    from retention.generate import generate

    generate(tmp_path / "landing", customers=2_000, seed=3, progress=lambda _: None)
    result = retention("load", data_dir=tmp_path, env={"RETENTION_DUCKDB_MEMORY_LIMIT": "1MB"})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "error: out of memory (Out of Memory Error: " in result.stderr
    assert "Possible solutions" not in result.stderr  # DuckDB's settings, not the project's
    assert "what to do: RETENTION_DUCKDB_MEMORY_LIMIT (now 1MB) is DuckDB's ceiling" in (
        result.stderr
    )
    # a malformed setting is named (the load's connection reads it too now)
    malformed = retention("load", data_dir=tmp_path, env={"RETENTION_DUCKDB_MEMORY_LIMIT": "lots"})
    assert malformed.returncode == 1 and "Traceback" not in malformed.stderr
    assert "RETENTION_DUCKDB_MEMORY_LIMIT='lots' is not a memory size" in malformed.stderr
    # nothing half-loaded: with the memory it needs, the load takes every file
    loaded = retention("load", data_dir=tmp_path)
    assert loaded.returncode == 0 and "0 file(s) already loaded" in loaded.stdout


def test_a_model_out_of_memory_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """dbt's summary of a model that ran out of memory ended on DuckDB's dangling "Possible
    solutions:" heading, with no advice."""
    monkeypatch.setenv("RETENTION_DUCKDB_MEMORY_LIMIT", "500MB")
    result = {
        "status": "error",
        "unique_id": "model.retention_warehouse.base_shop__orders",
        "message": "Runtime Error in model base_shop__orders (models/base_shop__orders.sql)\n"
        "  Out of Memory Error: could not allocate block of size 256.0 KiB (476.8 MiB/476.8 "
        "MiB used)\n  \n  Possible solutions:\n  * Reducing the number of threads",
    }
    problems = dbt._summarise([result])
    assert problems == [
        "model base_shop__orders: Out of Memory Error: could not allocate block of size 256.0 "
        "KiB (476.8 MiB/476.8 MiB used)"
    ]
    assert "RETENTION_DUCKDB_MEMORY_LIMIT (now 500MB) is DuckDB's ceiling" in str(
        dbt.DbtFailure("build", problems, 1)
    )


def test_validate_and_publish_refuse_another_target(tmp_path: Path) -> None:
    """With RETENTION_DBT_TARGET=postgres, validate passed and publish republished the DuckDB
    warehouse of an earlier build, and neither said a word of PostgreSQL."""
    for command in ("validate", "publish", "report"):
        result = retention(command, data_dir=tmp_path, env={"RETENTION_DBT_TARGET": "postgres"})
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert (
            f"`retention {command}` works on the DuckDB warehouse, and RETENTION_DBT_TARGET is "
            "postgres"
        ) in result.stderr


def test_a_file_where_a_folder_belongs_is_named(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "data" / "landing").mkdir(parents=True)
    (tmp_path / "data" / "landing" / "orders").write_text("x")
    for result, path in [
        (retention("load", data_dir=tmp_path / "a-file"), tmp_path / "a-file"),
        (retention("generate", data_dir=tmp_path / "data"), tmp_path / "data/landing/orders"),
    ]:
        assert result.returncode == 1
        assert f"a file stands where a folder is needed, at {path} or above it" in result.stderr
        assert "disk space" not in result.stderr
        assert "Traceback" not in result.stderr


def test_a_bug_still_shows_its_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from retention import cli, pipeline

    monkeypatch.setenv("RETENTION_DATA_DIR", str(tmp_path))

    def publish_step(*args: object, **kwargs: object) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(pipeline, "publish_step", publish_step)
    with pytest.raises(KeyError):
        cli.main(["--data-dir", str(tmp_path), "publish"])


def test_the_command_line_imports_the_pipeline_only_to_run_a_command() -> None:
    # the build commands start dbt first (cli._early_dbt): it imports itself while they import
    # the pipeline (pandas, SciPy, Great Expectations)
    code = "import sys, retention.cli; print('retention.pipeline' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("argv", "warm_target"),
    [
        (["build"], "duckdb"),
        (["build", "--target", "postgres"], None),
        (["run", "--as-of", "2025-01-31"], "duckdb"),
        (["demo"], "duckdb"),
        (["load"], None),
    ],
)
def test_build_commands_hand_the_dbt_they_started_first_to_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], warm_target: str | None
) -> None:
    from retention import cli, pipeline

    monkeypatch.delenv("RETENTION_DBT_TARGET", raising=False)
    monkeypatch.setenv("RETENTION_DATA_DIR", str(tmp_path))  # main() sets it; restored after
    given: list[object] = []
    alive: list[bool] = []

    def step(*args: object, warm: dbt.WarmDbt | None = None, **kwargs: object) -> None:
        given.append(warm)
        process = warm._process if warm is not None else None
        alive.append(process is not None and process.poll() is None)

    for name in ("build_step", "run", "demo", "load_step"):
        monkeypatch.setattr(pipeline, name, step)
    monkeypatch.setattr(pipeline, "outputs_message", lambda paths: "")
    assert cli.main(["--data-dir", str(tmp_path), *argv]) == 0
    (warm,) = given
    if warm_target is None:
        assert warm is None
    else:
        assert isinstance(warm, dbt.WarmDbt)
        assert (warm.paths, warm.target) == (Paths(tmp_path.resolve()), warm_target)
        assert alive == [True]  # started before the command ran, and waiting for it
        assert warm._process is None  # ended with the command, unused here


def test_dbt_processes_run_blas_on_one_thread_unless_told_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # OpenBLAS's threads spin between calls on the cores DuckDB's queries need
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    assert dbt.dbt_env(Paths(tmp_path))["OPENBLAS_NUM_THREADS"] == "1"
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "4")
    assert dbt.dbt_env(Paths(tmp_path))["OPENBLAS_NUM_THREADS"] == "4"


def test_a_new_data_directory_starts_from_the_saved_parse(tmp_path: Path) -> None:
    # the one make install saves is the project as it was then; this one is the project as it is
    seed = dbt.save_seed_parse(tmp_path / "seed" / "partial_parse.msgpack")
    paths = Paths(tmp_path / "new")
    assert dbt.seed_parse(paths, seed=seed)
    assert (paths.dbt_target / "partial_parse.msgpack").read_bytes() == seed.read_bytes()
    assert dbt.parse_in_background(paths) is None  # nothing left to parse in the background
    dbt.run_dbt(["ls", "--select", "customers"], paths)
    log = (paths.dbt_logs / "dbt.log").read_text()
    assert "Partial parsing enabled, no changes found, skipping parsing" in log
    assert "Unable to do partial parsing" not in log

    # other vars: dbt would parse everything again anyway, so the seed is left alone and the
    # background parse runs with the command's own vars
    with_vars = Paths(tmp_path / "vars")
    assert not dbt.seed_parse(with_vars, dbt_vars={"churn_inactivity_days": 90}, seed=seed)
    assert not (with_vars.dbt_target / "partial_parse.msgpack").exists()
    # but a date is no var on dbt's command line (dbt.as_of_environment): the seed serves
    as_of = {"as_of_date": "2025-06-30"}
    assert dbt.seed_parse(Paths(tmp_path / "as_of"), dbt_vars=as_of, seed=seed)
    # and only on DuckDB, the one target whose profile is the same for every data directory
    assert not dbt.seed_parse(Paths(tmp_path / "pg"), target="postgres", seed=seed)


def test_dbt_runs_in_the_data_directory_on_duckdb_only(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    assert dbt.dbt_cwd(paths, "duckdb") == tmp_path
    assert dbt.dbt_env(paths, "duckdb")["RETENTION_DATA_DIR"] == "."
    assert dbt.dbt_cwd(paths, "spark") == project_dir()
    assert dbt.dbt_env(paths, "spark")["RETENTION_DATA_DIR"] == str(tmp_path)
