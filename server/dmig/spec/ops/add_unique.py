"""add_unique: PostgreSQL builds the unique index CONCURRENTLY, then attaches it as a constraint
(``ADD CONSTRAINT ... UNIQUE USING INDEX``: catalog only). MySQL/MariaDB add a unique index online
(INPLACE, LOCK=NONE). SQLite: a unique index (a UNIQUE constraint would need a rebuild; the index
enforces the same rule). Duplicates are checked before expand so the build does not fail midway.
"""

from __future__ import annotations

from typing import Literal

import sqlalchemy as sa
from pydantic import Field

from dmig.spec.columns import Ident
from dmig.spec.context import OpContext
from dmig.spec.ddl import tref
from dmig.spec.ops.add_index import AddIndex
from dmig.spec.ops.base import TableOp
from dmig.spec.steps import Finding, Step, ValidationCheck


class AddUnique(TableOp):
    """Add a unique constraint without an exclusive lock for the index build."""

    op: Literal["add_unique"]
    columns: list[Ident] = Field(min_length=1)
    name: Ident | None = Field(default=None, description="Constraint/index name (default uq_<table>_<columns>).")

    def constraint_name(self, ctx: OpContext) -> str:
        return self.name or ctx.name(self.table, *self.columns, prefix="uq")

    def _index(self, ctx: OpContext) -> AddIndex:
        return AddIndex(
            op="add_index",
            table=self.table,
            schema=self.schema_,
            columns=self.columns,
            unique=True,
            name=self.constraint_name(ctx),
        )

    def expand(self, ctx: OpContext) -> list[Step]:
        steps = self._index(ctx).expand(ctx)
        steps = [
            s.model_copy(update={"op": self.op, "rollback": [f"op{ctx.index}.rollback.1.drop_unique"]}) for s in steps
        ]
        if ctx.pg:
            make = self.maker(ctx, "expand")
            make.n = len(steps)
            name = ctx.q(self.constraint_name(ctx))
            steps.append(
                make(
                    "attach_constraint",
                    description=f"Attach the index as constraint {self.constraint_name(ctx)} (catalog only)",
                    sql=[
                        f"ALTER TABLE {ctx.qt(self.table, self.schema_)} ADD CONSTRAINT {name} "
                        f"UNIQUE USING INDEX {name}"
                    ],
                    lock="ACCESS EXCLUSIVE",
                    lock_risk="medium",
                    lock_reason="instant (the index exists), but queues behind long transactions: use lock_timeout",
                    rollback=[f"op{ctx.index}.rollback.1.drop_unique"],
                    retry_on_lock_timeout=True,
                )
            )
        return steps

    def validate(self, ctx: OpContext) -> list[ValidationCheck]:
        t = tref(ctx, self.table, self.schema_, self.columns)
        cols = [t.c[c] for c in self.columns]
        dup = (
            sa.select(*cols)
            .where(*[c.is_not(None) for c in cols])
            .group_by(*cols)
            .having(sa.func.count() > 1)
            .subquery()
        )
        return [
            ValidationCheck(
                id=f"op{ctx.index}.validate.duplicates",
                op_index=ctx.index,
                description=f"groups of {self.table} rows sharing {', '.join(self.columns)} = 0",
                sql=ctx.sql(sa.select(sa.func.count()).select_from(dup)),
                gates="expand",
                rule={"type": "unique", "table": self.table, "columns": self.columns},
            )
        ]

    def _rollback(self, ctx: OpContext) -> list[Step]:
        make = self.maker(ctx, "rollback")
        qt, name = ctx.qt(self.table, self.schema_), ctx.q(self.constraint_name(ctx))
        ix = self._index(ctx)
        sql = [ix.drop_sql(ctx)]
        if ctx.pg:
            sql.insert(0, f"ALTER TABLE {qt} DROP CONSTRAINT IF EXISTS {name}")
        return [
            make(
                "drop_unique",
                description=f"Drop unique {self.constraint_name(ctx)}",
                sql=sql,
                transactional=not ctx.pg,
                lock="ACCESS EXCLUSIVE (brief)" if ctx.pg else "metadata lock",
                lock_risk="low",
                lock_reason="catalog only / concurrent drop",
            )
        ]

    def lint(self, ctx: OpContext) -> list[Finding]:
        return []
