"""Helpers for the migration-spec tests: run rendered steps the way the executor will, and snapshot a schema."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
import yaml

from dmig.db.engine import create
from dmig.spec.context import OpContext
from dmig.spec.live import live_context
from dmig.spec.models import MigrationSpec, parse_spec
from dmig.spec.render import RenderedSpec, render_spec
from dmig.spec.steps import BackfillPlan, Step, ValidationCheck


def spec_of(*ops: dict[str, Any], **top: Any) -> MigrationSpec:
    return parse_spec(
        {
            "id": "t1",
            "options": {"lock_timeout_ms": 2000, "statement_timeout_ms": 60000},
            "operations": list(ops),
            **top,
        }
    )


def spec_yaml(text: str) -> MigrationSpec:
    return parse_spec(yaml.safe_load(text))


def engine(url: str) -> sa.Engine:
    return create(url, must_exist=False)


def render_live(url: str, spec: MigrationSpec) -> RenderedSpec:
    eng = engine(url)
    try:
        with eng.connect() as conn:
            ctx = live_context(conn, spec)
    finally:
        eng.dispose()
    return render_spec(spec, ctx)


def context_live(url: str, spec: MigrationSpec) -> OpContext:
    eng = engine(url)
    try:
        with eng.connect() as conn:
            return live_context(conn, spec)
    finally:
        eng.dispose()


def run_steps(url: str, steps: list[Step], settings: list[str] | None = None) -> None:
    """Executor contract: statements in order on one connection; transactional -> one transaction."""
    eng = engine(url)
    try:
        for step in steps:
            assert step.sql or step.kind != "sql", f"{step.id} rendered no SQL"
            with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                for s in settings or []:
                    conn.exec_driver_sql(s)
                if step.transactional:
                    conn.exec_driver_sql("BEGIN")
                    try:
                        for stmt in step.sql:
                            conn.exec_driver_sql(stmt)
                    except Exception:
                        conn.exec_driver_sql("ROLLBACK")
                        raise
                    conn.exec_driver_sql("COMMIT")
                else:
                    for stmt in step.sql:
                        conn.exec_driver_sql(stmt)
    finally:
        eng.dispose()


def run_phase(url: str, rendered: RenderedSpec, phase: str) -> None:
    run_steps(url, rendered.steps(phase), rendered.session_settings)


def backfill_all(url: str, plan: BackfillPlan) -> int:
    eng = engine(url)
    try:
        with eng.begin() as conn:
            return conn.execute(sa.text(plan.update_all_sql)).rowcount
    finally:
        eng.dispose()


def backfill_batched(url: str, plan: BackfillPlan, batch: int = 2) -> int:
    """The executor's loop (without checkpoints): (lo, bound] ranges, bounded by the max key seen at start."""
    eng = engine(url)
    done = 0
    try:
        with eng.connect() as conn:
            hi_max = conn.execute(sa.text(plan.key_range_sql)).first()
        if hi_max is None:
            return 0
        lo = None
        while True:
            with eng.begin() as conn:
                if lo is None:
                    row = conn.execute(sa.text(plan.next_bound_from_start_sql), {"skip": batch - 1}).first()
                else:
                    row = conn.execute(sa.text(plan.next_bound_sql), {"skip": batch - 1, **_binds("lo", lo)}).first()
                bound = tuple(row) if row is not None and tuple(row) < tuple(hi_max) else tuple(hi_max)
                params = _binds("hi", bound)
                if lo is None:
                    done += conn.execute(sa.text(plan.update_from_start_sql), params).rowcount
                else:
                    done += conn.execute(sa.text(plan.update_range_sql), {**params, **_binds("lo", lo)}).rowcount
            if bound >= tuple(hi_max):
                return done
            lo = bound
    finally:
        eng.dispose()


def _binds(prefix: str, values: tuple) -> dict[str, Any]:
    return {f"{prefix}_{i}": v for i, v in enumerate(values)}


def check_values(url: str, checks: list[ValidationCheck]) -> dict[str, Any]:
    eng = engine(url)
    try:
        with eng.connect() as conn:
            return {c.id: conn.execute(sa.text(c.sql), c.params).scalar() for c in checks}
    finally:
        eng.dispose()


def checks_pass(url: str, checks: list[ValidationCheck]) -> bool:
    values = check_values(url, checks)
    return all(values[c.id] == c.expected for c in checks)


def query(url: str, sql: str, params: dict | None = None, setup: list[str] | None = None) -> list[tuple]:
    eng = engine(url)
    try:
        with eng.connect() as conn:
            for s in setup or []:
                conn.exec_driver_sql(s)
            return [tuple(r) for r in conn.execute(sa.text(sql), params or {})]
    finally:
        eng.dispose()


def execute(url: str, *statements: str, params: dict | None = None) -> None:
    eng = engine(url)
    try:
        with eng.begin() as conn:
            for s in statements:
                conn.execute(sa.text(s), params or {})
    finally:
        eng.dispose()


def dialect(url: str) -> str:
    return "postgresql" if url.startswith("postgres") else "mysql" if url.startswith("mysql") else "sqlite"


def schema_snapshot(url: str) -> dict[str, Any]:
    """Everything a rollback must restore: tables, columns (type, nullability, default), keys, indexes, views,
    triggers and functions."""
    eng = engine(url)
    try:
        with eng.connect() as conn:
            insp = sa.inspect(conn)
            snap: dict[str, Any] = {"views": sorted(insp.get_view_names())}
            for t in sorted(insp.get_table_names()):
                snap[t] = {
                    "columns": [
                        (c["name"], str(c["type"]), c["nullable"], str(c.get("default"))) for c in insp.get_columns(t)
                    ],
                    "pk": insp.get_pk_constraint(t)["constrained_columns"],
                    "fks": sorted(str(f) for f in insp.get_foreign_keys(t)),
                    "indexes": sorted(str(i) for i in insp.get_indexes(t)),
                    "uniques": sorted(str(u) for u in insp.get_unique_constraints(t)),
                    "checks": sorted(str(c) for c in insp.get_check_constraints(t)),
                }
            d = dialect(url)
            if d == "postgresql":
                snap["triggers"] = sorted(
                    r[0] for r in conn.exec_driver_sql("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
                )
                snap["functions"] = sorted(
                    r[0]
                    for r in conn.exec_driver_sql(
                        "SELECT proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                        "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')"
                    )
                )
                snap["schemas"] = sorted(r[0] for r in conn.exec_driver_sql("SELECT nspname FROM pg_namespace"))
            elif d == "mysql":
                snap["triggers"] = sorted(
                    r[0]
                    for r in conn.exec_driver_sql(
                        "SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = DATABASE()"
                    )
                )
            else:
                snap["triggers"] = sorted(
                    r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'")
                )
            return snap
    finally:
        eng.dispose()


def users_table(url: str, rows: list[tuple[int, str | None]], *, not_null: bool = False) -> None:
    """The seed's users table: id bigint primary key, user_name varchar(255)."""
    meta = sa.MetaData()
    users = sa.Table(
        "users",
        meta,
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("user_name", sa.String(255), nullable=not not_null),
    )
    eng = engine(url)
    try:
        meta.create_all(eng)
        with eng.begin() as conn:
            if rows:
                conn.execute(users.insert(), [{"id": i, "user_name": n} for i, n in rows])
    finally:
        eng.dispose()
