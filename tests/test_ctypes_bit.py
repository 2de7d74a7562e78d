"""MySQL BIT(n) and PostgreSQL bit(n) keep their values on every pair (issue 14).

BIT(1) becomes a boolean on PostgreSQL (as pgloader maps it), BIT(n>1) a PostgreSQL bit(n) of
the same width; SQLite holds the number as an INTEGER; MariaDB keeps BIT(n). Each target is read
with the plain driver and its value turned into the number it stands for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from copy_helpers import run_copy
from ctypes_helpers import DIALECTS, column_types, db, query, run_sql

ROWS = {1: (0, 0, 0), 2: (1, 65, 2**64 - 1), 3: (None, None, None), 4: (1, 255, 1), 5: (0, 1, 2**63)}


def _number(v: Any, base: int = 2) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, bytes):
        return int.from_bytes(v, "big")
    if isinstance(v, str):
        return int(v, base)  # PostgreSQL bit(n) text, or SQLite's text of the bits of a BIT(64)
    return int(v)


def _read(url: str) -> dict[int, tuple[int | None, ...]]:
    rows = query(url, "SELECT id, b1, b8, b64 FROM flags ORDER BY id")
    base = 2
    return {r[0]: tuple(_number(v, base) for v in r[1:]) for r in rows}


@pytest.mark.mysql
@pytest.mark.parametrize("target_kind", DIALECTS)
def test_mysql_bit_keeps_its_values(
    request: pytest.FixtureRequest, tmp_path: Path, project: Path, target_kind: str
) -> None:
    src = db(request, tmp_path, "mysql", "source")
    tgt = db(request, tmp_path, target_kind, "target")
    values = ", ".join(
        f"({i}, {'NULL' if a is None else a}, {'NULL' if b is None else b}, {'NULL' if c is None else c})"
        for i, (a, b, c) in ROWS.items()
    )
    run_sql(
        src,
        "CREATE TABLE flags (id INT PRIMARY KEY, b1 BIT(1), b8 BIT(8), b64 BIT(64))",
        f"INSERT INTO flags VALUES {values}",
    )
    out = run_copy(src, tgt, project)
    assert out.tables[0].state == "done" and out.tables[0].rejects == 0, out.model_dump_json(indent=1)
    assert _read(tgt) == ROWS
    types = column_types(tgt, target_kind, "flags")
    want = {
        "postgresql": {"b1": "boolean", "b8": "bit(8)", "b64": "bit(64)"},
        "mysql": {"b1": "bit(1)", "b8": "bit(8)", "b64": "bit(64)"},
        "sqlite": {"b1": "INTEGER", "b8": "INTEGER", "b64": "TEXT"},  # 2**64-1 is beyond SQLite's INTEGER
    }[target_kind]
    assert {k: types[k] for k in want} == want


PG_ROWS = {1: ("0", "00000000", "000000000000"), 2: ("1", "01000001", "111111111111"), 3: (None, None, None)}


@pytest.mark.pg
@pytest.mark.parametrize("target_kind", DIALECTS)
def test_postgresql_bit_keeps_its_values(
    request: pytest.FixtureRequest, tmp_path: Path, project: Path, target_kind: str
) -> None:
    src = db(request, tmp_path, "postgresql", "source")
    tgt = db(request, tmp_path, target_kind, "target")
    values = ", ".join(f"({i}, {', '.join('NULL' if v is None else f'B{v!r}' for v in r)})" for i, r in PG_ROWS.items())
    run_sql(
        src,
        "CREATE TABLE flags (id INT PRIMARY KEY, b1 BIT(1), b8 BIT(8), b64 BIT(12))",
        f"INSERT INTO flags VALUES {values}",
    )
    out = run_copy(src, tgt, project)
    assert out.tables[0].state == "done" and out.tables[0].rejects == 0, out.model_dump_json(indent=1)
    expected = {i: tuple(None if v is None else int(v, 2) for v in r) for i, r in PG_ROWS.items()}
    assert _read(tgt) == expected
    types = column_types(tgt, target_kind, "flags")
    want = {
        "postgresql": {"b1": "bit(1)", "b8": "bit(8)", "b64": "bit(12)"},
        "mysql": {"b1": "bit(1)", "b8": "bit(8)", "b64": "bit(12)"},
        "sqlite": {"b1": "INTEGER", "b8": "INTEGER", "b64": "INTEGER"},
    }[target_kind]
    assert {k: types[k] for k in want} == want
