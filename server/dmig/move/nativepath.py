"""SQLite to PostgreSQL with no Python per row: C reads each page and writes it as binary COPY.

The general path costs about 6 us of Python per row (sqlite3 fetch, conversion, psycopg's
``write_row``, the streamed verification hash), which made a SQLite -> PostgreSQL copy CPU-bound
in this process. When a table's columns are all of types the native encoder knows (integers,
text, numeric with a scale, double precision, bytea, date, timestamp, boolean: ``dmig.native``),
each keyset page is read by ``fastcopy.c`` straight from the SQLite file, encoded in PostgreSQL's
binary COPY format, and sent with one ``write``; Python makes a few calls per page. Binary input
also spares the server the text parsing of numerics and timestamps (about a third of its COPY
time on the benchmark tables).

Each value is encoded exactly as PostgreSQL stores it and sends it back (a numeric in its
normalised base-10000 form with the column's scale, a timestamp as microseconds), and the encoder
sums a 64-bit hash of every row. Verification therefore reads the target back as binary COPY
(``passthrough.binary_sum``) and must find the same (rows, sum) ("echo" sums): every row arrived,
once, and holds what was encoded from the source. A value the encoder cannot encode with certainty
(text in an integer column, an unusual timestamp spelling, an integer too wide for its column, a
number that does not fit the scale exactly) stops the page; the page is redone through the general
path, which converts, bisects and rejects as usual, and the partition's sums become "mixed", so
verification uses the checksum diff instead. A page the target refuses is redone the same way.

The transaction protocol is the general path's: checkpoint advance (row lock, version guard, the
page's counts and sums), the rows, commit; ``kill -9`` leaves the page with its checkpoint or neither.
"""

from __future__ import annotations

import ctypes
import hashlib
import re
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from dmig import native
from dmig.move import passthrough
from dmig.move.checkpoints import PartState, decode_key, encode_key
from dmig.move.pages import PageContext, binary_copy_in, rows_unchanged
from dmig.move.rawconn import RawConn
from dmig.move.readers import Reader
from dmig.move.rejects import PartitionLost
from dmig.move.streamhash import add_sums
from dmig.move.transforms import TargetSpec
from dmig.move.writers import Writer, is_data_error

if TYPE_CHECKING:
    from dmig.move.worker import PartitionJob

PATH = "native"
INFO_KEY = "echo_hash"
HEADER = native.BINARY_SIGNATURE + bytes(8)  # no flags, no header extension
TRAILER = b"\xff\xff"
_NUMERIC = re.compile(r"^numeric\((\d+),(\d+)\)$")
_TIMESTAMP = re.compile(r"^timestamp(?:\((\d)\))? without time zone$")
_SIMPLE = {
    "bigint": (native.C_INT, 8),  # the argument of an integer is its width in bytes
    "integer": (native.C_INT, 4),
    "smallint": (native.C_INT, 2),
    "text": (native.C_TEXT, 0),
    "character varying": (native.C_TEXT, 0),
    "numeric": (native.C_NUMERIC, -1),  # no scale: integers only, a REAL takes the general path
    "date": (native.C_DATE, 0),
    "boolean": (native.C_BOOL, 0),
    "double precision": (native.C_FLOAT8, 0),
    "bytea": (native.C_BYTEA, 0),
}


def code_of(pg_type: str) -> tuple[int, int] | None:
    """(column code, argument) of the encoder for a PostgreSQL column type as ``format_type`` writes it."""
    if pg_type.startswith("character varying("):
        return native.C_TEXT, 0
    if m := _NUMERIC.match(pg_type):
        return native.C_NUMERIC, int(m.group(2))
    if m := _TIMESTAMP.match(pg_type):
        return native.C_TIMESTAMP, int(m.group(1) or 6)
    return _SIMPLE.get(pg_type)


def fingerprint(columns: list[str]) -> str:
    return f"pgbinary-echo:{native.HASH_NAME}:" + hashlib.sha256("\n".join(columns).encode()).hexdigest()[:16]


def _bindable(params: list[Any]) -> bool:
    return all(p is None or type(p) in (int, float, str) for p in params)


def usable(job: PartitionJob, spec: TargetSpec, reader: Reader, writer: Writer) -> list[tuple[int, int]] | None:
    """The encoder's column codes when this partition can take the native path, else None."""
    plan = job.plan
    names = [c.name for c in plan.columns]
    if not (
        native.lib() is not None
        and plan.source_dialect == reader.raw.name == "sqlite"
        and plan.target_dialect == writer.raw.name == "postgresql"
        and rows_unchanged(job.plan, spec, job.mode)
        and not any(c.select_as_text for c in plan.columns)
        and len(names) <= native.MAX_COLUMNS
        and _sqlite_path(reader) is not None
        and writer.raw.dbapi.info.encoding == "utf-8"
    ):
        return None
    try:
        types = passthrough.column_types(writer.raw, plan.target_table, plan.target_schema)
    finally:
        writer.raw.rollback()
    codes = [code_of(types[n][0]) if n in types else None for n in names]
    return None if any(c is None for c in codes) else codes  # type: ignore[return-value]


def _sqlite_path(reader: Reader) -> str | None:
    database = reader.raw.engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


class NativePages:
    """Copies one partition's keyset pages through the C encoder; see the module docstring."""

    def __init__(self, ctx: PageContext, codes: list[tuple[int, int]]) -> None:
        self.ctx = ctx
        self.job, self.reader, self.committer = ctx.job, ctx.reader, ctx.committer
        self.report, self.check = ctx.report, ctx.check
        self.lib = native.lib()
        n = len(codes)
        self.codes = (ctypes.c_int * n)(*[c for c, _ in codes])
        self.args = (ctypes.c_int * n)(*[a for _, a in codes])
        self.keycol = ctx.reader.positions[0]
        self.tgt: RawConn = ctx.committer.writer.raw
        self.copy_in = binary_copy_in(ctx.committer.writer)
        self.fingerprint = fingerprint([c.name for c in ctx.job.plan.columns])
        self._statements: dict[str, int] = {}
        self._db: int | None = None
        self._page = None

    def _open(self) -> None:
        err = ctypes.create_string_buffer(256)
        path = _sqlite_path(self.reader)
        self._db = self.lib.dmig_sq_open(str(path).encode(), 0, err, 256)
        if not self._db:
            raise OSError(f"cannot open the SQLite source natively: {err.value.decode(errors='replace')}")
        self._page = self.lib.dmig_page_new()

    def close(self) -> None:
        for stmt in self._statements.values():
            self.lib.dmig_sq_finalize(stmt)
        self._statements.clear()
        if self._page:
            self.lib.dmig_page_free(self._page)
            self._page = None
        if self._db:
            self.lib.dmig_sq_close(self._db)
            self._db = None

    def run(self) -> None:
        part, plan = self.committer.part, self.job.plan
        part.info = {**part.info, "path": PATH}
        self.committer.hashing = None  # rows are hashed here as the encoder writes them, not as decoded values
        after, upto = decode_key(part.last_key, plan.key_kinds), decode_key(part.hi_key, plan.key_kinds)
        size = self.job.batch_size
        self._open()
        try:
            while True:
                self.check()
                encoded = self._encode(self.reader.page_query(after, upto, size))
                if encoded is None:
                    rows, last = self._redo(after, upto)
                else:
                    rows, last = self._commit(*encoded, final=encoded[0] < size)
                if rows < size:
                    return
                after = (last,)
        finally:
            self.close()

    def _statement(self, sql: str) -> int:
        stmt = self._statements.get(sql)
        if stmt is None:
            err = ctypes.create_string_buffer(256)
            stmt = self.lib.dmig_sq_prepare(self._db, sql.encode(), err, 256)
            if not stmt:
                raise OSError(f"SQLite refused the page query: {err.value.decode(errors='replace')}")
            self._statements[sql] = stmt
        return stmt

    def _encode(self, query: sa.Select) -> tuple[int, bytes, int, int] | None:
        """(rows, binary COPY rows, last key, hash sum) of one page; None when a value needs the general path."""
        sql, params = self.reader.raw.compile(query)
        params = list(params or ())
        if not _bindable(params):
            return None
        stmt = self._statement(sql)
        lib = self.lib
        lib.dmig_sq_reset(stmt)
        for i, p in enumerate(params, 1):
            if type(p) is int:
                lib.dmig_sq_bind(stmt, i, 1, p, 0.0, None, 0)
            elif type(p) is float:
                lib.dmig_sq_bind(stmt, i, 2, 0, p, None, 0)
            elif p is None:
                lib.dmig_sq_bind(stmt, i, 0, 0, 0.0, None, 0)
            else:
                raw = p.encode()
                lib.dmig_sq_bind(stmt, i, 3, 0, 0.0, raw, len(raw))
        page = self._page
        status = lib.dmig_sq_page(stmt, self.codes, self.args, len(self.codes), self.keycol, page)
        lib.dmig_sq_reset(stmt)
        pg = page.contents
        if status == native.BAIL:
            return None
        if status != native.DONE:
            raise OSError(f"native SQLite read failed: {pg.err.decode(errors='replace') or status}")
        return int(pg.sum.rows), pg.data(), int(pg.last_key), pg.sum.total

    def _commit(self, rows: int, data: bytes, last: int, total: int, final: bool) -> tuple[int, int]:
        """One encoded page in one target transaction; a page the target refuses goes the general way."""
        part, store = self.committer.part, self.committer.store
        last_key = encode_key((last,)) if rows else part.last_key
        info = {**part.info, INFO_KEY: add_sums(part.info.get(INFO_KEY), self.fingerprint, rows, total)}
        staged = PartState(**{**part.__dict__, "info": info})
        try:
            if not store.advance(self.tgt, staged, last_key, rows, len(data), 0, final):
                raise PartitionLost(f"partition {part.part} of {part.table} was advanced by another process")
            if data:
                with self.tgt.dbapi.cursor() as cur, cur.copy(self.copy_in) as cp:
                    cp.write(HEADER)
                    cp.write(data)
                    cp.write(TRAILER)
            self.tgt.commit()
        except Exception as exc:
            self.tgt.rollback()
            if not is_data_error(exc, "postgresql"):
                raise
            after = decode_key(part.last_key, self.job.plan.key_kinds)
            return self._redo(after, decode_key(part.hi_key, self.job.plan.key_kinds))
        self.committer.record(info, last_key, rows, len(data), final)
        self.report(self.job.plan.source_table, rows, 0)
        return rows, last

    def _redo(self, after: tuple[Any, ...] | None, upto: tuple[Any, ...] | None) -> tuple[int, int]:
        read, last = self.ctx.redo(INFO_KEY, after, upto, final=True, one_page=True)
        return read, int(last[0]) if last else 0
