"""Run a reviewed plan up to (never into) contract: expand, backfill, validate.

Order of business: the plan must match its checksum and the caller must confirm exactly that
checksum; the migration lock is taken (a second executor is refused, naming the holder); the
ledger is created if missing. A fresh run records, before any change, each affected table's
shape and a checksum of its data (abort proves its rollback against them). Then every expand
step not yet done runs under lock-timeout retry, each backfill runs (or resumes from its
checkpoint), and the validation checks run. The run stops before contract: ``complete`` does that
after its own re-validation, with a verified backup.

``dry_run`` returns every statement the run would execute and touches nothing, not even a
connection.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, Field
from sqlalchemy.engine import URL

from dmig.context import ProgressFn
from dmig.db.engine import open_engine
from dmig.db.urls import dialect_of
from dmig.errors import Conflict, DatabaseError, DmigError
from dmig.execute import backfill as bf
from dmig.execute import fingerprint, ledger
from dmig.execute.backups import record_backup, take_verified_backup
from dmig.execute.checks import CheckOutcome, gate_passed, run_checks
from dmig.execute.lock import MigrationLock
from dmig.execute.retry import RetryPolicy
from dmig.execute.steps import StepOutcome, run_steps
from dmig.execute.target import require_confirm, resolve_url, verify_plan
from dmig.plan.model import Plan

FRESH_PHASES = ("expand", "backfill", "validate", "rollback", "contract")


class Statement(BaseModel):
    step: str
    phase: str
    sql: str
    note: str = ""


class RunOutcome(BaseModel):
    migration_id: str
    checksum: str
    target: str
    dry_run: bool
    state: str = Field(description="Ledger state after the run: validated, backfilled (validation failed), ...")
    resumed: bool = False
    steps: list[StepOutcome] = Field(default_factory=list)
    backfills: list[bf.BackfillResult] = Field(default_factory=list)
    validation: list[CheckOutcome] = Field(default_factory=list)
    validation_passed: bool | None = None
    statements: list[Statement] = Field(default_factory=list, description="Dry run: everything that would run.")
    warnings: list[str] = Field(default_factory=list)
    measured: list[dict[str, Any]] = Field(
        default_factory=list, description="Measured facts for self_improve: dialect, operation, rows, seconds."
    )
    next_action: str = ""


def measured_facts(plan: Plan, results: list[bf.BackfillResult]) -> list[dict[str, Any]]:
    """What this run measured, in self_improve's measured-fact shape (the planner reads it back)."""
    return [
        {
            "dialect": plan.target.dialect,
            "operation": "backfill",
            "rows": r.rows,
            # the planner adds the throttle pauses back itself; a rate with the sleeps in it would count them twice
            "seconds": (work := round(max(r.seconds - r.throttle_seconds, 0.001), 3)),
            "rows_per_s": round(r.rows / work, 1),
            "table": r.table,
            "batch_size": b.backfill.batch_size,
            "notes": f"working time: {r.seconds}s wall minus {r.throttle_seconds}s of throttle sleeps",
            "server_version": plan.target.server_version,
        }
        for r in results
        for b in plan.backfills
        if b.backfill.step_id == r.step_id and r.rows > 0 and r.seconds > 0
    ]


def dry_run_statements(plan: Plan) -> list[Statement]:
    out = [Statement(step="session", phase="setup", sql=s, note="on every connection") for s in plan.session_settings]
    out.append(Statement(step="ledger", phase="setup", sql="CREATE TABLE IF NOT EXISTS dmig_migrations (...)",
                         note="ledger, created if missing"))  # fmt: skip
    for step in plan.phase_steps("expand"):
        note = "one transaction" if step.transactional else "autocommit, statement by statement"
        if step.requires_live_schema:
            note += "; re-rendered from the live schema just before it runs"
        out += [Statement(step=step.id, phase="expand", sql=s, note=note) for s in step.sql]
    for b in plan.backfills:
        p = b.backfill
        sid = p.step_id
        out += [
            Statement(step=sid, phase="backfill", sql=p.key_range_sql, note="once: the largest key at start"),
            Statement(step=sid, phase="backfill", sql=p.next_bound_sql, note=f"per batch: skip = {p.batch_size - 1}"),
            Statement(step=sid, phase="backfill", sql=p.update_range_sql,
                      note=f"per batch, with the checkpoint in the same transaction; throttle {p.throttle_ms} ms"),
        ]  # fmt: skip
    out += [
        Statement(step=c.id, phase="validate", sql=c.sql, note=f"expect {c.expected}") for c in plan.validation.checks
    ]
    return out


def _start_snapshot(engine: sa.Engine, plan: Plan) -> dict[str, Any]:
    tables = [(t.schema_, t.name) for t in plan.tables if t.exists]
    return fingerprint.snapshot(engine, tables)


def _begin_or_resume(engine: sa.Engine, plan: Plan) -> tuple[bool, dict[str, ledger.LedgerRow]]:
    """(resumed, step rows). Refuses a run that belongs to another plan or is past validation."""
    with engine.begin() as conn:
        ledger.ensure(conn)
    with engine.connect() as conn:
        run = ledger.read_run(conn, plan.id)
    if run is not None and run.state in ("contracting", "completed"):
        raise Conflict(
            f"migration {plan.id} is {run.state}: nothing to run (use complete_migration to finish a contract)",
            reason="already_contracted",
            state=run.state,
        )
    fresh = run is None or run.state in ledger.ENDED
    if not fresh and run is not None and run.plan_checksum != plan.checksum:
        raise Conflict(
            f"migration {plan.id} has a run in state {run.state} under another plan: "
            "resume it with that plan, or abort it first",
            reason="other_plan_in_progress",
        )
    if fresh:
        snap = _start_snapshot(engine, plan)
        with engine.begin() as conn:
            ledger.forget_steps(conn, plan.id, FRESH_PHASES)
            bf.forget(conn, plan.id)
            info = {"start": snap, "owner": f"pid {os.getpid()} on {socket.gethostname()}"}
            tables = [(t.schema_, t.name) for t in plan.tables if t.exists]
            if ddl := fingerprint.sqlite_ddl(engine, tables):
                info["start_ddl"] = ddl
            ledger.write(conn, plan.id, ledger.RUN, phase="run", checksum=plan.checksum, state="started",
                         attempts=1, info=info, restart=True)  # fmt: skip
        return False, {}
    with engine.begin() as conn:
        ledger.write(conn, plan.id, ledger.RUN, phase="run", checksum=plan.checksum, state=run.state,  # type: ignore[union-attr]
                     attempts=run.attempts + 1)  # type: ignore[union-attr]  # fmt: skip
        return True, ledger.read_steps(conn, plan.id)


def set_run_state(engine: sa.Engine, plan: Plan, state: str, *, error: str | None = None, **extra: Any) -> None:
    with engine.begin() as conn:
        run = ledger.read_run(conn, plan.id)
        info = dict(run.info) if run else {}
        info.update(extra)
        ledger.write(conn, plan.id, ledger.RUN, phase="run", checksum=plan.checksum, state=state, error=error,
                     info=info, finished=state in ("completed", "failed", *ledger.ENDED))  # fmt: skip


def _version_warnings(engine: sa.Engine, plan: Plan) -> list[str]:
    from dmig.db.dialects import server_version

    with engine.connect() as conn:
        version = server_version(conn)
    if version.flavor != plan.target.flavor:
        raise Conflict(
            f"plan {plan.id} was made for {plan.target.flavor}, the database is {version.flavor}: re-plan",
            reason="wrong_server",
        )
    if version.text != plan.target.server_version:
        return [f"server version is {version.text}; the plan was made on {plan.target.server_version}"]
    return []


def _run_backfills(
    engine: sa.Engine, plan: Plan, done: dict[str, ledger.LedgerRow], policy: RetryPolicy, monitor: Any,
    progress: ProgressFn | None, batch_size: int | None, throttle_ms: int | None, max_batches: int | None,
) -> list[bf.BackfillResult]:  # fmt: skip
    results = []
    for b in plan.backfills:
        sid = b.backfill.step_id
        if done.get(sid) is not None and done[sid].state == "done":
            continue
        with engine.begin() as conn:
            ledger.write(conn, plan.id, sid, phase="backfill", checksum=plan.checksum, state="running", restart=True)
        job = bf.Backfill(
            engine, b.backfill, plan.id, settings=plan.session_settings, batch_size=batch_size,
            throttle_ms=throttle_ms, policy=policy, monitor=monitor, progress=progress, expected_rows=b.rows,
        )  # fmt: skip
        try:
            result = job.run(max_batches=max_batches)
        except DmigError as exc:
            with engine.begin() as conn:
                ledger.write(conn, plan.id, sid, phase="backfill", checksum=plan.checksum, state="failed",
                             error=exc.message, finished=True)  # fmt: skip
            raise
        state = "done" if result.state == "done" else "running"
        with engine.begin() as conn:
            ledger.write(conn, plan.id, sid, phase="backfill", checksum=plan.checksum, state=state,
                         finished=state == "done", info=result.model_dump(mode="json"))  # fmt: skip
        results.append(result)
    return results


def in_place_backfill_tables(plan: Plan) -> list[tuple[str | None, str]]:
    """Tables whose backfill overwrites columns that existed before the migration (their old values are lost)."""
    facts = {(t.schema_, t.name): set(t.columns) for t in plan.tables if t.exists}
    out = []
    for b in plan.backfills:
        key = (b.backfill.schema_, b.backfill.table)
        if set(b.backfill.set_sql) & facts.get(key, set()) and key not in out:
            out.append(key)
    return out


def _backup_before_in_place_backfill(engine: sa.Engine, plan: Plan, project_dir: Path | None, url: URL) -> list[str]:
    tables = in_place_backfill_tables(plan)
    if not tables:
        return []
    names = ", ".join(t for _, t in tables)
    if not plan.backup.required:
        return [f"the backfill overwrites existing columns of {names} and the plan waived backups: a rollback cannot "
                "bring their old values back"]  # fmt: skip
    if project_dir is None:
        return [f"the backfill overwrites existing columns of {names} but no project folder was given: no backup was "
                "taken, a rollback cannot bring their old values back"]  # fmt: skip
    schemas = {s for s, _ in tables}
    schema = next(iter(schemas)) if len(schemas) == 1 else None
    ref = plan.target.ref or url.render_as_string(hide_password=False)
    info = take_verified_backup(
        project_dir, ref, [t for _, t in tables], label=f"before-run-{plan.id}", schema=schema,
        phase="the run (its backfill overwrites existing columns)",
    )  # fmt: skip
    record_backup(project_dir, plan.id, info)
    set_run_state(engine, plan, "started", run_backup=info)
    return []


def _abort_on_monitor(
    engine: sa.Engine, plan: Plan, policy: RetryPolicy, progress: ProgressFn | None, monitor: Any, cause: Conflict
) -> None:
    """The plan's policy for a rollback verdict: stop the backfill and undo expand at once, then say so."""
    from dmig.execute.abort import undo_expand

    reasons = cause.details.get("monitor_reasons") or ""
    mark = getattr(monitor, "record_event", None)
    try:
        undone = undo_expand(engine, plan, policy=policy, progress=progress)
    except DmigError as exc:
        if mark:
            mark("rollback_failed", exc.message)
        raise DatabaseError(
            f"the monitor asked for a rollback ({reasons}) and undoing expand failed: {exc.message}",
            reason="monitor_rollback_failed",
        ) from None
    proof = [p.model_dump() for p in undone.proof]
    set_run_state(engine, plan, "aborted", error=f"monitor rollback: {reasons}"[:2000], abort_proof=proof,
                  monitor_rollback=reasons)  # fmt: skip
    if mark:
        mark("rollback_done", f"expand undone automatically ({len(undone.steps)} step(s)); proof exact: {undone.exact}")
    raise Conflict(
        f"the monitor asked for a rollback ({reasons or 'see the run report'}); as the plan's monitoring policy says, "
        f"the backfill stopped and expand was undone automatically ({len(undone.steps)} rollback step(s), shape and "
        "original data proven restored). Investigate the cause, then run again",
        reason="monitor_rollback",
        state="aborted",
        aborted=True,
        proof=proof,
        notes=undone.notes,
    )


def run_plan(
    plan: Plan,
    *,
    confirm: str | None,
    url: str | None = None,
    dry_run: bool = False,
    monitor: Any = None,
    progress: ProgressFn | None = None,
    batch_size: int | None = None,
    throttle_ms: int | None = None,
    max_batches: int | None = None,
    policy: RetryPolicy | None = None,
    project_dir: Path | None = None,
) -> RunOutcome:
    """Expand, backfill and validate ``plan``; stop before contract. See the module docstring.

    ``project_dir``: where verified backups are kept. A backfill that overwrites columns which existed
    before the migration destroys their old values, so a fresh run of such a plan first takes a
    verified backup of those tables (unless the plan waived backups) and records it for rollback.
    """
    verify_plan(plan)
    require_confirm(plan, confirm, "run_migration")
    base = RunOutcome(migration_id=plan.id, checksum=plan.checksum, target=plan.target.url, dry_run=dry_run, state="")
    if dry_run:
        return base.model_copy(
            update={
                "state": "dry_run",
                "statements": dry_run_statements(plan),
                "next_action": "run again without dry_run to apply expand and backfill",
            }
        )
    parsed = resolve_url(plan, url, project_dir=project_dir)
    if dialect_of(parsed) != plan.target.dialect:
        raise Conflict(f"plan {plan.id} is for {plan.target.dialect}", reason="wrong_server")
    policy = policy or RetryPolicy(max_retries=plan.spec.options.max_lock_retries)
    engine = open_engine(parsed)
    try:
        warnings = _version_warnings(engine, plan)
        with MigrationLock(parsed, plan.id, "run"):
            resumed, done = _begin_or_resume(engine, plan)
            if not resumed:
                warnings += _backup_before_in_place_backfill(engine, plan, project_dir, parsed)
            try:
                steps = run_steps(
                    engine,
                    plan,
                    plan.phase_steps("expand"),
                    policy=policy,
                    done=done,
                    progress=progress,
                    project_dir=project_dir,
                )
                set_run_state(engine, plan, "expanded")
                backfills = _run_backfills(
                    engine, plan, done, policy, monitor, progress, batch_size, throttle_ms, max_batches
                )
                if max_batches is not None and any(r.state != "done" for r in backfills):
                    return base.model_copy(update={"state": "expanded", "resumed": resumed, "steps": steps,
                                                   "backfills": backfills, "warnings": warnings,
                                                   "next_action": "run again to continue the backfill"})  # fmt: skip
                set_run_state(engine, plan, "backfilled")
                results = run_checks(engine, plan.validation.checks)
                passed = gate_passed(results)
                state = "validated" if passed else "backfilled"
                set_run_state(engine, plan, state, validation=[r.model_dump(mode="json") for r in results])
            except Conflict as exc:
                if exc.details.get("reason") != "monitor_rollback":
                    set_run_state(engine, plan, "failed", error=exc.message)
                    raise
                _abort_on_monitor(engine, plan, policy, progress, monitor, exc)
            except Exception as exc:
                set_run_state(engine, plan, "failed", error=getattr(exc, "message", None) or ledger.clean_error(exc))
                raise
    finally:
        engine.dispose()
    return base.model_copy(
        update={
            "state": state,
            "resumed": resumed,
            "steps": steps,
            "backfills": backfills,
            "validation": results,
            "validation_passed": passed,
            "warnings": warnings,
            "measured": measured_facts(plan, backfills),
            "next_action": (
                f"deploy the application steps of the plan's pattern, then complete_migration with confirm="
                f"{plan.checksum}"
                if passed
                else "validation failed: see the failing checks; fix and run again, or abort_migration"
            ),
        }
    )
