"""The migration lock: one executor per migration per database, and a clear answer naming the holder.

PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) on a key derived from the
migration id, held on a dedicated connection for the whole run; a crashed executor's session ends
and the lock with it. MySQL/MariaDB: ``GET_LOCK(name, 0)`` on a dedicated connection (the name
includes the database, since MySQL named locks are server-wide). SQLite has neither, so a row in
``dmig_lock`` names the owner (pid, host, process start time); a row whose owner process is gone
(same host, pid dead, zombie, or reused by another process) is stale and taken over.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL

from dmig.db.engine import open_engine
from dmig.db.urls import dialect_of
from dmig.errors import Conflict
from dmig.execute.ledger import now

_md = sa.MetaData()
SQLITE_LOCKS = sa.Table(
    "dmig_lock",
    _md,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("owner_pid", sa.Integer, nullable=False),
    sa.Column("owner_host", sa.String(255), nullable=False),
    sa.Column("owner_started", sa.String(40)),
    sa.Column("token", sa.String(64), nullable=False),
    sa.Column("purpose", sa.String(64)),
    sa.Column("acquired_at", sa.String(40), nullable=False),
)


def pg_key(migration_id: str) -> int:
    """A signed 64-bit advisory lock key (stable across processes and versions)."""
    return int.from_bytes(hashlib.sha256(b"dmig:migration:" + migration_id.encode()).digest()[:8], "big", signed=True)


def mysql_name(database: str | None, migration_id: str) -> str:
    digest = hashlib.sha256(f"{database or ''}\0{migration_id}".encode()).hexdigest()[:48]
    return f"dmig:{digest}"


def _proc_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (None where /proc is not available)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def _proc_state(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()[0]


def process_alive(pid: int, started: str | None) -> bool:
    """Alive, not a zombie, and the same process (not a reused pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if _proc_state(pid) in ("Z", "X"):
        return False
    current = _proc_start(pid)
    return not (started and current and current != started)


class MigrationLock:
    """Context manager: ``with MigrationLock(url, migration_id, "run"): ...``; raises Conflict when held."""

    def __init__(self, url: URL, migration_id: str, purpose: str = "run") -> None:
        self.url = url
        self.dialect = dialect_of(url)
        self.migration_id = migration_id
        self.purpose = purpose
        self.token = uuid.uuid4().hex
        self.engine: sa.Engine | None = None
        self.conn: sa.Connection | None = None
        self.held = False

    # -- public -------------------------------------------------------------------------------------
    def __enter__(self) -> MigrationLock:
        self.acquire()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        self.engine = open_engine(self.url, pool_size=1)
        try:
            self.conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            {"postgresql": self._pg_acquire, "mysql": self._mysql_acquire, "sqlite": self._sqlite_acquire}[
                self.dialect
            ]()
            self.held = True
        except BaseException:
            self._close()
            raise

    def release(self) -> None:
        if self.held and self.conn is not None:
            try:
                if self.dialect == "postgresql":
                    self.conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": pg_key(self.migration_id)})
                elif self.dialect == "mysql":
                    self.conn.execute(sa.text("SELECT RELEASE_LOCK(:n)"), {"n": self._mysql_name()})
                else:
                    c = SQLITE_LOCKS.c
                    self.conn.execute(sa.delete(SQLITE_LOCKS).where(c.name == self.migration_id, c.token == self.token))
            except sa.exc.SQLAlchemyError:
                pass  # the session ending releases PostgreSQL/MySQL locks anyway
        self.held = False
        self._close()

    # -- PostgreSQL ------------------------------------------------------------------------------------
    def _owner_text(self) -> str:
        return f"dmig {self.purpose} pid={os.getpid()}@{socket.gethostname()}"[:63]

    def _pg_acquire(self) -> None:
        assert self.conn is not None
        self.conn.execute(sa.text("SELECT set_config('application_name', :a, false)"), {"a": self._owner_text()})
        key = pg_key(self.migration_id)
        if self.conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
            return
        hi, lo = (key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF
        row = self.conn.execute(
            sa.text(
                "SELECT a.pid, a.application_name, a.client_addr::text AS addr, a.backend_start::text AS since "
                "FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = :hi AND l.objid::bigint = :lo "
                "AND l.objsubid = 1"
            ),
            {"hi": hi, "lo": lo},
        ).first()
        holder = (
            f"PostgreSQL backend pid {row.pid} ({row.application_name or 'no application_name'}, "
            f"client {row.addr or 'local socket'}, connected since {row.since})"
            if row
            else "another session (it released the lock while we looked: retry)"
        )
        self._refuse(holder, backend_pid=row.pid if row else None)

    # -- MySQL ------------------------------------------------------------------------------------------
    def _mysql_name(self) -> str:
        return mysql_name(self.url.database, self.migration_id)

    def _mysql_acquire(self) -> None:
        assert self.conn is not None
        name = self._mysql_name()
        if self.conn.execute(sa.text("SELECT GET_LOCK(:n, 0)"), {"n": name}).scalar() == 1:
            return
        cid = self.conn.execute(sa.text("SELECT IS_USED_LOCK(:n)"), {"n": name}).scalar()
        row = None
        if cid is not None:
            row = self.conn.execute(
                sa.text("SELECT user, host, db, time FROM information_schema.processlist WHERE id = :i"), {"i": cid}
            ).first()
        holder = (
            f"MySQL connection {cid} ({row.user}@{row.host}, database {row.db}, connected {row.time} s)"
            if row
            else f"MySQL connection {cid}"
        )
        self._refuse(holder, connection_id=cid)

    # -- SQLite -----------------------------------------------------------------------------------------
    def _sqlite_acquire(self) -> None:
        assert self.conn is not None
        conn = self.conn
        SQLITE_LOCKS.create(conn, checkfirst=True)
        c = SQLITE_LOCKS.c
        host, pid = socket.gethostname(), os.getpid()
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            row = conn.execute(sa.select(SQLITE_LOCKS).where(c.name == self.migration_id)).first()
            if row is not None:
                stale = row.owner_host == host and not process_alive(row.owner_pid, row.owner_started)
                if not stale:
                    conn.exec_driver_sql("ROLLBACK")
                    self._refuse(
                        f"process {row.owner_pid} on {row.owner_host} ({row.purpose}, since {row.acquired_at})",
                        owner_pid=row.owner_pid,
                        owner_host=row.owner_host,
                    )
                conn.execute(sa.delete(SQLITE_LOCKS).where(c.name == self.migration_id))
            conn.execute(
                sa.insert(SQLITE_LOCKS).values(
                    name=self.migration_id,
                    owner_pid=pid,
                    owner_host=host,
                    owner_started=_proc_start(pid),
                    token=self.token,
                    purpose=self.purpose,
                    acquired_at=now(),
                )
            )
            conn.exec_driver_sql("COMMIT")
        except Conflict:
            raise
        except BaseException:
            conn.exec_driver_sql("ROLLBACK")
            raise

    # -- shared -----------------------------------------------------------------------------------------
    def _refuse(self, holder: str, **details: Any) -> None:
        raise Conflict(
            f"migration {self.migration_id} is locked by another executor: {holder}. Only one run, complete or "
            "abort of a migration may work at a time; wait for it to finish (migration_status shows its progress)",
            reason="migration_locked",
            migration_id=self.migration_id,
            holder=holder,
            **details,
        )

    def _close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                self.conn.close()
            self.conn = None
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None
