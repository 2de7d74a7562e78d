"""How a spot check reads and compares one plain column on each side (the diff's per-type rules).

A spot check compares driver values in Python, so the rules of ``dmig.diff.normalize`` ("How values
are compared") apply here too, with each side's value read in a form the other side can match:

- PostgreSQL ``json``/``jsonb`` is read as its text (psycopg decodes a ``'null'`` document to Python
  None, which is SQL NULL's value) and compared by canonical content: a JSON null is not a NULL.
- PostgreSQL types the other database has no equivalent for (``interval``, arrays, ``inet``, ...)
  are read as PostgreSQL's text (``::text``) when the other side is not PostgreSQL: that is what a
  copy writes into a text column (``1 day 02:00:00``, ``{1,2,3}``). ``inet``/``cidr`` are compared
  as addresses (PostgreSQL's own equality: ``192.168.0.1`` = ``192.168.0.1/32``).
- MariaDB ``FLOAT`` is read as ``CAST(col AS DOUBLE)`` (its exact widening): the text protocol
  prints 6 digits (``3.40282e+38``), which hides changes and invents others.
- MariaDB geometry is read as ``ST_AsText(col)`` (WKT) when the other side is not MariaDB: its raw
  value is WKB behind an SRID prefix, which no text column holds.
- ``time``: by wall-clock value to the microsecond (``00:00:00``, ``time(0, 0)``, MariaDB's
  ``timedelta`` and SQLite's ``00:00:00.000000`` are equal) and, for ``timetz``, by its UTC offset
  too (a value that lost its offset changed).
- single precision (PostgreSQL ``real``, MariaDB ``FLOAT``): as the float32 value; a double column
  on the other server is compared with the float32 widened exactly (a narrowing copy shows).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from dmig.db import dialects
from dmig.db.dialects import column_catalog
from dmig.diff.normalize import Category, canon, canon_json, canon_time, category_of, mysql_double, value_rule
from dmig.validate.db import Session
from dmig.validate.expr import compile_expr
from dmig.validate.spec import Comparison
from dmig.validate.values import same

Rule = Callable[[Any, Any], bool]

_INET = frozenset({"INET", "CIDR"})
_TIMEISH = frozenset({"time", "text", "char"})


def geometry_columns(s: Session, table: sa.Table) -> set[str]:
    """MariaDB columns holding geometry (SQLAlchemy reflects them as NullType: the catalog says which)."""
    if s.dialect != "mysql" or not any(isinstance(c.type, sa.types.NullType) for c in table.c):
        return set()
    catalog = column_catalog(s.conn, table.schema, table.name)
    return {
        name
        for name, (text, _cs, _co) in catalog.items()
        if text.split("(")[0].strip().lower() in dialects.MYSQL_SPATIAL_TYPES
    }


class _Side:
    """One side's column: its dialect, type, rule category and how it is read."""

    def __init__(self, s: Session, table: sa.Table, name: str, geometry: set[str]) -> None:
        self.dialect = s.dialect
        self.col = table.c[name]
        self.geometry = name in geometry
        self.category: Category = "text" if self.geometry else category_of(self.col.type, s.dialect)
        self.type_name = type(self.col.type).__name__.upper()

    def read(self, other: _Side) -> sa.ColumnElement[Any]:
        col = self.col
        if self.dialect == "postgresql" and self.category == "json":
            return sa.cast(col, sa.Text)  # psycopg would decode a 'null' document to None
        if self.dialect == "postgresql" and other.dialect != "postgresql" and self._pg_without_equivalent():
            return sa.cast(col, sa.Text)
        if self.dialect == "mysql" and self.category == "float4":
            return mysql_double(col)
        if self.geometry and other.dialect != "mysql":
            return sa.func.ST_AsText(col)
        return col

    def _pg_without_equivalent(self) -> bool:
        """A PostgreSQL type read as text for another database (interval, arrays, inet, ...)."""
        return self.category == "text" and not isinstance(self.col.type, sa.String)


def _time_value(v: Any) -> tuple[str, int | None] | None:
    """A time's wall clock to the microsecond and its UTC offset in seconds (None: no offset)."""
    if v is None:
        return None
    if isinstance(v, str):
        try:
            v = dt.time.fromisoformat(v.strip())
        except ValueError:
            return (v, None)
    offset = v.utcoffset() if isinstance(v, dt.time) else None
    return (canon_time(v), None if offset is None else int(offset.total_seconds()))


def same_time(a: Any, b: Any) -> bool:
    return _time_value(a) == _time_value(b)


def _address(v: Any) -> Any:
    try:
        return ipaddress.ip_interface(str(v).strip())
    except ValueError:
        return ("text", str(v))


def same_inet(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return _address(a) == _address(b)


def same_json(a: Any, b: Any) -> bool:
    """JSON by canonical content; both sides are read as text, so NULL and a JSON null differ."""
    if a is None or b is None:
        return a is None and b is None
    return canon_json(a) == canon_json(b)


def _float_rules(s: _Side, t: _Side) -> tuple[Category, Category]:
    """float4 where either side is single precision; a double on the other server stays double."""
    if s.category == "float4" and t.category == "float" and t.dialect != "sqlite":
        return "float4", "float"
    if t.category == "float4" and s.category == "float" and s.dialect != "sqlite":
        return "float", "float4"
    return "float4", "float4"


def _rule(s: _Side, t: _Side) -> Rule:
    pair = {s.category, t.category}
    if s.type_name in _INET or t.type_name in _INET:
        return same_inet
    if "time" in pair and pair <= _TIMEISH:
        return same_time
    if "float4" in pair:
        rs, rt = _float_rules(s, t)
        return lambda a, b: canon(rs, a) == canon(rt, b)
    rule = value_rule(s.category, t.category)
    if rule == "json":
        return same_json
    if rule is None:
        return same
    return lambda a, b: canon(rule, a) == canon(rule, b)


def plan(
    comp: Comparison,
    src: Session,
    stable: sa.Table,
    tgt: Session,
    ttable: sa.Table,
    geometry: tuple[set[str], set[str]],
) -> tuple[sa.ColumnElement[Any], sa.ColumnElement[Any], Rule]:
    """The source read, the target read and the comparison of one field.

    A plain column on both sides follows the per-type rules above; an expression is evaluated by
    each side (``expr.py``) and compared by value normalisation (``values.same``).
    """
    plain = isinstance(comp.source, str) and isinstance(comp.target, str)
    if plain and comp.source in stable.c and comp.target in ttable.c:
        s = _Side(src, stable, str(comp.source), geometry[0])
        t = _Side(tgt, ttable, str(comp.target), geometry[1])
        return s.read(t), t.read(s), _rule(s, t)
    return compile_expr(comp.source, stable, src.dialect), compile_expr(comp.target, ttable, tgt.dialect), same
