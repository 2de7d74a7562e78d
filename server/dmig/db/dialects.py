"""Dialect facts the SQLAlchemy inspector does not give in one place.

Which server flavour and version we talk to (MariaDB and MySQL differ in timeouts and catalogs),
how to hold a connection in a bounded read-only transaction (so a reader cannot write even if a
bug tried to), and the catalog statistics that make counting and sizing a big database cheap:
estimated row counts and on-disk sizes, each labelled with the method that produced it.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

Flavor = Literal["sqlite", "postgresql", "mysql", "mariadb"]

_VERSION_NUMBERS = re.compile(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?")
# SQLite has no catalog statistics worth trusting, and dbstat reads every page: above this file
# size we stop measuring per-table sizes and report only the whole file.
SQLITE_DBSTAT_MAX_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class ServerVersion:
    flavor: Flavor
    text: str
    info: tuple[int, ...]


@dataclass(frozen=True)
class TableStats:
    """What the catalog says about one table without reading it."""

    estimated_rows: int | None
    estimate_method: str | None
    size_bytes: int | None
    size_method: str | None


def parse_version(text: str) -> tuple[int, ...]:
    """Leading version numbers: '15.20 (Debian ...)' -> (15, 20); '5.5.5-10.11.19-MariaDB' -> (10, 11, 19)."""
    text = text.strip()
    if text.startswith("5.5.5-") and "mariadb" in text.lower():  # the replication-compatibility prefix
        text = text[len("5.5.5-") :]
    m = _VERSION_NUMBERS.search(text)
    if not m:
        return ()
    return tuple(int(g) for g in m.groups() if g is not None)


def flavor_of(conn: sa.Connection) -> Flavor:
    name = conn.dialect.name
    if name == "mysql" and getattr(conn.dialect, "is_mariadb", False):
        return "mariadb"
    if name in ("sqlite", "postgresql", "mysql"):
        return name  # type: ignore[return-value]
    raise ValueError(f"unsupported dialect {name}")


def server_version(conn: sa.Connection) -> ServerVersion:
    flavor = flavor_of(conn)
    if flavor == "sqlite":
        text = sqlite3.sqlite_version
    elif flavor == "postgresql":
        text = str(conn.exec_driver_sql("SHOW server_version").scalar_one())
    else:
        text = str(conn.exec_driver_sql("SELECT VERSION()").scalar_one())
    return ServerVersion(flavor=flavor, text=text, info=parse_version(text))


def quote_identifier(conn: sa.Connection, name: str) -> str:
    """Always-quoted identifier for messages and hand-written DDL (quote characters doubled)."""
    return conn.dialect.identifier_preparer.quote_identifier(name)


def table_ref(name: str, schema: str | None = None) -> sa.TableClause:
    """A Core table reference: SQLAlchemy quotes the name (and escapes '%' for pyformat drivers)."""
    return sa.table(name, schema=schema)


def exact_count(conn: sa.Connection, name: str, schema: str | None = None) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(table_ref(name, schema))).scalar_one())


def is_timeout(exc: BaseException) -> bool:
    """A statement stopped by our own time bound (as opposed to a real failure)."""
    low = str(getattr(exc, "orig", None) or exc).lower()
    return any(
        s in low
        for s in (
            "statement timeout",  # PostgreSQL: canceling statement due to statement timeout
            "lock timeout",
            "max_statement_time",  # MariaDB 1969
            "maximum statement execution time",  # MySQL 3024
            "lock wait timeout",
            "interrupted",  # SQLite progress handler
            "database is locked",  # SQLite busy_timeout expired
        )
    )


# --- bounded read-only sessions ---------------------------------------------------------------


@contextlib.contextmanager
def read_only_session(conn: sa.Connection, timeout_s: float = 30.0) -> Iterator[None]:
    """Hold ``conn`` in one read-only, time-bounded transaction (one consistent snapshot where possible).

    The database itself refuses writes (PostgreSQL READ ONLY transaction, MySQL/MariaDB READ ONLY
    transaction and session, SQLite ``query_only``), so an inspection cannot change anything
    whatever SQL it ends up running. Every statement is bounded by ``timeout_s``. Meant for a
    connection we own: session settings are restored on exit, the transaction rolled back.
    """
    if conn.in_transaction():
        conn.rollback()
    flavor = flavor_of(conn)
    guard = {"postgresql": _pg_read_only, "mysql": _mysql_read_only, "mariadb": _mysql_read_only}.get(
        flavor, _sqlite_read_only
    )
    with guard(conn, timeout_s, flavor):
        yield


@contextlib.contextmanager
def _pg_read_only(conn: sa.Connection, timeout_s: float, _flavor: Flavor) -> Iterator[None]:
    ms = f"{max(1, int(timeout_s * 1000))}ms"
    try:
        # Must be the first statement of the transaction; REPEATABLE READ gives one snapshot for all queries.
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        conn.execute(
            sa.text(
                "SELECT set_config('statement_timeout', :ms, true), set_config('lock_timeout', :ms, true),"
                " set_config('idle_in_transaction_session_timeout', :idle, true)"
            ),
            {"ms": ms, "idle": f"{max(60_000, int(timeout_s * 4000))}ms"},
        )
        yield
    finally:
        _rollback_quietly(conn)


@contextlib.contextmanager
def _mysql_read_only(conn: sa.Connection, timeout_s: float, flavor: Flavor) -> Iterator[None]:
    saved = conn.execute(sa.text("SELECT @@session.lock_wait_timeout")).scalar_one()
    if flavor == "mariadb":
        timeout_var, value = "max_statement_time", float(timeout_s)  # seconds, applies to every statement
    else:
        timeout_var, value = "max_execution_time", max(1, int(timeout_s * 1000))  # ms, SELECTs only
    saved_timeout = conn.execute(sa.text(f"SELECT @@session.{timeout_var}")).scalar_one()
    try:
        conn.execute(sa.text(f"SET SESSION {timeout_var} = :v"), {"v": value})
        conn.execute(sa.text("SET SESSION lock_wait_timeout = :v"), {"v": max(1, int(timeout_s))})
        # The session default makes even an implicitly committed DDL statement run read-only.
        conn.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
        conn.exec_driver_sql("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        yield
    finally:
        _rollback_quietly(conn)
        with contextlib.suppress(sa.exc.DBAPIError):
            conn.exec_driver_sql("SET SESSION TRANSACTION READ WRITE")
            conn.execute(sa.text(f"SET SESSION {timeout_var} = :v"), {"v": saved_timeout})
            conn.execute(sa.text("SET SESSION lock_wait_timeout = :v"), {"v": saved})
            conn.commit()


@contextlib.contextmanager
def _sqlite_read_only(conn: sa.Connection, timeout_s: float, _flavor: Flavor) -> Iterator[None]:
    raw: Any = conn.connection.dbapi_connection
    deadline = [time.monotonic() + timeout_s]

    def restart_clock(*_args: object) -> None:
        deadline[0] = time.monotonic() + timeout_s

    # SQLite has no statement timeout: a progress handler aborts a statement past its deadline.
    raw.set_progress_handler(lambda: 1 if time.monotonic() > deadline[0] else 0, 10_000)
    event.listen(conn, "before_cursor_execute", restart_clock)
    busy = conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one()
    try:
        conn.exec_driver_sql("PRAGMA query_only = ON")
        # Waiting for a writer's lock counts against the same bound as running.
        conn.exec_driver_sql(f"PRAGMA busy_timeout = {max(1, int(timeout_s * 1000))}")
        conn.exec_driver_sql("BEGIN")  # deferred: one read snapshot from the first read on
        yield
    finally:
        _rollback_quietly(conn)
        event.remove(conn, "before_cursor_execute", restart_clock)
        raw.set_progress_handler(None, 0)
        with contextlib.suppress(sa.exc.DBAPIError):
            conn.exec_driver_sql("PRAGMA query_only = OFF")
            conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(busy)}")
            conn.commit()


def _rollback_quietly(conn: sa.Connection) -> None:
    with contextlib.suppress(sa.exc.DBAPIError):
        conn.rollback()


# --- schemas ------------------------------------------------------------------------------------


def current_schema(conn: sa.Connection) -> str | None:
    """The schema an unqualified name resolves to (MySQL: the database in use; SQLite: main)."""
    flavor = flavor_of(conn)
    if flavor == "sqlite":
        return "main"
    if flavor == "postgresql":
        return conn.exec_driver_sql("SELECT current_schema()").scalar_one()
    return conn.exec_driver_sql("SELECT DATABASE()").scalar_one()


def database_name(conn: sa.Connection) -> str | None:
    flavor = flavor_of(conn)
    if flavor == "postgresql":
        return conn.exec_driver_sql("SELECT current_database()").scalar_one()
    if flavor == "sqlite":
        return conn.engine.url.database or ":memory:"
    return conn.exec_driver_sql("SELECT DATABASE()").scalar_one()


# --- catalog statistics ---------------------------------------------------------------------------


def _pg_stats_query(want_sizes: bool) -> sa.TextClause:
    """Planner-style estimate: rows per page at the last ANALYZE times the pages the table has now.

    Sizing opens each relation (pg_relation_size takes an AccessShareLock), so a table locked by a
    running ALTER blocks it; without sizes the query reads pg_class only and never waits.
    """
    pages_now = "pg_relation_size(l.oid) / current_setting('block_size')::int" if want_sizes else "l.relpages"
    total = "(SELECT sum(pg_total_relation_size(l)) FROM unnest(r.leaves) l)" if want_sizes else "NULL"
    return sa.text(
        f"""
        WITH rels AS (
            SELECT c.oid, c.relname,
                   CASE WHEN c.relkind = 'p'
                        THEN ARRAY(SELECT t.relid FROM pg_partition_tree(c.oid) t WHERE t.isleaf)
                        ELSE ARRAY[c.oid] END AS leaves
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = :schema AND c.relkind IN ('r', 'p')
        )
        SELECT r.relname,
               (SELECT CASE WHEN bool_or(l.reltuples < 0) THEN NULL
                            ELSE sum(CASE WHEN l.relpages > 0 THEN l.reltuples / l.relpages * ({pages_now})
                                          ELSE l.reltuples END) END
                FROM pg_class l WHERE l.oid = ANY (r.leaves)) AS estimate,
               {total} AS total_bytes
        FROM rels r
        """
    )


_MYSQL_STATS = sa.text(
    "SELECT TABLE_NAME, TABLE_ROWS, DATA_LENGTH, INDEX_LENGTH FROM information_schema.TABLES"
    " WHERE TABLE_SCHEMA = :schema AND TABLE_TYPE = 'BASE TABLE'"
)


def catalog_stats(conn: sa.Connection, schema: str | None, *, want_sizes: bool = True) -> dict[str, TableStats]:
    """Estimated rows and size per table of ``schema``, from the catalog only (no table is read)."""
    flavor = flavor_of(conn)
    if flavor == "postgresql":
        return {
            name: TableStats(
                None if est is None else round(float(est)),
                "pg_class.reltuples (planner estimate)" if est is not None else None,
                int(size) if size is not None else None,
                "pg_total_relation_size (table + indexes + TOAST)" if size is not None else None,
            )
            for name, est, size in conn.execute(_pg_stats_query(want_sizes), {"schema": schema})
        }
    if flavor in ("mysql", "mariadb"):
        return {
            name: TableStats(
                None if rows is None else int(rows),
                "information_schema.TABLES.TABLE_ROWS (storage-engine estimate)" if rows is not None else None,
                int((data or 0) + (index or 0)) if want_sizes else None,
                "information_schema.TABLES DATA_LENGTH + INDEX_LENGTH" if want_sizes else None,
            )
            for name, rows, data, index in conn.execute(_MYSQL_STATS, {"schema": schema})
        }
    return _sqlite_stats(conn, schema or "main", want_sizes)


def _sqlite_stats(conn: sa.Connection, schema: str, want_sizes: bool) -> dict[str, TableStats]:
    estimates = _sqlite_stat1(conn, schema)
    sizes = _sqlite_dbstat(conn, schema) if want_sizes else None
    method = "dbstat (table + its indexes)" if sizes is not None else None
    names = set(estimates) | set(sizes or {})
    return {
        name: TableStats(
            estimates.get(name),
            "sqlite_stat1 (from the last ANALYZE)" if name in estimates else None,
            (sizes or {}).get(name),
            method if sizes is not None and name in sizes else None,
        )
        for name in names
    }


def _sqlite_stat1(conn: sa.Connection, schema: str) -> dict[str, int]:
    master = table_ref(schema=schema, name="sqlite_master")
    has = conn.execute(
        sa.select(sa.func.count()).select_from(master).where(sa.column("name") == "sqlite_stat1")
    ).scalar_one()
    if not has:
        return {}
    stat1 = table_ref(schema=schema, name="sqlite_stat1")
    out: dict[str, int] = {}
    for tbl, stat in conn.execute(sa.select(sa.column("tbl"), sa.column("stat")).select_from(stat1)):
        first = str(stat or "").split(" ", 1)[0]
        if first.isdigit():
            out[tbl] = max(out.get(tbl, 0), int(first))
    return out


def sqlite_file_size(conn: sa.Connection, schema: str = "main") -> int:
    preparer = conn.dialect.identifier_preparer
    pages = conn.exec_driver_sql(f"PRAGMA {preparer.quote_identifier(schema)}.page_count").scalar_one()
    size = conn.exec_driver_sql(f"PRAGMA {preparer.quote_identifier(schema)}.page_size").scalar_one()
    return int(pages) * int(size)


def _sqlite_dbstat(conn: sa.Connection, schema: str) -> dict[str, int] | None:
    """Per-table bytes (table b-tree plus its indexes) or None when dbstat is missing or too costly."""
    if sqlite_file_size(conn, schema) > SQLITE_DBSTAT_MAX_BYTES:
        return None
    try:
        with conn.begin_nested():
            rows = conn.execute(
                sa.text("SELECT name, SUM(pgsize) FROM dbstat WHERE schema = :schema GROUP BY name"),
                {"schema": schema},
            ).all()
    except sa.exc.OperationalError:  # SQLite built without SQLITE_ENABLE_DBSTAT_VTAB
        return None
    owner = dict(
        conn.execute(
            sa.select(sa.column("name"), sa.column("tbl_name")).select_from(
                table_ref(schema=schema, name="sqlite_master")
            )
        ).all()
    )
    out: dict[str, int] = {}
    for name, size in rows:
        table = owner.get(name, name)
        out[table] = out.get(table, 0) + int(size or 0)
    return out


def database_size(conn: sa.Connection, schema: str | None) -> tuple[int | None, str | None]:
    """The whole database's (or MySQL schema's, or SQLite file's) size and how it was measured."""
    flavor = flavor_of(conn)
    if flavor == "postgresql":
        size = conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar_one()
        return int(size), "pg_database_size (whole database)"
    if flavor in ("mysql", "mariadb"):
        size = conn.execute(
            sa.text(
                "SELECT SUM(DATA_LENGTH + INDEX_LENGTH) FROM information_schema.TABLES WHERE TABLE_SCHEMA = :schema"
            ),
            {"schema": schema},
        ).scalar_one()
        return int(size or 0), "information_schema.TABLES DATA_LENGTH + INDEX_LENGTH (whole schema, estimate)"
    return sqlite_file_size(conn, schema or "main"), "page_count * page_size (whole file)"


def raw_column_types(conn: sa.Connection, schema: str | None, table: str) -> dict[str, str]:
    """The catalog's own type text per column, for types SQLAlchemy does not recognise (xml, ...)."""
    flavor = flavor_of(conn)
    if flavor == "postgresql":
        query = sa.text(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
            " JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = :schema AND c.relname = :table AND a.attnum > 0 AND NOT a.attisdropped"
        )
    elif flavor in ("mysql", "mariadb"):
        query = sa.text(
            "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS"
            " WHERE TABLE_SCHEMA = :schema AND TABLE_NAME = :table"
        )
    else:
        query = sa.text("SELECT name, type FROM pragma_table_info(:table, :schema)")
    return {str(name): str(text) for name, text in conn.execute(query, {"schema": schema, "table": table})}


_MYSQL_CATALOG = sa.text(
    "SELECT COLUMN_NAME, COLUMN_TYPE, CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLUMNS"
    " WHERE TABLE_SCHEMA = COALESCE(:schema, DATABASE()) AND TABLE_NAME = :table"
)
_PG_CATALOG = sa.text(
    "SELECT attname, format_type(atttypid, atttypmod), NULL, NULL FROM pg_attribute"
    " WHERE attrelid = to_regclass(:name) AND attnum > 0 AND NOT attisdropped"
)


def column_catalog(
    conn: sa.Connection, schema: str | None, table: str
) -> dict[str, tuple[str, str | None, str | None]]:
    """Per column: the catalog's type text, and on MySQL/MariaDB its character set and collation (which
    SQLAlchemy's reflection states only where they differ from the table's default). On SQLite the declared
    type, which is empty for a column declared without one."""
    flavor = flavor_of(conn)
    if flavor in ("mysql", "mariadb"):
        rows = conn.execute(_MYSQL_CATALOG, {"schema": schema, "table": table}).all()
    elif flavor == "postgresql":
        name = conn.dialect.identifier_preparer.format_table(sa.table(table, schema=schema))
        rows = conn.execute(_PG_CATALOG, {"name": name}).all()
    else:
        rows = conn.execute(sa.text("SELECT name, type, NULL, NULL FROM pragma_table_info(:table)"), {"table": table})
    return {str(r[0]): (str(r[1] or ""), r[2], r[3]) for r in rows}


_MARIADB_CHECKS = sa.text(
    "SELECT TABLE_NAME, CONSTRAINT_NAME, CHECK_CLAUSE, LEVEL FROM information_schema.CHECK_CONSTRAINTS"
    " WHERE CONSTRAINT_SCHEMA = :schema ORDER BY TABLE_NAME, CONSTRAINT_NAME"
)


def mariadb_check_constraints(conn: sa.Connection, schema: str) -> dict[str, list[dict[str, str]]]:
    """MariaDB keeps table- and column-level checks (including JSON's json_valid) in information_schema."""
    out: dict[str, list[dict[str, str]]] = {}
    for table, name, clause, level in conn.execute(_MARIADB_CHECKS, {"schema": schema}):
        out.setdefault(table, []).append({"name": name, "sqltext": clause, "level": str(level).lower()})
    return out


# MySQL/MariaDB spatial types: SQLAlchemy reflects them as NullType, the catalog names them.
MYSQL_SPATIAL_TYPES = frozenset(
    {"geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon"}
    | {"geometrycollection", "geomcollection"}
)


class mysql_as_double(FunctionElement[Any]):
    """MariaDB/MySQL ``CAST(col AS DOUBLE)``: a FLOAT widened exactly. The text protocol prints a
    single-precision value with 6 significant digits (3.4028234663852886e+38 arrives as 3.40282e+38), and
    SQLAlchemy skips a CAST to DOUBLE on MySQL, hence this construct (the copy, diff and validate use it)."""

    type = sa.Float()
    inherit_cache = True
    name = "mysql_as_double"


@compiles(mysql_as_double)
def _compile_mysql_as_double(element: mysql_as_double, compiler: Any, **kw: Any) -> str:
    (expr,) = list(element.clauses)
    return f"CAST({compiler.process(expr, **kw)} AS DOUBLE)"
