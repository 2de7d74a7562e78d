"""The backfill engine's edges: text keys in the database's own order, composite keys, row-lock retries,
monitor pauses and rollback verdicts, a zombie executor, bounded slices."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dmig.db.urls import parse_url
from dmig.errors import Conflict
from dmig.execute import migration_status, run_plan
from dmig.execute.backfill import Backfill
from dmig.execute.retry import RetryPolicy
from execute_helpers import batches, checkpoint, engine, make_plan, query, split_spec, users_table

TEXT_KEYS = ["a", "B", "c", "Ä", "b", "A", "z", "Z", "é", "e", "10", "9", "_x", "-y"]


def _spec(table: str, key: list[str], **options: Any) -> dict[str, Any]:
    spec = split_spec(**options)
    spec["operations"][0].update(table=table, key=key)
    return spec


def _create(url: str, ddl: str, rows: list[dict[str, Any]], insert: str) -> None:
    eng = engine(url)
    with eng.begin() as conn:
        conn.exec_driver_sql(ddl)
        conn.execute(sa.text(insert), rows)
    eng.dispose()


def test_text_keys_are_walked_in_the_databases_order(db_url: str, project: Path) -> None:
    _create(
        db_url,
        "CREATE TABLE people (code varchar(20) NOT NULL PRIMARY KEY, user_name varchar(255))",
        [{"c": k, "n": f"N{i} M{i}"} for i, k in enumerate(TEXT_KEYS)],
        "INSERT INTO people (code, user_name) VALUES (:c, :n)",
    )
    plan, _ = make_plan(project, db_url, _spec("people", ["code"]))
    out = run_plan(plan, confirm=plan.checksum, url=db_url, batch_size=3)
    assert out.validation_passed and out.backfills[0].rows_total == len(TEXT_KEYS)
    assert sum(b[3] for b in batches(db_url, plan.id)) == len(TEXT_KEYS)
    assert query(db_url, "SELECT count(*) FROM people WHERE first_name IS NULL") == [(0,)]


def test_composite_keys(db_url: str, project: Path) -> None:
    rows = [{"t": t, "i": i, "n": f"F{t}{i} L{i}"} for t in (1, 2, 3) for i in range(1, 12)]
    _create(
        db_url,
        "CREATE TABLE accounts (tenant int NOT NULL, id int NOT NULL, user_name varchar(255), "
        "PRIMARY KEY (tenant, id))",
        rows,
        "INSERT INTO accounts (tenant, id, user_name) VALUES (:t, :i, :n)",
    )
    plan, _ = make_plan(project, db_url, _spec("accounts", ["tenant", "id"]))
    out = run_plan(plan, confirm=plan.checksum, url=db_url, batch_size=4)
    assert out.validation_passed and out.backfills[0].rows_total == len(rows)
    assert out.backfills[0].batches_total == -(-len(rows) // 4)


def test_bounded_slices_resume_where_they_stopped(sqlite_url: str, project: Path) -> None:
    users_table(sqlite_url, n=1000)
    plan, _ = make_plan(project, sqlite_url)
    first = run_plan(plan, confirm=plan.checksum, url=sqlite_url, max_batches=3)
    assert first.state == "expanded" and first.backfills[0].batches_total == 3
    assert checkpoint(sqlite_url, plan.id)[0] == "running"
    rest = run_plan(plan, confirm=plan.checksum, url=sqlite_url)
    assert rest.resumed and rest.state == "validated"
    assert rest.backfills[0].batches == rest.backfills[0].batches_total - 3


def test_a_zombie_executor_stops_instead_of_writing_twice(sqlite_url: str, project: Path) -> None:
    users_table(sqlite_url, n=500)
    plan, _ = make_plan(project, sqlite_url)
    run_plan(plan, confirm=plan.checksum, url=sqlite_url, max_batches=1)
    eng = engine(sqlite_url)
    try:
        zombie = Backfill(eng, plan.backfills[0].backfill, plan.id)
        with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            stale = zombie._start(conn)  # what the zombie read before it was paused
            Backfill(eng, plan.backfills[0].backfill, plan.id).run(max_batches=1)  # the new executor moves on
            with pytest.raises(Conflict) as err:
                zombie._batch_with_retry(conn, stale)
        assert err.value.details["reason"] == "checkpoint_moved"
    finally:
        eng.dispose()
    assert checkpoint(sqlite_url, plan.id)[2] == 2  # two batches, none of them the zombie's


class ScriptedMonitor:
    """Stands in for dmig.monitor.Monitor's executor interface: a fixed sequence of verdicts."""

    def __init__(self, actions: list[str]) -> None:
        self.actions, self.rows, self.waits = list(actions), 0, 0

    def record_rows(self, rows: int) -> None:
        self.rows += rows

    def wait_until_healthy(self, timeout: float) -> Any:
        self.waits += 1
        action = self.actions.pop(0) if self.actions else "continue"
        return type("Verdict", (), {"action": action, "reasons": []})()


def test_monitor_pauses_and_stops_the_backfill(sqlite_url: str, project: Path) -> None:
    users_table(sqlite_url, n=500)
    plan, _ = make_plan(project, sqlite_url)
    calm = ScriptedMonitor(["pause", "pause", "continue"])
    out = run_plan(plan, confirm=plan.checksum, url=sqlite_url, monitor=calm, max_batches=3)
    assert out.backfills[0].monitor_pauses == 2 and calm.rows > 0
    with pytest.raises(Conflict) as err:
        run_plan(plan, confirm=plan.checksum, url=sqlite_url, monitor=ScriptedMonitor(["rollback"]))
    assert err.value.details["reason"] == "monitor_rollback" and err.value.details["aborted"] is True
    assert migration_status(parse_url(sqlite_url), plan.id).state == "aborted"  # the plan's policy: undo expand
    assert {"first_name", "last_name"}.isdisjoint(r[1] for r in query(sqlite_url, "PRAGMA table_info(users)"))
    assert run_plan(plan, confirm=plan.checksum, url=sqlite_url).state == "validated"  # a fresh run when healthy


@pytest.fixture(params=["postgresql", "mariadb"])
def server_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("pg_url" if request.param == "postgresql" else "mysql_url")


def test_a_batch_waiting_on_a_row_lock_is_retried(server_url: str, project: Path) -> None:
    users_table(server_url, n=500)
    plan, _ = make_plan(project, server_url, split_spec(lock_timeout_ms=500))
    run_plan(plan, confirm=plan.checksum, url=server_url, max_batches=1)  # expand done, one batch
    held, release = threading.Event(), threading.Event()

    def hold_row() -> None:
        eng = engine(server_url)
        with eng.connect() as conn:
            conn.execute(sa.text("SELECT id FROM users WHERE id = 1300 FOR UPDATE")).all()
            held.set()
            release.wait(10)
            conn.rollback()
        eng.dispose()

    t = threading.Thread(target=hold_row)
    t.start()
    held.wait(10)
    threading.Timer(2.5, release.set).start()
    try:
        out = run_plan(plan, confirm=plan.checksum, url=server_url,
                       policy=RetryPolicy(max_retries=20, base_s=0.05, cap_s=0.3))  # fmt: skip
    finally:
        release.set()
        t.join()
    assert out.state == "validated" and out.backfills[0].lock_retries >= 1
