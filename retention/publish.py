"""Publish validated marts for BI tools: Parquet files plus a DuckDB file of views, swapped in
atomically.

Each publish writes a complete, immutable release under ``$RETENTION_DATA_DIR/serving_releases/``
(one Parquet file per mart, ``serving.duckdb`` with one view per mart, ``_manifest.json``), then
points the symlink ``$RETENTION_DATA_DIR/serving`` at it with one atomic rename. A reader opens
either the old release or the new one, never a mix, and a reader holding the old file open keeps
reading it: the build warehouse is never opened by BI tools, so they never block a build.

Publishing refuses unless the latest dbt build finished successfully and was validated after
it, with every expectation passing, and every model and data test of the project passed the last
time it ran (a build of a selection leaves the others as they were). Columns marked
``meta: {pii: true}`` in the dbt yml (and any column named ``email``) never reach serving.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from retention.config import Paths, project_dir
from retention.errors import UserError
from retention.load import connect
from retention.sql import sql_string
from retention.validation import (
    ValidationReport,
    latest_build,
    latest_node_failures,
    read_report,
)

log = logging.getLogger(__name__)

KEEP_RELEASES = 3
#: A release replaced less than this long ago is kept, however many were published since: a BI
#: connection opened on it reads its files until it reconnects (README: recycle pooled
#: connections within this time).
REPLACED_RELEASE_GRACE = timedelta(hours=1)
#: A release folder's name: when it was written (UTC, to the microsecond) and its build
RELEASE_NAME = re.compile(r"\d{8}T\d{12}-[0-9A-Za-z_-]{1,8}")
ALWAYS_PII = {"email"}
#: serving.duckdb is what BI tools open, and many bundle a DuckDB 1.x, which cannot read DuckDB
#: 2's own storage format. Created at v1.0.0, DuckDB 1.0 and later open it. (It
#: holds only views over the Parquet files, so the format costs nothing. The build warehouse,
#: which no BI tool reads, uses DuckDB 2's format: its builds are faster; see DECISIONLOG.)
SERVING_FILE_CONFIG = {"storage_compatibility_version": "v1.0.0"}


class StageCancelled(Exception):
    """``stage_release`` was cancelled (``StageCancel``); the release folder is removed."""


class StageCancel:
    """Stops a ``stage_release`` running in another thread: before its next mart, or in the
    middle of one (DuckDB's ``interrupt`` on its connection). For a release that will not be
    published (its validation failed, the command is stopping)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None

    def cancel(self) -> None:
        with self._lock:
            self._event.set()
            if self._con is not None:
                self._con.interrupt()

    def check(self) -> None:
        if self._event.is_set():
            raise StageCancelled("the release was cancelled before it was complete")

    def watch(self, con: duckdb.DuckDBPyConnection | None) -> None:
        """The connection the release is written through (None: it is being closed)."""
        with self._lock:
            self._con = con


class PublishRefused(UserError):
    """Publishing was refused; serving/ is unchanged."""


@dataclass
class PublishSummary:
    release: Path
    tables: dict[str, int]
    seconds: float


def published_manifest(paths: Paths) -> dict | None:
    manifest = paths.serving / "_manifest.json"
    if not manifest.exists():
        return None
    return json.loads(manifest.read_text())


def published_row_counts(paths: Paths) -> dict[str, int]:
    """Row counts of the currently published marts, by "marts.<name>"."""
    manifest = published_manifest(paths)
    if not manifest:
        return {}
    return {f"marts.{name}": info["rows"] for name, info in manifest["tables"].items()}


def dbt_manifest(paths: Paths) -> dict:
    """The newest dbt manifest: the CLI's, under the data directory, or the project's, which
    Dagster uses."""
    candidates = [paths.dbt_target / "manifest.json", project_dir() / "target" / "manifest.json"]
    existing = [p for p in candidates if p.exists()]
    if not existing:
        raise PublishRefused(
            f"{candidates[0]} is missing, so the project's tests and PII columns cannot be "
            "identified; run `retention build`"
        )
    return json.loads(max(existing, key=lambda p: p.stat().st_mtime).read_text())


def pii_columns(manifest: dict) -> dict[str, set[str]]:
    """Columns tagged ``meta: {pii: true}`` per mart in a dbt manifest."""
    tagged: dict[str, set[str]] = {}
    for node in manifest.get("nodes", {}).values():
        if node.get("resource_type") != "model":
            continue
        name = node.get("alias") or node["name"]
        for column, spec in (node.get("columns") or {}).items():
            meta = {**(spec.get("config", {}) or {}).get("meta", {}), **(spec.get("meta") or {})}
            if meta.get("pii"):
                tagged.setdefault(name, set()).add(column)
    return tagged


def mart_models(manifest: dict) -> set[str]:
    """The tables the project's models build in schema ``marts``: all that may be published.

    dbt never drops the table of a model that was renamed or removed, and nothing validates a
    table made by hand; neither reaches BI tools.
    """
    return {
        node.get("alias") or node["name"]
        for node in manifest.get("nodes", {}).values()
        if node.get("resource_type") == "model" and node.get("schema") == "marts"
    }


def mart_descriptions(manifest: dict) -> dict[str, tuple[str, dict[str, str]]]:
    """Each mart's dbt description and its columns' descriptions (empty ones left out)."""
    described: dict[str, tuple[str, dict[str, str]]] = {}
    for node in manifest.get("nodes", {}).values():
        if node.get("resource_type") != "model" or node.get("schema") != "marts":
            continue
        columns = {
            column: " ".join(spec["description"].split())
            for column, spec in (node.get("columns") or {}).items()
            if (spec.get("description") or "").strip()
        }
        described[node.get("alias") or node["name"]] = (
            " ".join((node.get("description") or "").split()),
            columns,
        )
    return described


def _describe_view(
    views: duckdb.DuckDBPyConnection, name: str, kept: list[str], described: tuple | None
) -> None:
    """The dbt descriptions as comments on a serving view and its columns: SQL clients and BI
    tools show them next to the names (DuckDB's ``duckdb_views()``/``duckdb_columns()``)."""
    if described is None:
        return
    table, columns = described
    if table:
        views.execute(f"comment on view {name} is {sql_string(table)}")
    for column in kept:
        if column in columns:
            quoted = column.replace('"', '""')
            views.execute(f'comment on column {name}."{quoted}" is {sql_string(columns[column])}')


def _build_setting(con: duckdb.DuckDBPyConnection, var: str) -> Any:
    """A var of the build (reporting_currency, churn_inactivity_days), as int_reporting_dates
    recorded it."""
    try:
        row = con.execute(f"select max({var}) from staging.int_reporting_dates")
        return row.fetchone()[0]
    except (duckdb.CatalogException, duckdb.BinderException):
        return None


def _successful_build(con: duckdb.DuckDBPyConnection, manifest: dict) -> str:
    """The id of the latest dbt build; refuse when there is none, it did not succeed, or a node
    of the project did not pass the last time it ran (``manifest``: the project's nodes)."""
    build = latest_build(con)
    if build is None:
        raise PublishRefused(
            "nothing to publish: no dbt build has been recorded; run `retention run`"
        )
    build_id, state = build
    if state != "success":
        raise PublishRefused(
            f"the latest build ({build_id}) {'did not finish' if state == 'started' else 'failed'};"
            " serving/ keeps the previous copy. Fix the build and run `retention run`."
        )
    not_passed = [
        (manifest["nodes"][unique_id], status)
        for unique_id, status in latest_node_failures(con)
        if unique_id in manifest.get("nodes", {})
    ]
    if not_passed:
        shown = ", ".join(
            f"{node['resource_type']} {node['name']} ({status})" for node, status in not_passed[:5]
        )
        more = f" and {len(not_passed) - 5} more" if len(not_passed) > 5 else ""
        raise PublishRefused(
            f"{len(not_passed)} node(s) did not pass the last time they ran: {shown}{more}; "
            "a later build of other models does not vouch for them, and serving/ keeps the "
            "previous copy. Fix them and run `retention run` (or `retention build --select` "
            "them, then `retention validate` and `retention publish`)."
        )
    return build_id


def _check_validated(paths: Paths, build_id: str) -> ValidationReport:
    """The validation report of ``build_id``; refuse unless every expectation passed."""
    report = read_report(paths)
    if report is None:
        raise PublishRefused("the marts have not been validated; run `retention validate`")
    if report.build_id != build_id:
        raise PublishRefused(
            "the latest validation is older than the latest build "
            f"(validated {report.build_id}, built {build_id}); run `retention validate`"
        )
    if not report.success:
        raise PublishRefused(
            f"the latest validation did not pass ({len(report.failures)} failed, "
            f"{len(report.errors)} errors); serving/ keeps the previous copy. "
            f"See {report.data_docs}"
        )
    return report


def _read_only(path: Path) -> None:
    for item in path.rglob("*"):
        if item.is_file():
            item.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    path.chmod(
        stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
    )


def _releases_folder(folder: Path) -> None:
    """Create ``serving_releases/`` readable by everyone, as each release in it is
    (``_read_only``), whatever the publishing command's umask: under a service's 077 it was
    0700, and a BI tool's account could not open the files made readable for it. An existing
    folder keeps the mode it has (an owner may have narrowed it to a group on purpose)."""
    if folder.is_dir():
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        folder.mkdir()
    except FileExistsError:  # another publish made it meanwhile
        return
    folder.chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)


def _remove(path: Path) -> None:
    """Delete a (read-only) release folder."""
    if not path.exists():
        return
    path.chmod(stat.S_IRWXU)
    for item in path.rglob("*"):
        item.chmod(stat.S_IRWXU)
    shutil.rmtree(path)


def _replaced_recently(releases: list[Path], now: datetime) -> set[Path]:
    """The releases replaced less than REPLACED_RELEASE_GRACE ago: each release's manifest
    names the one it replaced, and when (its ``published_at``)."""
    recent = set()
    for release in releases:
        try:
            manifest = json.loads((release / "_manifest.json").read_text())
            replaced, published = manifest.get("replaces"), manifest.get("published_at")
            if replaced and now - datetime.fromisoformat(published) < REPLACED_RELEASE_GRACE:
                recent.add(release.parent / replaced)
        except (OSError, ValueError, TypeError, AttributeError):
            continue  # no manifest (a publish that died) or not ours: replaced nothing we know
    return recent


def _prune(live: Path, previous: Path | None) -> None:
    """Keep KEEP_RELEASES releases: ``live`` (serving/ points at it now), ``previous`` (it did a
    moment ago: a reader may still have it open) and the newest others by name, and beyond them
    every release replaced less than REPLACED_RELEASE_GRACE ago; drop the rest and the releases
    a publish left without a manifest. By name alone, after the clock stepped back, the two
    would be older than the releases written before. Anything else in the folder is not ours
    and stays."""
    everything = [p for p in live.parent.iterdir() if RELEASE_NAME.fullmatch(p.name)]
    kept = {live, previous} | _replaced_recently(everything, datetime.now(UTC))
    releases = [
        p
        for p in live.parent.iterdir()
        if p not in kept and RELEASE_NAME.fullmatch(p.name) and p.is_dir() and not p.is_symlink()
    ]
    complete = sorted(p for p in releases if (p / "_manifest.json").exists())
    others = max(KEEP_RELEASES - len({live, previous} - {None}), 0)
    for old in complete[: max(len(complete) - others, 0)]:
        _remove(old)
    for broken in (p for p in releases if not (p / "_manifest.json").exists()):
        _remove(broken)


def _swap_link(link: Path, target: Path) -> None:
    """Point ``link`` at ``target`` atomically (rename of a fresh symlink over the old one)."""
    if link.exists() and not link.is_symlink():
        raise PublishRefused(
            f"{link} is a real folder, not the serving symlink; move it away and publish again"
        )
    temporary = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    if temporary.is_symlink():
        temporary.unlink()
    temporary.symlink_to(os.path.relpath(target, link.parent), target_is_directory=True)
    os.replace(temporary, link)


@dataclass
class StagedRelease:
    """A release written but not yet visible: no ``_manifest.json``, not linked as serving/."""

    path: Path
    build_id: str
    tables: dict[str, dict]
    seconds: float
    #: the currency of every amount (var reporting_currency of the build); None for a
    #: warehouse built before the build recorded it
    reporting_currency: str | None = None
    #: var churn_inactivity_days of the build (the report's definitions and warm-up months)
    churn_inactivity_days: int | None = None


def stage_release(
    paths: Paths,
    progress: Callable[[str], None] | None = None,
    cancel: StageCancel | None = None,
) -> StagedRelease:
    """Write every mart of the latest successful build into a new release folder.

    Nothing reads the release until ``activate`` has checked the validation and swapped it in,
    so it may be written while the same build is being validated (``retention run`` does);
    ``cancel`` stops it from another thread when that validation fails or the command stops.
    """
    say = progress or log.info
    cancel = cancel or StageCancel()
    started = time.perf_counter()
    con = connect(paths, read_only=True)
    cancel.watch(con)
    try:
        # the marts' rows in any order (a mart that needs one sorts in its own SQL): DuckDB then
        # writes each file from both threads without holding rows back to keep them in order,
        # a third to half of the memory (1.0 GiB -> 0.35-0.5 GiB for the two largest marts at
        # 1 M customers) and a little faster
        con.execute("set preserve_insertion_order = false")
        manifest = dbt_manifest(paths)
        build_id = _successful_build(con, manifest)
        pii = pii_columns(manifest)
        currency = _build_setting(con, "reporting_currency")
        churn_days = _build_setting(con, "churn_inactivity_days")
        models = mart_models(manifest)
        descriptions = mart_descriptions(manifest)
        tables_in_marts = [
            name
            for (name,) in con.execute(
                "select table_name from information_schema.tables "
                "where table_schema = 'marts' order by table_name"
            ).fetchall()
        ]
        marts = [name for name in tables_in_marts if name in models]
        for name in tables_in_marts:
            if name not in models:
                say(
                    f"  left out marts.{name}: no model of the project builds it (the table of "
                    "a renamed or removed model, or one made by hand), so nothing validated it; "
                    f"drop it (`drop table marts.{name}`) if it is not needed"
                )
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        # Written in place: nobody reads a release before the serving link points at it, and a
        # release without _manifest.json (a publish that died) is removed by the next publish.
        release = paths.data_dir / "serving_releases" / f"{stamp}-{build_id[:8]}"
        _releases_folder(release.parent)
        release.mkdir()
        tables: dict[str, dict] = {}
        try:
            for name in marts:
                cancel.check()
                columns = [
                    c
                    for (c,) in con.execute(
                        "select column_name from information_schema.columns "
                        "where table_schema = 'marts' and table_name = ? order by ordinal_position",
                        [name],
                    ).fetchall()
                ]
                hidden = pii.get(name, set()) | ALWAYS_PII
                kept = [c for c in columns if c not in hidden]
                select = ", ".join(f'"{c}"' for c in kept)
                target = release / f"{name}.parquet"
                # zstd level 1 instead of DuckDB's default 3: the release of 1 M customers was
                # as large (369 MB) and took 11.4 instead of 13.6 CPU seconds to write
                con.execute(
                    f"copy (select {select} from marts.{name}) to {sql_string(target)} "
                    "(format parquet, compression zstd, compression_level 1)"
                )
                rows = con.execute(f"select count(*) from marts.{name}").fetchone()[0]
                tables[name] = {
                    "rows": rows,
                    "columns": kept,
                    "dropped_pii": sorted(set(columns) & hidden),
                }
                say(f"  {name}: {rows:,} rows")
            views = duckdb.connect(str(release / "serving.duckdb"), config=SERVING_FILE_CONFIG)
            try:
                for name in marts:
                    parquet = sql_string((release / f"{name}.parquet").as_posix())
                    views.execute(f"create view {name} as select * from read_parquet({parquet})")
                    _describe_view(views, name, tables[name]["columns"], descriptions.get(name))
            finally:
                views.close()
            cancel.check()
        except BaseException:
            _remove(release)
            raise
    finally:
        cancel.watch(None)
        con.close()
    return StagedRelease(
        release,
        build_id,
        tables,
        round(time.perf_counter() - started, 2),
        currency,
        churn_days,
    )


def discard(staged: StagedRelease) -> None:
    """Remove a staged release that will not be published (its validation failed)."""
    _remove(staged.path)


def activate(paths: Paths, staged: StagedRelease) -> PublishSummary:
    """Publish a staged release: refuse unless its build is still the latest successful one and
    that build's validation passed, then swap serving/ to it and drop old releases."""
    started = time.perf_counter()
    try:
        con = connect(paths, read_only=True)
        try:
            build_id = _successful_build(con, dbt_manifest(paths))
        finally:
            con.close()
        if build_id != staged.build_id:
            raise PublishRefused(
                f"the release was written from build {staged.build_id}, but the latest build is "
                f"{build_id}; run `retention publish`"
            )
        report = _check_validated(paths, build_id)
        replaces = paths.serving.resolve() if paths.serving.is_symlink() else None
        manifest = {
            "build_id": build_id,
            "as_of_date": report.as_of_date,
            "reporting_currency": staged.reporting_currency,
            "churn_inactivity_days": staged.churn_inactivity_days,
            "published_at": datetime.now(UTC).isoformat(timespec="seconds"),
            # the release this one replaces, kept for REPLACED_RELEASE_GRACE (_prune)
            "replaces": replaces.name if replaces else None,
            "tables": staged.tables,
        }
        (staged.path / "_manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        _read_only(staged.path)
    except BaseException:
        discard(staged)
        raise
    _swap_link(paths.serving, staged.path)
    _prune(staged.path, replaces)
    seconds = staged.seconds + time.perf_counter() - started
    return PublishSummary(
        staged.path, {k: v["rows"] for k, v in staged.tables.items()}, round(seconds, 2)
    )


def publish(paths: Paths, progress: Callable[[str], None] | None = None) -> PublishSummary:
    """Publish the validated marts as a new serving release and swap it in."""
    con = connect(paths, read_only=True)
    try:
        # refuse before writing anything when the build or its validation does not allow it
        _check_validated(paths, _successful_build(con, dbt_manifest(paths)))
    finally:
        con.close()
    return activate(paths, stage_release(paths, progress))
