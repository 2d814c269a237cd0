"""Shared fixtures: small generated datasets built once per test session."""

from __future__ import annotations

import csv
import importlib.util
import os
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import pytest

from retention import pipeline
from retention.config import Paths
from retention.generate import generate
from retention.load import COLUMNS

# pytest-xdist's workers run under execnet, whose __main__ has neither __spec__ nor __file__:
# pyspark.sql.connect (imported by Great Expectations when pyspark is installed) takes that for
# a doctest run of its own and calls sys.exit(0) during collection.
_main = sys.modules["__main__"]
if getattr(_main, "__spec__", None) is None and not hasattr(_main, "__file__"):
    _main.__file__ = "pytest-xdist-worker"


def quiet(_: str) -> None:
    """Progress sink for tests."""


@dataclass
class Warehouse:
    paths: Paths

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        with duckdb.connect(str(self.paths.warehouse), read_only=True) as con:
            return con.execute(sql, params or []).fetchall()

    def scalar(self, sql: str, params: list | None = None):
        return self.query(sql, params)[0][0]

    def table(self, relation: str) -> tuple[list[str], list[tuple]]:
        """Column names and rows of a table."""
        with duckdb.connect(str(self.paths.warehouse), read_only=True) as con:
            result = con.execute(f"select * from {relation}")
            return [d[0] for d in result.description], result.fetchall()


def storage_version(database: Path) -> tuple[str, int]:
    """A DuckDB file's storage compatibility (``v1.0.0+``: DuckDB 1.0 and later open it) and the
    version number in its header, which a DuckDB 1.x client checks (it opens 64 to 68; a file in
    DuckDB 2's own format has 999 there)."""
    with database.open("rb") as handle:
        header = handle.read(20)
    assert header[8:12] == b"DUCK", database
    with duckdb.connect(str(database), read_only=True) as con:
        (tag,) = con.execute(
            "select tags['storage_version'] from duckdb_databases() "
            "where database_name = current_database()"
        ).fetchone()
    return tag, int.from_bytes(header[12:20], "little")


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# the generated test dataset: 3,000 customers with 2 % dirty rows
GENERATED = {
    "customers": 3_000,
    "seed": 7,
    "start": date(2023, 1, 1),
    "end": date(2025, 6, 30),
    "dirty_rate": 0.02,
}


@pytest.fixture(scope="session")
def generated_build(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    """The generated test dataset (GENERATED): loaded and built once."""
    paths = Paths(tmp_path_factory.mktemp("generated"))
    generate(paths.landing, progress=quiet, **GENERATED)
    pipeline.load_step(paths, quiet)
    pipeline.build_step(paths, quiet)
    yield Warehouse(paths)


@pytest.fixture(scope="session")
def published(generated_build: Warehouse, tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    """A copy of the generated build, validated and published once."""
    from retention import publish, validation

    target = tmp_path_factory.mktemp("published") / "data"
    shutil.copytree(generated_build.paths.data_dir, target)
    warehouse = Warehouse(Paths(target))
    report = validation.validate(warehouse.paths, progress=quiet)
    assert report.success, validation.summary_lines(report)
    publish.publish(warehouse.paths, progress=quiet)
    return warehouse


# ------------------------------------------------------------------------------- PostgreSQL
#: libpq settings of the test server when the environment does not say otherwise (.ci/run
#: starts a server on 127.0.0.1 with this role and database).
PG_DEFAULTS = {
    "PGHOST": "127.0.0.1",
    "PGPORT": "5432",
    "PGUSER": "retention",
    "PGPASSWORD": "retention",
    "PGDATABASE": "retention",
}


@dataclass
class PostgresServer:
    """A reachable PostgreSQL server; each dataset gets its own database, dropped at the end."""

    settings: dict[str, str]
    databases: list[str] = field(default_factory=list)

    def connect(self, dbname: str | None = None):
        import psycopg2

        s = self.settings
        return psycopg2.connect(
            host=s["PGHOST"],
            port=int(s["PGPORT"]),
            user=s["PGUSER"],
            password=s["PGPASSWORD"] or None,
            dbname=dbname or s["PGDATABASE"],
            connect_timeout=5,
        )

    def create_database(self, purpose: str, options: str = "") -> str:
        """A new database (``options``: the rest of CREATE DATABASE, a locale say)."""
        name = f"retention_test_{purpose}_{uuid.uuid4().hex[:8]}"
        con = self.connect()
        con.autocommit = True
        try:
            with con.cursor() as cur:
                cur.execute(f"create database {name} {options}")
        finally:
            con.close()
        self.databases.append(name)
        return name

    def drop_databases(self) -> None:
        import psycopg2

        con = self.connect()
        con.autocommit = True
        with con.cursor() as cur:
            for name in self.databases:
                # an autovacuum worker on the database (after large writes) is not ours to
                # terminate: FORCE then fails until it has finished
                for attempt in range(30):
                    try:
                        cur.execute(f"drop database if exists {name} with (force)")
                        break
                    except psycopg2.errors.InsufficientPrivilege:
                        if attempt == 29:
                            raise
                        time.sleep(1)
        con.close()

    @contextmanager
    def environment(self, dbname: str) -> Iterator[None]:
        """The PG* variables of ``dbname`` for the pipeline (and the dbt processes it starts)."""
        saved = {k: os.environ.get(k) for k in self.settings}
        os.environ.update({**self.settings, "PGDATABASE": dbname})
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@dataclass
class PostgresWarehouse:
    paths: Paths
    server: PostgresServer
    dbname: str

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        con = self.server.connect(self.dbname)
        try:
            with con.cursor() as cur:
                cur.execute(sql, params or None)
                return cur.fetchall()
        finally:
            con.close()

    def scalar(self, sql: str, params: list | None = None):
        return self.query(sql, params)[0][0]

    def table(self, relation: str) -> tuple[list[str], list[tuple]]:
        con = self.server.connect(self.dbname)
        try:
            with con.cursor() as cur:
                cur.execute(f"select * from {relation}")
                return [d.name for d in cur.description], cur.fetchall()
        finally:
            con.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The PostgreSQL server from PG* (defaults: PG_DEFAULTS). Without one the PostgreSQL tests
    are skipped, except in CI (``CI`` set), where they fail: .ci/run must provide it."""
    import psycopg2

    server = PostgresServer({k: os.environ.get(k, v) for k, v in PG_DEFAULTS.items()})
    try:
        server.connect().close()
    except psycopg2.OperationalError as exc:
        s = server.settings
        message = (
            f"no PostgreSQL server at {s['PGHOST']}:{s['PGPORT']} for role {s['PGUSER']}, "
            f"database {s['PGDATABASE']} ({str(exc).strip()}); .ci/run starts one"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    yield server
    server.drop_databases()


@pytest.fixture(scope="session")
def postgres_build(
    generated_build: Warehouse,
    postgres_server: PostgresServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> PostgresWarehouse:
    """The generated dataset of ``generated_build``, loaded and built on PostgreSQL."""
    paths = Paths(tmp_path_factory.mktemp("postgres"))
    shutil.copytree(generated_build.paths.landing, paths.landing)
    dbname = postgres_server.create_database("generated")
    with postgres_server.environment(dbname):
        pipeline.load_step(paths, quiet, target="postgres")
        pipeline.build_step(paths, quiet, target="postgres")
    return PostgresWarehouse(paths, postgres_server, dbname)


# ------------------------------------------------------------------------------------ Spark
@dataclass
class SparkWarehouse:
    """A warehouse built by the local Spark target, read from its Parquet files (no JVM: the
    embedded metastore admits one Spark process at a time, and the tests need none)."""

    paths: Paths

    def location(self, relation: str) -> Path:
        schema, table = relation.split(".")
        if schema == "raw" and table in COLUMNS:
            return self.paths.data_dir / "spark" / "raw" / table
        return self.paths.data_dir / "spark" / "warehouse" / f"{schema}.db" / table

    def table(
        self, relation: str, columns: list[str] | None = None
    ) -> tuple[list[str], list[tuple]]:
        """Column names and rows of a table (optionally only ``columns``)."""
        import pyarrow.dataset as ds

        data = ds.dataset(self.location(relation), format="parquet").to_table(columns=columns)
        return data.column_names, [tuple(row.values()) for row in data.to_pylist()]


def require_spark() -> None:
    """Skip the test without pyspark or Java (fail it in CI, which installs both)."""
    problem = _spark_unavailable()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)


def _spark_unavailable() -> str | None:
    if importlib.util.find_spec("pyspark") is None:
        return "the Spark target needs its extra: make install-spark (pip install -e '.[spark]')"
    if shutil.which("java") is None:
        return "the Spark target needs Java 17 (java on PATH)"
    return None


@pytest.fixture(scope="session")
def spark_build(
    generated_build: Warehouse, tmp_path_factory: pytest.TempPathFactory
) -> SparkWarehouse:
    """The generated dataset of ``generated_build``, loaded and built on local Spark (pyspark
    in-process, a Derby metastore and Parquet tables under the data directory). Skipped
    without pyspark or Java, except in CI."""
    require_spark()
    paths = Paths(tmp_path_factory.mktemp("spark"))
    shutil.copytree(generated_build.paths.landing, paths.landing)
    pipeline.load_step(paths, quiet, target="spark")
    pipeline.build_step(paths, quiet, target="spark")
    return SparkWarehouse(paths)
