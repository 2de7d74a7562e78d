"""The column-mapping expression language, compiled to SQLAlchemy per dialect.

Renamed, split and merged columns are compared through expressions such as
``{concat: [first_name, {lit: " "}, last_name]}`` or
``{split_part: {column: user_name, sep: " ", index: 1}}``. They are data, not SQL: each node maps
to a SQLAlchemy construct with bound literals, so nothing from the spec is ever pasted into SQL.
Semantics are the same on every dialect: NULL parts of a concat count as '', split_part past the
last part is '' (PostgreSQL's rule; MySQL's SUBSTRING_INDEX and SQLite need help to agree).
"""

from __future__ import annotations

from functools import reduce
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import Grouping

from dmig.validate.db import column
from dmig.validate.spec import (
    Cast,
    Coalesce,
    Concat,
    Expr,
    Lit,
    Lower,
    Replace,
    SplitPart,
    SplitPartArgs,
    Substr,
    Trim,
    Upper,
)

_CASTS: dict[str, Any] = {
    "text": sa.String(4000),
    "integer": sa.BigInteger(),
    "numeric": sa.Numeric(38, 10),
    "date": sa.Date(),
    "timestamp": sa.DateTime(),
    "boolean": sa.Boolean(),
}


def as_text(expr: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[str]:
    if dialect == "mysql":
        return sa.cast(expr, sa.CHAR())
    return sa.cast(expr, sa.Text() if dialect == "postgresql" else sa.String())


def compile_expr(expr: Expr, table: sa.Table, dialect: str) -> sa.ColumnElement[Any]:
    """Compile one expression against a reflected table (unknown columns: NotFound)."""
    if isinstance(expr, str):
        return column(table, expr)
    c = lambda e: compile_expr(e, table, dialect)  # noqa: E731
    if isinstance(expr, Lit):
        return sa.literal(expr.lit)
    if isinstance(expr, Concat):
        parts = [_concat_part(e, table, dialect) for e in expr.concat]
        return reduce(lambda a, b: a.concat(b), parts)
    if isinstance(expr, Coalesce):
        return sa.func.coalesce(*[c(e) for e in expr.coalesce])
    if isinstance(expr, Lower):
        return sa.func.lower(c(expr.lower))
    if isinstance(expr, Upper):
        return sa.func.upper(c(expr.upper))
    if isinstance(expr, Trim):
        return sa.func.trim(c(expr.trim))
    if isinstance(expr, SplitPart):
        return _split_part(expr.split_part, as_text(c(expr.split_part.column), dialect), dialect)
    if isinstance(expr, Substr):
        a = expr.substr
        args = [c(a.column), a.start] + ([a.length] if a.length is not None else [])
        return sa.func.substr(*args)
    if isinstance(expr, Replace):
        return sa.func.replace(c(expr.replace.column), expr.replace.old, expr.replace.new)
    if isinstance(expr, Cast):
        return sa.cast(c(expr.cast.column), _CASTS[expr.cast.to])
    raise TypeError(f"unknown expression node {type(expr).__name__}")


def _concat_part(e: Expr, table: sa.Table, dialect: str) -> sa.ColumnElement[Any]:
    if isinstance(e, Lit) and isinstance(e.lit, str):
        return sa.literal(e.lit)
    return sa.func.coalesce(as_text(compile_expr(e, table, dialect), dialect), "")


def _split_part(a: SplitPartArgs, text: sa.ColumnElement[str], dialect: str) -> sa.ColumnElement[Any]:
    sep = sa.literal(a.sep)
    if dialect == "sqlite":
        return sa.func.dmig_split_part(text, sep, a.index, 1 if a.rest else 0)
    if dialect == "postgresql":
        if not a.rest:
            return sa.func.split_part(text, sep, a.index)
        parts = sa.type_coerce(Grouping(sa.func.string_to_array(text, sep)), postgresql.ARRAY(sa.Text))
        return sa.func.coalesce(sa.func.array_to_string(parts[a.index : 2_147_483_647], sep), "")
    # MySQL/MariaDB: SUBSTRING_INDEX returns the last part when asked past the end; count parts first.
    n_parts = (sa.func.char_length(text) - sa.func.char_length(sa.func.replace(text, sep, ""))) / sa.func.char_length(
        sep
    ) + 1
    prefix = sa.func.substring_index(text, sep, a.index - 1)
    if a.rest:
        start = 1 if a.index == 1 else sa.func.char_length(prefix) + sa.func.char_length(sep) + 1
        value = sa.func.substring(text, start)
    else:
        value = sa.func.substring_index(sa.func.substring_index(text, sep, a.index), sep, -1)
    return sa.case((text.is_(None), None), (n_parts < a.index, ""), else_=value)
