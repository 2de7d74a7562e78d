"""Helpers for the workload tests: the seed's users table, the split_column plan, and the final check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from dmig.db.engine import create
from dmig.plan import plan_migration
from dmig.plan.model import Plan
from dmig.spec.models import parse_spec

EDGE = ["Ada Lovelace", "Plato", "", None, "Mary Ann Smith", " leading", "trailing ", "O'Brien Jr", "Zoë Ünïcode"]


def engine(url: str) -> sa.Engine:
    return create(url, must_exist=False)


def users_table(url: str, n: int) -> dict[int, str | None]:
    """users(id bigint pk, user_name varchar(255)): the edge values then generated names; returns the rows."""
    meta = sa.MetaData()
    users = sa.Table(
        "users",
        meta,
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("user_name", sa.String(255)),
    )
    rows = {i + 1: v for i, v in enumerate(EDGE)}
    rows.update({100 + i: (f"First{i} Last {i}" if i % 17 else None) for i in range(n)})
    eng = engine(url)
    try:
        meta.create_all(eng)
        with eng.begin() as conn:
            conn.execute(users.insert(), [{"id": k, "user_name": v} for k, v in rows.items()])
    finally:
        eng.dispose()
    return rows


def split_plan(project: Path, url: str, **options: Any) -> Plan:
    spec = parse_spec(
        {
            "version": 1,
            "id": "wl-split-user-name",
            "options": {
                "lock_timeout_ms": 2000,
                "statement_timeout_ms": 60000,
                "batch_size": 200,
                "throttle_ms": 5,
                **options,
            },
            "operations": [
                {
                    "op": "split_column",
                    "table": "users",
                    "key": ["id"],
                    "column": "user_name",
                    "into": ["first_name", "last_name"],
                }
            ],
        }
    )
    return plan_migration(
        spec, url=url, project_dir=project, environment="development", waive_backup="test database", sample=False
    )


def complete_plan(plan: Plan, project: Path, url: str) -> Any:
    """complete() once: a contract step that loses a deadlock or a lock wait is retried inside the executor."""
    from dmig.execute import complete

    return complete(plan, confirm=plan.checksum, project_dir=project, url=url)


def old_reader_rows(url: str, ids: list[int]) -> dict[int, str | None]:
    """user_name as old code reads it after contract (PostgreSQL < 18: through the dmig_compat view)."""
    eng = engine(url)
    try:
        with eng.connect() as conn:
            if url.startswith("postgresql"):
                conn.exec_driver_sql("SET search_path = dmig_compat, public")
            t = sa.table("users", sa.column("id"), sa.column("user_name"))
            rows = conn.execute(sa.select(t.c.id, t.c.user_name).where(t.c.id.in_(ids))).all()
            return {r[0]: r[1] for r in rows}
    finally:
        eng.dispose()


def count(url: str) -> int:
    eng = engine(url)
    try:
        with eng.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM users")).scalar_one())
    finally:
        eng.dispose()
