"""Abort a migration before contract: undo expand (and with it the backfill) and prove it.

The rollback steps run in the plan's order (reverse operation order), each under lock-timeout
retry, but only those that undo an expand step that actually ran (a SQLite DROP COLUMN of a
column never added would fail). Then the proof: the affected tables' shape must equal the one
recorded before expand, and the checksum of their original columns must be unchanged by the
rollback (taken just before and just after it). Whether the data also equals the start of the
run is reported separately: under live traffic old writers legitimately changed it since.
After contract, abort is refused: the old shape is gone, restore from the verified backup.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, Field

from dmig.context import ProgressFn
from dmig.db.engine import open_engine
from dmig.errors import Conflict, DatabaseError, DmigError
from dmig.execute import backfill as bf
from dmig.execute import fingerprint, ledger
from dmig.execute.lock import MigrationLock
from dmig.execute.retry import RetryPolicy
from dmig.execute.runner import set_run_state
from dmig.execute.steps import StepOutcome, run_steps
from dmig.execute.target import admit
from dmig.plan.model import Plan, PlanStep


class TableProof(BaseModel):
    table: str
    shape_restored: bool | None = Field(description="Shape equals the one recorded before expand (None: not recorded).")
    data_unchanged_by_rollback: bool
    data_identical_to_start: bool | None = Field(
        description="Original columns' checksum equals the one taken before expand (writes since then make it differ)."
    )
    rows: int | None = None
    checksum: str | None = None


class AbortOutcome(BaseModel):
    migration_id: str
    checksum: str
    state: str
    steps: list[StepOutcome]
    proof: list[TableProof]
    restored_exactly: bool = Field(description="Every table's shape restored and its data untouched by the rollback.")
    notes: list[str] = Field(default_factory=list)


def steps_to_undo(plan: Plan, done: dict[str, ledger.LedgerRow]) -> list[PlanStep]:
    """Rollback steps that undo expand steps which ran (or may have, for non-transactional ones)."""
    ran = [
        s for s in plan.phase_steps("expand")
        if s.id in done and (done[s.id].state == "done" or (done[s.id].state != "done" and not s.transactional))
    ]  # fmt: skip
    wanted = {r for s in ran for r in s.rollback}
    referenced = {r for s in plan.phase_steps("expand") for r in s.rollback}
    return [s for s in plan.rollback if s.id in wanted or (ran and s.id not in referenced)]


def _original_columns(start: dict[str, Any]) -> dict[str, list[str]]:
    return {t: v["data"]["columns"] for t, v in start.items() if v.get("data") and v["data"].get("columns")}


class UndoResult(BaseModel):
    """What undoing expand did and proved (the lock-holding core shared by abort, the runner and rollback)."""

    steps: list[StepOutcome]
    proof: list[TableProof]
    exact: bool
    notes: list[str] = Field(default_factory=list)


def undo_expand(
    engine: sa.Engine, plan: Plan, *, policy: RetryPolicy, progress: ProgressFn | None = None, strict: bool = True
) -> UndoResult:
    """Run the rollback steps of what expand did and prove the result; the caller holds the migration lock.

    Raises DatabaseError (run state "failed") when a step fails, or (``strict``) when the result differs
    from the original; without ``strict`` the caller judges the returned proof itself.
    """
    tables = [(t.schema_, t.name) for t in plan.tables if t.exists]
    with engine.begin() as conn:
        ledger.ensure(conn)
    with engine.connect() as conn:
        run = ledger.read_run(conn, plan.id)
        done = ledger.read_steps(conn, plan.id)
    start = (run.info.get("start") if run else None) or {}
    columns = _original_columns(start) or {
        (f"{t.schema_}.{t.name}" if t.schema_ else t.name): t.columns for t in plan.tables if t.exists
    }
    before = fingerprint.data_only(engine, tables, columns)
    undo = steps_to_undo(plan, done)
    try:
        steps = run_steps(engine, plan, undo, policy=policy, done={}, progress=progress)
    except DmigError as exc:
        set_run_state(engine, plan, "failed", error=f"abort: {exc.message}")
        raise
    shapes = fingerprint.shapes(engine, tables)
    after = fingerprint.data_only(engine, tables, columns)
    proof = _prove(start, before, after, shapes)
    exact = all(p.data_unchanged_by_rollback and p.shape_restored is not False for p in proof)
    with engine.begin() as conn:
        bf.forget(conn, plan.id)
    if not exact and strict:
        set_run_state(engine, plan, "failed", error="abort did not restore the original exactly",
                      abort_proof=[p.model_dump() for p in proof])  # fmt: skip
        raise DatabaseError(
            f"abort of {plan.id} ran its rollback steps but the result differs from the original: "
            + "; ".join(_difference(p) for p in proof if _difference(p)),
            reason="rollback_not_exact",
            proof=[p.model_dump() for p in proof],
        )
    notes = [
        f"{p.table}: data changed since the run started (writes by the application); the rollback itself changed "
        "nothing"
        for p in proof
        if p.data_identical_to_start is False
    ]
    return UndoResult(steps=steps, proof=proof, exact=exact, notes=notes)


def refuse_unless_abortable(plan: Plan, run: ledger.LedgerRow | None) -> None:
    if run is not None and run.state in ledger.CONTRACTED:
        raise Conflict(
            f"migration {plan.id} is {run.state}: the old shape is gone, abort cannot undo it. "
            + plan.after_contract_rollback,
            reason="contracted",
        )
    if run is not None and run.state in ledger.ENDED:
        raise Conflict(f"migration {plan.id} is already {run.state.replace('_', ' ')}", reason="already_" + run.state)


def abort(
    plan: Plan,
    *,
    confirm: str | None,
    url: str | None = None,
    progress: ProgressFn | None = None,
    policy: RetryPolicy | None = None,
    project_dir: Path | None = None,
) -> AbortOutcome:
    parsed = admit(plan, confirm, url, "abort_migration (drops what expand added)", project_dir=project_dir)
    policy = policy or RetryPolicy(max_retries=plan.spec.options.max_lock_retries)
    engine = open_engine(parsed)
    try:
        with MigrationLock(parsed, plan.id, "abort"):
            with engine.begin() as conn:
                ledger.ensure(conn)
            with engine.connect() as conn:
                refuse_unless_abortable(plan, ledger.read_run(conn, plan.id))
            undone = undo_expand(engine, plan, policy=policy, progress=progress)
            set_run_state(engine, plan, "aborted", abort_proof=[p.model_dump() for p in undone.proof])
    finally:
        engine.dispose()
    return AbortOutcome(
        migration_id=plan.id, checksum=plan.checksum, state="aborted", steps=undone.steps, proof=undone.proof,
        restored_exactly=undone.exact, notes=undone.notes,
    )  # fmt: skip


def _prove(
    start: dict[str, Any], before: dict[str, Any], after: dict[str, Any], shapes: dict[str, Any]
) -> list[TableProof]:
    out = []
    for table, now in shapes.items():
        data = after.get(table) or {}
        rec = start.get(table)
        pre = before.get(table) or {}
        out.append(
            TableProof(
                table=table,
                shape_restored=(rec["shape"] == now["shape"]) if rec else None,
                data_unchanged_by_rollback=_same(pre, data),
                data_identical_to_start=_same(rec["data"], data) if rec and rec.get("data") else None,
                rows=data.get("rows"),
                checksum=data.get("sum"),
            )
        )
    return out


def _same(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    if not a or not b:
        return a == b
    return (a.get("rows"), a.get("sum")) == (b.get("rows"), b.get("sum")) and a.get("rows") is not None


def _difference(p: TableProof) -> str:
    if p.shape_restored is False:
        return f"{p.table}: shape differs from before expand"
    if not p.data_unchanged_by_rollback:
        return f"{p.table}: the original columns' data changed during the rollback"
    return ""
