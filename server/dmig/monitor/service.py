"""The two monitoring services behind the tools: one judged snapshot (health) and a bounded watch
that keeps the timeline and writes the report (monitor). Front-end independent: tests call these.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import Field

from dmig.context import RunContext
from dmig.errors import InvalidInput
from dmig.models import Output
from dmig.monitor import timeline
from dmig.monitor.metrics import Percentiles, Snapshot
from dmig.monitor.monitor import Baseline, Monitor
from dmig.monitor.probes import ProbeTarget
from dmig.monitor.thresholds import Thresholds
from dmig.monitor.verdict import Check, Verdict

Until = Literal["duration", "trigger", "pause", "rollback", "healthy"]


class HealthResult(Output):
    database: str = Field(description="The database judged (password masked).")
    probes: list[str] = Field(description="Probes that ran: round_trip, pk_lookup, index_range, user_<n>.")
    snapshot: Snapshot = Field(description="Every metric at this moment.")
    checks: list[Check] = Field(description="Each rule against its limit (breached true/false, or null = n/a).")
    verdict: Verdict = Field(
        description="What a migration running now should do. One snapshot: every breach counts at once "
        "(no hysteresis), so treat pause/rollback as 'would trigger if it persists'."
    )
    thresholds: Thresholds = Field(description="The thresholds in force (defaults filled in).")
    notes: list[str] = Field(default_factory=list)


class WatchResult(Output):
    database: str
    run_id: str
    samples: int = Field(description="Samples taken.")
    seconds: float = Field(description="How long the watch ran.")
    stopped_because: str = Field(description="duration elapsed, or the 'until' condition that was met.")
    baseline: Baseline | None = Field(description="The latency baseline the latency rule multiplies.")
    verdict: Verdict = Field(description="The verdict after the last sample (with hysteresis).")
    events: list[dict[str, Any]] = Field(description="Triggers, clears and escalations during the watch.")
    last: Snapshot | None = Field(description="The last sample.")
    timeline_path: str = Field(description="docs/migrations/<run-id>/metrics.jsonl (appended), project-relative.")
    report_path: str | None = Field(description="docs/migrations/<run-id>/report.html, project-relative.")
    notes: list[str] = Field(default_factory=list)


def health(
    url: str,
    config: Thresholds,
    target: ProbeTarget,
    queries: list[str],
    *,
    row_cap: int,
    rounds: int,
    baseline_p95_ms: float | None,
) -> HealthResult:
    with Monitor(url, config, target=target, probe_queries=queries, row_cap=row_cap) as mon:
        if baseline_p95_ms is not None:
            mon.set_baseline(Percentiles(p95_ms=baseline_p95_ms, p50_ms=baseline_p95_ms, p99_ms=baseline_p95_ms))
        snap, checks, verdict = mon.snapshot(rounds)
        notes = list(mon.notes)
        if baseline_p95_ms is None and config.latency.max_ms is None:
            notes.append(
                "latency not judged: give baseline_p95_ms (e.g. from an earlier monitor run) or latency.max_ms"
            )
        return HealthResult(
            database=_shown(mon),
            probes=[p.name for p in mon.probes],
            snapshot=snap,
            checks=checks,
            verdict=verdict,
            thresholds=config,
            notes=notes,
        )


def _shown(mon: Monitor) -> str:
    from dmig.db.urls import display_url

    return display_url(mon.session.url)


def _met(until: Until, verdict: Verdict, samples: int, config: Thresholds) -> bool:
    if until == "trigger":
        return verdict.action != "continue"
    if until == "pause":
        return verdict.action in ("pause", "rollback")
    if until == "rollback":
        return verdict.action == "rollback"
    if until == "healthy":
        return verdict.action == "continue" and samples >= config.healthy_to_resume
    return False


def watch(
    rc: RunContext,
    url: str,
    config: Thresholds,
    target: ProbeTarget,
    queries: list[str],
    *,
    run_id: str,
    duration_s: float,
    until: Until,
    baseline_seconds: float,
    baseline_p95_ms: float | None,
    row_cap: int,
    write_report: bool,
) -> WatchResult:
    rc.require_writable("monitor (writes the run's timeline and report)")
    if baseline_seconds > 0 and baseline_p95_ms is not None:
        raise InvalidInput("give baseline_seconds or baseline_p95_ms, not both")
    start = time.monotonic()
    with Monitor(url, config, target=target, probe_queries=queries, row_cap=row_cap, rc=rc, run_id=run_id) as mon:
        baseline = None
        if baseline_p95_ms is not None:
            mon.set_baseline(Percentiles(p50_ms=baseline_p95_ms, p95_ms=baseline_p95_ms, p99_ms=baseline_p95_ms))
            baseline = mon.baseline
        elif baseline_seconds > 0:
            rc.progress(0, duration_s, "measuring the latency baseline")
            baseline = mon.measure_baseline(baseline_seconds)
        mon.record_event("watch_started", f"watching for {duration_s:g} s (until: {until})")
        samples, because = 0, "duration elapsed"
        watch_start = time.monotonic()
        while True:
            mon.sample()
            samples += 1
            verdict = mon.verdict()
            elapsed = time.monotonic() - watch_start
            rc.progress(min(elapsed, duration_s), duration_s, f"sample {samples}: {verdict.action}")
            if _met(until, verdict, samples, config):
                because = f"until={until} met: verdict {verdict.action}"
                break
            if elapsed + config.sample_interval_seconds > duration_s:
                break
            time.sleep(config.sample_interval_seconds)
        mon.record_event("watch_stopped", because)
        path = mon.write_report() if write_report else None
        events = [
            r
            for r in mon.timeline.records
            if r.get("type") == "event" and r.get("kind") in ("trigger", "clear", "escalate")
        ]
        root = rc.project_dir.resolve()
        return WatchResult(
            database=_shown(mon),
            run_id=run_id,
            samples=samples,
            seconds=round(time.monotonic() - start, 3),
            stopped_because=because,
            baseline=baseline,
            verdict=mon.verdict(),
            events=events,
            last=mon.last,
            timeline_path=timeline.timeline_path(rc, run_id).relative_to(root).as_posix(),
            report_path=path.relative_to(root).as_posix() if path else None,
            notes=mon.notes,
        )
