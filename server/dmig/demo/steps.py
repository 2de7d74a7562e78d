"""The story's steps, each a few MCP tool calls in the order the agent's workflow prescribes.

Every figure the demo prints or records comes from a tool's answer; every conclusion it draws
(a diff is clean, a validation passed, a backup verified) stops the story when it does not hold.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dmig.demo import facts, lines
from dmig.demo.databases import DRILL, SOURCE, TARGET, TARGET_ENV, Databases
from dmig.demo.project import DRILL_SPEC, SPEC, STORY_ID
from dmig.demo.rules import post_migration_rules
from dmig.demo.session import Session, StoryError

TABLES = ["users", "orders"]
Out = dict[str, Any]
# Known defect (reported): on PostgreSQL, rollback's restore of users fails while orders references it
# ("violates foreign key constraint fk_orders_0"), so there the drill copy holds users alone.
DRILL_WITHOUT_FK_CHILDREN = {"postgresql"}


@dataclass
class Story:
    s: Session
    project: Path
    dbs: Databases
    files: dict[str, str] = field(default_factory=dict)
    out: dict[str, Out] = field(default_factory=dict)

    @property
    def dialect(self) -> str:
        return self.dbs.dialect


# ------------------------------------------------------------------------------------------ plan


async def prepare(st: Story) -> None:
    s = st.s
    test_cmd = f"{sys.executable} -m pytest -q -p no:cacheprovider tests"
    init = await s.call("session_init", "session_init", {"test_command": test_cmd}, lines.session_init)
    _approve_test_command(st, init)
    await s.call("obtain_context", "obtain_context", {"story_id": STORY_ID}, lines.context)
    await s.call("status_update", "status_update", {"story_id": STORY_ID, "status": "in-progress"}, lines.status)
    await s.call("inspect (source)", "inspect", {"url": SOURCE}, lines.inspect)


def _approve_test_command(st: Story, init: Out) -> None:
    """A test command that arrives over MCP is only a proposal; the demo, standing in for the user at the
    terminal, approves it the way `dmig approve-test-command --yes` does. The project's tests read the
    migrated database from DMIG_TARGET_URL, which verify otherwise withholds (an `env:` reference names it)."""
    from dmig.harness import approval

    if (init.get("test_command_approval") or {}).get("approved"):
        raise StoryError("session_init over MCP approved its own test command; it must stay a proposal")
    done = approval.approve_current(st.project, [TARGET_ENV], via="demo")
    st.s.account.note(f"the user approves the test command (dmig approve-test-command --yes --pass-env {TARGET_ENV})")
    st.out["approval"] = done.model_dump()


async def move(st: Story) -> None:
    """The copy engine moves users and orders; diff then proves every row arrived unchanged.

    The copy's own verification is switched off because the diffs right after it compare the same
    checksums and, unlike it, name any differing key and write a report.
    """
    args = {"source_url": SOURCE, "target_url": TARGET, "tables": TABLES, "verify": False}
    copy = await st.s.call("copy users+orders", "copy", args, lines.copy)
    if not copy["ok"]:
        raise StoryError(f"copy did not finish cleanly: {copy['message']}")
    st.out["copy"] = copy
    for table in TABLES:
        await diff(st, f"diff {table} (moved)", table, TARGET, report=f"diff report ({table} moved)")


async def diff(st: Story, title: str, table: str, target: str, report: str | None = None, **extra: Any) -> Out:
    args = {"source_url": SOURCE, "target_url": target, "table": table, "report": report is not None, **extra}
    out = await st.s.call(title, "diff", args, lines.diff)
    if not out["equal"]:
        raise StoryError(f"{title} found differences: {lines.diff(out)}")
    if report:
        st.files[report] = out["report_path"]
    return out


async def plan(st: Story, spec: str, title: str = "", environment: str = "staging") -> Out:
    """lint_migration, plan_migration; the sealed plan is read back through its MCP resource."""
    s = st.s
    url = DRILL if spec == DRILL_SPEC else TARGET
    lint = await s.call(f"lint_migration{title}", "lint_migration", {"spec": spec, "url": url}, lines.lint)
    if lint["counts"].get("error"):
        raise StoryError("lint_migration found errors in the spec")
    out = await s.call(f"plan_migration{title}", "plan_migration", {"spec": spec, "environment": environment},
                       lines.plan)  # fmt: skip
    sealed = yaml.safe_load(await s.read_text(f"dmig://migrations/{out['migration_id']}/plan.yaml"))
    if sealed.get("checksum") != out["checksum"]:
        raise StoryError("the plan served as an MCP resource does not carry the checksum plan_migration returned")
    out["backfill_estimate"] = (sealed.get("backfills") or [{}])[0].get("estimate", {})
    out["throttle_ms"] = int(sealed["spec"]["options"].get("throttle_ms") or 0)
    est = out["backfill_estimate"]
    s.account.note(f"backfill estimate {est.get('seconds', 0):.2f}s [{est.get('source')}]: {est.get('detail', '')}")
    return out


# ------------------------------------------------------------------------------------------ build


async def protect(st: Story) -> None:
    """A verified backup of the tables the story touches, before anything changes them."""
    # SQLite: its online backup API (a consistent file copy); servers: the portable format, no client tools needed.
    fmt = "native" if st.dialect == "sqlite" else "portable"
    args = {"url": TARGET, "tables": TABLES, "format": fmt}
    backup = await st.s.call("backup (target)", "backup", args, lines.backup)
    verify = await st.s.call("verify_backup", "verify_backup", {"backup_id": backup["backup"]["backup_id"]},
                             lines.verify_backup)  # fmt: skip
    if not verify["passed"]:
        raise StoryError(f"verify_backup failed: {'; '.join(verify['problems'])}")
    st.out["backup"], st.out["verify_backup"] = backup, verify


async def execute(st: Story, planned: Out, title: str = "", *, monitor: bool = False) -> Out:
    args: dict[str, Any] = {"plan": planned["plan_path"], "confirm": planned["checksum"]}
    if monitor:
        args |= {"monitor": True, "baseline_seconds": 1.0}
    out = await st.s.call(f"run_migration{title}", "run_migration", args, lines.run)
    if not out["validation_passed"]:
        raise StoryError(f"run_migration's validation failed: {lines.run(out)}")
    report = st.project / "docs" / "migrations" / planned["migration_id"] / "report.html"
    if monitor and report.exists():
        st.files["monitor report"] = report.relative_to(st.project).as_posix()
    return out


async def validate(st: Story, title: str, report: str) -> Out:
    args = {"spec": post_migration_rules(), "report": True}
    out = await st.s.call(title, "validate", args, lines.validate)
    if not out["ok"]:
        failing = [str(c.get("name")) for c in out["checks"] if c.get("status") != "pass"]
        raise StoryError(f"{title} failed: {', '.join(failing)}")
    st.files[report] = out["report_path"]
    return out


async def contract(st: Story, planned: Out) -> None:
    args = {"plan": planned["plan_path"], "confirm": planned["checksum"]}
    st.out["complete"] = await st.s.call("complete_migration", "complete_migration", args, lines.complete)
    # PostgreSQL < 18 keeps old readers on a view (dmig_compat.users); elsewhere user_name is a generated column.
    compat = {"target_schema": "dmig_compat", "key": ["id"]} if st.dialect == "postgresql" else {}
    await diff(st, "diff users (old readers)", "users", TARGET, report="diff report (users)", **compat)
    await validate(st, "validate (after contract)", "validation report (after contract)")


# ------------------------------------------------------------------------------------------ close the story


async def close_story(st: Story, planned: Out) -> None:
    s = st.s
    verdict = await s.call("verify (project tests)", "verify", {"story_id": STORY_ID}, lines.verify)
    if verdict["test_status"] != "passing":
        raise StoryError(f"the project's tests fail after the migration: {verdict['output_summary'][-300:]}")
    await s.call("status_update", "status_update", {"story_id": STORY_ID, "status": "in-review"}, lines.status)
    message = {"type": "status", "story": STORY_ID, "text": _bus_text(st, planned)}
    await s.call("bus_append", "bus_append", message, lines.bus)
    await s.call("self_improve", "self_improve", _learning(st, planned), lines.learning)


def _bus_text(st: Story, planned: Out) -> str:
    backup = st.out["backup"]["backup"]["backup_id"]
    return (
        f"users/orders moved to the target and users.user_name split (plan {planned['migration_id']}, checksum "
        f"{planned['checksum'][:12]}...): backfill {facts.backfill_seconds(st.out['run']):.1f}s, validations and "
        f"diffs clean, tests passing. Roll back after contract: restore backup {backup} (verified); old readers keep "
        "user_name."
    )


def _learning(st: Story, planned: Out) -> Out:
    run, copy = st.out["run"], st.out["copy"]
    throttle = planned["throttle_ms"]
    backfill = facts.backfill_facts(run)
    contract_s = facts.step_seconds(st.out["complete"], "contract")
    measured = [
        *backfill,
        *facts.copy_facts(copy),
        *facts.backup_facts(st.dialect, st.out["backup"], st.out["verify_backup"]),
        {"dialect": st.dialect, "operation": "contract", "seconds": contract_s, "table": "users"},
    ]
    est, work = planned["backfill_estimate"], backfill[0]
    insight = (
        f"split_column users.user_name on {st.dialect} {planned['server_version']}: backfill {work['rows']:,} rows at "
        f"{work['rows_per_s']:,.0f} rows/s working time (batch {work.get('batch_size')}, throttle {throttle} ms; wall "
        f"{facts.backfill_seconds(run):.2f}s against an estimate of {est.get('seconds', 0):.2f}s from "
        f"{est.get('source')}); copy {copy['source_dialect']}->{copy['target_dialect']} at "
        f"{copy['totals']['rows_per_s']:,.0f} rows/s; contract {contract_s:.2f}s."
    )
    touched = [SPEC, planned["plan_path"], planned["runbook_path"], *st.files.values()]
    return {
        "insight": insight,
        "context": f"{STORY_ID}, plan {planned['migration_id']}, {st.dialect} {planned['server_version']}",
        "files_affected": list(dict.fromkeys(p for p in touched if p)),
        "measured": measured,
    }


# ------------------------------------------------------------------------------------------ recover


async def drill(st: Story, first: Out) -> facts.Estimates:
    """The rollback drill on a scratch copy, which also measures the learning.

    The pre-migration backup is restored into the drill database; the same migration is planned
    there (its estimate now from the first run's learning), run, contracted, then rolled back with
    ``rollback`` from the backup contract took; diffs prove the drill equals the source again.
    """
    s = st.s
    backup = st.out["backup"]["backup"]
    tables = ["users"] if st.dialect in DRILL_WITHOUT_FK_CHILDREN else TABLES
    if tables != TABLES:
        s.account.note(f"{st.dialect}: the drill copy holds users only (known limitation: rollback does not yet "
                       "restore a table that other tables reference by foreign key there)")  # fmt: skip
    args = {"backup_id": backup["backup_id"], "url": DRILL, "tables": tables}
    # The confirm token comes from the preview of exactly this restore (backup, database, tables).
    preview = await s.call("restore_backup (drill preview)", "restore_backup", {**args, "dry_run": True},
                           lines.restore_preview)  # fmt: skip
    args["confirm"] = preview["confirm_token"]
    restored = await s.call("restore_backup (drill)", "restore_backup", args, lines.restore)
    if not restored["all_checksums_ok"]:
        raise StoryError("the drill's restore does not match the backup's checksums")
    second = await plan(st, DRILL_SPEC, " (drill)", environment="development")
    run = await execute(st, second, " (drill)")
    confirmed = {"plan": second["plan_path"], "confirm": second["checksum"]}
    await s.call("complete_migration (drill)", "complete_migration", confirmed, lines.complete)
    reason = "rollback drill on the scratch copy: prove the after-contract recovery and time it"
    undone = await s.call("rollback (drill)", "rollback", {**confirmed, "reason": reason}, lines.rollback)
    if not undone["schema_identical"] or undone["checksums_ok"] is False:
        raise StoryError(f"rollback did not bring the drill back exactly: {lines.rollback(undone)}")
    for table in tables:
        await diff(st, f"diff {table} (drill)", table, DRILL)
    estimates = facts.Estimates.of(first["backfill_estimate"], st.out["run"], second["backfill_estimate"], run)
    measured = facts.backfill_facts(run)
    note = "rollback after contract from the contract's verified backup, proven by diff"
    measured.append(
        {"dialect": st.dialect, "operation": "rollback", "seconds": undone["seconds"], "table": "users", "notes": note}
    )
    learning = {
        "insight": f"Rollback drill of the users.user_name split on {st.dialect}: {estimates.line()}; rollback after "
        f"contract took {undone['seconds']:.2f}s and the drill copy diffed identical to the source.",
        "context": f"{STORY_ID}, plan {second['migration_id']} (rollback drill)",
        "files_affected": [DRILL_SPEC, second["plan_path"], second["runbook_path"]],
        "measured": measured,
    }
    await s.call("self_improve (drill)", "self_improve", learning, lines.learning)
    return estimates


async def served_resources(st: Story) -> None:
    t0 = time.perf_counter()
    uris = [str(r.uri) for r in (await st.s.client.list_resources()).resources]
    plans = [u for u in uris if u.endswith("/plan.yaml")]
    reports = [u for u in uris if u.startswith("dmig://reports/") or u.endswith("/report.html")]
    detail = f"{len(plans)} plans and {len(reports)} reports listed as MCP resources, e.g. {plans[0] if plans else '-'}"
    st.s.account.step("list_resources", detail, time.perf_counter() - t0)
