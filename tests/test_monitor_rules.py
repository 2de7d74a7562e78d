"""Thresholds, hysteresis, windows and the report, without a database (fast, exact)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dmig.context import RunContext
from dmig.errors import InvalidInput, PathOutsideProject
from dmig.monitor import charts, report, thresholds
from dmig.monitor.metrics import Percentiles, ProbeWindow, ThroughputMeter, percentile
from dmig.monitor.probes import ProbeResult
from dmig.monitor.thresholds import Thresholds
from dmig.monitor.verdict import Check, TriggerBoard, latency_limit


def _check(rule: str, breached: bool | None, action: str = "pause") -> Check:
    return Check(rule=rule, breached=breached, action=action, severity="warn", message=f"{rule} {breached}")


def _all_ok(**over: bool | None) -> list[Check]:
    t = Thresholds()
    return [
        Check(
            rule=r,
            breached=over.get(r, False),
            action=t.rule(r).action,
            severity=t.rule(r).severity,
            message=r,
        )
        for r in thresholds.RULES
    ]


def test_defaults_follow_the_seed() -> None:
    t = Thresholds()
    assert (t.latency.factor, t.latency.percentile, t.latency.action) == (2.0, "p95", "warn")
    assert (t.error_rate.max_ratio, t.error_rate.severity) == (0.01, "critical")
    assert (t.replication_lag.max_seconds, t.replication_lag.severity) == (30.0, "critical")
    assert (t.disk.max_used_pct, t.disk.severity) == (90.0, "critical")
    assert (t.connections.max_used_pct, t.connections.action) == (90.0, "warn")


def test_hysteresis_n_breaches_trigger_m_healthy_clear() -> None:
    board = TriggerBoard(Thresholds(breaches_to_trigger=3, healthy_to_resume=2))
    actions = []
    for breached in (True, True, False, True, True, True, False, True, False, False):
        verdict, _ = board.update(_all_ok(disk=breached))
        actions.append(verdict.action)
    assert actions == [
        "continue", "continue", "continue",  # a healthy sample resets the breach count
        "continue", "continue", "pause",  # third consecutive breach
        "pause", "pause",  # one healthy sample, then a breach: the healthy count restarts
        "pause", "continue",  # two healthy in a row clear it
    ]  # fmt: skip


def test_per_rule_override_and_disabled_rule() -> None:
    t = thresholds.parse({"connections": {"breaches_to_trigger": 1, "action": "rollback"}, "disk": {"enabled": False}})
    board = TriggerBoard(t)
    verdict, changes = board.update(_all_ok(disk=True))
    assert verdict.action == "continue" and not changes
    verdict, changes = board.update(_all_ok(connections=True))
    assert verdict.action == "rollback" and [c.kind for c in changes] == ["trigger"]
    verdict, _ = board.update(_all_ok())
    for _ in range(5):
        verdict, _ = board.update(_all_ok())
    assert verdict.action == "rollback"  # latched


def test_not_measurable_is_neither_breach_nor_health() -> None:
    board = TriggerBoard(Thresholds(breaches_to_trigger=2))
    board.update(_all_ok(disk=True))
    board.update(_all_ok(disk=None))
    verdict, _ = board.update(_all_ok(disk=True))
    assert verdict.action == "pause"


def test_long_pause_escalates_to_rollback() -> None:
    board = TriggerBoard(Thresholds(breaches_to_trigger=1, max_pause_seconds=10))
    verdict, _ = board.update(_all_ok(disk=True), now=100.0)
    assert verdict.action == "pause"
    verdict, _ = board.update(_all_ok(disk=True), now=105.0)
    assert verdict.action == "pause"
    verdict, changes = board.update(_all_ok(disk=True), now=111.0)
    assert verdict.action == "rollback" and changes[-1].kind == "escalate"
    assert verdict.reasons[0].rule == "max_pause"


def test_latency_limit_has_a_floor_and_a_ceiling() -> None:
    base = Percentiles(p50_ms=0.3, p95_ms=0.5, p99_ms=1.0, count=10)
    assert latency_limit(Thresholds(), base) == 25.0
    assert latency_limit(thresholds.parse({"latency": {"min_ms": 0}}), base) == 1.0
    assert latency_limit(thresholds.parse({"latency": {"max_ms": 10, "min_ms": 50}}), base) == 10.0
    assert latency_limit(Thresholds(), None) is None
    assert latency_limit(thresholds.parse({"latency": {"max_ms": 40}}), None) == 40.0


def test_invalid_thresholds_fail_closed() -> None:
    for bad in ({"latency": {"action": "explode"}}, {"unknown_rule": {}}, {"error_rate": {"max_ratio": 2}}):
        with pytest.raises(InvalidInput):
            thresholds.parse(bad)


def test_plan_monitoring_key(project: Path) -> None:
    rc = RunContext(project_dir=project)
    plan = project / "docs/migrations/m1/plan.yaml"
    plan.parent.mkdir(parents=True)
    plan.write_text("steps: []\nmonitoring:\n  latency: {action: pause, factor: 3}\n  breaches_to_trigger: 5\n")
    t = thresholds.resolve(rc, None, "docs/migrations/m1/plan.yaml")
    assert (t.latency.action, t.latency.factor, t.breaches_to_trigger) == ("pause", 3.0, 5)
    plan.write_text("steps: []\n")
    assert thresholds.resolve(rc, None, "docs/migrations/m1/plan.yaml") == Thresholds()
    with pytest.raises(InvalidInput):
        thresholds.resolve(rc, {}, "docs/migrations/m1/plan.yaml")
    with pytest.raises(PathOutsideProject):
        thresholds.resolve(rc, None, "../elsewhere.yaml")


def test_percentiles_and_window() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([], 0.5) is None
    w = ProbeWindow(max_probes=4, max_age_s=60)
    ok = ProbeResult(probe="x", ok=True, latency_ms=1.0)
    timeout = ProbeResult(probe="x", ok=False, latency_ms=900.0, timed_out=True)
    refused = ProbeResult(probe="x", ok=False, latency_ms=None, error="connection refused")
    w.add([ok, ok, timeout, refused, ok])  # the first falls out (4 at most)
    assert w.error_rate() == (0.5, 2, 4)
    assert w.latency().count == 3  # the refused probe has no latency


def test_throughput_meter() -> None:
    m = ThroughputMeter(window_s=30)
    m.add(0, at=0.0)
    assert m.rate(now=0.0) is None
    m.add(500, at=5.0)
    m.add(500, at=10.0)
    assert m.rate(now=10.0) == pytest.approx(100.0)
    assert m.total == 1000


def _records() -> list[dict]:
    def sample(sec: int, p95: float, verdict: str = "continue") -> dict:
        return {
            "type": "sample",
            "ts": f"2026-01-01T00:00:{sec:02d}.000Z",
            "latency": {"p50_ms": p95 / 2, "p95_ms": p95, "p99_ms": p95 * 1.2},
            "throughput_rows_per_s": 100.0 + sec,
            "error_rate": 0.0,
            "connections": {"used_pct": 5.0},
            "probes": [{"probe": "round_trip", "ok": True, "latency_ms": p95}],
            "verdict": verdict,
            "checks": [{"rule": "latency", "limit": 25.0}],
        }

    return [
        {"type": "baseline", "ts": "2026-01-01T00:00:00.000Z", "latency": {"p50_ms": 1, "p95_ms": 2, "p99_ms": 3}},
        sample(1, 2.0),
        sample(2, 300.0),
        {"type": "event", "ts": "2026-01-01T00:00:03.000Z", "kind": "trigger", "rule": "latency", "action": "pause",
         "detail": "latency <b>high</b>"},
        sample(4, 2.0, "pause"),
        {"type": "event", "ts": "2026-01-01T00:00:05.000Z", "kind": "clear", "rule": "latency", "action": "pause",
         "detail": "ok"},
    ]  # fmt: skip


def test_report_is_self_contained_with_charts_and_markers() -> None:
    html = report.render(_records(), "Run <x>", Thresholds())
    assert html.count("<svg") == 3  # no lag chart without lag figures
    assert html.count('class="marker"') == 6  # 2 events x 3 charts
    assert "Run &lt;x&gt;" in html and "latency &lt;b&gt;high&lt;/b&gt;" in html  # everything escaped
    assert "<script" not in html and "<link" not in html
    assert "latency → pause" in html


def test_nice_ticks() -> None:
    assert charts.nice_step(100) == 20
    assert charts.nice_step(7) == 2
    assert charts.nice_step(0) == 1.0
