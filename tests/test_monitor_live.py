"""The monitor against real servers under real locks: breaches act exactly as configured, and clear."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from dmig.context import RunContext
from dmig.harness import bus
from dmig.harness.paths import BUS
from dmig.monitor import report, timeline
from dmig.monitor.monitor import Monitor
from dmig.monitor.probes import ProbeTarget
from monitor_helpers import (
    TABLE,
    engine,
    fast,
    make_table,
    mysql_write_lock,
    pg_lock,
    sample_until,
    sample_while_locked_briefly,
)


def _pg_monitor(url: str, action: str, project: Path | None = None, run_id: str | None = None) -> Monitor:
    make_table(url)
    rc = RunContext(project_dir=project) if project else None
    # The lock makes probes slow but successful, so only the latency rule breaches.
    config = fast(latency={"action": action}, error_rate={"action": "warn"})
    mon = Monitor(url, config, target=ProbeTarget(table=TABLE), rc=rc, run_id=run_id)
    mon.measure_baseline(0.3)
    return mon


@pytest.mark.parametrize("action", ["warn", "pause", "rollback"])
def test_pg_slow_probe_breaches_latency_with_the_configured_action(pg_url: str, action: str) -> None:
    with _pg_monitor(pg_url, action) as mon:
        mon.sample()
        assert mon.verdict().action == "continue"
        sample_while_locked_briefly(mon, pg_url)
        assert mon.verdict().action == "continue"  # one breach is not enough (N = 2)
        assert mon.verdict().pending == ["latency"]
        sample_while_locked_briefly(mon, pg_url)
        verdict = mon.verdict()
        assert verdict.action == action
        assert [r.rule for r in verdict.reasons] == ["latency"]
        assert all(p.ok for p in mon.last.probes)  # slow, not failing
        lookup = next(p for p in mon.last.probes if p.probe == "pk_lookup")
        assert lookup.latency_ms > 100
        # Only a pause is waited out; warn and rollback return at once (rollback stays latched).
        result = mon.wait_until_healthy(timeout=30)
        assert not result.timed_out
        assert result.action == {"warn": "warn", "pause": "continue", "rollback": "rollback"}[action]
        if action == "warn":  # a warning clears after M healthy samples
            sample_until(mon, lambda m: m.verdict().action == "continue", limit=5)


def test_pg_pause_holds_while_locked_and_resumes_after_release(pg_url: str, project: Path) -> None:
    """The executor's view: background sampler, lock held, verdict pause, wait_until_healthy returns on release."""
    mon = _pg_monitor(pg_url, "pause", project, "run-pause")
    with mon:
        mon.start()
        with pg_lock(pg_url) as conn:
            for _ in range(400):  # bounded: the sampler needs 2 breaching samples
                if mon.verdict().action == "pause":
                    break
                time.sleep(0.05)
            assert mon.verdict().action == "pause"
            still = mon.wait_until_healthy(timeout=0.3)  # still locked: the wait gives up, still paused
            assert still.action == "pause" and still.timed_out
            mon.record_event("pause", "backfill paused by the monitor verdict")
            release = threading.Timer(0.5, conn.rollback)
            release.start()
            resumed = mon.wait_until_healthy(timeout=60)
            release.join()
        mon.record_event("resume", "backfill resumed")
        mon.stop()
        assert not resumed.timed_out
        assert resumed.action in ("continue", "warn")
        path = mon.write_report()
    records = timeline.read(project / "docs/migrations/run-pause/metrics.jsonl")
    kinds = [(r.get("kind"), r.get("rule")) for r in records if r["type"] == "event"]
    assert ("trigger", "latency") in kinds and ("clear", "latency") in kinds
    assert ("pause", None) in kinds and ("resume", None) in kinds
    messages = bus.read_all(project / BUS)
    assert any(
        m["type"] == "warning" and m.get("rule") == "latency" and m.get("run_id") == "run-pause" for m in messages
    )
    assert any(m["type"] == "status" and m.get("kind") == "clear" for m in messages)
    html = path.read_text()
    assert html.count("<svg") >= 3 and 'class="marker"' in html and "<script" not in html.lower()


def test_pg_lock_past_the_timeout_is_an_error_rate_trigger(pg_url: str) -> None:
    make_table(pg_url)
    config = fast(error_rate={"action": "rollback"}, latency={"enabled": False}, probe_timeout_seconds=0.3)
    with Monitor(pg_url, config, target=ProbeTarget(table=TABLE)) as mon, pg_lock(pg_url):
        sample_until(mon, lambda m: m.verdict().action == "rollback", limit=5)
        verdict = mon.verdict()
        assert [r.rule for r in verdict.reasons] == ["error_rate"]
        failed = [p for p in mon.last.probes if not p.ok]
        assert failed and all(p.timed_out for p in failed)
    assert verdict.action == "rollback"


def test_pg_connections_threshold_breach(pg_url: str) -> None:
    eng = engine(pg_url, isolation_level="AUTOCOMMIT")
    name = sa.make_url(pg_url).database
    with eng.connect() as conn:
        conn.exec_driver_sql(f'ALTER DATABASE "{name}" CONNECTION LIMIT 8')
    config = fast(connections={"action": "pause", "max_used_pct": 90}, breaches_to_trigger=1, healthy_to_resume=1)
    extra = engine(pg_url, pool_size=10, max_overflow=0)
    held: list[sa.Connection] = []
    with Monitor(pg_url, config) as mon:
        mon.sample()
        assert mon.verdict().action == "continue"
        held = [extra.connect() for _ in range(8)]
        for c in held:
            c.exec_driver_sql("SELECT 1")
        mon.sample()
        verdict = mon.verdict()
        snap = mon.last
        assert snap.connections.database_limit == 8
        assert snap.connections.database_in_use >= 9
        assert verdict.action == "pause" and [r.rule for r in verdict.reasons] == ["connections"]
        for c in held:
            c.close()
        extra.dispose()
        assert mon.wait_until_healthy(timeout=30).action == "continue"
    eng.dispose()


def _server_visible_here(url: str, dir_query: str, pid_query: str) -> tuple[bool, bool]:
    """Independently of the monitor: (is the server's data folder a folder here, is its process in our /proc)?

    CI may run in a sandbox with its own mount or PID namespace, where a server on loopback is
    still not provably local; the monitor must then say so instead of reporting figures.
    """
    eng = engine(url)
    try:
        with eng.connect() as conn:
            data_dir = str(conn.exec_driver_sql(dir_query).scalar_one())
            pid_value = str(conn.exec_driver_sql(pid_query).scalar_one())
    finally:
        eng.dispose()
    if not pid_value.isdigit():  # MariaDB names its pid file
        try:
            pid_value = Path(pid_value).read_text().split()[0]
        except (OSError, IndexError):
            return Path(data_dir).is_dir(), False
    return Path(data_dir).is_dir(), Path(f"/proc/{pid_value}").is_dir()


def _assert_disk_figures_or_says_why(disk: object, visible: bool) -> None:
    if visible:
        assert disk.filesystem_used_pct is not None and disk.filesystem_path  # type: ignore[attr-defined]
    else:
        assert disk.filesystem_used_pct is None and "not visible" in (disk.note or "")  # type: ignore[attr-defined]


def test_pg_no_replicas_disk_and_host_are_reported(pg_url: str) -> None:
    make_table(pg_url)
    with Monitor(pg_url, fast(), target=ProbeTarget(table=TABLE)) as mon:
        mon.sample()
        snap = mon.sample()
    assert snap.replication.visible and snap.replication.role == "standalone"
    assert snap.replication.note == "no replicas" and snap.replication.max_lag_s is None
    assert snap.disk.database_bytes and snap.disk.size_method.startswith("pg_database_size")
    assert snap.disk.growth_bytes is not None
    # Where the test server is visible from here, data folder, CPU and memory are reported; else the reason.
    dir_seen, process_seen = _server_visible_here(pg_url, "SHOW data_directory", "SELECT pg_backend_pid()")
    _assert_disk_figures_or_says_why(snap.disk, dir_seen and process_seen)
    if process_seen:
        assert snap.host.visible and snap.host.server_rss_bytes and snap.host.cpu_host_pct is not None
    else:
        assert not snap.host.visible and "not visible" in (snap.host.note or "")
    assert {p.probe for p in snap.probes} == {"round_trip", "pk_lookup", "index_range"}


def test_mariadb_write_lock_makes_probes_fail_and_trips_error_rate(mysql_url: str) -> None:
    make_table(mysql_url)
    config = fast(error_rate={"action": "rollback"}, probe_timeout_seconds=0.3)
    with Monitor(mysql_url, config, target=ProbeTarget(table=TABLE)) as mon:
        mon.sample()
        assert mon.verdict().action == "continue"
        with mysql_write_lock(mysql_url):
            sample_until(mon, lambda m: m.verdict().action == "rollback", limit=5)
            failed = [p for p in mon.last.probes if not p.ok]
        verdict = mon.verdict()
        assert "error_rate" in [r.rule for r in verdict.reasons]
        assert {p.probe for p in failed} == {"pk_lookup", "index_range"}
        assert all(p.timed_out for p in failed)
        mon.sample()  # after UNLOCK TABLES the probes answer again, the rollback stays latched
        assert all(p.ok for p in mon.last.probes)
        assert mon.verdict().action == "rollback"


def test_mariadb_connections_replication_and_disk(mysql_url: str) -> None:
    make_table(mysql_url)
    extra = engine(mysql_url, pool_size=5, max_overflow=0)
    held = [extra.connect() for _ in range(4)]
    for c in held:
        c.exec_driver_sql("SELECT 1")
    try:
        with Monitor(mysql_url, fast(), target=ProbeTarget(table=TABLE)) as mon:
            snap = mon.sample()
    finally:
        for c in held:
            c.close()
        extra.dispose()
    assert snap.connections.visible and snap.connections.in_use >= 5 and snap.connections.max > 0
    assert snap.replication.visible and snap.replication.note == "no replicas"
    assert snap.disk.database_bytes is not None and "information_schema" in snap.disk.size_method
    dir_seen, process_seen = _server_visible_here(mysql_url, "SELECT @@datadir", "SELECT @@pid_file")
    _assert_disk_figures_or_says_why(snap.disk, dir_seen and process_seen)


def test_sqlite_metrics_say_what_does_not_apply(sqlite_url: str) -> None:
    make_table(sqlite_url)
    with Monitor(sqlite_url, fast(), target=ProbeTarget(table=TABLE)) as mon:
        mon.record_rows(100)
        mon.record_rows(100)
        snap = mon.sample()
    assert not snap.connections.visible and "n/a" in snap.connections.note
    assert not snap.replication.visible
    assert snap.disk.database_bytes > 0 and snap.disk.filesystem_used_pct is not None
    assert snap.rows_done == 200 and snap.throughput_rows_per_s is not None
    assert all(p.ok for p in snap.probes)


def test_report_marks_triggers_and_pauses(pg_url: str, project: Path) -> None:
    mon = _pg_monitor(pg_url, "pause", project, "run-report")
    with mon:
        mon.sample()
        mon.record_rows(1000)
        for _ in range(2):
            sample_while_locked_briefly(mon, pg_url)
            mon.record_rows(500)
        mon.record_event("pause", "executor paused the backfill")
        mon.wait_until_healthy(timeout=30)
        mon.record_event("resume", "executor resumed")
        path = mon.write_report()
    assert path == project / "docs/migrations/run-report/report.html"
    html = path.read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert html.count("<svg") >= 3
    assert "Probe latency" in html and "Throughput" in html
    assert html.count('class="marker"') >= 3 * 4  # trigger, pause, clear, resume on each of 3 charts
    assert "latency → pause" in html and "executor paused the backfill" in html
    assert "<script" not in html.lower() and "<link" not in html.lower() and "src=" not in html.lower()
    records = timeline.read(project / "docs/migrations/run-report/metrics.jsonl")
    assert records[0]["type"] == "baseline"
    rows = dict(report.summary_rows(records))
    assert rows["Triggers"] == "1" and rows["Rows reported"] == "2000"
