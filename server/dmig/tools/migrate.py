"""Zero-downtime schema evolution: plan_migration, run_migration, migration_status, complete_migration,
abort_migration.

Thin adapters over dmig.plan (planner, plan files) and dmig.execute (the safe executor). Every
tool that changes the database demands the plan checksum as ``confirm``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import Field

from dmig.context import RunContext
from dmig.db.urls import parse_url
from dmig.errors import InvalidInput
from dmig.execute import abort, complete, migration_status, run_plan
from dmig.execute.abort import AbortOutcome
from dmig.execute.contract import CompleteOutcome
from dmig.execute.runner import RunOutcome
from dmig.execute.status import MigrationStatus
from dmig.execute.target import resolve_url
from dmig.fields import FreeText, Path, Token, Url
from dmig.models import Input, Output
from dmig.plan import load_plan, plan_migration, resolve_plan, save_plan
from dmig.plan.model import ChecklistItem, Downtime, Plan
from dmig.registry import ToolSpec
from dmig.spec.models import load_spec

PLAN_FIELD = "Plan file (docs/migrations/<id>/plan.yaml), its folder, or the migration id."
CONFIRM_FIELD = "The plan's checksum (shown by plan_migration and in runbook.md): proof you reviewed this exact plan."
URL_FIELD = "Target database if the plan stores no password-free way to reach it (prefer env:VARNAME); must be the "
URL_FIELD += "database the plan was made for."


def _rel(rc: RunContext, path: Any) -> str:
    return str(path.relative_to(rc.project_dir.resolve()))


def _plan(rc: RunContext, value: str) -> tuple[Plan, str]:
    path = resolve_plan(rc, value)
    shown = _rel(rc, path)
    return load_plan(path, shown, rc.project_dir), shown


# ------------------------------------------------------------------------------------------- plan


class PlanMigrationInput(Input):
    spec: Path = Field(description="Migration spec file (YAML/JSON) inside the project; schema: migration-spec.")
    url: Url | None = Field(default=None, description="Target database (prefer env:VARNAME); default: the spec's.")
    environment: Literal["development", "staging", "production"] = Field(
        default="production", description="Which environment the target is; production never waives the backup."
    )
    waive_backup: FreeText | None = Field(
        default=None, description="Reason to contract without a verified backup (refused for production)."
    )
    sample: bool = Field(
        default=True,
        description="Measure throughput on the live database (temporary table of its own) when expertise has none.",
    )


class StepSummary(Output):
    id: str
    phase: str
    lock: str
    lock_risk: str
    blocks: str
    seconds: float
    estimate_source: str
    destructive: bool
    findings: int


class PlanMigrationOutput(Output):
    migration_id: str
    checksum: str = Field(description="Pass as confirm to run_migration, complete_migration, abort_migration.")
    plan_path: str
    runbook_path: str
    target: str = Field(description="The target database (password masked).")
    server_version: str
    pattern: str
    steps: list[StepSummary]
    backfill_rows: dict[str, int | None]
    estimated_seconds: dict[str, float]
    downtime: Downtime
    checklist: list[ChecklistItem]
    lint: dict[str, int]
    next_action: str


def plan_tool(inp: PlanMigrationInput, rc: RunContext) -> PlanMigrationOutput:
    rc.require_writable("plan_migration (writes plan files)")
    spec = load_spec(rc.project_path(inp.spec))
    plan = plan_migration(
        spec, url=inp.url, project_dir=rc.project_dir, environment=inp.environment, waive_backup=inp.waive_backup,
        sample=inp.sample, progress=rc.progress,
    )  # fmt: skip
    path, runbook = save_plan(rc, plan)
    return PlanMigrationOutput(
        migration_id=plan.id,
        checksum=plan.checksum,
        plan_path=_rel(rc, path),
        runbook_path=_rel(rc, runbook),
        target=plan.target.url,
        server_version=plan.target.server_version,
        pattern=plan.pattern.summary,
        steps=[
            StepSummary(
                id=s.id,
                phase=s.phase,
                lock=s.lock,
                lock_risk=s.lock_risk,
                blocks=s.blocks,
                seconds=s.estimate.seconds,
                estimate_source=s.estimate.source,
                destructive=s.destructive,
                findings=len(s.findings),
            )
            for s in plan.steps
        ],
        backfill_rows={b.backfill.step_id: b.rows for b in plan.backfills},
        estimated_seconds=plan.estimated_seconds,
        downtime=plan.downtime,
        checklist=plan.checklist,
        lint=plan.lint["counts"],
        next_action=f"review {_rel(rc, runbook)}, then run_migration plan={_rel(rc, path)} confirm={plan.checksum}",
    )


def render_plan(out: PlanMigrationOutput) -> str:
    lines = [
        f"plan {out.migration_id} written: {out.plan_path} (runbook: {out.runbook_path})",
        f"checksum: {out.checksum}",
        f"target: {out.target} ({out.server_version})",
        f"pattern: {out.pattern}",
        f"downtime: {out.downtime.verdict}",
        f"estimated: {', '.join(f'{k} {v:g} s' for k, v in out.estimated_seconds.items())}",
        "steps:",
        *[
            f"  {s.phase:9} {s.id:40} {s.lock} ({s.lock_risk}), ~{s.seconds:g} s [{s.estimate_source}]"
            for s in out.steps
        ],
        "checklist:",
        *[f"  [{ {True: 'x', False: '!', None: ' '}[c.satisfied] }] {c.item}: {c.detail}" for c in out.checklist],
        f"next: {out.next_action}",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- run


class RunMigrationInput(Input):
    plan: Path = Field(description=PLAN_FIELD)
    confirm: Token | None = Field(default=None, description=CONFIRM_FIELD + " Not needed for dry_run.")
    url: Url | None = Field(default=None, description=URL_FIELD)
    dry_run: bool = Field(default=False, description="Return every statement that would run; touch nothing.")
    batch_size: int | None = Field(default=None, ge=1, le=1_000_000, description="Override the plan's batch size.")
    throttle_ms: int | None = Field(default=None, ge=0, le=600_000, description="Override the pause between batches.")
    max_batches: int | None = Field(default=None, ge=1, description="Stop after this many batches (resume later).")
    monitor: bool = Field(default=False, description="Watch the database with the plan's monitoring thresholds: "
                          "pause while unhealthy, stop on a rollback verdict.")  # fmt: skip
    baseline_seconds: float = Field(
        default=3.0, ge=0, le=600, description="Monitor: latency baseline to measure first."
    )


@contextlib.contextmanager
def _monitor(rc: RunContext, plan: Plan, url: str, wanted: bool, baseline_s: float) -> Iterator[Any]:
    if not wanted:
        yield None
        return
    try:
        from dmig.monitor.monitor import Monitor
        from dmig.monitor.probes import ProbeTarget
    except ImportError:
        raise InvalidInput(
            "monitor requested but dmig.monitor is not available", reason="monitor_unavailable"
        ) from None
    table = plan.backfills[0].backfill if plan.backfills else None
    target = ProbeTarget(table=table.table, schema_name=table.schema_) if table else ProbeTarget()
    mon = Monitor(url, plan.monitoring, target=target, rc=rc, run_id=plan.id)
    try:
        mon.measure_baseline(baseline_s)
        mon.start()
        yield mon
    finally:
        mon.close()
        with contextlib.suppress(Exception):
            mon.write_report()


def run_tool(inp: RunMigrationInput, rc: RunContext) -> RunOutcome:
    plan, _shown = _plan(rc, inp.plan)
    confirm = inp.confirm if not inp.dry_run else (inp.confirm or plan.checksum)
    url = None if inp.dry_run else (inp.url or plan.target.ref)
    if not inp.dry_run:
        resolve_url(plan, inp.url, project_dir=rc.project_dir)  # fail fast (policy too), before a monitor connects
    with _monitor(rc, plan, url or "", inp.monitor and not inp.dry_run, inp.baseline_seconds) as mon:
        return run_plan(
            plan, confirm=confirm, url=inp.url, dry_run=inp.dry_run, monitor=mon, progress=rc.progress,
            batch_size=inp.batch_size, throttle_ms=inp.throttle_ms, max_batches=inp.max_batches,
            project_dir=rc.project_dir,
        )  # fmt: skip


def run_exit(out: RunOutcome) -> int:
    return 1 if out.validation_passed is False else 0


def render_run(out: RunOutcome) -> str:
    if out.dry_run:
        lines = [f"dry run of {out.migration_id} (nothing was touched):"]
        for s in out.statements:
            lines += [f"-- {s.phase} {s.step}" + (f" ({s.note})" if s.note else ""), s.sql.rstrip() + ";"]
        return "\n".join(lines)
    lines = [f"migration {out.migration_id}: {out.state}" + (" (resumed)" if out.resumed else "")]
    lines += [f"  {s.phase:8} {s.id:40} {s.status} ({s.attempts} attempt(s), {s.seconds:g} s)" for s in out.steps]
    lines += [f"  backfill {b.step_id}: {b.rows_total:,} rows in {b.batches_total} batches ({b.rows_per_s or 0:,.0f} "
              f"rows/s this run){' resumed' if b.resumed else ''}" for b in out.backfills]  # fmt: skip
    lines += [f"  check {c.id}: {'pass' if c.passed else 'FAIL'} (value {c.value}, expected {c.expected})"
              for c in out.validation]  # fmt: skip
    lines += [f"warning: {w}" for w in out.warnings]
    lines.append(f"next: {out.next_action}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- status


class MigrationStatusInput(Input):
    plan: Path | None = Field(default=None, description=PLAN_FIELD + " Give this, or migration_id with url.")
    migration_id: Token | None = Field(default=None, description="Migration id (when there is no plan file).")
    url: Url | None = Field(default=None, description="Target database (prefer env:VARNAME).")


def status_tool(inp: MigrationStatusInput, rc: RunContext) -> MigrationStatus:
    if inp.plan:
        plan, _ = _plan(rc, inp.plan)
        return migration_status(resolve_url(plan, inp.url, access="read", project_dir=rc.project_dir), plan.id)
    if not (inp.migration_id and inp.url):
        raise InvalidInput("give plan, or migration_id and url")
    return migration_status(parse_url(inp.url), inp.migration_id)


def render_status(out: MigrationStatus) -> str:
    lines = [f"migration {out.migration_id} on {out.target}: {out.state}"]
    if out.locked_by:
        lines.append(f"  running now: {out.locked_by}")
    if out.error:
        lines.append(f"  error: {out.error}")
    lines += [f"  {s.phase:8} {s.step_id:40} {s.state}" for s in out.steps]
    lines += [f"  backfill {b.step_id}: {b.state}, {b.rows_done:,} rows, {b.batches} batches, last key {b.last_key}"
              for b in out.backfills]  # fmt: skip
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- complete / abort


class ConfirmedPlanInput(Input):
    plan: Path = Field(description=PLAN_FIELD)
    confirm: Token = Field(description=CONFIRM_FIELD)
    url: Url | None = Field(default=None, description=URL_FIELD)


def complete_tool(inp: ConfirmedPlanInput, rc: RunContext) -> CompleteOutcome:
    plan, _ = _plan(rc, inp.plan)
    return complete(plan, confirm=inp.confirm, project_dir=rc.project_dir, url=inp.url, progress=rc.progress)


def abort_tool(inp: ConfirmedPlanInput, rc: RunContext) -> AbortOutcome:
    plan, _ = _plan(rc, inp.plan)
    return abort(plan, confirm=inp.confirm, url=inp.url, progress=rc.progress, project_dir=rc.project_dir)


TOOLS = [
    ToolSpec(
        name="plan_migration",
        url_fields={"url": "read"},  # planning reads the live schema; it writes only project files
        func=plan_tool,
        input_model=PlanMigrationInput,
        output_model=PlanMigrationOutput,
        title="Plan a zero-downtime schema migration",
        description=(
            "Read the live database (schema, row counts, server version) and turn a migration spec into a reviewed "
            "plan: ordered expand/backfill/validate/contract steps with exact SQL for this dialect and version, lock "
            "level and lint findings per step, durations from measured throughput (expertise, else a sample on a "
            "temporary table), downtime estimate with reasoning, rollback per step, validation rules, monitoring "
            "thresholds, rollback triggers and a pre-migration checklist. Writes docs/migrations/<id>/plan.yaml and "
            "runbook.md and returns the plan checksum (the confirm value of the executing tools). Changes no data."
        ),
        read_only=False,
        destructive=False,
        idempotent=False,
        open_world=True,
        cli_positional=("spec",),
        cli_render=render_plan,
        tags=("migrate",),
    ),
    ToolSpec(
        name="run_migration",
        func=run_tool,
        input_model=RunMigrationInput,
        output_model=RunOutcome,
        title="Run a migration plan (expand, backfill, validate)",
        description=(
            "Execute a reviewed plan up to, never into, contract: take the migration lock (a concurrent run is "
            "refused, naming the holder), record every step in the dmig_migrations ledger, run the additive expand "
            "steps under lock_timeout with backoff retries, backfill in key-ordered checkpointed batches (resumable "
            "after a crash, throttled, optionally paused by the monitor), then run the validation checks. "
            "Destructive: a plan's raw_sql steps run as written (they can drop data). Needs confirm = the plan "
            "checksum; dry_run lists every statement and touches nothing."
        ),
        read_only=False,
        destructive=True,
        idempotent=False,
        open_world=True,
        cli_positional=("plan",),
        cli_exit_code=run_exit,
        cli_render=render_run,
        tags=("migrate",),
    ),
    ToolSpec(
        name="migration_status",
        func=status_tool,
        input_model=MigrationStatusInput,
        output_model=MigrationStatus,
        title="Migration status",
        description=(
            "Where a migration stands, read from the target database: the ledger's run and step states (with "
            "errors), backfill checkpoints (rows done, last key, batches), the last validation results and who holds "
            "the migration lock now. Read-only."
        ),
        read_only=True,
        destructive=False,
        idempotent=True,
        open_world=True,
        cli_positional=("plan",),
        cli_render=render_status,
        tags=("migrate",),
    ),
    ToolSpec(
        name="complete_migration",
        func=complete_tool,
        input_model=ConfirmedPlanInput,
        output_model=CompleteOutcome,
        title="Complete a migration (contract)",
        description=(
            "The destructive tail: re-run the validation checks (they must pass now), take a verified backup of the "
            "affected tables (refused without one unless the plan waived it; never for production), then run the "
            "contract steps (drop the old shape, keep a compatibility view/column for old readers). Needs confirm = "
            "the plan checksum. Only after run_migration reached validation."
        ),
        read_only=False,
        destructive=True,
        idempotent=False,
        open_world=True,
        cli_positional=("plan",),
        tags=("migrate",),
    ),
    ToolSpec(
        name="abort_migration",
        func=abort_tool,
        input_model=ConfirmedPlanInput,
        output_model=AbortOutcome,
        title="Abort a migration before contract",
        description=(
            "Undo expand (and the backfill with it) before contract: run the rollback steps in reverse order, then "
            "prove the affected tables' shape equals the one recorded before expand and the checksum of their "
            "original columns is unchanged. Needs confirm = the plan checksum. After contract, restore from backup."
        ),
        read_only=False,
        destructive=True,
        idempotent=False,
        open_world=True,
        cli_positional=("plan",),
        tags=("migrate",),
    ),
]
