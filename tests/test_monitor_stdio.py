"""health and monitor through the real MCP stdio path (dmig serve + the official client)."""

from __future__ import annotations

from pathlib import Path

from dmig.monitor import timeline
from mcp_client import call, list_tools
from monitor_helpers import TABLE, make_table


def test_health_over_stdio_on_postgres(project: Path, pg_url: str) -> None:
    make_table(pg_url)
    plan = project / "docs/migrations/m1/plan.yaml"
    plan.parent.mkdir(parents=True)
    plan.write_text("monitoring:\n  connections: {max_used_pct: 0.001, action: pause}\n")
    ok, from_plan, refused, both = call(
        project,
        [
            (
                "health",
                {"url": pg_url, "table": TABLE, "baseline_p95_ms": 50, "probes": [f"SELECT count(*) FROM {TABLE}"]},
            ),
            ("health", {"url": pg_url, "plan": "docs/migrations/m1/plan.yaml"}),
            ("health", {"url": pg_url, "probes": ["SELECT pg_read_file('/etc/passwd')"]}),
            ("health", {"url": pg_url, "thresholds": {}, "plan": "docs/migrations/m1/plan.yaml"}),
        ],
    )
    assert ok["verdict"]["action"] in ("continue", "warn")
    assert ok["probes"] == ["round_trip", "pk_lookup", "index_range", "user_1"]
    assert ok["snapshot"]["replication"]["note"] == "no replicas"
    assert {c["rule"] for c in ok["checks"]} == {"latency", "error_rate", "replication_lag", "disk", "connections"}
    assert from_plan["verdict"]["action"] == "pause"  # one snapshot: no hysteresis
    assert from_plan["verdict"]["reasons"][0]["rule"] == "connections"
    assert refused["error"]["code"] == "E_INVALID_INPUT" and "pg_read_file" in refused["error"]["message"]
    assert both["error"]["code"] == "E_INVALID_INPUT"
    assert not (project / "docs/09-agents/bus/log.jsonl").exists()  # health writes nothing


def test_monitor_over_stdio_writes_timeline_and_report(project: Path, sqlite_url: str) -> None:
    make_table(sqlite_url)
    (result,) = call(
        project,
        [
            (
                "monitor",
                {
                    "url": sqlite_url,
                    "table": TABLE,
                    "run_id": "r1",
                    "duration_seconds": 1.0,
                    "baseline_seconds": 0.2,
                    "thresholds": {"sample_interval_seconds": 0.2},
                },
            )
        ],
    )
    assert result["samples"] >= 1 and result["verdict"]["action"] == "continue"
    assert result["report_path"] == "docs/migrations/r1/report.html"
    records = timeline.read(project / result["timeline_path"])
    assert [r["type"] for r in records][:2] == ["baseline", "event"]
    assert sum(r["type"] == "sample" for r in records) == result["samples"]
    assert "<svg" in (project / result["report_path"]).read_text()


def test_monitor_is_absent_in_read_only_mode(project: Path) -> None:
    names = {t.name for t in list_tools(project, "--read-only")}
    assert "health" in names and "monitor" not in names
    tools = {t.name: t for t in list_tools(project)}
    assert tools["health"].annotations.read_only_hint is True
    assert tools["monitor"].annotations.read_only_hint is False
    assert tools["monitor"].annotations.destructive_hint is False
    assert tools["health"].annotations.open_world_hint is True
