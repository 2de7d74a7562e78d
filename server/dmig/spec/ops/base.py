"""The contract every operation module implements, and the pieces most of them share.

An operation is a pydantic model (its spec fields) with six methods, each rendering for one
``OpContext`` (dialect + server version + optional live schema):

    expand(ctx)          -> list[Step]            additive, safe under load
    backfill(ctx)        -> BackfillPlan | None   declarative, batched by key by the executor
    validate(ctx)        -> list[ValidationCheck] must pass before the phase each check ``gates``
    contract(ctx)        -> list[Step]            the destructive tail
    rollback(ctx, phase) -> list[Step]            undo expand (+ backfill) while not contracted
    lint(ctx)            -> list[Finding]         risks of this operation on this dialect/version
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dmig.errors import Conflict
from dmig.spec.columns import Ident
from dmig.spec.context import OpContext
from dmig.spec.ddl import StepMaker
from dmig.spec.steps import BackfillPlan, Finding, Phase, Step, ValidationCheck


class IgnoreEntry(BaseModel):
    """Suppress one lint rule for this operation. A reason is required (its absence is itself a finding)."""

    model_config = ConfigDict(extra="forbid")

    rule: str = Field(min_length=1, max_length=100, description="Lint rule id, e.g. pg-volatile-default.")
    reason: str | None = Field(default=None, max_length=2000, description="Why ignoring is safe here (required).")


class Operation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    op: str
    ignore: list[IgnoreEntry] = Field(default_factory=list, description="Lint rules to ignore, each with a reason.")

    # ------------------------------------------------------------------ the contract
    def expand(self, ctx: OpContext) -> list[Step]:
        return []

    def backfill(self, ctx: OpContext) -> BackfillPlan | None:
        return None

    def validate(self, ctx: OpContext) -> list[ValidationCheck]:
        return []

    def contract(self, ctx: OpContext) -> list[Step]:
        return []

    def rollback(self, ctx: OpContext, phase: Phase = "validate") -> list[Step]:
        """Steps undoing expand (and the backfill's writes, which live in expand's columns)."""
        if phase == "contract":
            raise Conflict(
                f"operation {ctx.index} ({self.op}) is contracted: its old shape is gone; restore from the "
                "verified backup taken before contract"
            )
        if phase == "rollback":
            return []
        return self._rollback(ctx)

    def _rollback(self, ctx: OpContext) -> list[Step]:
        return []

    def lint(self, ctx: OpContext) -> list[Finding]:
        return []

    # ------------------------------------------------------------------ helpers for planners
    def tables(self) -> list[tuple[str | None, str]]:
        """(schema, table) pairs this operation touches: what a live context must reflect."""
        table = getattr(self, "table", None)
        return [(getattr(self, "schema_", None), table)] if table else []

    def steps(self, ctx: OpContext, phase: Phase) -> list[Step]:
        if phase == "expand":
            return self.expand(ctx)
        if phase == "contract":
            return self.contract(ctx)
        if phase == "rollback":
            return self.rollback(ctx, "validate")
        return []

    def finding(self, ctx: OpContext, rule_id: str, message: str | None = None, **kw) -> Finding:
        from dmig.lint.rules import RULES

        rule = RULES[rule_id]
        return Finding(
            rule=rule.id,
            severity=kw.pop("severity", rule.severity),
            message=message or rule.message,
            safe_alternative=kw.pop("safe_alternative", rule.safe_alternative),
            op_index=ctx.index,
            **kw,
        )

    def maker(self, ctx: OpContext, phase: Phase) -> StepMaker:
        return StepMaker(ctx, self.op, phase)


class TableOp(Operation):
    """An operation on one existing table."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    table: Ident
    schema_: Annotated[Ident | None, Field(alias="schema")] = Field(
        default=None, description="Schema (PostgreSQL) or database (MySQL); default: the connection's."
    )
    key: list[Ident] | None = Field(
        default=None,
        description="Key columns the backfill walks and triggers match on (default: primary key, else id).",
    )

    @model_validator(mode="after")
    def _key_unique(self) -> TableOp:
        if self.key is not None and len(set(self.key)) != len(self.key):
            raise ValueError("key columns must be distinct")
        return self

    def key_columns(self, ctx: OpContext) -> list[str]:
        return ctx.key_columns(self.table, self.schema_, self.key)

    def key_findings(self, ctx: OpContext) -> list[Finding]:
        if self.key or ctx.table(self.table, self.schema_) is not None:
            return []
        return [
            self.finding(
                ctx,
                "assumed-key",
                f"no key given for {self.table}: backfill and SQLite triggers assume a unique column named id",
            )
        ]
