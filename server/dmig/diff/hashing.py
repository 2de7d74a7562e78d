"""Row hashes and their exact sums, computed inside each database.

A row's hash is the first 60 bits (15 hex digits) of the MD5 of its canonical row string (see
``normalize``), as a non-negative integer that fits a signed BIGINT. A segment's checksum is the
pair (row count, exact sum of its row hashes): PostgreSQL's ``sum(bigint)`` is ``numeric`` and
MySQL's ``SUM`` of a ``SIGNED`` is ``DECIMAL``, both exact; SQLite gets an aggregate of our own
that keeps a Python integer and returns it as text. The sum is order-independent, so segments
are compared without sorting, and a row moved between keys changes it because the key columns
are part of the hashed string.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import BIT

from dmig.diff.codegen import row_hasher
from dmig.diff.normalize import FRAMED, SEPARATOR, canon, lit, token, token_sql

HEX_DIGITS = 15  # 60 bits: a non-negative value that every dialect can cast to a signed BIGINT


def row_string(categories: Sequence[str], values: Sequence[Any]) -> str:
    return SEPARATOR.join(token(c, c in FRAMED, v) for c, v in zip(categories, values, strict=True))


def hash_text(text: str) -> int:
    return int(hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()[:HEX_DIGITS], 16)


def row_hash(categories: Sequence[str], values: Sequence[Any]) -> int:
    """The reference row hash; SQL on the servers must agree with it bit for bit."""
    return hash_text(row_string(categories, values))


def spec_text(categories: Sequence[str]) -> str:
    """The categories of a row, passed to the SQLite row-hash function as one constant."""
    return ",".join(categories)


def row_hash_sql(
    dialect: str, categories: Sequence[str], framed: Sequence[bool], cols: Sequence[Any], version: int = 0
) -> sa.ColumnElement[int]:
    """SQL for the row hash of ``cols`` (each with its category and framing)."""
    if dialect == "sqlite":
        spec = ",".join(c + ("*" if f else "") for c, f in zip(categories, framed, strict=True))
        return sa.func.dmig_rowhash(lit(spec), *cols, type_=sa.BigInteger)
    tokens = [token_sql(dialect, c, f, col, version) for c, f, col in zip(categories, framed, cols, strict=True)]
    row = sa.func.concat_ws(lit(SEPARATOR), *tokens)
    digest = sa.func.substr(sa.func.md5(row), 1, HEX_DIGITS)
    if dialect == "postgresql":
        return sa.cast(sa.cast(lit("x").op("||")(digest), BIT(HEX_DIGITS * 4)), sa.BigInteger)
    return sa.cast(sa.func.conv(digest, 16, 10), sa.Integer)


def sum_sql(dialect: str, hash_expr: sa.ColumnElement[int]) -> sa.ColumnElement[Any]:
    if dialect == "sqlite":
        return sa.func.dmig_sum(hash_expr, type_=sa.String)
    return sa.func.sum(hash_expr, type_=sa.Numeric)


def as_int(value: Any) -> int:
    """A sum as a Python integer (numeric, DECIMAL, text or NULL for an empty segment)."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal):
        return int(value)
    return int(str(value))


# ---------------------------------------------------------------------------------------------
# SQLite: the same functions in Python, registered on every connection we open.


def _make_rowhash() -> Any:
    """``dmig_rowhash(spec, *values)``: the spec string is a constant per query, so the generated hasher for
    it (``dmig.diff.codegen``, ~3x the reference loop) is built once and reused for every row."""
    cache: dict[str, Any] = {}

    def dmig_rowhash(spec: str, *values: Any) -> int:
        h = cache.get(spec)
        if h is None:
            parts = spec.split(",")
            cats = [p.rstrip("*") for p in parts]
            h = cache[spec] = row_hasher(cats, [p.endswith("*") for p in parts], range(len(parts)))
        return h(values)

    return dmig_rowhash


class _ExactSum:
    """sum() that never overflows: SQLite's own sum() raises past 2**63, total() is a float."""

    def __init__(self) -> None:
        self.total = 0

    def step(self, value: Any) -> None:
        if value is not None:
            self.total += int(value)

    def finalize(self) -> str:
        return str(self.total)


def register_sqlite(dbapi_conn: sqlite3.Connection) -> None:
    dbapi_conn.create_function("dmig_rowhash", -1, _make_rowhash(), deterministic=True)
    dbapi_conn.create_function("dmig_canon", 2, canon, deterministic=True)
    dbapi_conn.create_aggregate("dmig_sum", 1, _ExactSum)
