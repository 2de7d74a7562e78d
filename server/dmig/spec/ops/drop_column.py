"""drop_column: nothing in expand; the drop itself is the contract (after code stopped using it)."""

from __future__ import annotations

from typing import Literal

from dmig.spec.columns import Ident
from dmig.spec.context import OpContext
from dmig.spec.ops.base import TableOp
from dmig.spec.ops.common import drop_columns_step
from dmig.spec.steps import Finding, Step


class DropColumn(TableOp):
    """Drop a column once no code reads or writes it."""

    op: Literal["drop_column"]
    column: Ident

    def contract(self, ctx: OpContext) -> list[Step]:
        return [
            drop_columns_step(
                ctx,
                self.maker(ctx, "contract"),
                "drop_column",
                self.table,
                self.schema_,
                [self.column],
                description=f"Drop {self.table}.{self.column}",
                destructive=True,
                app=f"deploy code that neither reads nor writes {self.column} first (ORM: mark it ignored)",
            )
        ]

    def lint(self, ctx: OpContext) -> list[Finding]:
        out = [self.finding(ctx, "drop-column", f"dropping {self.table}.{self.column}")]
        if ctx.lite and not ctx.at_least(3, 35):
            out.append(self.finding(ctx, "sqlite-version", f"{ctx.version_text} has no DROP COLUMN (3.35+)"))
        return out
