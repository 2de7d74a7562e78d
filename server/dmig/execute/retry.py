"""Run one step under a lock timeout, retrying with exponential backoff and jitter.

A schema change on a busy table must not wait indefinitely for its lock: on PostgreSQL and MySQL
a waiting exclusive lock request blocks every later query on the table. So each attempt runs
with the spec's lock timeout (PostgreSQL ``lock_timeout``, MySQL ``lock_wait_timeout``, SQLite
``busy_timeout``); when it expires the attempt is rolled back, the executor sleeps (full jitter
over an exponentially growing window) and tries again, at most ``max_lock_retries`` times. A
deadlock is retried the same way: the server rolled the attempt back whole (the step is
transactional or re-runnable), and losing one to application queries is a matter of timing, not
a fault of the step. Any other error stops the step at once.

Statements run as the step says: ``transactional`` ones in one transaction (SQLite: ``BEGIN
IMMEDIATE``, so the write lock is taken up front and waits under busy_timeout), the others in
autocommit, one by one (e.g. CREATE INDEX CONCURRENTLY). ``in_transaction`` lets the caller add
work (the ledger row) to the step's own transaction where DDL is transactional.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import sqlalchemy as sa

from dmig.db.urls import dialect_of
from dmig.errors import DatabaseError
from dmig.execute.ledger import clean_error
from dmig.spec.steps import Step

PG_LOCK_NOT_AVAILABLE = "55P03"
PG_DEADLOCK_DETECTED = "40P01"
MYSQL_LOCK_WAIT_TIMEOUT = 1205
MYSQL_LOCK_DEADLOCK = 1213
TRANSACTIONAL_DDL = ("postgresql", "sqlite")


@dataclass
class RetryPolicy:
    max_retries: int = 10
    base_s: float = 0.2
    cap_s: float = 10.0
    rng: random.Random = field(default_factory=random.Random)
    sleep: Callable[[float], None] = time.sleep

    def delay(self, attempt: int) -> float:
        """Full jitter: uniform over [0, min(cap, base * 2**attempt)] (attempt counts from 1)."""
        return self.rng.uniform(0, min(self.cap_s, self.base_s * 2 ** (attempt - 1)))


@dataclass
class StepRun:
    attempts: int
    seconds: float
    waited_s: float
    lock_timeouts: list[str] = field(default_factory=list)


def _server_error(exc: BaseException, dialect: str, sqlstate: str, errno: int) -> bool:
    orig = getattr(exc, "orig", exc)
    if dialect == "postgresql":
        return getattr(orig, "sqlstate", None) == sqlstate
    args = getattr(orig, "args", ())
    return dialect == "mysql" and bool(args) and args[0] == errno


def is_lock_timeout(exc: BaseException, dialect: str) -> bool:
    if dialect in ("postgresql", "mysql"):
        return _server_error(exc, dialect, PG_LOCK_NOT_AVAILABLE, MYSQL_LOCK_WAIT_TIMEOUT)
    text = str(getattr(exc, "orig", exc)).lower()
    return "database is locked" in text or "database table is locked" in text


def is_deadlock(exc: BaseException, dialect: str) -> bool:
    return _server_error(exc, dialect, PG_DEADLOCK_DETECTED, MYSQL_LOCK_DEADLOCK)


@contextlib.contextmanager
def applied(conn: sa.Connection, settings: list[str]) -> Iterator[None]:
    """Run ``settings`` on a pooled connection for one step, then give the connection back as it was.

    The step's short lock timeout is for the step: left on the pooled connection it would also bound the
    executor's own ledger writes and validation reads afterwards, which on SQLite (busy_timeout 500 ms instead
    of the engine's 30 s) then fail with "database is locked" while the application writes.
    """
    dialect = dialect_of(conn.engine.url)
    busy = conn.exec_driver_sql("PRAGMA busy_timeout").scalar() if dialect == "sqlite" else None
    for stmt in settings:
        conn.exec_driver_sql(stmt)
    try:
        yield
    finally:
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            if dialect == "sqlite" and busy is not None:
                conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(busy)}")
            elif dialect == "postgresql" and not conn.in_transaction():
                conn.exec_driver_sql("RESET lock_timeout")
                conn.exec_driver_sql("RESET statement_timeout")


def _begin(conn: sa.Connection, dialect: str) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if dialect == "sqlite" else "BEGIN")


def _attempt(
    engine: sa.Engine, step: Step, settings: list[str], in_transaction: Callable[[sa.Connection], None] | None
) -> None:
    dialect = dialect_of(engine.url)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn, applied(conn, settings):
        if not step.transactional:
            for stmt in step.sql:
                conn.exec_driver_sql(stmt)
            if in_transaction is not None:
                in_transaction(conn)
            return
        _begin(conn, dialect)
        try:
            for stmt in step.sql:
                conn.exec_driver_sql(stmt)
            if in_transaction is not None:
                in_transaction(conn)
        except BaseException:
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                conn.exec_driver_sql("ROLLBACK")
            if dialect == "mysql":  # a step may hold LOCK TABLES; ROLLBACK does not release it
                with contextlib.suppress(sa.exc.SQLAlchemyError):
                    conn.exec_driver_sql("UNLOCK TABLES")
            raise
        conn.exec_driver_sql("COMMIT")


def blockers(engine: sa.Engine) -> list[str]:
    """The oldest open transactions of other sessions: the usual reason a lock is not granted."""
    dialect = dialect_of(engine.url)
    try:
        with engine.connect() as conn:
            if dialect == "postgresql":
                rows = conn.exec_driver_sql(
                    "SELECT pid, state, coalesce(application_name, ''), "
                    "extract(epoch FROM now() - xact_start)::int, left(query, 80) FROM pg_catalog.pg_stat_activity "
                    "WHERE pid <> pg_backend_pid() AND xact_start IS NOT NULL AND datname = current_database() "
                    "ORDER BY xact_start LIMIT 3"
                ).all()
                return [f"pid {r[0]} ({r[1]}, {r[2] or 'no name'}, transaction open {r[3]} s): {r[4]}" for r in rows]
            if dialect == "mysql":
                rows = conn.exec_driver_sql(
                    "SELECT id, user, command, time, left(coalesce(info, ''), 80) FROM information_schema.processlist "
                    "WHERE id <> CONNECTION_ID() AND db = DATABASE() AND command <> 'Daemon' ORDER BY time DESC LIMIT 3"
                ).all()
                return [f"connection {r[0]} ({r[1]}, {r[2]} for {r[3]} s): {r[4]}" for r in rows]
    except sa.exc.SQLAlchemyError:
        return []
    return []


def run_with_retry(
    engine: sa.Engine,
    step: Step,
    settings: list[str],
    policy: RetryPolicy,
    *,
    lock_timeout_ms: int | None = None,
    in_transaction: Callable[[sa.Connection], None] | None = None,
    on_retry: Callable[[int, float, str], None] | None = None,
) -> StepRun:
    """Run ``step``; retry only lock timeouts and deadlocks. Raises DatabaseError (E_LOCK_TIMEOUT when retries
    ran out)."""
    dialect = dialect_of(engine.url)
    started = time.monotonic()
    waited = 0.0
    timeouts: list[str] = []
    attempt = 0
    while True:
        attempt += 1
        try:
            _attempt(engine, step, settings, in_transaction)
            return StepRun(attempt, round(time.monotonic() - started, 3), round(waited, 3), timeouts)
        except sa.exc.DBAPIError as exc:
            if not (is_lock_timeout(exc, dialect) or is_deadlock(exc, dialect)):
                raise DatabaseError(
                    f"step {step.id} failed: {clean_error(exc).splitlines()[0] if clean_error(exc) else exc}",
                    reason="step_failed",
                    step=step.id,
                    transactional=step.transactional,
                ) from None
            timeouts.append(clean_error(exc).splitlines()[0])
            retryable = step.retry_on_lock_timeout and attempt <= policy.max_retries
            if not retryable:
                _give_up(engine, step, attempt, started, lock_timeout_ms)
            pause = policy.delay(attempt)
            if on_retry is not None:
                on_retry(attempt, pause, timeouts[-1])
            policy.sleep(pause)
            waited += pause


def _give_up(engine: sa.Engine, step: Step, attempts: int, started: float, lock_timeout_ms: int | None) -> None:
    held = blockers(engine)
    applied = (
        "nothing of it was applied" if step.transactional else "it is safe to re-run (its statements are idempotent)"
    )
    raise DatabaseError(
        f"step {step.id} could not get its lock ({step.lock}) in {attempts} attempt(s) over "
        f"{time.monotonic() - started:.1f} s (lock timeout {lock_timeout_ms or 'server default'} ms each, "
        "backoff with jitter between); "
        f"another session holds a conflicting lock or a long transaction is open"
        + (": " + "; ".join(held) if held else "")
        + f". {applied}; re-run later or end the blocking transaction",
        code="E_LOCK_TIMEOUT",
        reason="lock_timeout",
        step=step.id,
        attempts=attempts,
        blockers=held,
    )
