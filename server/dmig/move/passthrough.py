"""PostgreSQL to PostgreSQL without decoding: the COPY stream of each key range goes through as bytes.

The general path decodes every value of ``COPY ... TO STDOUT (FORMAT BINARY)`` into Python and
encodes it again for ``COPY ... FROM STDIN``, which costs most of a PG->PG copy's time. When
nothing has to change on the way (same dialect, no transforms, the same column types on both
sides, a bulk mode), the bytes one server sends are already what the other one accepts, so each
page is piped as it arrives: ``COPY (SELECT cols FROM t WHERE key > lo AND key <= hi) TO STDOUT``
on the source into ``COPY t (cols) FROM STDIN`` on the target, both binary.

Checkpoints need the page's last key without decoding a row, so pages are integer key RANGES
``(lo, hi]`` inside the partition, not ``LIMIT`` pages: the checkpoint's ``last_key`` is ``hi``.
The first range ends at the key ``batch_size`` rows on (one index scan), later ones adapt their
width to the row count the previous page really had (density = rows / width), and an empty range
jumps to the next existing key, so gaps and dense clusters both give pages of about ``batch_size``.

As on the general path, the checkpoint advance runs first in the page's target transaction (it
takes the row lock and guards against a second process), then the rows, then the checkpoint's
counts, then the commit: ``kill -9`` leaves the page and its checkpoint, or neither. No row is
decoded; instead each row's binary COPY bytes are hashed as they pass (xxh64 in C, ``dmig.native``,
a chunk of rows per call), and the partition keeps (rows, sum) in its checkpoint like the streamed
checksum does. Verification then reads the target back as binary COPY and compares
(``binary_sum``): the same server version and column types give the same bytes for the same
values, so this is an exact, byte-for-byte check that costs far less than an md5 per row in SQL on
both sides. Without the native library the pages carry no sums and verification checksums.

A page the target refuses for its data (a CHECK, NOT NULL, unique violation, an enum label it
lacks) is rolled back and redone through the general decode path, whose bisection isolates the
bad rows into rejects; the next page goes through again.

Binary COPY is only portable between servers of the same major version, for built-in types and
enums (whose binary form is the label), and text travels in the client encoding; anything else
keeps the general path.
"""

from __future__ import annotations

import hashlib
import select
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
import sqlalchemy as sa
from psycopg import pq

from dmig import native
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

PATH = "passthrough"
FIRST_USER_OID = 16384  # FirstNormalObjectId: below it, built-in types with the same OID everywhere
MAX_GROWTH = 8  # a range grows or shrinks at most this much from one page to the next
WRITE_CHUNK = 256 * 1024  # rows arrive one COPY message each; the target gets them in chunks
INFO_KEY = "binary_hash"

_COLUMN_TYPES = sa.text(
    "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.atttypid < :first OR t.typtype = 'e' "
    "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
    "WHERE a.attrelid = to_regclass(:name) AND a.attnum > 0 AND NOT a.attisdropped"
)
_SESSION = sa.text("SELECT current_setting('server_version_num')::int / 10000, current_setting('client_encoding')")


def fingerprint(columns: list[str]) -> str:
    return f"pgbinary:{native.HASH_NAME}:" + hashlib.sha256("\n".join(columns).encode()).hexdigest()[:16]


def row_hasher() -> native.Hasher | None:
    """Order-independent (rows, sum of xxh64) over the rows of a binary COPY stream, in C a buffer at a
    time; None without the native library (the pages then carry no sums and verification checksums)."""
    lib = native.lib()
    return None if lib is None else native.Hasher(lib)


def binary_sum(raw: RawConn, table: str, schema: str | None, columns: list[str]) -> tuple[int, int]:
    """The whole target table's (rows, sum), read as one binary COPY (one sequential scan, no per-row SQL)."""
    stmt = sa.select(*[sa.column(c) for c in columns]).select_from(sa.table(table, schema=schema))
    sql, params = raw.compile(stmt)
    hasher = row_hasher()
    if hasher is None:
        raise RuntimeError("the native library is not available")
    with raw.dbapi.cursor() as cur, cur.copy(f"COPY ({sql}) TO STDOUT (FORMAT BINARY)", params):
        copy_out(cur.connection, hasher)
    raw.rollback()
    return hasher.rows, hasher.total


def column_types(raw: RawConn, table: str, schema: str | None) -> dict[str, tuple[str, bool]]:
    """Column name -> (type as written, binary form portable between databases)."""
    stmt = _COLUMN_TYPES.bindparams(first=FIRST_USER_OID, name=raw.quote_table(table, schema))
    return {name: (typ, bool(portable)) for name, typ, portable in raw.all(stmt)}


def usable(job: PartitionJob, spec: TargetSpec, reader: Reader, writer: Writer) -> bool:
    """True when the partition's rows can travel as raw binary COPY bytes (see the module docstring)."""
    plan = job.plan
    names = [c.name for c in plan.columns]
    if not (
        plan.source_dialect == plan.target_dialect == reader.raw.name == writer.raw.name == "postgresql"
        and rows_unchanged(job.plan, spec, job.mode)
        and job.since_column is None
    ):
        return False
    try:
        same_session = reader.raw.all(_SESSION) == writer.raw.all(_SESSION)
        src = column_types(reader.raw, plan.source_table, plan.source_schema)
        tgt = column_types(writer.raw, plan.target_table, plan.target_schema)
    finally:
        writer.raw.rollback()  # leave no transaction open on the target before the first page
    return same_session and all(n in src and src[n][1] and src[n] == tgt.get(n) for n in names)


@dataclass
class _Ranges:
    """The partition's key ranges: width from the key density, corrected by each page's row count."""

    lo: int | None  # the last key done; None: from the start of the key space (the first partition)
    hi: int | None  # the partition's upper bound; None: open-ended (the last partition)
    width: int
    target: int
    top: int | None  # the highest key the partition held when probed; None: it held none

    def next(self) -> tuple[int | None, int | None, bool]:
        """The next page (lo, hi] and whether it is the partition's last one."""
        if self.top is None:  # nothing there when probed: one page of the whole rest finishes it
            return self.lo, self.hi, True
        upper = self.top if self.lo is None else self.lo + self.width
        if upper >= self.top:  # past the last key seen: the rest of the partition (and what arrived since)
            return self.lo, self.hi, True
        return self.lo, upper, False

    def adapt(self, rows: int) -> None:
        factor = self.target / rows if rows else MAX_GROWTH
        self.width = max(1, int(self.width * min(MAX_GROWTH, max(1 / MAX_GROWTH, factor))))


class PassThrough:
    """Copies one partition's key ranges as raw binary COPY streams; see the module docstring."""

    def __init__(self, ctx: PageContext) -> None:
        self.ctx = ctx
        self.job, self.reader, self.committer = ctx.job, ctx.reader, ctx.committer
        self.report, self.check = ctx.report, ctx.check
        plan, writer = ctx.job.plan, ctx.committer.writer
        self.src, self.tgt = ctx.reader.raw, writer.raw
        self.key = sa.column(plan.key[0])
        self.select = sa.select(*[sa.column(c.name) for c in plan.columns]).select_from(ctx.reader.table)
        self.copy_in = binary_copy_in(writer)

    def _bounds(self, lo: int | None, hi: int | None) -> list[Any]:
        where = []
        if lo is not None:
            where.append(self.key > lo)
        if hi is not None:
            where.append(self.key <= hi)
        return where

    def _probe(self, lo: int | None, hi: int | None) -> tuple[int | None, int | None]:
        """min and max key in (lo, hi]: two index probes (filters are left out; they only thin pages)."""
        query = sa.select(sa.func.min(self.key), sa.func.max(self.key)).select_from(self.reader.table)
        low, high = self.src.all(query.where(*self._bounds(lo, hi)))[0]
        return (None, None) if low is None else (int(low), int(high))

    def _ranges(self) -> _Ranges:
        part, plan = self.committer.part, self.job.plan
        after, upto = decode_key(part.last_key, plan.key_kinds), decode_key(part.hi_key, plan.key_kinds)
        lo, hi = (None if after is None else int(after[0])), (None if upto is None else int(upto[0]))
        first, top = self._probe(lo, hi)
        start = lo if first is None else first - 1
        size = self.job.batch_size
        # The first page's width from the key batch_size rows on (one index scan), so it holds about
        # batch_size rows whatever the density elsewhere; later pages adapt to what the last one held.
        nth = self.src.all(
            sa.select(self.key)
            .select_from(self.reader.table)
            .where(*self._bounds(start, hi))
            .order_by(self.key)
            .offset(size - 1)
            .limit(1)
        )
        end = int(nth[0][0]) if nth else (top if top is not None else start)
        width = max(1, end - start) if start is not None and end is not None else 1
        return _Ranges(lo=start, hi=hi, width=width, target=size, top=top)

    def run(self) -> None:
        part = self.committer.part
        part.info = {**part.info, "path": PATH}
        self.committer.hashing = None  # rows are hashed as bytes here (row_hasher), not as decoded values
        self.fingerprint = fingerprint([c.name for c in self.job.plan.columns])
        ranges = self._ranges()
        while True:
            self.check()
            lo, hi, final = ranges.next()
            rows = self._page(lo, hi, final)
            if final:
                return
            ranges.lo = hi
            if rows:
                ranges.adapt(rows)
                continue
            following, _ = self._probe(hi, ranges.hi)  # an empty range: jump over the gap in one step
            if following is None:
                ranges.top = None  # nothing left in the partition: the next page is its last
            elif hi is not None and following - 1 > hi:
                ranges.lo = following - 1
            else:
                ranges.adapt(0)

    def _page(self, lo: int | None, hi: int | None, final: bool) -> int:
        """One range in one target transaction; a data error redoes it through the decode path."""
        try:
            return self._stream(lo, hi, final)
        except Exception as exc:
            self.tgt.rollback()
            if not is_data_error(exc, "postgresql"):
                raise
        return self._redo(lo, hi, final)

    def _stream(self, lo: int | None, hi: int | None, final: bool) -> int:
        part, store = self.committer.part, self.committer.store
        last_key = encode_key((hi,)) if hi is not None else (part.last_key if lo is None else encode_key((lo,)))
        staged = PartState(**part.__dict__)
        if not store.advance(self.tgt, staged, last_key, 0, 0, 0, final):  # lock + guard before any row
            raise PartitionLost(f"partition {part.part} of {part.table} was advanced by another process")
        staged.version += 1
        sql, params = self.src.compile(self.select.where(*self.reader.conditions, *self._bounds(lo, hi)))
        hasher = row_hasher()
        with self.src.dbapi.cursor() as src_cur, self.tgt.dbapi.cursor() as tgt_cur:
            nbytes = _pipe(src_cur, f"COPY ({sql}) TO STDOUT (FORMAT BINARY)", params, tgt_cur, self.copy_in, hasher)
            rows = max(tgt_cur.rowcount, 0)
        staged.info = {**part.info, INFO_KEY: self._merged(part.info.get(INFO_KEY), hasher, rows)}
        if not store.advance(self.tgt, staged, last_key, rows, nbytes, 0, final):
            raise PartitionLost(f"partition {part.part} of {part.table} was advanced by another process")
        self.tgt.commit()
        part.version = staged.version  # the first advance; record() counts the second
        self.committer.record(staged.info, last_key, rows, nbytes, final)
        self.report(self.job.plan.source_table, rows, 0)
        return rows

    def _merged(self, previous: dict[str, Any] | None, hasher: native.Hasher | None, rows: int) -> dict[str, Any]:
        """The partition's byte sums after this page; "mixed" once any page went another way."""
        if hasher is None or hasher.rows != rows:
            return {"spec": "mixed"}
        return add_sums(previous, self.fingerprint, rows, hasher.total)

    def _redo(self, lo: int | None, hi: int | None, final: bool) -> int:
        after, upto = (None if lo is None else (lo,)), (None if hi is None else (hi,))
        return self.ctx.redo(INFO_KEY, after, upto, final, one_page=False)[0]


def _pipe(
    src_cur: Any, copy_out_sql: str, params: Any, tgt_cur: Any, copy_in: str, hasher: native.Hasher | None
) -> int:
    """Stream one COPY's bytes into another, hashing its rows on the way; returns how many bytes went through."""
    with src_cur.copy(copy_out_sql, params), tgt_cur.copy(copy_in) as into:
        return copy_out(src_cur.connection, hasher, into)


def _drain(conn: Any, write: Callable[[bytearray], None]) -> int:
    """Read a started ``COPY ... TO STDOUT`` at the libpq level, handing ``write`` chunks of ~WRITE_CHUNK bytes.

    The server sends one message per row; psycopg's ``Copy.read`` costs a generator round trip per
    message, which was most of the pass-through's CPU time. Here a row is one C call. The final
    result is collected too, so the ``Copy`` block exits on an idle connection.
    """
    pgconn, total, buf = conn.pgconn, 0, bytearray()
    get = pgconn.get_copy_data
    while True:
        n, data = get(1)
        if n > 0:
            buf += data
            if len(buf) >= WRITE_CHUNK:
                write(buf)
                total += len(buf)
                buf = bytearray()
        elif n == 0:  # nothing buffered: wait for the socket
            select.select([pgconn.socket], [], [])
            pgconn.consume_input()
        else:
            break
    _finish_copy_out(conn, failed=n == -2)
    if buf:
        write(buf)
        total += len(buf)
    return total


def _finish_copy_out(conn: Any, failed: bool) -> None:
    """Collect the COPY TO's results (so the ``Copy`` block exits on an idle connection); raise its error."""
    pgconn = conn.pgconn
    error: Exception | None = None
    while (res := pgconn.get_result()) is not None:
        if res.status != pq.ExecStatus.COMMAND_OK and error is None:
            error = psycopg.errors.error_from_result(res, encoding=conn.info.encoding)
    if error is None and failed:
        error = psycopg.OperationalError(pgconn.get_error_message())
    if error is not None:
        raise error


def copy_out(conn: Any, hasher: native.Hasher | None, into: Any | None = None) -> int:
    """The rows of a started binary ``COPY ... TO STDOUT`` on ``conn``, hashed, and forwarded into a started
    ``COPY ... FROM STDIN`` (``into``, a psycopg Copy) unless None; returns the bytes read.

    With the native library the rows never reach Python (``native.pump``: one C loop, GIL released,
    so the tables' read-backs really run side by side); else ``_drain`` hands Python a chunk at a time.
    """
    if hasher is not None:
        target = None if into is None else into.connection
        if into is not None:
            into.write(b"")  # psycopg then knows the stream carries its own signature (else it appends one at exit)
        moved = native.pump(conn.pgconn, None if target is None else target.pgconn, hasher)
        if moved is not None:
            _finish_copy_out(conn, failed=moved == -1)
            if moved == -2:
                raise psycopg.OperationalError(target.pgconn.get_error_message().decode(errors="replace"))
            return moved

    def write(buf: bytearray) -> None:
        if hasher is not None:
            hasher.binrows(buf)
        if into is not None:
            into.write(buf)

    return _drain(conn, write)
