"""workload: application traffic through a table's old and new shape, for zero-downtime rehearsals.

Thin adapter over dmig.workload (see dmig.workload.runner for the design). It writes only rows it
inserts itself (and deletes them at the end unless cleanup is off), so it is not destructive.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from dmig.context import RunContext
from dmig.fields import FEW_MAX, Identifier, Url, Word
from dmig.models import Input, Output
from dmig.registry import ToolSpec
from dmig.workload.locks import LockWaits
from dmig.workload.report import WorkloadReport
from dmig.workload.runner import DEFAULT_MIX
from dmig.workload.service import rehearse

_OPS = ", ".join(DEFAULT_MIX)


class WorkloadInput(Input):
    url: Url = Field(description="Database URL, or env:VARNAME holding it (keeps the password out of the chat).")
    table: Identifier = Field(description="Table the traffic goes to, e.g. users.")
    schema_name: Identifier | None = Field(
        default=None, description="Schema (PostgreSQL) or database (MySQL) of the table."
    )
    key: Identifier = Field(default="id", description="Integer key column (point reads, range reads, own rows).")
    old_column: Identifier = Field(default="user_name", description="The column old application code uses.")
    new_columns: list[Identifier] = Field(
        default=["first_name", "last_name"], min_length=2, max_length=2,
        description="The two columns new code uses (written once they exist and the sync triggers are in place).",
    )  # fmt: skip
    separator: Word = Field(default=" ", description="split_column's separator (to check what new code reads).")
    compat_schema: Identifier | None = Field(
        default="dmig_compat", description="PostgreSQL schema of the compat view old readers use once it exists."
    )
    compat_view: Identifier | None = Field(
        default=None, description="MySQL/SQLite compat view (default <table>_compat)."
    )
    seconds: float = Field(default=30, gt=0, le=3600, description="How long to run (the run always ends by itself).")
    max_ops: int | None = Field(default=None, ge=1, description="Stop after this many requests.")
    threads: int = Field(default=8, ge=1, le=64, description="Client threads, one connection each.")
    rate: float | None = Field(default=200, gt=0, description="Target requests/s over all threads; null: no limit.")
    mix: Annotated[dict[Word, float], Field(max_length=FEW_MAX)] | None = Field(
        default=None, description=f"Weights per request class ({_OPS}); classes the phase forbids are skipped."
    )
    phase: Literal["auto", "old", "expanding", "expanded", "contracted"] = Field(
        default="auto", description="auto: read the schema phase from the catalog; else use this one."
    )
    retire_old_writers: bool = Field(default=False, description="Old code only reads (the new release is out).")
    verify_existing: bool = Field(
        default=True,
        description="Check reads of existing rows against a snapshot taken at start; turn off when other writers "
        "change those rows meanwhile.",
    )
    cleanup: bool = Field(default=True, description="Delete the rows the workload inserted when it ends.")
    key_start: int | None = Field(default=None, description="First key of the workload's own rows (default max+10M).")
    op_timeout_s: float = Field(default=10, gt=0, le=600, description="Statement timeout of each request (s).")
    sample_locks: bool = Field(default=True, description="Sample the server's lock waits during the run.")
    seed: int = Field(default=1, description="Random seed (same seed, same request sequence per thread).")


class WorkloadOutput(Output):
    report: WorkloadReport
    locks: LockWaits | None = None


def workload_tool(inp: WorkloadInput, rc: RunContext) -> WorkloadOutput:
    rc.require_writable("workload")
    report, locks = rehearse(
        inp.url, inp.table, seconds=inp.seconds, sample_locks=inp.sample_locks, progress=rc.progress,
        schema=inp.schema_name, key=inp.key, old_column=inp.old_column, new_columns=tuple(inp.new_columns),
        separator=inp.separator, compat_schema=inp.compat_schema, compat_view=inp.compat_view,
        threads=inp.threads, rate=inp.rate, mix=inp.mix, max_ops=inp.max_ops, phase=inp.phase,
        verify_existing=inp.verify_existing, cleanup=inp.cleanup, key_start=inp.key_start,
        op_timeout_s=inp.op_timeout_s, seed=inp.seed, old_writers=not inp.retire_old_writers,
    )  # fmt: skip
    return WorkloadOutput(report=report, locks=locks)


def _render(out: WorkloadOutput) -> str:
    r = out.report
    lines = [f"{r.ops:,} requests in {r.seconds:g} s ({r.ops_per_s:g}/s) on {r.table}, {r.threads} threads: "
             f"{r.failed} failed"]  # fmt: skip
    lines += [f"  {s.op:16} n={s.count:<7} p50 {s.p50_ms} ms  p95 {s.p95_ms} ms  p99 {s.p99_ms} ms  failed {s.failed}"
              for s in [r.overall, *r.by_op]]  # fmt: skip
    lines += [f"  error {e.op}: {e.error} x{e.count}: {e.sample}" for e in r.errors]
    if out.locks is not None:
        lines.append(f"  lock waits: {out.locks.waiter_seconds} session-seconds, max {out.locks.max_waiters} waiting")
    return "\n".join(lines)


TOOLS = [
    ToolSpec(
        name="workload",
        func=workload_tool,
        input_model=WorkloadInput,
        output_model=WorkloadOutput,
        title="Application workload for a zero-downtime rehearsal",
        description=(
            "Run bounded application traffic against a table while you rehearse a migration: N client threads "
            "(own connection each) issue point reads, range reads, inserts and updates through the OLD shape "
            "(old_column) and, once the new columns and their sync triggers exist, the NEW shape; rate limited; "
            "every answer is checked (read-your-write, snapshot of existing rows). Returns p50/p95/p99 per request "
            "class, failed requests by error class and sampled lock waits. Writes only rows it inserts itself and "
            "deletes them at the end (cleanup)."
        ),
        read_only=False,
        destructive=False,
        idempotent=False,
        open_world=True,
        cli_positional=("url", "table"),
        cli_exit_code=lambda out: 1 if out.report.failed else 0,
        cli_render=_render,
    )
]
