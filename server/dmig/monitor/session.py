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
from dmig.errors import ConnectionFailed

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


def describe_failure(exc: BaseException) -> str:
    """One short line for the timeline: the driver's first line, never a traceback or a password."""
    from dmig.redact import redact

    if isinstance(exc, ConnectionFailed):
        return exc.message
    text = str(getattr(exc, "orig", None) or exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return redact(first)[:300]
