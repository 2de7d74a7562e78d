"""Thresholds and the policy around them: what counts as a breach, and what each breach makes us do.

This is the ``monitoring`` object of a plan (docs/migrations/<id>/plan.yaml) and the
``thresholds`` input of the health and monitor tools. Every rule has an action (warn, pause or
rollback) the user may change; the defaults follow the expertise seed (latency over 2x the
baseline p95 warns; error rate over 1%, replication lag over 30 s and disk over 90% used are
critical; connections over 90% of the maximum warn). Critical rules default to the action that
remedies them: a lagging replica or a filling disk recovers when we stop writing (pause), while
readers failing during the migration is the migration breaking things (rollback). One bad
sample never acts: a rule triggers after N consecutive breaches and clears after M healthy
samples (hysteresis), so a single slow probe neither pauses nor flaps a run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dmig import safeload
from dmig.context import RunContext
from dmig.errors import CorruptFile, InvalidInput, NotFound

Action = Literal["warn", "pause", "rollback"]
Severity = Literal["warn", "critical"]
RULES = ("latency", "error_rate", "replication_lag", "disk", "connections")


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="false: the rule is measured and shown but never acts.")
    action: Action = Field(description="What a triggered rule makes the migration do: warn, pause or rollback.")
    severity: Severity = Field(description="How the run report labels a breach (warn or critical).")
    breaches_to_trigger: int | None = Field(
        default=None, ge=1, le=1000, description="Override of the policy's N consecutive breaches for this rule."
    )
    healthy_to_resume: int | None = Field(
        default=None, ge=1, le=1000, description="Override of the policy's M healthy samples for this rule."
    )


class LatencyRule(Rule):
    action: Action = "warn"
    severity: Severity = "warn"
    percentile: Literal["p50", "p95", "p99"] = Field(default="p95", description="Which window percentile is judged.")
    factor: float = Field(default=2.0, gt=1.0, le=1000, description="Breach above factor x the baseline percentile.")
    min_ms: float = Field(
        default=25.0,
        ge=0,
        description="Floor of the limit (ms): 2x a 0.4 ms baseline would breach on scheduler noise alone.",
    )
    max_ms: float | None = Field(
        default=None, gt=0, description="Absolute ceiling (ms), applied always; the only limit when no baseline."
    )


class ErrorRateRule(Rule):
    action: Action = "rollback"
    severity: Severity = "critical"
    max_ratio: float = Field(
        default=0.01, ge=0, le=1, description="Breach when failed/all probes in the window exceed it."
    )
    min_probes: int = Field(default=5, ge=1, description="No judgement on fewer probes than this in the window.")


class ReplicationLagRule(Rule):
    action: Action = "pause"
    severity: Severity = "critical"
    max_seconds: float = Field(default=30.0, gt=0, description="Breach when the worst visible lag exceeds it.")


class DiskRule(Rule):
    action: Action = "pause"
    severity: Severity = "critical"
    max_used_pct: float = Field(default=90.0, gt=0, le=100, description="Breach when the data filesystem is fuller.")


class ConnectionsRule(Rule):
    action: Action = "warn"
    severity: Severity = "warn"
    max_used_pct: float = Field(
        default=90.0, gt=0, le=100, description="Breach when connections in use exceed this share of the maximum."
    )


class Thresholds(BaseModel):
    """The plan's ``monitoring`` object."""

    model_config = ConfigDict(extra="forbid")

    latency: LatencyRule = Field(default_factory=LatencyRule)
    error_rate: ErrorRateRule = Field(default_factory=ErrorRateRule)
    replication_lag: ReplicationLagRule = Field(default_factory=ReplicationLagRule)
    disk: DiskRule = Field(default_factory=DiskRule)
    connections: ConnectionsRule = Field(default_factory=ConnectionsRule)
    breaches_to_trigger: int = Field(default=3, ge=1, le=1000, description="N consecutive breaches trigger a rule.")
    healthy_to_resume: int = Field(default=3, ge=1, le=1000, description="M consecutive healthy samples clear it.")
    window_probes: int = Field(
        default=200, ge=3, le=100_000, description="Latency and error rate are judged over at most this many probes..."
    )
    window_seconds: float = Field(default=60.0, gt=0, le=86_400, description="...none older than this.")
    sample_interval_seconds: float = Field(default=1.0, ge=0.05, le=3600, description="Background sampling period.")
    probe_timeout_seconds: float = Field(
        default=2.0, gt=0, le=600, description="Statement and lock-wait bound of every probe (a timeout is an error)."
    )
    max_pause_seconds: float | None = Field(
        default=None,
        gt=0,
        description="A pause that lasts longer escalates to rollback; null: a pause waits for as long as it takes.",
    )

    def rule(self, name: str) -> Rule:
        return getattr(self, name)

    def needed(self, name: str, attr: Literal["breaches_to_trigger", "healthy_to_resume"]) -> int:
        own = getattr(self.rule(name), attr)
        return own if own is not None else getattr(self, attr)


def parse(data: dict[str, Any] | None, where: str = "thresholds") -> Thresholds:
    try:
        return Thresholds.model_validate(data or {})
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise InvalidInput(f"{where} is not valid: {'; '.join(problems[:5])}", problems=problems) from None


def from_plan(rc: RunContext, plan_path: str) -> Thresholds:
    """The ``monitoring`` key of a plan file (absent key: the defaults)."""
    path = rc.project_path(plan_path)
    if not path.is_file():
        raise NotFound(f"plan file {plan_path} not found", path=plan_path)
    return parse(_monitoring_of(path, plan_path), f"{plan_path}: monitoring")


def _monitoring_of(path: Path, shown: str) -> dict[str, Any] | None:
    try:
        doc = safeload.load_yaml(path, "plan", shown=shown)
    except FileNotFoundError:
        raise NotFound(f"plan file {shown} not found", path=shown) from None
    except yaml.YAMLError as exc:
        raise CorruptFile(f"plan file {shown} is not valid YAML: {str(exc).splitlines()[0]}", path=shown) from None
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise CorruptFile(f"plan file {shown} must hold a mapping at the top level", path=shown)
    monitoring = doc.get("monitoring")
    if monitoring is not None and not isinstance(monitoring, dict):
        raise InvalidInput(f"{shown}: monitoring must be a mapping of thresholds", path=shown)
    return monitoring


def resolve(rc: RunContext, thresholds: dict[str, Any] | None, plan: str | None) -> Thresholds:
    """Tool inputs: an explicit object wins; else the plan's monitoring key; else the defaults."""
    if thresholds is not None and plan:
        raise InvalidInput("give either thresholds or plan, not both", reason="ambiguous_thresholds")
    if plan:
        return from_plan(rc, plan)
    return parse(thresholds)
