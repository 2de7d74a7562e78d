"""change_column_type: the gh-ost/pgroll way instead of a blocking rewrite.

expand adds a shadow column ``dmig_<col>_new`` of the new type and triggers converting both ways
(``using`` old->new, default CAST; ``reverse_using`` new->old, default CAST to ``from_type``);
backfill converts existing rows by key range; validate checks every row converted; contract
(optionally makes the shadow NOT NULL the safe way, then) drops the old column and renames the
shadow to the old name in one transaction (one ALTER on MySQL).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import sqlalchemy as sa
from pydantic import Field

from dmig.spec.columns import Ident, TypeName
from dmig.spec.context import OpContext
from dmig.spec.ddl import (
    drop_trigger,
    mysql_drop_column_algorithm,
    mysql_online,
    mysql_write_locked,
    rename_column,
    type_sql,
)
from dmig.spec.dml import Resolver
from dmig.spec.expr import compile_expression
from dmig.spec.ops.common import drop_columns_sql
from dmig.spec.ops.set_not_null import not_null_contract_steps, not_null_rollback_steps
from dmig.spec.ops.sync_base import SyncOperation
from dmig.spec.sqltypes import parse_type
from dmig.spec.steps import Finding, Step
from dmig.spec.sync import Sync, drop_triggers_sql


class ChangeColumnType(SyncOperation):
    """Change a column's type online (shadow column + triggers + backfill + swap)."""

    op: Literal["change_column_type"]
    column: Ident
    type: TypeName = Field(description="The new type.")
    from_type: TypeName = Field(description="The current type (the reverse conversion casts to it).")
    using: str | None = Field(
        default=None,
        description="Expression converting the old value (refer to it by the "
        "column's name); default CAST(column AS type).",
    )
    reverse_using: str | None = Field(
        default=None,
        description="Expression converting a new value back (refer to "
        "it by the column's name); default CAST(column AS from_type).",
    )
    not_null: bool = Field(default=False, description="Make the new column NOT NULL before the swap.")
    roundtrip_check: ClassVar[bool] = True

    def shadow(self, ctx: OpContext) -> str:
        return ctx.name(self.column, "new")

    def _convert(self, ctx: OpContext, text: str | None, type_name: str, ref: sa.ColumnElement) -> sa.ColumnElement:
        if text is None:
            return sa.cast(ref, parse_type(type_name))

        def resolve(name: str) -> sa.ColumnElement:
            if name != self.column:
                from dmig.errors import InvalidInput

                raise InvalidInput(f"a conversion may only refer to {self.column!r}, not {name!r}")
            return ref

        return compile_expression(text, resolve, ctx.dialect)

    def sync(self, ctx: OpContext) -> Sync:
        shadow = self.shadow(ctx)

        def forward(col: Resolver) -> dict[str, sa.ColumnElement]:
            return {shadow: self._convert(ctx, self.using, self.type, col(self.column))}

        def reverse(col: Resolver) -> dict[str, sa.ColumnElement]:
            return {self.column: self._convert(ctx, self.reverse_using, self.from_type, col(shadow))}

        return Sync(
            self.table,
            self.schema_,
            self.key_columns(ctx),
            [self.column],
            [shadow],
            forward,
            reverse,
            slug=f"type_{self.column}",
            text=False,
        )

    def new_columns(self, ctx: OpContext) -> list[sa.Column]:
        return [sa.Column(self.shadow(ctx), parse_type(self.type), nullable=True)]

    def contract(self, ctx: OpContext) -> list[Step]:
        make = self.maker(ctx, "contract")
        shadow = self.shadow(ctx)
        s = self.sync(ctx)
        steps: list[Step] = []
        if self.not_null:
            steps += not_null_contract_steps(ctx, make, self.table, self.schema_, shadow, self.type)
        if ctx.my:
            # One ALTER: the old name never disappears in between.
            qt = ctx.qt(self.table, self.schema_)
            swap = [
                f"ALTER TABLE {qt} DROP COLUMN {ctx.q(self.column)}, RENAME COLUMN {ctx.q(shadow)} TO "
                f"{ctx.q(self.column)}" + mysql_online(ctx, mysql_drop_column_algorithm(ctx))
            ]
            if not ctx.mysql_at_least((10, 5), (8, 0)):
                swap = [
                    f"ALTER TABLE {qt} DROP COLUMN {ctx.q(self.column)}, CHANGE COLUMN {ctx.q(shadow)} "
                    f"{ctx.q(self.column)} {type_sql(ctx, parse_type(self.type))}" + mysql_online(ctx, "INPLACE")
                ]
            drops = [drop_trigger(ctx, n, self.table, self.schema_) for n in s.trigger_names(ctx)]
            # An old-shape write between the trigger drop and the swap would be lost with the old column.
            sql = mysql_write_locked(ctx, self.table, self.schema_, [*drops, *swap])
        else:
            sql = [
                *drop_triggers_sql(ctx, s),
                *drop_columns_sql(ctx, self.table, self.schema_, [self.column]),
                rename_column(ctx, self.table, self.schema_, shadow, self.column, None),
            ]
        step = self.drop_old_step(ctx, make)
        steps.append(
            step.model_copy(
                update={
                    "id": step.id.replace("drop_old", "swap"),
                    "description": f"Drop the triggers and the old {self.column}, rename {shadow} to {self.column} "
                    "(one transaction)",
                    "sql": sql,
                }
            )
        )
        return steps

    def _rollback(self, ctx: OpContext) -> list[Step]:
        make = self.maker(ctx, "rollback")
        steps = not_null_rollback_steps(ctx, make, self.table, self.schema_, self.shadow(ctx)) if self.not_null else []
        return [*steps, *self.rollback_steps(ctx, make)]

    def lint(self, ctx: OpContext) -> list[Finding]:
        out = self.key_findings(ctx)
        out.append(
            self.finding(
                ctx,
                "column-type-change",
                severity="info",
                message=(
                    f"{self.table}.{self.column} changes type through a shadow column, triggers and a batched backfill "
                    "instead of a blocking rewrite; indexes and constraints on the column must be re-created on "
                    "the shadow "
                    "(add_index) before contract"
                ),
            )
        )
        return out
