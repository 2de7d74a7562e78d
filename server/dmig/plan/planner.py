"""Build a Plan from a spec and the live database: schema, row counts, server version, lint, estimates.

The planner only reads the target. It reflects the tables the spec touches and counts their rows
inside a read-only, time-bounded session, renders every phase with the spec's operation modules
for exactly this dialect and server version, lints each step, and measures throughput (expertise
first, else a sample on a temporary table of its own session) to estimate durations and downtime.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL

from dmig import policy
from dmig.context import ProgressFn
from dmig.db import dialects
from dmig.db.engine import connect
from dmig.db.introspect import inspect_connection
from dmig.db.urls import dialect_of, display_url, parse_url
from dmig.errors import InvalidInput
from dmig.lint.engine import lint_spec, lint_sql
from dmig.plan import advice, estimate, impact
from dmig.plan.model import (
    Plan,
    PlanBackfill,
    PlanStep,
    TableFacts,
    Target,
    Validation,
    sealed,
)
from dmig.plan.rules import validation_rules
from dmig.redact import redact_obj
from dmig.spec.context import OpContext
from dmig.spec.live import live_context
from dmig.spec.models import MigrationSpec
from dmig.spec.render import RenderedSpec, render_spec
from dmig.spec.steps import Finding, Step

READ_TIMEOUT_S = 60.0
SAMPLE_TIMEOUT_MS = 30_000


def _noop(done: float, total: float | None = None, message: str | None = None) -> None:
    return None


def is_reference(raw: str) -> bool:
    text = raw.strip()
    return text.startswith("env:") or text.startswith("$")


def target_ref(raw: str, url: URL) -> str | None:
    """What the plan may store to reach the database again: never a password."""
    if is_reference(raw):
        return raw.strip()
    if url.password is None and "password" not in {k.lower() for k in url.query}:
        return url.render_as_string(hide_password=False)
    return None


def _database_name(url: URL) -> str | None:
    return url.database


def _table_facts(conn: sa.Connection, spec: MigrationSpec, ctx: OpContext) -> list[TableFacts]:
    wanted = sorted({pair for op in spec.operations for pair in op.tables()}, key=lambda p: (p[0] or "", p[1]))
    out: list[TableFacts] = []
    by_schema: dict[str | None, list[str]] = {}
    for schema, name in wanted:
        if ctx.table(name, schema) is not None:
            by_schema.setdefault(schema, []).append(name)
    infos: dict[tuple[str | None, str], Any] = {}
    for schema, names in by_schema.items():
        report = inspect_connection(conn, schema=schema, tables=names, include=["columns", "keys", "counts"])
        for info in report.tables:
            infos[(schema, info.name)] = info
    for schema, name in wanted:
        info = infos.get((schema, name))
        if info is None:
            out.append(TableFacts(schema=schema, name=name, exists=False))
            continue
        out.append(
            TableFacts(
                schema=schema,
                name=name,
                exists=True,
                rows=info.row_count,
                rows_exact=info.row_count_exact,
                rows_method=info.row_count_method,
                columns=[c.name for c in info.columns or []],
                primary_key=list(info.primary_key or []),
            )
        )
    return out


def _ledger_state(conn: sa.Connection, migration_id: str) -> tuple[bool | None, str]:
    from dmig.execute.ledger import read_run

    try:
        run = read_run(conn, migration_id)
    except sa.exc.SQLAlchemyError:
        return None, "could not read the ledger (dmig_migrations)"
    if run is None:
        return True, "no run of this migration recorded in dmig_migrations"
    if run.state in ("aborted", "completed"):
        return True, f"the last run of this migration was {run.state} ({run.finished_at})"
    return False, f"a run is recorded in state {run.state} (plan {run.plan_checksum[:12]}...): resume or abort it"


def _step_findings(step: Step, ctx: OpContext) -> list[Finding]:
    """The SQL linter on each generated statement. It cannot parse compound trigger bodies (MySQL BEGIN ... END):
    that is a limit of the parser, not a risk of the statement, so it is reported as info."""
    out: list[Finding] = []
    for stmt in step.sql:
        for f in lint_sql(stmt, ctx.dialect, ctx.version, ctx.flavor, in_spec=True).findings:
            if f.rule == "parse-error" and step.op != "raw_sql":
                f = f.model_copy(
                    update={
                        "severity": "info",
                        "message": "the SQL linter cannot parse this generated statement; "
                        "the operation's own lint covers it (" + f.message + ")",
                    }
                )
            if f not in out:
                out.append(f)
    return out


def _rows_of(tables: list[TableFacts], schema: str | None, name: str) -> TableFacts | None:
    return next((t for t in tables if t.name == name and t.schema_ == schema), None)


def _measure(
    parsed: URL, spec: MigrationSpec, ctx: OpContext, rendered: RenderedSpec, project_dir: Path, sample: bool
) -> dict[int, estimate.Rate | None]:
    """A backfill rate per operation index: expertise if known, else measured now (or None)."""
    known = estimate.expertise_rate(project_dir, ctx.dialect, "backfill")
    rates: dict[int, estimate.Rate | None] = {}
    todo = [r for r in rendered.operations if r.backfill is not None]
    if known is not None or not sample or not todo:
        return {r.index: known for r in todo}
    with connect(parsed) as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        for stmt in _sample_settings(ctx):
            conn.exec_driver_sql(stmt)
        for r in todo:
            op, octx = spec.operations[r.index], ctx.for_op(r.index)
            if octx.table(op.table, op.schema_) is None:
                rates[r.index] = None
                continue
            rates[r.index] = estimate.sample_backfill(conn, op, octx) or estimate.sample_expressions(
                conn, op, octx, r.backfill.set_sql, estimate.SAMPLE_ROWS
            )
    return rates


def _sample_settings(ctx: OpContext) -> list[str]:
    if ctx.pg:
        return [f"SET statement_timeout = {SAMPLE_TIMEOUT_MS}", "SET lock_timeout = 1000"]
    if ctx.mariadb:
        return [f"SET SESSION max_statement_time = {SAMPLE_TIMEOUT_MS / 1000:g}", "SET SESSION lock_wait_timeout = 1"]
    if ctx.my:
        return ["SET SESSION lock_wait_timeout = 1"]
    return []


def _plan_step(
    step: Step, ctx: OpContext, spec: MigrationSpec, tables: list[TableFacts], rate: estimate.Rate | None
) -> PlanStep:
    op = spec.operations[step.op_index]
    facts = _rows_of(tables, getattr(op, "schema_", None), getattr(op, "table", "")) if hasattr(op, "table") else None
    est = estimate.step_estimate(step, facts.rows if facts else None, rate)
    hit = impact.lock_impact(step, ctx.dialect, est, spec.options)
    return PlanStep(
        **step.model_dump(),
        findings=_step_findings(step, ctx),
        estimate=est,
        blocks=hit.blocks,
        blocking_seconds=hit.blocking_s,
        worst_case_blocking_seconds=hit.worst_s,
        lock_timeout_ms=spec.options.effective_lock_timeout_ms,
        statement_timeout_ms=impact.step_statement_timeout_ms(spec.options, est),
    )


def _backfills(
    rendered: RenderedSpec, spec: MigrationSpec, tables: list[TableFacts], rates: dict[int, estimate.Rate | None]
) -> list[PlanBackfill]:
    out = []
    for r in rendered.operations:
        if r.backfill is None:
            continue
        facts = _rows_of(tables, r.backfill.schema_, r.backfill.table)
        rows = facts.rows if facts else None
        undo = ", ".join(s.id for s in r.rollback) or "nothing to undo"
        out.append(
            PlanBackfill(
                backfill=r.backfill,
                rows=rows,
                rows_method=facts.rows_method if facts else None,
                estimate=estimate.backfill_estimate(
                    rows, rates.get(r.index), spec.options.batch_size, spec.options.throttle_ms
                ),
                undo=f"the backfill writes only the new shape, which rollback removes ({undo}); the old "
                "columns are never written by it",
            )
        )
    return out


def _monitoring(spec: MigrationSpec) -> tuple[dict[str, Any], str]:
    """The spec's thresholds (rules it leaves out keep their defaults), else the defaults, and which."""
    from dmig.monitor.thresholds import Thresholds

    if spec.monitoring is not None:
        return spec.monitoring.model_dump(mode="json"), "monitor thresholds from the spec's monitoring key"
    return Thresholds().model_dump(mode="json"), ""


def _phase_seconds(steps: list[PlanStep], backfills: list[PlanBackfill]) -> dict[str, float]:
    out = {p: round(sum(s.estimate.seconds for s in steps if s.phase == p), 3) for p in ("expand", "contract")}
    out["backfill"] = round(sum(b.estimate.seconds for b in backfills), 3)
    out["total_before_contract"] = round(out["expand"] + out["backfill"], 3)
    out["total"] = round(out["expand"] + out["backfill"] + out["contract"], 3)
    return out


def plan_migration(
    spec: MigrationSpec,
    *,
    url: str | None = None,
    project_dir: Path,
    environment: str = "production",
    waive_backup: str | None = None,
    sample: bool = True,
    progress: ProgressFn | None = None,
    now: dt.datetime | None = None,
) -> Plan:
    """Read the live database and build a sealed (checksummed) Plan; writes nothing anywhere."""
    report = progress or _noop
    raw = url or spec.database
    if not raw:
        raise InvalidInput("no target database: give url (prefer env:VARNAME) or set the spec's database")
    # The spec file is a URL source like any argument: planning reads, so it is admitted for reading.
    raw = policy.admit(raw, "read", field="url" if url else "spec.database", project_dir=project_dir)
    parsed = parse_url(raw)
    report(0, 5, "reading the live schema")
    with connect(parsed) as conn:
        version = dialects.server_version(conn)
        with dialects.read_only_session(conn, READ_TIMEOUT_S):
            ctx = live_context(conn, spec)
            tables = _table_facts(conn, spec, ctx)
            ledger = _ledger_state(conn, spec.id)
    report(1, 5, "rendering and linting")
    rendered = render_spec(spec, ctx)
    spec_lint = lint_spec(spec, ctx)
    report(2, 5, "measuring throughput")
    rates = _measure(parsed, spec, ctx, rendered, project_dir, sample)
    any_rate = next((r for r in rates.values() if r is not None), None)
    steps = [
        _plan_step(s, ctx, spec, tables, any_rate) for s in [*rendered.steps("expand"), *rendered.steps("contract")]
    ]
    rollback = [_plan_step(s, ctx, spec, tables, any_rate) for s in rendered.steps("rollback")]
    backfills = _backfills(rendered, spec, tables, rates)
    report(3, 5, "validation, monitoring and checklist")
    checks = [c for r in rendered.operations for c in r.validate_]
    keys = {r.index: r.backfill.key_columns for r in rendered.operations if r.backfill is not None}
    ref = target_ref(raw, parsed)
    rules = validation_rules(spec, checks, keys, ref)
    monitoring, monitor_note = _monitoring(spec)
    affected = sorted({f"{t.schema_}.{t.name}" if t.schema_ else t.name for t in tables if t.exists})
    backup = advice.backup_policy(environment, waive_backup, affected)
    sql_findings = [f for s in steps for f in s.findings]
    measured = all(b.estimate.source in ("expertise", "sampled") or b.rows == 0 for b in backfills)
    from dmig.execute.backups import backup_state

    checklist = advice.checklist(
        spec,
        tables,
        spec_lint.findings,
        sql_findings,
        backup,
        backup_state(project_dir, ref, affected),
        ledger,
        measured,
    )
    plan = Plan(
        id=spec.id,
        created_at=(now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds"),
        spec=spec,
        target=Target(
            url=display_url(parsed),
            ref=ref,
            dialect=dialect_of(parsed),
            flavor=version.flavor,
            server_version=version.text,
            database=_database_name(parsed),
        ),
        pattern=advice.pattern(spec, steps),
        session_settings=rendered.session_settings,
        timeouts=impact.timeouts(spec.options, ctx.dialect, version.flavor),
        tables=tables,
        steps=steps,
        backfills=backfills,
        rollback=rollback,
        after_contract_rollback="After contract the old shape is gone: restore the affected tables ("
        + ", ".join(affected)
        + ") from the verified backup contract took (dmig.backup restore), then redeploy the old application.",
        downtime=impact.downtime(steps, spec.options, ctx.dialect),
        validation=Validation(
            checks=checks,
            rules=rules,
            note="checks: exact SQL the executor runs after the backfill and again before contract; rules: the same "
            "intent for the validate tool" + ("" if ref else " (pass source/target: the plan stores no password)"),
        ),
        monitoring=monitoring,
        rollback_triggers=advice.rollback_triggers(monitoring),
        backup=backup,
        checklist=checklist,
        lint={
            "counts": _counts(spec_lint.findings),
            "sql_counts": _counts(sql_findings),
            "spec_findings": [f.model_dump(mode="json") for f in spec_lint.findings],
            **({"monitor": monitor_note} if monitor_note else {}),
        },
        estimated_seconds=_phase_seconds(steps, backfills),
    )
    report(5, 5, "plan ready")
    # Mask credentials (a password pasted into a spec's description...) BEFORE sealing: the file is
    # written from this object, and masking it afterwards would break the checksum.
    return sealed(Plan.model_validate(redact_obj(plan.model_dump(mode="json", by_alias=True))))


def _counts(findings: list[Finding]) -> dict[str, int]:
    out = {"error": 0, "warning": 0, "info": 0, "ignored": 0}
    for f in findings:
        out["ignored" if f.ignored else f.severity] += 1
    return out
