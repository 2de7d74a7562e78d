"""Step builders several operations share (adding/dropping nullable columns, compat views)."""

from __future__ import annotations

import sqlalchemy as sa

from dmig.spec.context import OpContext
from dmig.spec.ddl import (
    StepMaker,
    brief_alter_lock,
    column_sql,
    mysql_add_column_algorithm,
    mysql_drop_column_algorithm,
    mysql_locked_facts,
    mysql_online,
    mysql_write_locked,
)
from dmig.spec.steps import Step


def add_columns_sql(ctx: OpContext, table: str, schema: str | None, columns: list[sa.Column]) -> list[str]:
    """One ALTER on PostgreSQL/MySQL (atomic), one per column on SQLite. IF NOT EXISTS where the server has it."""
    qt = ctx.qt(table, schema)
    guard = "IF NOT EXISTS " if (ctx.pg or ctx.mariadb) else ""
    if ctx.lite:
        return [f"ALTER TABLE {qt} ADD COLUMN {column_sql(ctx, c)}" for c in columns]
    clauses = ", ".join(f"ADD COLUMN {guard}{column_sql(ctx, c)}" for c in columns)
    tail = mysql_online(ctx, mysql_add_column_algorithm(ctx)) if ctx.my else ""
    return [f"ALTER TABLE {qt} {clauses}{tail}"]


def drop_columns_sql(ctx: OpContext, table: str, schema: str | None, columns: list[str]) -> list[str]:
    qt = ctx.qt(table, schema)
    guard = "IF EXISTS " if (ctx.pg or ctx.mariadb) else ""
    if ctx.lite:
        return [f"ALTER TABLE {qt} DROP COLUMN {ctx.q(c)}" for c in columns]
    clauses = ", ".join(f"DROP COLUMN {guard}{ctx.q(c)}" for c in columns)
    tail = mysql_online(ctx, mysql_drop_column_algorithm(ctx)) if ctx.my else ""
    return [f"ALTER TABLE {qt} {clauses}{tail}"]


def add_columns_step(
    ctx: OpContext,
    make: StepMaker,
    table: str,
    schema: str | None,
    columns: list[sa.Column],
    *,
    rollback_id: str,
    description: str,
) -> Step:
    lock = brief_alter_lock(ctx)
    if ctx.my and mysql_add_column_algorithm(ctx) != "INSTANT":
        lock.update(
            lock_risk="medium",
            lock_reason=f"{ctx.version_text} has no INSTANT ADD COLUMN: INPLACE "
            "rebuilds the table online (LOCK=NONE), time ~ table size",
        )
    return make(
        "add_columns",
        description=description,
        sql=add_columns_sql(ctx, table, schema, columns),
        rewrites_table=ctx.my and mysql_add_column_algorithm(ctx) != "INSTANT",
        rollback=[rollback_id],
        **lock,
    )


def drop_columns_step(
    ctx: OpContext,
    make: StepMaker,
    slug: str,
    table: str,
    schema: str | None,
    columns: list[str],
    *,
    description: str,
    destructive: bool,
    extra_sql: list[str] | None = None,
    prefix_sql: list[str] | None = None,
    app: str | None = None,
) -> Step:
    lock = brief_alter_lock(ctx)
    rewrites = False
    if ctx.my and mysql_drop_column_algorithm(ctx) != "INSTANT":
        rewrites = True
        lock.update(
            lock_reason=f"{ctx.version_text} has no INSTANT DROP COLUMN: INPLACE rebuilds the table "
            "online (LOCK=NONE), time ~ table size"
        )
    if ctx.lite:
        rewrites = True
        lock.update(
            lock_risk="medium",
            lock_reason="SQLite DROP COLUMN rewrites every row of the table inside one write transaction",
        )
    body = [*(prefix_sql or []), *drop_columns_sql(ctx, table, schema, columns)]
    if ctx.my and prefix_sql:  # trigger drops then the ALTER: one unit for other sessions
        body = mysql_write_locked(ctx, table, schema, body)
        lock = mysql_locked_facts(ctx, lock)
    return make(
        slug,
        description=description,
        sql=[*body, *(extra_sql or [])],
        rewrites_table=rewrites,
        destructive=destructive,
        needs_app_cooperation=app,
        **lock,
    )


def pg_drop_schema_if_empty(ctx: OpContext, schema: str) -> str:
    """Drop a schema we may have created, but only when nothing else lives in it."""
    return (
        "DO $dmig$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
        f"ON n.oid = c.relnamespace WHERE n.nspname = {ctx.lit(schema)}) AND NOT EXISTS (SELECT 1 FROM "
        "pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = "
        f"{ctx.lit(schema)}) THEN EXECUTE {ctx.lit('DROP SCHEMA IF EXISTS ' + ctx.q(schema))}; END IF; END $dmig$"
    )
