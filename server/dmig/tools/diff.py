"""diff: checksum comparison of one table across two databases (the thin adapter over dmig.diff).

Read-only towards both databases. Writing the Markdown report is a project write, so it is off
by default (``report=true`` asks for it, and is refused in read-only mode); the CLI prints the
same summary as a table either way.
"""

from __future__ import annotations

from pydantic import Field

from dmig.context import RunContext
from dmig.diff import DiffResult, WhereClause, diff_table
from dmig.diff.report import to_terminal, write_report
from dmig.fields import Identifier, Items, Names, Url
from dmig.models import Input
from dmig.registry import ToolSpec


class DiffInput(Input):
    source_url: Url = Field(description="Source database URL, or env:VARNAME holding it.")
    target_url: Url = Field(description="Target database URL, or env:VARNAME holding it.")
    table: Identifier = Field(
        description="Table to compare (on the source; on the target too unless target_table is set)."
    )
    key: Names | None = Field(
        default=None,
        description="Key columns (default: the source's primary key; a table without one is compared as a multiset).",
    )
    columns: Names | None = Field(
        default=None, description="Columns to compare (default: every column present on both sides)."
    )
    target_table: Identifier | None = Field(default=None, description="Table name on the target, if it was renamed.")
    schema_name: Identifier | None = Field(default=None, description="Source schema (PostgreSQL) or database (MySQL).")
    target_schema: Identifier | None = Field(default=None, description="Target schema or database.")
    where: Items[WhereClause] | None = Field(
        default=None,
        description='Row filter applied to both sides, ANDed: [{"column": "created_at", "op": ">=", "value": '
        '"2024-01-01"}]; ops = != < <= > >= in not_in is_null is_not_null. Values are bound, never SQL.',
    )
    limit: int = Field(default=100, ge=0, description="Stop after this many differences; lists hold at most this many.")
    segments: int | None = Field(
        default=None, ge=1, le=100_000, description="Initial segment count (default: about one per 16k rows)."
    )
    bisection_factor: int = Field(default=8, ge=2, le=256, description="Pieces a mismatching segment is cut into.")
    download_threshold: int = Field(
        default=2048, ge=2, description="Mismatching segments with at most this many rows are compared row by row."
    )
    threads: int = Field(default=1, ge=1, le=16, description="Connections (worker threads) per side.")
    statement_timeout_s: float = Field(default=600.0, gt=0, description="Per-query timeout, in seconds.")
    report: bool = Field(
        default=False,
        description="Also write a Markdown report to docs/migrations/reports/ in the project (not in read-only mode).",
    )


def _exit_code(out: DiffResult) -> int:
    """0 equal; 1 different; 3 equal on the compared columns but some column could not be compared."""
    if out.equal:
        return 0
    return 3 if out.equal_on_compared and out.not_compared else 1


def diff(inp: DiffInput, rc: RunContext) -> DiffResult:
    if inp.report:
        rc.require_writable("writing the diff report")
    result = diff_table(
        inp.source_url,
        inp.target_url,
        inp.table,
        key=inp.key,
        columns=inp.columns,
        target_table=inp.target_table,
        limit=inp.limit,
        schema=inp.schema_name,
        target_schema=inp.target_schema,
        where=inp.where,
        segments=inp.segments,
        bisection_factor=inp.bisection_factor,
        download_threshold=inp.download_threshold,
        threads=inp.threads,
        statement_timeout_s=inp.statement_timeout_s,
        progress=rc.progress,
    )
    if inp.report:
        path = write_report(result, rc.project_dir, rc.project_path)
        result.report_path = str(path.relative_to(rc.project_dir.resolve()))
    return result


TOOLS = [
    ToolSpec(
        name="diff",
        func=diff,
        input_model=DiffInput,
        output_model=DiffResult,
        title="Diff a table across databases",
        description=(
            "Compare one table on two databases (SQLite, PostgreSQL, MySQL/MariaDB, any pair) by checksums computed "
            "inside each database: segments of the key range, bisection of the ones that differ, rows fetched only for "
            "small mismatching segments. Returns the keys missing in the target, extra in the target and changed "
            "(with the differing columns), bounded by `limit`. Keys are listed as arrays of key values ([[1], [7]]). "
            "Tables without a key are compared as multisets of rows. Read-only on both databases."
        ),
        read_only=True,
        destructive=False,
        idempotent=True,
        open_world=True,
        cli_positional=("source_url", "target_url"),
        cli_exit_code=_exit_code,
        cli_render=to_terminal,
        tags=("validate",),
    )
]
