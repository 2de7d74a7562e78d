"""rollback: take a migration back to its pre-migration state, wherever it stands, and prove it.

A thin adapter over ``dmig.execute.rollback`` (the procedure, proofs and figures live there).
"""

from __future__ import annotations

from pydantic import Field

from dmig.context import RunContext
from dmig.execute.rollback import RollbackOutcome, rollback
from dmig.fields import FreeText, Path, StoryId, Token, Url
from dmig.models import Input
from dmig.plan import load_plan, resolve_plan
from dmig.registry import ToolSpec


class RollbackInput(Input):
    plan: Path = Field(description="Plan file (docs/migrations/<id>/plan.yaml), its folder, or the migration id.")
    confirm: Token = Field(
        description="The plan's checksum (plan_migration's output, runbook.md): proof you reviewed this exact plan. "
        "It is re-derived from the stored plan and must match."
    )
    url: Url | None = Field(
        default=None,
        description="Target database if the plan stores no password-free way to reach it (prefer env:VARNAME); "
        "must be the database the plan was made for.",
    )
    story_id: StoryId | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,99}$",
        description="AgileFlow story (e.g. US-0042) to move to blocked with the reason; checked before anything runs.",
    )
    reason: FreeText | None = Field(
        default=None, description="Why the migration is rolled back (bus message, story history)."
    )


def rollback_tool(inp: RollbackInput, rc: RunContext) -> RollbackOutcome:
    rc.require_writable("rollback")
    path = resolve_plan(rc, inp.plan)
    plan = load_plan(path, str(path.relative_to(rc.project_dir.resolve())), rc.project_dir)
    return rollback(
        plan, confirm=inp.confirm, project_dir=rc.project_dir, url=inp.url, story_id=inp.story_id,
        reason=inp.reason, rc=rc, progress=rc.progress,
    )  # fmt: skip


def rollback_exit(out: RollbackOutcome) -> int:
    """0: back exactly as before the migration; 1: rolled back, but the shape or a checksum differs."""
    return 0 if out.schema_identical and out.checksums_ok is not False else 1


def render_rollback(out: RollbackOutcome) -> str:
    lines = [
        f"migration {out.migration_id}: rolled back from {out.from_state} ({out.procedure}) in {out.seconds:.2f} s"
    ]
    if out.backup:
        lines.append(f"  backup {out.backup.backup_id} ({out.backup.label or 'no label'}, {out.backup.created_at}, "
                     f"{out.backup.found_by})")  # fmt: skip
    if out.restore:
        lines.append(f"  writes stopped by {out.restore.lock}: {out.restore.seconds:.2f} s")
        for t in out.restore.tables:
            lines.append(f"  restored {t.table}: {t.rows:,} rows in {t.seconds:.2f} s, checksum "
                         f"{'= backup' if t.checksum_ok else 'DIFFERS'} ({t.actual})")  # fmt: skip
            lines += [f"    {r}" for r in t.reshaped]
    lines += [f"  undo {s.id}: {s.status}" for s in out.undo_steps]
    for s in out.shape:
        verdict = "identical to before" if s.identical else "DIFFERS: " + "; ".join(s.differences)
        lines.append(f"  shape of {s.table}: {verdict}")
    if out.data_loss_warning:
        lines.append(f"  DATA WRITTEN AFTER THE BACKUP: {out.data_loss_warning}")
    if out.story:
        lines.append(
            f"  story {out.story.get('story_id')}: {out.story.get('from_status')} -> {out.story.get('to_status')}"
        )
    lines += [f"  note: {n}" for n in out.notes]
    lines.append(f"next: {out.next_action}")
    return "\n".join(lines)


TOOLS = [
    ToolSpec(
        name="rollback",
        func=rollback_tool,
        input_model=RollbackInput,
        output_model=RollbackOutcome,
        title="Roll a migration back to its pre-migration state",
        description=(
            "Run the plan's rollback for wherever the migration stands (read from the ledger). Before contract: undo "
            "expand and the backfill, proven by checksum. After contract: stop writes, restore the affected tables "
            "from the verified backup taken before contract (refused without one), give them back their exact "
            "pre-migration shape, check their checksums against the backup manifest before committing, and report "
            "how many changes written after the backup were discarded (they are lost by design). Records state "
            "rolled_back in the ledger, announces it on the bus and, with story_id, moves the story to blocked. Needs "
            "confirm = the plan checksum."
        ),
        read_only=False,
        destructive=True,
        idempotent=False,
        open_world=True,
        cli_positional=("plan",),
        cli_exit_code=rollback_exit,
        cli_render=render_rollback,
        tags=("migrate",),
    ),
]
