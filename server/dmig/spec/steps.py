"""What an operation hands to the planner and the executor: steps, backfill plans, checks, findings.

These are plain data (pydantic) so a plan can be shown to a human, stored in the ledger,
compared between runs and replayed by an executor that knows nothing about the operation that
produced it. Every SQL string in them was rendered for one dialect and server version.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Phase = Literal["expand", "backfill", "validate", "contract", "rollback"]
PHASES: tuple[Phase, ...] = ("expand", "backfill", "validate", "contract", "rollback")
Risk = Literal["low", "medium", "high"]
Severity = Literal["error", "warning", "info"]


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CopyRequest(_Data):
    """A data move the executor hands to the copy engine (dmig.move) instead of running SQL."""

    source_table: str
    source_schema: str | None = None
    target_table: str
    target_schema: str | None = None
    target_url: str | None = Field(default=None, description="Target database (URL or env:VAR); None = same database.")
    key: list[str] = Field(description="Key columns the copy engine checkpoints on.")
    batch_size: int
    create_target: bool = Field(description="Let the copy engine create the target table from the source's shape.")


class Step(_Data):
    """One unit of schema work the executor runs, records in the ledger and can retry on lock timeout.

    Execution contract: the statements in ``sql`` run in order on ONE connection. With
    ``transactional`` they run inside a single transaction (all or nothing); without it each runs
    in autocommit (needed for CREATE INDEX CONCURRENTLY, SQLite PRAGMA foreign_keys, or a SQLite
    table rebuild that brackets its own BEGIN/COMMIT). Session settings from
    ``dmig.spec.context.session_settings`` (lock_timeout, statement_timeout) go first.
    """

    id: str = Field(description="Stable within a spec: op<index>.<phase>.<n>.<slug>; the ledger keys on it.")
    op_index: int = Field(description="Index of the operation in the spec's operations list.")
    op: str = Field(description="Operation kind, e.g. split_column.")
    phase: Phase
    kind: Literal["sql", "copy"] = Field(default="sql", description="'copy' steps carry a CopyRequest, not SQL.")
    description: str
    sql: list[str] = Field(default_factory=list, description="Exact statements for this dialect, run in order.")
    copy_request: CopyRequest | None = None
    transactional: bool = Field(default=True, description="False: run each statement in autocommit.")
    lock: str = Field(description="Strongest lock taken, in the database's own terms.")
    lock_risk: Risk
    lock_reason: str = Field(description="Why the lock risk is what it is (duration, what it blocks).")
    rewrites_table: bool = Field(default=False, description="Rewrites or copies the whole table (time ~ table size).")
    destructive: bool = Field(
        default=False, description="Loses data or breaks old readers/writers: needs confirmation."
    )
    needs_app_cooperation: str | None = Field(
        default=None, description="What the application must do (dual write, stop reading a column, feature flag)."
    )
    rollback: list[str] = Field(default_factory=list, description="Ids of the rollback steps that undo this step.")
    retry_on_lock_timeout: bool = Field(
        default=True, description="Safe to retry after a lock_timeout error (the statements are idempotent or atomic)."
    )
    requires_live_schema: bool = Field(
        default=False,
        description="The SQL depends on the live table definition (SQLite table rebuild); re-render with a "
        "context built from the database before running. sql is empty when rendered without one.",
    )


class BackfillPlan(_Data):
    """Declarative data work: the executor walks ``key_columns`` in batches, bounded by the range seen at start.

    Binds: ``lo_<i>``/``hi_<i>`` for key part i. The executor's loop (see docs/migration-spec.md):
    ``hi_max = key_range_sql`` once at start; then repeatedly ``bound = next_bound_sql`` (first batch:
    ``next_bound_from_start_sql``) with ``:skip`` = batch size - 1, capped at ``hi_max``; run
    ``update_range_sql`` (first batch: ``update_from_start_sql``) for ``(lo, bound]``, checkpoint
    ``bound`` in the same transaction, sleep ``throttle_ms``; stop when no bound is left.
    ``where_sql`` selects only rows that still need work, so a re-run after a crash is idempotent.
    """

    op_index: int
    step_id: str = Field(description="Ledger/checkpoint id of this backfill.")
    table: str
    schema_: str | None = Field(default=None, alias="schema")
    key_columns: list[str]
    set_sql: dict[str, str] = Field(description="column -> compiled SQL expression assigned to it.")
    where_sql: str = Field(description="Compiled predicate selecting rows that still need work.")
    update_all_sql: str = Field(description="One UPDATE over the whole table (tiny tables, tests).")
    update_range_sql: str = Field(description="UPDATE for keys in (lo, hi]; binds lo_i, hi_i.")
    update_from_start_sql: str = Field(description="UPDATE for keys <= hi; binds hi_i.")
    key_range_sql: str = Field(description="SELECT of the largest key at start (one row, one column per key part).")
    next_bound_sql: str = Field(
        description="Upper key of the next batch after lo (binds lo_i, skip = batch-1); no row = last batch."
    )
    next_bound_from_start_sql: str = Field(description="Upper key of the first batch (binds skip = batch-1).")
    remaining_sql: str = Field(description="SELECT COUNT(*) of rows still needing work (progress, validation).")
    batch_size: int
    throttle_ms: int

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ValidationCheck(_Data):
    """A query whose single scalar result must equal ``expected`` before ``gates`` may run."""

    id: str
    op_index: int
    description: str
    sql: str = Field(description="A SELECT returning one row with one numeric column.")
    params: dict[str, Any] = Field(default_factory=dict, description="Bind parameters for sql.")
    expected: int = 0
    gates: Phase = Field(description="The phase that must not start until this check passes.")
    severity: Severity = "error"
    rule: dict[str, Any] | None = Field(
        default=None, description="The same check in dmig.validate's rule vocabulary, when one fits."
    )


class Finding(_Data):
    """One lint result."""

    rule: str
    severity: Severity
    message: str
    safe_alternative: str = ""
    op_index: int | None = Field(default=None, description="Operation index (spec lint).")
    line: int | None = Field(default=None, description="1-based line of the statement (SQL lint).")
    statement: str | None = Field(default=None, description="Excerpt of the offending statement.")
    ignored: bool = Field(default=False, description="Suppressed by an ignore with a reason.")
    ignore_reason: str | None = None
