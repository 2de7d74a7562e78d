"""The pydantic models at the boundary of ``copy``: the request (what an agent fills in) and the summary.

The summary is what the self-improve step learns from, so it carries the dialects, the measured
throughput per table and the time spent building indexes and foreign keys, not only row counts.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from dmig.fields import ByName, Identifier, Items, JsonData, JsonObject, Names, Path, Scalar, Token, TypeName, Url, Word
from dmig.models import Input, Output

Mode = Literal["create", "truncate", "append", "incremental"]


class Rename(Input):
    """Rename a column in the target."""

    op: Literal["rename"]
    column: Identifier = Field(description="Source (or earlier transformed) column name.")
    to: Identifier = Field(description="New target column name.")


class Cast(Input):
    """Convert a column's values to another type in Python; a value that does not convert is rejected."""

    op: Literal["cast"]
    column: Identifier = Field(description="Column to convert.")
    to: TypeName = Field(description="Target type: text, varchar(n), integer, bigint, decimal(p,s), boolean, date, ...")


class Split(Input):
    """Split one text column into several (e.g. user_name → first_name, last_name)."""

    op: Literal["split"]
    column: Identifier = Field(description="Column to split.")
    into: Names = Field(min_length=2, description="New column names; the last one takes the remainder.")
    separator: Word = Field(default=" ", min_length=1, description="Separator (split at most len(into)-1 times).")
    keep_source: bool = Field(default=False, description="Keep the original column in the target too.")


class Concat(Input):
    """Join several columns into one text column (NULL parts are skipped; all NULL gives NULL)."""

    op: Literal["concat"]
    columns: Names = Field(min_length=1, description="Columns to join, in order.")
    into: Identifier = Field(description="Name of the new column.")
    separator: Word = Field(default="", description="Text placed between the parts.")
    keep_sources: bool = Field(default=True, description="Keep the joined columns in the target too.")


class Default(Input):
    """Replace NULL in a column by a value."""

    op: Literal["default"]
    column: Identifier = Field(description="Column whose NULLs are replaced.")
    value: Scalar = Field(description="Replacement value (converted to the column's type).")


class Constant(Input):
    """Add (or overwrite) a column holding the same value in every row."""

    op: Literal["constant"]
    column: Identifier = Field(description="Column name.")
    value: Scalar = Field(description="The value.")
    type: TypeName | None = Field(default=None, description="Its type; inferred from the value when omitted.")


class Drop(Input):
    """Leave a column out of the target."""

    op: Literal["drop"]
    column: Identifier = Field(description="Column to leave out.")


class Expr(Input):
    """A computed column evaluated by the SOURCE database from a structured expression (never SQL text).

    Expression nodes: {"col": "name"}, {"lit": value}, {"fn": NAME, "args": [node, ...]} with NAME one of
    add sub mul div mod neg abs round lower upper trim length substr replace concat coalesce nullif
    eq ne lt le gt ge and or not is_null case; {"fn": "cast", "args": [node], "type": "integer"}.
    """

    op: Literal["expr"]
    into: Identifier = Field(description="Name of the new column.")
    expr: JsonObject = Field(description="The expression tree (see the tool description).")
    type: TypeName = Field(description="Type of the result (e.g. integer, decimal(12,2), text).")


Transform = Annotated[Rename | Cast | Split | Concat | Default | Constant | Drop | Expr, Field(discriminator="op")]


class Condition(Input):
    """One row filter; a table's conditions are ANDed and evaluated by the source database."""

    column: Identifier = Field(description="Source column.")
    op: Literal["eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "is_null", "not_null", "like", "between"] = Field(
        description="Comparison."
    )
    value: JsonData = Field(default=None, description="Value; a list for in/not_in, [low, high] for between.")

    @model_validator(mode="after")
    def _check_value(self) -> Condition:
        if self.op in ("in", "not_in") and not (isinstance(self.value, list) and self.value):
            raise ValueError(f"{self.op} needs a non-empty list value")
        if self.op == "between" and not (isinstance(self.value, list) and len(self.value) == 2):
            raise ValueError("between needs [low, high]")
        return self


class TableMapping(Input):
    """How one source table is copied: target name, columns left out, transforms, filters, incremental bounds."""

    target_table: Identifier | None = Field(default=None, description="Target table name (default: the source name).")
    exclude_columns: Names = Field(default_factory=list, description="Source columns not copied.")
    transforms: Items[Transform] = Field(default_factory=list, description="Applied in order to every row.")
    filter: Items[Condition] = Field(default_factory=list, description="Only rows matching all conditions.")
    since_key: Scalar = Field(default=None, description="Incremental mode: only rows whose key is greater.")
    since_column: Identifier | None = Field(
        default=None, description="Incremental mode: column compared with since_value."
    )
    since_value: Scalar = Field(default=None, description="Incremental mode: rows with since_column >= this value.")


class CopyRequest(Input):
    source_url: Url = Field(description="Source database URL or env:VARNAME reference (password never echoed).")
    target_url: Url = Field(description="Target database URL or env:VARNAME; a new SQLite file is created.")
    tables: Names | None = Field(
        default=None, description="Tables to copy: names or glob patterns (e.g. 'order*'). Default: all tables."
    )
    exclude_tables: Names = Field(default_factory=list, description="Names or glob patterns to leave out.")
    mode: Mode = Field(
        default="create",
        description=(
            "create: create missing target tables, refuse non-empty ones; truncate: empty the target tables "
            "first (destroys target data, needs confirm); append: add rows; incremental: copy only rows newer "
            "than a key or timestamp (default: newer than the target's max key) and update rows that exist."
        ),
    )
    confirm: Token | None = Field(
        default=None, description="Truncate mode only: the confirmation token the tool gives in its first error."
    )
    workers: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Processes copying at once, this one included (default: CPU count); 1 copies in-process.",
    )
    batch_size: int = Field(default=20_000, ge=1, le=1_000_000, description="Rows per batch (one transaction each).")
    partition_rows: int = Field(
        default=200_000, ge=1, description="Tables larger than this are split into key ranges copied in parallel."
    )
    mapping: ByName[TableMapping] = Field(
        default_factory=dict, description="Per source table: target name, columns, transforms, filters."
    )
    since_key: Scalar = Field(default=None, description="Incremental mode, every table: only keys greater than this.")
    since_column: Identifier | None = Field(
        default=None, description="Incremental mode, every table: a timestamp column."
    )
    since_value: Scalar = Field(
        default=None, description="Incremental mode: rows with since_column >= this (default: target's max)."
    )
    restart: bool = Field(default=False, description="Forget this run's checkpoints and rejects and start over.")
    reject_limit: int = Field(
        default=1000, ge=0, description="Rejected rows allowed per table; one more fails that table."
    )
    max_rejects: int = Field(
        default=0,
        ge=0,
        description="Rejected rows the whole copy may leave out and still succeed (default 0: any rejected row "
        "makes the copy fail, ok=false and exit 1, with the rows kept in the reject file).",
    )
    reject_file: Path | None = Field(
        default=None, description="Reject file inside the project (default docs/migrations/rejects/<run>.jsonl)."
    )
    verify: bool = Field(default=True, description="Compare row counts (and checksums when available) afterwards.")
    source_schema: Identifier | None = Field(
        default=None, description="Source schema (PostgreSQL); default schema if empty."
    )
    target_schema: Identifier | None = Field(
        default=None, description="Target schema (PostgreSQL); default schema if empty."
    )

    @model_validator(mode="after")
    def _check(self) -> CopyRequest:
        if self.since_value is not None and not self.since_column:
            raise ValueError("since_value needs since_column")
        return self


class IndexReport(Output):
    name: str
    kind: Literal["primary_key", "index", "unique", "foreign_key"]
    seconds: float
    ok: bool
    error: str | None = None


class Omission(Output):
    """One schema object (or property of one) the copy did not carry over as it was, and why."""

    table: str | None = Field(default=None, description="Source table it belongs to; none for views, routines.")
    kind: str = Field(
        description="generated column, check, view, trigger, procedure, function, event, index, "
        "foreign key, default, on update, auto-increment, ..."
    )
    name: str
    reason: str


class TableSummary(Output):
    table: str = Field(description="Source table.")
    target_table: str
    state: Literal["done", "failed", "skipped"] = Field(description="done, failed (see error) or skipped.")
    rows: int = Field(description="Rows written to the target by this run (all attempts).")
    rows_this_call: int = Field(description="Rows written by this invocation (less than rows after a resume).")
    bytes: int = Field(description="Approximate payload bytes written.")
    seconds: float = Field(description="Wall time of this table in this invocation, index/FK build included.")
    rows_per_s: float
    rejects: int
    partitions: int
    index_seconds: float = Field(description="Time building secondary indexes after the load.")
    fk_seconds: float = Field(description="Time adding/validating foreign keys after the load.")
    created: bool = Field(description="True when this run created the target table.")
    warnings: dict[str, int] = Field(default_factory=dict, description="Per column: values changed, e.g. zero dates.")
    notes: list[str] = Field(default_factory=list, description="Schema notes (dropped defaults, skipped indexes).")
    constraints: list[IndexReport] = Field(default_factory=list)
    error: str | None = None


class TableCheck(Output):
    table: str
    source_rows: int | None = None
    target_rows: int | None = None
    rejects: int = 0
    counts_match: bool | None = None
    checksum: str = Field(
        description="match, differ, explained (differences within documented conversions), partial (matched on the "
        "compared columns, some column could not be compared: named in detail), skipped or unavailable."
    )
    method: str | None = Field(
        default=None,
        description="streamed (source rows hashed while copied, target checksummed in SQL), binary (PostgreSQL "
        "pass-through: row bytes hashed while copied, target read back as binary COPY), echo (SQLite to PostgreSQL "
        "native pages: each row hashed as encoded and sent, target read back as binary COPY), checksum (one checksum "
        "query per side) or diff (the full checksum diff of both sides, which names differing keys).",
    )
    seconds: float | None = Field(default=None, description="Time this table's checksum took.")
    detail: str | None = None


class Verification(Output):
    ran: bool
    seconds: float = Field(
        default=0.0,
        description="Time of the verification phase. On PostgreSQL a table is checked as soon as its indexes "
        "are built and the rest runs beside the foreign key validations, so this overlaps the copy's seconds; "
        "each table's own time is in tables[].seconds.",
    )
    ok: bool | None = Field(description="True when every comparable table matched; None when nothing compared.")
    tables: list[TableCheck] = Field(default_factory=list)
    not_compared: list[str] = Field(
        default_factory=list,
        description="table.column (reason) for every copied column no check could compare; the verdict names them.",
    )
    note: str | None = None


class Totals(Output):
    rows: int
    rows_this_call: int
    bytes: int
    seconds: float = Field(description="Copy wall time: planning, load, indexes, FKs (verification excluded).")
    rows_per_s: float = Field(description="rows_this_call / seconds.")
    wall_seconds: float = Field(description="The whole call, verification included.")
    rejects: int
    tables_done: int
    tables_failed: int


class CopySummary(Output):
    ok: bool = Field(description="True when every table is done and verification (if run) passed.")
    run_id: str = Field(description="Derived from source, target, tables, mapping and mode; re-run to resume.")
    resumed: bool = Field(description="True when checkpoints of an earlier attempt were found and used.")
    already_complete: bool = Field(description="True when an earlier attempt had finished; nothing was copied.")
    mode: Mode
    source: str = Field(description="Source URL, password masked.")
    target: str = Field(description="Target URL, password masked.")
    source_dialect: str
    target_dialect: str
    workers: int
    batch_size: int
    tables: list[TableSummary]
    totals: Totals
    reject_file: str | None = Field(description="Project-relative reject file (only when rows were rejected).")
    max_rejects: int = Field(default=0, description="The reject budget of the request; more rejects fail the copy.")
    not_carried: list[Omission] = Field(
        default_factory=list, description="Everything of the source schema not carried over as it was, with why."
    )
    verification: Verification
    bookkeeping: str = Field(
        default="",
        description="Where the run's checkpoints and rejects are: a finished, verified run moves its checkpoints "
        "to a record file in the project and drops the empty dmig_ tables from the target.",
    )
    message: str
