"""Shared by the tests/test_cschema_*.py files: one database per dialect, plain client SQL, catalog reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from copy_helpers import dialect, engine

DIALECTS = ["sqlite", "postgresql", "mysql"]
PAIRS = [(s, t) for s in DIALECTS for t in DIALECTS]


def databases(request: pytest.FixtureRequest, tmp_path: Path, source: str, target: str) -> tuple[str, str]:
    """A source and a target database of the given dialects (two distinct ones when they are the same)."""
    names = {"postgresql": ["pg_url", "pg_url2"], "mysql": ["mysql_url", "mysql_url2"]}
    urls = []
    for i, kind in enumerate((source, target)):
        if kind == "sqlite":
            urls.append(f"sqlite:///{tmp_path / f'db{i}.db'}")
        else:
            urls.append(request.getfixturevalue(names[kind][i]))
    return urls[0], urls[1]


def run_sql(url: str, *statements: str) -> None:
    e = engine(url)
    try:
        with e.begin() as conn:
            for s in statements:
                conn.exec_driver_sql(s)
    finally:
        e.dispose()


def rows(url: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    e = engine(url)
    try:
        with e.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(sql), params).all()]
    finally:
        e.dispose()


def fails(url: str, sql: str) -> bool:
    """Whether the target refuses the statement (it is rolled back either way)."""
    e = engine(url)
    try:
        with e.connect() as conn:
            try:
                conn.exec_driver_sql(sql)
            except sa.exc.DBAPIError:
                return True
            finally:
                conn.rollback()
        return False
    finally:
        e.dispose()


def generated_columns(url: str, table: str) -> dict[str, str]:
    """Per generated column of ``table``: 'stored' or 'virtual', from the catalog."""
    d = dialect(url)
    if d == "postgresql":
        found = rows(
            url,
            "SELECT attname, attgenerated FROM pg_attribute WHERE attrelid = to_regclass(:t) AND attnum > 0 "
            "AND attgenerated <> ''",
            t=table,
        )
        return {n: "stored" if g == "s" else "virtual" for n, g in found}
    if d == "mysql":
        found = rows(
            url,
            "SELECT COLUMN_NAME, EXTRA FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_NAME = :t AND IS_GENERATED = 'ALWAYS'",
            t=table,
        )
        return {n: "stored" if "STORED" in e.upper() or "PERSISTENT" in e.upper() else "virtual" for n, e in found}
    found = rows(url, f"SELECT name, hidden FROM pragma_table_xinfo('{table}') WHERE hidden IN (2, 3)")
    return {n: "stored" if h == 3 else "virtual" for n, h in found}
