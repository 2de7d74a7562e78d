"""Roll a migration back from wherever it stands, prove the result, record and announce it.

The ledger says where the migration stands, and that decides the procedure (the plan's own):

- Not contracted (started, expanded, backfilled, validated, failed): the abort path. The
  rollback steps undo expand and, with it, the backfill (its writes live in expand's columns);
  the proof is abort's (shape equals the one recorded before expand, the original columns'
  checksum unchanged by the undo). A backfill that overwrote columns which existed before the
  migration is undone by restoring those tables' rows from the verified backup the run took
  before it (``before-run-<id>``).
- Contracted (contracting, completed): the old shape is gone. The affected tables are restored
  from the verified backup recorded before contract (``backups.json``; else the newest verified
  backup of those tables; refused when there is none). Writes are stopped, the table gets back
  the backup's exact shape, its rows are replaced and their checksum (the diff's) is compared
  with the manifest's before the commit (see ``restore_unit``); then the abort path removes
  what expand had added, so the table ends in its pre-migration shape.

Rows written after the backup are lost by design: the outcome counts them (``drift``). The run
ends in state ``rolled_back`` with timestamps, the backup id and the figures; a warning goes on
the agent bus; with a story id the story moves to blocked through the harness's transition
(graph and spelling rules apply), checked before anything is changed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, Field

from dmig.context import ProgressFn, RunContext
from dmig.db.engine import open_engine
from dmig.errors import Conflict, DatabaseError, DmigError
from dmig.execute import fingerprint, ledger
from dmig.execute.abort import TableProof, UndoResult, undo_expand
from dmig.execute.backups import RestoreSource, find_restore_backup
from dmig.execute.lock import MigrationLock
from dmig.execute.restore_unit import UnitOutcome, restore_unit
from dmig.execute.retry import RetryPolicy
from dmig.execute.runner import in_place_backfill_tables, set_run_state
from dmig.execute.steps import StepOutcome
from dmig.execute.target import admit
from dmig.plan.model import Plan

STEP = "rollback.restore"


class BackupUsed(BaseModel):
    backup_id: str
    label: str | None = None
    created_at: str
    format: str
    found_by: str = Field(description="Recorded for this migration, or the newest verified backup of the tables.")
    last_verified_at: str | None = None


class ShapeProof(BaseModel):
    table: str
    identical: bool = Field(description="The table's shape equals the one recorded before the migration.")
    differences: list[str] = Field(default_factory=list)


class RollbackOutcome(BaseModel):
    migration_id: str
    checksum: str
    state: str = Field(description="rolled_back.")
    from_state: str = Field(description="Where the migration stood when the rollback began (ledger).")
    procedure: str = Field(description="abort (before contract) or restore (after contract, from the backup).")
    started_at: str
    finished_at: str
    seconds: float
    backup: BackupUsed | None = None
    restore: UnitOutcome | None = Field(default=None, description="The locked restore: figures and checksums.")
    checksums_ok: bool | None = Field(
        default=None, description="Every restored table's checksum equals the backup manifest's (None: no restore)."
    )
    verified_after_commit: dict[str, bool] = Field(
        default_factory=dict, description="The diff's own table checksum after the commit, per table, vs manifest."
    )
    undo_steps: list[StepOutcome] = Field(default_factory=list, description="Rollback steps that undid expand.")
    undo_proof: list[TableProof] = Field(default_factory=list)
    shape: list[ShapeProof] = Field(default_factory=list)
    schema_identical: bool = Field(description="Every affected table has exactly its pre-migration shape again.")
    discarded_changes: int = Field(
        description="Rows changed after the backup whose later state the restore threw away."
    )
    data_loss_warning: str | None = Field(default=None, description="What the restore discarded, in words.")
    story: dict[str, Any] | None = Field(default=None, description="The story's transition to blocked, if asked.")
    bus_message: dict[str, Any] | None = None
    notes: list[str] = Field(default_factory=list)
    next_action: str = ""


def _key(t: Any) -> str:
    return f"{t.schema_}.{t.name}" if t.schema_ else t.name


def _shape_proof(engine: sa.Engine, plan: Plan, start: dict[str, Any]) -> list[ShapeProof]:
    tables = [(t.schema_, t.name) for t in plan.tables if t.exists]
    now = fingerprint.shapes(engine, tables)
    out = []
    for key, cur in now.items():
        rec = (start.get(key) or {}).get("shape")
        if rec is None:
            out.append(ShapeProof(table=key, identical=False, differences=["no shape was recorded before expand"]))
            continue
        diffs = [f"{k}: now {cur['shape'].get(k)!r}, before {rec.get(k)!r}" for k in rec if cur["shape"].get(k) !=
                 rec.get(k)]  # fmt: skip
        out.append(ShapeProof(table=key, identical=not diffs, differences=[d[:400] for d in diffs]))
    return out


def _check_story(rc: RunContext, story_id: str) -> None:
    """Refuse up front (nothing changed yet) a story that does not exist or cannot become blocked."""
    from dmig.harness import status
    from dmig.harness.paths import project_files

    data = status.read(project_files(rc))
    if data is None:
        raise Conflict(f"story {story_id}: there is no docs/09-agents/status.json; nothing was rolled back")
    story = status.get_story(data, story_id)
    current = status.canonical(story.get("status"))
    if current != "blocked":
        status.check_transition(story_id, current, "blocked")


def _choose(
    plan: Plan, project_dir: Path, url: str, run: ledger.LedgerRow, contracted: bool
) -> tuple[RestoreSource | None, list[str], list[str]]:
    """(backup, tables to restore, notes). Contracted: every affected table; else the in-place backfill's."""
    if contracted:
        names = [t.name for t in plan.tables if t.exists]
        ids = [str((run.info.get("backup") or {}).get("id") or "")]
        label = f"before-contract-{plan.id}"
    else:
        names = [t for _, t in in_place_backfill_tables(plan)]
        ids = [str((run.info.get("run_backup") or {}).get("id") or "")]
        label = f"before-run-{plan.id}"
        if not names:
            return None, [], []
    schemas = {t.schema_ for t in plan.tables if t.exists and t.name in names}
    schema = next(iter(schemas)) if len(schemas) == 1 else None
    source, notes = find_restore_backup(
        project_dir, plan.id, label, [i for i in ids if i], url, names, schema, fallback=contracted
    )
    if source is None and contracted:
        raise Conflict(
            f"migration {plan.id} is {run.state}: the old shape is gone and no VERIFIED backup of "
            f"{', '.join(names)} was found (recorded for it or in the project). Nothing was changed. Verify a "
            "backup (verify_backup) or restore by hand",
            reason="no_verified_backup",
            notes=notes,
        )
    if source is None:
        notes.append(
            f"the backfill overwrote existing columns of {', '.join(names)} and no verified backup was taken before "
            "it: the undo cannot bring those old values back"
        )
    return source, names, notes


def _verify_after_commit(engine: sa.Engine, source: RestoreSource, tables: list[str], schema: str | None) -> dict:
    from dmig.backup.checksum import prepare_connection, table_checksum

    raw = engine.url.render_as_string(hide_password=False)
    out = {}
    with engine.connect() as conn:
        prepare_connection(conn)
        for t in tables:
            entry = source.manifest.table(t)
            try:
                out[t] = table_checksum(conn, raw, t, schema).token == entry.checksum.token
            except DmigError:
                out[t] = False
        conn.rollback()
    return out


def _restore(
    engine: sa.Engine, plan: Plan, source: RestoreSource, tables: list[str], reshape: bool, policy: RetryPolicy
) -> tuple[UnitOutcome, dict[str, bool]]:
    with engine.begin() as conn:
        ledger.write(conn, plan.id, STEP, phase="rollback", checksum=plan.checksum, state="running", restart=True,
                     info={"backup_id": source.manifest.backup_id, "tables": tables})  # fmt: skip
    try:
        unit = restore_unit(engine, plan, source.manifest, source.folder, tables, reshape_tables=reshape, policy=policy)
    except DmigError as exc:
        with engine.begin() as conn:
            ledger.write(conn, plan.id, STEP, phase="rollback", checksum=plan.checksum, state="failed",
                         error=exc.message, finished=True)  # fmt: skip
        raise
    schemas = {t.schema_ for t in plan.tables if t.exists and t.name in tables}
    checked = _verify_after_commit(engine, source, tables, next(iter(schemas)) if len(schemas) == 1 else None)
    info = {"backup_id": source.manifest.backup_id, **unit.model_dump(mode="json"), "verified_after_commit": checked}
    with engine.begin() as conn:
        ledger.write(conn, plan.id, STEP, phase="rollback", checksum=plan.checksum, state="done", finished=True,
                     info=info)  # fmt: skip
    return unit, checked


def rollback(
    plan: Plan,
    *,
    confirm: str | None,
    project_dir: Path,
    url: str | None = None,
    story_id: str | None = None,
    reason: str | None = None,
    rc: RunContext | None = None,
    progress: ProgressFn | None = None,
    policy: RetryPolicy | None = None,
) -> RollbackOutcome:
    action = "rollback (restores the pre-migration state; later changes are lost)"
    parsed = admit(plan, confirm, url, action, project_dir=project_dir)
    rc = rc or RunContext(project_dir=Path(project_dir))
    if story_id:
        _check_story(rc, story_id)
    policy = policy or RetryPolicy(max_retries=plan.spec.options.max_lock_retries)
    report = progress or (lambda *_a: None)
    engine = open_engine(parsed)
    started_at, t0 = ledger.now(), time.monotonic()
    try:
        with MigrationLock(parsed, plan.id, "rollback"):
            with engine.begin() as conn:
                ledger.ensure(conn)
            with engine.connect() as conn:
                run = ledger.read_run(conn, plan.id)
            _refuse(plan, run)
            assert run is not None
            contracted = run.state in ledger.CONTRACTED
            ref = url or plan.target.ref or parsed.render_as_string(hide_password=False)
            source, tables, notes = _choose(plan, Path(project_dir), ref, run, contracted)
            start = run.info.get("start") or {}
            unit, checked, undone = None, {}, None
            if contracted:
                report(0, 3, "restoring from the verified backup (writes stopped)")
                unit, checked = _restore(engine, plan, source, tables, True, policy)  # type: ignore[arg-type]
                # move_table's copy is a table of its own that no backup covers: its expand rollback drops it
                copied = any(s.kind == "copy" for s in plan.phase_steps("expand"))
                if copied or not all(p.identical for p in _shape_proof(engine, plan, start)):
                    report(2, 3, "undoing expand")
                    undone = undo_expand(engine, plan, policy=policy, strict=False)
            else:
                report(0, 3, "undoing expand")
                undone = undo_expand(engine, plan, policy=policy, strict=False)
                if source is not None:
                    report(2, 3, "restoring the rows the backfill overwrote (writes stopped)")
                    unit, checked = _restore(engine, plan, source, tables, False, policy)
            shape = _shape_proof(engine, plan, start)
            if not all(p.identical for p in shape) and run.info.get("start_ddl"):
                notes += _sqlite_original_shape(engine, shape, start, run.info["start_ddl"])
                shape = _shape_proof(engine, plan, start)
            out = _outcome(plan, run.state, contracted, source, unit, checked, undone, shape, notes, started_at, t0)
            set_run_state(engine, plan, "rolled_back", rollback=_ledger_summary(out))
    finally:
        engine.dispose()
    report(3, 3, "rolled back")
    return _announce(rc, out, story_id, reason)


def _sqlite_original_shape(
    engine: sa.Engine, shape: list[ShapeProof], start: dict[str, Any], ddl: dict[str, Any]
) -> list[str]:
    """SQLite: rebuild tables whose shape still differs from their original CREATE text, rows unchanged (proven)."""
    from dmig.execute import reshape

    notes = []
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        version = fingerprint.prepare(conn)
        conn.exec_driver_sql("PRAGMA foreign_keys = OFF")
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            for p in shape:
                keep = [c[0] for c in (start.get(p.table) or {}).get("shape", {}).get("columns", [])]
                if p.identical or p.table not in ddl or not keep:
                    continue
                before = fingerprint.data_checksum(conn, p.table, None, keep, version)
                reshape.sqlite_rebuild_in_place(conn, p.table, ddl[p.table], keep)
                after = fingerprint.data_checksum(conn, p.table, None, keep, version)
                if (before["rows"], before["sum"]) != (after["rows"], after["sum"]):
                    raise DatabaseError(f"rebuilding {p.table} in its original shape changed its rows: rolled back",
                                        reason="rebuild_changed_data")  # fmt: skip
                notes.append(f"{p.table}: rebuilt from its original CREATE statement (SQLite cannot drop what the "
                             f"migration's rebuild added); {after['rows']} rows, checksum unchanged")  # fmt: skip
            conn.exec_driver_sql("COMMIT")
        except BaseException:
            conn.exec_driver_sql("ROLLBACK")
            raise
        finally:
            conn.exec_driver_sql("PRAGMA foreign_keys = ON")
    return notes


def _refuse(plan: Plan, run: ledger.LedgerRow | None) -> None:
    if run is None:
        raise Conflict(f"migration {plan.id} never ran on this database: there is nothing to roll back",
                       reason="not_started")  # fmt: skip
    if run.state in ledger.ENDED:
        raise Conflict(f"migration {plan.id} is already {run.state.replace('_', ' ')}", reason="already_" + run.state)
    if run.plan_checksum != plan.checksum:
        raise Conflict(
            f"migration {plan.id} ran under another plan: roll back with that plan",
            reason="other_plan",
        )


def _outcome(
    plan: Plan, from_state: str, contracted: bool, source: RestoreSource | None, unit: UnitOutcome | None,
    checked: dict[str, bool], undone: UndoResult | None, shape: list[ShapeProof], notes: list[str],
    started_at: str, t0: float,
) -> RollbackOutcome:  # fmt: skip
    from dmig.execute.drift import describe

    discarded = sum(t.drift.total for t in unit.tables) if unit else 0
    loss = "; ".join(describe(t.table, t.drift) for t in unit.tables) if unit else None
    identical = all(s.identical for s in shape)
    if undone is not None:
        notes = [*notes, *undone.notes]
    if unit is not None:
        notes = [*notes, *unit.notes]
    return RollbackOutcome(
        migration_id=plan.id,
        checksum=plan.checksum,
        state="rolled_back",
        from_state=from_state,
        procedure="restore" if contracted else "abort",
        started_at=started_at,
        finished_at=ledger.now(),
        seconds=round(time.monotonic() - t0, 3),
        backup=_backup_used(source) if source else None,
        restore=unit,
        checksums_ok=all(t.checksum_ok for t in unit.tables) if unit else None,
        verified_after_commit=checked,
        undo_steps=undone.steps if undone else [],
        undo_proof=undone.proof if undone else [],
        shape=shape,
        schema_identical=identical,
        discarded_changes=discarded,
        data_loss_warning=loss if unit else None,
        notes=notes,
        next_action=(
            "the database is back in its pre-migration state: redeploy the old application if it changed, find the "
            "cause, then plan again"
            if identical
            else "the data is restored but the shape differs from before the migration (see shape): fix it by hand"
        ),
    )


def _backup_used(source: RestoreSource) -> BackupUsed:
    m = source.manifest
    last = m.last_verification
    return BackupUsed(backup_id=m.backup_id, label=m.label, created_at=m.created_at, format=m.format,
                      found_by=source.found_by, last_verified_at=last.verified_at if last else None)  # fmt: skip


def _ledger_summary(out: RollbackOutcome) -> dict[str, Any]:
    return {
        "from_state": out.from_state,
        "procedure": out.procedure,
        "started_at": out.started_at,
        "finished_at": out.finished_at,
        "seconds": out.seconds,
        "backup_id": out.backup.backup_id if out.backup else None,
        "rows_restored": sum(t.rows for t in out.restore.tables) if out.restore else 0,
        "checksums_ok": out.checksums_ok,
        "schema_identical": out.schema_identical,
        "discarded_changes": out.discarded_changes,
    }


def _announce(rc: RunContext, out: RollbackOutcome, story_id: str | None, reason: str | None) -> RollbackOutcome:
    """Bus warning with the figures, then the story's move to blocked; neither may undo a finished rollback."""
    from dmig.harness import bus
    from dmig.harness.paths import BUS
    from dmig.harness.transition import transition

    rows = sum(t.rows for t in out.restore.tables) if out.restore else 0
    text = (
        f"migration {out.migration_id} ROLLED BACK from {out.from_state} ({out.procedure}) in {out.seconds:.1f} s"
        + (f"; restored {rows:,} row(s) from backup {out.backup.backup_id} in {out.restore.seconds:.2f} s with writes "
           f"stopped, checksums {'equal to the backup' if out.checksums_ok else 'DIFFERENT'}" if out.restore and
           out.backup else "")
        + f"; schema {'identical to before the migration' if out.schema_identical else 'DIFFERS from before'}"
        + (f"; {out.discarded_changes} later change(s) discarded by design" if out.restore else "")
        + (f". Reason: {reason}" if reason else "")
    )  # fmt: skip
    summary = _ledger_summary(out)
    notes = list(out.notes)
    try:
        extra = {"migration_id": out.migration_id, "state": "rolled_back", **summary}
        message = bus.build_message(sender=rc.actor, type="warning", text=text[: bus.MAX_TEXT], story=story_id,
                                    extra=extra)  # fmt: skip
        bus.append(rc.project_path(BUS), message)
    except (DmigError, OSError) as exc:
        message = None
        notes.append(f"could not announce the rollback on the bus: {getattr(exc, 'message', exc)}")
    story = None
    if story_id:
        why = f"migration {out.migration_id} rolled back" + (f": {reason}" if reason else "")
        try:
            story = transition(rc, story_id, "blocked", reason=why[:1000]).model_dump(mode="json")
        except DmigError as exc:
            notes.append(f"story {story_id} was not moved to blocked: {exc.message}")
    return out.model_copy(update={"bus_message": message, "story": story, "notes": notes})
