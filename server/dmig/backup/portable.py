"""dmig's own backup format: per table, one gzip-compressed JSON Lines stream, in key order.

Line 1 is a header (table, columns with native type and diff category); then one JSON array per
row; the last line is a trailer with the row count, so a truncated stream is caught even when
the cut falls on a gzip member boundary. Values are JSON where JSON is exact (null, booleans,
integers, finite floats via their shortest round-trip text, strings) and a one-key object
otherwise, so NULL, '' and every typed value round-trip exactly across the three dialects:

    {"d": "10.50"}        decimal, as the database printed it (scale kept)
    {"f": "NaN"}          non-finite float
    {"ts": "2024-01-02T03:04:05.123456+00:00"}  timestamp (offset only if the value had one)
    {"dt": "2024-01-02"}  date          {"t": "03:04:05.123456"}  time of day
    {"td": "-838:59:59.000000"}  duration (MySQL TIME, PostgreSQL interval read natively)
    {"b": "<base64>"}     bytes

PostgreSQL types without an exact Python form (json, jsonb, uuid, inet, arrays, ranges, money,
interval...) are read as the server's own text and written back as text, which PostgreSQL
casts into the column type: the same route COPY takes. Memory stays bounded: rows are streamed
from a server-side cursor into the file and loaded back in fixed-size batches.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
import math
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

import sqlalchemy as sa

from dmig.backup.crypto import DecryptingReader, EncryptingWriter
from dmig.backup.store import open_private
from dmig.diff.normalize import category_of
from dmig.errors import CorruptFile

FORMAT = "portable-jsonl-gzip"
FORMAT_VERSION = 1
READ_BATCH = 5_000
WRITE_BATCH = 1_000
_NATIVE_PG = ("int", "bool", "decimal", "float", "timestamp", "date", "time", "binary")

ProgressFn = Callable[[int], None]


# --- values -----------------------------------------------------------------------------------


def _td_text(v: dt.timedelta) -> str:
    micros = v.days * 86_400_000_000 + v.seconds * 1_000_000 + v.microseconds
    sign = "-" if micros < 0 else ""
    hours, rest = divmod(abs(micros), 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    seconds, micro = divmod(rest, 1_000_000)
    return f"{sign}{hours:02d}:{minutes:02d}:{seconds:02d}.{micro:06d}"


def _td_parse(text: str) -> dt.timedelta:
    sign = -1 if text.startswith("-") else 1
    h, m, s = text.lstrip("-").split(":")
    sec, _, frac = s.partition(".")
    micro = int((frac + "000000")[:6])
    return sign * dt.timedelta(hours=int(h), minutes=int(m), seconds=int(sec), microseconds=micro)


def encode(v: Any) -> Any:
    """One value as JSON (see the module docstring for the tags)."""
    if v is None or isinstance(v, bool | int | str):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else {"f": "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")}
    if isinstance(v, Decimal):
        return {"d": str(v)}
    if isinstance(v, dt.datetime):
        return {"ts": v.isoformat()}
    if isinstance(v, dt.date):
        return {"dt": v.isoformat()}
    if isinstance(v, dt.time):
        return {"t": v.isoformat()}
    if isinstance(v, dt.timedelta):
        return {"td": _td_text(v)}
    if isinstance(v, bytes | bytearray | memoryview):
        return {"b": base64.b64encode(bytes(v)).decode("ascii")}
    return str(v)  # UUID, IP addresses and the like: their text form is what the column accepts


_DECODERS: dict[str, Callable[[str], Any]] = {
    "d": Decimal,
    "f": float,
    "ts": dt.datetime.fromisoformat,
    "dt": dt.date.fromisoformat,
    "t": dt.time.fromisoformat,
    "td": _td_parse,
    "b": lambda s: base64.b64decode(s, validate=True),
}


def decode(v: Any) -> Any:
    if isinstance(v, dict):
        ((tag, text),) = v.items()
        return _DECODERS[tag](text)
    return v


def for_sqlite(v: Any) -> Any:
    """sqlite3 binds only int, float, str, bytes and None: typed values go in as their canonical text."""
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, dt.datetime):
        return v.isoformat(sep=" ")
    if isinstance(v, dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, dt.timedelta):
        return _td_text(v)
    return v


# --- reading a table --------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: str
    category: str


def columns_of(conn: sa.Connection, table: str, schema: str | None) -> tuple[list[ColumnSpec], list[str]]:
    """Stored (non-generated) columns and the primary key, as reflected now."""
    insp = sa.inspect(conn)
    cols = []
    for c in insp.get_columns(table, schema=schema):
        if c.get("computed"):
            continue  # generated columns are recomputed by the database on restore
        try:
            type_text = str(c["type"].compile(dialect=conn.dialect))
        except Exception:  # a reflected type the compiler cannot print: its class name is enough here
            type_text = type(c["type"]).__name__
        cols.append(ColumnSpec(c["name"], type_text, category_of(c["type"])))
    pk = list(insp.get_pk_constraint(table, schema=schema).get("constrained_columns") or [])
    return cols, pk


def _select_expr(conn: sa.Connection, col: ColumnSpec, reflected: Any) -> sa.ColumnElement[Any]:
    c = sa.column(col.name)
    if conn.dialect.name == "postgresql" and col.category not in _NATIVE_PG and not isinstance(reflected, sa.String):
        return sa.cast(c, sa.Text).label(col.name)
    return c


def select_rows(conn: sa.Connection, table: str, schema: str | None, cols: list[ColumnSpec], pk: list[str]) -> Any:
    types = {c["name"]: c["type"] for c in sa.inspect(conn).get_columns(table, schema=schema)}
    tab = sa.table(table, *[sa.column(c.name) for c in cols], schema=schema)
    stmt = sa.select(*[_select_expr(conn, c, types[c.name]) for c in cols]).select_from(tab)
    if pk:
        stmt = stmt.order_by(*[sa.column(k) for k in pk])
    return stmt


@dataclass
class WriteResult:
    rows: int
    bytes_raw: int


def write_table(
    conn: sa.Connection,
    table: str,
    schema: str | None,
    path: Path,
    key: bytes | None,
    progress: ProgressFn | None = None,
) -> WriteResult:
    """Stream ``table`` in key order into ``path`` (0600, gzip, optionally encrypted)."""
    cols, pk = columns_of(conn, table, schema)
    header = {
        "dmig_portable": FORMAT_VERSION,
        "table": table,
        "dialect": conn.dialect.name,
        "columns": [{"name": c.name, "type": c.type, "category": c.category} for c in cols],
        "order": pk,
    }
    rows = 0
    raw = 0
    with open_private(path) as fh:
        sink: BinaryIO = EncryptingWriter(fh, key) if key else fh  # type: ignore[assignment]
        with gzip.GzipFile(fileobj=sink, mode="wb", mtime=0, compresslevel=6) as gz:
            raw += _line(gz, header)
            result = conn.execution_options(stream_results=True, yield_per=READ_BATCH).execute(
                select_rows(conn, table, schema, cols, pk)
            )
            try:
                for part in result.partitions(READ_BATCH):
                    lines = [
                        json.dumps([encode(v) for v in r], ensure_ascii=False, separators=(",", ":")) for r in part
                    ]
                    data = ("\n".join(lines) + "\n").encode("utf-8")
                    gz.write(data)
                    raw += len(data)
                    rows += len(lines)
                    if progress:
                        progress(rows)
            finally:
                result.close()
            raw += _line(gz, {"dmig_end": True, "rows": rows})
        if key:
            sink.close()
    return WriteResult(rows=rows, bytes_raw=raw)


def _line(gz: Any, obj: Any) -> int:
    data = (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
    gz.write(data)
    return len(data)


# --- reading a file back ----------------------------------------------------------------------


class TableStream:
    """The rows of one backup file, validated as they are read; every defect names the table."""

    def __init__(self, path: Path, key: bytes | None, table: str) -> None:
        self.path = path
        self.key = key
        self.table = table
        self.header: dict[str, Any] = {}

    def _corrupt(self, why: str) -> CorruptFile:
        return CorruptFile(
            f"backup data of table {self.table} is corrupt: {why}", table=self.table, file=self.path.name
        )

    def batches(self, size: int = WRITE_BATCH) -> Iterator[list[list[Any]]]:
        try:
            yield from self._batches(size)
        except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise self._corrupt(f"{type(exc).__name__}: {exc}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise self._corrupt(f"unreadable line ({exc})") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise self._corrupt(f"bad value ({type(exc).__name__}: {str(exc)[:100]})") from None

    def _batches(self, size: int) -> Iterator[list[list[Any]]]:
        with open(self.path, "rb") as fh:
            source: BinaryIO = DecryptingReader(fh, self.key, self.table) if self.key else fh  # type: ignore[assignment]
            with gzip.GzipFile(fileobj=source, mode="rb") as gz:
                first = gz.readline()
                if not first:
                    raise self._corrupt("empty file")
                self.header = json.loads(first)
                if self.header.get("dmig_portable") != FORMAT_VERSION or self.header.get("table") != self.table:
                    raise self._corrupt("not this table's portable backup file")
                width = len(self.header["columns"])
                batch: list[list[Any]] = []
                count = 0
                trailer = None
                for line in gz:
                    if trailer is not None:
                        raise self._corrupt("data after the end marker")
                    item = json.loads(line)
                    if isinstance(item, dict):
                        trailer = item
                        continue
                    if not isinstance(item, list) or len(item) != width:
                        raise self._corrupt(f"row {count + 1} has the wrong shape")
                    batch.append([decode(v) for v in item])
                    count += 1
                    if len(batch) >= size:
                        yield batch
                        batch = []
                if trailer is None or not trailer.get("dmig_end"):
                    raise self._corrupt("the file ends before its end marker (truncated)")
                if trailer.get("rows") != count:
                    raise self._corrupt(f"{count} rows read but the end marker says {trailer.get('rows')}")
                if batch:
                    yield batch

    @property
    def column_names(self) -> list[str]:
        return [c["name"] for c in self.header["columns"]]


def load_table(
    conn: sa.Connection, stream: TableStream, table: str, schema: str | None, progress: ProgressFn | None = None
) -> int:
    """Insert every row of ``stream`` into ``table`` in batches (the caller owns the transaction)."""
    if conn.dialect.name == "postgresql":
        return _copy_pg(conn, stream, table, schema, progress)
    rows = 0
    target: sa.TableClause | None = None
    sqlite = conn.dialect.name == "sqlite"
    for batch in stream.batches():
        if target is None:
            target = sa.table(table, *[sa.column(n) for n in stream.column_names], schema=schema)
        names = stream.column_names
        params = [{n: (for_sqlite(v) if sqlite else v) for n, v in zip(names, row, strict=True)} for row in batch]
        conn.execute(sa.insert(target), params)
        rows += len(batch)
        if progress:
            progress(rows)
    return rows


def _copy_pg(
    conn: sa.Connection, stream: TableStream, table: str, schema: str | None, progress: ProgressFn | None
) -> int:
    """PostgreSQL: COPY, each value through its type's input function (as pg_dump's data goes back)."""
    from psycopg import sql

    if not conn.in_transaction():
        conn.begin()  # the COPY runs on the driver connection: SQLAlchemy must know to commit it
    raw = conn.connection.dbapi_connection
    rows = 0
    batches = stream.batches()
    first = next(batches, None)
    if first is None:
        return 0
    name = sql.Identifier(schema, table) if schema else sql.Identifier(table)
    stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(
        name, sql.SQL(", ").join(sql.Identifier(c) for c in stream.column_names)
    )
    with raw.cursor() as cur, cur.copy(stmt) as copy:  # type: ignore[attr-defined]
        for batch in _chain(first, batches):
            for row in batch:
                copy.write_row(row)
            rows += len(batch)
            if progress:
                progress(rows)
    return rows


def _chain(first: list[list[Any]], rest: Iterator[list[list[Any]]]) -> Iterator[list[list[Any]]]:
    yield first
    yield from rest
