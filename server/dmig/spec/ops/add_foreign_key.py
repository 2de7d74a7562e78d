"""add_foreign_key: no long lock on either table.

PostgreSQL: ``ADD CONSTRAINT ... NOT VALID`` (brief SHARE ROW EXCLUSIVE on both tables; new rows
checked from now on), then ``VALIDATE CONSTRAINT`` (SHARE UPDATE EXCLUSIVE: writes continue).
MySQL/MariaDB: with foreign_key_checks=1 InnoDB copies the table; so the orphan check runs first
(it gates contract) and contract adds the key with foreign_key_checks=0, ALGORITHM=INPLACE,
LOCK=NONE. SQLite: foreign keys are part of the table definition: 12-step rebuild.
"""

from __future__ import annotations

from typing import Annotated, Literal

import sqlalchemy as sa
from pydantic import Field, model_validator

from dmig.spec.columns import Ident
from dmig.spec.context import OpContext
from dmig.spec.ddl import copy_table, mysql_online, sqlite_rebuild_step, tref
from dmig.spec.ops.base import TableOp
from dmig.spec.steps import Finding, Step, ValidationCheck

Action = Literal["NO ACTION", "RESTRICT", "CASCADE", "SET NULL", "SET DEFAULT"]


class AddForeignKey(TableOp):
    """Add a foreign key from table(columns) to ref_table(ref_columns)."""

    op: Literal["add_foreign_key"]
    columns: list[Ident] = Field(min_length=1)
    ref_table: Ident
    ref_schema: Annotated[Ident | None, Field(description="Schema of the referenced table.")] = None
    ref_columns: list[Ident] = Field(min_length=1)
    name: Ident | None = Field(default=None, description="Constraint name (default fk_<table>_<columns>).")
    on_delete: Action | None = None
    on_update: Action | None = None

    @model_validator(mode="after")
    def _shape(self) -> AddForeignKey:
        if len(self.columns) != len(self.ref_columns):
            raise ValueError("columns and ref_columns must have the same length")
        return self

    def constraint_name(self, ctx: OpContext) -> str:
        return self.name or ctx.name(self.table, *self.columns, prefix="fk")

    def _fk(self, ctx: OpContext) -> sa.ForeignKeyConstraint:
        refs = [f"{self.ref_table}.{c}" for c in self.ref_columns]
        return sa.ForeignKeyConstraint(
            self.columns, refs, name=self.constraint_name(ctx), ondelete=self.on_delete, onupdate=self.on_update
        )

    def _add_sql(self, ctx: OpContext, not_valid: bool) -> str:
        meta = sa.MetaData()
        sa.Table(self.ref_table, meta, *[sa.Column(c, sa.Integer) for c in self.ref_columns], schema=self.ref_schema)
        t = sa.Table(self.table, meta, *[sa.Column(c, sa.Integer) for c in self.columns], schema=self.schema_)
        fk = sa.ForeignKeyConstraint(
            self.columns,
            [f"{self.ref_schema + '.' if self.ref_schema else ''}{self.ref_table}.{c}" for c in self.ref_columns],
            name=self.constraint_name(ctx),
            ondelete=self.on_delete,
            onupdate=self.on_update,
        )
        t.append_constraint(fk)
        body = str(sa.schema.AddConstraint(fk).compile(dialect=ctx.sa)).strip()
        return body + (" NOT VALID" if not_valid else "")

    def expand(self, ctx: OpContext) -> list[Step]:
        make = self.maker(ctx, "expand")
        qt = ctx.qt(self.table, self.schema_)
        if ctx.pg:
            name = ctx.q(self.constraint_name(ctx))
            return [
                make(
                    "add_not_valid",
                    description=f"Add foreign key {self.constraint_name(ctx)} NOT VALID (new rows "
                    "are checked, existing rows are not scanned)",
                    sql=[f"ALTER TABLE {qt} DROP CONSTRAINT IF EXISTS {name}", self._add_sql(ctx, True)],
                    lock="SHARE ROW EXCLUSIVE (both tables)",
                    lock_risk="medium",
                    lock_reason="brief, no scan; blocks writes to both tables while it waits: use lock_timeout",
                    rollback=[f"op{ctx.index}.rollback.1.drop_fk"],
                ),
                make(
                    "validate",
                    description=f"VALIDATE CONSTRAINT {self.constraint_name(ctx)} (scans; reads and writes continue)",
                    sql=[f"ALTER TABLE {qt} VALIDATE CONSTRAINT {name}"],
                    lock="SHARE UPDATE EXCLUSIVE (table), ROW SHARE (referenced)",
                    lock_risk="low",
                    lock_reason="scan without blocking reads or writes",
                ),
            ]
        return []

    def validate(self, ctx: OpContext) -> list[ValidationCheck]:
        child = tref(ctx, self.table, self.schema_, self.columns).alias("c")
        parent = tref(ctx, self.ref_table, self.ref_schema, self.ref_columns).alias("p")
        join_on = sa.and_(*[child.c[a] == parent.c[b] for a, b in zip(self.columns, self.ref_columns, strict=True)])
        not_null = sa.and_(*[child.c[a].is_not(None) for a in self.columns])
        missing = ~sa.exists(sa.select(sa.literal(1)).select_from(parent).where(join_on))
        stmt = sa.select(sa.func.count()).select_from(child).where(not_null, missing)
        return [
            ValidationCheck(
                id=f"op{ctx.index}.validate.orphans",
                op_index=ctx.index,
                description=f"rows of {self.table} whose {', '.join(self.columns)} match no {self.ref_table} row = 0",
                sql=ctx.sql(stmt),
                gates="expand" if ctx.pg else "contract",
                rule={
                    "type": "orphaned_fk",
                    "table": self.table,
                    "columns": self.columns,
                    "parent_table": self.ref_table,
                    "parent_columns": self.ref_columns,
                },
            )
        ]

    def contract(self, ctx: OpContext) -> list[Step]:
        make = self.maker(ctx, "contract")
        if ctx.my:
            return [
                make(
                    "add_fk_online",
                    description=f"Add foreign key {self.constraint_name(ctx)} in place (orphans were "
                    "checked first; foreign_key_checks=0 lets InnoDB skip the table copy)",
                    sql=[
                        "SET SESSION foreign_key_checks = 0",
                        self._add_sql(ctx, False) + mysql_online(ctx, "INPLACE", "NONE"),
                        "SET SESSION foreign_key_checks = 1",
                    ],
                    transactional=False,
                    lock="metadata lock (exclusive at start/end; DML continues)",
                    lock_risk="medium",
                    lock_reason="in place without copying; creates an index on the columns if none exists (online)",
                    rollback=[f"op{ctx.index}.rollback.1.drop_fk"],
                )
            ]
        if ctx.lite:

            def transform(live: sa.Table, meta: sa.MetaData) -> sa.Table:
                new = copy_table(ctx, live, meta, ctx.name(self.table, "new"))
                new.append_constraint(self._fk(ctx))
                return new

            return [
                sqlite_rebuild_step(
                    ctx,
                    make,
                    "rebuild_fk",
                    self.table,
                    transform,
                    description=f"Rebuild {self.table} with foreign key {self.constraint_name(ctx)}",
                )
            ]
        return []

    def _rollback(self, ctx: OpContext) -> list[Step]:
        if ctx.lite:
            return []
        qt = ctx.qt(self.table, self.schema_)
        name = ctx.q(self.constraint_name(ctx))
        sql = (
            f"ALTER TABLE {qt} DROP CONSTRAINT IF EXISTS {name}"
            if ctx.pg
            else f"ALTER TABLE {qt} DROP FOREIGN KEY IF EXISTS {name}"
            if ctx.mariadb
            else f"ALTER TABLE {qt} DROP FOREIGN KEY {name}"
        )
        return [
            self.maker(ctx, "rollback")(
                "drop_fk",
                description=f"Drop foreign key {self.constraint_name(ctx)}",
                sql=[sql],
                lock="ACCESS EXCLUSIVE" if ctx.pg else "metadata lock",
                lock_risk="low",
                lock_reason="catalog only",
            )
        ]

    def lint(self, ctx: OpContext) -> list[Finding]:
        out = []
        if ctx.lite:
            out.append(self.finding(ctx, "sqlite-table-rebuild"))
        if ctx.my:
            out.append(
                self.finding(
                    ctx,
                    "app-cooperation",
                    "the key is added with foreign_key_checks=0 after the "
                    "orphan check; rows written in between are not re-checked",
                    severity="info",
                )
            )
        return out

    def tables(self) -> list[tuple[str | None, str]]:
        return [(self.schema_, self.table), (self.ref_schema, self.ref_table)]
