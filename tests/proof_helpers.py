"""Helpers for the proof tests (issue 14): database pairs, plain reads, and the independent comparison.

The independent comparison never uses dmig's canonical forms or hashes: it reads both tables with
plain SQLAlchemy and compares in Python under rules stated here, so that the tool's verdict can be
checked against something it did not compute itself.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

DIALECTS = ["sqlite", "postgresql", "mysql"]
PAIRS = [(a, b) for a in DIALECTS for b in DIALECTS]


def pair_id(p: tuple[str, str]) -> str:
    return f"{p[0]}-{p[1]}"


def db(request: pytest.FixtureRequest, tmp_path: Path, kind: str, role: str) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / f'{role}.db'}"
    fixture = {"postgresql": "pg_url", "mysql": "mysql_url"}[kind]
    return request.getfixturevalue(fixture if role == "source" else fixture + "2")


def dialect(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgresql" if url.startswith("postgresql") else "mysql"


def run_sql(url: str, *statements: str, params: list[dict[str, Any]] | None = None) -> None:
    e = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with e.begin() as conn:
            for i, stmt in enumerate(statements):
                if params is not None and i == len(statements) - 1:
                    conn.execute(sa.text(stmt), params)
                else:
                    conn.exec_driver_sql(stmt)
    finally:
        e.dispose()


def read(url: str, table: str) -> list[tuple[Any, ...]]:
    """Every row, as the driver returns it (no dmig code involved)."""
    e = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with e.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(f"SELECT * FROM {table}"))]
    finally:
        e.dispose()


def same_value(a: Any, b: Any, kind: str = "auto") -> bool:
    """The independent rule: doubles by IEEE value (-0 == 0), text with CHAR padding stripped when asked,
    JSON by decoded content (numbers by value), bits by their integer."""
    if a is None or b is None:
        return a is None and b is None
    if kind == "char":
        return str(a).rstrip(" ") == str(b).rstrip(" ")
    if kind == "json":
        return _json(a) == _json(b)
    if kind == "bit":
        return bit_int(a) == bit_int(b)
    if isinstance(a, float) or isinstance(b, float):
        fa, fb = float(a), float(b)
        return (math.isnan(fa) and math.isnan(fb)) or fa == fb
    return a == b


def _json(v: Any) -> Any:
    """A document from its text; a driver that decoded it already (psycopg's jsonb) hands over the value."""
    if not isinstance(v, str | bytes):
        return v
    try:
        return json.loads(v)
    except ValueError:  # a jsonb scalar string, decoded by the driver
        return v


def bit_int(v: Any) -> int:
    if isinstance(v, bool | int):
        return int(v)
    if isinstance(v, bytes | bytearray | memoryview):
        return int.from_bytes(bytes(v), "big")
    s = str(v)
    if s and set(s) <= {"0", "1"}:
        return int(s, 2)
    return int.from_bytes(s.encode("latin-1"), "big")


def independent_equal(src: str, tgt: str, table: str, kinds: dict[int, str] | None = None) -> bool:
    """Both tables as multisets of rows, compared value by value under ``same_value`` (rows sorted by id)."""
    a = sorted(read(src, table), key=lambda r: (r[0] is None, r[0] if r[0] is not None else 0))
    b = sorted(read(tgt, table), key=lambda r: (r[0] is None, r[0] if r[0] is not None else 0))
    if len(a) != len(b):
        return False
    kinds = kinds or {}
    return all(
        all(same_value(x, y, kinds.get(i, "auto")) for i, (x, y) in enumerate(zip(ra, rb, strict=True)))
        for ra, rb in zip(a, b, strict=True)
    )


def pair_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    src_kind, tgt_kind = request.param
    yield db(request, tmp_path, src_kind, "source"), db(request, tmp_path, tgt_kind, "target")
