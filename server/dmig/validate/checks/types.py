"""data_type: values that would not convert cleanly to a type, or that do not match a regex.

Castability is tested inside the database with the same portable rules on every dialect: a
regex for the lexical form (the three dialects all have a regex operator; SQLite gets Python's
``re`` through SQLAlchemy's REGEXP function), then arithmetic for what a regex cannot see (a
day that does not exist in its month, an integer out of range). ``numeric(p,s)`` counts values
with more than ``s`` decimals as offending: the cast would silently round them. JSON uses the
database's own validator (``JSON_VALID``, ``json_valid``, PostgreSQL 16's ``pg_input_is_valid``).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from dmig.errors import InvalidInput
from dmig.validate.checks import CheckEnv, column_rule
from dmig.validate.db import Session
from dmig.validate.expr import as_text
from dmig.validate.result import Outcome
from dmig.validate.spec import DataTypeCheck, TypeSpec, parse_type

_INT_RANGES = {
    "smallint": (-(2**15), 2**15 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "bigint": (-(2**63), 2**63 - 1),
}
_BOOLEAN_WORDS = ("true", "false", "t", "f", "yes", "no", "y", "n", "1", "0", "on", "off")
_DATE_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
_TIME_RE = r"([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]{1,6})?)?)?([ ]?(Z|[+-][0-9]{2}(:?[0-9]{2})?))?$"
_UUID_RE = r"^[{]?[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}[}]?$"


def matches(expr: sa.ColumnElement[Any], pattern: str, s: Session, *, ignore_case: bool = False) -> Any:
    """``expr`` matches ``pattern`` with the dialect's regex operator (case rule made explicit)."""
    if s.dialect == "postgresql":
        return expr.regexp_match(pattern, flags="i" if ignore_case else None)
    if s.dialect == "mysql":  # MySQL collations are often case-insensitive: say which we mean
        return expr.regexp_match(("(?i)" if ignore_case else "(?-i)") + pattern)
    return expr.regexp_match(("(?i)" if ignore_case else "") + pattern)


def _numeric_re(p: int, s: int) -> str:
    """Lexical numeric(p,s): at most p-s integer digits, at most s decimals (trailing zeros are free)."""
    whole = p - s
    frac = rf"([.][0-9]{{0,{s}}}0*)?"
    options = []
    if whole > 0:
        options.append(rf"0*[0-9]{{1,{whole}}}{frac}")
    options.append(rf"0+{frac}")
    if s > 0:
        options.append(rf"0*[.][0-9]{{1,{s}}}0*")
    return r"^[+-]?(" + "|".join(options) + r")$"


def _part(text: Any, start: int, length: int) -> Any:
    return sa.cast(sa.func.substr(text, start, length), sa.Integer)


def _bad_date(text: Any) -> list[tuple[Any, int]]:
    """CASE arms flagging a YYYY-MM-DD prefix whose month or day does not exist."""
    y, m, d = _part(text, 1, 4), _part(text, 6, 2), _part(text, 9, 2)
    leap = sa.case((sa.or_(sa.and_(y % 4 == 0, y % 100 != 0), y % 400 == 0), 1), else_=0)
    days = sa.case((m == 2, 28 + leap), (m.in_([4, 6, 9, 11]), 30), else_=31)
    return [(y < 1, 1), (sa.or_(m < 1, m > 12), 1), (sa.or_(d < 1, d > days), 1)]


def _bad_time(text: Any) -> list[tuple[Any, int]]:
    has_time = sa.func.substr(text, 11, 1).in_([" ", "T"])
    hh, mi = _part(text, 12, 2), _part(text, 15, 2)
    has_sec = sa.func.substr(text, 17, 1) == ":"
    ss = _part(text, 18, 2)
    return [(sa.and_(has_time, sa.or_(hh > 23, mi > 59)), 1), (sa.and_(has_time, has_sec, ss > 59), 1)]


def offending_condition(t: TypeSpec, col: sa.ColumnElement[Any], s: Session) -> sa.ColumnElement[bool]:
    """True for a non-NULL value that would not convert to ``t``."""
    raw = as_text(col, s.dialect)
    text = sa.func.trim(raw)
    arms: list[tuple[Any, int]]
    if t.kind in _INT_RANGES:
        lo, hi = _INT_RANGES[t.kind]
        as_num = sa.cast(text, sa.Numeric(38, 0))
        arms = [(sa.not_(matches(text, r"^[+-]?[0-9]{1,30}$", s)), 1), (sa.not_(as_num.between(lo, hi)), 1)]
    elif t.kind == "numeric":
        arms = [(sa.not_(matches(text, _numeric_re(t.precision or 0, t.scale or 0), s)), 1)]
    elif t.kind == "varchar":
        arms = [(sa.func.char_length(raw) > t.precision, 1)]
    elif t.kind == "date":
        arms = [(sa.not_(matches(text, _DATE_RE + "$", s)), 1), *_bad_date(text)]
    elif t.kind == "timestamp":
        arms = [(sa.not_(matches(text, _DATE_RE + _TIME_RE, s)), 1), *_bad_date(text), *_bad_time(text)]
    elif t.kind == "boolean":
        arms = [(sa.func.lower(text).not_in(_BOOLEAN_WORDS), 1)]
    elif t.kind == "uuid":
        arms = [(sa.not_(matches(sa.func.lower(text), _UUID_RE, s)), 1)]
    else:
        arms = [(_invalid_json(col, raw, s), 1)]
    return sa.and_(col.is_not(None), sa.case(*arms, else_=0) == 1)


def _invalid_json(col: sa.ColumnElement[Any], raw: Any, s: Session) -> Any:
    if s.dialect in ("mysql", "sqlite"):
        return sa.func.json_valid(raw) == 0
    if s.db.server_version >= (16,):
        return sa.not_(sa.func.pg_input_is_valid(raw, "json"))
    if getattr(col.type, "__visit_name__", "").lower() in ("json", "jsonb"):
        return sa.false()
    raise InvalidInput(
        "castable_to: json needs PostgreSQL 16 or later (pg_input_is_valid) on a text column; "
        f"this server is {'.'.join(map(str, s.db.server_version))}. Use a 'pattern' check instead.",
    )


def run(check: DataTypeCheck, env: CheckEnv) -> Outcome:
    def offending(col: sa.Column[Any], s: Session) -> sa.ColumnElement[bool]:
        if check.castable_to:
            return offending_condition(parse_type(check.castable_to), col, s)
        hit = matches(as_text(col, s.dialect), check.pattern or "", s, ignore_case=check.case_insensitive)
        return sa.and_(col.is_not(None), sa.case((hit, 0), else_=1) == 1)

    what = f"not castable to {check.castable_to}" if check.castable_to else f"not matching /{check.pattern}/"
    return column_rule(env, check, offending, what)
