"""Engines with a bounded connect time and one clear error per connection failure.

A wrong password, an unknown database or an unreachable host must answer within seconds with
a structured error, never hang the agent or print a driver traceback with the URL inside.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine

from dmig import policy
from dmig.db import access, localinfile
from dmig.db.urlpolicy import check_url
from dmig.db.urls import Dialect, dialect_of, display_url, parse_url
from dmig.errors import ConnectionFailed, InvalidInput, NotFound
from dmig.redact import redact

CONNECT_TIMEOUT_S = 5


def _connect_args(dialect: Dialect, *, read_only: bool, local_infile: bool) -> dict[str, object]:
    """Driver settings we choose (they win over the URL's, whose options are allow-listed anyway)."""
    if dialect == "postgresql":
        args: dict[str, object] = {"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "dmig"}
        if read_only:
            # A connect option, so every transaction of the session starts read-only (SQLSTATE 25006).
            args["options"] = "-c default_transaction_read_only=on"
        return args
    if dialect == "mysql":
        args = {"connect_timeout": CONNECT_TIMEOUT_S, "local_infile": local_infile}
        if read_only:
            args["init_command"] = _MYSQL_READ_ONLY
        return args
    return {"timeout": 30}


_MYSQL_READ_ONLY = "SET SESSION TRANSACTION READ ONLY"


def _sqlite_file(url: URL) -> Path | None:
    db = url.database
    if not db or db == ":memory:":
        return None
    return Path(db)


def create(raw_url: str | URL, *, must_exist: bool = True, pool_size: int = 5, local_infile: bool = False) -> Engine:
    """Build an engine (not yet connected). SQLite files must exist unless we are creating one.

    The connection rules of the current tool call (``dmig.db.access``: read-only sessions, the
    folders SQLite files may be in) are applied here, the one place every engine is made.
    ``local_infile``: only for the copy's bulk loads (``dmig.db.localinfile``); never for a read-only call.
    """
    url = raw_url if isinstance(raw_url, URL) else parse_url(raw_url)
    dialect = dialect_of(url)
    check_url(url, dialect, display_url(url))  # URLs built in code pass the same allow-list
    policy.check_connect(url)  # the project policy's backstop: no engine to a database the call did not admit
    acc = access.current()
    if dialect == "sqlite":
        return _create_sqlite(url, acc, must_exist=must_exist)
    engine = sa.create_engine(
        url,
        connect_args=_connect_args(dialect, read_only=acc.read_only, local_infile=local_infile and not acc.read_only),
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=pool_size,
    )
    if dialect == "mysql":
        localinfile.install()
        event.listen(engine, "connect", _mysql_on_connect)
    if acc.read_only:
        event.listen(engine, "checkout", _READ_ONLY_AGAIN[dialect])
    return engine


def _create_sqlite(url: URL, acc: access.Access, *, must_exist: bool) -> Engine:
    path = _sqlite_file(url)
    ro_uri: str | None = None
    if path is not None:
        if acc.sqlite_roots is not None or acc.read_only:
            path = acc.sqlite_path(str(path))
            url = url.set(database=str(path))  # open the very file that was checked
        try:
            exists = path.exists()
        except OSError as exc:  # a name too long for the file system, a component that is a file...
            raise InvalidInput(
                f"SQLite database path cannot be opened: {exc.strerror}", reason="sqlite_path_invalid"
            ) from None
        if must_exist and not exists:
            raise NotFound(f"SQLite database file {path} does not exist", path=str(path), reason="sqlite_file_missing")
        if acc.read_only:
            # Our own URI, never the user's: SQLite itself refuses writes ("attempt to write a readonly database").
            ro_uri = f"file:{quote(str(path))}?mode=ro"
    engine = sa.create_engine(url, connect_args=_connect_args("sqlite", read_only=False, local_infile=False))
    if ro_uri is not None:

        def open_read_only(_dialect: object, _record: object, cargs: list[Any], cparams: dict[str, Any]) -> None:
            cargs[:] = [ro_uri]
            cparams["uri"] = True

        event.listen(engine, "do_connect", open_read_only)

    def on_connect(dbapi_conn: sqlite3.Connection, record: object) -> None:
        acc.guard_sqlite(dbapi_conn)
        _sqlite_on_connect(dbapi_conn, record)

    event.listen(engine, "connect", on_connect)
    return engine


def _mysql_on_connect(dbapi_conn: Any, _record: object) -> None:
    localinfile.disable(dbapi_conn)  # even a bulk-load connection sends a file only inside allow_file()


def _read_only_again(sql: str) -> Callable[[Any, object, object], None]:
    """Read-only again on every checkout, committed so the next transaction starts read-only: code that
    set READ WRITE on a pooled connection (or user SQL that changed the session default) cannot leak it."""

    def on_checkout(dbapi_conn: Any, _record: object, _proxy: object) -> None:
        cur = dbapi_conn.cursor()
        try:
            cur.execute(sql)
        finally:
            cur.close()
        dbapi_conn.commit()

    return on_checkout


_READ_ONLY_AGAIN = {
    "postgresql": _read_only_again("SET default_transaction_read_only = on"),
    "mysql": _read_only_again(_MYSQL_READ_ONLY),
}


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


def open_engine(
    raw_url: str | URL, *, must_exist: bool = True, pool_size: int = 5, local_infile: bool = False
) -> Engine:
    """An engine whose first connection has been proven (so later failures are not connect failures)."""
    url = raw_url if isinstance(raw_url, URL) else parse_url(raw_url)
    engine = create(url, must_exist=must_exist, pool_size=pool_size, local_infile=local_infile)
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
