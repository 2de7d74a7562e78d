"""Render a whole spec for one dialect: the planner's and executor's entry point.

``render_spec(spec, ctx)`` calls every operation's phases in order and returns plain data:
steps per phase (with rollback references resolved to real step ids), backfill plans,
validation checks, and the session settings to run on every connection.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from dmig.spec.context import OpContext, session_settings
from dmig.spec.models import MigrationSpec
from dmig.spec.steps import BackfillPlan, Step, ValidationCheck


class RenderedOperation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int
    op: str
    expand: list[Step] = Field(default_factory=list)
    backfill: BackfillPlan | None = None
    validate_: list[ValidationCheck] = Field(default_factory=list, alias="validate")
    contract: list[Step] = Field(default_factory=list)
    rollback: list[Step] = Field(default_factory=list, description="Undo expand+backfill (before contract), in order.")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class RenderedSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec_id: str
    dialect: str
    server_version: str
    session_settings: list[str] = Field(description="Run on every connection before any step.")
    operations: list[RenderedOperation]

    def steps(self, phase: str) -> list[Step]:
        """All steps of one phase across operations, in execution order (rollback: reverse op order)."""
        ops = reversed(self.operations) if phase == "rollback" else self.operations
        return [s for op in ops for s in getattr(op, phase)]


def _resolve_rollback_refs(expand: list[Step], rollback: list[Step]) -> list[Step]:
    by_slug = {s.id.rsplit(".", 1)[-1]: s.id for s in rollback}
    out = []
    for step in expand:
        refs = [by_slug[r.rsplit(".", 1)[-1]] for r in step.rollback if r.rsplit(".", 1)[-1] in by_slug]
        out.append(step.model_copy(update={"rollback": refs}))
    return out


def render_operation(op, ctx: OpContext) -> RenderedOperation:
    expand = op.expand(ctx)
    rollback = op.rollback(ctx, "validate")
    return RenderedOperation(
        index=ctx.index,
        op=op.op,
        expand=_resolve_rollback_refs(expand, rollback),
        backfill=op.backfill(ctx),
        validate=op.validate(ctx),
        contract=_resolve_rollback_refs(op.contract(ctx), rollback),
        rollback=rollback,
    )


def render_spec(spec: MigrationSpec, ctx: OpContext) -> RenderedSpec:
    ops = [render_operation(op, ctx.for_op(i)) for i, op in enumerate(spec.operations)]
    return RenderedSpec(
        spec_id=spec.id,
        dialect=ctx.dialect,
        server_version=ctx.version_text,
        session_settings=session_settings(ctx),
        operations=ops,
    )
