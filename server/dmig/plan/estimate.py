"""Duration estimates for a plan's steps and backfills, each labelled with where its figure came from.

Preference order: what past runs on this dialect measured (the expertise file's learnings, read
through ``measured_throughput``), else a measurement taken now on the live database, else a
rule of thumb that says so. The live measurement never writes to the real table: it copies a
sample of rows into a TEMPORARY table of this session, adds the new columns there with the
operation's own expand SQL and times the operation's own backfill UPDATE on it. What that cannot
see (trigger and index maintenance on the real table) is stated in the estimate's detail.
"""

from __future__ import annotations

import contextlib
import statistics
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from dmig.errors import DmigError
from dmig.plan.model import Estimate
from dmig.spec.context import OpContext
from dmig.spec.steps import BackfillPlan, Step

SAMPLE_ROWS = 20_000
CATALOG_STEP_S = 0.05  # a catalog-only ALTER/CREATE TRIGGER, lock granted at once
REWRITE_ROWS_PER_S = 50_000.0  # rule of thumb for a table rewrite when nothing was measured
EXPERTISE_FACTS = 5


@dataclass
class Rate:
    rows_per_s: float
    source: str
    detail: str


def expertise_rate(project_dir: Path, dialect: str, operation: str) -> Rate | None:
    """Median of the newest measured rates for this dialect and operation (None when nothing was measured)."""
    from dmig.harness.expertise import measured_throughput

    try:
        facts = measured_throughput(project_dir, dialect, operation)
    except DmigError:
        return None
    rates = [float(f["rows_per_s"]) for f in facts if f.get("rows_per_s")][:EXPERTISE_FACTS]
    if not rates:
        return None
    newest = facts[0]
    where = f" on {newest['table']}" if newest.get("table") else ""
    return Rate(
        statistics.median(rates),
        "expertise",
        f"median of the {len(rates)} newest measured {operation} rate(s) on {dialect} in expertise.yaml "
        f"(newest {newest.get('date') or 'undated'}{where}: {float(newest.get('rows_per_s') or 0):,.0f} rows/s)",
    )


def _sample_select(ctx: OpContext, op: Any, rows: int) -> str:
    t = sa.table(op.table, *[sa.column(k) for k in op.key_columns(ctx)], schema=op.schema_)
    stmt = sa.select(sa.literal_column("*")).select_from(t).order_by(*[t.c[k] for k in op.key_columns(ctx)])
    return ctx.sql(stmt.limit(rows))


def _temp_table_sql(ctx: OpContext, name: str, select_sql: str) -> str:
    temp = "TEMP" if ctx.lite or ctx.pg else "TEMPORARY"
    return f"CREATE {temp} TABLE {ctx.q(name)} AS {select_sql}"


def _drop_temp_sql(ctx: OpContext, name: str) -> str:
    return f"DROP {'TEMPORARY ' if ctx.my else ''}TABLE IF EXISTS {ctx.q(name)}"


def _binds(prefix: str, values: tuple[Any, ...]) -> dict[str, Any]:
    return {f"{prefix}_{i}": v for i, v in enumerate(values)}


def _batched(conn: sa.Connection, plan: BackfillPlan) -> int:
    """The executor's loop (key-ordered batches, one commit each) without checkpoints: on the temporary copy."""
    top = conn.exec_driver_sql(plan.key_range_sql).first()
    if top is None:
        return 0
    lo: tuple[Any, ...] | None = None
    done = 0
    skip = {"skip": plan.batch_size - 1}
    while True:
        if lo is None:
            row = conn.execute(sa.text(plan.next_bound_from_start_sql), skip).first()
        else:
            row = conn.execute(sa.text(plan.next_bound_sql), {**skip, **_binds("lo", lo)}).first()
        bound = tuple(row) if row is not None else tuple(top)
        params = _binds("hi", bound) | (_binds("lo", lo) if lo is not None else {})
        done += conn.execute(
            sa.text(plan.update_from_start_sql if lo is None else plan.update_range_sql), params
        ).rowcount
        if row is None or bound >= tuple(top):
            return done
        lo = bound


def sample_backfill(conn: sa.Connection, op: Any, ctx: OpContext, rows: int = SAMPLE_ROWS) -> Rate | None:
    """Time the operation's real backfill, batch by batch, on a temporary copy of ``rows`` rows (None if impossible).

    ``conn`` must be a connection we own in autocommit mode; the temporary table (with a unique
    index on the key, like the real one) lives and dies in its session, and the real table is only
    read (the first ``rows`` rows by key).
    """
    tmp = ctx.name("est", uuid.uuid4().hex[:8])
    copy = op.model_copy(update={"table": tmp, "schema_": None, "key": op.key_columns(ctx)})
    tctx = ctx.for_op(ctx.index)
    try:
        plan = copy.backfill(tctx)
        if plan is None:
            return None
        conn.exec_driver_sql(_temp_table_sql(ctx, tmp, _sample_select(ctx, op, rows)))
        keys = ", ".join(ctx.q(k) for k in op.key_columns(ctx))
        conn.exec_driver_sql(f"CREATE UNIQUE INDEX {ctx.q(ctx.name('est', tmp[-8:], 'key'))} ON {ctx.q(tmp)} ({keys})")
        for step in copy.expand(tctx):
            if step.id.endswith(".add_columns"):
                for stmt in step.sql:
                    conn.exec_driver_sql(stmt)
        started = time.perf_counter()
        done = _batched(conn, plan)
        seconds = time.perf_counter() - started
    except sa.exc.SQLAlchemyError:
        return None
    finally:
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            conn.exec_driver_sql(_drop_temp_sql(ctx, tmp))
    return _sampled(
        done,
        seconds,
        "timed the backfill UPDATE on a temporary copy of {rows} ({ms}): {rate}; the real table also "
        "pays for its triggers and indexes, so expect it slower",
    )


def sample_expressions(conn: sa.Connection, op: Any, ctx: OpContext, set_sql: dict[str, str], rows: int) -> Rate | None:
    """Fallback: time computing the backfill's expressions over a sample (read-only; an optimistic bound)."""
    keys = op.key_columns(ctx)
    t = sa.table(op.table, *[sa.column(k) for k in keys], schema=op.schema_)
    exprs = [sa.literal_column(sql).label(f"e{i}") for i, sql in enumerate(set_sql.values())] or [sa.literal(1)]
    stmt = sa.select(*exprs).select_from(t).order_by(*[t.c[k] for k in keys]).limit(rows)
    try:
        started = time.perf_counter()
        done = len(conn.exec_driver_sql(ctx.sql(stmt)).all())
        seconds = time.perf_counter() - started
    except sa.exc.SQLAlchemyError:
        return None
    return _sampled(
        done,
        seconds,
        "computed the backfill expressions over {rows} read-only in {ms} ({rate}); writes were not "
        "measured, so this is an optimistic bound",
    )


def _sampled(done: int, seconds: float, template: str) -> Rate | None:
    if done <= 0:
        return None
    rate = done / max(seconds, 1e-6)
    text = template.format(rows=f"{done:,} rows", ms=f"{seconds * 1000:.0f} ms", rate=f"{rate:,.0f} rows/s")
    return Rate(rate, "sampled", text)


def backfill_estimate(rows: int | None, rate: Rate | None, batch_size: int, throttle_ms: int) -> Estimate:
    """Rows over the rate, plus the throttle pauses between batches."""
    if rows is None:
        return Estimate(seconds=0.0, source="none", detail="row count unknown: no estimate", rows=None)
    if rows == 0:
        return Estimate(seconds=0.0, source="rule_of_thumb", detail="the table is empty", rows=0)
    if rate is None:
        return Estimate(
            seconds=0.0,
            source="none",
            detail="no measured throughput (no expertise learning; the sample could not run)",
            rows=rows,
        )
    batches = -(-rows // max(1, batch_size))
    pauses = max(0, batches - 1) * throttle_ms / 1000
    seconds = rows / rate.rows_per_s + pauses
    detail = rate.detail + (f"; plus {batches - 1} throttle pauses of {throttle_ms} ms" if pauses else "")
    return Estimate(
        seconds=round(seconds, 3),
        source=rate.source,  # type: ignore[arg-type]
        detail=detail,
        rows=rows,
        rows_per_s=round(rate.rows_per_s, 1),
    )


def step_estimate(step: Step, rows: int | None, rewrite: Rate | None) -> Estimate:
    """A DDL step: catalog-only steps take a moment; rewriting steps scale with the table."""
    if step.rewrites_table and rows:
        rate = rewrite or Rate(REWRITE_ROWS_PER_S, "rule_of_thumb", f"assumed {REWRITE_ROWS_PER_S:,.0f} rows/s")
        return Estimate(
            seconds=round(rows / rate.rows_per_s + CATALOG_STEP_S, 3),
            source=rate.source,  # type: ignore[arg-type]
            detail=f"rewrites {rows:,} rows: {rate.detail}",
            rows=rows,
            rows_per_s=round(rate.rows_per_s, 1),
        )
    return Estimate(
        seconds=CATALOG_STEP_S,
        source="rule_of_thumb",
        detail="catalog-only change: milliseconds once the lock is granted (waiting for the lock is bounded by "
        "lock_timeout and retried)",
    )
