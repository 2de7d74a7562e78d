"""Dialect DDL fragments SQLAlchemy Core has no construct for (ALTER TABLE ... ADD/DROP/RENAME COLUMN,
MySQL's ALGORITHM/LOCK clauses, trigger plumbing) and the SQLite 12-step table rebuild.

Every fragment is assembled only from identifiers quoted by the dialect's preparer and from
SQL compiled by SQLAlchemy, never from user text.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.schema import CreateColumn, CreateTable

from dmig.spec.context import OpContext
from dmig.spec.steps import Step


def tref(ctx: OpContext, table: str, schema: str | None, columns: list[str]) -> sa.TableClause:
    """A lightweight table clause for DML/expressions (no live schema needed)."""
    return sa.table(table, *[sa.column(c) for c in dict.fromkeys(columns)], schema=schema)


def column_sql(ctx: OpContext, column: sa.Column) -> str:
    """'"name" TYPE DEFAULT ... NOT NULL' as the dialect spells it."""
    sa.MetaData()  # columns must belong to no table for CreateColumn; a fresh Column never does
    return str(CreateColumn(column).compile(dialect=ctx.sa)).strip()


def mysql_online(ctx: OpContext, algorithm: str | None, lock: str | None = "NONE") -> str:
    parts = []
    if algorithm:
        parts.append(f"ALGORITHM={algorithm}")
    if lock and algorithm != "INSTANT":
        parts.append(f"LOCK={lock}")
    return (", " + ", ".join(parts)) if parts else ""


def mysql_add_column_algorithm(ctx: OpContext) -> str:
    """INSTANT ADD COLUMN: MariaDB 10.3+, MySQL 8.0.12+ (last position only before 8.0.29/10.4)."""
    return "INSTANT" if ctx.mysql_at_least((10, 3), (8, 0, 12)) else "INPLACE"


def mysql_drop_column_algorithm(ctx: OpContext) -> str:
    """INSTANT DROP COLUMN: MariaDB 10.4+, MySQL 8.0.29+; else INPLACE rebuilds the table (still online)."""
    return "INSTANT" if ctx.mysql_at_least((10, 4), (8, 0, 29)) else "INPLACE"


def mysql_write_locked(ctx: OpContext, table: str, schema: str | None, statements: list[str]) -> list[str]:
    """``LOCK TABLES t WRITE; ...; UNLOCK TABLES`` around DDL that must look atomic to other sessions.

    MySQL DDL commits statement by statement: between dropping sync triggers and the ALTER that
    follows, a write through one shape would not reach the other (a stale compat column, or a write
    lost with the dropped column). Under a WRITE lock no other session reads or writes the table
    in between. Only where the ALTER is instant (MariaDB 10.4+, MySQL 8.0.29+: DROP COLUMN INSTANT),
    so the table is blocked for milliseconds; older servers would rebuild it under the lock, and
    there the statements stay unwrapped (the window is named in the step's lock_reason). The executor
    runs a step's statements in order on one connection and releases the lock if one fails.
    """
    if not (ctx.my and ctx.mysql_at_least((10, 4), (8, 0, 29))):
        return statements
    return [f"LOCK TABLES {ctx.qt(table, schema)} WRITE", *statements, "UNLOCK TABLES"]


MYSQL_LOCKED_REASON = (
    "LOCK TABLES ... WRITE around the trigger drop and an instant ALTER: reads and writes of the table wait for "
    "milliseconds (after open transactions on it end; lock_wait_timeout bounds that wait), so no write lands "
    "between the two"
)
MYSQL_UNLOCKED_REASON = (
    "this server cannot drop a column instantly, so the trigger drop and the ALTER are not wrapped in LOCK TABLES "
    "(that would block reads for the whole rebuild): a write in between is not synced; stop writers of the old "
    "shape first"
)


def mysql_locked_facts(ctx: OpContext, lock: dict) -> dict:
    """``lock`` (brief_alter_lock facts) as they are for a step wrapped, or not, by mysql_write_locked."""
    if ctx.mysql_at_least((10, 4), (8, 0, 29)):
        return {**lock, "lock": "table write lock (LOCK TABLES, brief)", "lock_reason": MYSQL_LOCKED_REASON}
    return {**lock, "lock_reason": f"{lock['lock_reason']}; {MYSQL_UNLOCKED_REASON}"}


def add_column(ctx: OpContext, table: str, schema: str | None, column: sa.Column) -> str:
    stmt = f"ALTER TABLE {ctx.qt(table, schema)} ADD COLUMN {column_sql(ctx, column)}"
    if ctx.my:
        stmt += mysql_online(ctx, mysql_add_column_algorithm(ctx))
    return stmt


def drop_column(ctx: OpContext, table: str, schema: str | None, column: str) -> str:
    stmt = f"ALTER TABLE {ctx.qt(table, schema)} DROP COLUMN {ctx.q(column)}"
    if ctx.my:
        stmt += mysql_online(ctx, mysql_drop_column_algorithm(ctx))
    return stmt


def rename_column(ctx: OpContext, table: str, schema: str | None, old: str, new: str, type_sql: str | None) -> str:
    """RENAME COLUMN (PostgreSQL, SQLite 3.25+, MySQL 8.0+/MariaDB 10.5+); CHANGE on older MySQL."""
    qt = ctx.qt(table, schema)
    if ctx.my and not ctx.mysql_at_least((10, 5), (8, 0)):
        if not type_sql:
            from dmig.errors import InvalidInput

            raise InvalidInput(f"{ctx.version_text} renames with CHANGE COLUMN, which needs the column's type")
        return f"ALTER TABLE {qt} CHANGE COLUMN {ctx.q(old)} {ctx.q(new)} {type_sql}" + mysql_online(ctx, "INPLACE")
    stmt = f"ALTER TABLE {qt} RENAME COLUMN {ctx.q(old)} TO {ctx.q(new)}"
    if ctx.my:
        stmt += mysql_online(ctx, "INSTANT" if ctx.mysql_at_least((10, 5), (8, 0, 28)) else "INPLACE")
    return stmt


def type_sql(ctx: OpContext, type_: sa.types.TypeEngine) -> str:
    return type_.compile(dialect=ctx.sa)


def drop_trigger(ctx: OpContext, name: str, table: str, schema: str | None) -> str:
    if ctx.pg:
        return f"DROP TRIGGER IF EXISTS {ctx.q(name)} ON {ctx.qt(table, schema)}"
    if ctx.my:
        return f"DROP TRIGGER IF EXISTS {ctx.qt(name, schema)}"
    return f"DROP TRIGGER IF EXISTS {ctx.qt(name, schema)}"


class StepMaker:
    """Numbers steps per operation and phase so ids stay stable for the ledger."""

    def __init__(self, ctx: OpContext, op: str, phase: str) -> None:
        self.ctx, self.op, self.phase, self.n = ctx, op, phase, 0

    def __call__(self, slug: str, **fields) -> Step:
        self.n += 1
        return Step(
            id=f"op{self.ctx.index}.{self.phase}.{self.n}.{slug}",
            op_index=self.ctx.index,
            op=self.op,
            phase=self.phase,
            **fields,
        )


# ---------------------------------------------------------------------------------- locks, per dialect

PG_ACCESS_EXCLUSIVE = "ACCESS EXCLUSIVE"
SQLITE_WRITE = "database write lock (RESERVED -> EXCLUSIVE at commit)"


def brief_alter_lock(ctx: OpContext) -> dict:
    """Lock facts of a catalog-only ALTER (no scan, no rewrite)."""
    if ctx.pg:
        return {
            "lock": PG_ACCESS_EXCLUSIVE,
            "lock_risk": "medium",
            "lock_reason": "catalog-only change, but ACCESS EXCLUSIVE queues behind long transactions and "
            "blocks everything queued after it; run with a short lock_timeout and retry",
        }
    if ctx.my:
        return {
            "lock": "metadata lock (exclusive, brief)",
            "lock_risk": "medium",
            "lock_reason": "INSTANT/INPLACE ALTER still takes an exclusive metadata lock at start and end; it waits "
            "for open transactions on the table (lock_wait_timeout bounds the wait)",
        }
    return {"lock": SQLITE_WRITE, "lock_risk": "low", "lock_reason": "schema-only change, one short write transaction"}


# ---------------------------------------------------------------------------------- SQLite 12-step rebuild

Transform = Callable[[sa.Table, sa.MetaData], sa.Table]


def sqlite_rebuild(ctx: OpContext, table: str, transform: Transform) -> list[str]:
    """The documented 12-step procedure (sqlite.org/lang_altertable.html#otheralter); [] without a live schema.

    ``transform`` receives the live table and a fresh MetaData and returns the new table definition
    under the temporary name. Indexes, triggers and views are re-created from their stored SQL.
    """
    live = ctx.table(table, None)
    if live is None:
        return []
    tmp = ctx.name(table, "new")
    meta = sa.MetaData()
    new = transform(live, meta)
    assert new.name == tmp, "transform must build the table under the temporary name"
    cols = [c.name for c in new.columns if c.name in live.columns]
    col_list = ", ".join(ctx.q(c) for c in cols)
    stored = ctx.sqlite_schema_sql.get(table, [])
    out = ["PRAGMA foreign_keys = OFF", "BEGIN IMMEDIATE"]
    out += [f"DROP VIEW IF EXISTS {ctx.q(name)}" for kind, name, _sql in stored if kind == "view"]
    out.append(str(CreateTable(new).compile(dialect=ctx.sa)).strip())
    out.append(f"INSERT INTO {ctx.q(tmp)} ({col_list}) SELECT {col_list} FROM {ctx.q(table)}")
    out.append(f"DROP TABLE {ctx.q(table)}")
    out.append(f"ALTER TABLE {ctx.q(tmp)} RENAME TO {ctx.q(table)}")
    out += [sql for kind, _name, sql in stored if kind in ("index", "trigger", "view")]
    out += ["COMMIT", "PRAGMA foreign_keys = ON"]
    return out


def copy_table(ctx: OpContext, live: sa.Table, meta: sa.MetaData, name: str) -> sa.Table:
    """A detached copy of a reflected table under a new name (columns, PK, FKs, checks, uniques).

    Every other reflected table (and the original) is copied into ``meta`` too, so foreign keys,
    including self-references, resolve when the new definition is compiled.
    """
    for other in ctx.tables.values():
        if other.key not in meta.tables:
            other.to_metadata(meta)
    for fk in live.foreign_keys:
        target = fk.column.table
        if target.key not in meta.tables:
            target.to_metadata(meta)
    return live.to_metadata(meta, name=name)


def sqlite_rebuild_step(ctx: OpContext, make: StepMaker, slug: str, table: str, transform: Transform, **kw) -> Step:
    sql = sqlite_rebuild(ctx, table, transform)
    return make(
        slug,
        sql=sql,
        transactional=False,
        lock=SQLITE_WRITE,
        lock_risk="high",
        lock_reason="the 12-step rebuild copies the whole table inside one write transaction: every other writer "
        "waits (busy_timeout) until it commits",
        rewrites_table=True,
        retry_on_lock_timeout=True,
        requires_live_schema=True,
        **kw,
    )
