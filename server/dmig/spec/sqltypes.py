"""Column types in a spec: a small portable vocabulary mapped to SQLAlchemy types.

A spec names types as text ("varchar(100)", "bigint", "numeric(12,2)", "timestamptz"); parsing
them against a whitelist means a type can never smuggle SQL into a DDL statement, and each
dialect renders its own spelling (jsonb on PostgreSQL, JSON on MySQL, TEXT on SQLite).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from dmig.errors import InvalidInput

_TYPE = re.compile(r"^\s*([a-z][a-z0-9 ]*?)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?\s*(\[\])?\s*$", re.I)

_NO_ARGS: dict[str, Callable[[], sa.types.TypeEngine]] = {
    "smallint": sa.SmallInteger,
    "int2": sa.SmallInteger,
    "integer": sa.Integer,
    "int": sa.Integer,
    "int4": sa.Integer,
    "bigint": sa.BigInteger,
    "int8": sa.BigInteger,
    "text": sa.Text,
    "boolean": sa.Boolean,
    "bool": sa.Boolean,
    "real": sa.REAL,
    "float": sa.Float,
    "double": sa.Double,
    "double precision": sa.Double,
    "date": sa.Date,
    "time": sa.Time,
    "timestamp": sa.DateTime,
    "datetime": sa.DateTime,
    "timestamptz": lambda: sa.DateTime(timezone=True),
    "timestamp with time zone": lambda: sa.DateTime(timezone=True),
    "json": sa.JSON,
    "jsonb": lambda: sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
    "uuid": sa.Uuid,
    "bytea": sa.LargeBinary,
    "blob": sa.LargeBinary,
    "binary": sa.LargeBinary,
}
_LENGTH = {"varchar": sa.String, "character varying": sa.String, "char": sa.CHAR, "character": sa.CHAR}
_PRECISION = {"numeric", "decimal"}

TYPE_NAMES = sorted([*_NO_ARGS, *(f"{k}(n)" for k in _LENGTH), "numeric(p,s)", "decimal(p,s)"])


def parse_type(text: str) -> sa.types.TypeEngine:
    """Map a type name to a SQLAlchemy type, refusing anything outside the vocabulary."""
    m = _TYPE.match(text or "")
    if not m or m.group(4):
        raise InvalidInput(f"unsupported column type {text!r}; use one of: {', '.join(TYPE_NAMES)}", type=text)
    name = re.sub(r"\s+", " ", m.group(1).lower())
    a, b = m.group(2), m.group(3)
    if name in _NO_ARGS and a is None:
        return _NO_ARGS[name]()
    if name in _LENGTH and b is None:
        if a is None and name in ("varchar", "character varying"):
            return sa.String()
        return _LENGTH[name](int(a or 1))
    if name in _PRECISION:
        return sa.Numeric(int(a) if a else None, int(b) if b else None)
    raise InvalidInput(f"unsupported column type {text!r}; use one of: {', '.join(TYPE_NAMES)}", type=text)


def check_type(text: str) -> str:
    parse_type(text)
    return text


def is_integer_type(text: str) -> bool:
    return isinstance(parse_type(text), sa.Integer) and not isinstance(parse_type(text), sa.BigInteger)
