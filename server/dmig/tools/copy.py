"""copy: move tables between SQLite, PostgreSQL and MySQL/MariaDB (bulk, parallel, resumable)."""

from __future__ import annotations

from dmig.move.models import CopyRequest, CopySummary
from dmig.move.service import copy_database
from dmig.registry import ToolSpec

DESCRIPTION = """Copy tables from SOURCE to TARGET database (any pair of SQLite, PostgreSQL, MySQL/MariaDB).
Streams in batches with native bulk paths (PostgreSQL COPY, MySQL LOAD DATA LOCAL, SQLite prepared inserts),
splits big tables into key ranges copied by parallel worker processes, creates target tables with a documented
type mapping (docs/copy-type-mapping.md), builds indexes and foreign keys after the load and resets
auto-increment counters. Checkpoints live in the target (dmig_checkpoints) while the copy runs: re-running the
same command after any failure resumes with no duplicate and no missing row (restart=true starts over); a
finished, verified copy moves them to docs/migrations/copies/ and leaves no dmig_ table but dmig_rejects (only
when rows were rejected). Rows the target refuses go
to a JSON Lines reject file (up to reject_limit per table) without stopping the copy, but the copy only succeeds
(ok, exit 0) when no more than max_rejects rows (default 0) were rejected in all. Generated columns, CHECK
constraints, views and index kinds are carried where the target can hold them (verified); everything not
carried over (triggers, procedures, untranslatable checks/views/indexes, refused defaults) is named in
not_carried with the reason. Modes: create (default;
refuses non-empty target tables), truncate (DESTROYS target rows; needs the confirm token this tool returns),
append, incremental (only rows newer than a key or a timestamp, existing rows updated: the catch-up pass before
cutover). mapping per table: target_table, exclude_columns, filter [{column, op, value}], transforms [rename,
cast, split, concat, default, constant, drop, expr (structured expression evaluated by the source:
{"fn": "mul", "args": [{"col": "price"}, {"lit": 100}]})]. Afterwards row counts and a checksum diff are
compared (verify=false to skip). The summary gives per-table rows, bytes, seconds, rows/s, rejects and index/FK
build time: feed it to self_improve."""


def _exit_code(out: CopySummary) -> int:
    """0 copied and verified; 1 failed or differs; 3 copied, matched, but some column could not be compared."""
    if not out.ok:
        return 1
    return 3 if out.verification.not_compared else 0


def _render(out: CopySummary) -> str:
    lines = [f"copy {out.source_dialect} -> {out.target_dialect}  run {out.run_id}", out.message, ""]
    lines.append(f"{'table':28} {'state':7} {'rows':>12} {'rows/s':>10} {'secs':>8} {'idx+fk s':>8} {'rejects':>7}")
    for t in out.tables:
        lines.append(
            f"{t.table[:28]:28} {t.state:7} {t.rows:>12,} {t.rows_per_s:>10,.0f} {t.seconds:>8.2f} "
            f"{t.index_seconds + t.fk_seconds:>8.2f} {t.rejects:>7}"
        )
        if t.error:
            lines.append(f"    error: {t.error}")
        carried = {f"{o.kind} {o.name}" for o in out.not_carried if o.table == t.table}
        for note in t.notes:
            if not any(note.startswith(c) for c in carried):  # those are listed under "not carried over"
                lines.append(f"    note: {note}")
        for col, n in t.warnings.items():
            lines.append(f"    warning: {n} value(s) of {col} changed (e.g. zero date -> NULL)")
    if out.verification.ran:
        lines.append("")
        for c in out.verification.tables:
            counts = "n/a" if c.counts_match is None else ("ok" if c.counts_match else "MISMATCH")
            lines.append(
                f"verify {c.table[:28]:28} source {c.source_rows} target {c.target_rows} rejects {c.rejects} "
                f"counts {counts} checksum {c.checksum}"
            )
    if out.reject_file:
        lines.append(f"rejected rows: {out.reject_file}")
    if out.bookkeeping:
        lines.append(f"bookkeeping: {out.bookkeeping}")
    if out.totals.rejects > out.max_rejects:
        lines.append(
            f"FAILED: {out.totals.rejects} row(s) rejected, the budget is {out.max_rejects} "
            "(--max-rejects N to accept up to N rejected rows)"
        )
    if out.not_carried:
        lines.append("")
        lines.append(f"not carried over ({len(out.not_carried)}):")
        for o in out.not_carried:
            where = f"{o.table}." if o.table else ""
            lines.append(f"  {o.kind} {where}{o.name}: {o.reason}")
    return "\n".join(lines)


TOOLS = [
    ToolSpec(
        name="copy",
        func=copy_database,
        input_model=CopyRequest,
        output_model=CopySummary,
        title="Copy data between databases",
        description=DESCRIPTION,
        read_only=False,
        destructive=True,
        idempotent=False,
        open_world=True,
        cli_positional=("source_url", "target_url"),
        cli_exit_code=_exit_code,
        cli_render=_render,
        tags=("move",),
    )
]
