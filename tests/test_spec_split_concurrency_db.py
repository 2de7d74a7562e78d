"""split_column under concurrent sessions: the sync triggers' update rules (every branch, both shapes),
the PostgreSQL contract taking its locks in the order old readers do (no deadlock with a reader of the
compat view), and the MariaDB contract leaving no moment where a write can slip between the trigger drop
and the ALTER that makes user_name a generated column."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from spec_helpers import backfill_all, checks_pass, dialect, engine, execute, query, render_live, run_phase, spec_of
from spec_helpers import users_table as make_users
from test_spec_split_db import SPLIT

ROWS = [(1, "Ada Lovelace"), (2, "Mary Ann Smith"), (3, "Plato"), (4, None), (5, "Grace Hopper"), (6, "Alan Turing")]


def _row(url: str, key: int) -> tuple:
    return query(url, f"SELECT user_name, first_name, last_name FROM users WHERE id = {int(key)}")[0]


def _expanded(url: str, backfill: bool = True):
    make_users(url, ROWS)
    rendered = render_live(url, spec_of(SPLIT))
    run_phase(url, rendered, "expand")
    if backfill:
        backfill_all(url, rendered.operations[0].backfill)
    return rendered


def test_update_rules_both_shapes(db_url: str) -> None:
    """Each trigger branch, before and after the backfill; the WHEN guards skip only no-op rows."""
    rendered = _expanded(db_url, backfill=False)
    # Never backfilled row, an unrelated no-op update: nothing is invented (user_name is not rebuilt from NULLs).
    execute(db_url, "UPDATE users SET id = id WHERE id = 6")
    assert _row(db_url, 6) == ("Alan Turing", None, None)
    # Never backfilled row, a new writer sets the parts: user_name is rebuilt.
    execute(db_url, "UPDATE users SET first_name = 'Grace', last_name = 'B. Hopper' WHERE id = 5")
    assert _row(db_url, 5) == ("Grace B. Hopper", "Grace", "B. Hopper")
    # Parts that join to the old value but are not its split: kept as written, user_name unchanged.
    execute(db_url, "UPDATE users SET first_name = 'Mary Ann', last_name = 'Smith' WHERE id = 2")
    assert _row(db_url, 2) == ("Mary Ann Smith", "Mary Ann", "Smith")
    assert backfill_all(db_url, rendered.operations[0].backfill) == 3  # 1, 3, 6: the others are split or NULL
    assert _row(db_url, 2) == ("Mary Ann Smith", "Mary Ann", "Smith")  # a new writer's parts are not overwritten
    # Old writer: parts recomputed. A trailing space counts (MySQL compares bytes, not PAD SPACE).
    execute(db_url, "UPDATE users SET user_name = 'Ada King Lovelace' WHERE id = 1")
    assert _row(db_url, 1) == ("Ada King Lovelace", "Ada", "King Lovelace")
    execute(db_url, "UPDATE users SET last_name = 'King Lovelace ' WHERE id = 1")
    assert _row(db_url, 1) == ("Ada King Lovelace ", "Ada", "King Lovelace ")
    # Dual write (both shapes in one statement): trusted as written.
    execute(db_url, "UPDATE users SET user_name = 'X Y', first_name = 'P', last_name = 'Q' WHERE id = 3")
    assert _row(db_url, 3) == ("X Y", "P", "Q")
    # Clearing the parts of a row whose old value is set: user_name follows (NULL parts rebuild NULL).
    execute(db_url, "UPDATE users SET first_name = NULL, last_name = NULL WHERE id = 6")
    assert _row(db_url, 6) == (None, None, None)
    # Inserts through either shape, and through both.
    execute(db_url, "INSERT INTO users (id, user_name) VALUES (10, 'Linus Torvalds')")
    execute(db_url, "INSERT INTO users (id, first_name, last_name) VALUES (11, 'Ken', 'Thompson')")
    execute(db_url, "INSERT INTO users (id, user_name, first_name, last_name) VALUES (12, 'A B', 'C', 'D')")
    assert [_row(db_url, k) for k in (10, 11, 12)] == [
        ("Linus Torvalds", "Linus", "Torvalds"),
        ("Ken Thompson", "Ken", "Thompson"),
        ("A B", "C", "D"),
    ]


def _waiting(url: str, probe: str) -> bool:
    """A session of this test's database waits for a lock (other tests' databases may be busy meanwhile)."""
    if dialect(url) == "postgresql":
        sql = (
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE :p"
            " AND datname = current_database()"
        )
    else:
        sql = (
            "SELECT count(*) FROM information_schema.processlist WHERE state LIKE 'Waiting for%lock%' AND info LIKE :p"
            " AND db = DATABASE()"
        )
    return bool(query(url, sql, {"p": f"%{probe}%"})[0][0])


def _until(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting for the other session"
        time.sleep(0.02)


def _in_thread(fn, results: dict, key: str) -> threading.Thread:
    def run() -> None:
        try:
            results[key] = fn()
        except Exception as exc:  # collected and asserted on by the test
            results[key] = exc

    t = threading.Thread(target=run)
    t.start()
    return t


def test_pg_contract_and_old_reader_take_locks_in_one_order(pg_url: str) -> None:
    """The interleaving that deadlocked: the contract queued for users, then an old reader locks the view and
    queues for users behind it. Locking the view first, the contract makes the reader wait on the view
    instead; once a blocking transaction ends, the contract commits and the reader reads the new view."""
    rendered = _expanded(pg_url)
    results: dict = {}
    eng = engine(pg_url)
    try:
        with eng.connect() as blocker:
            blocker.exec_driver_sql("SELECT count(*) FROM public.users").scalar()  # ACCESS SHARE until commit
            contract = _in_thread(lambda: run_phase(pg_url, rendered, "contract"), results, "contract")
            _until(lambda: _waiting(pg_url, ""))  # the contract queues for users behind the blocker
            reader = _in_thread(
                lambda: query(pg_url, "SELECT user_name FROM users WHERE id = 2 /* old reader */",
                              setup=["SET search_path = dmig_compat, public", "SET deadlock_timeout = 50"]),
                results, "reader",
            )  # fmt: skip
            _until(lambda: _waiting(pg_url, "old reader"))
            blocker.rollback()
        contract.join(20)
        reader.join(20)
    finally:
        eng.dispose()
    assert results["contract"] is None, results["contract"]
    assert results["reader"] == [("Mary Ann Smith",)]
    assert query(pg_url, "SELECT user_name FROM users WHERE id = 1", setup=["SET search_path = dmig_compat, public"])


def test_pg_contract_gives_up_within_lock_timeout(pg_url: str) -> None:
    """A long transaction on the table: the contract waits lock_timeout, not forever, and changes nothing."""
    rendered = _expanded(pg_url)
    eng = engine(pg_url)
    try:
        with eng.connect() as blocker:
            blocker.exec_driver_sql("SELECT count(*) FROM public.users").scalar()
            started = time.monotonic()
            with pytest.raises(sa.exc.OperationalError, match="lock timeout"):
                from spec_helpers import run_steps

                run_steps(pg_url, rendered.steps("contract"), ["SET lock_timeout = 300"])
            assert time.monotonic() - started < 10
            blocker.rollback()
    finally:
        eng.dispose()
    assert query(pg_url, "SELECT user_name FROM public.users WHERE id = 1") == [("Ada Lovelace",)]


def test_mariadb_contract_has_no_write_window(mysql_url: str) -> None:
    """Stop the contract right after its trigger drops: a new-shape write from another session waits (the table
    is write-locked) and lands after the ALTER, so old readers never see a stale user_name."""
    rendered = _expanded(mysql_url)
    [step] = rendered.steps("contract")
    assert step.sql[0].startswith("LOCK TABLES") and step.sql[-1] == "UNLOCK TABLES"
    alter = next(i for i, s in enumerate(step.sql) if s.startswith("ALTER TABLE"))
    results: dict = {}
    eng = engine(mysql_url)
    try:
        with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for stmt in [*rendered.session_settings, *step.sql[:alter]]:
                conn.exec_driver_sql(stmt)
            writer = _in_thread(
                lambda: execute(mysql_url, "UPDATE users SET first_name = 'Augusta' WHERE id = 1 /* new writer */"),
                results, "writer",
            )  # fmt: skip
            _until(lambda: _waiting(mysql_url, "new writer"))
            assert _waiting(mysql_url, "new writer")  # still waiting: nothing written between the two
            for stmt in step.sql[alter:]:
                conn.exec_driver_sql(stmt)
        writer.join(20)
    finally:
        eng.dispose()
    assert results["writer"] is None, results["writer"]
    assert _row(mysql_url, 1) == ("Augusta Lovelace", "Augusta", "Lovelace")
    assert checks_pass(mysql_url, []) and query(mysql_url, "SELECT count(*) FROM users")[0][0] == len(ROWS)
