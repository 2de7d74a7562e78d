"""The human side of a plan: which zero-downtime pattern it follows and what the application must do,
when to stop or roll back, the backup policy, and the pre-migration checklist.

Everything here is derived from the rendered steps (their ``needs_app_cooperation`` texts, lock
facts and ids), so a new operation module gets sensible advice without touching the planner.
"""

from __future__ import annotations

from typing import Any

from dmig.errors import InvalidInput
from dmig.plan.model import AppStep, BackupPolicy, ChecklistItem, Pattern, PlanStep, RollbackTrigger, TableFacts
from dmig.spec.models import MigrationSpec
from dmig.spec.steps import Finding


def _has(steps: list[PlanStep], slug: str) -> bool:
    return any(s.id.endswith("." + slug) or f".{slug}" in s.id for s in steps)


def pattern(spec: MigrationSpec, steps: list[PlanStep]) -> Pattern:
    expand = [s for s in steps if s.phase == "expand"]
    contract = [s for s in steps if s.phase == "contract"]
    sync = _has(expand, "sync_triggers")
    compat = any("compat" in s.id or "generated" in s.id for s in steps)
    techniques: list[str] = []
    app: list[AppStep] = [
        AppStep(
            when="before_expand",
            technique="expand_contract",
            action="Deploy nothing yet: expand only adds (nullable columns, triggers, views); the running code is "
            "unaffected.",
        )
    ]
    if sync:
        techniques += ["sync_triggers", "dual_write"]
        app.append(
            AppStep(
                when="after_expand",
                technique="dual_write",
                action="Old and new application versions may now run side by side: old code writes the old shape, "
                "new code may write the new shape (or both); the sync triggers keep the other shape in step. New "
                "code that writes both shapes must write consistent values.",
            )
        )
        techniques.append("shadow_traffic")
        app.append(
            AppStep(
                when="after_validate",
                technique="shadow_traffic",
                action="Shadow reads: for a sample of requests, read the new shape alongside the old and compare "
                "(or run the plan's validation rules); switch nothing until they agree.",
            )
        )
    coop = [s for s in steps if s.needs_app_cooperation and "none while" not in s.needs_app_cooperation]
    if coop or contract:
        techniques.append("feature_flag")
        app.append(
            AppStep(
                when="after_validate",
                technique="feature_flag",
                action="Switch reads (then writes) to the new shape behind a feature flag, so the switch can be "
                "turned off without a deployment; keep it on through a full traffic cycle before contract.",
            )
        )
    for s in coop:  # preconditions of contract, whichever phase states them
        app.append(
            AppStep(
                when="before_contract",
                technique="compat_view" if "compat" in (s.needs_app_cooperation or "") else "expand_contract",
                action=f"{s.id}: {s.needs_app_cooperation}",
            )
        )
    if compat:
        techniques.append("compat_view")
    summary = (
        "expand/contract: add the new shape next to the old"
        + (", keep both in sync with triggers" if sync else "")
        + ", backfill existing rows in key-ordered batches, validate, then (after the application has moved) "
        "contract: drop the old shape"
        + (" while a compatibility column/view keeps old readers working" if compat else "")
    )
    return Pattern(
        techniques=list(dict.fromkeys(techniques)),
        summary=summary,
        needs_app_cooperation=bool(coop or sync),
        app_steps=app,
    )


def rollback_triggers(monitoring: dict[str, Any]) -> list[RollbackTrigger]:
    out: list[RollbackTrigger] = []
    for rule, cfg in monitoring.items():
        if not isinstance(cfg, dict) or "action" not in cfg or not cfg.get("enabled", True):
            continue
        action = {"rollback": "abort", "pause": "pause"}.get(cfg["action"])
        if action:
            out.append(
                RollbackTrigger(
                    trigger=f"monitor: {rule} breached",
                    action=action,  # type: ignore[arg-type]
                    detail=f"{rule} ({cfg.get('severity')}) for {monitoring.get('breaches_to_trigger', 3)} consecutive "
                    f"samples: the backfill {'stops and the run should be aborted' if action == 'abort' else 'pauses'}",
                )
            )
    out += [
        RollbackTrigger(
            trigger="validation fails after the backfill",
            action="stop",
            detail="contract is refused; find the cause (validate's samples), fix and re-run, or abort_migration",
        ),
        RollbackTrigger(
            trigger="a step's lock retries are exhausted",
            action="stop",
            detail="nothing is half-applied (each step is atomic or idempotent); re-run later in a quieter period",
        ),
        RollbackTrigger(
            trigger="application errors after the switch, before contract",
            action="abort",
            detail="turn the feature flag off, then abort_migration: the old shape still holds every value",
        ),
        RollbackTrigger(
            trigger="application errors after contract",
            action="restore",
            detail="restore the affected tables from the verified backup taken just before contract",
        ),
    ]
    return out


def backup_policy(environment: str, waive_reason: str | None, tables: list[str]) -> BackupPolicy:
    if waive_reason is not None and not waive_reason.strip():
        raise InvalidInput("waive_backup needs a reason")
    if waive_reason and environment == "production":
        raise InvalidInput(
            "the backup before contract cannot be waived for a production database; plan with environment "
            "development or staging if this is not production",
            reason="production_backup_required",
        )
    return BackupPolicy(
        environment=environment,  # type: ignore[arg-type]
        required=not waive_reason,
        waived=bool(waive_reason),
        waiver_reason=waive_reason,
        tables=tables,
    )


def checklist(
    spec: MigrationSpec,
    tables: list[TableFacts],
    findings: list[Finding],
    sql_findings: list[Finding],
    backup: BackupPolicy,
    backup_state: tuple[bool | None, str],
    ledger_state: tuple[bool | None, str],
    estimates_measured: bool,
) -> list[ChecklistItem]:
    errors = [f for f in findings if f.severity == "error" and not f.ignored]
    warnings = [f for f in findings if f.severity == "warning" and not f.ignored]
    sql_errors = [f for f in sql_findings if f.severity == "error" and not f.ignored]
    missing = [t.name for t in tables if not t.exists]
    uncounted = [t.name for t in tables if t.exists and t.rows is None]
    estimated = [t.name for t in tables if t.exists and t.rows is not None and not t.rows_exact]
    items = [
        ChecklistItem(
            id="lint_clean",
            item="The spec's lint finds no errors (warnings reviewed)",
            satisfied=not errors,
            detail=f"{len(errors)} error(s), {len(warnings)} warning(s)"
            + (": " + "; ".join(f"{f.rule}: {f.message}" for f in errors[:5]) if errors else ""),
        ),
        ChecklistItem(
            id="sql_lint_reviewed",
            item="The SQL linter's findings on the generated statements are reviewed",
            satisfied=True if not sql_errors else None,
            detail=f"{len(sql_errors)} error finding(s) on generated SQL (see each step)"
            + (": " + "; ".join(f"{f.rule}: {f.message}" for f in sql_errors[:3]) if sql_errors else ""),
        ),
        ChecklistItem(
            id="timeouts_set",
            item="Lock and statement timeouts bound every step (the spec's, else the safe defaults)",
            satisfied=True,
            detail=f"lock_timeout_ms={spec.options.effective_lock_timeout_ms} "
            f"({'spec' if spec.options.lock_timeout_ms is not None else 'default'}), statement_timeout_ms="
            f"{spec.options.effective_statement_timeout_ms} "
            + (
                "(spec)"
                if spec.options.statement_timeout_ms is not None
                else "(default; longer steps get ten times their estimate)"
            ),
        ),
        ChecklistItem(
            id="tables_exist",
            item="Every table the spec changes exists",
            satisfied=not missing or all(op.op == "create_table" for op in spec.operations),
            detail="missing: " + ", ".join(missing) if missing else "all present",
        ),
        ChecklistItem(
            id="row_counts_known",
            item="Row counts of the affected tables are known",
            satisfied=not uncounted,
            detail=("unknown: " + ", ".join(uncounted) if uncounted else "known")
            + (f" (catalog estimates for {', '.join(estimated)})" if estimated else ""),
        ),
        ChecklistItem(
            id="estimates_measured",
            item="Duration estimates rest on measured throughput",
            satisfied=estimates_measured,
            detail="from expertise learnings or a live sample" if estimates_measured else "rules of thumb only",
        ),
        ChecklistItem(
            id="verified_backup",
            item="A verified backup of the affected tables exists (contract takes a fresh one)",
            satisfied=backup_state[0] if backup.required else True,
            detail=backup_state[1] if backup.required else f"waived: {backup.waiver_reason}",
        ),
        ChecklistItem(
            id="no_run_in_progress",
            item="No other run of this migration is in progress",
            satisfied=ledger_state[0],
            detail=ledger_state[1],
        ),
        ChecklistItem(
            id="app_ready",
            item="The application steps of the pattern are scheduled (deploy order, feature flag, old readers)",
            satisfied=None,
            detail="a human confirms: see the pattern's app_steps",
        ),
        ChecklistItem(
            id="monitoring",
            item="Someone watches the run (monitor thresholds in the plan's monitoring key)",
            satisfied=None,
            detail="pass a Monitor to run_plan, or run the monitor tool alongside",
        ),
    ]
    return items
