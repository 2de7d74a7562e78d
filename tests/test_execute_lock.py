"""The migration lock (a second executor is refused, naming the holder) and lock-timeout retries of DDL."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from dmig.db.urls import parse_url
from dmig.errors import Conflict, DatabaseError
from dmig.execute import migration_status, run_plan
from dmig.execute.lock import SQLITE_LOCKS, MigrationLock
from dmig.execute.retry import RetryPolicy
from execute_helpers import engine, make_plan, query, split_spec, users_table

FAST = RetryPolicy(max_retries=30, base_s=0.05, cap_s=0.3)


def test_second_run_is_refused_naming_the_holder(db_url: str, project: Path) -> None:
    users_table(db_url)
    plan, _ = make_plan(project, db_url)
    with MigrationLock(parse_url(db_url), plan.id, "run"):
        with pytest.raises(Conflict) as err:
            run_plan(plan, confirm=plan.checksum, url=db_url)
        assert err.value.details["reason"] == "migration_locked"
        holder = err.value.details["holder"]
        assert any(word in holder for word in ("pid", "connection", "process")), holder
        assert migration_status(parse_url(db_url), plan.id).locked_by
    out = run_plan(plan, confirm=plan.checksum, url=db_url)  # released: runs
    assert out.state == "validated"


def test_sqlite_stale_lock_of_a_dead_process_is_taken_over(sqlite_url: str, project: Path) -> None:
    users_table(sqlite_url)
    plan, _ = make_plan(project, sqlite_url)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    eng = engine(sqlite_url)
    with eng.begin() as conn:
        SQLITE_LOCKS.create(conn)
        conn.execute(sa.insert(SQLITE_LOCKS).values(name=plan.id, owner_pid=pid, owner_host=os.uname().nodename,
                                                    token="x", purpose="run", acquired_at="then"))  # fmt: skip
    eng.dispose()
    assert run_plan(plan, confirm=plan.checksum, url=sqlite_url).state == "validated"


def _blocker(url: str, hold_s: float | None, ready: threading.Event, done: threading.Event) -> None:
    """Hold a lock that conflicts with ALTER TABLE users: an open transaction that read the table."""
    eng = engine(url)
    with eng.connect() as conn:
        conn.execute(sa.text("SELECT count(*) FROM users")).scalar()  # PostgreSQL ACCESS SHARE / MySQL shared MDL
        ready.set()
        if hold_s is None:
            done.wait(30)
        else:
            time.sleep(hold_s)
        conn.rollback()
    eng.dispose()


@pytest.fixture(params=["postgresql", "mariadb"])
def server_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("pg_url" if request.param == "postgresql" else "mysql_url")


def test_ddl_retries_until_the_lock_is_released(server_url: str, project: Path) -> None:
    users_table(server_url)
    plan, _ = make_plan(project, server_url, split_spec(lock_timeout_ms=300))
    ready, done = threading.Event(), threading.Event()
    holder = threading.Thread(target=_blocker, args=(server_url, 3.0, ready, done))
    holder.start()
    ready.wait(10)
    try:
        out = run_plan(plan, confirm=plan.checksum, url=server_url, policy=FAST)
    finally:
        holder.join()
    assert out.state == "validated"
    waited = next(s for s in out.steps if s.attempts > 1)
    assert waited.id.endswith("add_columns") and waited.lock_waits, out.steps
    attempts = query(server_url, "SELECT attempts FROM dmig_migrations WHERE step_id = :s", {"s": waited.id})
    assert attempts[0][0] == waited.attempts


def test_ddl_gives_up_clearly_when_the_lock_is_never_released(server_url: str, project: Path) -> None:
    users_table(server_url)
    plan, _ = make_plan(project, server_url, split_spec(lock_timeout_ms=200, max_lock_retries=2))
    ready, done = threading.Event(), threading.Event()
    holder = threading.Thread(target=_blocker, args=(server_url, None, ready, done))
    holder.start()
    ready.wait(10)
    try:
        with pytest.raises(DatabaseError) as err:
            run_plan(plan, confirm=plan.checksum, url=server_url, policy=RetryPolicy(max_retries=2, base_s=0.05))
    finally:
        done.set()
        holder.join()
    assert err.value.code == "E_LOCK_TIMEOUT"
    assert err.value.details["attempts"] == 3
    assert "could not get its lock" in err.value.message and "re-run later" in err.value.message
    assert err.value.details["blockers"], "the blocking session should be named"
    status = migration_status(parse_url(server_url), plan.id)
    assert status.state == "failed" and any(s.state == "failed" and s.step_id.endswith("add_columns")
                                            for s in status.steps)  # fmt: skip
    eng = engine(server_url)
    with eng.connect() as conn:
        assert [c["name"] for c in sa.inspect(conn).get_columns("users")] == ["id", "user_name"]  # nothing applied
    eng.dispose()
    # Released now: the same plan resumes and finishes.
    assert run_plan(plan, confirm=plan.checksum, url=server_url, policy=FAST).state == "validated"
