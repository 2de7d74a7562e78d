"""rename_column: by default expand/contract (a new column kept equal to the old one by triggers),
so running code using either name keeps working; ``mode: in_place`` is the one-step RENAME that
breaks old code (the linter flags it).

Indexes, defaults and constraints on the old column are not copied to the new one: add them with
add_index / add_unique / set_not_null operations in the same spec.
"""

from __future__ import annotations

from typing import Literal

import sqlalchemy as sa
from pydantic import Field, model_validator

from dmig.spec.columns import Ident, TypeName
from dmig.spec.context import OpContext
from dmig.spec.ddl import brief_alter_lock, rename_column, type_sql
from dmig.spec.dml import Resolver
from dmig.spec.ops.sync_base import SyncOperation
from dmig.spec.sqltypes import parse_type
from dmig.spec.steps import BackfillPlan, Finding, Step, ValidationCheck
from dmig.spec.sync import Sync


class RenameColumn(SyncOperation):
    """Rename a column without breaking running code."""

    op: Literal["rename_column"]
    column: Ident
    to: Ident
    type: TypeName = Field(description="The column's type (the new column is created with it).")
    mode: Literal["expand_contract", "in_place"] = Field(
        default="expand_contract", description="in_place = one-step RENAME COLUMN (breaks running code)."
    )

    @model_validator(mode="after")
    def _differs(self) -> RenameColumn:
        if self.column == self.to:
            raise ValueError("'to' must differ from 'column'")
        return self

    def sync(self, ctx: OpContext) -> Sync:
        def forward(col: Resolver) -> dict[str, sa.ColumnElement]:
            return {self.to: col(self.column)}

        def reverse(col: Resolver) -> dict[str, sa.ColumnElement]:
            return {self.column: col(self.to)}

        return Sync(
            self.table,
            self.schema_,
            self.key_columns(ctx),
            [self.column],
            [self.to],
            forward,
            reverse,
            slug=f"ren_{self.column}",
            text=False,
        )

    def new_columns(self, ctx: OpContext) -> list[sa.Column]:
        return [sa.Column(self.to, parse_type(self.type), nullable=True)]

    def expand(self, ctx: OpContext) -> list[Step]:
        return super().expand(ctx) if self.mode == "expand_contract" else []

    def backfill(self, ctx: OpContext) -> BackfillPlan | None:
        return super().backfill(ctx) if self.mode == "expand_contract" else None

    def validate(self, ctx: OpContext) -> list[ValidationCheck]:
        return super().validate(ctx) if self.mode == "expand_contract" else []

    def contract(self, ctx: OpContext) -> list[Step]:
        if self.mode == "expand_contract":
            return super().contract(ctx)
        return [
            self.maker(ctx, "contract")(
                "rename_in_place",
                description=f"RENAME {self.table}.{self.column} to {self.to} in one step",
                sql=[
                    rename_column(
                        ctx, self.table, self.schema_, self.column, self.to, type_sql(ctx, parse_type(self.type))
                    )
                ],
                destructive=True,
                needs_app_cooperation=f"every running reader/writer of {self.column} breaks",
                **brief_alter_lock(ctx),
            )
        ]

    def _rollback(self, ctx: OpContext) -> list[Step]:
        return super()._rollback(ctx) if self.mode == "expand_contract" else []

    def lint(self, ctx: OpContext) -> list[Finding]:
        if self.mode == "in_place":
            return [self.finding(ctx, "rename-column", f"renaming {self.table}.{self.column} to {self.to} in one step")]
        out = self.key_findings(ctx)
        out.append(
            self.finding(
                ctx,
                "app-cooperation",
                f"indexes, defaults and constraints on {self.column} are not "
                f"copied to {self.to}; move code to {self.to} before contract",
                severity="info",
            )
        )
        return out
