"""Key ranges: how a table is cut into segments and how a mismatching segment is cut again.

A segment is a half-open range ``[lo, hi)`` of the key tuple (``None`` = unbounded), so every
row falls in exactly one segment on each side as long as both sides order keys the same way.
Integer single-column keys are cut arithmetically (no query). Every other key (text, dates,
composite keys) is cut at boundaries sampled from real key values: the sampling side numbers
its keys in key order and keeps every ``step``-th one, in one pass over the key index.

Text keys are only comparable as ranges if both sides sort them alike. A side whose collation
is not code-point order (MariaDB's default ``*_general_ci``, PostgreSQL ICU or ``en_US``
locales) has its key expressions forced to byte order (``COLLATE "C"``, ``CAST(.. AS BINARY)``),
which is correct everywhere but cannot use that side's index: such diffs are slower, and the
result says so in a warning.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

Key = tuple[Any, ...]


@dataclass(frozen=True)
class Segment:
    lo: Key | None
    hi: Key | None
    depth: int = 0

    def describe(self) -> str:
        lo = "-inf" if self.lo is None else ", ".join(map(str, self.lo))
        hi = "+inf" if self.hi is None else ", ".join(map(str, self.hi))
        return f"[{lo} .. {hi})"


def byte_order(dialect: str, expr: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """The key expression compared by code point on this dialect (index not usable)."""
    if dialect == "postgresql":
        return sa.collate(expr, "C")
    if dialect == "mysql":
        return sa.cast(expr, sa.LargeBinary)
    return sa.collate(expr, "BINARY")


def _bind(value: Any, type_: Any) -> sa.BindParameter[Any]:
    return sa.bindparam(None, value, type_=type_)


def _tuple_bound(exprs: Sequence[Any], values: Key, types: Sequence[Any], lower: bool) -> sa.ColumnElement[bool]:
    """``(exprs) >= values`` (lower) or ``(exprs) < values``, spelt so every dialect's range scan applies.

    Row-value comparison is not index-friendly on MariaDB, so the tuple order is expanded into
    ``e0 > v0 OR (e0 = v0 AND ...)`` with a redundant ``e0 >= v0`` (or ``<=``) for the optimiser.
    """
    first, v0, t0 = exprs[0], values[0], types[0]
    if len(exprs) == 1:
        return first >= _bind(v0, t0) if lower else first < _bind(v0, t0)
    rest = _tuple_bound(exprs[1:], values[1:], types[1:], lower)
    strict = first > _bind(v0, t0) if lower else first < _bind(v0, t0)
    loose = first >= _bind(v0, t0) if lower else first <= _bind(v0, t0)
    return sa.and_(loose, sa.or_(strict, sa.and_(first == _bind(v0, t0), rest)))


def range_predicate(exprs: Sequence[Any], types: Sequence[Any], seg: Segment) -> sa.ColumnElement[bool] | None:
    parts = []
    if seg.lo is not None:
        parts.append(_tuple_bound(exprs, seg.lo, types, lower=True))
    if seg.hi is not None:
        parts.append(_tuple_bound(exprs, seg.hi, types, lower=False))
    return sa.and_(*parts) if parts else None


def split_int(seg: Segment, parts: int) -> list[Segment]:
    """Equal-width cuts of an integer range (bounds must be set)."""
    assert seg.lo is not None and seg.hi is not None
    a, b = int(seg.lo[0]), int(seg.hi[0])
    width = b - a
    if width <= 1:
        return [seg]
    n = max(2, min(parts, width))
    step = math.ceil(width / n)
    bounds = [*range(a, b, step), b]
    return [Segment((lo,), (hi,), seg.depth + 1) for lo, hi in itertools.pairwise(bounds) if lo < hi]


def cut_at(seg: Segment, boundaries: Sequence[Key]) -> list[Segment]:
    """Cut ``seg`` at sampled key values (already in key order); empty pieces are dropped."""
    points: list[Key] = []
    for b in boundaries:
        if seg.lo is not None and b == seg.lo:
            continue
        if points and b == points[-1]:
            continue
        points.append(tuple(b))
    if not points:
        return [seg]
    edges: list[Key | None] = [seg.lo, *points, seg.hi]
    return [Segment(lo, hi, seg.depth + 1) for lo, hi in itertools.pairwise(edges)]


def sample_query(
    table: sa.TableClause,
    key_cols: Sequence[sa.ColumnElement[Any]],
    order_exprs: Sequence[sa.ColumnElement[Any]],
    where: sa.ColumnElement[bool] | None,
    step: int,
) -> sa.Select[Any]:
    """Every ``step``-th key in key order: boundaries that cut the range into near-equal parts."""
    rn = sa.func.row_number().over(order_by=list(order_exprs)).label("dmig_rn")
    inner = sa.select(*[c.label(f"k{i}") for i, c in enumerate(key_cols)], rn).select_from(table)
    if where is not None:
        inner = inner.where(where)
    sub = inner.subquery("dmig_keys")
    return (
        sa.select(*[sub.c[f"k{i}"] for i in range(len(key_cols))])
        .where(sub.c.dmig_rn % step == 0)
        .order_by(sub.c.dmig_rn)
    )
