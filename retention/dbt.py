"""Run dbt for the pipeline: one subprocess per command, output streamed, failures summarised.

dbt runs as a subprocess of the same environment (not in-process) so that its DuckDB connection
is always closed when the command ends and a crash in dbt cannot take the pipeline state with it.
A caller that knows a dbt command will follow other work can start that process first
(``warm_dbt``): it imports dbt meanwhile and runs the command when it comes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from retention.config import Paths, apply_environment, duckdb_memory_limit, project_dir
from retention.errors import (
    UserError,
    damaged_database_advice,
    environment_advice,
    memory_advice,
    mentions_damaged_database,
    mentions_environment_problem,
    mentions_out_of_memory,
)
from retention.locking import inherited_descriptors

log = logging.getLogger(__name__)

TARGETS = ("duckdb", "postgres", "spark")
#: what pyspark 4.3 warns at every import under pandas 3 (the project's use of it is tested)
PYSPARK_PANDAS_WARNING = "PySpark does not yet fully support pandas"
#: how long a stopped dbt process gets to cancel its queries and exit before it is killed
STOP_GRACE_SECONDS = 30.0
#: the environment variable that gives dbt the as_of_date (``as_of_environment``)
AS_OF_ENV = "RETENTION_AS_OF_DATE"

#: the dbt processes this one started that may still run (``stop_started``)
_started: list[subprocess.Popen] = []


class DbtFailure(UserError):
    """dbt finished with errors or failing tests; the message lists them."""

    def __init__(self, command: str, failures: list[str], returncode: int) -> None:
        self.failures = failures
        self.returncode = returncode
        lines = [f"dbt {command} failed ({len(failures)} problem(s)):"]
        lines += [f"- {f}" for f in failures] or ["- see the dbt output above"]
        where = os.environ.get("RETENTION_DATA_DIR")
        if damaged := [f for f in failures if mentions_damaged_database(f)]:
            lines.append(f"  {damaged_database_advice(where, damaged[0])}")
        elif any(mentions_environment_problem(f) for f in failures):
            lines.append(f"  {environment_advice(where, 'then run the command again')}")
        elif any(mentions_out_of_memory(f) for f in failures):
            lines.append(f"  {memory_advice('then run the command again')}")
        super().__init__("\n".join(lines))


@dataclass
class DbtResult:
    command: str
    returncode: int
    results: list[dict[str, Any]] = field(default_factory=list)

    def by_status(self, status: str) -> list[dict[str, Any]]:
        return [r for r in self.results if r.get("status") == status]


def _interpreters_dbt() -> Path | None:
    """The dbt installed with this interpreter (its virtualenv's), if there is one."""
    candidate = Path(sys.executable).parent / "dbt"
    return candidate if candidate.is_file() else None


def dbt_executable() -> str:
    """The dbt next to this interpreter (works from an unactivated virtualenv), else PATH."""
    own = _interpreters_dbt()
    if own is not None:
        return str(own)
    found = shutil.which("dbt")
    if not found:
        raise UserError("dbt is not installed in this environment; run `make install`.")
    return found


def check_settings(target: str | None = None) -> None:
    """Raise a ``UserError`` naming the variable when a setting profiles.yml reads for
    ``target`` is malformed: dbt would fail later with a traceback from deep inside the
    adapter, or with another value than the one set (``PGPORT=abc`` became port 0)."""
    threads = os.environ.get("RETENTION_DBT_THREADS")
    if threads is not None and not (threads.strip().isdigit() and int(threads) > 0):
        raise UserError(f"RETENTION_DBT_THREADS={threads!r} is not a positive whole number")
    port = os.environ.get("PGPORT")
    if (
        resolve_target(target) == "postgres"
        and port is not None
        and not (port.strip().isdigit() and 0 < int(port) < 65536)
    ):
        raise UserError(f"PGPORT={port!r} is not a port number (1 to 65535)")
    if resolve_target(target) == "spark" and not os.environ.get("SPARK_REMOTE"):
        check_local_spark_paths(Paths.from_env())
        check_local_spark_settings()
    if "RETENTION_DUCKDB_MEMORY_LIMIT" in os.environ:
        duckdb_memory_limit()


#: local Spark's settings in profiles.yml: variable, what it must be, its pattern (Spark's own
#: errors for them came as Java stack traces, or as "install Java")
SPARK_SETTINGS: tuple[tuple[str, str, str], ...] = (
    ("RETENTION_SPARK_CORES", "a positive whole number or *", r"[1-9][0-9]*|\*"),
    ("RETENTION_SPARK_SHUFFLE_PARTITIONS", "a positive whole number", r"[1-9][0-9]*"),
    ("RETENTION_SPARK_DRIVER_MEMORY", "a size as Java's -Xmx takes it (2g, 4096m)", r"\d+[kmgt]?"),
)


def check_local_spark_settings() -> None:
    """Raise a ``UserError`` naming a malformed RETENTION_SPARK_* setting (``SPARK_SETTINGS``)."""
    for name, meant, pattern in SPARK_SETTINGS:
        value = os.environ.get(name)
        if value is not None and not re.fullmatch(pattern, value.strip(), re.IGNORECASE):
            raise UserError(f"{name}={value!r} is not {meant}")


#: what a folder of local Spark's may not have in its path: profiles.yml writes the data
#: directory and the project into the driver's JVM options, split on whitespace and quotes, and
#: into the Derby metastore's JDBC URL, whose attributes ';' separates
SPARK_PATH_CHARACTERS = frozenset(" \t\n\r\"'\\;")


def check_local_spark_paths(paths: Paths) -> None:
    """Raise a ``UserError`` when the data directory's or the project's path has a character
    local Spark's settings cannot hold (``SPARK_PATH_CHARACTERS``): a space made Java look for a
    main class named after the rest of the path, and reported Java as missing."""
    for name, folder in (("data directory", paths.data_dir), ("project", project_dir())):
        found = sorted(set(str(folder)) & SPARK_PATH_CHARACTERS)
        if found:
            raise UserError(
                f"the {name} {str(folder)!r} has {' and '.join(map(repr, found))} in its path: "
                "local Spark's settings in profiles.yml (the driver's Java options, the metastore "
                f"URL) cannot hold it. Use a {name} whose path has no spaces, quotes, "
                "backslashes or ';' for the spark target"
            )


#: Where ``make install`` saves a parse of the project for data directories (``seed_parse``),
#: under the project.
SEED_PARSE = Path("target") / "data_dir_parse" / "partial_parse.msgpack"


def _runs_in_data_dir(target: str | None) -> bool:
    """Whether dbt runs inside the data directory with ``RETENTION_DATA_DIR=.`` (``dbt_cwd``,
    ``dbt_env``): on DuckDB, whose profile then renders the same for every data directory, so a
    saved parse serves them all (``seed_parse``). PostgreSQL and Spark keep the absolute path,
    which the Spark settings use."""
    return resolve_target(target) == "duckdb"


def dbt_cwd(paths: Paths, target: str | None = None) -> Path:
    """The working directory of a dbt process for ``paths``: on DuckDB the data directory, which
    the profile's warehouse path is then relative to (see ``dbt_env``); the project otherwise."""
    if _runs_in_data_dir(target):
        paths.data_dir.mkdir(parents=True, exist_ok=True)
        return paths.data_dir
    return project_dir()


def dbt_env(
    paths: Paths, target: str | None = None, dbt_vars: dict[str, Any] | None = None
) -> dict[str, str]:
    """Environment for a dbt process: data dir, target, where dbt writes its artifacts, and
    the reporting date of ``dbt_vars`` (``as_of_environment``).

    On DuckDB ``RETENTION_DATA_DIR`` is ``.``, and the process runs in the data directory
    (``dbt_cwd``): the profile then renders the same for every data directory, and dbt accepts
    a parse saved for another one (``seed_parse``). dbt reparses everything when the profile it
    renders differs from the one the saved parse was made with.
    """
    check_settings(target)
    env = dict(os.environ)
    env["RETENTION_DATA_DIR"] = "." if _runs_in_data_dir(target) else str(paths.data_dir)
    env["DBT_PROFILES_DIR"] = str(project_dir())
    env["DBT_PROJECT_DIR"] = str(project_dir())
    env["DBT_TARGET_PATH"] = str(paths.dbt_target)
    env["DBT_LOG_PATH"] = str(paths.dbt_logs)
    env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    if target:
        env["RETENTION_DBT_TARGET"] = target
    if resolve_target(target) == "postgres":
        # libpq's: text in UTF-8 and the build log's timestamps in UTC whatever the user's
        # environment or the server's defaults (targets.postgres_connect sets the same)
        env["PGCLIENTENCODING"] = "UTF8"
        env["PGTZ"] = "UTC"
    env.setdefault("PYTHONWARNINGS", f"ignore:{PYSPARK_PANDAS_WARNING}")
    # BLAS on the calling thread: in a dbt process the cores belong to DuckDB's threads, and
    # OpenBLAS's own threads spin between calls (the CLV fits' L-BFGS-B calls LAPACK)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    apply_environment(env, as_of_environment(dbt_vars))
    return env


def resolve_target(target: str | None = None) -> str:
    """The dbt target a command uses: ``--target``, else $RETENTION_DBT_TARGET, else duckdb."""
    chosen = target or os.environ.get("RETENTION_DBT_TARGET") or "duckdb"
    if chosen not in TARGETS:
        raise UserError(f"unknown target {chosen!r}; choose one of {', '.join(TARGETS)}")
    return chosen


def build_vars(as_of: str | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    values: dict[str, Any] = dict(extra or {})
    if as_of:
        values["as_of_date"] = as_of
    return values


def project_as_of_date() -> str:
    """The as_of_date that dbt_project.yml sets ('' for none)."""
    try:
        project = yaml.safe_load((project_dir() / "dbt_project.yml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return ""  # dbt says what is wrong with the file
    values = project.get("vars") or {}
    value = values.get("as_of_date", (values.get(project.get("name")) or {}).get("as_of_date"))
    text = "" if value is None else str(value).strip()
    return "" if text in ("none", "None") else text


def command_line_vars(dbt_vars: dict[str, Any] | None) -> dict[str, Any]:
    """The vars given to dbt as ``--vars``: all but as_of_date, which goes in the environment
    (``as_of_environment``), unless dbt_project.yml sets one: a var there comes before the
    environment (``as_of_date_var``), and `--as-of` must win over it, as ``--vars`` do."""
    keep_date = bool(project_as_of_date())
    return {
        name: value for name, value in (dbt_vars or {}).items() if name != "as_of_date" or keep_date
    }


def as_of_environment(dbt_vars: dict[str, Any] | None) -> dict[str, str | None]:
    """The environment that gives dbt the as_of_date of ``dbt_vars``: AS_OF_ENV set to it, or
    removed (None) without one, so that a value left in the caller's environment is not taken.

    dbt parses the whole project again (about 5 s of one core) whenever the ``--vars`` differ
    from those of the parse it saved last, but when an environment variable changes only the
    files that read it (int_reporting_dates: macros/as_of_date.sql, as_of_date_var()): a daily
    build has a new date every day."""
    value = (dbt_vars or {}).get("as_of_date")
    return {AS_OF_ENV: None if value in (None, "") else str(value)}


def _failing_rows(paths: Paths, result: dict[str, Any], shown: int = 3) -> str:
    """A few rows a failed test returned, read again from the DuckDB warehouse with the SQL dbt
    ran ('' when that cannot be done): "N failing row(s)" alone named no order, file or month.
    Best effort: it never hides the failure itself."""
    compiled = (result.get("compiled_code") or "").strip().rstrip(";")
    if not compiled or not paths.warehouse.exists():
        return ""
    import duckdb

    try:
        with duckdb.connect(str(paths.warehouse), read_only=True) as con:
            cursor = con.execute(f"select * from ({compiled}) as failing limit {shown}")
            columns = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
    except Exception:  # the warehouse in use, SQL of another engine: the count says enough
        log.debug("could not read the failing rows of %s", result.get("unique_id"), exc_info=True)
        return ""
    text = "; ".join(
        ", ".join(f"{c}={v}" for c, v in zip(columns, row, strict=True)) for row in rows
    )
    return f", e.g. {text[:400]}" if text else ""


def _summarise(results: list[dict[str, Any]], paths: Paths | None = None) -> list[str]:
    """One line per failed node; with ``paths`` (DuckDB), a failed test's first rows too."""
    problems = []
    for r in results:
        if r.get("status") not in ("error", "fail"):
            continue
        unique_id = r.get("unique_id", "?")
        kind, _, name = unique_id.partition(".")
        name = name.split(".", 1)[-1]
        message = [m.strip() for m in (r.get("message") or "").strip().splitlines()]
        # without the macro call stack, as _error_lines
        message = [m for m in message if m and not m.startswith("> ")]
        # dbt's first line repeats the node name; the cause is on the next one
        detail = " ".join(message[1:3]) if len(message) > 1 else (message or [r.get("status")])[0]
        # DuckDB's out-of-memory error goes on with its own settings' names: memory_advice
        detail = detail.split(" Possible solutions:")[0]
        if any("Traceback (most recent call last)" in m for m in message):
            # a Python model's error: its last line names the exception and what it says
            detail = f"Python model failed: {message[-1]}"
        if r.get("status") == "fail":
            detail = f"{r.get('failures')} failing row(s)"
            if paths is not None:
                detail += _failing_rows(paths, r)
        problems.append(f"{kind} {name}: {detail}")
    return problems


def _error_lines(tail: list[str]) -> list[str]:
    """The lines dbt prints after "Encountered an error" (compile and parse errors), without
    the macro call stack ("> in macro ...", "> called by ..."), which the output above shows."""
    text = [re.sub(r"^\d\d:\d\d:\d\d\s+", "", line).strip() for line in tail]
    stacks = [i for i, line in enumerate(text) if line.startswith("Traceback (most recent")]
    if stacks:  # dbt itself failed (writing its files to a full disk, say): its exception
        return [line for line in text[stacks[-1] :] if line][-1:]
    starts = [i for i, line in enumerate(text) if "Encountered an error" in line]
    lines = text[starts[-1] + 1 :] if starts else text[-5:]
    lines = [line for line in lines if line and not line.startswith("> ")]
    return [" ".join(lines)] if lines else []


def dbt_command(args: Sequence[str], dbt_vars: dict[str, Any] | None = None) -> list[str]:
    """The command line of ``dbt <args>``: this environment's dbt, no colours, the vars but
    as_of_date, which its environment gives (``dbt_env`` with the same ``dbt_vars``)."""
    command = [dbt_executable(), *args, "--no-use-colors"]
    given = command_line_vars(dbt_vars)
    if given:
        command += ["--vars", json.dumps(given)]
    return command


def seed_parse(
    paths: Paths,
    target: str | None = None,
    dbt_vars: dict[str, Any] | None = None,
    seed: Path | None = None,
) -> bool:
    """Give a data directory without a saved parse the one ``make install`` saved (SEED_PARSE);
    return whether it now has one.

    A data directory's first dbt command otherwise parses the whole project (about 5 s of one
    core). dbt checks a saved parse before it uses it, as it checks its own: it reparses the
    files changed since and everything when the dbt version, the profile, the vars or
    dbt_project.yml differ. So only the DuckDB target (the only one whose profile renders the
    same for every data directory) without vars (other vars make dbt parse everything) takes
    the seed.
    """
    saved = paths.dbt_target / SEED_PARSE.name
    if saved.exists():
        return True
    seed = seed or project_dir() / SEED_PARSE
    if command_line_vars(dbt_vars) or not _runs_in_data_dir(target) or not seed.is_file():
        return False
    paths.dbt_target.mkdir(parents=True, exist_ok=True)
    partial = saved.with_name(f".{saved.name}.{os.getpid()}")
    shutil.copyfile(seed, partial)
    partial.replace(saved)  # a dbt reading the folder never sees half a file
    return True


def save_seed_parse(seed: Path | None = None) -> Path:
    """Parse the project as a data directory's dbt command would (DuckDB, no vars) and save the
    result as ``seed`` (default SEED_PARSE), for ``seed_parse``; ``make install`` runs this.
    Returns its path."""
    seed = seed or project_dir() / SEED_PARSE
    env = dbt_env(Paths(seed.parent), "duckdb")
    env["DBT_TARGET_PATH"] = str(seed.parent)
    env["DBT_LOG_PATH"] = str(seed.parent)
    done = subprocess.run(
        dbt_command(["parse", "--quiet"]),
        cwd=project_dir(),
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 or not seed.is_file():
        lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
        raise UserError("dbt parse of the project failed:\n" + "\n".join(lines[-20:]))
    return seed


def parse_in_background(
    paths: Paths, target: str | None = None, dbt_vars: dict[str, Any] | None = None
) -> subprocess.Popen | None:
    """Start ``dbt parse`` for a data directory that has no saved parse yet and cannot take the
    seed (``seed_parse``), or return None.

    A first build parses the whole project (about 5 s of one core) before it runs anything;
    ``retention run`` starts this while it loads, on the core the load leaves idle, and waits
    for it before the build, which then reads the saved parse. ``dbt parse`` does not open the
    warehouse, so it does not contend for the load's lock. The vars must be the build's: other
    vars make dbt parse everything again. Its output is dropped: a project that does not parse
    fails the build with the same message.
    """
    if seed_parse(paths, target, dbt_vars):
        return None
    return _started_process(
        dbt_command(["parse"], dbt_vars),
        cwd=dbt_cwd(paths, target),
        env=dbt_env(paths, target, dbt_vars),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        pass_fds=inherited_descriptors(),
    )


def _started_process(command: list[str], **kwargs: Any) -> subprocess.Popen:
    """``subprocess.Popen``, remembered until it has ended (``stop_started``)."""
    _started[:] = [p for p in _started if p.poll() is None]
    process = subprocess.Popen(command, **kwargs)
    _started.append(process)
    return process


def stop_started(say: Callable[[str], None], grace: float = STOP_GRACE_SECONDS) -> int:
    """Stop the dbt processes this one started that still run, and wait until they have ended;
    return how many there were.

    For a command that is stopping (SIGTERM, Ctrl-C): without this, its dbt build would go on
    writing the warehouse after the command has gone. Each gets SIGINT, as Ctrl-C gives it in a
    terminal (dbt then cancels its queries, writes its run results and exits), also after a
    Ctrl-C in a terminal, which reached dbt too: a SIGINT sent to this process alone (`kill
    -INT`, a supervisor's stop signal) did not, and ``retention.dbt_worker`` ignores the second
    one. What dbt prints meanwhile goes to ``say``. A process still running after ``grace``
    seconds is killed, and so is every one at once on a KeyboardInterrupt meanwhile (Ctrl-C
    again: no more waiting; it is raised again): the warehouse takes that too (DuckDB's
    write-ahead log), only slower to open next time.
    """
    running = [p for p in _started if p.poll() is None]
    _started.clear()
    try:
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + grace
        for process in running:
            if process.stdin is not None and process.stdin.closed:
                process.stdin = None  # its command was written: communicate sends nothing
            try:
                output, _ = process.communicate(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                say(f"    dbt (process {process.pid}) did not stop within {grace:.0f} s: killed")
                process.kill()
                output, _ = process.communicate()
            for line in (output or "").splitlines():
                if "Encountered an error" in line:
                    break  # the rest is the stack of dbt's KeyboardInterrupt, not a problem
                say(f"    {line}")
    except KeyboardInterrupt:
        for process in running:
            process.kill()
            process.wait()
        raise
    return len(running)


def finish_background(process: subprocess.Popen, timeout: float = 300) -> None:
    """Wait for a background dbt command such as ``parse_in_background``'s; stop it if it has
    not finished within ``timeout`` seconds (the build then parses for itself)."""
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _streamed(
    command: list[str],
    paths: Paths,
    target: str | None,
    stdin: int | None = None,
    dbt_vars: dict[str, Any] | None = None,
) -> subprocess.Popen:
    """A dbt process for ``paths`` and ``target`` whose output (stderr too) is read line by line.
    It shares the data directory's lock, if this process holds it (``locking``)."""
    return _started_process(
        command,
        cwd=dbt_cwd(paths, target),
        env=dbt_env(paths, target, dbt_vars),
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        pass_fds=inherited_descriptors(),
    )


class WarmDbt:
    """A dbt process started ahead of its command (``retention.dbt_worker``): it imports dbt
    while the caller does other work, and the first ``run_dbt`` given it runs there instead of
    starting dbt from scratch. Its environment is fixed when it starts (``dbt_env``)."""

    def __init__(self, paths: Paths, target: str | None = None) -> None:
        self.paths = paths
        self.target = target
        self._process: subprocess.Popen | None = None
        if _interpreters_dbt() is None:
            return  # dbt is not this interpreter's: commands start the one dbt_executable finds
        self._process = _streamed(
            [sys.executable, "-m", "retention.dbt_worker"], paths, target, stdin=subprocess.PIPE
        )

    def take(self, paths: Paths, target: str | None) -> subprocess.Popen | None:
        """The waiting process, once, for a command on the same data directory and target."""
        if self._process is None or (paths, target) != (self.paths, self.target):
            return None
        process, self._process = self._process, None
        return process

    def close(self) -> None:
        """End the process if no command took it: it exits on an empty input once its imports
        are done; one still importing (on a loaded machine, the CLV models' modules too) is
        killed, which costs nothing (it has opened no warehouse) and does not keep the command
        waiting."""
        process, self._process = self._process, None
        if process is None:
            return
        try:
            assert process.stdin is not None
            process.stdin.close()
            process.wait(timeout=1)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()
        finally:
            if process.stdout is not None:
                process.stdout.close()


@contextmanager
def warm_dbt(paths: Paths, target: str | None = None) -> Iterator[WarmDbt]:
    """A ``WarmDbt`` for the duration of the block; ended at its end if no command used it."""
    warm = WarmDbt(paths, target)
    try:
        yield warm
    finally:
        warm.close()


def run_dbt(
    args: Sequence[str],
    paths: Paths,
    target: str | None = None,
    dbt_vars: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
    check: bool = True,
    warm: WarmDbt | None = None,
) -> DbtResult:
    """Run ``dbt <args>`` and return its results; raise ``DbtFailure`` on errors if ``check``.

    With ``warm`` (``warm_dbt``) the command runs in its waiting process, if it has not been
    used yet and was started for the same data directory and target; otherwise in a new one
    (``retention.dbt_worker``), or with the dbt executable when dbt is not this interpreter's.
    """
    if target and target not in TARGETS:
        raise UserError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    command = dbt_command(args, dbt_vars)
    say = progress or (lambda line: None)
    paths.data_dir.mkdir(parents=True, exist_ok=True)
    seed_parse(paths, target, dbt_vars)
    run_results = paths.dbt_target / "run_results.json"
    if run_results.exists():
        run_results.unlink()
    process = warm.take(paths, target) if warm is not None else None
    if process is None:
        # a new worker (retention.dbt_worker: it exits 0.4 s sooner than the dbt executable)
        process = WarmDbt(paths, target).take(paths, target)
    if process is not None:
        assert process.stdin is not None
        try:
            # the command's arguments and the environment it needs that the process, started
            # before its date was known, may not have (retention.dbt_worker)
            request = {"args": command[1:], "environment": as_of_environment(dbt_vars)}
            process.stdin.write(json.dumps(request) + "\n")
            process.stdin.close()
        except OSError:  # it ended early; a fresh dbt prints the same problem, if any
            process.wait()
            if process.stdout is not None:
                process.stdout.close()
            process = None
    if process is None:
        process = _streamed(command, paths, target, dbt_vars=dbt_vars)
    assert process.stdout is not None
    tail: list[str] = []
    for line in process.stdout:
        line = line.rstrip()
        say(line)
        tail = [*tail[-30:], line]
    returncode = process.wait()
    results: list[dict[str, Any]] = []
    if run_results.exists():
        try:
            results = json.loads(run_results.read_text()).get("results", [])
        except ValueError as exc:  # cut short: a full disk, say
            if returncode == 0:
                raise UserError(
                    f"dbt {args[0]} finished, but {run_results} cannot be read ({exc})\n"
                    "  what to do: check the free space of the data directory's disk, then "
                    "run the command again"
                ) from exc
            # the failure says more than the file: from dbt's last lines below
    result = DbtResult(args[0], returncode, results)
    if check and returncode != 0:
        problems = _summarise(results, paths if resolve_target(target) == "duckdb" else None)
        if not problems:
            problems = _error_lines(tail)
        raise DbtFailure(args[0], problems, returncode)
    return result
