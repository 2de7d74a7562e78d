"""add_column: a new column, added the way each server can do it without blocking.

* Constant default (or none): one catalog-only ALTER (PostgreSQL 11+ stores the default in the
  catalog; MySQL 8.0.12+/MariaDB 10.3+ ALGORITHM=INSTANT; SQLite ADD COLUMN).
* Volatile default (uuid, random) on PostgreSQL, or any default before PostgreSQL 11: the column is
  added without a default, SET DEFAULT covers new rows, a batched backfill fills existing rows
  with the default expression, and NOT NULL (if asked) is applied in contract the safe way.
* NOT NULL without a default cannot work on a non-empty table: the linter reports an error.
"""

from __future__ import annotations

from typing import Literal

import sqlalchemy as sa
from pydantic import Field

from dmig.spec.columns import ColumnSpec, default_function_sql
from dmig.spec.context import OpContext
from dmig.spec.dml import backfill_plan, catalog_check, count_check
from dmig.spec.ops.base import TableOp
from dmig.spec.ops.common import add_columns_step, drop_columns_step
from dmig.spec.ops.set_not_null import not_null_contract_steps, not_null_rollback_steps
from dmig.spec.steps import BackfillPlan, Finding, Step, ValidationCheck


class AddColumn(TableOp):
    """Add one column to an existing table."""

    op: Literal["add_column"]
    column: ColumnSpec = Field(description="The new column.")

    def staged(self, ctx: OpContext) -> bool:
        """True when the default must not be given to ADD COLUMN (it would rewrite the table)."""
        if not ctx.pg or not self.column.has_default:
            return False
        return self.column.volatile_default or not ctx.at_least(11)

    def expand(self, ctx: OpContext) -> list[Step]:
        make = self.maker(ctx, "expand")
        c = self.column
        staged = self.staged(ctx)
        col = c.to_sa(ctx.dialect, nullable=True if staged else None, with_default=not staged)
        steps = [
            add_columns_step(
                ctx,
                make,
                self.table,
                self.schema_,
                [col],
                rollback_id=f"op{ctx.index}.rollback.1.drop_columns",
                description=f"Add {c.name} {c.type} to {self.table}"
                + (" (default applied separately)" if staged else ""),
            )
        ]
        if staged:
            default = ctx.sql(c.server_default(ctx.dialect).arg)  # type: ignore[union-attr]
            steps.append(
                make(
                    "set_default",
                    description=f"SET DEFAULT for new rows of {self.table}.{c.name} (catalog only, no rewrite)",
                    sql=[
                        f"ALTER TABLE {ctx.qt(self.table, self.schema_)} ALTER COLUMN {ctx.q(c.name)} "
                        f"SET DEFAULT {default}"
                    ],
                    lock="ACCESS EXCLUSIVE",
                    lock_risk="low",
                    lock_reason="catalog-only, instant",
                )
            )
            # NOT NULL is enforced at contract, after the backfill filled the old rows (set_not_null's docstring)
        return steps

    def backfill(self, ctx: OpContext) -> BackfillPlan | None:
        if not self.staged(ctx):
            return None
        c = self.column
        value = (
            default_function_sql(c.default_function, ctx.dialect)
            if c.default_function
            else c.server_default(ctx.dialect).arg
        )  # type: ignore[union-attr]
        return backfill_plan(
            ctx,
            step_id=f"op{ctx.index}.backfill.{c.name}",
            table=self.table,
            schema=self.schema_,
            key=self.key_columns(ctx),
            columns=[c.name],
            set_exprs=lambda col: {c.name: sa.literal_column(ctx.sql(value))},
            needs_work=lambda col: col(c.name).is_(None),
        )

    def validate(self, ctx: OpContext) -> list[ValidationCheck]:
        checks = [
            catalog_check(
                ctx,
                slug="exists",
                description=f"{self.table}.{self.column.name} exists",
                table=self.table,
                schema=self.schema_,
                column=self.column.name,
            )
        ]
        if self.staged(ctx):
            checks.append(
                count_check(
                    ctx,
                    slug="filled",
                    description=f"rows of {self.table} with {self.column.name} still NULL = 0",
                    table=self.table,
                    schema=self.schema_,
                    columns=[self.column.name],
                    predicate=lambda col: col(self.column.name).is_(None),
                    rule={"type": "not_null", "table": self.table, "columns": [self.column.name]},
                )
            )
        return checks

    def contract(self, ctx: OpContext) -> list[Step]:
        if self.staged(ctx) and not self.column.nullable:
            return not_null_contract_steps(
                ctx, self.maker(ctx, "contract"), self.table, self.schema_, self.column.name, self.column.type
            )
        return []

    def _rollback(self, ctx: OpContext) -> list[Step]:
        make = self.maker(ctx, "rollback")
        steps = []
        if self.staged(ctx) and not self.column.nullable:
            steps += not_null_rollback_steps(ctx, make, self.table, self.schema_, self.column.name)
        steps.append(
            drop_columns_step(
                ctx,
                make,
                "drop_columns",
                self.table,
                self.schema_,
                [self.column.name],
                description=f"Drop {self.table}.{self.column.name}",
                destructive=True,
                app="no code may write the new column any more",
            )
        )
        return steps

    def lint(self, ctx: OpContext) -> list[Finding]:
        c = self.column
        out: list[Finding] = []
        if not c.nullable and not c.has_default:
            out.append(self.finding(ctx, "adding-required-column"))
        if ctx.pg and c.has_default and self.staged(ctx):
            rule = "pg-volatile-default" if c.volatile_default else "pg-default-rewrite-pre-11"
            out.append(
                self.finding(
                    ctx,
                    rule,
                    severity="info",
                    message=(
                        f"{RULE_NOTE[rule]}; this operation therefore adds the column without it, sets the default "
                        "for new "
                        "rows and backfills existing rows in batches"
                    ),
                )
            )
        if ctx.lite and (c.default_function or (not c.nullable and not c.has_default) or c.primary_key or c.unique):
            out.append(
                self.finding(
                    ctx,
                    "sqlite-table-rebuild",
                    "SQLite ADD COLUMN refuses PRIMARY KEY/UNIQUE, "
                    "non-constant defaults and NOT NULL without a default",
                    severity="error",
                )
            )
        if ctx.pg and c.type.strip().lower() == "json":
            out.append(self.finding(ctx, "pg-prefer-jsonb"))
        if ctx.pg and c.type.strip().lower() in ("timestamp", "datetime"):
            out.append(self.finding(ctx, "pg-prefer-timestamptz"))
        return out


RULE_NOTE = {
    "pg-volatile-default": "a volatile default in ADD COLUMN would rewrite the table",
    "pg-default-rewrite-pre-11": "before PostgreSQL 11 a default in ADD COLUMN rewrites the table",
}
