"""The monitor's own connection: read-only by default, every statement bounded, reopened after a loss.

The monitor talks to a database that is under migration load for as long as the migration runs,
so its connection is set up once (session defaults, not per-probe SET round trips that would
distort the latency it measures) to make every transaction read-only and every statement and
lock wait bounded. A probe then costs one round trip plus a rollback. If the connection is lost
(server restart, killed backend) the next call opens a new one instead of failing forever.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL

from dmig.db.dialects import Flavor, flavor_of
from dmig.db.engine import classify, create
from dmig.db.urls import dialect_of, parse_url
from dmig.errors import ConnectionFailed, DmigError

T = TypeVar("T")


class MonitorSession:
    """One dedicated connection, used under a lock so a sampler thread and callers can share it."""

    def __init__(self, url: str | URL, *, statement_timeout_s: float = 2.0) -> None:
        self.url = url if isinstance(url, URL) else parse_url(url)
        self.dialect = dialect_of(self.url)
        self.timeout_s = statement_timeout_s
        self.engine = create(self.url, pool_size=1)
        self.lock = threading.RLock()
        self._conn: sa.Connection | None = None
        self._deadline = [math.inf]
        self.flavor: Flavor | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    def connection(self) -> sa.Connection:
        """The live connection, opened (and configured) on first use or after a loss."""
        if self._conn is not None and not self._conn.invalidated and not self._conn.closed:
            return self._conn
        self._discard()
        try:
            conn = self.engine.connect()
        except (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.DatabaseError, OSError) as exc:
            raise classify(exc, self.url) from None
        try:
            self.flavor = flavor_of(conn)
            self._configure(conn)
        except sa.exc.DBAPIError as exc:
            conn.close()
            raise classify(exc, self.url) from None
        self._conn = conn
        return conn

    def close(self) -> None:
        with self.lock:
            self._discard()
            self.engine.dispose()

    def _discard(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None

    def _configure(self, conn: sa.Connection) -> None:
        if self.flavor == "postgresql":
            ms = f"{max(1, int(self.timeout_s * 1000))}ms"
            conn.exec_driver_sql("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            conn.execute(
                sa.text(
                    "SELECT set_config('statement_timeout', :ms, false), set_config('lock_timeout', :ms, false),"
                    " set_config('idle_in_transaction_session_timeout', '60s', false),"
                    " set_config('application_name', 'dmig-monitor', false)"
                ),
                {"ms": ms},
            )
        elif self.flavor in ("mysql", "mariadb"):
            wait = max(1, math.ceil(self.timeout_s))  # lock waits are whole seconds
            if self.flavor == "mariadb":
                conn.execute(sa.text("SET SESSION max_statement_time = :v"), {"v": float(self.timeout_s)})
            else:
                conn.execute(sa.text("SET SESSION max_execution_time = :v"), {"v": max(1, int(self.timeout_s * 1000))})
            conn.execute(sa.text("SET SESSION lock_wait_timeout = :v"), {"v": wait})
            conn.execute(sa.text("SET SESSION innodb_lock_wait_timeout = :v"), {"v": wait})
            conn.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
        else:
            self._sqlite_guard(conn)
        conn.commit()

    def _sqlite_guard(self, conn: sa.Connection) -> None:
        """SQLite has no statement timeout: a progress handler aborts a statement past its deadline."""
        raw: Any = conn.connection.dbapi_connection
        deadline = self._deadline

        def restart_clock(*_args: object) -> None:
            deadline[0] = time.monotonic() + self.timeout_s

        raw.set_progress_handler(lambda: 1 if time.monotonic() > deadline[0] else 0, 1_000)
        event.listen(conn, "before_cursor_execute", restart_clock)
        conn.exec_driver_sql("PRAGMA query_only = ON")

    # --- use -------------------------------------------------------------------------------------

    def run(self, work: Callable[[sa.Connection], T]) -> T:
        """Run ``work`` in one short transaction that is always rolled back (nothing it did can stick)."""
        with self.lock:
            conn = self.connection()
            try:
                return work(conn)
            except sa.exc.DBAPIError as exc:
                if exc.connection_invalidated:
                    self._discard()
                raise
            finally:
                if self._conn is not None:
                    try:
                        conn.rollback()
                    except sa.exc.DBAPIError:
                        self._discard()


# Fixed reasons for the SQLSTATEs / error numbers a probe meets. The server's own message text is
# never shown: it can carry data (an error-based read such as ``CAST(secret AS int)`` puts the
# secret in "invalid input syntax ... '<secret>'"; a refused probe once returned pg_authid SCRAM
# verifiers, mysql.user hashes and pg_hba_file_rules that way).
_PG_REASONS = {
    "57014": "statement timeout or canceled",
    "55P03": "lock timeout (lock not available)",
    "25006": "read-only transaction: writes are refused",
    "42501": "insufficient privilege",
    "42P01": "undefined table",
    "42703": "undefined column",
    "42883": "undefined function",
    "42601": "syntax error",
    "40P01": "deadlock detected",
    "40001": "serialization failure",
    "53300": "too many connections",
    "57P01": "server shutting down (admin shutdown)",
}
_PG_CLASSES = {
    "08": "connection exception",
    "0A": "feature not supported",
    "22": "data exception",
    "23": "integrity constraint violation",
    "25": "invalid transaction state",
    "28": "invalid authorization",
    "3D": "invalid catalog name",
    "40": "transaction rollback",
    "42": "syntax error or access rule violation",
    "53": "insufficient resources",
    "54": "program limit exceeded",
    "55": "object not in prerequisite state",
    "57": "operator intervention",
    "58": "system error",
    "XX": "internal error",
}
_MYSQL_REASONS = {
    1044: "access denied",
    1045: "access denied",
    1054: "unknown column",
    1064: "syntax error",
    1142: "access denied (table)",
    1143: "access denied (column)",
    1146: "no such table",
    1205: "lock wait timeout",
    1227: "access denied (privilege)",
    1305: "function does not exist",
    1317: "query interrupted",
    1792: "read-only transaction: writes are refused",
    1969: "statement timeout (max_statement_time)",
    2006: "server has gone away",
    2013: "lost connection to server",
    3024: "statement timeout (max_execution_time)",
}
_SQLITE_REASONS = {
    "SQLITE_READONLY": "read-only database: writes are refused",
    "SQLITE_INTERRUPT": "statement timeout (interrupted)",
    "SQLITE_BUSY": "database is locked",
    "SQLITE_LOCKED": "table is locked",
    "SQLITE_ERROR": "SQL error",
    "SQLITE_AUTH": "not authorized",
}


def describe_failure(exc: BaseException) -> str:
    """One short line for the timeline: an error code and a fixed reason, never the server's text.

    Our own ConnectionFailed message is kept (it is built by us and holds no server text).
    """
    if isinstance(exc, ConnectionFailed):
        return exc.message
    if isinstance(exc, DmigError):
        return f"{exc.code}: {exc.info().details.get('reason') or type(exc).__name__}"
    orig = getattr(exc, "orig", None) or exc
    args = getattr(orig, "args", ())
    if type(orig).__module__.startswith("pymysql") and args and isinstance(args[0], int):
        return f"MySQL error {args[0]}: {_MYSQL_REASONS.get(args[0], 'database error')}"
    sqlstate = getattr(orig, "sqlstate", None)  # psycopg
    if isinstance(sqlstate, str) and sqlstate:
        return f"SQLSTATE {sqlstate}: {_PG_REASONS.get(sqlstate) or _PG_CLASSES.get(sqlstate[:2], 'database error')}"
    name = getattr(orig, "sqlite_errorname", None)  # sqlite3 (Python >= 3.11)
    if isinstance(name, str):
        return f"{name}: {_SQLITE_REASONS.get(name, 'database error')}"
    if isinstance(orig, sa.exc.InvalidRequestError):
        return f"{type(orig).__name__}: the query could not be run"
    return f"{type(orig).__name__}: database error"
