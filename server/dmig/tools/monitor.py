"""health and monitor: live database health judged against the migration's thresholds.

Thin adapters over dmig.monitor.service. Thresholds come inline (``thresholds``) or from a plan
file's ``monitoring`` key (``plan``): the same object, schema ``dmig.monitor.thresholds.Thresholds``.
"""

from __future__ import annotations

import warnings

from pydantic import Field

from dmig.context import RunContext
from dmig.fields import Few, Identifier, JsonObject, Path, SqlQuery, Token, Url
from dmig.models import Input
from dmig.monitor import service, thresholds
from dmig.monitor.probes import DEFAULT_ROW_CAP, ProbeTarget
from dmig.monitor.service import HealthResult, Until, WatchResult
from dmig.registry import ToolSpec

_THRESHOLDS_HELP = (
    "Thresholds and policy (all optional, defaults shown): {latency: {percentile: p95, factor: 2, min_ms: 25, "
    "max_ms: null, action: warn}, error_rate: {max_ratio: 0.01, action: rollback}, replication_lag: {max_seconds: "
    "30, action: pause}, disk: {max_used_pct: 90, action: pause}, connections: {max_used_pct: 90, action: warn}, "
    "breaches_to_trigger: 3, healthy_to_resume: 3, window_probes: 200, window_seconds: 60, "
    "sample_interval_seconds: 1, probe_timeout_seconds: 2, max_pause_seconds: null}. Every rule takes action "
    "warn|pause|rollback and enabled true|false. Give this or 'plan'."
)

with warnings.catch_warnings():  # a field named "schema" shadows pydantic's deprecated BaseModel.schema()
    warnings.filterwarnings("ignore", message=r'Field name "schema"', category=UserWarning)

    class _Common(Input):
        url: Url = Field(
            description="Database URL (postgresql://, mysql://, sqlite:///) or env:VARNAME holding it (keeps the "
            "password out of the chat)."
        )
        table: Identifier | None = Field(
            default=None,
            description="Table the migration touches: adds a primary-key lookup probe and a 10-row index range "
            "probe on it (they wait when the migration locks it). Default: round-trip probe only.",
        )
        schema: Identifier | None = Field(
            default=None, description="Schema (PostgreSQL) or database (MySQL) of 'table'."
        )
        range_column: Identifier | None = Field(
            default=None,
            description="Leading column of an index for the range probe; default: the first primary-key column.",
        )
        probes: Few[SqlQuery] | None = Field(
            default=None,
            description="Your own probe queries: each must be ONE plain SELECT over plain tables of this database "
            "(no views, no system catalogs) using only ordinary operators, casts to ordinary types and the "
            "functions count/sum/avg/min/max/coalesce/lower/upper/length/now/abs/round...; refused otherwise "
            "(an allow-list, checked by the database's own grammar). They run read-only with the probe timeout, "
            "at most row_cap rows, as a role without superuser rights (PostgreSQL); their errors show only a "
            "SQLSTATE/error number and a fixed reason.",
        )
        row_cap: int = Field(default=DEFAULT_ROW_CAP, ge=1, le=10_000, description="Rows read per probe at most.")
        thresholds: JsonObject | None = Field(default=None, description=_THRESHOLDS_HELP)
        plan: Path | None = Field(
            default=None,
            description="Plan file in the project (docs/migrations/<id>/plan.yaml) whose 'monitoring' key holds "
            "the thresholds object. Give this or 'thresholds'.",
        )
        baseline_p95_ms: float | None = Field(
            default=None,
            gt=0,
            description="Known baseline p95 probe latency (ms), e.g. from an earlier monitor run's report; the "
            "latency rule breaches above factor x this.",
        )

        def target(self) -> ProbeTarget:
            return ProbeTarget(table=self.table, schema_name=self.schema, range_column=self.range_column)


class HealthInput(_Common):
    rounds: int = Field(default=5, ge=1, le=100, description="Probe rounds behind the snapshot's latency percentiles.")


class MonitorInput(_Common):
    run_id: Token = Field(
        description="Run identifier: the timeline goes to docs/migrations/<run_id>/metrics.jsonl (appended) and "
        "the report to docs/migrations/<run_id>/report.html."
    )
    duration_seconds: float = Field(default=60.0, gt=0, le=86_400, description="Watch at most this long.")
    until: Until = Field(
        default="duration",
        description="Stop early: trigger (any rule triggered), pause (pause or rollback verdict), rollback, "
        "healthy (verdict continue after at least healthy_to_resume samples), or duration (never early).",
    )
    baseline_seconds: float = Field(
        default=5.0,
        ge=0,
        le=3600,
        description="Measure the latency baseline for this long before watching (0 with baseline_p95_ms, or to "
        "judge latency by latency.max_ms only).",
    )
    report: bool = Field(default=True, description="Write the HTML run report at the end.")


def health_tool(inp: HealthInput, rc: RunContext) -> HealthResult:
    config = thresholds.resolve(rc, inp.thresholds, inp.plan)
    return service.health(
        inp.url,
        config,
        inp.target(),
        inp.probes or [],
        row_cap=inp.row_cap,
        rounds=inp.rounds,
        baseline_p95_ms=inp.baseline_p95_ms,
    )


def monitor_tool(inp: MonitorInput, rc: RunContext) -> WatchResult:
    config = thresholds.resolve(rc, inp.thresholds, inp.plan)
    return service.watch(
        rc,
        inp.url,
        config,
        inp.target(),
        inp.probes or [],
        run_id=inp.run_id,
        duration_s=inp.duration_seconds,
        until=inp.until,
        baseline_seconds=0.0 if inp.baseline_p95_ms is not None else inp.baseline_seconds,
        baseline_p95_ms=inp.baseline_p95_ms,
        row_cap=inp.row_cap,
        write_report=inp.report,
    )


# --- CLI ------------------------------------------------------------------------------------------

_EXIT = {"continue": 0, "warn": 0, "pause": 2, "rollback": 3}


def _exit_code(out: HealthResult | WatchResult) -> int:
    return _EXIT.get(out.verdict.action, 1)


def _ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f} ms"


def render_health(out: HealthResult) -> str:
    s = out.snapshot
    lines = [
        f"{out.database}: verdict {out.verdict.action.upper()}",
        f"latency p50/p95/p99 {_ms(s.latency.p50_ms)} / {_ms(s.latency.p95_ms)} / {_ms(s.latency.p99_ms)} "
        f"over {s.latency.count} probes ({', '.join(out.probes)})",
    ]
    lines += [
        f"  {'BREACH' if c.breached else 'ok    ' if c.breached is False else 'n/a   '} {c.message}" for c in out.checks
    ]
    lines += [f"  -> {r.action}: {r.message}" for r in out.verdict.reasons]
    lines += [f"note: {n}" for n in out.notes]
    return "\n".join(lines)


def render_watch(out: WatchResult) -> str:
    lines = [
        f"{out.database}: {out.samples} samples in {out.seconds:.0f} s; {out.stopped_because}; "
        f"verdict {out.verdict.action.upper()}",
        f"timeline: {out.timeline_path}",
    ]
    if out.report_path:
        lines.append(f"report:   {out.report_path}")
    lines += [
        f"  {e.get('ts')} {e.get('kind')} {e.get('rule')} -> {e.get('action')}: {e.get('detail')}" for e in out.events
    ]
    lines += [f"note: {n}" for n in out.notes]
    return "\n".join(lines)


TOOLS = [
    ToolSpec(
        name="health",
        func=health_tool,
        input_model=HealthInput,
        output_model=HealthResult,
        title="Database health against migration thresholds",
        description="One snapshot of a live database: probe latency p50/p95/p99, probe error rate, connections in "
        "use vs max, replication lag ('no replicas' when none), database size and data-filesystem use, host CPU "
        "and memory when the server is local; each judged against the thresholds (inline or a plan's "
        "'monitoring' key) with the action it would trigger (continue|warn|pause|rollback). Read-only; changes "
        "nothing. CLI exit code: 0 continue/warn, 2 pause, 3 rollback.",
        read_only=True,
        destructive=False,
        idempotent=True,
        open_world=True,
        cli_positional=("url",),
        cli_exit_code=_exit_code,
        cli_render=render_health,
        tags=("monitor",),
    ),
    ToolSpec(
        name="monitor",
        url_fields={"url": "read"},  # sampling reads; it writes only project files
        func=monitor_tool,
        input_model=MonitorInput,
        output_model=WatchResult,
        title="Watch a database during a migration",
        description="Measure a latency baseline, then sample health every sample_interval_seconds for "
        "duration_seconds (or until a condition), applying the thresholds with hysteresis (N breaches trigger, "
        "M healthy samples clear); triggers are announced on the agent bus. Appends the metrics timeline to "
        "docs/migrations/<run_id>/metrics.jsonl and writes a self-contained HTML report with charts "
        "(report.html). Reads the database only; writes project files. CLI exit code: 0 continue/warn, 2 pause, "
        "3 rollback.",
        read_only=False,
        destructive=False,
        idempotent=False,
        open_world=True,
        cli_positional=("url",),
        cli_exit_code=_exit_code,
        cli_render=render_watch,
        tags=("monitor",),
    ),
]
