"""add_check: a CHECK constraint over the table's columns (a spec expression, compiled safely).

PostgreSQL: NOT VALID then VALIDATE (writes continue). MySQL 8.0.16+/MariaDB 10.2+ enforce CHECK
but can only add one with a table copy: the linter flags it and rows are checked first so the copy
does not fail midway. SQLite: 12-step rebuild.
"""

from __future__ import annotations

from typing import Literal

import sqlalchemy as sa
from pydantic import Field, field_validator

from dmig.spec.columns import Ident
from dmig.spec.context import OpContext
from dmig.spec.ddl import copy_table, mysql_online, sqlite_rebuild_step
from dmig.spec.dml import count_check
from dmig.spec.expr import columns_of, compile_expression, parse
from dmig.spec.ops.base import TableOp
from dmig.spec.steps import Finding, Step, ValidationCheck


class AddCheck(TableOp):
    """Add CHECK (expression)."""

    op: Literal["add_check"]
    name: Ident
    expression: str = Field(description="Condition over the table's columns, e.g. 'price >= 0'.")

    @field_validator("expression")
    @classmethod
    def _parses(cls, value: str) -> str:
        parse(value)
        return value

    def _cond(self, ctx: OpContext, resolve=None) -> sa.ColumnElement:
        return compile_expression(self.expression, resolve or (lambda n: sa.literal_column(ctx.q(n))), ctx.dialect)

    def _add_sql(self, ctx: OpContext) -> str:
        return (
            f"ALTER TABLE {ctx.qt(self.table, self.schema_)} ADD CONSTRAINT {ctx.q(self.name)} "
            f"CHECK ({ctx.sql(self._cond(ctx))})"
        )

    def expand(self, ctx: OpContext) -> list[Step]:
        make = self.maker(ctx, "expand")
        qt = ctx.qt(self.table, self.schema_)
        rb = [f"op{ctx.index}.rollback.1.drop_check"]
        if ctx.pg:
            return [
                make(
                    "add_not_valid",
                    description=f"Add CHECK {self.name} NOT VALID (new rows checked, no scan)",
                    sql=[
                        f"ALTER TABLE {qt} DROP CONSTRAINT IF EXISTS {ctx.q(self.name)}",
                        self._add_sql(ctx) + " NOT VALID",
                    ],
                    lock="ACCESS EXCLUSIVE",
                    lock_risk="medium",
                    lock_reason="instant, but queues behind long transactions: use lock_timeout",
                    rollback=rb,
                ),
                make(
                    "validate",
                    description=f"VALIDATE CONSTRAINT {self.name} (scans; writes continue)",
                    sql=[f"ALTER TABLE {qt} VALIDATE CONSTRAINT {ctx.q(self.name)}"],
                    lock="SHARE UPDATE EXCLUSIVE",
                    lock_risk="low",
                    lock_reason="scan without blocking writes",
                ),
            ]
        if ctx.my:
            return [
                make(
                    "add_check_copy",
                    description=f"Add CHECK {self.name} (MySQL/MariaDB copy the table)",
                    sql=[self._add_sql(ctx) + mysql_online(ctx, "COPY", "SHARED")],
                    lock="metadata lock + table copy (LOCK=SHARED: reads only)",
                    lock_risk="high",
                    lock_reason="ALGORITHM=COPY: writes are blocked for the whole copy",
                    rewrites_table=True,
                    rollback=rb,
                )
            ]

        def transform(live: sa.Table, meta: sa.MetaData) -> sa.Table:
            new = copy_table(ctx, live, meta, ctx.name(self.table, "new"))
            new.append_constraint(sa.CheckConstraint(self._cond(ctx), name=self.name))
            return new

        return [
            sqlite_rebuild_step(
                ctx,
                make,
                "rebuild_check",
                self.table,
                transform,
                description=f"Rebuild {self.table} with CHECK {self.name}",
            )
        ]

    def validate(self, ctx: OpContext) -> list[ValidationCheck]:
        cols = columns_of(self.expression)
        return [
            count_check(
                ctx,
                slug="violations",
                description=f"rows of {self.table} violating {self.name} = 0",
                table=self.table,
                schema=self.schema_,
                columns=cols,
                predicate=lambda col: sa.not_(sa.func.coalesce(self._cond(ctx, col), sa.true())),
                gates="expand",
            )
        ]

    def _rollback(self, ctx: OpContext) -> list[Step]:
        if ctx.lite:
            return []
        qt = ctx.qt(self.table, self.schema_)
        guard = "IF EXISTS " if (ctx.pg or ctx.mariadb) else ""
        return [
            self.maker(ctx, "rollback")(
                "drop_check",
                description=f"Drop CHECK {self.name}",
                sql=[f"ALTER TABLE {qt} DROP CONSTRAINT {guard}{ctx.q(self.name)}"],
                lock="ACCESS EXCLUSIVE" if ctx.pg else "metadata lock",
                lock_risk="low",
                lock_reason="catalog only",
            )
        ]

    def lint(self, ctx: OpContext) -> list[Finding]:
        if ctx.my:
            return [self.finding(ctx, "mysql-constraint-copy")]
        if ctx.lite:
            return [self.finding(ctx, "sqlite-table-rebuild")]
        return []
