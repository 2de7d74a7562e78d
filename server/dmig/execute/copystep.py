"""move_table's copy step: the executor hands the step's CopyRequest to the copy engine (dmig.move).

The step has no SQL; it is a data move with its own guarantees (batches by key, checkpoints in
the target, rejects, verification), so the executor only has to decide one thing: a step the
ledger has not seen in this run starts the copy afresh (``restart``: checkpoints left by an earlier,
aborted run would otherwise say "already complete" for a target that abort dropped), while a step
found running or failed in this run resumes the copy from its checkpoints. Any rejected row or a
verification that does not pass fails the step: validation gates contract on exact counts, and
a move that silently left rows behind must not get that far.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from dmig.context import RunContext
from dmig.errors import DatabaseError
from dmig.move.models import CopyRequest, CopySummary, TableMapping
from dmig.move.service import copy_database
from dmig.plan.model import PlanStep


def run_copy_step(engine: sa.Engine, step: PlanStep, *, fresh: bool, project_dir: Path | None) -> CopySummary:
    request = step.copy_request
    if request is None:
        raise DatabaseError(f"step {step.id} is a copy step without a copy request", reason="malformed_plan")
    source = engine.url.render_as_string(hide_password=False)
    summary = copy_database(
        CopyRequest(
            source_url=source,
            target_url=request.target_url or source,
            tables=[request.source_table],
            source_schema=request.source_schema,
            target_schema=request.target_schema,
            mode="create",
            batch_size=request.batch_size,
            restart=fresh,
            mapping={request.source_table: TableMapping(target_table=request.target_table)},
        ),
        RunContext(project_dir=project_dir or Path.cwd()),
    )
    if not summary.ok or summary.totals.rejects:
        problems = [t.error for t in summary.tables if t.error] + [
            f"{c.table}: checksum {c.checksum} ({c.detail})"
            for c in summary.verification.tables
            if c.checksum == "differ"
        ]
        raise DatabaseError(
            f"copy step {step.id}: {summary.message}" + (f" ({'; '.join(problems)[:400]})" if problems else ""),
            reason="copy_failed",
            rejects=summary.totals.rejects,
            reject_file=summary.reject_file,
        )
    return summary
