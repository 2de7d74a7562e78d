"""move_table: copy a table to a new name and/or database through the copy engine (dmig.move).

expand emits a ``copy`` step (a CopyRequest the executor hands to the copy engine, which creates
the target, copies by key with checkpoints and reports rejects); validate compares row counts;
contract drops the source table once the application reads and writes the target. The copy is a
snapshot: writes to the source after the copy started are the application's (dual write) or a
re-run's job; the linter says so.
"""

from __future__ import annotations

from typing import Annotated, Literal

import sqlalchemy as sa
from pydantic import Field, model_validator

from dmig.spec.columns import Ident
from dmig.spec.context import OpContext
from dmig.spec.ddl import tref
from dmig.spec.ops.base import TableOp
from dmig.spec.steps import CopyRequest, Finding, Step, ValidationCheck


class MoveTable(TableOp):
    """Copy table -> target_table (optionally in another database), then drop the source at contract."""

    op: Literal["move_table"]
    target_table: Ident
    target_schema: Annotated[Ident | None, Field(description="Target schema.")] = None
    target_database: str | None = Field(default=None, description="Target URL or env:VAR (default: same database).")
    drop_source: bool = Field(default=True, description="Drop the source table at contract.")

    @model_validator(mode="after")
    def _not_same(self) -> MoveTable:
        if self.target_database is None and self.target_table == self.table and self.target_schema == self.schema_:
            raise ValueError("target is the same table as the source")
        return self

    def expand(self, ctx: OpContext) -> list[Step]:
        make = self.maker(ctx, "expand")
        return [
            make(
                "copy",
                kind="copy",
                description=f"Copy {self.table} to {self.target_table} with the copy engine "
                "(batched by key, checkpointed)",
                copy_request=CopyRequest(
                    source_table=self.table,
                    source_schema=self.schema_,
                    target_table=self.target_table,
                    target_schema=self.target_schema,
                    target_url=self.target_database,
                    key=self.key_columns(ctx),
                    batch_size=ctx.options.batch_size,
                    create_target=True,
                ),
                lock="ACCESS SHARE (reads only)" if ctx.pg else "none (consistent reads)" if ctx.my else "read lock",
                lock_risk="low",
                lock_reason="the source is only read, batch by batch",
                needs_app_cooperation="writes to the source after the copy started must be dual-written or re-copied",
                rollback=[f"op{ctx.index}.rollback.1.drop_target"],
            )
        ]

    def validate(self, ctx: OpContext) -> list[ValidationCheck]:
        """Same database: source rows minus target rows must be 0. Another database cannot be counted in one
        statement; there the copy step itself fails unless the engine's counts and checksum verification pass."""
        if self.target_database is not None:
            return []
        src = tref(ctx, self.table, self.schema_, [])
        tgt = tref(ctx, self.target_table, self.target_schema, [])
        count_src = sa.select(sa.func.count()).select_from(src).scalar_subquery()
        count_tgt = sa.select(sa.func.count()).select_from(tgt).scalar_subquery()
        sql = ctx.sql(sa.select(count_src - count_tgt))
        return [
            ValidationCheck(
                id=f"op{ctx.index}.validate.row_count",
                op_index=ctx.index,
                description=f"rows of {self.table} (source) minus rows of {self.target_table} (target) is 0; the "
                "copy step's own checksum verification has already compared the values",
                sql=sql,
                expected=0,
                gates="contract",
                severity="error",
                rule={"type": "row_count", "tables": [{"source_table": self.table, "target_table": self.target_table}]},
            )
        ]

    def contract(self, ctx: OpContext) -> list[Step]:
        if not self.drop_source:
            return []
        return [
            self.maker(ctx, "contract")(
                "drop_source",
                description=f"Drop the source table {self.table}",
                sql=[f"DROP TABLE IF EXISTS {ctx.qt(self.table, self.schema_)}"],
                destructive=True,
                lock="ACCESS EXCLUSIVE" if ctx.pg else "metadata lock" if ctx.my else "database write lock",
                lock_risk="medium",
                lock_reason="brief, but waits for every open transaction on the table",
                needs_app_cooperation=f"no code may use {self.table} any more",
            )
        ]

    def _rollback(self, ctx: OpContext) -> list[Step]:
        if self.target_database is not None:
            return []
        return [
            self.maker(ctx, "rollback")(
                "drop_target",
                description=f"Drop the copy {self.target_table}",
                sql=[f"DROP TABLE IF EXISTS {ctx.qt(self.target_table, self.target_schema)}"],
                destructive=True,
                lock="ACCESS EXCLUSIVE" if ctx.pg else "metadata lock",
                lock_risk="low",
                lock_reason="only the copy",
            )
        ]

    def lint(self, ctx: OpContext) -> list[Finding]:
        out = [self.finding(ctx, "move-table")]
        if self.drop_source:
            out.append(self.finding(ctx, "drop-table", f"contract drops the source table {self.table}"))
        return out
