"""Backfill plans and validation checks, built from Core constructs for one dialect."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from dmig.spec.context import OpContext
from dmig.spec.ddl import tref
from dmig.spec.steps import BackfillPlan, Phase, ValidationCheck

Resolver = Callable[[str], sa.ColumnElement]


def distinct(ctx: OpContext, a: sa.ColumnElement, b: sa.ColumnElement, *, text: bool = False) -> sa.ColumnElement:
    """NULL-safe 'differs'. Text on MySQL compares bytes: PAD SPACE collations call 'a' and 'a ' equal.

    Spelled as explicit operators: SQLAlchemy's own is_distinct_from() loses literal_binds on
    SQLite/MySQL when compiled inside larger expressions.
    """
    if ctx.my:
        if text:
            from sqlalchemy.dialects.mysql import BINARY

            a, b = sa.cast(a, BINARY()), sa.cast(b, BINARY())
        return sa.not_(a.op("<=>", precedence=5, is_comparison=True)(b))
    opstring = "IS DISTINCT FROM" if ctx.pg else "IS NOT"
    return a.op(opstring, precedence=5, is_comparison=True)(b)


def row_ref(ctx: OpContext, prefix: str) -> Resolver:
    """Columns of the trigger row: NEW."col" / OLD."col" (prefix is a keyword, the name is quoted)."""
    assert prefix in ("NEW", "OLD")
    return lambda name: sa.literal_column(f"{prefix}.{ctx.q(name)}")


def table_ref(ctx: OpContext, table: str, schema: str | None, columns: list[str]) -> tuple[sa.TableClause, Resolver]:
    t = tref(ctx, table, schema, columns)
    return t, lambda name: t.c[name]


def _key_cond(keys: list[sa.ColumnElement], prefix: str, op: str) -> sa.ColumnElement:
    binds = [sa.bindparam(f"{prefix}_{i}") for i in range(len(keys))]
    if len(keys) == 1:
        left, right = keys[0], binds[0]
    else:
        left, right = sa.tuple_(*keys), sa.tuple_(*binds)
    return left > right if op == ">" else left <= right


def backfill_plan(
    ctx: OpContext,
    *,
    step_id: str,
    table: str,
    schema: str | None,
    key: list[str],
    columns: list[str],
    set_exprs: Callable[[Resolver], dict[str, sa.ColumnElement]],
    needs_work: Callable[[Resolver], sa.ColumnElement],
) -> BackfillPlan:
    t, col = table_ref(ctx, table, schema, [*key, *columns])
    values = {name: sa.literal_column(ctx.sql(expr)) for name, expr in set_exprs(col).items()}
    where_sql = ctx.sql(needs_work(col))
    # Literals inlined now (a separator in a merge's join is a literal): the range statements below keep only the
    # key binds. Parenthesised, since the predicate may be an OR and it is ANDed with the range.
    where = sa.literal_column(f"({where_sql})")
    keys = [t.c[k] for k in key]
    update = sa.update(t).values(values)
    in_range = sa.and_(_key_cond(keys, "lo", ">"), _key_cond(keys, "hi", "<="))
    from_start = _key_cond(keys, "hi", "<=")
    order = [k.asc() for k in keys]
    next_bound = sa.select(*keys).order_by(*order).limit(sa.literal_column("1")).offset(sa.bindparam("skip"))
    return BackfillPlan(
        op_index=ctx.index,
        step_id=step_id,
        table=table,
        schema=schema,
        key_columns=key,
        set_sql={name: ctx.sql(expr) for name, expr in set_exprs(col).items()},
        where_sql=where_sql,
        update_all_sql=ctx.sql(update.where(where)),
        update_range_sql=ctx.sql_binds(update.where(in_range, where)),
        update_from_start_sql=ctx.sql_binds(update.where(from_start, where)),
        key_range_sql=ctx.sql(sa.select(*keys).order_by(*[k.desc() for k in keys]).limit(sa.literal_column("1"))),
        next_bound_sql=ctx.sql_binds(next_bound.where(_key_cond(keys, "lo", ">"))),
        next_bound_from_start_sql=ctx.sql_binds(next_bound),
        remaining_sql=ctx.sql(sa.select(sa.func.count()).select_from(t).where(where)),
        batch_size=ctx.options.batch_size,
        throttle_ms=ctx.options.throttle_ms,
    )


def count_check(
    ctx: OpContext,
    *,
    slug: str,
    description: str,
    table: str,
    schema: str | None,
    columns: list[str],
    predicate: Callable[[Resolver], sa.ColumnElement],
    gates: Phase = "contract",
    rule: dict | None = None,
) -> ValidationCheck:
    """'No row matches predicate' as a check: SELECT count(*) ... WHERE predicate, expected 0."""
    t, col = table_ref(ctx, table, schema, columns)
    return ValidationCheck(
        id=f"op{ctx.index}.validate.{slug}",
        op_index=ctx.index,
        description=description,
        sql=ctx.sql(sa.select(sa.func.count()).select_from(t).where(predicate(col))),
        gates=gates,
        rule=rule,
    )


def catalog_check(
    ctx: OpContext,
    *,
    slug: str,
    description: str,
    table: str,
    schema: str | None,
    column: str | None = None,
    gates: Phase = "contract",
    expected: int = 1,
) -> ValidationCheck:
    """The table (or column) exists: 1 / does not: 0, read from the catalog with bound names."""
    params: dict = {"t": table}
    if ctx.pg:
        params["s"] = schema or "public"
        if column is None:
            sql = "SELECT count(*) FROM information_schema.tables WHERE table_schema = :s AND table_name = :t"
        else:
            params["c"] = column
            sql = (
                "SELECT count(*) FROM information_schema.columns WHERE table_schema = :s AND table_name = :t "
                "AND column_name = :c"
            )
    elif ctx.my:
        base = "table_schema = " + (":s" if schema else "DATABASE()")
        if schema:
            params["s"] = schema
        if column is None:
            sql = f"SELECT count(*) FROM information_schema.tables WHERE {base} AND table_name = :t"
        else:
            params["c"] = column
            sql = (
                f"SELECT count(*) FROM information_schema.columns WHERE {base} AND table_name = :t AND column_name = :c"
            )
    elif column is None:
        sql = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = :t"
    else:
        params["c"] = column
        sql = "SELECT count(*) FROM pragma_table_info(:t) WHERE name = :c"
    return ValidationCheck(
        id=f"op{ctx.index}.validate.{slug}",
        op_index=ctx.index,
        description=description,
        sql=sql,
        params=params,
        expected=expected,
        gates=gates,
    )
