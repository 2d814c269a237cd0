"""Load landing files into the append-only ``raw`` schema of the warehouse.

Every landed row is kept as text, with its lineage: ``_source_file`` (path under the landing
folder), ``_source_row`` (1-based record number after the header) and ``_loaded_at``. Columns
outside the contract are kept too, as JSON in ``_extra``. Typing and rejection happen later, in
dbt staging.

A file is either loaded whole or not at all: it is read completely before anything from it is
written, and it is written in the same transaction as its entry in ``raw._landing_files``. An
entity's files are written together, one insert per about a million rows, because DuckDB writes a
large insert straight into compressed row groups, in parallel. A file whose content (SHA-256) was
already loaded for the same entity is skipped, so loading is idempotent; a changed file (a new
version) is loaded again and its rows become new versions or exact duplicates, which staging
sorts out.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import logging
import os
import time
import urllib.parse
import uuid
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from retention.config import ENTITIES, Paths, duckdb_memory_limit
from retention.errors import UserError, is_environment_error
from retention.sql import sql_string

log = logging.getLogger(__name__)

#: Contract columns per entity (DESIGN §6), in the order of the raw tables.
COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": (
        "customer_id",
        "email",
        "signup_at",
        "country",
        "acquisition_channel",
        "updated_at",
    ),
    "orders": (
        "order_id",
        "customer_id",
        "ordered_at",
        "status",
        "amount",
        "currency",
        "updated_at",
    ),
    "marketing_spend": ("month", "channel", "spend_type", "amount", "currency"),
    "nps_responses": ("response_id", "customer_id", "responded_at", "score"),
}

#: Columns a file must have; the others may be absent (loaded as null).
REQUIRED: dict[str, tuple[str, ...]] = {
    "customers": ("customer_id",),
    "orders": ("order_id", "customer_id", "ordered_at", "status", "amount", "currency"),
    "marketing_spend": ("month", "channel", "spend_type", "amount", "currency"),
    "nps_responses": ("response_id", "customer_id", "responded_at", "score"),
}

LINEAGE = ("_extra", "_source_file", "_source_row", "_loaded_at", "_load_issue")
SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_BOM = b"\xef\xbb\xbf"
#: The longest field the record-by-record CSV reader takes (the largest its C long can hold).
FIELD_SIZE_LIMIT = 2**31 - 1

#: Rows per statement and transaction: the files of an entity are written together until they
#: reach this many rows. DuckDB writes a large insert straight into full, compressed row groups,
#: on all its threads; one insert per file (about 130,000 rows at 1 M customers) left partly filled
#: row groups for the closing checkpoint to merge and compress again, and did not gain from a
#: second thread. At 1 M customers the orders took 24 s per file, 19 s per file in 1 M-row
#: transactions on one thread, and 8 s in 1 M-row inserts on two.
BATCH_ROWS = 1_000_000
#: Files read ahead of the writer. Reading takes about a third of the time writing does, so two
#: keep the writer busy; more only held more memory.
READ_AHEAD = 2
#: While one entity loads for longer than this, a line says how many of its rows are written.
PROGRESS_SECONDS = 10.0
#: Files named one by one when their content was loaded before under another name (a copy left
#: beside the original, say); the rest are counted. Named at every load while they stay.
COPIES_SHOWN = 5


class LoadError(UserError):
    """A landing file that cannot be loaded; nothing from it was written."""

    def __init__(self, path: Path | str, problem: str, hint: str = "") -> None:
        # printed as the terminal and the log can take them (the name is the OS's bytes)
        self.path = printable(str(path))
        self.problem = printable(problem)  # it may quote the file's header
        message = f"{self.path}: {self.problem}"
        if hint:
            message += f"\n  what to do: {hint}"
        super().__init__(message)


class LoadErrors(UserError):
    """One or more landing files could not be loaded (the others were)."""

    def __init__(self, errors: list[LoadError]) -> None:
        self.errors = errors
        lines = [
            f"{len(errors)} landing file(s) could not be loaded; nothing from them was written:"
        ]
        lines += [f"- {e}" for e in errors]
        super().__init__("\n".join(lines))


@dataclass
class FileResult:
    entity: str
    source_file: str
    rows: int
    status: str  # loaded | skipped
    note: str = ""


@dataclass
class LoadSummary:
    files: list[FileResult] = field(default_factory=list)

    @property
    def loaded(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "loaded"]

    @property
    def skipped(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "skipped"]

    def rows(self, entity: str | None = None) -> int:
        return sum(f.rows for f in self.loaded if entity in (None, f.entity))


@dataclass
class FileRows:
    """A landing file read: its columns as text, under their normalised names, and from the
    record-by-record reader each record's ``_load_issue`` and, for a malformed record, all its
    fields (a JSON list). Kept apart from the file's columns, which may have any name."""

    table: pa.Table
    load_issue: pa.Array | None = None
    raw_fields: pa.Array | None = None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _landing_digest(path: Path) -> str:
    """What identifies a landing file's content: its SHA-256, and the values of the Hive-style
    partition folders above it (``_partitions``), which are its rows' too: the same budget file
    under ``month=2024-01/`` and ``month=2024-02/`` is two months, not a copy."""
    digest = _sha256(path)
    partitions = _partitions(path)
    if not partitions:
        return digest
    named = json.dumps(sorted(partitions.items()), ensure_ascii=False)
    return hashlib.sha256(f"{digest}\0{named}".encode()).hexdigest()


def _normalise(name: str) -> str:
    return name.strip().lstrip("\ufeff").strip().lower()


def _check_header(
    path: Path, entity: str, names: list[str], partitions: Collection[str] = ()
) -> list[str]:
    """The header's names, normalised; a ``LoadError`` for a header no file of ``entity`` may
    have. ``partitions``: columns the file's folders give (``_partitions``)."""
    normalised = [_normalise(n) for n in names]
    if not any(normalised):
        raise LoadError(path, "the header row is empty", "the first line must name the columns")
    # a column without a name (a header ending in a comma, as spreadsheets export it) is named
    # by its position, and kept in _extra like any column outside the contract
    normalised = [n or f"column_{i}" for i, n in enumerate(normalised, start=1)]
    seen: set[str] = set()
    dupes = sorted({n for n in normalised if n in seen or seen.add(n)})  # type: ignore[func-returns-value]
    if dupes:
        raise LoadError(path, f"duplicate column name(s) in the header: {', '.join(dupes)}")
    present = {*normalised, *partitions}
    for other, required in REQUIRED.items():
        # a file of another entity in this folder (said before what it lacks as this one's):
        # an orders file has the one column a customers file needs, and would land as
        # customers with blank emails and channels
        if other != entity and present.issuperset(required):
            foreign = [c for c in required if c not in COLUMNS[entity]]
            if foreign:
                raise LoadError(
                    path,
                    f"this looks like {_a(other)} file, not {_a(entity)} file: it has every "
                    "column "
                    f"{_a(other)} file needs, among them {', '.join(foreign)}",
                    f"move it to landing/{other}/",
                )
    missing = [c for c in REQUIRED[entity] if c not in normalised and c not in partitions]
    if missing:
        hint = f"{_a(entity)} file needs the columns {', '.join(REQUIRED[entity])}"
        separator = len(names) == 1 and next((s for s in ";\t|" if s in names[0]), None)
        if separator:
            hint += f", separated by commas (this header is separated by {separator!r})"
        raise LoadError(
            path,
            f"missing required column(s) {', '.join(missing)} for {entity}; "
            f"found: {', '.join(normalised)}",
            hint,
        )
    return normalised


def _a(entity: str) -> str:
    """The entity with its article: "an orders", "a customers"."""
    return ("an " if entity[0] in "aeiou" else "a ") + entity


#: a record after every CSV file's own: it comes back as a record of its own only if every quote
#: of the file was closed before it
_SENTINEL = "\x00end of landing file\x00"


def _read_csv(path: Path, entity: str, partitions: Collection[str] = ()) -> FileRows:
    with path.open("rb") as handle:
        head = handle.read(1 << 16)
        if not head.strip(_BOM + b" \r\n\t"):
            raise LoadError(
                path, "the file is empty (no header row)", "remove the file or re-export it"
            )
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise LoadError(
                path,
                'this is UTF-16 text (a spreadsheet\'s "Unicode text"), not UTF-8',
                "save or export it as CSV UTF-8",
            )
        if b"\x00" in head:
            raise LoadError(path, "this is not a CSV text file (it contains NUL bytes)")
        # the whole first line, however long (a header of thousands of columns)
        handle.seek(0)
        text = io.TextIOWrapper(handle, encoding="utf-8", errors="surrogateescape", newline="")
        first = text.readline().lstrip("\ufeff")
        text.detach()
    if _has_undecodable(first):
        # column names in another encoding would only be reported as unknown or duplicates
        raise LoadError(
            path,
            "the header row is not UTF-8 text (Latin-1 or Windows-1252, say)",
            "save or export the file as CSV UTF-8",
        )
    try:
        header = next(csv.reader([first]), [])
    except csv.Error as exc:
        raise LoadError(path, f"cannot read the header row: {exc}") from exc
    names = _check_header(path, entity, header, partitions)
    # the sentinel record after the file's own: PyArrow ends a quote left open at the end of
    # the file without a word, and when it opened in the last column the record that swallowed
    # the rest of the file even has the right number of fields
    sentinel = ",".join([_SENTINEL] * len(names)).encode()
    try:
        with path.open("rb") as handle:
            table = pacsv.read_csv(
                io.BufferedReader(_Followed(handle, b"\n" + sentinel + b"\n"), 1 << 20),
                read_options=pacsv.ReadOptions(column_names=names, skip_rows=1),
                parse_options=pacsv.ParseOptions(newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(
                    column_types={n: pa.string() for n in names},
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError):
        # a row with the wrong number of fields, or bytes that are not UTF-8: read the file
        # record by record and keep such rows, marked, for staging to quarantine
        return _read_csv_by_record(path, names)
    last = table.num_rows - 1
    if last < 0 or any(column[last].as_py() != _SENTINEL for column in table.columns):
        # the sentinel was swallowed: the record reader names the record whose quote is open
        return _read_csv_by_record(path, names)
    return FileRows(table.slice(0, last))


class _Followed(io.RawIOBase):
    """A binary file followed by more bytes, read as one stream."""

    def __init__(self, handle: io.BufferedReader, tail: bytes) -> None:
        self._handle, self._tail = handle, tail

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        count = self._handle.readinto(buffer)
        if count:
            return count
        count = min(len(buffer), len(self._tail))
        buffer[:count] = self._tail[:count]
        self._tail = self._tail[count:]
        return count


def _read_csv_by_record(path: Path, names: list[str]) -> FileRows:
    """The slow, forgiving reader. Every record is kept: one with the wrong number of fields
    gets ``_load_issue = 'malformed_row'`` (its fields are kept in ``_extra``), one with bytes
    that are not UTF-8 gets ``'invalid_encoding'`` (the bytes are replaced by U+FFFD). Only a
    file the CSV grammar cannot read at all (an unterminated quote) is rejected."""
    data = path.read_bytes()
    data = data.removeprefix(_BOM)
    text = data.decode("utf-8", errors="surrogateescape")
    # no limit on a field's length (Python's csv stops at 131,072 characters; the fast reader
    # has none, and a file must not be rejected only because one of its rows is short)
    csv.field_size_limit(FIELD_SIZE_LIMIT)
    records = _csv_records(path, text)
    columns: dict[str, list[str | None]] = {n: [] for n in names}
    issues: list[str | None] = []
    raw_fields: list[str | None] = []
    for fields in records[1:]:
        if not fields:
            continue  # blank line, as the fast reader skips them
        encoded = any(_has_undecodable(f) for f in fields)
        clean = [_replace_undecodable(f) for f in fields]
        if len(clean) != len(names):
            issues.append("malformed_row")
            raw_fields.append(json.dumps(clean, ensure_ascii=False))
        else:
            issues.append("invalid_encoding" if encoded else None)
            raw_fields.append(None)
        for i, name in enumerate(names):
            columns[name].append(clean[i] if i < len(clean) else None)
    return FileRows(
        pa.table({n: pa.array(v, pa.string()) for n, v in columns.items()}),
        load_issue=pa.array(issues, pa.string()),
        raw_fields=pa.array(raw_fields, pa.string()),
    )


def _csv_records(path: Path, text: str) -> list[list[str]]:
    """The records of a CSV text, read as the fast reader reads them (``"face"book`` is
    ``facebook``), but an unterminated quote rejects the file.

    Python's non-strict reader ends a quoted field left open at the end of the text without a
    word; a sentinel record after the text tells the two apart: it comes back as a record of
    its own only if every quote was closed before it.
    """
    if _SENTINEL in text:
        raise LoadError(path, "this is not a CSV text file (it contains NUL characters)")
    reader = csv.reader(io.StringIO(f"{text}\n{_SENTINEL}\n", newline=""), strict=False)
    records: list[list[str]] = []
    start = end = 0  # the lines the last record read starts and ends on
    try:
        for record in reader:
            start, end = end + 1, reader.line_num
            records.append(record)
    except csv.Error as exc:
        raise LoadError(
            path,
            f"not a well-formed CSV file: {exc} (near line {reader.line_num})",
            "fix or re-export the file; nothing from it was loaded",
        ) from exc
    if not records or records[-1] != [_SENTINEL]:
        raise LoadError(
            path,
            f"not a well-formed CSV file: a quote in the record from line {start} on is "
            "never closed, so the rest of the file would be one field",
            "fix or re-export the file; nothing from it was loaded",
        )
    return records[:-1]


def _has_undecodable(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def _replace_undecodable(text: str) -> str:
    if not _has_undecodable(text):
        return text
    return text.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")


def _read_parquet(path: Path, entity: str, partitions: Collection[str] = ()) -> FileRows:
    try:
        # the names first: PyArrow's own error for a repeated name lists its internal fields
        names = _check_header(path, entity, pq.read_schema(path).names, partitions)
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise LoadError(
            path,
            f"not a readable Parquet file: {exc}",
            "re-export the file; if it was being copied, wait until the copy is complete",
        ) from exc
    columns = []
    undecodable = np.zeros(table.num_rows, dtype=bool)
    for name, column in zip(names, table.columns, strict=True):
        if pa.types.is_nested(column.type):
            if name in COLUMNS[entity]:
                raise LoadError(
                    path,
                    f"contract column {name} has a nested type ({column.type})",
                    f"write {name} as text, a number, a date or a timestamp",
                )
            # outside the contract it lands in _extra like any column: as its JSON text
            columns.append(_json_text(column))
            continue
        if isinstance(column.type, pa.BaseExtensionType):
            is_uuid = column.type.extension_name == "arrow.uuid"
            column = pa.chunked_array(
                [chunk.storage for chunk in column.chunks], column.type.storage_type
            )
            if is_uuid:
                columns.append(_uuid_text(column))
                continue
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        if _is_bytes(column.type) and name not in COLUMNS[entity]:
            # binary data outside the contract (a checksum, a key): hex digits in _extra, no
            # reason to quarantine the row
            columns.append(_hex_text(column))
            continue
        if _is_text(column.type) and not _valid_text(column):
            # a writer that put bytes that are not UTF-8 in a text column: read them as bytes
            as_bytes = pa.large_binary() if pa.types.is_large_string(column.type) else pa.binary()
            column = pa.chunked_array([chunk.view(as_bytes) for chunk in column.chunks], as_bytes)
        if _is_bytes(column.type):
            # bytes, not text: those that are not UTF-8 are replaced and their rows marked, as
            # the CSV reader does
            values = column.to_pylist()
            bad = [v is not None and not _is_utf8(v) for v in values]
            undecodable |= np.array(bad, dtype=bool)
            text = [None if v is None else v.decode("utf-8", errors="replace") for v in values]
            columns.append(pa.array(text, pa.string()))
            continue
        try:
            text = pc.cast(column, pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise LoadError(
                path,
                f"column {name} of type {column.type} cannot be read as text ({exc})",
                "write the column as text, a number, a date or a timestamp",
            ) from exc
        if pa.types.is_floating(column.type) or pa.types.is_decimal(column.type):
            text = _positional(column, text)
        columns.append(text)
    issues = None
    if undecodable.any():
        issues = pa.array(np.where(undecodable, "invalid_encoding", None), pa.string())
    return FileRows(pa.table(columns, names=names), load_issue=issues)


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _is_bytes(kind: pa.DataType) -> bool:
    return (
        pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
        or pa.types.is_fixed_size_binary(kind)
    )


def _valid_text(column: pa.ChunkedArray) -> bool:
    """Whether a text column holds UTF-8 only (Parquet does not check what a writer put in)."""
    try:
        for chunk in column.chunks:
            chunk.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _json_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A nested column's values (structs, lists, maps) as JSON text."""
    with duckdb.connect() as con:
        con.register("nested", pa.table({"c": column}))
        return con.sql("select to_json(c)::varchar from nested").to_arrow_table()[0]


def _uuid_text(storage: pa.ChunkedArray) -> pa.Array:
    """A UUID column's 16 bytes a value as the usual text, 8-4-4-4-12 hex digits."""
    values = storage.to_pylist()
    return pa.array([None if v is None else str(uuid.UUID(bytes=v)) for v in values], pa.string())


def _positional(column: pa.ChunkedArray, text: pa.ChunkedArray) -> pa.ChunkedArray:
    """Floating-point and decimal values as Arrow writes them (for a float the shortest text
    that reads back as the same number), but without an exponent: an id of 12345678901 stored
    as a double must land as ``12345678901``, not ``1.2345678901e+10``, or it matches nothing,
    and a free order's amount in Spark's ``decimal(38,18)`` as ``0.000000000000000000``, not
    ``0E-18``, which staging cannot parse."""
    exponent = pc.fill_null(pc.match_substring(text, "e", ignore_case=True), False)
    if not pc.any(exponent).as_py():
        return text
    values = pc.filter(column, exponent).to_pylist()
    if pa.types.is_decimal(column.type):
        positional = [format(value, "f") for value in values]
    else:
        width = {16: np.float16, 32: np.float32}.get(column.type.bit_width, np.float64)
        positional = [np.format_float_positional(width(value), trim="-") for value in values]
    return pa.chunked_array(
        [
            pc.replace_with_mask(
                text.combine_chunks(), exponent.combine_chunks(), pa.array(positional, pa.string())
            )
        ]
    )


def _hex_text(column: pa.ChunkedArray) -> pa.Array:
    """Binary values as lower-case hex digits, two per byte."""
    return pa.array([None if v is None else v.hex() for v in column.to_pylist()], pa.string())


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def read_landing_file(path: Path, entity: str) -> FileRows:
    """Read one landing file into an all-text Arrow table with normalised column names.

    A column the file lacks but a Hive-style folder above it names (``country=DE/``, as
    Spark's ``partitionBy`` writes) gets that folder's value in every row.
    """
    kind = SUFFIXES.get(path.suffix.lower())
    partitions = _partitions(path)
    if kind == "csv":
        read = _read_csv(path, entity, partitions)
    elif kind == "parquet":
        read = _read_parquet(path, entity, partitions)
    else:
        raise LoadError(
            path, f"unsupported file type {path.suffix!r}", "land .csv or .parquet files"
        )
    table = read.table
    for name, value in partitions.items():
        if name not in table.column_names:
            table = table.append_column(name, pa.array([value] * table.num_rows, pa.string()))
    return FileRows(table, read.load_issue, read.raw_fields)


#: Spark's folder for a null partition value
_NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"


def _partitions(path: Path) -> dict[str, str | None]:
    """The columns of the Hive-style folders right above a file (``.../country=DE/x.parquet``),
    names normalised and values unescaped as Spark escapes them."""
    found: dict[str, str | None] = {}
    for folder in path.parents:
        name, equals, value = folder.name.partition("=")
        if not equals or not _normalise(name):
            break
        value = urllib.parse.unquote(value)
        found.setdefault(_normalise(name), None if value == _NULL_PARTITION else value)
    return found


def _ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema if not exists raw")
    con.execute(
        """
        create table if not exists raw._landing_files (
            entity varchar not null,
            source_file varchar not null,
            sha256 varchar not null,
            size_bytes bigint not null,
            row_count bigint not null,
            loaded_at timestamp not null
        )
        """
    )
    for entity, columns in COLUMNS.items():
        cols = ", ".join(f"{c} varchar" for c in columns)
        con.execute(
            f"create table if not exists raw.{entity} ("
            f"{cols}, _extra varchar, _source_file varchar not null, "
            f"_source_row bigint not null, _loaded_at timestamp not null, _load_issue varchar)"
        )
        # warehouses created before _load_issue existed
        con.execute(f"alter table raw.{entity} add column if not exists _load_issue varchar")


def _landed_rows(entity: str, read: FileRows, source_file: str) -> pa.Table:
    """A file's rows in the columns of ``raw.<entity>`` (all but ``_loaded_at``), so that the rows
    of several files can be written by one statement. A contract column the file lacks is null;
    columns outside the contract go, as JSON, to ``_extra``."""
    table = read.table
    extras = [c for c in table.column_names if c not in COLUMNS[entity]]
    rows = table.num_rows
    columns = {
        c: table.column(c) if c in table.column_names else pa.nulls(rows, pa.string())
        for c in COLUMNS[entity]
    }
    if extras or read.raw_fields is not None:
        columns["_extra"] = _extra_json(read, extras)
    else:
        columns["_extra"] = pa.nulls(rows, pa.string())
    columns["_load_issue"] = (
        read.load_issue if read.load_issue is not None else pa.nulls(rows, pa.string())
    )
    columns["_source_file"] = pa.array([source_file], pa.string()).take(np.zeros(rows, np.int32))
    columns["_source_row"] = pa.array(np.arange(1, rows + 1, dtype=np.int64))
    # the same types for every file, whichever reader made it, so that files concatenate
    return pa.table(columns).cast(_landed_schema(entity))


def _landed_schema(entity: str) -> pa.Schema:
    text = [*COLUMNS[entity], "_extra", "_load_issue", "_source_file"]
    return pa.schema([(c, pa.string()) for c in text] + [("_source_row", pa.int64())])


def _extra_json(read: FileRows, extras: list[str]) -> pa.ChunkedArray:
    """``_extra`` of each row: the columns outside the contract as a JSON object, or for a
    malformed record all its fields (``{"_raw_fields": "[...]"}``: the JSON array of the
    fields, as a string)."""
    # the file's columns by position (c1, c2, ...): their names, whatever they are, only appear
    # as the keys, in string literals
    values = {f"c{i}": read.table.column(name) for i, name in enumerate(extras, start=1)}
    extra = "null::varchar"
    if extras:
        keys = [sql_string(name) for name in extras]
        pairs = ", ".join(f"{key}: c{i}" for i, key in enumerate(keys, start=1))
        extra = f"to_json({{{pairs}}})::varchar"
    if read.raw_fields is not None:
        # a malformed record keeps all its fields; its columns cannot be trusted anyway
        values["raw_fields"] = read.raw_fields
        extra = (
            "case when raw_fields is not null then to_json({'_raw_fields': raw_fields})::varchar "
            f"else {extra} end"
        )
    with duckdb.connect() as con:
        con.register("landing_file", pa.table(values))
        return con.sql(f"select {extra} as _extra from landing_file").to_arrow_table()[0]


def _insert(
    con: duckdb.DuckDBPyConnection, entity: str, rows: pa.Table, loaded_at: datetime
) -> None:
    """Append rows made by ``_landed_rows`` (of one or more files) to ``raw.<entity>``."""
    target = ", ".join(rows.column_names)
    # not unregistered when the insert fails: the failure aborts the transaction, and
    # unregistering would then raise in place of the error that says what went wrong (a full
    # disk, say); the caller rolls back, and the next batch registers its own rows
    con.register("landing_batch", rows)
    con.execute(
        f"insert into raw.{entity} ({target}, _loaded_at) "
        f"select {target}, ? as _loaded_at from landing_batch",
        [loaded_at],
    )
    con.unregister("landing_batch")


@dataclass
class _Landed:
    """A file read and ready to write."""

    entity: str
    path: Path
    source_file: str
    digest: str
    rows: pa.Table
    size_bytes: int  # when it was read


def _not_written(paths: Paths, files: list[_Landed], exc: BaseException) -> UserError:
    """The error for a batch the warehouse could not take (a full disk, a file it may not
    write): what was kept and what to do."""
    names = ", ".join(f.source_file for f in files[:3]) + (" ..." if len(files) > 3 else "")
    return UserError(
        f"could not write {paths.warehouse}: {exc}\n"
        f"  nothing of {len(files)} landing file(s) ({names}) was written: the batch was rolled "
        "back; the files loaded before it stay loaded\n"
        f"  what to do: free disk space (or check the permissions) under {paths.data_dir}, "
        "then run the command again (`retention load`, or `retention run`): it loads the files "
        "not loaded yet"
    )


def _write(con: duckdb.DuckDBPyConnection, files: list[_Landed], loaded_at: datetime) -> None:
    """Append the files' rows (of one entity) to ``raw.<entity>`` with one statement, and their
    entries to ``raw._landing_files``."""
    entity = files[0].entity
    _insert(con, entity, pa.concat_tables([f.rows for f in files]), loaded_at)
    con.executemany(
        "insert into raw._landing_files values (?, ?, ?, ?, ?, ?)",
        [
            [entity, f.source_file, f.digest, f.size_bytes, f.rows.num_rows, loaded_at]
            for f in files
        ],
    )


@dataclass(frozen=True)
class _SkipRule:
    """Which landing files a load skips: a content already loaded (``known``: entity and
    SHA-256) unless the same file last held another one. A file loaded, changed and then
    changed back (a correction reverted, an extract sent again under its own name) is loaded
    again: its rows landed last, and for a source without ``updated_at`` the last landed wins.
    A copy of a loaded file under another name is skipped (and named)."""

    known: Collection[tuple[str, str]]
    #: each file's content when it was last loaded, by (entity, source_file)
    last_digest: Mapping[tuple[str, str], str]

    def skips(self, entity: str, source_file: str, digest: str) -> bool:
        if (entity, digest) not in self.known:
            return False
        return self.last_digest.get((entity, source_file), digest) == digest


def _read_new(
    entity: str, path: Path, source_file: str, skipped: _SkipRule
) -> tuple[str, tuple[pa.Table, int] | LoadError | None]:
    """The file's SHA-256 and, unless ``skipped`` skips that content, its rows as
    ``_landed_rows`` makes them (with the size the file had) or the reason it cannot be loaded.

    The digest and the rows come from two reads of the file: a file whose size or modification
    time changed in between (rewritten in place while the load ran) is not loaded this time,
    or its digest would stand for rows it does not hold and the next load would skip it.
    """
    try:
        before = path.stat()
        digest = _landing_digest(path)
        if skipped.skips(entity, source_file, digest):
            return digest, None
        if not _utf8(source_file):
            return digest, LoadError(
                path,
                "the file name is not UTF-8 text, which the warehouse's lineage columns need",
                "rename the file (letters, digits, - and _ are safest)",
            )
        try:
            rows = _landed_rows(entity, read_landing_file(path, entity), source_file)
        except LoadError as exc:
            return digest, exc
        after = path.stat()
    except OSError as exc:
        # one unreadable or vanished file: the others still load
        return "", LoadError(
            path,
            f"the file cannot be read ({exc.strerror or exc})",
            "check that it still exists and that this user may read it, then load again",
        )
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
        return digest, LoadError(
            path,
            "the file changed while it was being read (it was written in place during the load)",
            "land complete files (write under a dot-name, then rename); the next load reads it",
        )
    return digest, (rows, after.st_size)


def _read_ahead(
    files: list[tuple[str, Path, str]], skipped: _SkipRule
) -> Iterator[tuple[str, tuple[pa.Table, int] | LoadError | None]]:
    """``_read_new`` for each file in turn, up to ``READ_AHEAD`` files read ahead in a background
    thread while the caller writes (a file takes about a third of the time to read that DuckDB
    takes to write it)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        ahead: deque = deque()
        for entity, path, source_file in files:
            ahead.append(pool.submit(_read_new, entity, path, source_file, skipped))
            if len(ahead) > READ_AHEAD:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()


def discover(paths: Paths, entities: Iterable[str] = ENTITIES) -> list[tuple[str, Path]]:
    """Landing files per entity, in a stable order (by path)."""
    found = []
    for entity in entities:
        folder = paths.landing_dir(entity)
        if not folder.is_dir():
            continue
        for path in sorted(_walk(folder)):
            if path.is_file() and _is_landing_name(path.relative_to(folder)):
                found.append((entity, path))
    return found


def _walk(folder: Path, unreadable: list[OSError] | None = None) -> Iterator[Path]:
    """Every path under ``folder``, through linked folders too (``Path.rglob`` does not follow
    them before Python 3.13), each real folder once (a link back up is no endless loop).
    A folder that cannot be listed is skipped, and its error added to ``unreadable``."""
    seen: set[str] = set()
    onerror = unreadable.append if unreadable is not None else None
    for root, folders, files in os.walk(folder, followlinks=True, onerror=onerror):
        real = os.path.realpath(root)
        if real in seen:
            folders[:] = []
            continue
        seen.add(real)
        for name in (*folders, *files):
            yield Path(root) / name


def _is_landing_name(relative: Path) -> bool:
    """Whether a path under an entity's folder names a landing file: no part of it starts with
    a dot or an underscore (a file still being written; Spark's and Hadoop's ``_SUCCESS``,
    ``_temporary/`` and ``.crc`` files), and it is no office lock file (``~$orders.csv``)."""
    return not any(part.startswith((".", "_")) for part in relative.parts) and not (
        relative.name.startswith("~$")
    )


def _strays(paths: Paths) -> list[str]:
    """What lies in the landing folder outside the entities' folders, which nothing reads."""
    if not paths.landing.is_dir():
        return []
    return [
        printable(entry.name) + ("/" if entry.is_dir() else "")
        for entry in sorted(paths.landing.iterdir())
        if entry.name not in ENTITIES and not entry.name.startswith(".")
    ]


def _broken_links(paths: Paths, entities: Iterable[str]) -> list[LoadError]:
    """The symbolic links in the entities' folders that lead to no file, and the folders there
    that cannot be listed (their files would be missed without a word)."""
    problems: list[LoadError] = []
    for entity in entities:
        folder = paths.landing_dir(entity)
        if not folder.is_dir():
            continue
        unreadable: list[OSError] = []
        for path in sorted(_walk(folder, unreadable)):
            if (
                path.is_symlink()
                and not path.exists()
                and _is_landing_name(path.relative_to(folder))
            ):
                problems.append(
                    LoadError(
                        path,
                        "a symbolic link to nothing (or to a loop of links): there is no file "
                        "to read",
                        "land the file itself, or fix or remove the link",
                    )
                )
        problems += [
            LoadError(
                str(error.filename),
                f"the folder cannot be read ({error.strerror or error}): its files were not loaded",
                "let this user read it, or move it out of landing/",
            )
            for error in unreadable
            if error.filename is None or _is_landing_name(Path(error.filename).relative_to(folder))
        ]
    return problems


def _utf8(name: str) -> bool:
    """Whether a file name (as the OS gave it) is UTF-8 text."""
    return os.fsencode(name).decode("utf-8", errors="backslashreplace") == name


def printable(text: str) -> str:
    """Text as it can be printed on one line: a file name's bytes that are not UTF-8 as
    ``\\xe9``, control and other unprintable characters as ``\\x1b``, ``\\n``, ``\\u200b`` (a name
    or a header could otherwise clear a terminal or forge a line of the log)."""
    with contextlib.suppress(UnicodeEncodeError):
        text = os.fsencode(text).decode("utf-8", errors="backslashreplace")
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


#: The landing entities a build needs rows of (the others are optional inputs).
REQUIRED_ENTITIES = ("customers", "orders")


def _nothing_loaded(paths: Paths, what: str) -> UserError:
    return UserError(
        f"{what} in {paths.data_dir}.\n"
        f'  what to do: put the landing files in {paths.landing}/<entity>/ (README, "The raw data '
        'contract") and run `retention run`; `retention demo` generates sample data first.'
    )


def connect(paths: Paths, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the build warehouse, turning a lock conflict or a missing warehouse (when reading)
    into a clear message."""
    if read_only and not paths.warehouse.exists():
        raise _nothing_loaded(paths, f"no warehouse yet ({paths.warehouse.name})")
    paths.data_dir.mkdir(parents=True, exist_ok=True)
    # the dbt profile's memory limit for the loads, validation and publishing too, rather than
    # DuckDB's 80 % of the machine
    config = {"memory_limit": duckdb_memory_limit()}
    try:
        return duckdb.connect(str(paths.warehouse), read_only=read_only, config=config)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise UserError(
                f"{paths.warehouse} is in use by another process ({exc}).\n"
                "  what to do: wait for the other run to finish; BI tools must read "
                "serving/serving.duckdb, never the build warehouse."
            ) from exc
        raise


def raw_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The names of the tables in the warehouse's raw schema."""
    return {
        name
        for (name,) in con.execute(
            "select table_name from duckdb_tables() where schema_name = 'raw'"
        ).fetchall()
    }


def require_loaded(paths: Paths) -> None:
    """Raise a ``UserError`` unless customers and orders have been loaded: a build of nothing
    would only fail later, on empty marts, with less to go on."""
    with connect(paths, read_only=True) as con:
        tables = raw_tables(con)
        empty = [
            entity
            for entity in REQUIRED_ENTITIES
            if entity not in tables
            or not con.execute(f"select exists (select 1 from raw.{entity})").fetchone()[0]
        ]
    if empty:
        raise _nothing_loaded(paths, f"no {' and no '.join(empty)} loaded yet")


def load(
    paths: Paths,
    entities: Iterable[str] = ENTITIES,
    progress: Callable[[str], None] | None = None,
) -> LoadSummary:
    """Load every new landing file into ``raw.*``.

    A file is read whole before anything from it is written, so a structurally broken file is not
    loaded at all; the other files still are, and afterwards a ``LoadErrors`` names every broken
    file and its problem. The files that could be read are written whole, an entity's files
    together in statements (and transactions) of about ``BATCH_ROWS`` rows, each file with its
    ``raw._landing_files`` entry; any other error rolls back the open transaction and is raised.
    The next files are hashed and read in a background thread while a batch is written.
    Each entity's line is said as soon as its rows are committed, and an entity still writing
    after ``PROGRESS_SECONDS`` says how many of its rows are written so far.
    """
    say = progress or log.info
    summary = LoadSummary()
    errors: list[LoadError] = []
    files = discover(paths, entities)
    for stray in _strays(paths):
        say(
            f"  ignored landing/{stray}: landing files go in landing/<entity>/ "
            f"({', '.join(ENTITIES)})"
        )
    for broken in _broken_links(paths, entities):
        errors.append(broken)
        say(f"  REJECTED {broken.path}: {broken.problem}")
    con = connect(paths)
    try:
        # the rows' order within a load does not matter (each row has its _source_row), and
        # keeping it would serialise DuckDB's parallel insert
        con.execute("set preserve_insertion_order = false")
        _ensure_tables(con)
        ledger = con.execute(
            "select entity, sha256, source_file from raw._landing_files order by loaded_at"
        ).fetchall()
        # the first file each content was loaded from, and each file's content when last loaded
        known: dict[tuple[str, str], str] = {}
        for e, h, f in ledger:
            known.setdefault((e, h), f)
        last_digest = {(e, f): h for e, h, f in ledger}
        # one load time per run, strictly later than any before it even if the clock stepped
        # back: incremental models take the rows loaded after the latest load time they saw
        (latest,) = con.execute("select max(loaded_at) from raw._landing_files").fetchone()
        loaded_at = datetime.now(UTC).replace(tzinfo=None)
        if latest is not None and loaded_at <= latest:
            loaded_at = latest + timedelta(microseconds=1)
        batch: list[_Landed] = []
        written: dict[str, int] = {}  # rows committed per entity
        last_said = time.monotonic()

        def commit_batch() -> None:
            if not batch:
                return
            entity = batch[0].entity
            con.execute("begin transaction")
            try:
                _write(con, batch, loaded_at)
                con.execute("commit")
            except Exception as exc:
                with suppress(duckdb.Error):  # the error to report is the write's
                    con.execute("rollback")
                if is_environment_error(exc):
                    raise _not_written(paths, batch, exc) from exc
                raise
            written[entity] = written.get(entity, 0) + sum(f.rows.num_rows for f in batch)
            batch.clear()

        def entity_done(entity: str | None) -> None:
            # said as soon as the entity's last batch is committed, not after the whole load
            nonlocal last_said
            new = [f for f in summary.loaded if f.entity == entity]
            if new:
                say(f"  {entity}: {len(new)} new file(s), {summary.rows(entity):,} rows")
                last_said = time.monotonic()

        named = [(e, p, p.relative_to(paths.landing).as_posix()) for e, p in files]
        current: str | None = None  # discover() lists each entity's files together
        said_rows = 0  # of the current entity, in its last progress line
        skipped = _SkipRule(frozenset(known), dict(last_digest))  # as the load started
        live = _SkipRule(known, last_digest)  # with the files this load has taken
        with closing(_read_ahead(named, skipped)) as reads:
            for (entity, path, source_file), (digest, read) in zip(named, reads, strict=True):
                if entity != current:
                    commit_batch()
                    entity_done(current)
                    current, said_rows = entity, 0
                elif (
                    written.get(entity, 0) > said_rows
                    and time.monotonic() - last_said >= PROGRESS_SECONDS
                ):
                    # only while more of the entity's files follow: its last line is its total
                    said_rows = written[entity]
                    say(f"  {entity}: {said_rows:,} rows written so far")
                    last_said = time.monotonic()
                if live.skips(entity, source_file, digest):
                    previous = known[(entity, digest)]
                    note = ""
                    if previous != source_file:
                        earlier = last_digest.get((entity, previous)) != digest
                        version = "an earlier version of " if earlier else ""
                        note = f"same content as {version}{previous}"
                    summary.files.append(FileResult(entity, source_file, 0, "skipped", note))
                    continue
                if isinstance(read, LoadError):
                    errors.append(read)
                    say(f"  REJECTED {printable(source_file)}: {read.problem}")
                    continue
                rows, size_bytes = read
                batch.append(_Landed(entity, path, source_file, digest, rows, size_bytes))
                known.setdefault((entity, digest), source_file)
                last_digest[(entity, source_file)] = digest
                summary.files.append(FileResult(entity, source_file, rows.num_rows, "loaded"))
                log.debug("read %s: %s rows", source_file, rows.num_rows)
                if sum(f.rows.num_rows for f in batch) >= BATCH_ROWS:
                    commit_batch()
        commit_batch()
        entity_done(current)
    finally:
        con.close()
    copies = [f for f in summary.skipped if f.note]
    for copy in copies[:COPIES_SHOWN]:
        say(f"  {printable(copy.source_file)}: {copy.note}, not loaded again")
    if len(copies) > COPIES_SHOWN:
        say(f"  ... and {len(copies) - COPIES_SHOWN} more file(s) with the content of another")
    skipped = len(summary.skipped)
    say(
        f"load: {len(summary.loaded)} new file(s), {summary.rows():,} rows; "
        f"{skipped} file(s) already loaded, skipped"
    )
    if errors:
        raise LoadErrors(errors)
    return summary
