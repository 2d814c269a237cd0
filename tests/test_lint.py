"""House style is part of the build: ruff for Python, sqlfluff (dbt templater) for SQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def test_python_passes_ruff() -> None:
    dirs = ["retention", "orchestration", "tests", "benchmarks", "models"]
    check = subprocess.run([BIN / "ruff", "check", *dirs], cwd=ROOT, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    fmt = subprocess.run(
        [BIN / "ruff", "format", "--check", *dirs], cwd=ROOT, capture_output=True, text=True
    )
    assert fmt.returncode == 0, fmt.stdout


def test_sql_passes_sqlfluff(tmp_path: Path) -> None:
    env = {**os.environ, "RETENTION_DATA_DIR": str(tmp_path), "DBT_TARGET_PATH": str(tmp_path)}
    result = subprocess.run(
        [BIN / "sqlfluff", "lint", "models", "tests/dbt"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:]
