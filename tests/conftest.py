"""Shared fixtures: small generated datasets built once per test session."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pytest

from retention import pipeline
from retention.config import Paths
from retention.generate import generate


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


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="session")
def generated_build(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    """3,000 generated customers with 2 % dirty rows: loaded and built once."""
    paths = Paths(tmp_path_factory.mktemp("generated"))
    generate(
        paths.landing,
        customers=3_000,
        seed=7,
        start=date(2023, 1, 1),
        end=date(2025, 6, 30),
        dirty_rate=0.02,
        progress=quiet,
    )
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
