"""Two-way sync between an old column shape and a new one, so old and new application code can
write at the same time during an expand/contract migration.

One description (``Sync``) drives every dialect: ``forward`` computes the new columns from the
old ones, ``reverse`` the old from the new. Rules applied on each written row:

* INSERT: new columns all NULL and some old column set -> fill new from old (an old writer);
  old columns all NULL and some new column set -> fill old from new (a new writer).
* UPDATE: old columns changed and new untouched -> recompute new; new changed and old untouched,
  and new no longer matches forward(old) -> recompute old. The last guard keeps the backfill
  (which writes exactly forward(old)) from rewriting the old column. When reverse(forward(x)) = x
  for every value (``exact_roundtrip``: split_column), "old differs from reverse(new)" decides the
  same rows' outcome (recomputing old where it already equals reverse(new) changes nothing) and is
  cheaper: one join instead of a split per backfilled row.
* Both sides changed in one statement: the writer dual-wrote; we keep what it wrote.

PostgreSQL: one plpgsql function, called by a BEFORE INSERT trigger and a BEFORE UPDATE OF <cols>
trigger, each with a WHEN clause holding the conditions above: the backfill's own rows (new columns
set to exactly forward(old)) fail the WHEN, so no PL/pgSQL frame starts for them (the backfill ran
at about half speed when the function ran for every row). MySQL/MariaDB: BEFORE INSERT and BEFORE
UPDATE triggers assigning NEW.<col>; triggers have no WHEN clause there, so the UPDATE body tests
the cheapest facts first and nests the rest (a backfilled row costs one join and a few byte
compares, no split). SQLite cannot assign NEW in a trigger, so AFTER triggers (with WHEN clauses)
UPDATE the row by key; they rely on recursive_triggers being OFF (the default) and, unlike BEFORE
triggers, run after NOT NULL checks, so an old column declared NOT NULL must be written by new
code too until contract.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from dmig.errors import InvalidInput
from dmig.spec.context import OpContext
from dmig.spec.ddl import StepMaker, drop_trigger, tref
from dmig.spec.dml import Resolver, backfill_plan, count_check, distinct, row_ref
from dmig.spec.steps import BackfillPlan, Step, ValidationCheck

Exprs = Callable[[Resolver], dict[str, sa.ColumnElement]]
PG_TAG = "$dmig$"


@dataclass
class Sync:
    table: str
    schema: str | None
    key: list[str]
    old: list[str]
    new: list[str]
    forward: Exprs
    reverse: Exprs
    slug: str
    text: bool = True
    exact_roundtrip: bool = False

    def all_null(self, cols: list[str], row: Resolver) -> sa.ColumnElement:
        return sa.and_(*[row(c).is_(None) for c in cols])

    def changed(self, ctx: OpContext, cols: list[str]) -> sa.ColumnElement:
        new, old = row_ref(ctx, "NEW"), row_ref(ctx, "OLD")
        return sa.or_(*[distinct(ctx, new(c), old(c), text=self.text) for c in cols])

    def inconsistent(self, ctx: OpContext, row: Resolver) -> sa.ColumnElement:
        """Some new column differs from forward(old): the row still needs (back)filling."""
        fwd = self.forward(row)
        return sa.or_(*[distinct(ctx, row(c), fwd[c], text=self.text) for c in self.new])

    def roundtrip_broken(self, ctx: OpContext, row: Resolver) -> sa.ColumnElement:
        """Some old column differs from reverse(new): the new shape does not rebuild the original."""
        rev = self.reverse(row)
        return sa.or_(*[distinct(ctx, row(c), rev[c], text=self.text) for c in self.old])

    def needs_reverse(self, ctx: OpContext, row: Resolver) -> sa.ColumnElement:
        """The new columns were written to something the old ones do not already stand for."""
        return self.roundtrip_broken(ctx, row) if self.exact_roundtrip else self.inconsistent(ctx, row)

    def when(self, ctx: OpContext) -> dict[str, str]:
        """The trigger conditions, composed in Core (so precedence is right) and compiled.

        ``insert``/``update`` are the WHEN clauses of PostgreSQL's triggers (either branch applies);
        ``old_changed``/``new_changed``/``needs_reverse`` are the pieces MySQL's UPDATE body nests."""
        new = row_ref(ctx, "NEW")
        old_changed, new_changed = self.changed(ctx, self.old), self.changed(ctx, self.new)
        conds = {
            "insert_fwd": sa.and_(self.all_null(self.new, new), sa.not_(self.all_null(self.old, new))),
            "insert_rev": sa.and_(self.all_null(self.old, new), sa.not_(self.all_null(self.new, new))),
            "update_fwd": sa.and_(old_changed, sa.not_(new_changed)),
            "update_rev": sa.and_(new_changed, sa.not_(old_changed), self.needs_reverse(ctx, new)),
            "old_changed": old_changed,
            "new_changed": new_changed,
            "needs_reverse": self.needs_reverse(ctx, new),
        }
        conds["insert"] = sa.or_(conds["insert_fwd"], conds["insert_rev"])
        conds["update"] = sa.or_(conds["update_fwd"], conds["update_rev"])
        # Parenthesised: PL/pgSQL's IF reads up to the first THEN outside parentheses, CASE ... THEN included.
        return {k: f"({ctx.sql(v)})" for k, v in conds.items()}

    # ------------------------------------------------------------------ names
    def trigger_names(self, ctx: OpContext) -> list[str]:
        if ctx.pg:
            # UPDATE trigger first: it keeps the name of the single INSERT OR UPDATE trigger of earlier releases,
            # so a migration expanded by one still contracts and rolls back cleanly.
            return [ctx.name(self.table, self.slug, "sync"), ctx.name(self.table, self.slug, "sync", "ins")]
        if ctx.my:
            return [ctx.name(self.table, self.slug, s) for s in ("bi", "bu")]
        return [ctx.name(self.table, self.slug, s) for s in ("ai_fwd", "ai_rev", "au_fwd", "au_rev")]

    def function_name(self, ctx: OpContext) -> str:
        return ctx.name(self.table, self.slug, "fn")


def _assignments(ctx: OpContext, exprs: dict[str, sa.ColumnElement], sep: str, op: str) -> str:
    return sep.join(f"NEW.{ctx.q(c)} {op} {ctx.sql(e)}" for c, e in exprs.items())


def _pg_function(ctx: OpContext, s: Sync) -> str:
    new = row_ref(ctx, "NEW")
    fwd = _assignments(ctx, s.forward(new), "; ", ":=")
    rev = _assignments(ctx, s.reverse(new), "; ", ":=")
    w = s.when(ctx)
    body = f"""
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF {w["insert_fwd"]} THEN
      {fwd};
    ELSIF {w["insert_rev"]} THEN
      {rev};
    END IF;
  ELSE
    IF {w["update_fwd"]} THEN
      {fwd};
    ELSIF {w["update_rev"]} THEN
      {rev};
    END IF;
  END IF;
  RETURN NEW;
END
"""
    if PG_TAG in body:
        raise InvalidInput("an expression contains the reserved text $dmig$")
    fn = ctx.qt(s.function_name(ctx), s.schema)
    return f"CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS {PG_TAG}{body}{PG_TAG}"


def _pg_trigger(ctx: OpContext, s: Sync) -> list[str]:
    upd, ins = s.trigger_names(ctx)
    cols = ", ".join(ctx.q(c) for c in [*s.old, *s.new])
    call = f"EXECUTE {'FUNCTION' if ctx.at_least(11) else 'PROCEDURE'} {ctx.qt(s.function_name(ctx), s.schema)}()"
    qt, w = ctx.qt(s.table, s.schema), s.when(ctx)
    return [
        _pg_function(ctx, s),
        drop_trigger(ctx, upd, s.table, s.schema),
        drop_trigger(ctx, ins, s.table, s.schema),
        f"CREATE TRIGGER {ctx.q(ins)} BEFORE INSERT ON {qt} FOR EACH ROW WHEN {w['insert']} {call}",
        f"CREATE TRIGGER {ctx.q(upd)} BEFORE UPDATE OF {cols} ON {qt} FOR EACH ROW WHEN {w['update']} {call}",
    ]


def _mysql_triggers(ctx: OpContext, s: Sync) -> list[str]:
    ins, upd = s.trigger_names(ctx)
    new = row_ref(ctx, "NEW")
    fwd = "SET " + _assignments(ctx, s.forward(new), ", ", "=")
    rev = "SET " + _assignments(ctx, s.reverse(new), ", ", "=")
    w = s.when(ctx)
    qt = ctx.qt(s.table, s.schema)
    insert = (
        f"CREATE TRIGGER {ctx.qt(ins, s.schema)} BEFORE INSERT ON {qt} FOR EACH ROW BEGIN\n"
        f"  IF {w['insert_fwd']} THEN {fwd};\n"
        f"  ELSEIF {w['insert_rev']} THEN {rev};\n"
        "  END IF;\nEND"
    )
    # Nested so a backfilled row (old unchanged, new = forward(old)) exits after the cheapest tests.
    update = (
        f"CREATE TRIGGER {ctx.qt(upd, s.schema)} BEFORE UPDATE ON {qt} FOR EACH ROW BEGIN\n"
        f"  IF {w['old_changed']} THEN\n"
        f"    IF NOT {w['new_changed']} THEN {fwd}; END IF;\n"
        f"  ELSEIF {w['new_changed']} AND {w['needs_reverse']} THEN {rev};\n"
        "  END IF;\nEND"
    )
    return [drop_trigger(ctx, ins, s.table, s.schema), insert, drop_trigger(ctx, upd, s.table, s.schema), update]


def _sqlite_triggers(ctx: OpContext, s: Sync) -> list[str]:
    ai_fwd, ai_rev, au_fwd, au_rev = s.trigger_names(ctx)
    new = row_ref(ctx, "NEW")
    t = tref(ctx, s.table, None, [*s.key, *s.old, *s.new])
    by_key = sa.and_(*[t.c[k] == new(k) for k in s.key])

    def update(exprs: dict[str, sa.ColumnElement]) -> str:
        return ctx.sql(sa.update(t).values({c: sa.literal_column(ctx.sql(e)) for c, e in exprs.items()}).where(by_key))

    w = s.when(ctx)
    qt = ctx.q(s.table)
    old_cols = ", ".join(ctx.q(x) for x in s.old)
    new_cols = ", ".join(ctx.q(x) for x in s.new)
    specs = [
        (ai_fwd, "INSERT", w["insert_fwd"], s.forward),
        (ai_rev, "INSERT", w["insert_rev"], s.reverse),
        (au_fwd, f"UPDATE OF {old_cols}", w["update_fwd"], s.forward),
        (au_rev, f"UPDATE OF {new_cols}", w["update_rev"], s.reverse),
    ]
    out = []
    for name, event, when, exprs in specs:
        out.append(drop_trigger(ctx, name, s.table, None))
        out.append(
            f"CREATE TRIGGER {ctx.q(name)} AFTER {event} ON {qt} FOR EACH ROW WHEN {when}\n"
            f"BEGIN\n  {update(exprs(new))};\nEND"
        )
    return out


def create_triggers_step(ctx: OpContext, make: StepMaker, s: Sync, rollback_id: str) -> Step:
    if ctx.pg:
        sql, lock = _pg_trigger(ctx, s), "SHARE ROW EXCLUSIVE"
        reason = "CREATE TRIGGER blocks writes (not reads) for a moment; waits behind long transactions"
    elif ctx.my:
        sql, lock = _mysql_triggers(ctx, s), "metadata lock (exclusive, brief)"
        reason = (
            "CREATE TRIGGER takes the table's metadata lock briefly; with binary logging on it needs "
            "SUPER or log_bin_trust_function_creators=1"
        )
    else:
        sql, lock = _sqlite_triggers(ctx, s), "database write lock (RESERVED -> EXCLUSIVE at commit)"
        reason = "schema-only change, one short write transaction"
    return make(
        "sync_triggers",
        description=f"Create triggers keeping {', '.join(s.old)} <-> {', '.join(s.new)} in sync both ways on "
        f"{s.table} (old and new application code may write at the same time)",
        sql=sql,
        transactional=True,
        lock=lock,
        lock_risk="medium" if not ctx.lite else "low",
        lock_reason=reason,
        needs_app_cooperation="none while the triggers run; new code may write either shape",
        rollback=[rollback_id],
    )


def drop_triggers_sql(ctx: OpContext, s: Sync) -> list[str]:
    out = [drop_trigger(ctx, n, s.table, s.schema) for n in s.trigger_names(ctx)]
    if ctx.pg:
        out.append(f"DROP FUNCTION IF EXISTS {ctx.qt(s.function_name(ctx), s.schema)}()")
    return out


def sync_backfill(ctx: OpContext, s: Sync, step_id: str) -> BackfillPlan:
    return backfill_plan(
        ctx,
        step_id=step_id,
        table=s.table,
        schema=s.schema,
        key=s.key,
        columns=[*s.old, *s.new],
        set_exprs=s.forward,
        needs_work=lambda col: s.inconsistent(ctx, col),
    )


def sync_checks(ctx: OpContext, s: Sync, *, roundtrip: bool = True) -> list[ValidationCheck]:
    cols = [*s.key, *s.old, *s.new]
    checks = [
        count_check(
            ctx,
            slug="backfilled",
            description=f"every row of {s.table}: {', '.join(s.new)} equal what {', '.join(s.old)} maps to "
            "(rows still needing the backfill = 0)",
            table=s.table,
            schema=s.schema,
            columns=cols,
            predicate=lambda col: s.inconsistent(ctx, col),
        )
    ]
    if roundtrip:
        checks.append(
            count_check(
                ctx,
                slug="roundtrip",
                description=f"every row of {s.table}: {', '.join(s.new)} rebuild {', '.join(s.old)} exactly "
                "(rows that do not = 0)",
                table=s.table,
                schema=s.schema,
                columns=cols,
                predicate=lambda col: s.roundtrip_broken(ctx, col),
            )
        )
    return checks
