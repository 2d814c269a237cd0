"""Great Expectations validation of raw inputs, staging and every mart (write-audit-publish).

Tables are read from the build warehouse (read-only) through Arrow into pandas and validated
with GX's pandas datasource: GX's SQL datasource does not work on DuckDB. Only the columns a
suite uses are read, and a table larger than the memory budget is validated in parts, each on
the columns its expectations read. The suites are code in ``gx/suites.py``.

Each expectation ends as ``passed``, ``failed`` (the data broke it) or ``error`` (GX itself
raised): an engine error is never reported as passing, nor as a data failure. The report is
written to ``$RETENTION_DATA_DIR/validation/latest.json`` and Data Docs to
``$RETENTION_DATA_DIR/validation/data_docs/``; ``retention publish`` reads the report.
"""

from __future__ import annotations

import dataclasses
import gc
import importlib.util
import json
import logging
import os
import re
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from datetime import time as dtime
from pathlib import Path
from types import ModuleType
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from retention.config import Paths, project_dir, write_whole
from retention.dbt import PYSPARK_PANDAS_WARNING
from retention.errors import UserError
from retention.load import connect

# pyspark (installed for the Spark target) warns when Great Expectations imports it; the dbt
# processes get the same filter (retention.dbt.dbt_env)
warnings.filterwarnings("ignore", message=PYSPARK_PANDAS_WARNING, category=FutureWarning)

log = logging.getLogger(__name__)

PASSED, FAILED, ERROR = "passed", "failed", "error"

_ARROW_TEXT = {pa.string(): pd.StringDtype("pyarrow"), pa.large_string(): pd.StringDtype("pyarrow")}


@dataclass
class Outcome:
    """One expectation on one table."""

    table: str
    expectation: str
    column: str
    status: str
    observed: str = ""
    detail: str = ""


@dataclass
class ValidationReport:
    build_id: str | None
    as_of_date: str | None
    validated_at: str
    seconds: float = 0.0
    outcomes: list[Outcome] = field(default_factory=list)
    row_counts: dict[str, int] = field(default_factory=dict)
    data_docs: str = ""

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == FAILED]

    @property
    def errors(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == ERROR]

    @property
    def success(self) -> bool:
        return bool(self.outcomes) and not self.failures and not self.errors

    def to_json(self) -> str:
        data = asdict(self)
        data["success"] = self.success
        return json.dumps(data, indent=2, default=str)

    @classmethod
    def from_json(cls, text: str) -> ValidationReport:
        data = json.loads(text)
        data.pop("success", None)
        data["outcomes"] = [Outcome(**o) for o in data["outcomes"]]
        return cls(**data)


class ValidationFailed(UserError):
    """Validation found failing expectations or engine errors; the report says which."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        parts = []
        if report.failures:
            parts.append(f"{len(report.failures)} expectation(s) failed")
        if report.errors:
            parts.append(f"{len(report.errors)} expectation(s) could not be evaluated (GX error)")
        where = f"see {report.data_docs}"
        if report.errors:  # Data Docs show expectations' results only, not what stopped them
            where = f"errors in {Path(report.data_docs).parent.parent / 'latest.json'}; {where}"
        super().__init__("validation did not pass: " + " and ".join(parts) + f"; {where}")


def _load_suites_module() -> ModuleType:
    path = project_dir() / "gx" / "suites.py"
    spec = importlib.util.spec_from_file_location("retention_gx_suites", path)
    if spec is None or spec.loader is None:
        raise UserError(f"cannot load the expectation suites from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise _suites_error(path, exc) from exc
    return module


def _suites_error(path: Path, exc: Exception) -> UserError:
    """The suites file's own mistake (it is the user's to edit) as a message: where, what."""
    if isinstance(exc, SyntaxError):
        line = exc.lineno
    else:
        frames = traceback.extract_tb(exc.__traceback__)
        lines = [frame.lineno for frame in frames if frame.filename == str(path)]
        line = lines[-1] if lines else None
    where = f"{path}, line {line}" if line else str(path)
    return UserError(
        f"the expectation suites could not be made: {type(exc).__name__}: {exc} ({where})\n"
        "  what to do: correct that line of the suites file (gx/suites.py), then validate again"
    )


def latest_build(con: duckdb.DuckDBPyConnection) -> tuple[str, str] | None:
    """(invocation_id, state) of the latest dbt build: state is success, failed or started
    (a build that never finished)."""
    try:
        rows = con.execute(
            """
            select invocation_id,
                   coalesce(max(case when event != 'started' then event end), 'started')
            from raw._dbt_builds
            group by invocation_id
            order by min(happened_at) desc
            limit 1
            """
        ).fetchall()
    except duckdb.CatalogException:
        return None
    return (rows[0][0], rows[0][1]) if rows else None


def latest_node_failures(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """(unique_id, status) of the nodes whose latest recorded status in raw._dbt_node_results
    (macros/build_log.sql) is not a pass: an error, a failed test, or skipped after a failure
    upstream. Empty for a warehouse built before that log existed."""
    try:
        return con.execute(
            """
            select unique_id, status
            from raw._dbt_node_results
            qualify row_number() over (partition by unique_id order by happened_at desc) = 1
                and status not in ('success', 'pass', 'warn')
            order by unique_id
            """
        ).fetchall()
    except duckdb.CatalogException:
        return []


def read_report(paths: Paths) -> ValidationReport | None:
    path = paths.validation / "latest.json"
    if not path.exists():
        return None
    try:
        return ValidationReport.from_json(path.read_text())
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(
            f"{path} is not a validation report that can be read ({exc})\n"
            "  what to do: run `retention validate` again (it writes a new one)"
        ) from exc


def _expectation_columns(expectation: Any) -> list[str]:
    """The columns an expectation names in its arguments."""
    config = expectation.configuration.kwargs
    names = [config[k] for k in ("column", "column_A", "column_B") if config.get(k)]
    names.extend(config.get("column_list") or [])
    return names


def _columns(suite: Any) -> list[str]:
    names = [c for expectation in suite.expectations for c in _expectation_columns(expectation)]
    return list(dict.fromkeys([*names, *suite.extra_columns]))


def _frame(con: duckdb.DuckDBPyConnection, table: str, columns: list[str]):
    """The table's columns as pandas via Arrow; decimals as doubles, dates as timestamps."""
    described = {
        name: dtype.upper() for name, dtype, *_ in con.execute(f"describe {table}").fetchall()
    }
    missing = [c for c in columns if c not in described]
    if missing:
        raise KeyError(f"{table} has no column(s) {', '.join(missing)}")
    select = []
    for name in columns or list(described)[:1]:
        dtype = described[name]
        if dtype.startswith("DECIMAL") or dtype == "HUGEINT":
            select.append(f'cast("{name}" as double) as "{name}"')
        elif dtype == "DATE":
            select.append(f'cast("{name}" as timestamp) as "{name}"')
        else:
            select.append(f'"{name}"')
    arrow = con.sql(f"select {', '.join(select)} from {table}").to_arrow_table()
    # free each Arrow column as it is converted: the peak is one copy of the table, not two.
    # Text stays in Arrow buffers (pandas' pyarrow string dtype), not a Python object per value.
    return arrow.to_pandas(split_blocks=True, self_destruct=True, types_mapper=_ARROW_TEXT.get)


def _engine_error(exception_info: Any) -> str | None:
    """The message of a GX engine exception inside a result, whatever the nesting."""
    if not isinstance(exception_info, dict):
        return None
    if exception_info.get("raised_exception"):
        return str(exception_info.get("exception_message") or "GX raised an exception")
    for value in exception_info.values():
        if isinstance(value, dict):
            message = _engine_error(value)
            if message:
                return message
    return None


def _observed(result: dict[str, Any]) -> str:
    if "observed_value" in result and result["observed_value"] is not None:
        return str(result["observed_value"])
    if result.get("unexpected_count"):
        sample = result.get("partial_unexpected_list") or []
        return f"{result['unexpected_count']} unexpected, e.g. {sample[:3]}"
    return ""


def _as_of(con: duckdb.DuckDBPyConnection) -> date | None:
    """The as_of_date the marts were built for (None before the marts exist)."""
    try:
        return con.execute("select max(as_of_date) from marts.customers").fetchone()[0]
    except duckdb.CatalogException:
        return None


def _context(docs_dir: Path):
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.execution_engine import pandas_execution_engine

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    # GX fingerprints every DataFrame batch smaller than this many bytes (by the shallow
    # memory_usage) with a hash of all its rows: a batch marker only, 7 s on a 6.5 M-row frame
    pandas_execution_engine.HASH_THRESHOLD = 0
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.add_data_docs_site(
        site_name="retention",
        site_config={
            "class_name": "SiteBuilder",
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(docs_dir),
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    return context


#: What GX needs per value of a validated column while it validates a table: the frame and its
#: temporary masks, codes and hash tables (measured at 1 M customers: 37 to 52 bytes).
BYTES_PER_VALUE = 48
#: Tables are validated on two threads as long as the frames in flight fit in this many bytes
#: (env ``RETENTION_VALIDATION_MEMORY``, e.g. ``2.5GB``); a table larger than this is validated
#: in parts, each on a frame of only the columns its expectations read (``_parts``).
DEFAULT_VALIDATION_MEMORY = "2.5GB"


_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def _bytes(text: str) -> int:
    """``2.5GB``, ``800MiB`` or a number of bytes, as bytes; ValueError otherwise."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMG]I?B|B)?\s*", text.upper())
    if not match:
        raise ValueError(text)
    return int(float(match[1]) * _UNITS[match[2] or "B"])


def validation_memory() -> int:
    """The memory budget of the validation threads, in bytes."""
    text = os.environ.get("RETENTION_VALIDATION_MEMORY", DEFAULT_VALIDATION_MEMORY)
    try:
        return _bytes(text)
    except ValueError:
        raise UserError(
            f"RETENTION_VALIDATION_MEMORY={text!r} is not a size; write it like 2.5GB or 800MB"
        ) from None


def _row_count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    """0 when the table cannot be read: that is reported when it is read."""
    try:
        return con.execute(f"select count(*) from {table}").fetchone()[0]
    except duckdb.Error:
        return 0


def _frame_bytes(rows: int, columns: list[str]) -> int:
    return rows * max(len(columns), 1) * BYTES_PER_VALUE


@dataclass
class _Part:
    """A suite, or the part of one that reads ``columns`` (``name`` says which), as the
    validation threads take it."""

    spec: Any
    name: str
    position: int = 0  # of the part within its table, for the report's order
    size: int = 0  # estimated bytes of its frame


def _parts(con: duckdb.DuckDBPyConnection, spec: Any, budget: int) -> list[_Part]:
    """The suite whole when its frame fits the budget; otherwise one part per set of columns
    that expectations read together (table-level ones, such as the row count, join the first),
    so that no frame holds more than a few of a large table's columns. Each expectation reads
    only its own columns (and its row condition's), so on its part's frame it gives the
    outcome it would on the whole table."""
    rows = _row_count(con, spec.table)
    whole = _Part(spec, spec.table, size=_frame_bytes(rows, _columns(spec)))
    if whole.size <= budget:
        return [whole]
    groups: dict[tuple[str, ...], list] = {}
    for expectation in spec.expectations:
        columns = _expectation_columns(expectation)
        if expectation.configuration.kwargs.get("row_condition"):
            columns.extend(spec.extra_columns)  # the columns its condition reads
        groups.setdefault(tuple(dict.fromkeys(columns)), []).append(expectation)
    table_level = groups.pop((), [])
    if not groups:
        return [whole]
    parts = []
    for position, (columns, expectations) in enumerate(groups.items()):
        if position == 0:
            expectations = expectations + table_level
        part_spec = dataclasses.replace(
            spec, expectations=expectations, extra_columns=list(columns)
        )
        size = _frame_bytes(rows, list(columns))
        parts.append(_Part(part_spec, f"{spec.table} ({', '.join(columns)})", position, size))
    return parts


class _Scheduler:
    """Hands tables (or parts of them) to the validation threads, largest first, while the
    estimated memory of those in flight stays within the budget (one over the budget, a part
    reading one very large column, runs alone)."""

    def __init__(self, items: list[tuple[Any, int]], budget: int) -> None:
        self._waiting = sorted(items, key=lambda item: -item[1])
        self._budget = budget
        self._in_flight = 0
        self._running = 0
        self._changed = threading.Condition()

    def take(self) -> tuple[Any, int] | None:
        with self._changed:
            while self._waiting:
                for i, (suite, size) in enumerate(self._waiting):
                    if self._running == 0 or self._in_flight + size <= self._budget:
                        del self._waiting[i]
                        self._in_flight += size
                        self._running += 1
                        return suite, size
                self._changed.wait()
            return None

    def done(self, size: int) -> None:
        with self._changed:
            self._in_flight -= size
            self._running -= 1
            self._changed.notify_all()


def _outcome(table: str, item: Any) -> Outcome:
    """One GX expectation result as an Outcome (an engine exception is an error, not a fail)."""
    kwargs = item.expectation_config.kwargs
    column = kwargs.get("column") or ",".join(kwargs.get("column_list") or [])
    condition = kwargs.get("row_condition")
    if isinstance(condition, dict):
        condition = condition.get("pass_through_filter") or str(condition)
    if condition:
        column += f" where {condition}"
    error = _engine_error(item.exception_info)
    status = ERROR if error else (PASSED if item.success else FAILED)
    observed = _observed(item.result or {})
    if status == FAILED:
        # what the suite says of the expectation (gx/suites.py: meta "why", "what_to_do")
        observed += _expected(kwargs, item.expectation_config.meta or {})
    return Outcome(
        table,
        item.expectation_config.type,
        column,
        status,
        observed,
        (error or "").splitlines()[0] if error else "",
    )


def _expected(kwargs: dict[str, Any], meta: dict[str, Any]) -> str:
    """The bounds a failed expectation asked for and the suite's reason, with what to do."""
    bounds = [
        f"{word} {kwargs[key]}"
        for key, word in (("min_value", "at least"), ("max_value", "at most"))
        if kwargs.get(key) is not None
    ]
    said = [" and ".join(bounds) + " expected"] if bounds else []
    said += [str(meta[key]) for key in ("why",) if meta.get(key)]
    text = f" ({'; '.join(said)})" if said else ""
    if meta.get("what_to_do"):
        text += f"; what to do: {meta['what_to_do']}"
    return text


def _cap_memory(con: duckdb.DuckDBPyConnection) -> None:
    """The tables are streamed into Arrow: DuckDB's buffer pool need not cache them all. 512MB,
    unless RETENTION_DUCKDB_MEMORY_LIMIT (which ``connect`` set) is lower: a limit lowered for a
    small machine is not raised."""
    (shown,) = con.execute(
        "select value from duckdb_settings() where name = 'memory_limit'"
    ).fetchone()
    units = {"bytes": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}
    number, _, unit = shown.partition(" ")  # as DuckDB shows it: "122.0 MiB", "2.7 GiB"
    try:
        configured = float(number) * units[unit]
    except (ValueError, KeyError):
        configured = float("inf")
    if configured > 512 * 2**20:
        con.execute("set memory_limit = '512MB'")


def import_great_expectations() -> ModuleType:
    """``import great_expectations``, also in a process multiprocessing spawned from a
    ``python -m ...`` (Dagster's run worker starts every step so). With pyspark installed GX
    imports its Connect module, which takes a ``__main__`` with neither a spec nor a file (what
    such a process has) for a doctest run and, without Spark Connect's packages, ends the
    process with SystemExit(0). For the import only, that ``__main__`` gets a file name."""
    main = sys.modules.get("__main__")
    bare = main is not None and main.__spec__ is None and not hasattr(main, "__file__")
    if bare:
        main.__file__ = "<spawned by multiprocessing>"
    try:
        import great_expectations
        import great_expectations.expectations
    finally:
        if bare:
            del main.__file__
    return great_expectations


def preload() -> threading.Thread:
    """Import Great Expectations in a background thread (about 3 s of one core), so that a
    later ``validate`` finds it loaded: ``retention run`` starts it while dbt parses."""

    def load() -> None:
        try:
            import_great_expectations()
        except BaseException:
            # short of memory, say: validate imports it again, and says what fails in its place
            # rather than as a thread's traceback amid dbt's output
            log.debug("preloading Great Expectations failed", exc_info=True)

    thread = threading.Thread(target=load, name="preload-great-expectations", daemon=True)
    thread.start()
    return thread


def validate(
    paths: Paths,
    progress: Callable[[str], None] | None = None,
    tables: Iterable[str] | None = None,
    previous_row_counts: dict[str, int] | None = None,
    write_report: bool = True,
    accept_shrink: bool = False,
) -> ValidationReport:
    """Run the suites against the build warehouse and write Data Docs.

    Args:
        paths: the data directory.
        progress: callback for one line per table.
        tables: validate only these tables ("marts.customers", ...); default all.
        previous_row_counts: row counts to compare with; default the published copy's.
        write_report: write ``validation/latest.json``, the report ``retention publish`` reads.
            A partial validation (``tables``) should not replace it.
        accept_shrink: do not compare the row counts with the published copy's (a change
            that removes rows on purpose: `--accept-shrink`).
    """
    gx = import_great_expectations()
    from great_expectations.core.run_identifier import RunIdentifier

    say = progress or log.info
    started = time.perf_counter()
    suites_module = _load_suites_module()
    docs_dir = paths.validation / "data_docs"
    con = connect(paths, read_only=True)
    _cap_memory(con)
    con.execute("set enable_progress_bar = false")
    # the frames are freed table by table; Arrow's default pool (mimalloc) would keep their
    # pages and the process would grow by every large table
    previous_pool = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        build = latest_build(con)
        if build is None and tables is None:
            # the raw and staging suites alone (Dagster's checks after the load) need no build
            raise UserError(
                "nothing to validate: no dbt build has been recorded; run `retention build` "
                "first (or `retention run`)"
            )
        as_of = _as_of(con)
        if accept_shrink:
            say("  --accept-shrink: the row counts are not compared with the published copy's")
            previous_row_counts = {}
        elif previous_row_counts is None:
            from retention.publish import published_row_counts

            previous_row_counts = published_row_counts(paths)
        params = suites_module.SuiteParameters(
            # without marts (raw and staging only) freshness is not checked against anything
            as_of_date=datetime.combine(as_of or date.today(), dtime()),
            project_dir=project_dir(),
            previous_row_counts=previous_row_counts,
        )
        try:
            suites = suites_module.build_suites(params)
        except Exception as exc:
            raise _suites_error(project_dir() / "gx" / "suites.py", exc) from exc
        if tables is not None:
            wanted = set(tables)
            suites = [s for s in suites if s.table in wanted]
        report = ValidationReport(
            build_id=build[0] if build else None,
            as_of_date=str(as_of) if as_of else None,
            validated_at=datetime.now(UTC).isoformat(timespec="seconds"),
            data_docs=str(docs_dir / "index.html"),
        )
        context = _context(docs_dir)
        # Data Docs list and file results by run: one for all tables, named for what they were
        # validated on (GX names a run without a name "__none__")
        build_name = (report.build_id or "none")[:8]
        run_id = RunIdentifier(
            run_name=f"as_of_{report.as_of_date or 'unknown'}_build_{build_name}",
            run_time=report.validated_at,
        )
        # the objects that exist now (GX's modules and context) live until the end: leave them
        # out of the collections below, which then take milliseconds instead of 0.2 s each
        gc.freeze()
        budget = validation_memory()
        parts = [part for spec in suites for part in _parts(con, spec, budget)]
        scheduler = _Scheduler([(part, part.size) for part in parts], budget)
        registry = threading.Lock()  # GX's context: its stores and data sources
        positioned: list[tuple[int, Outcome]] = []  # (part position, outcome), as they finish

        def validate_table(part: _Part, cursor: duckdb.DuckDBPyConnection) -> None:
            suite_spec, name = part.spec, part.name
            table = suite_spec.table
            columns = _columns(suite_spec)
            try:
                frame = _frame(cursor, table, columns)
            except (duckdb.CatalogException, KeyError) as exc:
                with registry:
                    positioned.append(
                        (part.position, Outcome(table, "table_readable", "", ERROR, "", str(exc)))
                    )
                say(f"  ERROR  {name}: {exc}")
                return
            with registry:
                # a data source per table (or part): its execution engine caches the batch
                source = context.data_sources.add_pandas(name)
                asset = source.add_dataframe_asset(name=name)
                batch = asset.add_batch_definition_whole_dataframe(f"{name} whole")
                suite = context.suites.add(gx.ExpectationSuite(name=name))
                for expectation in suite_spec.expectations:
                    suite.add_expectation(expectation)
                definition = context.validation_definitions.add(
                    gx.ValidationDefinition(name=name, data=batch, suite=suite)
                )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # BASIC: the unexpected count and up to 20 unexpected values. GX's default
                # (SUMMARY) also lists the unexpected rows' indexes, and to find them filters every
                # column of the frame once per expectation, though nothing is unexpected: a third
                # of the validation time
                result = definition.run(
                    batch_parameters={"dataframe": frame}, result_format="BASIC", run_id=run_id
                )
            outcomes = [(part.position, _outcome(table, item)) for item in result.results]
            rows = len(frame)
            # every reference to the frame: GX caches it in the data source's execution engine
            del frame, result, definition, source, asset, batch, suite
            with registry:
                report.row_counts[table] = rows
                positioned.extend(outcomes)
                context.validation_definitions.delete(name)
                context.data_sources.delete(name)  # with its cached batch
            # GX's objects hold the frame in reference cycles: without a collection here the
            # frames of earlier tables stayed alive with the next ones (1.3 GiB more at the peak)
            gc.collect()
            failures = sum(1 for _, o in outcomes if o.status != PASSED)
            mark = "ok    " if failures == 0 else "FAILED"
            say(f"  {mark} {name}: {len(outcomes)} expectations, {rows:,} rows")

        stop = threading.Event()  # set when a thread fails: the other takes no new table

        def worker() -> None:
            cursor = con.cursor()  # a DuckDB connection is used by one thread at a time
            try:
                while not stop.is_set() and (item := scheduler.take()) is not None:
                    try:
                        validate_table(item[0], cursor)
                    finally:
                        scheduler.done(item[1])
            except BaseException:
                stop.set()
                raise
            finally:
                cursor.close()

        # GX's work is pandas and Arrow kernels, which release the GIL: two threads use both cores
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="validate") as pool:
            helper = pool.submit(worker)
            try:
                worker()
            finally:
                helper.exception()  # wait for the helper to finish its table
            helper.result()
        order = {spec.table: i for i, spec in enumerate(suites)}
        # the suites' order, and within a table its parts' (a part's own outcomes keep GX's)
        positioned.sort(key=lambda po: (order.get(po[1].table, len(order)), po[0]))
        report.outcomes.extend(o for _, o in positioned)
        if build is not None and build[1] != "success" and tables is None:
            # the expectations may all pass on marts a stopped or failed build left half-done
            how = "never finished" if build[1] == "started" else "failed"
            report.outcomes.append(
                Outcome(
                    "dbt build",
                    "latest_build_succeeded",
                    "",
                    ERROR,
                    build[1],
                    f"the latest dbt build ({build[0][:8]}) {how}: the marts may be half "
                    "built; run `retention build`, then validate",
                )
            )
        report.row_counts = dict(sorted(report.row_counts.items(), key=lambda kv: order[kv[0]]))
        context.build_data_docs()
    finally:
        con.close()
        pa.set_memory_pool(previous_pool)
        gc.unfreeze()
    report.seconds = round(time.perf_counter() - started, 2)
    if write_report:
        paths.validation.mkdir(parents=True, exist_ok=True)
        # a report cut short (a full disk) must not be what publish reads
        write_whole(paths.validation / "latest.json", report.to_json())
    return report


def summary_lines(report: ValidationReport) -> list[str]:
    """A readable table of what did not pass: suite (table), expectation, column, observed."""
    bad = [o for o in report.outcomes if o.status != PASSED]
    passed = len(report.outcomes) - len(bad)
    lines = [
        f"validation: {passed} of {len(report.outcomes)} expectations passed on "
        f"{len(report.row_counts)} tables in {report.seconds:.1f}s (as of {report.as_of_date})"
    ]
    if bad:
        lines.append(f"  {'status':<7} {'table':<34} {'expectation':<44} {'column':<28} observed")
        for o in bad:
            observed = o.detail if o.status == ERROR else o.observed
            lines.append(
                f"  {o.status:<7} {o.table:<34} {o.expectation:<44} {o.column:<28} {observed}"
            )
    lines.append(f"  Data Docs: {report.data_docs}")
    return lines
