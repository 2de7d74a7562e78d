"""A step that loses a deadlock is rolled back and re-run like one that hit a lock timeout; a MySQL step
that fails while holding LOCK TABLES does not leave the table locked on the pooled connection."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from dmig.errors import DatabaseError
from dmig.execute.retry import RetryPolicy, run_with_retry
from dmig.spec.steps import Step
from execute_helpers import engine, execute, query

FAST = RetryPolicy(max_retries=5, base_s=0.05, cap_s=0.2)


def _step(sql: list[str]) -> Step:
    return Step(id="op0.contract.1.test", op_index=0, op="raw_sql", phase="contract", description="test", sql=sql,
                lock="ACCESS EXCLUSIVE", lock_risk="medium", lock_reason="test")  # fmt: skip


def _waiting(url: str, probe: str) -> bool:
    """A session of this test's database waits for a lock (other tests' databases may be busy meanwhile)."""
    if url.startswith("postgresql"):
        sql = (
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE :p"
            " AND datname = current_database()"
        )
    else:
        sql = (
            "SELECT count(*) FROM information_schema.innodb_trx WHERE trx_state = 'LOCK WAIT' AND trx_query LIKE :p"
            " AND trx_mysql_thread_id IN (SELECT id FROM information_schema.processlist WHERE db = DATABASE())"
        )
    return bool(query(url, sql, {"p": f"%{probe}%"})[0][0])


def _other_side(url: str, first: str, second: str, probe: str, ready: threading.Event, errors: list) -> None:
    """Take ``first``, wait until the step waits for it, then ask for what the step holds: a deadlock."""
    eng = engine(url)
    try:
        with eng.connect() as conn:
            if url.startswith("postgresql"):
                conn.exec_driver_sql("SET deadlock_timeout = '10s'")  # the step (100 ms) detects it: its victim
            conn.exec_driver_sql(first)
            ready.set()
            deadline = time.monotonic() + 10
            while not _waiting(url, probe) and time.monotonic() < deadline:
                time.sleep(0.02)
            try:
                conn.exec_driver_sql(second)
            except sa.exc.DBAPIError as exc:  # pragma: no cover - the step should be the victim
                errors.append(exc)
            conn.commit()
    finally:
        eng.dispose()


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
def test_deadlocked_step_is_retried(dialect: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("pg_url" if dialect == "postgresql" else "mysql_url")
    execute(url, "CREATE TABLE dl_a (id int PRIMARY KEY, v int)", "CREATE TABLE dl_b (id int PRIMARY KEY, v int)",
            "INSERT INTO dl_a VALUES (1, 0)", *[f"INSERT INTO dl_b VALUES ({i}, 0)" for i in range(1, 60)])  # fmt: skip
    if dialect == "postgresql":
        settings = ["SET deadlock_timeout = 100", "SET lock_timeout = 5000"]
        sql = ["LOCK TABLE dl_a IN ACCESS EXCLUSIVE MODE", "LOCK TABLE dl_b IN ACCESS EXCLUSIVE MODE"]
        first, second = "LOCK TABLE dl_b IN ACCESS EXCLUSIVE MODE", "LOCK TABLE dl_a IN ACCESS EXCLUSIVE MODE"
        probe = "dl_b"
    else:
        # InnoDB rolls back the transaction that changed fewer rows: the step (1 row) against 59.
        settings = ["SET SESSION innodb_lock_wait_timeout = 5"]
        sql = ["UPDATE dl_a SET v = v + 1 WHERE id = 1", "UPDATE dl_b SET v = v + 1 WHERE id = 1"]
        first, second = "UPDATE dl_b SET v = v + 10", "UPDATE dl_a SET v = v + 10 WHERE id = 1"
        probe = "UPDATE dl_b SET v = v + 1 WHERE"
    ready, errors, retries = threading.Event(), [], []
    other = threading.Thread(target=_other_side, args=(url, first, second, probe, ready, errors))
    other.start()
    assert ready.wait(10)
    eng = engine(url)
    try:
        run = run_with_retry(eng, _step(sql), settings, FAST, on_retry=lambda *a: retries.append(a))
    finally:
        eng.dispose()
        other.join(20)
    assert not errors
    # Under load the step may first time out on the lock before the other side asks for its half (a plain
    # lock-timeout retry); what matters is that the deadlock it then loses is retried too and the step succeeds.
    assert run.attempts >= 2 and len(retries) == run.attempts - 1
    assert any("deadlock" in t.lower() for t in run.lock_timeouts)
    if dialect == "mysql":  # both transactions' changes are in: the step's re-run and the other side's
        assert query(url, "SELECT v FROM dl_a WHERE id = 1")[0][0] == 11


def test_mysql_failed_step_releases_lock_tables(mysql_url: str) -> None:
    execute(mysql_url, "CREATE TABLE lt (id int PRIMARY KEY, v int)", "INSERT INTO lt VALUES (1, 0)")
    eng, other = engine(mysql_url), engine(mysql_url)
    try:
        bad = _step(["LOCK TABLES lt WRITE", "UPDATE lt SET v = 1", "ALTER TABLE lt ADD COLUMN v int", "UNLOCK TABLES"])
        with pytest.raises(DatabaseError):
            run_with_retry(eng, bad, [], FAST)
        with eng.connect() as conn:  # the pool hands back the same connection: usable for other tables
            assert conn.exec_driver_sql("SELECT count(*) FROM information_schema.tables").scalar()
        with other.connect() as conn:  # and the table is not locked while that connection sits in the pool
            conn.exec_driver_sql("SET SESSION lock_wait_timeout = 2")
            conn.exec_driver_sql("UPDATE lt SET v = 2")
            conn.commit()
    finally:
        eng.dispose()
        other.dispose()
