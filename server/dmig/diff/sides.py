"""One side of a diff: its table, its connections and the session rules every query runs under.

Each side owns ``threads`` connections (one by default), each in a read-only transaction with a
statement timeout and the UTC time zone; a side's connections share one snapshot on PostgreSQL
(``pg_export_snapshot``) so every segment of that side is read as of the same instant. Queries
are handed to the side's own worker threads, so the source and the target compute at the same
time. Driver errors are turned into ``DatabaseError`` naming the side, never a traceback.
"""

from __future__ import annotations

import contextlib
import queue
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from dmig.db.dialects import column_catalog
from dmig.db.engine import classify, open_engine
from dmig.db.urls import dialect_of, display_url, parse_url
from dmig.diff.hashing import register_sqlite
from dmig.diff.normalize import Category, category_of, native_category
from dmig.errors import DatabaseError, DmigError, NotFound
from dmig.redact import redact

T = TypeVar("T")
_SNAPSHOT_ID = re.compile(r"^[0-9A-Fa-f-]+$")
_TIMEOUT_MARKERS = ("statement timeout", "max_statement_time", "max_execution_time", "interrupted")
# Collations under which text keys sort by code point (so ranges mean the same on every side).
_PG_BYTE_ORDER = {"c", "posix", "c.utf-8", "c.utf8", "ucs_basic", "pg_c_utf8"}


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: Any
    category: Category
    nullable: bool


@dataclass
class SideStats:
    queries: int = 0
    bytes_fetched: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, queries: int = 0, nbytes: int = 0) -> None:
        with self.lock:
            self.queries += queries
            self.bytes_fetched += nbytes


def approx_bytes(rows: list[Any]) -> int:
    """What a result weighed on the wire, roughly: the length of each value's text."""
    total = 0
    for row in rows:
        for v in row:
            total += 4 if v is None else len(v) if isinstance(v, str | bytes) else len(str(v))
    return total


class Side:
    """A table on one database, ready to answer checksum and row queries."""

    def __init__(
        self, label: str, raw_url: str, table: str, schema: str | None, threads: int, timeout_s: float
    ) -> None:
        self.label = label
        self.url: URL = parse_url(raw_url)
        self.dialect = dialect_of(self.url)
        self.display = display_url(self.url)
        self.table_name = table
        self.schema = schema
        self.threads = threads
        self.timeout_s = timeout_s
        self.stats = SideStats()
        self.version = 0
        self.engine: Engine | None = None
        self._conns: queue.Queue[sa.Connection] = queue.Queue()
        self._all: list[sa.Connection] = []
        self._deadline = threading.local()
        self._pool: ThreadPoolExecutor | None = None
        self.columns: dict[str, ColumnInfo] = {}
        self.primary_key: list[str] = []
        self.unique_keys: list[list[str]] = []
        self.estimated_rows: int | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def open(self) -> None:
        self.engine = open_engine(self.url, pool_size=self.threads)
        try:
            first = self._connect()
            self._reflect(first)
            self._begin(first, snapshot=None)
            snapshot = self._export_snapshot(first)
            for _ in range(self.threads - 1):
                conn = self._connect()
                self._begin(conn, snapshot=snapshot)
        except DmigError:
            self.close()
            raise
        except sa.exc.SQLAlchemyError as exc:
            self.close()
            raise self._error(exc) from None
        self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix=f"dmig-diff-{self.label}")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        for conn in self._all:
            try:
                conn.rollback()
                conn.close()
            except Exception:  # closing is best effort; the engine is disposed below anyway
                pass
        self._all.clear()
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None

    def _connect(self) -> sa.Connection:
        assert self.engine is not None
        try:
            conn = self.engine.connect()
        except (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.DatabaseError, OSError) as exc:
            raise classify(exc, self.url) from None
        self._all.append(conn)
        self._conns.put(conn)
        if self.dialect == "sqlite":
            self._setup_sqlite(conn)
        return conn

    def _setup_sqlite(self, conn: sa.Connection) -> None:
        raw = conn.connection.dbapi_connection
        assert isinstance(raw, sqlite3.Connection)
        register_sqlite(raw)
        raw.execute("PRAGMA query_only = ON")

        def interrupt_when_late() -> int:
            deadline = getattr(self._deadline, "at", None)
            return 1 if deadline is not None and time.monotonic() > deadline else 0

        raw.set_progress_handler(interrupt_when_late, 20_000)

    def _begin(self, conn: sa.Connection, snapshot: str | None) -> None:
        """Session rules first (committed), then the read-only transaction all queries run in."""
        ms = max(1, int(self.timeout_s * 1000))
        if self.dialect == "postgresql":
            conn.exec_driver_sql(
                "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
            )
            conn.exec_driver_sql(f"SET statement_timeout = {ms}")
            conn.exec_driver_sql("SET TIME ZONE 'UTC'")
            # float8out's shortest round-trip digits (PostgreSQL 12+): the float rule of dmig.diff.normalize.
            conn.exec_driver_sql("SET extra_float_digits = 1")
            # Grouped checksum queries cannot estimate their group count; enough memory keeps them hashed.
            conn.exec_driver_sql("SET work_mem = '64MB'")
            self.version = int(conn.exec_driver_sql("SHOW server_version_num").scalar_one())
            conn.commit()
            if snapshot is not None:
                conn.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
        elif self.dialect == "mysql":
            conn.exec_driver_sql("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            conn.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
            conn.exec_driver_sql("SET SESSION time_zone = '+00:00'")
            if getattr(conn.dialect, "is_mariadb", False):
                conn.exec_driver_sql(f"SET SESSION max_statement_time = {ms / 1000:.3f}")
            else:
                conn.exec_driver_sql(f"SET SESSION max_execution_time = {ms}")
            conn.commit()
            conn.exec_driver_sql("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")

    def _export_snapshot(self, conn: sa.Connection) -> str | None:
        if self.dialect != "postgresql" or self.threads < 2:
            return None
        snap = str(conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one())
        return snap if _SNAPSHOT_ID.match(snap) else None

    # -- reflection -----------------------------------------------------------------------------

    def _reflect(self, conn: sa.Connection) -> None:
        insp = sa.inspect(conn)
        if not insp.has_table(self.table_name, schema=self.schema):
            where = f"{self.schema}.{self.table_name}" if self.schema else self.table_name
            raise NotFound(
                f"table {where} does not exist on the {self.label} ({self.display})",
                side=self.label,
                table=self.table_name,
            )
        raw_cols = insp.get_columns(self.table_name, schema=self.schema)
        unknown = [c for c in raw_cols if isinstance(c["type"], sa.types.NullType)]
        catalog = column_catalog(conn, self.schema, self.table_name) if unknown else {}
        for col in raw_cols:
            category = category_of(col["type"], self.dialect)
            if isinstance(col["type"], sa.types.NullType):
                # a type SQLAlchemy does not know (MariaDB geometry): the catalog's name decides
                native = native_category(catalog.get(col["name"], ("",))[0], self.dialect)
                category = native or category
            self.columns[col["name"]] = ColumnInfo(
                name=col["name"], type=col["type"], category=category, nullable=bool(col["nullable"])
            )
        self.primary_key = list(insp.get_pk_constraint(self.table_name, schema=self.schema)["constrained_columns"])
        uniques = [u["column_names"] for u in insp.get_unique_constraints(self.table_name, schema=self.schema)]
        uniques += [
            i["column_names"]
            for i in insp.get_indexes(self.table_name, schema=self.schema)
            if i.get("unique") and all(c is not None for c in i["column_names"])
        ]
        self.unique_keys = [
            list(u) for u in uniques if all(not self.columns[c].nullable for c in u if c in self.columns)
        ]
        self.estimated_rows = self._estimate_rows(conn)
        conn.commit()

    def _estimate_rows(self, conn: sa.Connection) -> int | None:
        """Catalog statistics, good enough to size sampling; None when the catalog has none."""
        try:
            if self.dialect == "postgresql":
                stmt = sa.text(
                    "SELECT c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE c.relname = :t AND n.nspname = coalesce(:s, current_schema())"
                )
                value = conn.execute(stmt, {"t": self.table_name, "s": self.schema}).scalar()
            elif self.dialect == "mysql":
                stmt = sa.text(
                    "SELECT TABLE_ROWS FROM information_schema.TABLES "
                    "WHERE TABLE_NAME = :t AND TABLE_SCHEMA = coalesce(:s, DATABASE())"
                )
                value = conn.execute(stmt, {"t": self.table_name, "s": self.schema}).scalar()
            else:
                return None
        except sa.exc.SQLAlchemyError:
            return None
        return int(value) if value is not None and float(value) > 0 else None

    def key_ordering(self, column: str) -> tuple[bool, bool]:
        """(sorts this text column by code point, exactly so): MySQL ``*_bin`` collations pad spaces.

        Only a code-point order means the same key range on every side; a pad-space binary
        collation agrees except for trailing characters below the space, which the engine's
        cross-segment reconciliation absorbs.
        """
        conn = self._conns.get()
        try:
            collation = self._collation(conn, column)
        except sa.exc.SQLAlchemyError as exc:
            raise self._error(exc) from None
        finally:
            self._conns.put(conn)
        if self.dialect == "sqlite":
            ordered = collation is None or collation.upper() == "BINARY"
            return ordered, ordered
        if self.dialect == "postgresql":
            name, provider = collation.split("|", 1) if collation else ("", "")
            ordered = name.lower() in _PG_BYTE_ORDER and provider in ("c", "d")
            return ordered, ordered
        low = (collation or "").lower()
        return (collation is None or low.endswith("_bin")), (collation is None or "nopad_bin" in low)

    def _collation(self, conn: sa.Connection, column: str) -> str | None:
        if self.dialect == "sqlite":
            coll = getattr(self.columns[column].type, "collation", None)
            return str(coll) if coll else None
        if self.dialect == "postgresql":
            provider = "d.datlocprovider::text" if self.version >= 150000 else "'c'"
            stmt = sa.text(
                "SELECT CASE WHEN co.collname = 'default' THEN d.datcollate ELSE co.collname END || '|' || "
                f"CASE WHEN co.collname = 'default' THEN {provider} ELSE co.collprovider::text END "
                "FROM pg_attribute a JOIN pg_collation co ON co.oid = a.attcollation "
                "JOIN pg_database d ON d.datname = current_database() "
                "WHERE a.attrelid = CAST(:rel AS regclass) AND a.attname = :col"
            )
            value = conn.execute(stmt, {"rel": self.preparer_quote_table(), "col": column}).scalar()
            return str(value) if value is not None else None
        stmt = sa.text(
            "SELECT COLLATION_NAME FROM information_schema.COLUMNS "
            "WHERE TABLE_NAME = :t AND TABLE_SCHEMA = coalesce(:s, DATABASE()) AND COLUMN_NAME = :c"
        )
        value = conn.execute(stmt, {"t": self.table_name, "s": self.schema, "c": column}).scalar()
        return str(value) if value is not None else None

    def preparer_quote_table(self) -> str:
        assert self.engine is not None
        prep = self.engine.dialect.identifier_preparer
        name = prep.quote_identifier(self.table_name)
        return f"{prep.quote_identifier(self.schema)}.{name}" if self.schema else name

    # -- queries --------------------------------------------------------------------------------

    def table(self, names: list[str]) -> sa.TableClause:
        """Columns typed as reflected, except on SQLite, whose declared types do not bind what is
        stored (a DATETIME column may hold any text): there values travel exactly as stored."""
        if self.dialect == "sqlite":
            return sa.table(self.table_name, *[sa.column(n) for n in names], schema=self.schema)
        return sa.table(self.table_name, *[sa.column(n, self.columns[n].type) for n in names], schema=self.schema)

    def submit(self, fn: Callable[[sa.Connection], T]) -> Future[T]:
        """Run ``fn`` with one of this side's connections on this side's worker threads."""
        assert self._pool is not None
        return self._pool.submit(self._with_conn, fn)

    def _with_conn(self, fn: Callable[[sa.Connection], T]) -> T:
        conn = self._conns.get()
        try:
            return fn(conn)
        finally:
            self._conns.put(conn)

    def execute(self, conn: sa.Connection, stmt: Any) -> list[Any]:
        """One query, all rows (callers only ask for bounded results), with timeout and accounting."""
        self._deadline.at = time.monotonic() + self.timeout_s
        try:
            rows = list(conn.execute(stmt).all())
        except sa.exc.SQLAlchemyError as exc:
            raise self._error(exc) from None
        finally:
            self._deadline.at = None
        self.stats.add(queries=1, nbytes=approx_bytes(rows))
        return rows

    def execute_grouped(self, conn: sa.Connection, stmt: Any) -> list[Any]:
        """A grouped checksum query. PostgreSQL cannot estimate how few groups a computed bucket
        makes, so it plans a sort of every (wide) row; hashing the groups is what is wanted, and the
        planner is told so for this one statement."""
        if self.dialect != "postgresql":
            return self.execute(conn, stmt)
        conn.exec_driver_sql("SET enable_sort = off")
        try:
            return self.execute(conn, stmt)
        finally:
            with contextlib.suppress(sa.exc.SQLAlchemyError):  # after a failed statement the error stands
                conn.exec_driver_sql("RESET enable_sort")

    def stream(self, conn: sa.Connection, stmt: Any, batch: int = 10_000) -> Iterator[list[Any]]:
        """A large result in bounded batches (server-side cursor where the driver has one)."""
        self._deadline.at = time.monotonic() + self.timeout_s
        self.stats.add(queries=1)
        result = None
        try:
            result = conn.execution_options(stream_results=True, yield_per=batch).execute(stmt)
            for part in result.partitions(batch):
                rows = list(part)
                self.stats.add(nbytes=approx_bytes(rows))
                yield rows
        except sa.exc.SQLAlchemyError as exc:
            raise self._error(exc) from None
        finally:
            if result is not None:
                result.close()
            self._deadline.at = None

    def _error(self, exc: sa.exc.SQLAlchemyError) -> DmigError:
        text = str(getattr(exc, "orig", None) or exc)
        first = redact(text.strip().splitlines()[0] if text.strip() else type(exc).__name__)[:300]
        low = text.lower()
        if any(m in low for m in _TIMEOUT_MARKERS):
            return DatabaseError(
                f"a query on the {self.label} ran longer than the statement timeout ({self.timeout_s:g}s): "
                "raise statement_timeout_s, or narrow the diff with where/columns",
                side=self.label,
                detail=first,
            )
        if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError) and any(
            m in low for m in ("lost connection", "server closed", "connection refused", "terminat")
        ):
            return classify(exc, self.url)
        return DatabaseError(
            f"query failed on the {self.label} ({self.display}): {first}", side=self.label, detail=first
        )
