"""Build an OpContext from a live connection: dialect, server version, and the reflected tables the
spec touches (primary keys, column types for MySQL MODIFY, SQLite rebuild definitions)."""

from __future__ import annotations

import warnings

import sqlalchemy as sa

from dmig.spec.context import OpContext
from dmig.spec.models import MigrationSpec, SpecOptions


def server_version(conn: sa.Connection) -> str:
    name = conn.dialect.name
    if name == "postgresql":
        return str(conn.exec_driver_sql("SHOW server_version").scalar())
    if name in ("mysql", "mariadb"):
        return str(conn.exec_driver_sql("SELECT VERSION()").scalar())
    return str(conn.exec_driver_sql("SELECT sqlite_version()").scalar())


def dialect_name(conn: sa.Connection) -> str:
    return "mysql" if conn.dialect.name in ("mysql", "mariadb") else conn.dialect.name


def live_context(
    conn: sa.Connection, spec: MigrationSpec | None = None, options: SpecOptions | None = None
) -> OpContext:
    """Reflect what the spec's operations touch; missing tables are simply absent (create_table)."""
    ctx = OpContext.offline(
        dialect_name(conn), server_version(conn), options or (spec.options if spec else SpecOptions())
    )
    if spec is None:
        return ctx
    meta = sa.MetaData()
    insp = sa.inspect(conn)
    wanted = {pair for op in spec.operations for pair in op.tables()}
    for schema, table in sorted(wanted, key=lambda p: (p[0] or "", p[1])):
        if not insp.has_table(table, schema=schema):
            continue
        with warnings.catch_warnings():  # SQLAlchemy 2.1 warns about PostgreSQL index dialect_options it reflects
            warnings.simplefilter("ignore", sa.exc.SAWarning)
            ctx.tables[(schema, table)] = sa.Table(table, meta, autoload_with=conn, schema=schema)
        if ctx.lite:
            ctx.sqlite_schema_sql[table] = _sqlite_dependents(conn, table)
    return ctx


def _sqlite_dependents(conn: sa.Connection, table: str) -> list[tuple[str, str, str]]:
    """Indexes and triggers of the table, and every view, with their stored SQL (for the rebuild)."""
    rows = conn.execute(
        sa.text(
            "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL AND "
            "((type IN ('index', 'trigger') AND tbl_name = :t) OR type = 'view') ORDER BY rowid"
        ),
        {"t": table},
    ).all()
    return [(r[0], r[1], r[2]) for r in rows]
