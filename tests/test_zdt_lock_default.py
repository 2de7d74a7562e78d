"""issue 13 item 1: a spec without lock options still runs every DDL step under a short lock timeout.

One session holds a long transaction on the table, the migration runs with NO lock option in its
spec, and a third session keeps reading and writing the table the old way, timing every request:
none may wait much longer than the default lock timeout (500 ms on PostgreSQL; 1 s on MariaDB,
whose lock waits are whole seconds). The step retries with backoff and succeeds once the holder
commits, or fails with E_LOCK_TIMEOUT and nothing applied when the retry budget runs out.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dmig.db.urls import parse_url
from dmig.errors import DatabaseError
from dmig.execute import migration_status, run_plan
from dmig.execute.retry import RetryPolicy
from execute_helpers import dialect, engine, make_plan, split_spec, users_table

MAX_WAIT_S = 1.5  # the default lock timeout (MariaDB: rounded up to 1 s) plus a margin


@pytest.fixture(params=["postgresql", "mariadb"])
def server_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("pg_url" if request.param == "postgresql" else "mysql_url")


def _no_lock_options() -> dict[str, Any]:
    spec = split_spec()
    spec["options"] = {"batch_size": 100, "throttle_ms": 0}
    return spec


def _guard(url: str) -> list[str]:
    """The prober's own bound, far above what it asserts, so a regression fails instead of hanging."""
    return {
        "postgresql": ["SET statement_timeout = 20000"],
        "mysql": ["SET SESSION max_statement_time = 20", "SET SESSION lock_wait_timeout = 20"],
    }[dialect(url)]


def _holder(url: str, hold_s: float, ready: threading.Event, release: threading.Event) -> None:
    """An open transaction that read the table: PostgreSQL ACCESS SHARE, MariaDB a shared metadata lock."""
    eng = engine(url)
    try:
        with eng.connect() as conn:
            conn.execute(sa.text("SELECT count(*) FROM users")).scalar()
            ready.set()
            release.wait(hold_s)
            conn.rollback()
    finally:
        eng.dispose()


class Prober:
    """Old-shape application traffic on its own connection (autocommit): a read, an update, an insert."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stop = threading.Event()
        self.latencies: list[tuple[str, float]] = []
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        eng = engine(self.url)
        next_id = 50_000
        try:
            with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                for s in _guard(self.url):
                    conn.exec_driver_sql(s)
                while not self.stop.is_set():
                    next_id += 1
                    for kind, sql, params in (
                        ("read", "SELECT user_name FROM users WHERE id = 5", {}),
                        ("update", "UPDATE users SET user_name = :v WHERE id = 2", {"v": f"Plato {next_id}"}),
                        ("insert", "INSERT INTO users (id, user_name) VALUES (:i, 'Old Code')", {"i": next_id}),
                    ):
                        started = time.monotonic()
                        try:
                            conn.execute(sa.text(sql), params)
                        except sa.exc.DBAPIError as exc:
                            self.errors.append(f"{kind}: {str(exc.orig).splitlines()[0]}")
                        self.latencies.append((kind, time.monotonic() - started))
                    time.sleep(0.02)
        finally:
            eng.dispose()

    def __enter__(self) -> Prober:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), "the prober hung"

    def worst(self) -> tuple[str, float]:
        return max(self.latencies, key=lambda kv: kv[1])


def _columns(url: str) -> list[str]:
    eng = engine(url)
    try:
        with eng.connect() as conn:
            return [c["name"] for c in sa.inspect(conn).get_columns("users")]
    finally:
        eng.dispose()


def test_plan_states_the_default_timeouts(server_url: str, project: Path) -> None:
    users_table(server_url)
    plan, _ = make_plan(project, server_url, _no_lock_options())
    assert plan.timeouts["lock_timeout_ms"] == 500 and plan.timeouts["lock_timeout_source"].startswith("default")
    assert plan.timeouts["statement_timeout_ms"] == 60_000
    assert all(s.lock_timeout_ms == 500 and s.statement_timeout_ms >= 60_000 for s in plan.steps)
    if dialect(server_url) == "postgresql":
        assert "SET lock_timeout = 500" in plan.session_settings
        assert "SET statement_timeout = 60000" in plan.session_settings
    else:
        assert "SET SESSION lock_wait_timeout = 1" in plan.session_settings
        assert "SET SESSION innodb_lock_wait_timeout = 1" in plan.session_settings
        assert "rounded up" in plan.timeouts["applied_as"]
    assert plan.downtime.verdict.startswith("zero downtime") and "bounded" in plan.downtime.verdict
    assert {c.id: c for c in plan.checklist}["timeouts_set"].satisfied is True
    assert "raised-lock-timeout" not in {f["rule"] for f in plan.lint["spec_findings"]}


def test_long_transaction_never_stalls_other_sessions(server_url: str, project: Path) -> None:
    users_table(server_url)
    plan, _ = make_plan(project, server_url, _no_lock_options())
    ready, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_holder, args=(server_url, 7.0, ready, release), daemon=True)
    with Prober(server_url) as prober:
        time.sleep(0.3)
        holder.start()
        assert ready.wait(10)
        started = time.monotonic()
        policy = RetryPolicy(max_retries=plan.spec.options.max_lock_retries, rng=random.Random(13))
        try:
            out = run_plan(plan, confirm=plan.checksum, url=server_url, policy=policy)
        finally:
            release.set()
            holder.join(15)
        took = time.monotonic() - started
        time.sleep(0.3)
    kind, worst = prober.worst()
    print(f"worst {kind} {worst:.3f} s over {len(prober.latencies)} requests; run {took:.1f} s; "
          f"attempts {[s.attempts for s in out.steps]}")  # fmt: skip
    assert worst < MAX_WAIT_S, f"a {kind} waited {worst:.2f} s behind the migration's lock request"
    assert not prober.errors, prober.errors[:5]
    assert out.state == "validated"
    waited = next(s for s in out.steps if s.attempts > 1)
    assert waited.lock_waits, out.steps
    assert took >= 6.0, "the step can only have succeeded after the holder ended"
    assert len(prober.latencies) > 50


def test_retry_budget_runs_out_cleanly(server_url: str, project: Path) -> None:
    users_table(server_url)
    spec = _no_lock_options()
    spec["options"]["max_lock_retries"] = 2
    plan, _ = make_plan(project, server_url, spec)
    ready, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_holder, args=(server_url, 30.0, ready, release), daemon=True)
    with Prober(server_url) as prober:
        holder.start()
        assert ready.wait(10)
        try:
            with pytest.raises(DatabaseError) as err:
                run_plan(plan, confirm=plan.checksum, url=server_url, policy=RetryPolicy(max_retries=2, base_s=0.1))
        finally:
            release.set()
            holder.join(15)
    kind, worst = prober.worst()
    assert worst < MAX_WAIT_S, f"a {kind} waited {worst:.2f} s"
    assert err.value.code == "E_LOCK_TIMEOUT" and err.value.details["attempts"] == 3
    assert "500 ms" in err.value.message
    assert _columns(server_url) == ["id", "user_name"]  # nothing of the step applied
    status = migration_status(parse_url(server_url), plan.id)
    assert status.state == "failed"
