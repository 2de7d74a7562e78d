"""Helpers for the rollback tests: one small scenario per operation type, and the snapshot a rollback must restore."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from dmig.context import RunContext
from dmig.execute import fingerprint
from dmig.plan import save_plan
from dmig.plan.advice import rollback_triggers
from dmig.plan.model import Plan, sealed
from execute_helpers import engine, execute, make_plan, users_table
from spec_helpers import schema_snapshot

OPTIONS = {"lock_timeout_ms": 1000, "statement_timeout_ms": 60000, "batch_size": 25, "throttle_ms": 0}


def _items(url: str) -> None:
    execute(
        url,
        "CREATE TABLE items (id BIGINT PRIMARY KEY, price INTEGER, email VARCHAR(80), email_lc VARCHAR(80))",
        "INSERT INTO items VALUES (1, 5, 'A@X.org', NULL), (2, 0, 'b@y.org', NULL), (3, 7, NULL, NULL), "
        "(4, 12, 'Mixed@Case.COM', 'stale')",
    )


def _accounts(url: str) -> None:
    execute(
        url,
        "CREATE TABLE accounts (id BIGINT PRIMARY KEY, balance INTEGER, owner VARCHAR(40))",
        "INSERT INTO accounts VALUES (1, 10, 'a'), (2, NULL, 'b'), (3, -5, NULL), (4, 2000000000, 'd')",
    )


def _people(url: str) -> None:
    execute(
        url,
        "CREATE TABLE people (id BIGINT PRIMARY KEY, first_name VARCHAR(50), last_name VARCHAR(50))",
        "INSERT INTO people VALUES (1, 'Ada', 'Lovelace'), (2, 'Plato', NULL), (3, NULL, NULL), (4, 'Mary Ann', 'X')",
    )


def _teams(url: str) -> None:
    execute(
        url,
        "CREATE TABLE teams (id BIGINT PRIMARY KEY, name VARCHAR(50))",
        "CREATE TABLE players (id BIGINT PRIMARY KEY, team_id BIGINT, name VARCHAR(50))",
        "INSERT INTO teams (id, name) VALUES (1, 'red'), (2, 'blue')",
        "INSERT INTO players (id, team_id, name) VALUES (1, 1, 'x'), (2, NULL, 'y'), (3, 2, 'z')",
    )


def _users(url: str) -> None:
    users_table(url, n=60)


def _users_no_nulls(url: str) -> None:
    users_table(url, n=60)
    execute(url, "UPDATE users SET user_name = 'was null' WHERE user_name IS NULL AND id = 4")
    execute(url, "UPDATE users SET user_name = CONCAT('n', id) WHERE user_name IS NULL" if "mysql" in url
            else "UPDATE users SET user_name = 'n' || id WHERE user_name IS NULL")  # fmt: skip


# op name -> (setup, operation)
CASES: dict[str, tuple[Any, dict[str, Any]]] = {
    "create_table": (
        _users,
        {
            "op": "create_table",
            "table": "audit",
            "columns": [
                {"name": "id", "type": "bigint", "primary_key": True},
                {"name": "note", "type": "varchar(100)"},
            ],
        },
    ),
    "add_column": (
        _users,
        {
            "op": "add_column",
            "table": "users",
            "column": {"name": "status", "type": "varchar(20)", "nullable": False, "default": "active"},
        },
    ),
    "drop_column": (_items, {"op": "drop_column", "table": "items", "column": "price"}),
    "rename_column": (
        _users,
        {"op": "rename_column", "table": "users", "column": "user_name", "to": "login", "type": "varchar(255)"},
    ),
    "split_column": (
        _users,
        {
            "op": "split_column",
            "table": "users",
            "key": ["id"],
            "column": "user_name",
            "into": ["first_name", "last_name"],
        },
    ),
    "merge_columns": (
        _people,
        {"op": "merge_columns", "table": "people", "columns": ["first_name", "last_name"], "into": "full_name"},
    ),
    "change_column_type": (
        _accounts,
        {
            "op": "change_column_type",
            "table": "accounts",
            "key": ["id"],
            "column": "balance",
            "type": "bigint",
            "from_type": "integer",
        },
    ),
    "set_not_null": (_users_no_nulls, {"op": "set_not_null", "table": "users", "column": "user_name"}),
    "add_foreign_key": (
        _teams,
        {
            "op": "add_foreign_key",
            "table": "players",
            "columns": ["team_id"],
            "ref_table": "teams",
            "ref_columns": ["id"],
        },
    ),
    "add_unique": (_users, {"op": "add_unique", "table": "users", "columns": ["user_name"]}),
    "add_index": (_users, {"op": "add_index", "table": "users", "columns": ["user_name"]}),
    "add_check": (_items, {"op": "add_check", "table": "items", "name": "price_nonneg", "expression": "price >= 0"}),
    "backfill": (_items, {"op": "backfill", "table": "items", "set": {"email_lc": "lower(email)"}}),
    "move_table": (_items, {"op": "move_table", "table": "items", "target_table": "items_v2"}),
    "raw_sql": (
        _users,
        {
            "op": "raw_sql",
            "sql": "CREATE TABLE audit_log (id BIGINT PRIMARY KEY, note VARCHAR(40))",
            "rollback_sql": "DROP TABLE audit_log",
        },
    ),
}


def spec_for(op: dict[str, Any], migration_id: str | None = None) -> dict[str, Any]:
    return {"version": 1, "id": migration_id or f"rb-{op['op'].replace('_', '-')}", "options": dict(OPTIONS),
            "operations": [op]}  # fmt: skip


def production_plan(project: Path, url: str, spec: dict[str, Any]) -> tuple[Plan, Path]:
    """A production plan: contract takes a verified backup (and a backfill over old columns one before the run)."""
    return make_plan(project, url, spec, environment="production", waive_backup=None, sample=False)


def user_tables(url: str) -> list[tuple[str | None, str]]:
    eng = engine(url)
    try:
        with eng.connect() as conn:
            return [(None, t) for t in sorted(sa.inspect(conn).get_table_names()) if not t.startswith("dmig_")]
    finally:
        eng.dispose()


def state(url: str) -> dict[str, Any]:
    """Everything a rollback must give back: the schema (tables, views, triggers, functions) and every row."""
    schema = {k: v for k, v in schema_snapshot(url).items() if not k.startswith("dmig_")}
    if "schemas" in schema:  # PostgreSQL's per-backend temp namespaces appear once any session used a temp table
        schema["schemas"] = [n for n in schema["schemas"] if not n.startswith(("pg_temp_", "pg_toast_temp_"))]
    if "functions" in schema:  # dmig's own ledger helpers are not the user's schema
        schema["functions"] = [f for f in schema["functions"] if not f.startswith("dmig_")] or []
    eng = engine(url)
    try:
        data = fingerprint.snapshot(eng, user_tables(url))
    finally:
        eng.dispose()
    return {"schema": schema, "data": data}


def with_monitoring(project: Path, plan: Plan, monitoring: dict[str, Any]) -> Plan:
    """The plan re-sealed with other monitoring thresholds (what a reviewer would have signed)."""
    merged = {**plan.monitoring, **monitoring}
    out = sealed(plan.model_copy(update={"monitoring": merged, "rollback_triggers": rollback_triggers(merged)}))
    save_plan(RunContext(project_dir=project), out)
    return out
