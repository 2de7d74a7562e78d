"""split_column: one column becomes two (the seed's users.user_name -> first_name, last_name).

Splitting rule (every dialect): split on the FIRST occurrence of ``separator``; the first part is
what comes before it, the second is everything after it (further separators included). No
separator: first = the whole value, second = NULL. NULL: both NULL. '' : first = '', second NULL.
Rebuilding: second NULL -> first; otherwise coalesce(first, '') || separator || second. So every
string round-trips exactly (leading/trailing separators and spaces included).

Old readers after contract (``compat``):
* ``generated_column`` (default on MySQL/MariaDB, SQLite, PostgreSQL 18+): the old column is
  replaced, in one statement/transaction, by a VIRTUAL generated column with the same name
  computed from the parts: ``SELECT user_name FROM users`` keeps working unchanged, nothing is
  stored twice, no rewrite.
* ``view`` (default on PostgreSQL < 18, whose generated columns are STORED and would rewrite the
  table under ACCESS EXCLUSIVE): the pgroll way. Expand creates ``<compat_schema>.<table>``, a view
  of the table in its old shape; old readers point their search_path at compat_schema first (e.g.
  ``SET search_path = dmig_compat, public``) and keep reading ``user_name`` through it; contract
  re-creates the view with user_name computed from the parts, in the same transaction that drops
  the column. On MySQL/SQLite a view named ``compat_view`` (default ``<table>_compat``) is created.
* ``none``: old readers must be gone before contract.
"""

from __future__ import annotations

from typing import Annotated, Literal

import sqlalchemy as sa
from pydantic import AfterValidator, Field, model_validator

from dmig.spec.columns import Ident, TypeName
from dmig.spec.context import OpContext
from dmig.spec.ddl import brief_alter_lock, mysql_locked_facts, mysql_online, mysql_write_locked, type_sql
from dmig.spec.dml import Resolver, backfill_plan, count_check
from dmig.spec.expr import char_length, concat, position
from dmig.spec.ops.base import TableOp
from dmig.spec.ops.common import add_columns_step, drop_columns_sql, drop_columns_step, pg_drop_schema_if_empty
from dmig.spec.sqltypes import parse_type
from dmig.spec.steps import BackfillPlan, Finding, Step, ValidationCheck
from dmig.spec.sync import Sync, create_triggers_step, drop_triggers_sql, sync_checks


def _separator(value: str) -> str:
    if not value or len(value) > 16 or any(ord(ch) < 32 for ch in value):
        raise ValueError("separator must be 1-16 printable characters")
    return value


Separator = Annotated[str, AfterValidator(_separator)]
Compat = Literal["auto", "view", "generated_column", "none"]


def split_exprs(ctx: OpContext, source: sa.ColumnElement, sep: str) -> tuple[sa.ColumnElement, sa.ColumnElement]:
    """(first, rest) of source split on the first sep; see the module docstring for NULL/'' rules."""
    lit = sa.literal(sep, sa.String())
    pos = position(lit, source, ctx.dialect)
    first = sa.case((pos > 0, sa.func.substr(source, 1, pos - 1)), else_=source)
    rest = sa.case((pos > 0, sa.func.substr(source, pos + char_length(lit, ctx.dialect))), else_=sa.null())
    return first, rest


def join_expr(first: sa.ColumnElement, rest: sa.ColumnElement, sep: str) -> sa.ColumnElement:
    lit = sa.literal(sep, sa.String())
    return sa.case(
        (rest.is_(None), first), else_=concat([sa.func.coalesce(first, sa.literal("", sa.String())), lit, rest])
    )


class SplitColumn(TableOp):
    """Split ``column`` into two new columns (``into``), keeping both shapes in sync until contract."""

    op: Literal["split_column"]
    column: Ident = Field(description="The column to split, e.g. user_name.")
    into: list[Ident] = Field(min_length=2, max_length=2, description="The two new columns: [first, rest].")
    separator: Separator = Field(default=" ", description="Split on the first occurrence of this text.")
    type: TypeName = Field(default="varchar(255)", description="Type of the new columns.")
    source_type: TypeName = Field(default="varchar(255)", description="Type of the old column (compat column/view).")
    compat: Compat = Field(default="auto", description="How old readers keep reading the column after contract.")
    compat_schema: Ident = Field(default="dmig_compat", description="PostgreSQL schema holding the compat view.")
    compat_view: Ident | None = Field(default=None, description="MySQL/SQLite compat view name (<table>_compat).")

    @model_validator(mode="after")
    def _distinct(self) -> SplitColumn:
        if len({self.column, *self.into}) != 3:
            raise ValueError("column and the two 'into' columns must be three different names")
        return self

    # ------------------------------------------------------------------ shared description
    def sync(self, ctx: OpContext) -> Sync:
        first, rest = self.into

        def forward(col: Resolver) -> dict[str, sa.ColumnElement]:
            f, r = split_exprs(ctx, col(self.column), self.separator)
            return {first: f, rest: r}

        def reverse(col: Resolver) -> dict[str, sa.ColumnElement]:
            return {self.column: join_expr(col(first), col(rest), self.separator)}

        return Sync(
            self.table,
            self.schema_,
            self.key_columns(ctx),
            [self.column],
            list(self.into),
            forward,
            reverse,
            slug=f"split_{self.column}",
            exact_roundtrip=True,  # join(split(x)) = x for every string (module docstring)
        )

    def compat_mode(self, ctx: OpContext) -> str:
        if self.compat != "auto":
            return self.compat
        return "view" if ctx.pg and not ctx.at_least(18) else "generated_column"

    def _view_name(self) -> str:
        return self.compat_view or f"{self.table}_compat"

    def _pg_view(self, ctx: OpContext) -> str:
        return ctx.qt(self.table, self.compat_schema)

    # ------------------------------------------------------------------ phases
    def expand(self, ctx: OpContext) -> list[Step]:
        make = self.maker(ctx, "expand")
        steps: list[Step] = []
        if ctx.pg and self.compat_mode(ctx) == "view":
            steps.append(
                make(
                    "compat_view",
                    description=f"Create schema {self.compat_schema} with a view {self.table} in the table's current "
                    "(old) shape; old readers set search_path to it before contract",
                    sql=[
                        f"CREATE SCHEMA IF NOT EXISTS {ctx.q(self.compat_schema)}",
                        f"CREATE OR REPLACE VIEW {self._pg_view(ctx)} AS SELECT * FROM "
                        f"{ctx.qt(self.table, self.schema_)}",
                    ],
                    lock="ACCESS SHARE",
                    lock_risk="low",
                    lock_reason="creating a view only reads the catalog",
                    needs_app_cooperation=f"old readers: SET search_path = {self.compat_schema}, <schema> "
                    "before contract",
                    rollback=[f"op{ctx.index}.rollback.3.drop_compat_view"],
                )
            )
        new_cols = [sa.Column(c, parse_type(self.type), nullable=True) for c in self.into]
        steps.append(
            add_columns_step(
                ctx,
                make,
                self.table,
                self.schema_,
                new_cols,
                rollback_id=f"op{ctx.index}.rollback.2.drop_columns",
                description=f"Add nullable {', '.join(self.into)} ({self.type}) to {self.table}",
            )
        )
        steps.append(create_triggers_step(ctx, make, self.sync(ctx), f"op{ctx.index}.rollback.1.drop_triggers"))
        return steps

    def backfill(self, ctx: OpContext) -> BackfillPlan:
        s = self.sync(ctx)
        # Only rows never split: a row a new writer filled (e.g. first_name 'Mary Ann') is left alone.
        return backfill_plan(
            ctx,
            step_id=f"op{ctx.index}.backfill.{self.column}",
            table=self.table,
            schema=self.schema_,
            key=s.key,
            columns=[*s.old, *s.new],
            set_exprs=s.forward,
            needs_work=lambda col: sa.and_(s.all_null(s.new, col), col(self.column).is_not(None)),
        )

    def validate(self, ctx: OpContext) -> list[ValidationCheck]:
        s = self.sync(ctx)
        cols = [*s.key, *s.old, *s.new]
        unfilled = count_check(
            ctx,
            slug="unsplit",
            description=f"rows of {self.table} with {self.column} set and no parts yet = 0",
            table=self.table,
            schema=self.schema_,
            columns=cols,
            predicate=lambda col: sa.and_(s.all_null(s.new, col), col(self.column).is_not(None)),
        )
        roundtrip = [c for c in sync_checks(ctx, s) if c.id.endswith("roundtrip")]
        return [unfilled, *roundtrip]

    def contract(self, ctx: OpContext) -> list[Step]:
        make = self.maker(ctx, "contract")
        s = self.sync(ctx)
        mode = self.compat_mode(ctx)
        first, rest = self.into
        qt = ctx.qt(self.table, self.schema_)
        bare = lambda name: sa.literal_column(ctx.q(name))  # noqa: E731 - columns of the row itself
        rebuilt = join_expr(bare(first), bare(rest), self.separator)
        src_type = type_sql(ctx, parse_type(self.source_type))
        app = (
            f"no writer may still write {self.column}; readers use the compat {mode}"
            if mode != "none"
            else (f"no reader or writer may still use {self.column}")
        )
        drop_trg = drop_triggers_sql(ctx, s)
        if mode == "generated_column":
            gen = f"{ctx.q(self.column)} {src_type} GENERATED ALWAYS AS ({ctx.sql(rebuilt)}) VIRTUAL"
            lock = brief_alter_lock(ctx)
            if ctx.my:
                # Under LOCK TABLES: a new-shape write between DROP TRIGGER and the ALTER would leave the old
                # column stale for old readers until the ALTER commits.
                sql = mysql_write_locked(
                    ctx,
                    self.table,
                    self.schema_,
                    [
                        *drop_trg,
                        f"ALTER TABLE {qt} DROP COLUMN {ctx.q(self.column)}, ADD COLUMN {gen}"
                        + mysql_online(ctx, "INPLACE" if ctx.mysql_at_least((10, 4), (8, 0, 29)) else None, None),
                    ],
                )
                lock = mysql_locked_facts(ctx, lock)
            else:
                sql = [
                    *drop_trg,
                    *drop_columns_sql(ctx, self.table, self.schema_, [self.column]),
                    f"ALTER TABLE {qt} ADD COLUMN {gen}",
                ]
            return [
                make(
                    "replace_with_generated",
                    description=f"Drop the sync triggers and replace {self.column} by a VIRTUAL generated column "
                    f"rebuilt from {first}, {rest} (old readers keep working)",
                    sql=sql,
                    destructive=True,
                    rewrites_table=ctx.lite,
                    needs_app_cooperation=app,
                    **lock,
                )
            ]
        prefix, extra = [], []
        if mode == "view":
            body = f"SELECT t.*, CAST({ctx.sql(rebuilt)} AS {src_type}) AS {ctx.q(self.column)} FROM {qt} t"
            if ctx.pg:
                # Lock order = the order of old readers: a query on the view locks the view, then (rewriter) the
                # table. Dropping the triggers first would hold the table while waiting for the view: a deadlock.
                # So the view goes first (DROP VIEW locks only the view), then the table, before any other work.
                prefix = [
                    f"DROP VIEW IF EXISTS {self._pg_view(ctx)}",
                    f"LOCK TABLE {qt} IN ACCESS EXCLUSIVE MODE",
                ]
                extra = [f"CREATE VIEW {self._pg_view(ctx)} AS {body}"]
            else:
                view = ctx.qt(self._view_name(), self.schema_)
                extra = [f"DROP VIEW IF EXISTS {view}", f"CREATE VIEW {view} AS {body}"]
            body_desc = " and re-create the compat view computing it from the parts"
        else:
            body_desc = ""
        return [
            drop_columns_step(
                ctx,
                make,
                "drop_old_column",
                self.table,
                self.schema_,
                [self.column],
                description=f"Drop the sync triggers and {self.column}{body_desc}",
                destructive=True,
                prefix_sql=[*prefix, *drop_trg],
                extra_sql=extra,
                app=app,
            )
        ]

    def _rollback(self, ctx: OpContext) -> list[Step]:
        make = self.maker(ctx, "rollback")
        s = self.sync(ctx)
        steps = [
            make(
                "drop_triggers",
                description="Drop the sync triggers",
                sql=drop_triggers_sql(ctx, s),
                **brief_alter_lock(ctx),
            )
        ]
        steps.append(
            drop_columns_step(
                ctx,
                make,
                "drop_columns",
                self.table,
                self.schema_,
                list(self.into),
                description=f"Drop {', '.join(self.into)} (the old column still holds every value)",
                destructive=False,
            )
        )
        if ctx.pg and self.compat_mode(ctx) == "view":
            steps.append(
                make(
                    "drop_compat_view",
                    description="Drop the compat view (and its schema when empty)",
                    sql=[f"DROP VIEW IF EXISTS {self._pg_view(ctx)}", pg_drop_schema_if_empty(ctx, self.compat_schema)],
                    lock="ACCESS EXCLUSIVE (on the view only)",
                    lock_risk="low",
                    lock_reason="touches only the view",
                )
            )
        return steps

    def lint(self, ctx: OpContext) -> list[Finding]:
        out = self.key_findings(ctx)
        mode = self.compat_mode(ctx)
        if ctx.pg and mode == "generated_column" and not ctx.at_least(18):
            out.append(self.finding(ctx, "pg-stored-generated-rewrite"))
        if ctx.pg and mode == "view":
            out.append(
                self.finding(
                    ctx,
                    "app-cooperation",
                    f"old readers must set search_path = {self.compat_schema}, ... before contract to keep reading "
                    f"{self.column}",
                    severity="info",
                )
            )
        if ctx.lite:
            live = ctx.table(self.table, self.schema_)
            if live is not None and self.column in live.c and not live.c[self.column].nullable:
                out.append(self.finding(ctx, "sqlite-trigger-not-null"))
        if ctx.lite and not ctx.at_least(3, 35):
            out.append(self.finding(ctx, "sqlite-version", f"{ctx.version_text} has no DROP COLUMN (3.35+)"))
        return out
