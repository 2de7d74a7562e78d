"""Database access for checks: read-only transactions, per-query timeouts, reflection, shown SQL.

Every check query runs in a transaction the database itself enforces as read-only (PostgreSQL
``READ ONLY``, MySQL/MariaDB ``SET SESSION TRANSACTION READ ONLY``, SQLite ``PRAGMA query_only``)
and under a statement timeout (``statement_timeout``, ``max_statement_time`` /
``max_execution_time``, and for SQLite a progress handler that interrupts the query), so a rule
can neither change data nor hang the run. Each query is recorded as display SQL with literal
values and no credentials.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import regex
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine

from dmig.db.engine import open_engine
from dmig.db.urls import Dialect, dialect_of, display_url, parse_url
from dmig.errors import DatabaseError, NotFound, driver_text
from dmig.redact import redact
from dmig.validate.spec import Filter


def _sqlite_split_part(text: Any, sep: Any, index: Any, rest: Any) -> str | None:
    """split_part for SQLite (which has none); registered on our connections only."""
    if text is None or sep is None:
        return None
    parts = str(text).split(str(sep))
    i = int(index)
    if i > len(parts):
        return ""
    return str(sep).join(parts[i - 1 :]) if rest else parts[i - 1]


# SQLite has no regex engine: REGEXP calls back into Python for every row. With ``re`` a pattern
# like ``^(H+)+X$`` backtracks exponentially inside ONE call, where SQLite's progress handler
# (the statement timeout) never runs, so the whole server hung. The ``regex`` module is
# compatible with ``re`` and takes a timeout: each call gets what is left of the statement's
# deadline, and a timed-out match fails the query with a clear statement-timeout error.
_REGEX = threading.local()  # per thread (SQLite calls the function in the thread running the query)
# REGEXP is called once per row with the same pattern: compile it once, not per row (the module-level
# regex.search looks the pattern up in its cache on every call: 7 µs a row against 2.5 µs compiled).
_compiled = functools.lru_cache(maxsize=64)(regex.compile)


def _sqlite_regexp(pattern: Any, value: Any) -> bool | None:
    if pattern is None or value is None:
        return None
    deadline = getattr(_REGEX, "deadline", None)
    remaining = None if deadline is None else max(deadline - time.monotonic(), 0.001)
    try:
        return _compiled(str(pattern)).search(str(value), timeout=remaining) is not None
    except TimeoutError:
        _REGEX.problem = "regex_timeout"
        raise
    except regex.error as exc:
        _REGEX.problem = f"invalid regular expression: {exc}"
        raise


def _sqlite_functions(dbapi_conn: sqlite3.Connection, _record: object) -> None:
    dbapi_conn.create_function("dmig_split_part", 4, _sqlite_split_part, deterministic=True)
    # Replaces SQLAlchemy's ``re``-based REGEXP (this listener runs after the dialect's).
    dbapi_conn.create_function("regexp", 2, _sqlite_regexp, deterministic=True)


@dataclass
class Database:
    """One side of the comparison: an engine plus a cache of reflected tables."""

    side: str
    url: URL
    engine: Engine
    dialect: Dialect
    is_mariadb: bool = False
    server_version: tuple[int, ...] = ()
    _tables: dict[tuple[str | None, str], sa.Table] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def shown_url(self) -> str:
        return display_url(self.url)

    def reflect(self, conn: sa.Connection, name: str, schema: str | None) -> sa.Table:
        """The table's columns and keys; unknown tables are a clear NotFound."""
        key = (schema, name)
        with self._lock:
            if key in self._tables:
                return self._tables[key]
        try:
            table = sa.Table(name, sa.MetaData(), schema=schema, autoload_with=conn, resolve_fks=False)
        except sa.exc.NoSuchTableError:
            where = f"{schema}.{name}" if schema else name
            raise NotFound(f"table {where!r} does not exist in the {self.side} database", table=name) from None
        with self._lock:
            self._tables[key] = table
        return table

    def dispose(self) -> None:
        self.engine.dispose()


def open_database(side: str, raw_url: str, pool_size: int) -> Database:
    url = parse_url(raw_url)
    dialect = dialect_of(url)
    engine = open_engine(url, pool_size=pool_size)
    if dialect == "sqlite":
        event.listen(engine, "connect", _sqlite_functions)
        engine.pool.dispose()  # the proving connection was made before our functions were registered
    db = Database(side=side, url=url, engine=engine, dialect=dialect)
    with engine.connect() as conn:
        db.is_mariadb = bool(getattr(conn.dialect, "is_mariadb", False))
        db.server_version = tuple(conn.dialect.server_version_info or ())
    return db


class Session:
    """A read-only transaction on one database; records the SQL each query ran."""

    def __init__(self, db: Database, conn: sa.Connection, timeout_s: float, log: list[tuple[str, str]]) -> None:
        self.db = db
        self.conn = conn
        self.timeout_s = timeout_s
        self.queries = log
        self._deadline = 0.0

    @property
    def dialect(self) -> Dialect:
        return self.db.dialect

    def table(self, name: str, schema: str | None) -> sa.Table:
        return self.db.reflect(self.conn, name, schema)

    def execute(self, stmt: sa.Executable) -> sa.CursorResult[Any]:
        self.queries.append((self.db.side, display_sql(stmt, self.conn.dialect)))
        self._deadline = time.monotonic() + self.timeout_s
        _REGEX.deadline, _REGEX.problem = self._deadline, None
        try:
            return self.conn.execute(stmt)
        except sa.exc.DBAPIError as exc:
            raise _database_error(exc, self.db, self.timeout_s) from None

    def _fetch(self, stmt: sa.Executable, read: Any) -> Any:
        """Run and read the result inside one error mapping: SQLite evaluates REGEXP while rows are fetched."""
        result = self.execute(stmt)
        try:
            return read(result)
        except sa.exc.DBAPIError as exc:
            raise _database_error(exc, self.db, self.timeout_s) from None

    def scalar(self, stmt: sa.Executable) -> Any:
        return self._fetch(stmt, lambda r: r.scalar())

    def rows(self, stmt: sa.Executable) -> list[dict[str, Any]]:
        return self._fetch(stmt, lambda r: [dict(row._mapping) for row in r])

    def _sqlite_progress(self) -> int:
        return 1 if time.monotonic() > self._deadline else 0


def _database_error(exc: sa.exc.DBAPIError, db: Database, timeout_s: float) -> DatabaseError:
    low = str(exc.orig or exc).lower()
    first = driver_text(exc)
    problem = getattr(_REGEX, "problem", None) if db.dialect == "sqlite" else None
    _REGEX.problem = None
    if problem == "regex_timeout":
        return DatabaseError(
            f"a regular expression on the {db.side} database ran past the statement timeout of {timeout_s:g}s "
            "and was stopped (a pattern with nested repetition like (a+)+ backtracks exponentially: simplify it, "
            "or narrow the check with 'where')",
            side=db.side,
            reason="regex_timeout",
            timeout_s=timeout_s,
        )
    if problem:
        return DatabaseError(f"the {db.side} database rejected a check query: {problem[:300]}", side=db.side)
    if any(s in low for s in ("statement timeout", "max_statement_time", "max_execution_time", "interrupted")):
        return DatabaseError(
            f"a query on the {db.side} database exceeded the statement timeout of {timeout_s:g}s "
            "(raise defaults.statement_timeout_s, or narrow the check with 'where')",
            side=db.side,
            detail=first,
        )
    return DatabaseError(f"the {db.side} database rejected a check query: {first}", side=db.side)


@contextlib.contextmanager
def session(db: Database, timeout_s: float, log: list[tuple[str, str]]) -> Iterator[Session]:
    """A connection in a database-enforced read-only transaction, rolled back at the end.

    Each statement is appended to ``log`` as (side, display SQL) in the order it ran.
    """
    with db.engine.connect() as conn:
        sess = Session(db, conn, timeout_s, log)
        raw = conn.connection.dbapi_connection
        try:
            _begin_read_only(conn, db, timeout_s, raw, sess)
            yield sess
        finally:
            with contextlib.suppress(Exception):
                conn.rollback()
            if db.dialect == "sqlite":
                with contextlib.suppress(Exception):
                    raw.set_progress_handler(None, 0)  # type: ignore[union-attr]
                    raw.execute("PRAGMA query_only = OFF")  # type: ignore[union-attr]
            elif db.dialect == "mysql":
                with contextlib.suppress(Exception):
                    conn.exec_driver_sql("SET SESSION TRANSACTION READ WRITE")
                    conn.commit()


def _begin_read_only(conn: sa.Connection, db: Database, timeout_s: float, raw: Any, sess: Session) -> None:
    try:
        if db.dialect == "postgresql":
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            conn.execute(sa.select(sa.func.set_config("statement_timeout", str(int(timeout_s * 1000)), True)))
        elif db.dialect == "mysql":
            conn.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
            if db.is_mariadb:
                conn.execute(sa.text("SET SESSION max_statement_time = :s"), {"s": float(timeout_s)})
            else:
                conn.execute(sa.text("SET SESSION max_execution_time = :ms"), {"ms": int(timeout_s * 1000)})
            conn.commit()
        else:
            raw.execute("PRAGMA query_only = ON")
            raw.set_progress_handler(sess._sqlite_progress, 10_000)
    except sa.exc.DBAPIError as exc:
        raise _database_error(exc, db, timeout_s) from None


def display_sql(stmt: sa.Executable, dialect: sa.Dialect) -> str:
    """The statement with its values inlined, for humans; falls back to showing parameters."""
    try:
        text = str(stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    except Exception:
        compiled = stmt.compile(dialect=dialect)
        text = f"{compiled} -- parameters: {compiled.params!r}"
    return redact(" ".join(text.split()))


def column(table: sa.Table, name: str) -> sa.Column[Any]:
    """A column by exact name; unknown columns are a clear NotFound naming the real ones."""
    if name not in table.c:
        known = ", ".join(c.name for c in table.c)
        raise NotFound(f"column {name!r} does not exist in table {table.name!r} (columns: {known})", column=name)
    return table.c[name]


def where_clause(table: sa.Table, filters: list[Filter]) -> list[sa.ColumnElement[bool]]:
    """Compile structured filters (never SQL text) into conditions to AND (``.where(*conds)``)."""
    return [_condition(column(table, f.column), f.op, f.value) for f in filters]


def _condition(col: sa.Column[Any], op: str, v: Any) -> sa.ColumnElement[bool]:
    match op:
        case "=":
            return col == v
        case "!=":
            return col != v
        case "<":
            return col < v
        case "<=":
            return col <= v
        case ">":
            return col > v
        case ">=":
            return col >= v
        case "in":
            return col.in_(v)
        case "not in":
            return col.not_in(v)
        case "is null":
            return col.is_(None)
        case "is not null":
            return col.is_not(None)
        case "between":
            return col.between(v[0], v[1])
    raise ValueError(f"unknown filter op {op!r}")


def raw(expr: sa.ColumnElement[Any], label: str) -> sa.ColumnElement[Any]:
    """Select a value as the driver returns it: a malformed SQLite timestamp must be shown, not crash."""
    return sa.type_coerce(expr, sa.types.NullType()).label(label)


def sample_columns(table: sa.Table, extra: list[sa.Column[Any]]) -> list[sa.ColumnElement[Any]]:
    """Primary key first (to identify the row), then the columns the check is about, as raw values."""
    seen: set[str] = set()
    out: list[sa.ColumnElement[Any]] = []
    for col in [*table.primary_key.columns, *extra]:
        if col.name not in seen:
            seen.add(col.name)
            out.append(raw(col, col.name))
    return out


def order_by_key(table: sa.Table, fallback: list[sa.Column[Any]]) -> list[sa.ColumnElement[Any]]:
    """A deterministic order for samples: the primary key when there is one."""
    return list(table.primary_key.columns) or list(fallback)
