"""set_not_null: make a column NOT NULL without a long exclusive lock.

PostgreSQL: contract adds ``CHECK (col IS NOT NULL) NOT VALID`` (instant), runs ``VALIDATE
CONSTRAINT`` (SHARE UPDATE EXCLUSIVE: reads and writes continue), then ``SET NOT NULL``, which on
PostgreSQL 12+ trusts the validated check instead of scanning, then drops the helper check. Before
12, SET NOT NULL would scan under ACCESS EXCLUSIVE, so the validated CHECK is kept as the
enforcement instead. The check is NOT added in expand: a NOT VALID check still binds every UPDATE
of a row not yet backfilled (and every INSERT of old code, and the backfill's own batches), so old
and new application code could not write during expand and backfill. Only at contract, after the
backfill and the no-NULLs validation, are the rows guaranteed filled.
MySQL/MariaDB: ``MODIFY COLUMN ... NOT NULL, ALGORITHM=INPLACE, LOCK=NONE`` (an online rebuild) in
contract, with the column's full definition taken from the live schema so the default and
collation survive. SQLite: the 12-step table rebuild (needs the live schema).
"""

from __future__ import annotations

from typing import Literal

import sqlalchemy as sa
from pydantic import Field

from dmig.spec.columns import Ident, TypeName
from dmig.spec.context import OpContext
from dmig.spec.ddl import StepMaker, column_sql, copy_table, mysql_online, sqlite_rebuild_step
from dmig.spec.dml import count_check
from dmig.spec.ops.base import TableOp
from dmig.spec.sqltypes import parse_type
from dmig.spec.steps import Finding, Step, ValidationCheck


def check_name(ctx: OpContext, table: str, column: str) -> str:
    return ctx.name(table, column, "nn")


def not_null_check_step(ctx: OpContext, make: StepMaker, table: str, schema: str | None, column: str) -> Step:
    """The NOT VALID helper check (PostgreSQL), added at contract only: see the module docstring."""
    name = check_name(ctx, table, column)
    qt = ctx.qt(table, schema)
    return make(
        "not_null_check",
        description=f"Add CHECK ({column} IS NOT NULL) NOT VALID (the backfill has filled every row): from now on "
        "new and updated rows must comply; existing rows are proven by VALIDATE next",
        sql=[
            f"ALTER TABLE {qt} DROP CONSTRAINT IF EXISTS {ctx.q(name)}",
            f"ALTER TABLE {qt} ADD CONSTRAINT {ctx.q(name)} CHECK ({ctx.q(column)} IS NOT NULL) NOT VALID",
        ],
        lock="ACCESS EXCLUSIVE",
        lock_risk="medium",
        lock_reason="instant (no scan), but queues behind long transactions: run with lock_timeout and retry",
        needs_app_cooperation=f"every writer must now set {column}",
        rollback=[f"op{ctx.index}.rollback.1.drop_not_null_check"],
    )


def _mysql_modify(ctx: OpContext, table: str, schema: str | None, column: str, type_name: str | None) -> list[str]:
    """MODIFY needs the whole column definition; [] when neither the live schema nor a type is known."""
    live = ctx.table(table, schema)
    if live is not None and column in live.c:
        src = live.c[column]
        col = sa.Column(column, src.type, nullable=False, server_default=src.server_default, comment=src.comment)
    elif type_name:
        col = sa.Column(column, parse_type(type_name), nullable=False)
    else:
        return []
    return [
        f"ALTER TABLE {ctx.qt(table, schema)} MODIFY COLUMN {column_sql(ctx, col)}"
        + mysql_online(ctx, "INPLACE", "NONE")
    ]


def not_null_contract_steps(
    ctx: OpContext, make: StepMaker, table: str, schema: str | None, column: str, type_name: str | None
) -> list[Step]:
    qt = ctx.qt(table, schema)
    if ctx.pg:
        name = ctx.q(check_name(ctx, table, column))
        steps = [
            not_null_check_step(ctx, make, table, schema, column),
            make(
                "validate_check",
                description=f"VALIDATE the NOT NULL check on {table}.{column} (reads and writes go on)",
                sql=[f"ALTER TABLE {qt} VALIDATE CONSTRAINT {name}"],
                lock="SHARE UPDATE EXCLUSIVE",
                lock_risk="low",
                lock_reason="scans the table but blocks neither reads nor writes (only other DDL/VACUUM)",
            ),
        ]
        if ctx.at_least(12):
            steps.append(
                make(
                    "set_not_null",
                    description=f"SET NOT NULL on {table}.{column} (uses the validated check: no scan), "
                    "then drop the helper check",
                    sql=[
                        f"ALTER TABLE {qt} ALTER COLUMN {ctx.q(column)} SET NOT NULL",
                        f"ALTER TABLE {qt} DROP CONSTRAINT IF EXISTS {name}",
                    ],
                    lock="ACCESS EXCLUSIVE",
                    lock_risk="medium",
                    lock_reason="no scan thanks to the validated check, but queues behind long transactions",
                    needs_app_cooperation=f"every writer must set {column}",
                )
            )
        return steps
    if ctx.my:
        return [
            make(
                "modify_not_null",
                description=f"MODIFY {table}.{column} NOT NULL online (ALGORITHM=INPLACE, LOCK=NONE)",
                sql=_mysql_modify(ctx, table, schema, column, type_name),
                requires_live_schema=type_name is None,
                lock="metadata lock (exclusive at start/end; DML continues)",
                lock_risk="medium",
                lock_reason="online rebuild of the table: time ~ table size, writes continue "
                "(fails if STRICT mode is off)",
                rewrites_table=True,
                needs_app_cooperation=f"every writer must set {column}",
            )
        ]

    def transform(live: sa.Table, meta: sa.MetaData) -> sa.Table:
        new = copy_table(ctx, live, meta, ctx.name(table, "new"))
        new.c[column].nullable = False
        return new

    return [
        sqlite_rebuild_step(
            ctx,
            make,
            "rebuild_not_null",
            table,
            transform,
            description=f"Rebuild {table} with {column} NOT NULL (SQLite cannot alter a column in place)",
            needs_app_cooperation=f"every writer must set {column}",
        )
    ]


def not_null_rollback_steps(ctx: OpContext, make: StepMaker, table: str, schema: str | None, column: str) -> list[Step]:
    if not ctx.pg:
        return []
    return [
        make(
            "drop_not_null_check",
            description=f"Drop the NOT NULL helper check on {table}.{column} (left by a contract that stopped)",
            sql=[
                f"ALTER TABLE {ctx.qt(table, schema)} DROP CONSTRAINT IF EXISTS {ctx.q(check_name(ctx, table, column))}"
            ],
            lock="ACCESS EXCLUSIVE",
            lock_risk="low",
            lock_reason="catalog only",
        )
    ]


class SetNotNull(TableOp):
    """Make an existing column NOT NULL (after its NULLs are backfilled)."""

    op: Literal["set_not_null"]
    column: Ident
    type: TypeName | None = Field(default=None, description="Column type (MySQL, when rendering without a database).")

    def expand(self, ctx: OpContext) -> list[Step]:
        return []  # nothing binds writers before contract (see the module docstring)

    def validate(self, ctx: OpContext) -> list[ValidationCheck]:
        return [
            count_check(
                ctx,
                slug="no_nulls",
                description=f"rows of {self.table} with {self.column} NULL = 0",
                table=self.table,
                schema=self.schema_,
                columns=[self.column],
                predicate=lambda col: col(self.column).is_(None),
                rule={"type": "not_null", "table": self.table, "columns": [self.column]},
            )
        ]

    def contract(self, ctx: OpContext) -> list[Step]:
        return not_null_contract_steps(
            ctx, self.maker(ctx, "contract"), self.table, self.schema_, self.column, self.type
        )

    def _rollback(self, ctx: OpContext) -> list[Step]:
        return not_null_rollback_steps(ctx, self.maker(ctx, "rollback"), self.table, self.schema_, self.column)

    def lint(self, ctx: OpContext) -> list[Finding]:
        out: list[Finding] = []
        if ctx.pg and not ctx.at_least(12):
            out.append(
                self.finding(
                    ctx,
                    "pg-set-not-null-without-check",
                    severity="info",
                    message=(
                        f"{ctx.version_text}: SET NOT NULL cannot use a CHECK to skip its scan; this operation "
                        "keeps the "
                        "validated CHECK (col IS NOT NULL) as the enforcement instead"
                    ),
                )
            )
        if ctx.lite:
            out.append(self.finding(ctx, "sqlite-table-rebuild"))
        if ctx.my and self.type is None and ctx.table(self.table, self.schema_) is None:
            out.append(
                self.finding(
                    ctx,
                    "mysql-table-copy",
                    severity="warning",
                    message=(
                        "MODIFY needs the column's full definition: render against the live database (or give "
                        "type) so its "
                        "default and collation are kept"
                    ),
                )
            )
        return out
