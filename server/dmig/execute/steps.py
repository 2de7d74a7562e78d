"""Run a phase's steps in order with the ledger: skip what is done, record what runs, stop on failure.

Where DDL is transactional (PostgreSQL, SQLite) the "done" row is written in the step's own
transaction, so a crash leaves the step and its ledger row together or neither. On MySQL DDL
commits by itself; its steps are written to be re-runnable, and a step found "running" after a
crash is simply run again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from pydantic import BaseModel

from dmig.context import ProgressFn
from dmig.db.urls import dialect_of
from dmig.errors import DmigError
from dmig.execute import ledger
from dmig.execute.retry import TRANSACTIONAL_DDL, RetryPolicy, run_with_retry
from dmig.plan.model import Plan, PlanStep
from dmig.spec.steps import Step


class StepOutcome(BaseModel):
    id: str
    phase: str
    status: str  # done | skipped (already done) | failed | planned (dry run)
    attempts: int = 0
    seconds: float = 0.0
    lock_waits: list[str] = []
    rerendered: bool = False


def live_step(engine: sa.Engine, plan: Plan, step: PlanStep) -> Step:
    """A step whose SQL depends on the live table (SQLite rebuilds): rendered from the schema as it is now."""
    if not step.requires_live_schema and step.sql:
        return step
    from dmig.spec.live import live_context
    from dmig.spec.render import render_spec

    with engine.connect() as conn:
        ctx = live_context(conn, plan.spec)
    rendered = render_spec(plan.spec, ctx)
    for fresh in rendered.steps(step.phase):
        if fresh.id == step.id:
            return fresh
    return step


def step_settings(plan: Plan, step: PlanStep) -> list[str]:
    """The plan's session settings, plus this step's own statement timeout where the plan gave it a longer one."""
    from dmig.spec.context import statement_timeout_sql

    own = step.statement_timeout_ms
    if own is None or own == plan.spec.options.effective_statement_timeout_ms:
        return list(plan.session_settings)
    flavor = plan.target.flavor if plan.target.dialect == "mysql" else None
    return [*plan.session_settings, *statement_timeout_sql(plan.target.dialect, flavor, own)]


def run_steps(
    engine: sa.Engine,
    plan: Plan,
    steps: list[PlanStep],
    *,
    policy: RetryPolicy,
    done: dict[str, ledger.LedgerRow],
    progress: ProgressFn | None = None,
    on_failure: Callable[[PlanStep, DmigError], None] | None = None,
    project_dir: Path | None = None,
) -> list[StepOutcome]:
    dialect = dialect_of(engine.url)
    out: list[StepOutcome] = []
    for i, step in enumerate(steps):
        if done.get(step.id) is not None and done[step.id].state == "done":
            out.append(StepOutcome(id=step.id, phase=step.phase, status="skipped"))
            continue
        if progress:
            progress(i, len(steps), f"{step.phase}: {step.id}")
        attempts_before = done[step.id].attempts if step.id in done else 0
        with engine.begin() as conn:
            ledger.write(conn, plan.id, step.id, phase=step.phase, checksum=plan.checksum, state="running",
                         attempts=attempts_before, restart=True)  # fmt: skip
        if step.kind == "copy":
            out.append(
                _copy(engine, plan, step, fresh=step.id not in done, on_failure=on_failure, project_dir=project_dir)
            )
            continue
        runnable = live_step(engine, plan, step)

        def mark_done(conn: sa.Connection, _step: PlanStep = step) -> None:
            ledger.write(conn, plan.id, _step.id, phase=_step.phase, checksum=plan.checksum, state="done",
                         finished=True)  # fmt: skip

        in_tx = mark_done if dialect in TRANSACTIONAL_DDL and runnable.transactional else None
        try:
            run = run_with_retry(
                engine, runnable, step_settings(plan, step), policy,
                lock_timeout_ms=plan.spec.options.effective_lock_timeout_ms, in_transaction=in_tx,
            )  # fmt: skip
        except DmigError as exc:
            _failed(engine, plan, step, exc, on_failure)
            raise
        with engine.begin() as conn:
            if in_tx is None:
                mark_done(conn)
            ledger.write(conn, plan.id, step.id, phase=step.phase, checksum=plan.checksum, state="done",
                         attempts=attempts_before + run.attempts, finished=True,
                         info={"seconds": run.seconds, "lock_waits": run.lock_timeouts})  # fmt: skip
        out.append(
            StepOutcome(
                id=step.id,
                phase=step.phase,
                status="done",
                attempts=run.attempts,
                seconds=run.seconds,
                lock_waits=run.lock_timeouts,
                rerendered=runnable is not step,
            )
        )
    return out


def _copy(
    engine: sa.Engine,
    plan: Plan,
    step: PlanStep,
    *,
    fresh: bool,
    on_failure: Callable[[PlanStep, DmigError], None] | None,
    project_dir: Path | None,
) -> StepOutcome:
    """A copy step (move_table) runs through the copy engine, which keeps its own checkpoints."""
    from dmig.execute.copystep import run_copy_step

    started = time.monotonic()
    try:
        summary = run_copy_step(engine, step, fresh=fresh, project_dir=project_dir)
    except DmigError as exc:
        _failed(engine, plan, step, exc, on_failure)
        raise
    seconds = round(time.monotonic() - started, 3)
    info = {"seconds": seconds, "rows": summary.totals.rows, "run_id": summary.run_id}
    with engine.begin() as conn:
        ledger.write(conn, plan.id, step.id, phase=step.phase, checksum=plan.checksum, state="done",
                     attempts=1, finished=True, info=info)  # fmt: skip
    return StepOutcome(id=step.id, phase=step.phase, status="done", attempts=1, seconds=seconds)


def _failed(
    engine: sa.Engine,
    plan: Plan,
    step: PlanStep,
    exc: DmigError,
    on_failure: Callable[[PlanStep, DmigError], None] | None,
) -> None:
    """The ledger says which step failed and why, before the error goes up."""
    with engine.begin() as conn:
        ledger.write(conn, plan.id, step.id, phase=step.phase, checksum=plan.checksum, state="failed",
                     error=exc.message, finished=True)  # fmt: skip
    if on_failure:
        on_failure(step, exc)
