"""Engines with a bounded connect time and one clear error per connection failure.

A wrong password, an unknown database or an unreachable host must answer within seconds with
a structured error, never hang the agent or print a driver traceback with the URL inside.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine

from dmig import policy
from dmig.db.urls import Dialect, dialect_of, display_url, parse_url
from dmig.errors import ConnectionFailed, InvalidInput, NotFound
from dmig.redact import redact

CONNECT_TIMEOUT_S = 5


def _connect_args(dialect: Dialect) -> dict[str, object]:
    if dialect == "postgresql":
        return {"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "dmig"}
    if dialect == "mysql":
        return {"connect_timeout": CONNECT_TIMEOUT_S, "local_infile": True}
    return {"timeout": 30}


def _sqlite_file(url: URL) -> Path | None:
    db = url.database
    if not db or db == ":memory:" or db.startswith("file:"):
        return None
    return Path(db)


def create(raw_url: str | URL, *, must_exist: bool = True, pool_size: int = 5) -> Engine:
    """Build an engine (not yet connected). SQLite files must exist unless we are creating one."""
    url = raw_url if isinstance(raw_url, URL) else parse_url(raw_url)
    dialect = dialect_of(url)
    policy.check_connect(url)  # the project policy's backstop: no engine to a database the call did not admit
    if dialect == "sqlite":
        path = _sqlite_file(url)
        if must_exist and path is not None and not path.exists():
            raise NotFound(f"SQLite database file {path} does not exist", path=str(path), reason="sqlite_file_missing")
        engine = sa.create_engine(url, connect_args=_connect_args(dialect))
        event.listen(engine, "connect", _sqlite_on_connect)
        return engine
    return sa.create_engine(
        url, connect_args=_connect_args(dialect), pool_pre_ping=True, pool_size=pool_size, max_overflow=pool_size
    )


def _sqlite_on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


# (alternatives, reason, hint): a rule matches when every substring of one alternative is in the
# lower-cased driver message; the first matching rule wins. Reasons are stable strings callers test.
_RULES: tuple[tuple[tuple[tuple[str, ...], ...], str, str], ...] = (
    (
        (("password authentication failed",), ("access denied",), ("authentication",), ("no password supplied",)),
        "authentication failed",
        "check the user name and password",
    ),
    ((("role", "does not exist"),), "authentication failed", "the user (role) does not exist on this server"),
    ((("unknown database",), ("database", "does not exist")), "unknown database", "check the database name"),
    (
        (("too many connections",), ("too many clients",)),
        "server busy",
        "the server refuses new connections; retry later",
    ),
    (
        (("invalid connection option",), ("invalid dsn",), ("invalid uri",)),
        "invalid connection option",
        "check the options after '?' in the URL",
    ),
    ((("file is not a database",),), "not a SQLite database", "the file exists but is not a SQLite database"),
    ((("unable to open database",),), "cannot open SQLite file", "check the path and permissions"),
    (
        tuple(
            (s,)
            for s in (
                "could not connect",
                "connection refused",
                "can't connect",
                "timeout",
                "timed out",
                "no route",
                "name or service not known",
                "could not translate",
                "nodename nor servname",
                "network is unreachable",
                "lost connection",
                "server closed the connection",
            )
        ),
        "server unreachable",
        "check host, port and that the server is running",
    ),
)


def _reason(low: str) -> tuple[str, str]:
    for alternatives, reason, hint in _RULES:
        if any(all(part in low for part in alt) for alt in alternatives):
            return reason, hint
    return "connection failed", "see the detail"


def classify(exc: BaseException, url: URL) -> ConnectionFailed:
    """Map a driver error to one clear message (no URL password, no driver traceback)."""
    text = str(getattr(exc, "orig", None) or exc)
    reason, hint = _reason(text.lower())
    where = display_url(url)
    first_line = redact(text.strip().splitlines()[0] if text.strip() else type(exc).__name__)
    return ConnectionFailed(f"{reason} for {where}: {hint}", reason=reason, url=where, detail=first_line[:300])


def _bad_option(exc: TypeError, url: URL) -> InvalidInput:
    """PyMySQL rejects an unknown ?option with a TypeError from its constructor."""
    return InvalidInput(
        f"unsupported connection option in {display_url(url)}: {redact(str(exc))}",
        reason="invalid connection option",
    )


@contextlib.contextmanager
def connect(raw_url: str | URL, *, must_exist: bool = True) -> Iterator[sa.Connection]:
    """Open one connection, translating connect failures; the engine is disposed afterwards."""
    url = raw_url if isinstance(raw_url, URL) else parse_url(raw_url)
    engine = create(url, must_exist=must_exist, pool_size=1)
    try:
        try:
            conn = engine.connect()
        except (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.DatabaseError, OSError) as exc:
            raise classify(exc, url) from None
        except TypeError as exc:
            raise _bad_option(exc, url) from None
        with conn:
            yield conn
    finally:
        engine.dispose()


def open_engine(raw_url: str | URL, *, must_exist: bool = True, pool_size: int = 5) -> Engine:
    """An engine whose first connection has been proven (so later failures are not connect failures)."""
    url = raw_url if isinstance(raw_url, URL) else parse_url(raw_url)
    engine = create(url, must_exist=must_exist, pool_size=pool_size)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.DatabaseError, OSError) as exc:
        engine.dispose()
        raise classify(exc, url) from None
    except TypeError as exc:
        engine.dispose()
        raise _bad_option(exc, url) from None
    return engine
