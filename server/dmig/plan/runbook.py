"""The human runbook (runbook.md) rendered from a plan: what happens, in which order, what it blocks,
how long it should take, what the application must do, and how to go back at every point."""

from __future__ import annotations

from dmig.plan.model import Plan, PlanStep

_MARK = {True: "yes", False: "**NO**", None: "to confirm"}


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _sql(statements: list[str]) -> list[str]:
    if not statements:
        return ["_(rendered from the live schema just before the step runs)_", ""]
    return ["```sql", *[s.rstrip() + ";" for s in statements], "```", ""]


def _seconds(value: float) -> str:
    if value >= 1e12:
        return "unbounded"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:,.1f} s" if value < 120 else f"{value / 60:,.1f} min"


def _step(step: PlanStep) -> list[str]:
    out = [
        f"#### `{step.id}`: {step.description}",
        "",
        f"- Lock: **{step.lock}** ({step.lock_risk} risk): blocks {step.blocks}; {step.lock_reason}",
        f"- Estimated: {_seconds(step.estimate.seconds)} ({step.estimate.source}: {step.estimate.detail}); others "
        f"wait ~{_seconds(step.blocking_seconds)}, worst case {_seconds(step.worst_case_blocking_seconds)}",
        f"- Runs {'in one transaction' if step.transactional else 'in autocommit, statement by statement'}"
        + ("; retried after a lock timeout" if step.retry_on_lock_timeout else ""),
    ]
    if step.lock_timeout_ms is not None:
        out.append(f"- Timeouts: lock {step.lock_timeout_ms} ms per attempt, statement {step.statement_timeout_ms} ms")
    if step.destructive:
        out.append("- **Destructive**: needs the plan checksum as confirmation")
    if step.needs_app_cooperation:
        out.append(f"- Application: {step.needs_app_cooperation}")
    if step.rollback:
        out.append(f"- Undone by: {', '.join(f'`{r}`' for r in step.rollback)}")
    for f in step.findings:
        flag = " (ignored: " + (f.ignore_reason or "") + ")" if f.ignored else ""
        out.append(f"- Lint {f.severity} `{f.rule}`: {f.message}{flag}")
    return [*out, "", *_sql(step.sql)]


def _header(plan: Plan) -> list[str]:
    t = plan.target
    est = plan.estimated_seconds
    return [
        f"# Migration `{plan.id}`: runbook",
        "",
        plan.spec.description or "",
        "",
        f"- Plan checksum (the `confirm` value): `{plan.checksum}`",
        f"- Planned: {plan.created_at} against {t.url} ({t.flavor} {t.server_version})"
        + (f", reached as `{t.ref}`" if t.ref and t.ref.startswith(("env:", "$")) else ""),
        f"- Pattern: {plan.pattern.summary}",
        f"- Estimated: expand {_seconds(est.get('expand', 0))}, backfill {_seconds(est.get('backfill', 0))}, "
        f"contract {_seconds(est.get('contract', 0))}",
        f"- Downtime: {plan.downtime.verdict}",
        *(
            [
                f"- Timeouts: lock {plan.timeouts['lock_timeout_ms']} ms ({plan.timeouts['lock_timeout_source']}), "
                f"statement {plan.timeouts['statement_timeout_ms']} ms ({plan.timeouts['statement_timeout_source']});"
                f" applied as {plan.timeouts.get('applied_as', '')}"
            ]
            if plan.timeouts
            else []
        ),
        "",
    ]


def _checklist(plan: Plan) -> list[str]:
    out = ["## Before you start", "", "| | Check | Detail |", "|---|---|---|"]
    out += [f"| {_MARK[c.satisfied]} | {_cell(c.item)} | {_cell(c.detail)} |" for c in plan.checklist]
    return [*out, ""]


def _app(plan: Plan) -> list[str]:
    out = ["## Application steps", "", f"Techniques: {', '.join(plan.pattern.techniques) or 'none'}.", ""]
    out += [
        f"{i}. **{a.when.replace('_', ' ')}** ({a.technique}): {a.action}"
        for i, a in enumerate(plan.pattern.app_steps, 1)
    ]
    return [*out, ""]


def _backfills(plan: Plan) -> list[str]:
    out = ["## Phase 2: backfill", ""]
    if not plan.backfills:
        return [*out, "No data to backfill.", ""]
    for b in plan.backfills:
        p = b.backfill
        out += [
            f"### `{p.step_id}` on `{p.table}`",
            "",
            f"- Rows: {b.rows if b.rows is not None else 'unknown'} ({b.rows_method or 'n/a'}); batches of "
            f"{p.batch_size} by key ({', '.join(p.key_columns)}), {p.throttle_ms} ms apart, bounded by the largest key "
            "at start (later rows are kept in sync by the triggers)",
            f"- Estimated: {_seconds(b.estimate.seconds)} ({b.estimate.source}: {b.estimate.detail})",
            "- Checkpointed in `dmig_backfill_checkpoints` in the same transaction as each batch: a killed run resumes",
            f"- Undo: {b.undo}",
            "",
            *_sql([p.update_range_sql]),
        ]
    return out


def _validation(plan: Plan) -> list[str]:
    out = ["## Phase 3: validate", "", "The executor runs these after the backfill and again before contract:", ""]
    for c in plan.validation.checks:
        out += [f"- `{c.id}` ({c.severity}): {c.description}; expect {c.expected}", "", *_sql([c.sql])]
    if plan.validation.rules:
        out += [f"A second opinion with the validate tool: `validate` with the plan's `validation.rules` "
                f"({len(plan.validation.rules['checks'])} rule(s)). {plan.validation.note}", ""]  # fmt: skip
    return out


def _rollback(plan: Plan) -> list[str]:
    out = ["## Rollback", "", "Before contract: `abort_migration` (confirm = the checksum) runs these, then proves the "
           "shape and the original columns' checksum are restored:", ""]  # fmt: skip
    for s in plan.rollback:
        out += [f"- `{s.id}`: {s.description}", "", *_sql(s.sql)]
    out += ["After contract: " + plan.after_contract_rollback, ""]
    out += ["### Triggers", "", "| When | Action | Detail |", "|---|---|---|"]
    out += [f"| {_cell(r.trigger)} | {r.action} | {_cell(r.detail)} |" for r in plan.rollback_triggers]
    return [*out, ""]


def _commands(plan: Plan) -> list[str]:
    plan_file = f"docs/migrations/{plan.id}/plan.yaml"
    return [
        "## Commands",
        "",
        "```sh",
        f"dmig run-migration {plan_file} --confirm {plan.checksum} --dry-run   # print every statement",
        f"dmig run-migration {plan_file} --confirm {plan.checksum}             # expand + backfill + validate",
        f"dmig migration-status {plan_file}",
        f"dmig complete-migration {plan_file} --confirm {plan.checksum}        # contract",
        f"dmig abort-migration {plan_file} --confirm {plan.checksum}           # before contract only",
        "```",
        "",
    ]


def runbook_markdown(plan: Plan) -> str:
    lines = [*_header(plan), *_checklist(plan), *_app(plan), "## Phase 1: expand", ""]
    for s in plan.phase_steps("expand"):
        lines += _step(s)
    lines += _backfills(plan)
    lines += _validation(plan)
    lines += ["## Phase 4: contract (complete_migration)", "",
              f"Takes a verified backup of {', '.join(plan.backup.tables) or 'the affected tables'} first"
              + (f" (waived: {plan.backup.waiver_reason})" if plan.backup.waived else "") + ".", ""]  # fmt: skip
    for s in plan.phase_steps("contract"):
        lines += _step(s)
    lines += ["## Downtime reasoning", "", *[f"- {r}" for r in plan.downtime.reasoning], ""]
    lines += _rollback(plan)
    lines += _commands(plan)
    return "\n".join(lines).rstrip() + "\n"
