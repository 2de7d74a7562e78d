"""Helpers for the planner/executor tests: the seed's users table, a spec file in a scratch project, plans."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from dmig.context import RunContext
from dmig.plan import plan_migration, save_plan
from dmig.plan.model import Plan
from dmig.spec.models import parse_spec

EDGE_ROWS = [
    (1, "Ada Lovelace"),
    (2, "Plato"),
    (3, ""),
    (4, None),
    (5, "Mary Ann Smith"),
    (6, " leading"),
    (7, "trailing "),
    (8, "O'Brien Jr"),
    (9, "Zoë Ünïcode-Ñame"),
    (10, "two  spaces"),
]


def split_spec(**options: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "id": "split-user-name",
        "description": "Split users.user_name into first_name and last_name",
        "options": {
            "lock_timeout_ms": 1000,
            "statement_timeout_ms": 60000,
            "batch_size": 100,
            "throttle_ms": 0,
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


def engine(url: str) -> sa.Engine:
    from dmig.db.engine import create

    return create(url, must_exist=False)


def users_table(url: str, n: int = 0, extra: list[tuple[int, str | None]] | None = None) -> None:
    """users(id bigint pk, user_name varchar(255)) with the edge rows plus n generated rows (ids from 1001)."""
    meta = sa.MetaData()
    users = sa.Table(
        "users",
        meta,
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("user_name", sa.String(255)),
    )
    rows = list(extra if extra is not None else EDGE_ROWS)
    rows += [(1000 + i, f"First{i} Last{i}" if i % 13 else None) for i in range(1, n + 1)]
    eng = engine(url)
    try:
        meta.create_all(eng)
        with eng.begin() as conn:
            for start in range(0, len(rows), 5000):
                chunk = rows[start : start + 5000]
                conn.execute(users.insert(), [{"id": i, "user_name": v} for i, v in chunk])
    finally:
        eng.dispose()


def query(url: str, sql: str, params: dict | None = None, setup: list[str] | None = None) -> list[tuple]:
    eng = engine(url)
    try:
        with eng.connect() as conn:
            for s in setup or []:
                conn.exec_driver_sql(s)
            return [tuple(r) for r in conn.execute(sa.text(sql), params or {})]
    finally:
        eng.dispose()


def execute(url: str, *statements: str) -> None:
    eng = engine(url)
    try:
        with eng.begin() as conn:
            for s in statements:
                conn.execute(sa.text(s))
    finally:
        eng.dispose()


def write_spec(project: Path, spec: dict[str, Any], name: str = "split.yaml") -> str:
    path = project / "specs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return f"specs/{name}"


def make_plan(project: Path, url: str, spec: dict[str, Any] | None = None, **kw: Any) -> tuple[Plan, Path]:
    """Plan (development environment, backup waived unless told otherwise) and save; returns (plan, plan.yaml)."""
    kw.setdefault("environment", "development")
    kw.setdefault("waive_backup", "test database, recreated by the fixture")
    plan = plan_migration(parse_spec(spec or split_spec()), url=url, project_dir=project, **kw)
    path, _ = save_plan(RunContext(project_dir=project), plan)
    return plan, path


def dialect(url: str) -> str:
    return "postgresql" if url.startswith("postgres") else "mysql" if url.startswith("mysql") else "sqlite"


def old_reader(url: str) -> dict[int, str | None]:
    """What code written before the migration sees (PostgreSQL < 18: through the compat view)."""
    setup = ["SET search_path = dmig_compat, public"] if dialect(url) == "postgresql" else []
    return {r[0]: r[1] for r in query(url, "SELECT id, user_name FROM users", setup=setup)}


def parts(url: str) -> dict[int, tuple]:
    return {r[0]: (r[1], r[2]) for r in query(url, "SELECT id, first_name, last_name FROM users")}


def batches(url: str, migration_id: str) -> list[tuple]:
    return query(
        url,
        "SELECT batch_no, lo_key, hi_key, row_count FROM dmig_backfill_batches WHERE migration_id = :m "
        "ORDER BY batch_no",
        {"m": migration_id},
    )


def checkpoint(url: str, migration_id: str) -> tuple | None:
    rows = query(
        url,
        "SELECT state, rows_done, batches, last_key, hi_max, version FROM dmig_backfill_checkpoints "
        "WHERE migration_id = :m",
        {"m": migration_id},
    )
    return rows[0] if rows else None


def tables(url: str) -> set[str]:
    eng = engine(url)
    try:
        with eng.connect() as conn:
            return set(sa.inspect(conn).get_table_names())
    finally:
        eng.dispose()
