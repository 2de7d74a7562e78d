"""lint_migration: lint a migration spec or raw SQL for a dialect and server version (or a live server).

Thin adapter over dmig.lint.engine and dmig.spec.render; ``dmig lint`` exits 1 when an
error-severity finding is not ignored, so CI can gate on it.
"""

from __future__ import annotations

from typing import Literal

import sqlalchemy as sa
from pydantic import Field, model_validator

from dmig.context import RunContext
from dmig.db.engine import connect
from dmig.errors import DmigError, InvalidInput
from dmig.fields import JsonObject, Path, SqlText, Url, Word
from dmig.lint.engine import LintResult, lint_spec, lint_sql
from dmig.models import Input, Output
from dmig.registry import ToolSpec
from dmig.spec.context import OpContext
from dmig.spec.live import live_context
from dmig.spec.models import MigrationSpec, SpecOptions, load_spec, parse_spec
from dmig.spec.render import render_spec


class LintInput(Input):
    spec: Path | None = Field(default=None, description="Path (inside the project) of a YAML/JSON migration spec.")
    spec_inline: JsonObject | None = Field(
        default=None, description="A migration spec given inline (same shape as the file)."
    )
    sql: SqlText | None = Field(default=None, description="Raw SQL to lint (statements separated by ;).")
    dialect: Literal["postgresql", "mysql", "sqlite"] | None = Field(
        default=None, description="Dialect to lint for when no url is given (default: postgresql)."
    )
    server_version: Word | None = Field(
        default=None,
        description="Server version when no url is given, e.g. 15, 11.4, mariadb-10.11, mysql-8.0.36.",
    )
    url: Url | None = Field(
        default=None,
        description="Database URL or env:VAR: read dialect, version and table definitions from it.",
    )
    include_steps: bool = Field(default=True, description="For a spec, also return the rendered steps per phase.")

    @model_validator(mode="after")
    def _one_source(self) -> LintInput:
        given = [x for x in (self.spec, self.spec_inline, self.sql) if x is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of spec, spec_inline or sql")
        if self.url and (self.dialect or self.server_version):
            raise ValueError("give url, or dialect/server_version, not both")
        return self


class FindingOut(Output):
    rule: str
    severity: Literal["error", "warning", "info"]
    message: str
    safe_alternative: str
    operation: int | None = Field(default=None, description="Operation index in the spec.")
    line: int | None = Field(default=None, description="1-based line in the SQL.")
    statement: str | None = Field(default=None, description="Excerpt of the statement.")
    ignored: bool = False
    ignore_reason: str | None = None


class StepOut(Output):
    id: str
    description: str
    lock: str
    lock_risk: Literal["low", "medium", "high"]
    lock_reason: str
    transactional: bool
    rewrites_table: bool
    destructive: bool
    needs_app_cooperation: str | None = None
    requires_live_schema: bool = False
    sql: list[str]


class LintOutput(Output):
    dialect: str
    server_version: str
    ok: bool = Field(description="False when an error-severity finding is not ignored (dmig lint exits 1).")
    counts: dict[str, int] = Field(description="error / warning / info / ignored.")
    findings: list[FindingOut]
    steps: dict[str, list[StepOut]] = Field(default_factory=dict, description="Spec only: phase -> steps.")
    checks: list[str] = Field(default_factory=list, description="Spec only: validation checks (description).")


def _context(inp: LintInput, options: SpecOptions, spec: MigrationSpec | None) -> OpContext:
    if inp.url:
        try:
            with connect(inp.url) as conn:
                return live_context(conn, spec, options)
        except sa.exc.SQLAlchemyError as exc:
            raise DmigError(
                f"could not read the live schema: {str(exc).splitlines()[0][:300]}", code="E_DATABASE"
            ) from None
    return OpContext.offline(inp.dialect or "postgresql", inp.server_version, options)


def _spec(inp: LintInput, rc: RunContext) -> MigrationSpec | None:
    if inp.spec is not None:
        return load_spec(rc.project_path(inp.spec))
    if inp.spec_inline is not None:
        return parse_spec(inp.spec_inline, source="spec_inline")
    return None


def _finding_out(f) -> FindingOut:
    return FindingOut(
        rule=f.rule,
        severity=f.severity,
        message=f.message,
        safe_alternative=f.safe_alternative,
        operation=f.op_index,
        line=f.line,
        statement=f.statement,
        ignored=f.ignored,
        ignore_reason=f.ignore_reason,
    )


def lint_migration(inp: LintInput, rc: RunContext) -> LintOutput:
    spec = _spec(inp, rc)
    ctx = _context(inp, spec.options if spec else SpecOptions(), spec)
    steps: dict[str, list[StepOut]] = {}
    checks: list[str] = []
    if spec is None:
        if not (inp.sql or "").strip():
            raise InvalidInput("sql is empty")
        result: LintResult = lint_sql(inp.sql or "", ctx.dialect, ctx.version, ctx.flavor)
    else:
        result = lint_spec(spec, ctx)
        if inp.include_steps:
            rendered = render_spec(spec, ctx)
            for phase in ("expand", "contract", "rollback"):
                steps[phase] = [
                    StepOut(**s.model_dump(include=set(StepOut.model_fields))) for s in rendered.steps(phase)
                ]
            checks = [f"[gates {c.gates}] {c.description}" for op in rendered.operations for c in op.validate_]
            steps["backfill"] = [
                StepOut(
                    id=op.backfill.step_id,
                    description=f"batched backfill of {op.backfill.table} by "
                    f"{', '.join(op.backfill.key_columns)} ({op.backfill.batch_size} rows/batch)",
                    lock="ROW EXCLUSIVE (row locks per batch)" if ctx.pg else "row locks per batch",
                    lock_risk="low",
                    lock_reason="short transactions, one key range each",
                    transactional=True,
                    rewrites_table=False,
                    destructive=False,
                    sql=[op.backfill.update_range_sql],
                )
                for op in rendered.operations
                if op.backfill is not None
            ]
    return LintOutput(
        dialect=ctx.dialect,
        server_version=ctx.version_text,
        ok=not result.has_errors,
        counts=result.counts(),
        findings=[_finding_out(f) for f in result.findings],
        steps=steps,
        checks=checks,
    )


def render_text(out: LintOutput) -> str:
    lines = [
        f"dmig lint ({out.server_version}): {out.counts['error']} error(s), {out.counts['warning']} warning(s), "
        f"{out.counts['info']} info, {out.counts['ignored']} ignored"
    ]
    for f in out.findings:
        where = f"op {f.operation}" if f.operation is not None else f"line {f.line}" if f.line else "spec"
        mark = "ignored " if f.ignored else ""
        lines.append(f"  {mark}{f.severity.upper():7} {f.rule} [{where}] {f.message}")
        if f.statement:
            lines.append(f"          > {f.statement}")
        if f.safe_alternative and not f.ignored:
            lines.append(f"          safe: {f.safe_alternative}")
    for phase, steps in out.steps.items():
        if steps:
            lines.append(f"{phase}:")
            lines += [
                f"  {s.id}  lock={s.lock} risk={s.lock_risk}{' DESTRUCTIVE' if s.destructive else ''}" for s in steps
            ]
    return "\n".join(lines)


TOOLS = [
    ToolSpec(
        name="lint_migration",
        func=lint_migration,
        input_model=LintInput,
        output_model=LintOutput,
        title="Lint a migration",
        description="Lint a migration spec (path or inline) or raw SQL for PostgreSQL, MySQL/MariaDB or SQLite at a "
        "given server version (or read both from a live database): lock levels, table rewrites, one-step renames and "
        "drops, missing timeouts, unsafe constraints and indexes, each with the safe alternative; for a spec also the "
        "rendered steps per phase with their locks. Ignore a rule with `-- dmig:ignore <rule> reason: <why>`.",
        read_only=True,
        idempotent=True,
        open_world=False,
        cli_name="lint",
        cli_positional=("spec",),
        cli_exit_code=lambda out: 0 if out.ok else 1,
        cli_render=render_text,
    )
]
