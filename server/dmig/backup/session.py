"""Connections for backing up and restoring: one consistent snapshot to read, one transaction to write.

Reading: PostgreSQL runs REPEATABLE READ READ ONLY and exports its snapshot (``pg_dump
--snapshot`` then dumps exactly what our checksums read); MySQL/MariaDB starts a consistent
snapshot; SQLite holds a read transaction, during which no writer can commit. Every session uses
UTC, which the diff's canonical timestamp text assumes.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Iterator

import sqlalchemy as sa
from sqlalchemy.engine import URL

from dmig.backup.checksum import prepare_connection
from dmig.db.engine import classify, open_engine
from dmig.errors import DatabaseError, DmigError
from dmig.redact import redact

_SNAPSHOT = re.compile(r"^[0-9A-Fa-f-]+$")


@contextlib.contextmanager
def connection(url: URL, *, must_exist: bool = True) -> Iterator[sa.Connection]:
    engine = open_engine(url, must_exist=must_exist, pool_size=1)
    try:
        try:
            conn = engine.connect()
        except sa.exc.SQLAlchemyError as exc:
            raise classify(exc, url) from None
        with conn:
            prepare_connection(conn)
            conn.commit()
            yield conn
    finally:
        engine.dispose()


def begin_snapshot(conn: sa.Connection) -> str | None:
    """Start the read transaction every backup query runs in; PostgreSQL's snapshot id is returned."""
    name = conn.dialect.name
    if name == "postgresql":
        conn.exec_driver_sql("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        conn.commit()
        snap = str(conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one())
        return snap if _SNAPSHOT.match(snap) else None
    if name == "mysql":
        conn.exec_driver_sql("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        conn.commit()
        conn.exec_driver_sql("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        return None
    raw = conn.connection.dbapi_connection
    assert isinstance(raw, sqlite3.Connection)
    raw.execute("BEGIN")
    raw.execute("SELECT count(*) FROM sqlite_master").fetchone()  # takes the shared lock now
    return None


def end_snapshot(conn: sa.Connection) -> None:
    with contextlib.suppress(Exception):
        conn.rollback()
    if conn.dialect.name == "sqlite":
        raw = conn.connection.dbapi_connection
        if isinstance(raw, sqlite3.Connection) and raw.in_transaction:
            raw.rollback()


def db_error(exc: sa.exc.SQLAlchemyError, what: str, **details: object) -> DmigError:
    text = str(getattr(exc, "orig", None) or exc).strip()
    first = redact(text.splitlines()[0] if text else type(exc).__name__)[:400]
    return DatabaseError(f"{what}: {first}", **details)
