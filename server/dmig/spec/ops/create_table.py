"""create_table: a new table is purely additive (nobody reads it yet), so it goes in expand."""

from __future__ import annotations

from typing import Annotated, Literal

import sqlalchemy as sa
from pydantic import Field, model_validator
from sqlalchemy.schema import CreateTable as SACreateTable

from dmig.spec.columns import ColumnSpec, Ident
from dmig.spec.context import OpContext
from dmig.spec.dml import catalog_check
from dmig.spec.ops.base import Operation
from dmig.spec.sqltypes import is_integer_type
from dmig.spec.steps import Finding, Step, ValidationCheck


class CreateTable(Operation):
    """Create a table (IF NOT EXISTS, so a retried step is harmless)."""

    op: Literal["create_table"]
    table: Ident
    schema_: Annotated[Ident | None, Field(alias="schema")] = None
    columns: list[ColumnSpec] = Field(min_length=1)
    primary_key: list[Ident] | None = Field(default=None, description="Composite primary key (else per column).")

    @model_validator(mode="after")
    def _names(self) -> CreateTable:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError("column names must be unique")
        for k in self.primary_key or []:
            if k not in names:
                raise ValueError(f"primary_key column {k!r} is not among the columns")
        return self

    def sa_table(self, ctx: OpContext, meta: sa.MetaData | None = None) -> sa.Table:
        cols = [c.to_sa(ctx.dialect) for c in self.columns]
        args: list = list(cols)
        if self.primary_key:
            for c in cols:
                c.primary_key = False
            args.append(sa.PrimaryKeyConstraint(*self.primary_key))
        return sa.Table(self.table, meta or sa.MetaData(), *args, schema=self.schema_)

    def expand(self, ctx: OpContext) -> list[Step]:
        make = self.maker(ctx, "expand")
        sql = str(SACreateTable(self.sa_table(ctx), if_not_exists=True).compile(dialect=ctx.sa)).strip()
        return [
            make(
                "create_table",
                description=f"Create table {self.table}",
                sql=[sql],
                lock="none on existing tables" if not ctx.lite else "database write lock (brief)",
                lock_risk="low",
                lock_reason="a new table: nothing reads or writes it yet",
                rollback=[f"op{ctx.index}.rollback.1.drop_table"],
            )
        ]

    def validate(self, ctx: OpContext) -> list[ValidationCheck]:
        return [
            catalog_check(
                ctx, slug="exists", description=f"table {self.table} exists", table=self.table, schema=self.schema_
            )
        ]

    def _rollback(self, ctx: OpContext) -> list[Step]:
        return [
            self.maker(ctx, "rollback")(
                "drop_table",
                description=f"Drop table {self.table} (rows written since expand are lost)",
                sql=[f"DROP TABLE IF EXISTS {ctx.qt(self.table, self.schema_)}"],
                lock="ACCESS EXCLUSIVE" if ctx.pg else "metadata lock",
                lock_risk="low",
                lock_reason="only this new table",
                destructive=True,
                needs_app_cooperation="no code may use the new table any more",
            )
        ]

    def lint(self, ctx: OpContext) -> list[Finding]:
        out: list[Finding] = []
        keys = set(self.primary_key or [c.name for c in self.columns if c.primary_key])
        for c in self.columns:
            if c.name in keys and is_integer_type(c.type):
                out.append(self.finding(ctx, "prefer-bigint-keys", f"key column {c.name} is {c.type}"))
            if ctx.pg and c.type.strip().lower() == "json":
                out.append(self.finding(ctx, "pg-prefer-jsonb", f"column {c.name} is json"))
            if ctx.pg and c.type.strip().lower() in ("timestamp", "datetime"):
                out.append(self.finding(ctx, "pg-prefer-timestamptz", f"column {c.name} is {c.type}"))
        return out
