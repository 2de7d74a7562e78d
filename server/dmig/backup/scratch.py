"""Throw-away databases to restore a backup into: created fresh, always dropped afterwards.

PostgreSQL: a new database ``dmig_verify_<id>`` on the same server (a native dump needs a whole
database); when the role may not create databases, a portable backup falls back to a new schema
of that name in the given database. MariaDB/MySQL: a new database. SQLite: a temporary file.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL

from dmig import policy
from dmig.backup.restore import Target
from dmig.backup.session import db_error
from dmig.db.access import trusted_folder
from dmig.db.engine import classify, create
from dmig.db.urls import display_url
from dmig.errors import DatabaseError


def scratch_name(backup_id: str) -> str:
    return f"dmig_verify_{backup_id.split('-')[-1]}_{secrets.token_hex(3)}"


@contextlib.contextmanager
def _admin(url: URL) -> Iterator[sa.Connection]:
    engine = create(url, pool_size=1).execution_options(isolation_level="AUTOCOMMIT")
    try:
        try:
            conn = engine.connect()
        except sa.exc.SQLAlchemyError as exc:
            raise classify(exc, url) from None
        with conn:
            yield conn
    finally:
        engine.dispose()


def _quote(conn: sa.Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote_identifier(name)


@contextlib.contextmanager
def scratch(dialect: str, url: URL | None, backup_id: str, *, need_database: bool) -> Iterator[tuple[Target, str]]:
    """(restore target, description for the record); the scratch is dropped whatever happens."""
    if dialect == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="dmig-verify-"))
        try:
            path = folder / "scratch.db"
            target = Target(URL.create("sqlite", database=str(path)), "sqlite", None, True)
            policy.created_here(target.url)  # ours, throw-away: the policy's connect check lets it through
            with trusted_folder(folder):  # our own temp folder: allowed even when SQLite files are confined
                yield target, "temporary SQLite file"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    assert url is not None
    name = scratch_name(backup_id)
    with _admin(url) as admin:
        kind = _create(admin, dialect, name, allow_schema=not need_database)
    try:
        if kind == "database":
            target = Target(url.set(database=name), dialect, None, True)
            policy.created_here(target.url)
        else:
            target = Target(url, dialect, name, True)
        yield target, f"{kind} {name} on {display_url(url)}"
    finally:
        with _admin(url) as admin:
            _drop(admin, dialect, name, kind)


def _create(conn: sa.Connection, dialect: str, name: str, *, allow_schema: bool) -> str:
    q = _quote(conn, name)
    try:
        if dialect == "mysql":
            conn.exec_driver_sql(f"CREATE DATABASE {q} CHARACTER SET utf8mb4")
        else:
            conn.exec_driver_sql(f"CREATE DATABASE {q}")
        return "database"
    except sa.exc.DBAPIError as exc:
        if dialect != "postgresql" or not allow_schema:
            raise db_error(exc, f"cannot create the scratch database {name} (the role needs CREATEDB)") from None
    try:
        conn.exec_driver_sql(f"CREATE SCHEMA {q}")
    except sa.exc.DBAPIError as exc:
        raise db_error(exc, f"cannot create a scratch database or schema {name}") from None
    return "schema"


def _drop(conn: sa.Connection, dialect: str, name: str, kind: str) -> None:
    q = _quote(conn, name)
    try:
        if kind == "schema":
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {q} CASCADE")
        elif dialect == "postgresql":
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {q} WITH (FORCE)")
        else:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {q}")
    except sa.exc.DBAPIError as exc:
        raise DatabaseError(f"the scratch {kind} {name} could not be dropped; drop it by hand: {exc.orig}") from None
