"""Scale-out targets: the same warehouse on PostgreSQL or Apache Spark.

DuckDB stays the one landing parser. ``retention load`` always reads new landing files into the
DuckDB ``raw.*`` tables (the raw contract: text columns, lineage, malformed rows kept, a file
loaded whole or not at all, idempotency by content hash). With ``--target postgres|spark``,
``ship_raw`` then copies every landing file the target does not have yet:

- PostgreSQL: the file's rows are streamed with ``COPY ... FROM STDIN`` (CSV batches written
  from Arrow) in one transaction with its ``raw._landing_files`` row, so a file is on the
  server whole or not at all, and shipping twice never duplicates it.
- Spark: one Parquet file per landing file, named by its content hash, under the raw location
  (``$RETENTION_DATA_DIR/spark/raw``, or ``RETENTION_SPARK_RAW_LOCATION`` for storage a cluster
  can read). It is written under a hidden name and renamed, so shipping again overwrites and
  never duplicates. The folders are registered as external Parquet tables ``raw.*``.

Predictive CLV on targets without dbt Python models: ``run_clv`` reads the BTYD summaries from
the target, calls the same code as the DuckDB Python models (``retention.clv_marts``) and
writes ``marts.clv_model_parameters``, ``marts.customer_lifetime_value`` and
``marts.clv_backtest`` back. dbt declares them as the source ``clv`` on those targets and
builds their dependents (``customers``, ``winback_candidates``) afterwards.

Connection settings are read from ``profiles.yml`` (rendered by dbt, with the same environment as
the dbt process), so the credentials live in one place.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import yaml

from retention import clv_marts
from retention.config import Paths, project_dir
from retention.dbt import check_local_spark_paths, dbt_env
from retention.errors import UserError
from retention.load import COLUMNS, connect

log = logging.getLogger(__name__)

Say = Callable[[str], None]

#: Targets whose tables the pipeline loads and whose CLV marts it writes itself.
EXTERNAL_TARGETS = ("postgres", "spark")

#: The dbt source (models/marts/clv/from_pipeline/) under which those marts are declared.
CLV_SOURCE = "clv"

#: The models the CLV fits read (``run_clv``).
CLV_INPUTS = ("int_customer_btyd_summary", "int_clv_backtest_summary")

RAW_COLUMNS = ("_extra", "_source_file", "_source_row", "_loaded_at", "_load_issue")
LEDGER_COLUMNS = ("entity", "source_file", "sha256", "size_bytes", "row_count", "loaded_at")
BATCH_ROWS = 100_000


@dataclass
class ShipSummary:
    target: str
    files: int = 0
    rows: int = 0
    skipped: int = 0


# ---------------------------------------------------------------------------------- profile
def profile_credentials(paths: Paths, target: str) -> Any:
    """The credentials of ``target`` in profiles.yml, rendered exactly as the dbt process would
    render them (same environment variables, same data directory)."""
    from argparse import Namespace

    from dbt.config.runtime import load_profile
    from dbt.flags import set_from_args
    from dbt_common.context import set_invocation_context

    env = dbt_env(paths, target)
    set_invocation_context(env)
    set_from_args(Namespace(PROFILES_DIR=env["DBT_PROFILES_DIR"]), None)
    try:
        profile = load_profile(str(project_dir()), {}, target_override=target)
    except Exception as exc:  # dbt's own errors explain the problem
        raise UserError(f"cannot read the dbt profile for target {target}: {exc}") from exc
    return profile.credentials


def clv_settings(dbt_vars: dict[str, Any] | None = None) -> dict[str, float]:
    """The CLV vars as dbt sees them: dbt_project.yml defaults overridden by ``--vars``."""
    project = yaml.safe_load((project_dir() / "dbt_project.yml").read_text())
    values = {**project.get("vars", {}), **(dbt_vars or {})}
    try:
        return {
            "clv_min_repeat_customers": clv_marts.whole_var(
                "clv_min_repeat_customers", values["clv_min_repeat_customers"], 1
            ),
            "clv_horizon_days": clv_marts.whole_var(
                "clv_horizon_days", values["clv_horizon_days"], 1
            ),
            "clv_annual_discount_rate": clv_marts.rate_var(
                "clv_annual_discount_rate", values["clv_annual_discount_rate"]
            ),
        }
    except ValueError as exc:
        raise UserError(f"{exc} (dbt_project.yml, vars)") from exc


def _ledger_keys(ledger: list[tuple]) -> list[tuple[str, str, int]]:
    """What identifies each entry of a ``raw._landing_files`` ledger (``LEDGER_COLUMNS``, in
    load order) across warehouses: its entity, its content's SHA-256 and how many times that
    content had landed with it (a file changed back to content loaded before lands it again).

    Not the file's name or load time: a DuckDB warehouse rebuilt from the landing files (or
    restored from a backup) loads them again at other times, and a file renamed since under
    another name; the target must not get their rows a second time.
    """
    landings: dict[tuple[str, str], int] = {}
    keys = []
    for entity, _, sha256, *_ in ledger:
        landings[(entity, sha256)] = landings.get((entity, sha256), 0) + 1
        keys.append((entity, sha256, landings[(entity, sha256)]))
    return keys


def _duckdb_ledger(paths: Paths) -> list[tuple]:
    with connect(paths, read_only=True) as con:
        exists = con.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = 'raw' and table_name = '_landing_files'"
        ).fetchone()[0]
        if not exists:
            return []
        return con.execute(
            f"select {', '.join(LEDGER_COLUMNS)} from raw._landing_files "
            "order by loaded_at, entity, source_file"
        ).fetchall()


def _raw_rows_sql(entity: str, for_csv: bool) -> str:
    """The rows of one landed file from DuckDB's raw table, in landing order."""
    # PostgreSQL text cannot hold NUL characters: they become U+FFFD, as undecodable bytes do
    text = [
        f"replace({c}, chr(0), '\ufffd') as {c}" if for_csv else c
        for c in (*COLUMNS[entity], "_extra", "_source_file")
    ]
    loaded_at = "cast(_loaded_at as varchar)" if for_csv else "_loaded_at"
    return (
        f"select {', '.join(text)}, _source_row, {loaded_at} as _loaded_at, _load_issue "
        f"from raw.{entity} where _source_file = ? and _loaded_at = ? order by _source_row"
    )


# --------------------------------------------------------------------------------- postgres
def postgres_connect(paths: Paths):
    """A psycopg2 connection to the ``postgres`` target of profiles.yml, in UTF-8 and UTC
    whatever PGCLIENTENCODING, PGTZ or the server's defaults say (as dbt's: ``dbt_env``)."""
    import psycopg2

    creds = profile_credentials(paths, "postgres")
    try:
        pg = psycopg2.connect(
            host=creds.host,
            port=creds.port,
            user=creds.user,
            password=creds.password or None,
            dbname=creds.database,
            connect_timeout=creds.connect_timeout,
            sslmode=creds.sslmode,
            application_name="retention",
            client_encoding="UTF8",
        )
    except psycopg2.OperationalError as exc:
        raise UserError(
            f"cannot connect to PostgreSQL at {creds.host}:{creds.port} as {creds.user}, "
            f"database {creds.database}: {str(exc).strip()}\n"
            "  what to do: start the server or set PGHOST, PGPORT, PGUSER, PGPASSWORD and "
            "PGDATABASE"
        ) from exc
    with pg.cursor() as cur:
        # after the connection's start-up, which PGTZ's zone comes with; not as libpq options,
        # which would replace PGOPTIONS (a statement timeout, a pooler's endpoint)
        cur.execute("set time zone 'UTC'")
        cur.execute("show server_encoding")
        (encoding,) = cur.fetchone()
    pg.commit()  # (a rollback would undo the set)
    if encoding.upper() != "UTF8":
        pg.close()
        # LATIN1 and the like cannot hold every landing text, and converting would alter it
        raise UserError(
            f"PostgreSQL database {creds.database} is in {encoding}, which cannot hold every "
            "text of the landing files\n  what to do: use a UTF8 database (createdb "
            f"--encoding UTF8 --template template0 {creds.database})"
        )
    return pg


@contextlib.contextmanager
def _postgres(paths: Paths, doing: str) -> Iterator[Any]:
    """A connection (``postgres_connect``) whose server errors end as a ``UserError`` that says
    what was being done, what the server said and what to do."""
    import psycopg2

    pg = postgres_connect(paths)
    try:
        yield pg
    except psycopg2.Error as exc:
        raise _postgres_refused(pg, doing, exc) from exc
    finally:
        pg.close()


def _postgres_refused(pg: Any, doing: str, exc: Exception) -> UserError:
    database = pg.info.dbname
    said = " ".join(str(getattr(exc, "pgerror", None) or exc).split())
    advice = {
        "42501": (  # insufficient_privilege
            f"grant the role what it needs (`grant create on database {database} to "
            f"{pg.info.user}`; or create the schemas raw, staging, quarantine, marts and reference "
            "owned by it), then run the command again"
        ),
        "2BP01": (  # dependent_objects_still_exist
            "a view or other object of yours depends on a table the pipeline replaces: drop it "
            "(PostgreSQL names it above) or point it at another table, then run the command again"
        ),
    }.get(
        getattr(exc, "pgcode", None) or "", "fix what the server says, then run the command again"
    )
    return UserError(
        f"PostgreSQL refused {doing} (database {database}): {said}\n  what to do: {advice}"
    )


#: pg_advisory_lock's key for the commands that write into a PostgreSQL database (ship, build)
_WRITE_LOCK = 0x7265_7465_6E74  # "retent"


@contextlib.contextmanager
def postgres_lock(paths: Paths) -> Iterator[None]:
    """Hold the database's write lock (a session advisory lock) while loading or building: the
    data directory's lock does not cover another data directory or machine on the same
    database, and two at once ship the same files twice or replace each other's tables."""
    import psycopg2

    pg = postgres_connect(paths)
    try:
        try:
            with pg.cursor() as cur:
                cur.execute("select pg_try_advisory_lock(%s)", [_WRITE_LOCK])
                (taken,) = cur.fetchone()
            pg.commit()
        except psycopg2.Error as exc:
            raise _postgres_refused(pg, "taking the pipeline's write lock", exc) from exc
        if not taken:
            raise UserError(
                "another retention command is loading or building into PostgreSQL database "
                f"{pg.info.dbname} (from another data directory or machine)\n  what to do: run "
                "this one when it has finished"
            )
        yield  # the lock ends with the session
    finally:
        pg.close()


def _create_schema(cur: Any, schema: str) -> None:
    """``create schema if not exists``, which PostgreSQL refuses without CREATE on the database
    even when the schema is there (a schema a DBA made for the role)."""
    cur.execute("select 1 from pg_namespace where nspname = %s", [schema])
    if cur.fetchone() is None:
        cur.execute(f"create schema {schema}")


class _CsvStream(io.RawIOBase):
    """A readable file of CSV text made from Arrow record batches, for ``COPY FROM STDIN``."""

    def __init__(self, batches: Iterator[pa.RecordBatch]) -> None:
        self._batches = batches
        self._buffer = b""
        self.rows = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            batch = next(self._batches, None)
            if batch is None:
                break
            sink = io.BytesIO()
            pacsv.write_csv(batch, sink, pacsv.WriteOptions(include_header=False))
            self._buffer += sink.getvalue()
            self.rows += batch.num_rows
        if size < 0:
            size = len(self._buffer)
        chunk, self._buffer = self._buffer[:size], self._buffer[size:]
        return chunk


def _postgres_raw_ddl() -> list[str]:
    statements = [
        "create table if not exists raw._landing_files (entity text not null, "
        "source_file text not null, sha256 text not null, size_bytes bigint not null, "
        "row_count bigint not null, loaded_at timestamp not null)",
    ]
    for entity, columns in COLUMNS.items():
        cols = ", ".join(f"{c} text" for c in columns)
        statements.append(
            f"create table if not exists raw.{entity} ({cols}, _extra text, "
            "_source_file text not null, _source_row bigint not null, "
            "_loaded_at timestamp not null, _load_issue text)"
        )
    return statements


def _ship_postgres(paths: Paths, say: Say) -> ShipSummary:
    summary = ShipSummary("postgres")
    ledger = _duckdb_ledger(paths)
    with postgres_lock(paths), _postgres(paths, "shipping the landing files' rows") as pg:
        with pg, pg.cursor() as cur:
            _create_schema(cur, "raw")
            for statement in _postgres_raw_ddl():
                cur.execute(statement)
            cur.execute(
                f"select {', '.join(LEDGER_COLUMNS)} from raw._landing_files "
                "order by loaded_at, entity, source_file"
            )
            shipped = set(_ledger_keys(cur.fetchall()))
        with connect(paths, read_only=True) as duck:
            for entry, key in zip(ledger, _ledger_keys(ledger), strict=True):
                entity, source_file, _, _, row_count, loaded_at = entry
                if key in shipped:
                    summary.skipped += 1
                    continue
                # a relation streams in batches; an execute() result would copy every row first
                reader = duck.sql(
                    _raw_rows_sql(entity, for_csv=True), params=[source_file, loaded_at]
                ).to_arrow_reader(BATCH_ROWS)
                stream = _CsvStream(iter(reader))
                columns = ", ".join((*COLUMNS[entity], *RAW_COLUMNS))
                with pg, pg.cursor() as cur:  # one transaction per landing file
                    cur.copy_expert(
                        f"copy raw.{entity} ({columns}) from stdin with (format csv)", stream
                    )
                    if stream.rows != row_count:  # rolls the file back
                        raise UserError(
                            f"{source_file}: the DuckDB warehouse holds {stream.rows} rows of it, "
                            f"its raw._landing_files entry says {row_count}; nothing was shipped"
                        )
                    cur.execute(
                        f"insert into raw._landing_files ({', '.join(LEDGER_COLUMNS)}) "
                        "values (%s, %s, %s, %s, %s, %s)",
                        entry,
                    )
                shipped.add(key)
                summary.files += 1
                summary.rows += stream.rows
    return summary


def _postgres_read(paths: Paths, relation: str) -> pd.DataFrame:
    sink = io.BytesIO()
    with _postgres(paths, f"reading {relation}") as pg, pg, pg.cursor() as cur:
        cur.copy_expert(
            f"copy (select * from {relation}) to stdout with (format csv, header true)", sink
        )
        cur.execute(f"select * from {relation} limit 0")
        names = [d.name for d in cur.description]
    sink.seek(0)
    # keys stay text whatever they look like, and may hold line breaks (quoted): without
    # newlines_in_values a block boundary inside one splits the row
    types = {n: pa.string() for n in names if n.endswith("_id")}
    return pacsv.read_csv(
        sink,
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(column_types=types),
    ).to_pandas()


_PG_TYPES = {
    pa.string(): "text",
    pa.int64(): "bigint",
    pa.float64(): "double precision",
    pa.date32(): "date",
}


def _postgres_replace(paths: Paths, schema: str, tables: dict[str, pa.Table]) -> None:
    """Replace the tables' rows in one transaction: readers see all old or all new tables. A
    table whose columns are unchanged is emptied and filled, so the views and grants BI tools
    have on it stay; one whose columns changed is created again."""
    doing = f"writing {', '.join(tables)} into {schema}"
    with _postgres(paths, doing) as pg, pg, pg.cursor() as cur:
        _create_schema(cur, schema)
        for name, table in tables.items():
            columns = [(f.name, _PG_TYPES[f.type]) for f in table.schema]
            cur.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = %s and table_name = %s order by ordinal_position",
                [schema, name],
            )
            if cur.fetchall() == columns:
                cur.execute(f"truncate table {schema}.{name}")
            else:
                cur.execute(f"drop table if exists {schema}.{name}")
                described = ", ".join(f"{column} {kind}" for column, kind in columns)
                cur.execute(f"create table {schema}.{name} ({described})")
            stream = _CsvStream(iter(table.to_batches(BATCH_ROWS)))
            cur.copy_expert(
                f"copy {schema}.{name} ({', '.join(table.schema.names)}) "
                "from stdin with (format csv)",
                stream,
            )


# ------------------------------------------------------------------------------------ spark
def spark_raw_location(paths: Paths) -> str:
    """Where the raw Parquet files of the Spark target live (a path or a URI Spark and pyarrow
    both read, such as s3a://... on a cluster)."""
    return os.environ.get("RETENTION_SPARK_RAW_LOCATION") or str(paths.data_dir / "spark" / "raw")


def _spark_raw_folders(paths: Paths) -> tuple[pafs.FileSystem, dict[str, str], dict[str, str]]:
    """The filesystem, and per raw table its folder there and the location Spark reads."""
    location = spark_raw_location(paths).rstrip("/")
    remote = "://" in location
    # Hadoop's s3a:// is s3:// to pyarrow
    uri = location.replace("s3a://", "s3://", 1) if remote else Path(location).resolve().as_uri()
    fs, base = pafs.FileSystem.from_uri(uri)
    names = {entity: entity for entity in COLUMNS} | {"_landing_files": "landing_files"}
    folders = {table: f"{base}/{name}" for table, name in names.items()}
    uris = {
        table: f"{location}/{name}" if remote else Path(folder).as_uri()
        for (table, name), folder in zip(names.items(), folders.values(), strict=True)
    }
    return fs, folders, uris


def spark_session(paths: Paths):
    """A SparkSession for the ``spark`` target: the profile's ``server_side_parameters`` in
    this process (method ``session``), or Spark Connect when ``SPARK_REMOTE`` is set.

    Run it in a process of its own (``retention.spark_jobs``): the local metastore is an
    embedded Derby database that only one JVM at a time may open, dbt's included.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise UserError(
            "the spark target needs pyspark: pip install -e '.[spark]' (see README)"
        ) from exc
    creds = profile_credentials(paths, "spark")
    builder = SparkSession.builder
    if not os.environ.get("SPARK_REMOTE"):
        if getattr(creds.method, "value", creds.method) != "session":
            raise UserError(
                f"the spark target uses method {creds.method}: loading raw tables and the CLV "
                "step need a pyspark session; set SPARK_REMOTE=sc://host:15002 (Spark Connect) "
                "to reach the cluster"
            )
        check_local_spark_paths(paths)
        builder = builder.enableHiveSupport()
        for key, value in creds.server_side_parameters.items():
            builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:
        if getattr(exc, "getCondition", lambda: None)() != "JAVA_GATEWAY_EXITED":
            raise
        java_home = os.environ.get("JAVA_HOME")
        raise UserError(
            f"Spark could not start Java ({exc}; JAVA_HOME="
            f"{java_home if java_home is not None else 'not set'})\n"
            "  what to do: install Java 17 and set JAVA_HOME to it (or put its java on PATH)"
        ) from exc
    spark.sparkContext.setLogLevel("ERROR")
    return spark


_SPARK_TYPES = {
    pa.string(): "string",
    pa.int64(): "bigint",
    pa.float64(): "double",
    pa.date32(): "date",
    pa.timestamp("us", tz="UTC"): "timestamp",
}


def _raw_schema(entity: str) -> pa.Schema:
    text = [(c, pa.string()) for c in (*COLUMNS[entity], "_extra", "_source_file")]
    return pa.schema(
        [
            *text,
            ("_source_row", pa.int64()),
            ("_loaded_at", pa.timestamp("us", tz="UTC")),
            ("_load_issue", pa.string()),
        ]
    )


_LEDGER_SCHEMA = pa.schema(
    [
        ("entity", pa.string()),
        ("source_file", pa.string()),
        ("sha256", pa.string()),
        ("size_bytes", pa.int64()),
        ("row_count", pa.int64()),
        ("loaded_at", pa.timestamp("us", tz="UTC")),
    ]
)


def _write_parquet_atomically(fs: pafs.FileSystem, path: str, table: pa.Table) -> None:
    folder, name = path.rsplit("/", 1)
    hidden = f"{folder}/_tmp-{uuid.uuid4().hex}-{name}"  # Spark and pyarrow skip _ files
    pq.write_table(table, hidden, filesystem=fs)
    fs.move(hidden, path)


def _ship_spark(paths: Paths, say: Say) -> ShipSummary:
    summary = ShipSummary("spark")
    fs, folders, _ = _spark_raw_folders(paths)
    for folder in folders.values():
        fs.create_dir(folder, recursive=True)
    shipped = {
        info.base_name.removesuffix(".parquet")
        for info in fs.get_file_info(pafs.FileSelector(folders["_landing_files"]))
        if info.base_name.endswith(".parquet") and not info.base_name.startswith(("_", "."))
    }
    ledger = _duckdb_ledger(paths)
    with connect(paths, read_only=True) as duck:
        for entry, (_, _, landing) in zip(ledger, _ledger_keys(ledger), strict=True):
            entity, source_file, sha256, _, row_count, loaded_at = entry
            # files are named by content, and the n-th landing of a content (a file changed
            # back to it) by its number too
            name = sha256 if landing == 1 else f"{sha256}-{landing}"
            key = f"{entity}-{name}"
            if key in shipped:
                summary.skipped += 1
                continue
            rows = duck.sql(
                _raw_rows_sql(entity, for_csv=False), params=[source_file, loaded_at]
            ).to_arrow_table()
            if rows.num_rows != row_count:
                raise UserError(
                    f"{source_file}: the DuckDB warehouse holds {rows.num_rows} rows of it, "
                    f"its raw._landing_files entry says {row_count}; nothing was shipped"
                )
            # the data file first, its ledger entry last: shipping again after a crash in
            # between rewrites the same file, never a second copy
            _write_parquet_atomically(
                fs, f"{folders[entity]}/{name}.parquet", rows.cast(_raw_schema(entity))
            )
            ledger = pa.Table.from_pylist([dict(zip(LEDGER_COLUMNS, entry, strict=True))])
            _write_parquet_atomically(
                fs, f"{folders['_landing_files']}/{key}.parquet", ledger.cast(_LEDGER_SCHEMA)
            )
            summary.files += 1
            summary.rows += rows.num_rows
    # the tables are external: new files show up in them without registering again
    marker = paths.data_dir / "spark" / ".raw_tables_registered"
    location = spark_raw_location(paths)
    if summary.files or not marker.is_file() or marker.read_text() != location:
        say("  registering the raw tables in Spark")
        _spark_job(paths, "register-raw")
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(location)
    return summary


def register_spark_raw(spark, paths: Paths) -> None:
    """Declare the raw Parquet folders as external tables raw.* (idempotent)."""
    _, _, uris = _spark_raw_folders(paths)
    spark.sql("create schema if not exists raw")
    for table, uri in uris.items():
        schema = _LEDGER_SCHEMA if table == "_landing_files" else _raw_schema(table)
        columns = ", ".join(f"{f.name} {_SPARK_TYPES[f.type]}" for f in schema)
        spark.sql(
            f"create table if not exists raw.`{table}` ({columns}) using parquet location '{uri}'"
        )
        spark.sql(f"refresh table raw.`{table}`")


def spark_clv(spark, dbt_vars: dict[str, Any] | None = None) -> dict[str, int]:
    """The CLV marts fitted on the summaries in Spark and written back to marts.*."""

    def read(relation: str) -> pd.DataFrame:
        return spark.table(relation).toArrow().to_pandas()

    tables = clv_tables(
        *(read(f"staging.{model}") for model in CLV_INPUTS),
        clv_settings(dbt_vars),
    )
    spark.sql("create schema if not exists marts")
    for name, table in tables.items():
        frame = spark.createDataFrame(table)
        frame.write.mode("overwrite").format("parquet").saveAsTable(f"marts.{name}")
    return {name: table.num_rows for name, table in tables.items()}


def _spark_job(paths: Paths, job: str, dbt_vars: dict[str, Any] | None = None) -> Any:
    """Run ``retention.spark_jobs <job>`` in a process of its own; its JSON result."""
    command = [
        sys.executable,
        "-m",
        "retention.spark_jobs",
        job,
        str(paths.data_dir),
        json.dumps(dbt_vars or {}),
    ]
    done = subprocess.run(
        command,
        cwd=project_dir(),
        env=dbt_env(paths, "spark"),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        raise UserError(f"the Spark step {job} failed:\n" + "\n".join(lines[-12:]))
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------- actions
def _check(target: str) -> None:
    if target not in EXTERNAL_TARGETS:
        raise UserError(f"target {target!r} is not one of {', '.join(EXTERNAL_TARGETS)}")


def ship_raw(paths: Paths, target: str, say: Say | None = None) -> ShipSummary:
    """Copy every landing file loaded into DuckDB's raw.* that ``target`` does not have yet."""
    _check(target)
    say = say or log.info
    summary = (_ship_postgres if target == "postgres" else _ship_spark)(paths, say)
    say(
        f"  {target}: {summary.files} new file(s), {summary.rows:,} rows; "
        f"{summary.skipped} already there"
    )
    return summary


def clv_tables(
    summary: pd.DataFrame, calibration: pd.DataFrame, settings: dict[str, float]
) -> dict[str, pa.Table]:
    """The three CLV marts from the two BTYD summaries (as the DuckDB Python models make them)."""
    minimum = int(settings["clv_min_repeat_customers"])
    parameters = clv_marts.model_parameters(summary, minimum)
    frames = {
        "clv_model_parameters": parameters,
        "customer_lifetime_value": clv_marts.lifetime_values(
            summary,
            parameters,
            settings["clv_horizon_days"],
            settings["clv_annual_discount_rate"],
        ),
        "clv_backtest": clv_marts.backtest(calibration, minimum),
    }
    return {name: clv_marts.to_arrow(name, frame) for name, frame in frames.items()}


def clv_fit_failed(target: str, exc: Exception) -> UserError:
    """The error of a CLV fit that did not converge on ``target``, with what to do."""
    return UserError(
        f"predictive CLV on {target}: {exc}; the CLV marts and the marts built on them were not "
        "updated\n  what to do: check the repeat purchases (a few huge amounts leave the mean "
        "spend undefined; histories all alike show no dropout), then build again"
    )


def run_clv(
    paths: Paths, target: str, dbt_vars: dict[str, Any] | None = None, say: Say | None = None
) -> dict[str, int]:
    """Fit and write the predictive CLV marts on ``target`` (row counts by table)."""
    _check(target)
    say = say or log.info
    if target == "postgres":
        try:
            tables = clv_tables(
                *(_postgres_read(paths, f"staging.{model}") for model in CLV_INPUTS),
                clv_settings(dbt_vars),
            )
        except clv_marts.clv.ClvFitError as exc:
            raise clv_fit_failed(target, exc) from exc
        _postgres_replace(paths, "marts", tables)
        counts = {name: table.num_rows for name, table in tables.items()}
    else:
        counts = _spark_job(paths, "clv", dbt_vars)
    say(f"  predictive CLV on {target}: " + ", ".join(f"{n} {c:,} rows" for n, c in counts.items()))
    return counts
