"""Complete a migration: the destructive tail (contract), only when it is provably safe.

Refused unless: the plan matches its checksum and ``confirm`` is that checksum; a run of this
plan reached validation; the validation checks pass again *now* (writes since the run may have
broken them); and a verified backup of the affected tables was taken just before (through
``dmig.backup``), unless the plan waived it, which the planner never allows for production.
A contract interrupted half-way is resumed by calling complete again: its done steps are skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from dmig.context import ProgressFn
from dmig.db.engine import open_engine
from dmig.errors import Conflict, DmigError
from dmig.execute import ledger
from dmig.execute.backups import record_backup, take_verified_backup
from dmig.execute.checks import CheckOutcome, gate_passed, run_checks
from dmig.execute.lock import MigrationLock
from dmig.execute.retry import RetryPolicy
from dmig.execute.runner import set_run_state
from dmig.execute.steps import StepOutcome, run_steps
from dmig.execute.target import admit
from dmig.plan.model import Plan

READY = ("validated", "backfilled", "contracting")


class CompleteOutcome(BaseModel):
    migration_id: str
    checksum: str
    state: str
    validation: list[CheckOutcome]
    backup: dict[str, Any] | None = Field(default=None, description="The verified backup taken before contract.")
    backup_waived: str | None = None
    steps: list[StepOutcome] = Field(default_factory=list)
    already_completed: bool = Field(
        default=False, description="The migration was completed before this call: nothing was changed."
    )
    next_action: str = ""


def _backup(plan: Plan, project_dir: Path, url: str, resumed_info: dict[str, Any]) -> tuple[dict | None, str | None]:
    if not plan.backup.required:
        return None, plan.backup.waiver_reason
    if resumed_info.get("backup"):
        return resumed_info["backup"], None  # a contract resumed after a crash keeps the backup it took
    existing = [t for t in plan.tables if t.exists]
    schemas = {t.schema_ for t in existing}
    if len(schemas) <= 1:  # the usual case: one schema, bare table names
        schema, names = next(iter(schemas), None), [t.name for t in existing]
    else:
        schema, names = None, plan.backup.tables
    info = take_verified_backup(project_dir, url, names, label=f"before-contract-{plan.id}", schema=schema)
    record_backup(project_dir, plan.id, info)
    return info, None


def _already_completed(plan: Plan, run: ledger.LedgerRow) -> CompleteOutcome:
    """complete is idempotent: a second call (a retry after a kill past the commit, an agent asking twice)
    answers what the first did, changes nothing and is not an error."""
    info = run.info or {}
    return CompleteOutcome(
        migration_id=plan.id,
        checksum=plan.checksum,
        state="completed",
        validation=[CheckOutcome.model_validate(v) for v in info.get("contract_validation") or []],
        backup=info.get("backup"),
        backup_waived=info.get("backup_waived"),
        already_completed=True,
        next_action=f"already completed (at {run.finished_at or run.started_at}): nothing was "
        "changed; " + plan.after_contract_rollback,
    )


def complete(
    plan: Plan,
    *,
    confirm: str | None,
    project_dir: Path,
    url: str | None = None,
    progress: ProgressFn | None = None,
    policy: RetryPolicy | None = None,
) -> CompleteOutcome:
    parsed = admit(plan, confirm, url, "complete_migration (contract: drops the old shape)", project_dir=project_dir)
    policy = policy or RetryPolicy(max_retries=plan.spec.options.max_lock_retries)
    engine = open_engine(parsed)
    try:
        with MigrationLock(parsed, plan.id, "complete"):
            with engine.connect() as conn:
                run = ledger.read_run(conn, plan.id)
                done = ledger.read_steps(conn, plan.id)
            if run is not None and run.state == "completed" and run.plan_checksum == plan.checksum:
                return _already_completed(plan, run)
            if run is None or run.state not in READY:
                raise Conflict(
                    f"migration {plan.id} cannot be completed: its run is {run.state if run else 'not started'}; "
                    "run_migration must expand, backfill and validate first",
                    reason="not_validated",
                    state=run.state if run else None,
                )
            if run.plan_checksum != plan.checksum:
                raise Conflict(
                    f"migration {plan.id} was run under another plan: complete with that plan",
                    reason="other_plan",
                )
            resuming = run.state == "contracting"
            # A contract resumed after a crash: its validation passed before the first drop, and the checks may
            # name what contract has dropped since (old columns), so they are not run again on the new shape.
            results = [] if resuming else run_checks(engine, plan.validation.checks)
            if not resuming and not gate_passed(results):
                failing = [f"{r.id}: {r.value} (expected {r.expected}){' ' + r.error if r.error else ''}"
                           for r in results if not r.passed]  # fmt: skip
                raise Conflict(
                    f"contract refused: validation no longer passes ({'; '.join(failing)}). Nothing was dropped",
                    reason="validation_failed",
                    failing=failing,
                )
            backup, waived = _backup(plan, project_dir, url or plan.target.ref or "", run.info)
            set_run_state(engine, plan, "contracting", backup=backup, backup_waived=waived)
            try:
                steps = run_steps(engine, plan, plan.phase_steps("contract"), policy=policy, done=done,
                                  progress=progress)  # fmt: skip
            except DmigError as exc:
                set_run_state(engine, plan, "contracting", error=exc.message)
                raise
            validation = [r.model_dump(mode="json") for r in results] or run.info.get("validation") or []
            set_run_state(engine, plan, "completed", contract_validation=validation)
    finally:
        engine.dispose()
    return CompleteOutcome(
        migration_id=plan.id,
        checksum=plan.checksum,
        state="completed",
        validation=results,
        backup=backup,
        backup_waived=waived,
        steps=steps,
        next_action="done; " + plan.after_contract_rollback,
    )
