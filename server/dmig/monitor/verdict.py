"""From a sample to a decision: which rules breach now, which have triggered, what the run must do.

Checks are pure (a snapshot and the thresholds in, one check per rule out). The ``TriggerBoard``
holds the hysteresis state across samples: a rule triggers after N consecutive breaches and
clears after M consecutive healthy samples; the verdict is the strongest action among triggered
rules. A rollback verdict latches: once the executor has been told to roll back, a later healthy
sample must not tell it to carry on halfway through undoing the work.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field

from dmig.harness.clock import utc_now
from dmig.monitor.metrics import Percentiles, Snapshot
from dmig.monitor.thresholds import RULES, Action, Severity, Thresholds

VerdictAction = Literal["continue", "warn", "pause", "rollback"]
_RANK: dict[str, int] = {"continue": 0, "warn": 1, "pause": 2, "rollback": 3}


class Check(BaseModel):
    rule: str = Field(description="latency, error_rate, replication_lag, disk or connections.")
    breached: bool | None = Field(description="True: over the limit now; False: within; None: not measurable.")
    value: float | None = Field(default=None, description="The measured figure (unit in message).")
    limit: float | None = Field(default=None, description="The limit it was compared with.")
    action: Action
    severity: Severity
    enabled: bool = True
    message: str


class Reason(BaseModel):
    rule: str
    action: Action
    severity: Severity
    message: str = Field(description="What breached, by how much, since when.")
    since: str | None = Field(default=None, description="When the rule triggered (UTC).")


class Verdict(BaseModel):
    action: VerdictAction = Field(description="continue | warn | pause | rollback: what the migration must do now.")
    reasons: list[Reason] = Field(default_factory=list, description="The triggered rules behind the action.")
    pending: list[str] = Field(
        default_factory=list, description="Rules breaching now but not yet for N consecutive samples."
    )
    ts: str = Field(default_factory=utc_now)
    timed_out: bool = Field(default=False, description="wait_until_healthy gave up while still paused.")


# --- checks --------------------------------------------------------------------------------------


def _pct(p: Percentiles, which: str) -> float | None:
    return getattr(p, f"{which}_ms")


def latency_limit(t: Thresholds, baseline: Percentiles | None) -> float | None:
    rule = t.latency
    base = _pct(baseline, rule.percentile) if baseline is not None else None
    limit = max(rule.factor * base, rule.min_ms) if base is not None else None
    if rule.max_ms is not None:
        limit = rule.max_ms if limit is None else min(limit, rule.max_ms)
    return limit


def _check(t: Thresholds, rule: str, value: float | None, limit: float | None, text: str) -> Check:
    r = t.rule(rule)
    breached = None if value is None or limit is None else value > limit
    if breached is None:
        message = f"{rule}: not measurable ({text})"
    else:
        message = f"{rule}: {text} ({'over' if breached else 'within'} the limit)"
    return Check(
        rule=rule,
        breached=breached,
        value=value,
        limit=limit,
        action=r.action,
        severity=r.severity,
        enabled=r.enabled,
        message=message,
    )


def evaluate(s: Snapshot, t: Thresholds, baseline: Percentiles | None) -> list[Check]:
    lat_limit = latency_limit(t, baseline)
    lat = _pct(s.latency, t.latency.percentile)
    lat_text = (
        f"{t.latency.percentile} {lat:.1f} ms vs limit {lat_limit:.1f} ms"
        if lat is not None and lat_limit is not None
        else ("no baseline and no max_ms" if lat_limit is None else "no probe latency in the window")
    )
    enough = s.probes_in_window >= t.error_rate.min_probes
    err = s.error_rate if enough else None
    err_text = (
        f"{s.errors_in_window} of {s.probes_in_window} probes failed ({100 * (s.error_rate or 0):.1f}%)"
        f" vs limit {100 * t.error_rate.max_ratio:.1f}%"
        if enough
        else f"only {s.probes_in_window} probes in the window"
    )
    lag = s.replication.max_lag_s
    lag_text = (
        f"lag {lag:.1f} s vs limit {t.replication_lag.max_seconds:.0f} s"
        if lag is not None
        else (s.replication.note or "lag not visible")
    )
    disk = s.disk.filesystem_used_pct
    disk_text = (
        f"{disk:.1f}% used vs limit {t.disk.max_used_pct:.0f}%" if disk is not None else (s.disk.note or "not visible")
    )
    conn = s.connections.used_pct
    conn_text = (
        f"{conn:.1f}% of the maximum in use vs limit {t.connections.max_used_pct:.0f}%"
        if conn is not None
        else (s.connections.note or "not visible")
    )
    return [
        _check(t, "latency", lat, lat_limit, lat_text),
        _check(t, "error_rate", err, t.error_rate.max_ratio if enough else None, err_text),
        _check(t, "replication_lag", lag, t.replication_lag.max_seconds, lag_text),
        _check(t, "disk", disk, t.disk.max_used_pct, disk_text),
        _check(t, "connections", conn, t.connections.max_used_pct, conn_text),
    ]


def snapshot_verdict(checks: list[Check]) -> Verdict:
    """A one-shot judgement (the health tool): every enabled breach acts, no hysteresis."""
    reasons = [
        Reason(rule=c.rule, action=c.action, severity=c.severity, message=c.message)
        for c in checks
        if c.breached and c.enabled
    ]
    return Verdict(action=_strongest(r.action for r in reasons), reasons=reasons)


def _strongest(actions: object) -> VerdictAction:
    best: VerdictAction = "continue"
    for a in actions:  # type: ignore[attr-defined]
        if _RANK[a] > _RANK[best]:
            best = a
    return best


# --- hysteresis ------------------------------------------------------------------------------------


@dataclass
class RuleState:
    breaches: int = 0
    healthy: int = 0
    triggered: bool = False
    since: str | None = None
    message: str = ""


@dataclass
class Transition:
    """A rule (or the pause clock) changed state: every one is logged, stored and announced."""

    kind: Literal["trigger", "clear", "escalate"]
    rule: str
    action: Action
    severity: Severity
    message: str


@dataclass
class TriggerBoard:
    thresholds: Thresholds
    states: dict[str, RuleState] = field(default_factory=lambda: {r: RuleState() for r in RULES})
    latched: Reason | None = None
    paused_since: float | None = None

    def update(self, checks: list[Check], now: float | None = None) -> tuple[Verdict, list[Transition]]:
        now = time.monotonic() if now is None else now
        changes = [c for c in (self._step(check) for check in checks) if c is not None]
        verdict = self.current()
        escalation = self._pause_clock(verdict, now)
        if escalation is not None:
            changes.append(escalation)
            verdict = self.current()
        return verdict, changes

    def _step(self, c: Check) -> Transition | None:
        st = self.states[c.rule]
        if c.breached is None:  # not measurable: neither a breach nor proof of health
            return None
        rule = self.thresholds.rule(c.rule)  # the board's thresholds decide, whatever the check carries
        if c.breached and rule.enabled:
            st.breaches, st.healthy, st.message = st.breaches + 1, 0, c.message
            if not st.triggered and st.breaches >= self.thresholds.needed(c.rule, "breaches_to_trigger"):
                st.triggered, st.since = True, utc_now()
                if rule.action == "rollback" and self.latched is None:
                    self.latched = Reason(
                        rule=c.rule, action=rule.action, severity=rule.severity, message=c.message, since=st.since
                    )
                return Transition("trigger", c.rule, rule.action, rule.severity, c.message)
            return None
        st.breaches, st.healthy = 0, st.healthy + 1
        if st.triggered and st.healthy >= self.thresholds.needed(c.rule, "healthy_to_resume"):
            st.triggered, st.since = False, None
            return Transition("clear", c.rule, rule.action, rule.severity, c.message)
        return None

    def _pause_clock(self, verdict: Verdict, now: float) -> Transition | None:
        if verdict.action != "pause":
            self.paused_since = None
            return None
        if self.paused_since is None:
            self.paused_since = now
        limit = self.thresholds.max_pause_seconds
        if limit is None or now - self.paused_since <= limit or self.latched is not None:
            return None
        text = f"paused for more than {limit:.0f} s (max_pause_seconds): " + "; ".join(
            r.message for r in verdict.reasons
        )
        self.latched = Reason(rule="max_pause", action="rollback", severity="critical", message=text, since=utc_now())
        return Transition("escalate", "max_pause", "rollback", "critical", text)

    def current(self) -> Verdict:
        t = self.thresholds
        reasons = [
            Reason(
                rule=name,
                action=t.rule(name).action,
                severity=t.rule(name).severity,
                message=st.message,
                since=st.since,
            )
            for name, st in self.states.items()
            if st.triggered
        ]
        if self.latched is not None and all(r.rule != self.latched.rule for r in reasons):
            reasons.insert(0, self.latched)
        pending = [name for name, st in self.states.items() if st.breaches > 0 and not st.triggered]
        action = "rollback" if self.latched is not None else _strongest(r.action for r in reasons)
        return Verdict(action=action, reasons=reasons, pending=pending)
