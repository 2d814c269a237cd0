"""The benchmark's plain-DuckDB yardstick computes the same core marts as the dbt models."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks import bench
from tests.conftest import Warehouse


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
