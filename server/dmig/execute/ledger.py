"""The migration ledger: table ``dmig_migrations`` in the target database, the executor's memory.

One row per (migration, step) with the plan checksum it ran under, its phase and state, when it
started and finished and the (redacted) error, plus one run row (step ``_run``) carrying the
migration's overall state and what abort needs to prove a rollback exact (the original columns'
checksums and schema fingerprint taken before expand). Living in the target database, it survives
any crash of the executor and is written in the same transaction as a step wherever the database
can make DDL transactional (PostgreSQL, SQLite).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, Field

from dmig.redact import redact

RUN = "_run"
ERROR_MAX = 2000
# Run states, in order; "failed", "aborted" and "rolled_back" may follow any of them.
RUN_STATES = (
    "started", "expanded", "backfilled", "validated", "contracting", "completed", "aborted", "rolled_back", "failed",
)  # fmt: skip
CONTRACTED = ("contracting", "completed")
ENDED = ("aborted", "rolled_back")

_md = sa.MetaData()
LEDGER = sa.Table(
    "dmig_migrations",
    _md,
    sa.Column("migration_id", sa.String(100), primary_key=True),
    sa.Column("step_id", sa.String(200), primary_key=True),
    sa.Column("phase", sa.String(16), nullable=False),
    sa.Column("plan_checksum", sa.String(64), nullable=False),
    sa.Column("state", sa.String(24), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("started_at", sa.String(40), nullable=False),
    sa.Column("finished_at", sa.String(40)),
    sa.Column("error", sa.Text),
    sa.Column("info", sa.Text),
)


class LedgerRow(BaseModel):
    migration_id: str
    step_id: str
    phase: str
    plan_checksum: str
    state: str
    attempts: int = 0
    started_at: str
    finished_at: str | None = None
    error: str | None = None
    info: dict[str, Any] = Field(default_factory=dict)


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def ensure(conn: sa.Connection) -> None:
    LEDGER.create(conn, checkfirst=True)


def exists(conn: sa.Connection) -> bool:
    return sa.inspect(conn).has_table(LEDGER.name)


def _row(r: Any) -> LedgerRow:
    data = dict(r._mapping)
    data["info"] = json.loads(data["info"]) if data.get("info") else {}
    return LedgerRow(**data)


def read_run(conn: sa.Connection, migration_id: str) -> LedgerRow | None:
    if not exists(conn):
        return None
    c = LEDGER.c
    r = conn.execute(sa.select(LEDGER).where(c.migration_id == migration_id, c.step_id == RUN)).first()
    return _row(r) if r is not None else None


def read_steps(conn: sa.Connection, migration_id: str) -> dict[str, LedgerRow]:
    if not exists(conn):
        return {}
    c = LEDGER.c
    rows = conn.execute(sa.select(LEDGER).where(c.migration_id == migration_id, c.step_id != RUN)).all()
    return {r.step_id: _row(r) for r in rows}


def clean_error(error: BaseException | str | None) -> str | None:
    if error is None:
        return None
    text = error if isinstance(error, str) else str(getattr(error, "orig", None) or error)
    return redact(text.strip())[:ERROR_MAX]


def write(
    conn: sa.Connection,
    migration_id: str,
    step_id: str,
    *,
    phase: str,
    checksum: str,
    state: str,
    attempts: int | None = None,
    error: BaseException | str | None = None,
    info: dict[str, Any] | None = None,
    finished: bool = False,
    restart: bool = False,
) -> None:
    """Upsert one row. ``restart`` resets started_at; ``info`` replaces the stored info when given."""
    c = LEDGER.c
    values: dict[str, Any] = {"phase": phase, "plan_checksum": checksum, "state": state, "error": clean_error(error)}
    values["finished_at"] = now() if finished else None
    if attempts is not None:
        values["attempts"] = attempts
    if info is not None:
        values["info"] = json.dumps(info, default=str, sort_keys=True)
    if restart:
        values["started_at"] = now()
    where = sa.and_(c.migration_id == migration_id, c.step_id == step_id)
    if conn.execute(sa.update(LEDGER).where(where).values(**values)).rowcount:
        return
    values.setdefault("started_at", now())
    values.setdefault("attempts", 0)
    conn.execute(sa.insert(LEDGER).values(migration_id=migration_id, step_id=step_id, **values))


def forget_steps(conn: sa.Connection, migration_id: str, phases: tuple[str, ...]) -> None:
    """Drop step rows of these phases (a fresh run after an abort starts its steps again)."""
    c = LEDGER.c
    conn.execute(sa.delete(LEDGER).where(c.migration_id == migration_id, c.phase.in_(phases), c.step_id != RUN))


def protected_backup_ids(project_dir: Path) -> set[str]:
    """Hook for dmig.backup's prune: the backups completed migrations took before contract (their way back)."""
    from dmig.execute.backups import recorded_backup_ids

    return recorded_backup_ids(project_dir)
