"""merge_columns: two columns become one (the inverse of split_column), kept in sync both ways.

into = second NULL ? first : coalesce(first, '') || separator || second; a write to ``into`` by new
code splits it back on the first separator. Merging is lossy when the first part itself contains
the separator ('Mary Ann' + 'Smith' splits back as 'Mary' + 'Ann Smith'): the round-trip check
reports such rows as a warning.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import sqlalchemy as sa
from pydantic import Field, model_validator

from dmig.spec.columns import Ident, TypeName
from dmig.spec.context import OpContext
from dmig.spec.dml import Resolver
from dmig.spec.ops.split_column import Separator, join_expr, split_exprs
from dmig.spec.ops.sync_base import SyncOperation
from dmig.spec.sqltypes import parse_type
from dmig.spec.steps import Finding, ValidationCheck
from dmig.spec.sync import Sync


class MergeColumns(SyncOperation):
    """Merge two text columns into one."""

    op: Literal["merge_columns"]
    columns: list[Ident] = Field(min_length=2, max_length=2, description="[first, second] source columns.")
    into: Ident = Field(description="The new column.")
    separator: Separator = " "
    type: TypeName = "varchar(255)"
    roundtrip_check: ClassVar[bool] = True

    @model_validator(mode="after")
    def _distinct(self) -> MergeColumns:
        if len({*self.columns, self.into}) != 3:
            raise ValueError("the two columns and 'into' must be three different names")
        return self

    def sync(self, ctx: OpContext) -> Sync:
        first, second = self.columns

        def forward(col: Resolver) -> dict[str, sa.ColumnElement]:
            return {self.into: join_expr(col(first), col(second), self.separator)}

        def reverse(col: Resolver) -> dict[str, sa.ColumnElement]:
            f, r = split_exprs(ctx, col(self.into), self.separator)
            return {first: f, second: r}

        return Sync(
            self.table,
            self.schema_,
            self.key_columns(ctx),
            list(self.columns),
            [self.into],
            forward,
            reverse,
            slug=f"merge_{self.into}",
        )

    def new_columns(self, ctx: OpContext) -> list[sa.Column]:
        return [sa.Column(self.into, parse_type(self.type), nullable=True)]

    def validate(self, ctx: OpContext) -> list[ValidationCheck]:
        checks = super().validate(ctx)
        for c in checks:
            if c.id.endswith("roundtrip"):
                c.severity = "warning"
        return checks

    def lint(self, ctx: OpContext) -> list[Finding]:
        return self.key_findings(ctx)
