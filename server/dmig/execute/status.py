"""Where a migration stands, read from the target database only (read-only, time-bounded)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, Field
from sqlalchemy.engine import URL

from dmig.db.dialects import read_only_session
from dmig.db.engine import connect
from dmig.db.urls import dialect_of, display_url
from dmig.execute import backfill as bf
from dmig.execute import ledger
from dmig.execute.lock import SQLITE_LOCKS, mysql_name, pg_key, process_alive

STATUS_TIMEOUT_S = 30.0


class BackfillStatus(BaseModel):
    step_id: str
    table: str
    state: str
    rows_done: int
    batches: int
    last_key: Any = None
    hi_max: Any = None
    updated_at: str


class MigrationStatus(BaseModel):
    migration_id: str
    target: str
    state: str = Field(description="not_started, started, expanded, backfilled, validated, contracting, completed, "
                       "aborted or failed")  # fmt: skip
    plan_checksum: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = None
    steps: list[ledger.LedgerRow] = Field(default_factory=list)
    backfills: list[BackfillStatus] = Field(default_factory=list)
    validation: list[dict[str, Any]] = Field(default_factory=list)
    locked_by: str | None = Field(default=None, description="Who holds the migration lock now (None: nobody).")


def _lock_holder(conn: sa.Connection, url: URL, migration_id: str) -> str | None:
    d = dialect_of(url)
    if d == "postgresql":
        key = pg_key(migration_id)
        row = conn.execute(
            sa.text(
                "SELECT a.pid, a.application_name FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a "
                "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = :hi "
                "AND l.objid::bigint = :lo AND l.objsubid = 1 "
                # Advisory locks are per database: the same migration id may be running in another one.
                "AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())"
            ),
            {"hi": (key >> 32) & 0xFFFFFFFF, "lo": key & 0xFFFFFFFF},
        ).first()
        return f"PostgreSQL backend pid {row.pid} ({row.application_name})" if row else None
    if d == "mysql":
        cid = conn.execute(sa.text("SELECT IS_USED_LOCK(:n)"), {"n": mysql_name(url.database, migration_id)}).scalar()
        return f"MySQL connection {cid}" if cid is not None else None
    if not sa.inspect(conn).has_table(SQLITE_LOCKS.name):
        return None
    row = conn.execute(sa.select(SQLITE_LOCKS).where(SQLITE_LOCKS.c.name == migration_id)).first()
    if row is None or not process_alive(row.owner_pid, row.owner_started):
        return None
    return f"process {row.owner_pid} on {row.owner_host} ({row.purpose})"


def _backfills(conn: sa.Connection, migration_id: str) -> list[BackfillStatus]:
    if not sa.inspect(conn).has_table(bf.CHECKPOINTS.name):
        return []
    c = bf.CHECKPOINTS.c
    rows = conn.execute(sa.select(bf.CHECKPOINTS).where(c.migration_id == migration_id).order_by(c.step_id)).all()
    return [
        BackfillStatus(
            step_id=r.step_id,
            table=r.table_name,
            state=r.state,
            rows_done=int(r.rows_done),
            batches=int(r.batches),
            last_key=bf.decode_key(r.last_key),
            hi_max=bf.decode_key(r.hi_max),
            updated_at=r.updated_at,
        )
        for r in rows
    ]


def migration_status(url: URL, migration_id: str) -> MigrationStatus:
    with connect(url) as conn, read_only_session(conn, STATUS_TIMEOUT_S):
        run = ledger.read_run(conn, migration_id)
        steps = ledger.read_steps(conn, migration_id)
        backfills = _backfills(conn, migration_id)
        holder = _lock_holder(conn, url, migration_id)
    out = MigrationStatus(migration_id=migration_id, target=display_url(url), state="not_started", locked_by=holder)
    if run is None:
        return out
    return out.model_copy(
        update={
            "state": run.state,
            "plan_checksum": run.plan_checksum,
            "started_at": run.started_at,
            "finished_at": run.finished_at,
            "error": run.error,
            "steps": sorted(steps.values(), key=lambda r: (r.started_at, r.step_id)),
            "backfills": backfills,
            "validation": run.info.get("validation") or [],
        }
    )
