"""The same models on Spark: raw shipping once, the full dbt build with every data and unit test,
and marts equal to DuckDB's on the same input (PostgreSQL: test_postgres.py, a module of its own
so that pytest-xdist can run the two on different workers)."""

from __future__ import annotations

import subprocess
import sys

import duckdb
import pytest

from retention import dbt, pipeline
from retention.config import ENTITIES, project_dir
from tests.conftest import SparkWarehouse, Warehouse, quiet, require_spark
from tests.engines import (
    CORE_MARTS,
    MART_KEYS,
    expected_parsed_cases,
    land_an_unfittable_history,
    parsed_cases,
    raw_rows,
    table_differences,
)

pytestmark = pytest.mark.slow


def test_spark_build_passes_every_model_and_test(spark_build: SparkWarehouse) -> None:
    columns, rows = spark_build.table("raw._dbt_builds")
    events = sorted((r[columns.index("happened_at")], r[columns.index("event")]) for r in rows)
    assert [e for _, e in events] == ["started", "success", "started", "success"]
    _, parameters = spark_build.table("marts.clv_model_parameters")
    assert len(parameters) == 7


def _spark_mart(spark: SparkWarehouse, mart: str, columns: list[str]):
    if mart == "customer_lifecycle_monthly":
        # a view (no files on Spark): the projection of int_customer_months it selects
        return spark.table("staging.int_customer_months", columns)
    return spark.table(f"marts.{mart}")


@pytest.mark.parametrize("mart", CORE_MARTS)
def test_core_marts_equal_on_duckdb_and_spark(
    mart: str, generated_build: Warehouse, spark_build: SparkWarehouse
) -> None:
    expected = generated_build.table(f"marts.{mart}")
    assert not table_differences(mart, expected, _spark_mart(spark_build, mart, expected[0]))


@pytest.mark.parametrize("mart", sorted(set(MART_KEYS) - set(CORE_MARTS)))
def test_other_marts_equal_on_duckdb_and_spark(
    mart: str, generated_build: Warehouse, spark_build: SparkWarehouse
) -> None:
    expected = generated_build.table(f"marts.{mart}")
    assert not table_differences(mart, expected, _spark_mart(spark_build, mart, expected[0]))


def test_spark_parses_the_edge_cases_as_duckdb_does(spark_build: SparkWarehouse) -> None:
    """A minute-precision time with a zone was NULL on Spark only; text ending in a line break
    passed Spark's patterns only (Java's "$" matches before it)."""
    assert parsed_cases(spark_build.paths, "spark") == expected_parsed_cases()


def test_raw_files_are_shipped_once(spark_build: SparkWarehouse) -> None:
    local = Warehouse(spark_build.paths)
    for entity in ENTITIES:
        assert raw_rows(spark_build, entity) == raw_rows(local, entity), entity
    files = sorted(p.name for p in (spark_build.paths.data_dir / "spark" / "raw").rglob("*"))
    summary = pipeline.load_step(spark_build.paths, quiet, target="spark")
    assert summary.loaded == []
    assert sorted(p.name for p in (spark_build.paths.data_dir / "spark" / "raw").rglob("*")) == (
        files
    )


def test_java_that_cannot_start_is_named(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from retention import targets
    from retention.config import Paths
    from retention.errors import UserError

    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-java"))
    with pytest.raises(UserError) as raised:
        targets._spark_job(Paths(tmp_path), "register-raw")
    message = str(raised.value)
    assert "Spark could not start Java ([JAVA_GATEWAY_EXITED] " in message
    assert f"JAVA_HOME={tmp_path / 'no-java'})" in message
    assert "what to do: install Java 17 and set JAVA_HOME to it" in message
    assert "Traceback" not in message


#: Writes the Parquet files of a folder (argv[2]) as tables of schema staging in the Spark
#: warehouse of a data directory (argv[1]): what the Spark build of those models leaves there.
_WRITE_STAGING = """
import sys
from pathlib import Path
from retention import targets
from retention.config import Paths
spark = targets.spark_session(Paths(Path(sys.argv[1])))
spark.sql("create schema if not exists staging")
for file in sorted(Path(sys.argv[2]).glob("*.parquet")):
    frame = spark.read.parquet(file.as_uri())
    frame.write.mode("overwrite").format("parquet").saveAsTable(f"staging.{file.stem}")
spark.stop()
"""


def test_a_clv_fit_that_fails_is_named_with_what_to_do(tmp_path) -> None:
    """The fit runs in the Spark job's process: its error reaches the command as the
    PostgreSQL path says it, with what to do, not a traceback. (The fit's inputs are built on
    DuckDB from a history that cannot be fitted and written to Spark's warehouse as its build
    leaves them: building them on Spark added two minutes and two JVM starts to the suite, and
    the build reaches ``run_clv`` as every Spark build does, above.)"""
    from retention import targets
    from retention.config import Paths
    from retention.errors import UserError

    require_spark()
    paths = Paths(tmp_path / "data")
    land_an_unfittable_history(paths)
    pipeline.load_step(paths, quiet)
    pipeline.build_step(
        paths, quiet, select=" ".join(f"+{m}" for m in targets.CLV_INPUTS), unit_tests=False
    )
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        for model in targets.CLV_INPUTS:
            con.execute(f"copy staging.{model} to '{inputs / model}.parquet' (format parquet)")
    subprocess.run(
        [sys.executable, "-c", _WRITE_STAGING, str(paths.data_dir), str(inputs)],
        cwd=project_dir(),
        env=dbt.dbt_env(paths, "spark"),
        check=True,
        capture_output=True,
    )
    with pytest.raises(UserError) as caught:
        targets.run_clv(paths, "spark")
    message = str(caught.value)
    assert "predictive CLV on spark: " in message
    assert "what to do: check the repeat purchases" in message
    assert "Traceback" not in message
