"""One driver connection with explicit transactions, for the bulk paths.

The loaders need the driver itself (psycopg COPY, PyMySQL LOAD DATA, sqlite3 executemany) and
need the checkpoint UPDATE to run in the very same transaction as the rows it describes. This
wrapper gives both: SQLAlchemy Core statements compiled for the dialect (so identifiers are
quoted by SQLAlchemy and values are bound, never pasted) and the raw DBAPI connection.
"""

from __future__ import annotations

import contextlib
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from dmig.db.engine import classify
from dmig.db.urls import dialect_of


class RawConn:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.name = dialect_of(engine.url)
        self.dialect = engine.dialect
        try:
            self.proxy = engine.raw_connection()
        except (sa.exc.DBAPIError, OSError) as exc:
            raise classify(exc, engine.url) from None
        self.dbapi: Any = self.proxy.driver_connection
        self.preparer = self.dialect.identifier_preparer
        if self.name == "sqlite":
            self._saved_isolation = self.dbapi.isolation_level
            self.dbapi.isolation_level = None  # we issue BEGIN/COMMIT ourselves
        elif self.name == "postgresql":
            self.dbapi.autocommit = False
            self.dbapi.execute("SET TIME ZONE 'UTC'")
            self.dbapi.commit()
        else:
            with self.dbapi.cursor() as cur:
                cur.execute("SET time_zone = '+00:00'")
            self.dbapi.commit()

    def compile(self, stmt: sa.sql.ClauseElement) -> tuple[str, Any]:
        compiled = stmt.compile(dialect=self.dialect, compile_kwargs={"render_postcompile": True})
        params = compiled.construct_params()
        if compiled.positional:
            return str(compiled), tuple(params[k] for k in compiled.positiontup or [])
        return str(compiled), params

    def execute(self, stmt: sa.sql.ClauseElement) -> Any:
        sql, params = self.compile(stmt)
        cur = self.dbapi.cursor()
        cur.execute(sql, params)
        return cur

    def rowcount(self, stmt: sa.sql.ClauseElement) -> int:
        cur = self.execute(stmt)
        try:
            return int(cur.rowcount)
        finally:
            cur.close()

    def scalar(self, stmt: sa.sql.ClauseElement) -> Any:
        cur = self.execute(stmt)
        try:
            row = cur.fetchone()
            return row[0] if row else None
        finally:
            cur.close()

    def all(self, stmt: sa.sql.ClauseElement) -> list[tuple[Any, ...]]:
        cur = self.execute(stmt)
        try:
            return [tuple(r) for r in cur.fetchall()]
        finally:
            cur.close()

    def begin(self) -> None:
        if self.name == "sqlite":
            self.dbapi.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.dbapi.commit() if self.name != "sqlite" else self.dbapi.execute("COMMIT")

    def rollback(self) -> None:
        if self.name == "sqlite":
            if self.dbapi.in_transaction:
                self.dbapi.execute("ROLLBACK")
        else:
            self.dbapi.rollback()

    def quote_table(self, name: str, schema: str | None) -> str:
        return self.preparer.format_table(sa.table(name, schema=schema))

    def quote(self, name: str) -> str:
        return self.preparer.quote(name)

    def close(self) -> None:
        # The connection may already be gone; closing must not mask the error that brought us here.
        with contextlib.suppress(Exception):
            self.rollback()
        if self.name == "sqlite":
            self.dbapi.isolation_level = self._saved_isolation
        with contextlib.suppress(Exception):
            self.proxy.close()
