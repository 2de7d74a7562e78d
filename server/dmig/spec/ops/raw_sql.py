"""raw_sql: the escape hatch. The statements run as written (per dialect), so the linter always
flags the operation and also lints each statement with the SQL rules."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from dmig.spec.context import OpContext
from dmig.spec.ops.base import Operation
from dmig.spec.steps import Finding, Phase, Step

PerDialect = dict[Literal["postgresql", "mysql", "sqlite"], str]


class RawSql(Operation):
    """Run SQL the typed operations cannot express."""

    op: Literal["raw_sql"]
    sql: str | PerDialect = Field(description="SQL text (statements separated by ;), or one text per dialect.")
    rollback_sql: str | PerDialect | None = Field(default=None, description="SQL undoing it (before contract).")
    phase: Literal["expand", "contract"] = "expand"
    transactional: bool = True
    destructive: bool = Field(default=False, description="Declare that it loses data / breaks old code.")
    description: str | None = None

    @model_validator(mode="after")
    def _non_empty(self) -> RawSql:
        if not self.sql or (isinstance(self.sql, dict) and not any(v.strip() for v in self.sql.values())):
            raise ValueError("sql is empty")
        return self

    def text_for(self, ctx: OpContext, value: str | dict | None) -> str | None:
        if value is None or isinstance(value, str):
            return value
        return value.get(ctx.dialect)

    def statements(self, ctx: OpContext, value: str | dict | None) -> list[str]:
        from dmig.lint.sql_parse import split_statements

        text = self.text_for(ctx, value)
        return [s.text for s in split_statements(text, ctx.dialect)] if text else []

    def _step(self, ctx: OpContext, phase: Phase, sql: list[str], rollback: list[str]) -> Step:
        return self.maker(ctx, phase)(
            "raw_sql",
            description=self.description or "raw SQL",
            sql=sql,
            transactional=self.transactional,
            lock="unknown (raw SQL)",
            lock_risk="high",
            lock_reason="raw SQL: see the statement findings",
            destructive=self.destructive,
            rollback=rollback,
            retry_on_lock_timeout=self.transactional,
        )

    def expand(self, ctx: OpContext) -> list[Step]:
        sql = self.statements(ctx, self.sql)
        if self.phase != "expand" or not sql:
            return []
        rb = [f"op{ctx.index}.rollback.1.raw_sql"] if self.rollback_sql else []
        return [self._step(ctx, "expand", sql, rb)]

    def contract(self, ctx: OpContext) -> list[Step]:
        sql = self.statements(ctx, self.sql)
        return [self._step(ctx, "contract", sql, [])] if self.phase == "contract" and sql else []

    def _rollback(self, ctx: OpContext) -> list[Step]:
        sql = self.statements(ctx, self.rollback_sql)
        return [self._step(ctx, "rollback", sql, [])] if sql and self.phase == "expand" else []

    def lint(self, ctx: OpContext) -> list[Finding]:
        from dmig.lint.engine import lint_sql

        out = [self.finding(ctx, "raw-sql")]
        text = self.text_for(ctx, self.sql)
        if text is None:
            out.append(
                self.finding(
                    ctx, "raw-sql", f"no SQL for {ctx.dialect}: the operation does nothing there", severity="warning"
                )
            )
            return out
        for f in lint_sql(text, ctx.dialect, ctx.version, ctx.flavor, in_spec=True).findings:
            out.append(f.model_copy(update={"op_index": ctx.index}))
        return out
