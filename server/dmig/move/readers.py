"""Streaming readers: one page of rows at a time, by key, never the whole table in memory.

Pages are keyset pages (``WHERE key > :last ORDER BY key LIMIT :n``), which is what makes a
resume exact: the checkpoint holds the last key committed and the next page starts after it.
PostgreSQL pages travel as ``COPY (SELECT ...) TO STDOUT (FORMAT BINARY)`` through psycopg 3
(typed by the result's own type oids); MySQL and SQLite pages use plain driver cursors. A table
without any key is streamed once with a server-side cursor (PostgreSQL COPY, PyMySQL SSCursor,
sqlite3's lazy cursor), in a single transaction on the write side.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine

from dmig.db import dialects
from dmig.errors import InvalidInput
from dmig.move.expressions import ExprCompiler
from dmig.move.plan import TablePlan
from dmig.move.rawconn import RawConn
from dmig.move.transforms import TargetSpec


def _accept_midnight_end(conn: Any) -> None:
    """Values PostgreSQL holds and Python's datetime cannot, which psycopg would fail the whole page on,
    arrive as PostgreSQL's own text instead: ``time`` 24:00:00, ``date``/``timestamp(tz)`` infinity and
    -infinity, years after 9999 and BC years. PostgreSQL targets take that text as it is; the target
    adapters reject it per row where the target has no such value (MariaDB), SQLite keeps the text."""
    from psycopg.types import datetime as pgdt

    class Time(pgdt.TimeBinaryLoader):
        def load(self, data: Any) -> Any:
            return "24:00:00" if bytes(data) == END_OF_DAY_US else super().load(data)

    class Date(pgdt.DateBinaryLoader):
        def load(self, data: Any) -> Any:
            try:
                return super().load(data)
            except pgdt.DataError:
                return pg_date_text(int.from_bytes(bytes(data), "big", signed=True))

    class Timestamp(pgdt.TimestampBinaryLoader):
        def load(self, data: Any) -> Any:
            try:
                return super().load(data)
            except pgdt.DataError:
                return pg_timestamp_text(int.from_bytes(bytes(data), "big", signed=True), "")

    class Timestamptz(pgdt.TimestamptzBinaryLoader):
        def load(self, data: Any) -> Any:
            try:
                return super().load(data)
            except pgdt.DataError:  # our sessions run in UTC
                return pg_timestamp_text(int.from_bytes(bytes(data), "big", signed=True), "+00")

    for name, loader in (("time", Time), ("date", Date), ("timestamp", Timestamp), ("timestamptz", Timestamptz)):
        conn.adapters.register_loader(name, loader)


END_OF_DAY_US = (86_400_000_000).to_bytes(8, "big")
_EPOCH_DAYS = 10_957  # 2000-01-01 (PostgreSQL's epoch) in days after 1970-01-01
_DAY_US = 86_400_000_000
_INT4, _INT8 = 2**31 - 1, 2**63 - 1


def _civil(days: int) -> tuple[int, int, int]:
    """Proleptic Gregorian (year, month, day) of a day count from 1970-01-01, any year (H. Hinnant's algorithm)."""
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def _date_part(days: int) -> tuple[str, str]:
    y, m, d = _civil(days)
    return (f"{y:04d}-{m:02d}-{d:02d}", "") if y > 0 else (f"{1 - y:04d}-{m:02d}-{d:02d}", " BC")


def pg_date_text(pg_days: int) -> str:
    """PostgreSQL's text of a binary ``date`` (days after 2000-01-01), infinities included."""
    if pg_days in (_INT4, -_INT4 - 1):
        return "infinity" if pg_days > 0 else "-infinity"
    text, era = _date_part(pg_days + _EPOCH_DAYS)
    return text + era


def pg_timestamp_text(pg_us: int, zone: str) -> str:
    """PostgreSQL's text of a binary ``timestamp``/``timestamptz`` (microseconds after 2000-01-01)."""
    if pg_us in (_INT8, -_INT8 - 1):
        return "infinity" if pg_us > 0 else "-infinity"
    days, us = divmod(pg_us, _DAY_US)
    secs, us = divmod(us, 1_000_000)
    text, era = _date_part(days + _EPOCH_DAYS)
    return f"{text} {secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}.{us:06d}{zone}{era}"


def pg_text(col: Any, type_: sa.types.TypeEngine) -> Any:
    """A PostgreSQL value as PostgreSQL prints it (its type's output function), which is what a cast to text
    gives for every type but ``inet``: ``inet::text`` always adds the netmask ('192.168.0.1/32' for the
    address printed '192.168.0.1'); ``abbrev(inet)`` is documented to be the output function's text."""
    if isinstance(type_, postgresql.INET):
        return sa.func.abbrev(col, type_=sa.Text())
    return sa.cast(col, sa.Text())


class Page(list):  # type: ignore[type-arg]
    """Source rows plus ``bad``: row index -> why that row cannot be copied as it was read."""

    def __init__(self) -> None:
        super().__init__()
        self.bad: dict[int, str] = {}


class Reader:
    def __init__(self, engine: Engine, plan: TablePlan, spec: TargetSpec, all_columns: list[str]) -> None:
        self.plan = plan
        self.raw = RawConn(engine)
        if self.raw.name == "postgresql":
            self.raw.dbapi.autocommit = True
            _accept_midnight_end(self.raw.dbapi)
        elif self.raw.name == "mysql":
            self.raw.dbapi.autocommit(True)
        self.compiler = ExprCompiler(plan.source_table, set(all_columns), self.raw.name)
        cols = []
        for c in plan.columns:
            col = sa.column(c.name)
            if self.raw.name == "mysql" and c.kind.name == "float" and c.kind.bits == 32:
                cols.append(dialects.mysql_as_double(col).label(c.name))
            elif c.kind.spatial and plan.target_dialect != plan.source_dialect:
                cols.append(sa.func.ST_AsText(col).label(c.name))  # WKT: the documented form across dialects
            elif c.select_as_text:
                cols.append(pg_text(col, c.type).label(c.name))
            else:
                cols.append(col)
        for i, (_into, expr, _kind) in enumerate(spec.exprs):
            cols.append(self.compiler.compile(expr).label(f"dmig_expr_{i}"))
        self.table = sa.table(plan.source_table, schema=plan.source_schema)
        self.base = sa.select(*cols).select_from(self.table)
        self.key_cols = [sa.column(k) for k in plan.key]
        self.positions = [next(i for i, c in enumerate(plan.columns) if c.name == k) for k in plan.key]
        self.conditions: list[Any] = [self.compiler.condition(c) for c in plan.mapping.filter]
        self._pg_types: list[int] | None = None

    def add_condition(self, cond: Any) -> None:
        self.conditions.append(cond)

    def key_of(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(row[i] for i in self.positions)

    def _after(self, last: tuple[Any, ...]) -> Any:
        if any(v is None for v in last):
            # Only a SQLite key that is not the rowid can hold NULLs; they sort first, so this page was all
            # NULL keys and no keyset condition can continue after it.
            cols = ", ".join(k.name for k in self.key_cols)
            raise InvalidInput(
                f"table {self.plan.source_table}: more rows with a NULL primary key ({cols}) than one batch, "
                "so the copy cannot page past them; run it again with a batch size above their count",
                table=self.plan.source_table,
            )
        if len(self.key_cols) == 1:
            return self.key_cols[0] > last[0]
        if self.raw.name != "mysql":
            return sa.tuple_(*self.key_cols) > sa.tuple_(*[sa.literal(v) for v in last])
        # MySQL/MariaDB optimise the expanded form better than a row constructor.
        ors = []
        for i in range(len(self.key_cols)):
            eqs = [self.key_cols[j] == last[j] for j in range(i)]
            ors.append(sa.and_(*eqs, self.key_cols[i] > last[i]))
        return sa.or_(*ors)

    def page_query(self, after: tuple[Any, ...] | None, upto: tuple[Any, ...] | None, limit: int) -> sa.Select:
        where = list(self.conditions)
        if after is not None:
            where.append(self._after(after))
        if upto is not None:
            where.append(self.key_cols[0] <= upto[0])
        return self.base.where(*where).order_by(*self.key_cols).limit(limit)

    def page(self, after: tuple[Any, ...] | None, upto: tuple[Any, ...] | None, limit: int) -> list[tuple[Any, ...]]:
        query = self.page_query(after, upto, limit)
        if self.raw.name == "postgresql":
            return list(self._pg_copy(query))
        cur = self.raw.execute(query)
        try:
            return cur.fetchall() if self.raw.name == "mysql" else [tuple(r) for r in cur.fetchall()]
        except sqlite3.OperationalError as exc:
            if "decode" not in str(exc):
                raise
        finally:
            cur.close()
        return self._lenient_page(query)

    def _lenient_page(self, query: sa.Select) -> Page:
        """A SQLite page holding TEXT that is not UTF-8 (SQLite stores any bytes): the driver refuses the
        whole page, so read it again keeping the bytes, and mark those rows to be rejected, not copied."""
        db = self.raw.dbapi
        saved = db.text_factory
        db.text_factory = lambda b: b.decode("utf-8", "surrogateescape")
        try:
            cur = self.raw.execute(query)
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
            cur.close()
        finally:
            db.text_factory = saved
        page = Page()
        for i, r in enumerate(rows):
            row, broken = list(r), []
            for j, v in enumerate(row):
                if type(v) is str and not v.isascii():
                    try:
                        v.encode("utf-8")
                    except UnicodeEncodeError:  # shown in the reject file with the bad bytes escaped
                        row[j] = v.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                        broken.append(names[j])
            if broken:
                page.bad[i] = f"text is not valid UTF-8 (column {', '.join(broken)})"
            page.append(tuple(row))
        return page

    def _pg_copy(self, query: sa.Select) -> Iterator[tuple[Any, ...]]:
        sql, params = self.raw.compile(query)
        cur = self.raw.dbapi.cursor()
        if self._pg_types is None:
            cur.execute(f"SELECT * FROM ({sql}) AS dmig_probe LIMIT 0", params)
            self._pg_types = [d.type_code for d in cur.description]
        with cur.copy(f"COPY ({sql}) TO STDOUT (FORMAT BINARY)", params) as cp:
            cp.set_types(self._pg_types)
            yield from cp.rows()

    def stream(self, size: int) -> Iterator[list[tuple[Any, ...]]]:
        """The whole (filtered) table in chunks, for tables without a key."""
        query = self.base.where(*self.conditions)
        if self.raw.name == "postgresql":
            chunk: list[tuple[Any, ...]] = []
            for row in self._pg_copy(query):
                chunk.append(row)
                if len(chunk) >= size:
                    yield chunk
                    chunk = []
            if chunk:
                yield chunk
            return
        if self.raw.name == "mysql":
            import pymysql.cursors

            sql, params = self.raw.compile(query)
            cur = self.raw.dbapi.cursor(pymysql.cursors.SSCursor)
            cur.execute(sql, params)
        else:
            cur = self.raw.execute(query)
        try:
            while rows := cur.fetchmany(size):
                yield [tuple(r) for r in rows]
        finally:
            cur.close()

    def close(self) -> None:
        self.raw.close()
