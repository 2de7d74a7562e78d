"""The Monitor: what the executor holds while a migration runs.

It owns one read-only connection, the probe set, the sliding windows and the trigger board.
``sample()`` measures once and judges; a background thread can sample on a period; the
executor's backfill loop calls ``verdict()`` between batches and ``wait_until_healthy()`` while
paused, reports rows through ``record_rows`` (throughput) and marks its own moments with
``record_event``. Every trigger, clear and escalation is logged, stored in the run's timeline
and, when the monitor works for a project, announced on the agent bus.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from dmig.context import RunContext
from dmig.db.urls import dialect_of, display_url, parse_url
from dmig.errors import DmigError, InvalidInput
from dmig.harness import bus
from dmig.harness.clock import utc_now
from dmig.harness.paths import BUS
from dmig.monitor import host, metrics, probes, report, thresholds, timeline
from dmig.monitor.metrics import Percentiles, ProbeWindow, Snapshot, ThroughputMeter
from dmig.monitor.probes import ProbeResult, ProbeTarget
from dmig.monitor.session import MonitorSession
from dmig.monitor.thresholds import Thresholds
from dmig.monitor.verdict import Check, Transition, TriggerBoard, Verdict, evaluate, snapshot_verdict

log = logging.getLogger("dmig.monitor")
BASELINE_MIN_ROUNDS = 5
BASELINE_MAX_ROUNDS = 2000
_EVENT_KIND = r"^[a-z][a-z0-9_]{0,39}$"


class Baseline(BaseModel):
    latency: Percentiles
    rounds: int
    errors: int
    seconds: float


class Monitor:
    """Live monitoring of one database during one run. Use as a context manager, or call close()."""

    def __init__(
        self,
        url: str,
        config: Thresholds | dict[str, Any] | None = None,
        *,
        target: ProbeTarget | None = None,
        probe_queries: list[str] | None = None,
        row_cap: int = probes.DEFAULT_ROW_CAP,
        rc: RunContext | None = None,
        run_id: str | None = None,
    ) -> None:
        self.thresholds = config if isinstance(config, Thresholds) else thresholds.parse(config)
        if row_cap < 1 or row_cap > 10_000:
            raise InvalidInput("row_cap must be between 1 and 10000", row_cap=row_cap)
        self.rc, self.run_id = rc, run_id
        if run_id is not None:
            timeline.check_run_id(run_id)
        writes = rc is not None and run_id is not None and not rc.read_only
        self.timeline = timeline.Timeline(timeline.timeline_path(rc, run_id) if writes else None)  # type: ignore[arg-type]
        self.row_cap = row_cap
        # Vet user probes before anything touches the database: a refused probe connects nowhere.
        user = probes.user_probes(probe_queries or [], dialect_of(parse_url(url)), row_cap)
        self.session = MonitorSession(url, statement_timeout_s=self.thresholds.probe_timeout_seconds)
        self.notes: list[str] = []
        try:
            self._setup(target or ProbeTarget(), user)
        except BaseException:
            self.session.close()
            raise
        t = self.thresholds
        self.window = ProbeWindow(t.window_probes, t.window_seconds)
        self.throughput = ThroughputMeter(window_s=max(10.0, t.window_seconds / 2))
        self.board = TriggerBoard(t)
        self.baseline: Baseline | None = None
        self.started = time.monotonic()
        self.last: Snapshot | None = None
        self.last_checks: list[Check] = []
        self._tick = 0
        self._start_size: int | None = None
        self._sample_lock = threading.Lock()
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _setup(self, target: ProbeTarget, user: list[probes.Probe]) -> None:
        table_probes, notes = probes.table_probes(self.session, target)
        probes.check_user_probes(self.session, user)
        self.probes = [probes.round_trip(), *table_probes, *user]
        self.notes.extend(notes)
        self.flavor = self.session.flavor or self.session.dialect
        self.server = self.session.run(lambda conn: host.locate(conn, self.flavor, self.session.url))
        self.host_sampler = metrics.HostSampler(self.server, self.flavor)

    @classmethod
    def from_plan(cls, url: str, rc: RunContext, plan_path: str, **kwargs: Any) -> Monitor:
        """Thresholds from the plan file's ``monitoring`` key (defaults when the key is absent)."""
        return cls(url, thresholds.from_plan(rc, plan_path), rc=rc, **kwargs)

    # --- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.stop()
        self.session.close()

    def start(self) -> None:
        """Sample every ``sample_interval_seconds`` in a daemon thread until stop()."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="dmig-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=self.thresholds.probe_timeout_seconds * (len(self.probes) + 6) + 5)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sample()
            except Exception as exc:  # the sampler must outlive a bad sample; the failure is on record
                log.exception("monitor sample failed")
                self.record_event("monitor_error", f"{type(exc).__name__}: {exc}")
            self._stop.wait(self.thresholds.sample_interval_seconds)

    # --- measuring -----------------------------------------------------------------------------------

    def _run_probes(self) -> list[ProbeResult]:
        self._tick += 1
        return [probes.run_probe(self.session, p, self._tick, self.row_cap) for p in self.probes]

    def measure_baseline(self, seconds: float) -> Baseline:
        """Probe latency before the migration starts: the reference the latency rule multiplies.

        Runs probe rounds back to back (a short pause between rounds) for about ``seconds``, at
        least BASELINE_MIN_ROUNDS rounds and at most BASELINE_MAX_ROUNDS.
        """
        if seconds < 0 or seconds > 3600:
            raise InvalidInput("baseline seconds must be between 0 and 3600", seconds=seconds)
        values, errors, rounds = [], 0, 0
        start = time.monotonic()
        with self._sample_lock:
            while rounds < BASELINE_MAX_ROUNDS and (rounds < BASELINE_MIN_ROUNDS or time.monotonic() - start < seconds):
                for r in self._run_probes():
                    if r.ok and r.latency_ms is not None:
                        values.append(r.latency_ms)
                    else:
                        errors += 1
                rounds += 1
                time.sleep(0.02)
        self.baseline = Baseline(
            latency=metrics.percentiles_of(values), rounds=rounds, errors=errors, seconds=time.monotonic() - start
        )
        self.timeline.append({"type": "baseline", "ts": utc_now(), **self.baseline.model_dump()})
        if errors:
            self.notes.append(f"{errors} probe(s) failed while measuring the baseline")
        return self.baseline

    def set_baseline(self, latency: Percentiles) -> None:
        """Use a baseline measured earlier (e.g. by a previous run) instead of measuring now."""
        self.baseline = Baseline(latency=latency, rounds=0, errors=0, seconds=0.0)

    def collect(self) -> Snapshot:
        """Probe once and read every metric, without judging (health uses this for its snapshot)."""
        results = self._run_probes()
        self.window.add(results)
        s = self.session
        na = metrics.not_visible
        size = metrics.guarded(s, lambda _r: (None, None), metrics.database_size)
        if self._start_size is None:
            self._start_size = size[0]
        rate, failed, total = self.window.error_rate()
        return Snapshot(
            ts=utc_now(),
            elapsed_s=round(time.monotonic() - self.started, 3),
            probes=results,
            latency=self.window.latency(),
            error_rate=rate,
            errors_in_window=failed,
            probes_in_window=total,
            throughput_rows_per_s=self.throughput.rate(),
            rows_done=self.throughput.total,
            connections=metrics.guarded(s, na(metrics.Connections), lambda c: metrics.connections(c, self.flavor)),
            replication=metrics.guarded(s, na(metrics.Replication), lambda c: metrics.replication(c, self.flavor)),
            disk=metrics.disk(size, self._start_size, self.server),
            host=self.host_sampler.read(),
        )

    def snapshot(self, rounds: int = 5) -> tuple[Snapshot, list[Check], Verdict]:
        """One judged snapshot without hysteresis or side effects (the health tool).

        ``rounds`` probe rounds fill the window so its percentiles mean something, and give the
        CPU figures two readings to compare.
        """
        with self._sample_lock:
            self.host_sampler.read()
            for _ in range(max(0, rounds - 1)):
                self.window.add(self._run_probes())
                time.sleep(0.02)
            snap = self.collect()
        checks = self.checks(snap)
        return snap, checks, snapshot_verdict(checks)

    def checks(self, snapshot: Snapshot) -> list[Check]:
        return evaluate(snapshot, self.thresholds, self.baseline.latency if self.baseline else None)

    def sample(self) -> Snapshot:
        """Measure, judge with hysteresis, store the sample, and act on every state change."""
        with self._sample_lock:
            snap = self.collect()
            self.last_checks = self.checks(snap)
            verdict, changes = self.board.update(self.last_checks)
            self.last = snap
            record = {"type": "sample", **snap.model_dump(mode="json"), "verdict": verdict.action}
            record["checks"] = [c.model_dump(mode="json") for c in self.last_checks]
            self.timeline.append(record)
            for change in changes:
                self._announce(change)
        with self._changed:
            self._changed.notify_all()
        return snap

    def verdict(self) -> Verdict:
        """What the migration must do now: continue | warn | pause | rollback, and why."""
        return self.board.current()

    def wait_until_healthy(self, timeout: float) -> Verdict:
        """Block while the verdict is pause; return it as soon as it is continue, warn or rollback.

        Without the background thread it samples itself, once per interval. After ``timeout``
        seconds it returns the still-paused verdict with ``timed_out=True``: the caller decides
        (give up, or wait again). A rollback verdict returns at once: waiting cannot cure it.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        interval = self.thresholds.sample_interval_seconds
        while True:
            current = self.verdict()
            if current.action != "pause":
                return current
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return current.model_copy(update={"timed_out": True})
            if self.running:
                with self._changed:
                    self._changed.wait(min(remaining, interval * 2 + self.thresholds.probe_timeout_seconds))
            else:
                self.sample()
                self._stop.wait(min(interval, max(0.0, deadline - time.monotonic())))

    # --- what the executor reports -------------------------------------------------------------------

    def record_rows(self, rows: int) -> None:
        """Throughput callback: the migration reports rows done since its last report (a delta)."""
        if rows < 0:
            raise InvalidInput("rows done cannot be negative", rows=rows)
        self.throughput.add(rows)

    def record_event(self, kind: str, detail: str, **extra: Any) -> None:
        """Mark a moment on the timeline and report (pause, resume, rollback_started, batch_failed...)."""
        import re

        if not re.match(_EVENT_KIND, kind or ""):
            raise InvalidInput(f"event kind {kind!r} must be one lowercase word (letters, digits, _)", kind=kind)
        record = {
            "type": "event",
            "ts": utc_now(),
            "elapsed_s": round(time.monotonic() - self.started, 3),
            "kind": kind,
            "detail": str(detail)[:2000],
            **extra,
        }
        log.info("monitor event %s: %s", kind, detail)
        self.timeline.append(record)

    # --- announcing and reporting ----------------------------------------------------------------------

    def _announce(self, change: Transition) -> None:
        verb = {"trigger": "TRIGGERED", "clear": "cleared", "escalate": "ESCALATED"}[change.kind]
        text = f"monitor {verb} {change.rule} -> {change.action} ({change.severity}): {change.message}"
        level = logging.INFO if change.kind == "clear" else logging.WARNING
        log.log(level, "%s", text)
        self.record_event(change.kind, change.message, rule=change.rule, action=change.action, severity=change.severity)
        if self.rc is None or self.rc.read_only:
            return
        extra = {"rule": change.rule, "action": change.action, "severity": change.severity, "kind": change.kind}
        if self.run_id:
            extra["run_id"] = self.run_id
        extra["database"] = display_url(self.session.url)
        try:
            message = bus.build_message(
                sender=self.rc.actor,
                type="status" if change.kind == "clear" else "warning",
                text=text[: bus.MAX_TEXT],
                extra=extra,
            )
            bus.append(self.rc.project_path(BUS), message)
        except (DmigError, OSError) as exc:  # the bus is a courtesy; monitoring must go on
            log.warning("could not announce on the bus: %s", exc)

    def write_report(self) -> Path | None:
        """Render the run report from the stored timeline (docs/migrations/<run-id>/report.html)."""
        if self.rc is None or self.run_id is None or self.rc.read_only:
            return None
        path = timeline.report_path(self.rc, self.run_id)
        records = timeline.read(self.timeline.path) if self.timeline.path else self.timeline.records
        report.write(path, records, title=f"Migration run {self.run_id}", thresholds=self.thresholds)
        return path
