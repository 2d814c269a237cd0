"""Paths and settings shared by the CLI, the loader and the orchestration code.

Everything hangs off one root, ``RETENTION_DATA_DIR`` (default: ``data/`` in the project root).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path

ENTITIES: tuple[str, ...] = ("customers", "orders", "marketing_spend", "nps_responses")

#: customers `retention demo` generates when the landing folder is empty
DEMO_CUSTOMERS = 20_000

#: The garbage collector's thresholds in the CLI and its dbt processes: a young collection every
#: 100,000 new objects instead of every 700, and next to no full ones (each walks every object,
#: dbt's whole manifest in a dbt process). A dbt build at 1,000 customers spent 0.9 s in 1,270
#: collections with Python's defaults, 0.3 s with these; `retention validate` at 1 M customers
#: 0.46 s against 0.17 s.
GC_THRESHOLDS = (100_000, 50, 1_000)


def project_dir() -> Path:
    """The dbt project root (the folder holding ``dbt_project.yml``).

    ``RETENTION_PROJECT_DIR`` overrides it; otherwise it is found next to this package.
    """
    override = os.environ.get("RETENTION_PROJECT_DIR")
    if override:
        return Path(override).resolve()
    here = Path(__file__).resolve().parent
    for candidate in (here.parent, Path.cwd()):
        if (candidate / "dbt_project.yml").is_file():
            return candidate
    raise FileNotFoundError(
        "Cannot find dbt_project.yml; set RETENTION_PROJECT_DIR to the project root."
    )


@dataclass(frozen=True)
class Paths:
    """Every location the pipeline reads or writes, derived from one data directory."""

    data_dir: Path

    @classmethod
    def from_env(cls) -> Paths:
        """The data directory of ``RETENTION_DATA_DIR`` (``--data-dir``), or the project's.

        Raises:
            UserError: when its path has a backslash: DuckDB reads one in a file path as a
                folder separator, so the warehouse and the serving files would be written
                into another folder than the one the lock and the landing files are in.
        """
        root = os.environ.get("RETENTION_DATA_DIR")
        data_dir = (Path(root) if root else project_dir() / "data").resolve()
        if "\\" in str(data_dir):
            from retention.errors import UserError

            raise UserError(
                f"the data directory {str(data_dir)!r} has a backslash in its path, which DuckDB "
                "reads as a folder separator (its files would go to another folder): use a "
                "data directory whose path has none"
            )
        return cls(data_dir)

    @property
    def landing(self) -> Path:
        return self.data_dir / "landing"

    def landing_dir(self, entity: str) -> Path:
        return self.landing / entity

    @property
    def warehouse(self) -> Path:
        return self.data_dir / "warehouse.duckdb"

    @property
    def serving(self) -> Path:
        return self.data_dir / "serving"

    @property
    def validation(self) -> Path:
        return self.data_dir / "validation"

    @property
    def reports(self) -> Path:
        return self.data_dir / "reports"

    @property
    def dbt_target(self) -> Path:
        return self.data_dir / "dbt" / "target"

    @property
    def dbt_logs(self) -> Path:
        return self.data_dir / "dbt" / "logs"

    def ensure(self) -> None:
        for entity in ENTITIES:
            self.landing_dir(entity).mkdir(parents=True, exist_ok=True)


def apply_environment(env: MutableMapping[str, str], changes: Mapping[str, str | None]) -> None:
    """Set each name of ``changes`` in ``env`` (``os.environ`` or a copy), or remove it where
    its value is None."""
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value


def write_whole(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all: to a temporary file beside it, then
    renamed over it, so that a reader (or a disk that fills) never leaves a file cut short."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def duckdb_memory_limit() -> str:
    """RETENTION_DUCKDB_MEMORY_LIMIT (default 3GB, as profiles.yml), checked by DuckDB's own
    parser: DuckDB's memory_limit for the dbt builds and the commands' own connections."""
    return _checked_memory_limit(os.environ.get("RETENTION_DUCKDB_MEMORY_LIMIT", "3GB"))


@functools.cache
def _checked_memory_limit(memory: str) -> str:
    import duckdb

    from retention.errors import UserError

    try:
        with duckdb.connect() as con:  # a throwaway in-memory database
            con.execute("set memory_limit = ?", [memory])
    except duckdb.Error as exc:
        raise UserError(
            f"RETENTION_DUCKDB_MEMORY_LIMIT={memory!r} is not a memory size DuckDB accepts "
            f"({exc}); write it like 3GB, 2500MiB or 75%"
        ) from None
    return memory
