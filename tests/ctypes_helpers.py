"""Shared by tests/test_ctypes_*.py: a database of any dialect per role, raw statements, plain reads.

The target is always read back with the plain driver (PyMySQL, psycopg, sqlite3 through
SQLAlchemy's ``exec_driver_sql``) and compared in Python, never with dmig's own hashing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from copy_helpers import engine

DIALECTS = ["sqlite", "postgresql", "mysql"]


def db(request: pytest.FixtureRequest, tmp_path: Path, kind: str, role: str) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / f'{role}.db'}"
    fixture = {"postgresql": "pg_url", "mysql": "mysql_url"}[kind]
    return request.getfixturevalue(fixture if role == "source" else fixture + "2")


def run_sql(url: str, *statements: str) -> None:
    e = engine(url)
    try:
        with e.begin() as conn:
            for s in statements:
                conn.exec_driver_sql(s)
    finally:
        e.dispose()


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    e = engine(url)
    try:
        with e.connect() as conn:
            return [tuple(r) for r in conn.exec_driver_sql(sql).fetchall()]
    finally:
        e.dispose()


def rejects(project: Path, out: Any) -> list[dict[str, Any]]:
    if not out.reject_file:
        return []
    return [json.loads(x) for x in (project / out.reject_file).read_text().splitlines()]


def mysql_column_types(url: str, table: str) -> dict[str, str]:
    rows = query(
        url,
        "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
        f"WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{table}'",
    )
    return {n: t.lower() for n, t in rows}


def pg_column_types(url: str, table: str) -> dict[str, str]:
    rows = query(
        url,
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        f"WHERE attrelid = '{table}'::regclass AND attnum > 0 AND NOT attisdropped",
    )
    return dict(rows)


def sqlite_column_types(url: str, table: str) -> dict[str, str]:
    return {r[1]: r[2].upper() for r in query(url, f"PRAGMA table_info({table})")}


def column_types(url: str, kind: str, table: str) -> dict[str, str]:
    return {"mysql": mysql_column_types, "postgresql": pg_column_types, "sqlite": sqlite_column_types}[kind](url, table)
