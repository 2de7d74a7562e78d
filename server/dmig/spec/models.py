"""The migration spec: what a user (or an agent) writes to describe one schema evolution.

A spec is data: identifiers are quoted by the dialect, types come from a fixed vocabulary and
expressions are parsed and rebuilt from SQLAlchemy constructs (``dmig.spec.expr``). Only a
``raw_sql`` operation carries SQL text, and the linter always flags it.

``python -m dmig.spec.models`` rewrites ``schemas/migration-spec.schema.json``; a test asserts
the committed file equals the models' schema.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dmig import safeload
from dmig.errors import CorruptFile, InvalidInput
from dmig.monitor.thresholds import Thresholds
from dmig.spec.ops.add_check import AddCheck
from dmig.spec.ops.add_column import AddColumn
from dmig.spec.ops.add_foreign_key import AddForeignKey
from dmig.spec.ops.add_index import AddIndex
from dmig.spec.ops.add_unique import AddUnique
from dmig.spec.ops.backfill import Backfill
from dmig.spec.ops.change_column_type import ChangeColumnType
from dmig.spec.ops.create_table import CreateTable
from dmig.spec.ops.drop_column import DropColumn
from dmig.spec.ops.merge_columns import MergeColumns
from dmig.spec.ops.move_table import MoveTable
from dmig.spec.ops.raw_sql import RawSql
from dmig.spec.ops.rename_column import RenameColumn
from dmig.spec.ops.set_not_null import SetNotNull
from dmig.spec.ops.split_column import SplitColumn

SCHEMA_FILE = "migration-spec.schema.json"
SCHEMA_ID = "https://agileflow.dev/schemas/dmig/migration-spec.schema.json"

OPERATION_TYPES = (
    CreateTable,
    AddColumn,
    DropColumn,
    RenameColumn,
    SplitColumn,
    MergeColumns,
    ChangeColumnType,
    SetNotNull,
    AddForeignKey,
    AddUnique,
    AddIndex,
    AddCheck,
    Backfill,
    MoveTable,
    RawSql,
)
OP_NAMES = sorted(t.model_fields["op"].annotation.__args__[0] for t in OPERATION_TYPES)

Operation = Annotated[
    Union[OPERATION_TYPES],  # noqa: UP007 - one list of operations feeds the union and OP_NAMES
    Field(discriminator="op"),
]


# pgroll's default: a DDL statement waits at most this long for its lock, so a session queued behind it
# waits about as long too, then the executor backs off and retries.
DEFAULT_LOCK_TIMEOUT_MS = 500
# Bounds any one statement of a step or backfill batch (a runaway holds its locks no longer). A step
# whose estimate is long (CREATE INDEX CONCURRENTLY on a big table) gets more: see dmig.plan.impact.
DEFAULT_STATEMENT_TIMEOUT_MS = 60_000


class SpecOptions(BaseModel):
    """How the executor runs the spec's steps and backfills."""

    model_config = ConfigDict(extra="forbid")

    lock_timeout_ms: int | None = Field(
        default=None,
        ge=1,
        le=600_000,
        description=f"Give up waiting for a lock after this long (then retry): PostgreSQL lock_timeout, MariaDB/MySQL "
        "lock_wait_timeout and innodb_lock_wait_timeout (whole seconds: rounded up), SQLite busy_timeout. Unset = "
        f"{DEFAULT_LOCK_TIMEOUT_MS} ms (as pgroll); a longer wait must be asked for here, and queued sessions wait "
        "as long.",
    )
    statement_timeout_ms: int | None = Field(
        default=None,
        ge=1,
        le=86_400_000,
        description="Cancel any one statement after this long: PostgreSQL statement_timeout, MariaDB "
        f"max_statement_time, MySQL max_execution_time (SELECT only). Unset = {DEFAULT_STATEMENT_TIMEOUT_MS} ms, "
        "or ten times a step's estimated duration when that is longer (the plan shows each step's value).",
    )
    batch_size: int = Field(default=1000, ge=1, le=1_000_000, description="Rows per backfill batch.")
    throttle_ms: int = Field(default=0, ge=0, le=600_000, description="Pause between backfill batches.")
    max_lock_retries: int = Field(default=10, ge=0, le=1000, description="Retries of a step after a lock timeout.")

    @property
    def effective_lock_timeout_ms(self) -> int:
        """The lock timeout every step runs with: the spec's, else the safe default (never 'wait forever')."""
        return self.lock_timeout_ms if self.lock_timeout_ms is not None else DEFAULT_LOCK_TIMEOUT_MS

    @property
    def effective_statement_timeout_ms(self) -> int:
        """The session-wide statement timeout: the spec's, else the default (steps may get more, see the plan)."""
        return self.statement_timeout_ms if self.statement_timeout_ms is not None else DEFAULT_STATEMENT_TIMEOUT_MS


class MigrationSpec(BaseModel):
    """One zero-downtime schema evolution: expand, backfill, validate, contract (and rollback)."""

    model_config = ConfigDict(
        extra="forbid",
        title="dmig migration spec",
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID},
    )

    version: Literal[1] = 1
    id: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$",
        description="Stable migration id (the ledger keys on it), e.g. 2024-06-split-user-name.",
    )
    description: str | None = Field(default=None, max_length=4000)
    database: str | None = Field(
        default=None, description="Target database: a URL or env:VARNAME (keeps the password out of the file)."
    )
    options: SpecOptions = Field(default_factory=SpecOptions)
    monitoring: Thresholds | None = Field(
        default=None,
        description="Monitor thresholds and actions for this migration (rules left out keep their defaults); "
        "copied into the plan's monitoring key, which run_migration's monitor obeys.",
    )
    operations: list[Operation] = Field(min_length=1, description="Applied in order; each is one module.")


def validation_problems(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "(spec)", "problem": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]


def parse_spec(data: Any, *, source: str = "spec") -> MigrationSpec:
    """Validate a loaded document; a malformed spec is E_INVALID_INPUT listing every pydantic error."""
    if not isinstance(data, dict):
        raise InvalidInput(f"{source}: a migration spec must be a mapping with id and operations")
    ops = data.get("operations")
    if isinstance(ops, list):
        for i, op in enumerate(ops):
            if isinstance(op, dict) and op.get("op") not in OP_NAMES:
                raise InvalidInput(
                    f"{source}: operation {i} has unknown op {op.get('op')!r}; known: {', '.join(OP_NAMES)}",
                    errors=[{"field": f"operations.{i}.op", "problem": "unknown operation"}],
                    known=OP_NAMES,
                )
    try:
        return MigrationSpec.model_validate(data)
    except ValidationError as exc:
        problems = validation_problems(exc)
        raise InvalidInput(
            f"{source}: the migration spec is not valid ({len(problems)} problem(s))", errors=problems
        ) from None


def parse_spec_text(text: str, *, source: str = "spec") -> MigrationSpec:
    """A spec from YAML/JSON text (a file's or a tool argument's): bounded like a spec file (dmig.safeload)."""
    kind = safeload.KINDS["spec"]
    if len(text) > kind.max_bytes:
        raise safeload.FileTooLarge(
            f"{source}: the spec is {len(text)} characters; the limit is {kind.max_bytes}",
            path=source,
            limit=kind.max_bytes,
            size=len(text),
            kind=kind.name,
        )
    try:
        data = safeload.parse_yaml(text, kind, shown=source)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{source}: not valid YAML/JSON: {str(exc).splitlines()[0]}") from None
    return parse_spec(data, source=source)


def load_spec(path: Path) -> MigrationSpec:
    try:
        raw = safeload.read_bytes(path, "spec", shown=str(path))
    except FileNotFoundError:
        from dmig.errors import NotFound

        raise NotFound(f"spec file {path} does not exist", path=str(path)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CorruptFile(f"spec file {path} is not UTF-8 text", path=str(path)) from None
    return parse_spec_text(text, source=path.name)


def json_schema() -> dict[str, Any]:
    return MigrationSpec.model_json_schema(by_alias=True)


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Regenerate the committed JSON Schema from the models."""
    target = Path(__file__).resolve().parents[1] / "schemas" / SCHEMA_FILE
    target.write_text(schema_text(), encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
