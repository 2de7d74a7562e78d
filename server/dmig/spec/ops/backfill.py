"""backfill: set columns from an expression over existing columns, batched by key range.

Only rows whose value differs from the expression (and that match ``where``) are touched, so the
work is idempotent and a resumed run does nothing twice.
"""

from __future__ import annotations

from typing import Literal

import sqlalchemy as sa
from pydantic import Field, field_validator

from dmig.spec.columns import Ident
from dmig.spec.context import OpContext
from dmig.spec.dml import Resolver, backfill_plan, count_check, distinct
from dmig.spec.expr import columns_of, compile_expression, is_volatile, parse
from dmig.spec.ops.base import TableOp
from dmig.spec.steps import BackfillPlan, Finding, ValidationCheck


class Backfill(TableOp):
    """Fill columns from expressions over existing columns."""

    op: Literal["backfill"]
    set: dict[Ident, str] = Field(min_length=1, description="column -> expression, e.g. {email_lower: lower(email)}")
    where: str | None = Field(default=None, description="Only rows matching this condition.")

    @field_validator("set")
    @classmethod
    def _exprs(cls, value: dict[str, str]) -> dict[str, str]:
        for text in value.values():
            parse(text)
        return value

    @field_validator("where")
    @classmethod
    def _where(cls, value: str | None) -> str | None:
        if value is not None:
            parse(value)
        return value

    def _columns(self) -> list[str]:
        cols = set(self.set)
        for text in [*self.set.values(), *([self.where] if self.where else [])]:
            cols.update(columns_of(text))
        return sorted(cols)

    def _exprs_for(self, ctx: OpContext, col: Resolver) -> dict[str, sa.ColumnElement]:
        return {name: compile_expression(text, col, ctx.dialect) for name, text in self.set.items()}

    def _needs(self, ctx: OpContext, col: Resolver) -> sa.ColumnElement:
        exprs = self._exprs_for(ctx, col)
        differs = sa.or_(*[distinct(ctx, col(name), e) for name, e in exprs.items()])
        if self.where:
            return sa.and_(compile_expression(self.where, col, ctx.dialect), differs)
        return differs

    def backfill(self, ctx: OpContext) -> BackfillPlan:
        return backfill_plan(
            ctx,
            step_id=f"op{ctx.index}.backfill.{'_'.join(self.set)}",
            table=self.table,
            schema=self.schema_,
            key=self.key_columns(ctx),
            columns=self._columns(),
            set_exprs=lambda col: self._exprs_for(ctx, col),
            needs_work=lambda col: self._needs(ctx, col),
        )

    def validate(self, ctx: OpContext) -> list[ValidationCheck]:
        return [
            count_check(
                ctx,
                slug="done",
                description=f"rows of {self.table} still differing from the backfill = 0",
                table=self.table,
                schema=self.schema_,
                columns=[*self.key_columns(ctx), *self._columns()],
                predicate=lambda col: self._needs(ctx, col),
            )
        ]

    def lint(self, ctx: OpContext) -> list[Finding]:
        out = self.key_findings(ctx)
        if any(is_volatile(t) for t in self.set.values()):
            out.append(
                self.finding(
                    ctx,
                    "pg-volatile-default",
                    "a volatile backfill expression never converges: every "
                    "row differs on every pass and the validation never passes",
                    severity="error",
                    safe_alternative="use a deterministic expression (or add_column with a default)",
                )
            )
        return out
