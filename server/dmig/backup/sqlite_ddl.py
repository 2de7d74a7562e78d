"""The schema SQL a native SQLite backup carries, checked before it runs in the target database.

A native SQLite restore recreates a missing table from the ``sqlite_master`` text stored inside
the backup file. That text is data from a file on disk, not SQL we wrote: a tampered backup
could hold a trigger (that runs on every later write), a view, or a "CREATE TABLE" that is in
fact something else. So only the manifest's table itself and its indexes are taken (a table
row named exactly like the manifest's table, index rows on it), anything else stored for that
table refuses the restore, and each statement runs under SQLite's own authorizer, which lets the
parser through only a CREATE TABLE of that name (and its automatic sqlite_sequence) or a CREATE
INDEX on it, in the main database. ATTACH, PRAGMA, triggers, views, CREATE ... AS SELECT and
every other action are denied by SQLite before they happen.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from dmig.errors import CorruptFile

# Functions an index expression or CHECK may name at CREATE time; these few reach outside the
# database or the process (when an application enabled them) and have no place in a schema.
_UNSAFE_FUNCTIONS = frozenset({"load_extension", "fts3_tokenizer", "readfile", "writefile", "edit", "zipfile"})
_SCHEMA_TABLE = "sqlite_master"


def statements_for(conn: sa.Connection, schema: str, table: str) -> list[str]:
    """The CREATE TABLE then CREATE INDEX texts stored for ``table``; refuses anything else stored for it."""
    rows = conn.execute(
        sa.text(
            f"SELECT type, name, sql FROM {schema}.sqlite_master WHERE tbl_name = :t AND sql IS NOT NULL "
            "ORDER BY type = 'index'"
        ),
        {"t": table},
    ).all()
    found = [(str(kind), str(name)) for kind, name, _ in rows]
    extra = [f"{kind} {name}" for kind, name in found if kind not in ("table", "index")]
    if extra:
        raise CorruptFile(
            f"the backup file stores {', '.join(extra)} for table {table}, which the backup does not restore "
            "(only the table and its indexes): the file is not what dmig wrote; refused before running any of it",
            table=table,
            found=extra,
        )
    if [name for kind, name in found if kind == "table"] != [table]:
        raise CorruptFile(
            f"the backup file holds no CREATE TABLE for {table}: refused", table=table, found=[n for _, n in found]
        )
    return [str(sql) for _, _, sql in rows]


def run_checked(conn: sa.Connection, table: str, statements: list[str]) -> None:
    """Run each statement with SQLite's authorizer allowing only the creation of ``table`` and its indexes."""
    for sql in statements:
        with _authorizer(conn, table):
            try:
                conn.exec_driver_sql(sql)
            except sa.exc.DatabaseError as exc:
                if "not authorized" not in str(exc.orig).lower():
                    raise
                raise CorruptFile(
                    f"the backup file's schema SQL for table {table} does more than create the table or its "
                    "indexes (SQLite's authorizer denied it): refused",
                    table=table,
                    statement=sql[:200],
                ) from None


@contextmanager
def _authorizer(conn: sa.Connection, table: str) -> Iterator[None]:
    raw: Any = conn.connection.dbapi_connection

    def decide(action: int, arg1: str | None, arg2: str | None, db: str | None, _trigger: str | None) -> int:
        if db not in (None, "main"):
            return sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_CREATE_TABLE and arg1 in (table, "sqlite_sequence"):
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_CREATE_INDEX and arg2 == table:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_REINDEX:
            return sqlite3.SQLITE_OK  # SQLite filling the new index (of the table just created)
        if action in (sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE) and arg1 == _SCHEMA_TABLE:
            return sqlite3.SQLITE_OK  # SQLite recording the new table/index in its schema
        if action == sqlite3.SQLITE_READ and arg1 in (table, _SCHEMA_TABLE):
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() not in _UNSAFE_FUNCTIONS:
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY

    raw.set_authorizer(decide)
    try:
        yield
    finally:
        raw.set_authorizer(None)
