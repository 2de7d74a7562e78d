"""add_index: PostgreSQL CREATE INDEX CONCURRENTLY (outside a transaction; a failed build leaves an
INVALID index that rollback drops concurrently), MySQL/MariaDB ALGORITHM=INPLACE LOCK=NONE, SQLite
CREATE INDEX (one write transaction)."""

from __future__ import annotations

from typing import Literal

import sqlalchemy as sa
from pydantic import Field

from dmig.spec.columns import Ident
from dmig.spec.context import OpContext
from dmig.spec.ddl import mysql_online
from dmig.spec.expr import compile_expression
from dmig.spec.ops.base import TableOp
from dmig.spec.steps import Finding, Step


class AddIndex(TableOp):
    """Create an index without blocking writes."""

    op: Literal["add_index"]
    name: Ident | None = Field(default=None, description="Index name (default ix_<table>_<columns>).")
    columns: list[Ident] = Field(min_length=1)
    unique: bool = False
    where: str | None = Field(default=None, description="Partial index predicate (PostgreSQL, SQLite).")
    using: Literal["btree", "hash", "gin", "gist", "brin"] | None = Field(default=None, description="PostgreSQL.")

    def index_name(self, ctx: OpContext) -> str:
        return self.name or ctx.name(self.table, *self.columns, prefix="uix" if self.unique else "ix")

    def sa_index(self, ctx: OpContext) -> sa.Index:
        t = sa.Table(self.table, sa.MetaData(), *[sa.Column(c, sa.Integer) for c in self.columns], schema=self.schema_)
        kw: dict = {}
        if self.where:
            pred = compile_expression(self.where, lambda n: sa.literal_column(ctx.q(n)), ctx.dialect)
            kw["postgresql_where"] = kw["sqlite_where"] = pred
        if self.using:
            kw["postgresql_using"] = self.using
        if ctx.pg:
            kw["postgresql_concurrently"] = True
        return sa.Index(self.index_name(ctx), *[t.c[c] for c in self.columns], unique=self.unique, **kw)

    def create_sql(self, ctx: OpContext) -> str:
        ix = self.sa_index(ctx)
        text = str(
            sa.schema.CreateIndex(ix, if_not_exists=not ctx.my).compile(
                dialect=ctx.sa, compile_kwargs={"literal_binds": True}
            )
        ).strip()
        if ctx.my:
            text = (
                f"ALTER TABLE {ctx.qt(self.table, self.schema_)} ADD {'UNIQUE ' if self.unique else ''}INDEX "
                f"{'IF NOT EXISTS ' if ctx.mariadb else ''}{ctx.q(self.index_name(ctx))} "
                f"({', '.join(ctx.q(c) for c in self.columns)})" + mysql_online(ctx, "INPLACE", "NONE")
            )
        return text

    def drop_sql(self, ctx: OpContext) -> str:
        name = self.index_name(ctx)
        if ctx.pg:
            return f"DROP INDEX CONCURRENTLY IF EXISTS {ctx.qt(name, self.schema_)}"
        if ctx.my:
            guard = "IF EXISTS " if ctx.mariadb else ""
            return f"ALTER TABLE {ctx.qt(self.table, self.schema_)} DROP INDEX {guard}{ctx.q(name)}" + mysql_online(
                ctx, "INPLACE", "NONE"
            )
        return f"DROP INDEX IF EXISTS {ctx.q(name)}"

    def expand(self, ctx: OpContext) -> list[Step]:
        make = self.maker(ctx, "expand")
        rb = f"op{ctx.index}.rollback.1.drop_index"
        if ctx.pg:
            return [
                make(
                    "create_index",
                    description=f"CREATE {'UNIQUE ' if self.unique else ''}INDEX CONCURRENTLY "
                    f"{self.index_name(ctx)} (reads and writes continue)",
                    sql=[self.create_sql(ctx)],
                    transactional=False,
                    lock="SHARE UPDATE EXCLUSIVE",
                    lock_risk="low",
                    lock_reason="concurrent build: two table scans, waits for older transactions to finish, "
                    "blocks only other DDL/VACUUM",
                    rollback=[rb],
                )
            ]
        if ctx.my:
            return [
                make(
                    "create_index",
                    description=f"Add index {self.index_name(ctx)} online",
                    sql=[self.create_sql(ctx)],
                    lock="metadata lock (exclusive at start/end; DML continues)",
                    lock_risk="low",
                    lock_reason="online INPLACE build (LOCK=NONE); time ~ table size",
                    rollback=[rb],
                )
            ]
        return [
            make(
                "create_index",
                description=f"Create index {self.index_name(ctx)}",
                sql=[self.create_sql(ctx)],
                lock="database write lock (RESERVED -> EXCLUSIVE at commit)",
                lock_risk="medium",
                lock_reason="SQLite builds the index inside one write transaction: other writers wait",
                rollback=[rb],
            )
        ]

    def _rollback(self, ctx: OpContext) -> list[Step]:
        return [
            self.maker(ctx, "rollback")(
                "drop_index",
                description=f"Drop index {self.index_name(ctx)} (also an INVALID one left by a failed build)",
                sql=[self.drop_sql(ctx)],
                transactional=not ctx.pg,
                lock="SHARE UPDATE EXCLUSIVE" if ctx.pg else "metadata lock" if ctx.my else "database write lock",
                lock_risk="low",
                lock_reason="concurrent/online drop",
            )
        ]

    def lint(self, ctx: OpContext) -> list[Finding]:
        out = []
        if self.where and ctx.my:
            out.append(
                self.finding(
                    ctx,
                    "parse-error",
                    "MySQL/MariaDB have no partial indexes: 'where' is ignored",
                    severity="warning",
                    safe_alternative="drop 'where' for MySQL",
                )
            )
        return out
