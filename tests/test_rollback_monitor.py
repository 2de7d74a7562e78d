"""The REAL Monitor inside run_migration on PostgreSQL and MariaDB: another connection locks the table the probes
read during the backfill; the probes time out, the error-rate rule fills, and the run does exactly what the plan's
monitoring policy says: pause and resume after the release, or roll back (undo expand) at once. Every trigger is
logged and announced, the metrics timeline is stored with the run and the report marks the pauses and triggers."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dmig.context import RunContext
from dmig.db.urls import parse_url
from dmig.errors import Conflict
from dmig.execute import migration_status
from dmig.harness import bus
from dmig.harness.paths import BUS
from dmig.monitor import timeline
from dmig.tools.migrate import RunMigrationInput, run_tool
from execute_helpers import checkpoint, split_spec, users_table
from monitor_helpers import mysql_write_lock, pg_lock
from rollback_helpers import production_plan, state, with_monitoring

QUIET = {"enabled": False}


def _policy(action: str) -> dict[str, Any]:
    """Probe failures fill error_rate; a failure stays in the 3 s window, so the verdict outlasts the lock a little."""
    return {
        "error_rate": {"action": action, "severity": "critical", "max_ratio": 0.0, "min_probes": 1},
        "latency": QUIET, "disk": QUIET, "connections": QUIET, "replication_lag": QUIET,
        "breaches_to_trigger": 2, "healthy_to_resume": 2, "window_probes": 10_000, "window_seconds": 3.0,
        "sample_interval_seconds": 0.1, "probe_timeout_seconds": 0.3,
    }  # fmt: skip


@pytest.fixture(params=["postgresql", "mariadb"])
def server_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("pg_url" if request.param == "postgresql" else "mysql_url")


def _lock_during_backfill(url: str, migration_id: str, hold_s: float) -> threading.Thread:
    """Once two batches are done, another connection locks users for ``hold_s`` (PG ACCESS EXCLUSIVE /
    MariaDB LOCK TABLES WRITE): the probes and the backfill both wait on it."""

    def hold() -> None:
        for _ in range(600):
            try:
                cp = checkpoint(url, migration_id)
            except sa.exc.DBAPIError:  # the checkpoint table does not exist before the backfill starts
                cp = None
            if cp is not None and cp[2] >= 2:
                break
            time.sleep(0.02)
        holder = pg_lock(url, "users") if url.startswith("postgres") else mysql_write_lock(url, "users")
        with holder:
            time.sleep(hold_s)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    return thread


def _run(project: Path, url: str, action: str):
    users_table(url, n=3000)
    before = state(url)
    plan, _ = production_plan(
        project, url, {**split_spec(lock_timeout_ms=1000, throttle_ms=100), "id": "mon-" + action}
    )
    plan = with_monitoring(project, plan, _policy(action))
    inp = RunMigrationInput(plan=plan.id, confirm=plan.checksum, monitor=True, baseline_seconds=0.2, batch_size=100)
    thread = _lock_during_backfill(url, plan.id, 1.5)
    return plan, before, inp, thread


def _events(project: Path, run_id: str) -> list[tuple[Any, Any]]:
    records = timeline.read(project / "docs/migrations" / run_id / "metrics.jsonl")
    assert sum(r["type"] == "sample" for r in records) > 5 and any(r["type"] == "baseline" for r in records)
    return [(r.get("kind"), r.get("rule")) for r in records if r["type"] == "event"]


def test_monitor_pauses_the_backfill_and_resumes_after_the_release(server_url: str, project: Path) -> None:
    plan, _before, inp, thread = _run(project, server_url, "pause")
    out = run_tool(inp, RunContext(project_dir=project))
    thread.join(timeout=30)
    assert out.state == "validated" and out.validation_passed
    [bf] = out.backfills
    assert bf.state == "done" and bf.monitor_pauses >= 1
    kinds = _events(project, plan.id)
    assert ("trigger", "error_rate") in kinds and ("clear", "error_rate") in kinds
    assert ("pause", None) in kinds and ("resume", None) in kinds
    assert kinds.index(("pause", None)) < kinds.index(("resume", None))
    html = (project / "docs/migrations" / plan.id / "report.html").read_text()
    assert 'class="marker"' in html and "pause" in html and "resume" in html
    messages = bus.read_all(project / BUS)
    assert any(m["type"] == "warning" and m.get("rule") == "error_rate" and m.get("action") == "pause"
               and m.get("run_id") == plan.id for m in messages)  # fmt: skip
    assert any(m["type"] == "status" and m.get("kind") == "clear" for m in messages)


def test_monitor_rollback_verdict_undoes_expand_as_the_policy_says(server_url: str, project: Path) -> None:
    plan, before, inp, thread = _run(project, server_url, "rollback")
    with pytest.raises(Conflict) as err:
        run_tool(inp, RunContext(project_dir=project))
    thread.join(timeout=30)
    assert err.value.details["reason"] == "monitor_rollback" and err.value.details["aborted"] is True
    assert all(p["shape_restored"] and p["data_unchanged_by_rollback"] for p in err.value.details["proof"])
    assert migration_status(parse_url(server_url), plan.id).state == "aborted"
    assert state(server_url) == before  # expand undone: the original shape and rows
    kinds = _events(project, plan.id)
    assert ("trigger", "error_rate") in kinds
    assert ("rollback_started", None) in kinds and ("rollback_done", None) in kinds
    html = (project / "docs/migrations" / plan.id / "report.html").read_text()
    assert 'class="marker"' in html and "rollback_done" in html
    assert any(m["type"] == "warning" and m.get("action") == "rollback" and m.get("rule") == "error_rate"
               for m in bus.read_all(project / BUS))  # fmt: skip
