"""One canonical text per value, whatever database holds it.

Two databases agree on a row only if they render it to the same bytes before hashing, so every
value is reduced to a canonical text by SQL that runs inside each database (and, for SQLite, by
the Python functions below, registered on the connection). The rules, per value category:

- ``int`` / ``bool``: decimal digits, booleans as ``0``/``1`` (so PostgreSQL ``boolean`` matches
  MySQL ``TINYINT(1)`` and SQLite's 0/1).
- ``decimal``: plain notation, never an exponent, trailing fractional zeros and a trailing dot
  stripped, no negative zero: ``10.50`` -> ``10.5``, ``100.00`` -> ``100``, ``-0.00`` -> ``0``.
  An integral decimal therefore reads like an integer, so ``INTEGER`` vs ``NUMERIC`` compares.
- ``float``: the double is taken at 15 significant digits (what PostgreSQL's float8 -> numeric
  cast does), rounded half away from zero to 6 fractional digits, then written like a decimal.
  Differences below 1e-6 are therefore not detected; single-precision columns are widened to
  double first. ``NaN``/``Infinity``/``-Infinity`` are spelt as PostgreSQL spells them.
- ``timestamp``: ``YYYY-MM-DD HH:MM:SS.ffffff``. Zone-aware values are rendered in UTC (each
  session runs with time zone UTC); naive values are taken as they are.
- ``date``: ``YYYY-MM-DD``; ``time``: ``HH:MM:SS.ffffff``.
- ``binary``: lower-case hex.
- ``text`` (and anything else: enums, JSON, UUID, ...): the value's own text, UTF-8. JSON is
  compared as the server prints it, so ``jsonb`` vs MySQL ``JSON`` may differ in spacing.

NULL is the token ``!``, which no canonical number, time or hex string can start with; text
tokens are length-prefixed (``5:hello``), so a ``|`` or ``!`` inside data can never be mistaken
for the column separator ``|`` or for NULL, and ``''`` (``0:``) differs from NULL.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

Category = Literal["int", "bool", "decimal", "float", "timestamp", "date", "time", "binary", "text"]

NULL_TOKEN = "!"
SEPARATOR = "|"
FLOAT_SCALE = Decimal("0.000001")
_WIDE = Context(prec=400)
TIMESTAMP_FMT = "%Y-%m-%d %H:%M:%S.%f"
# Categories whose canonical text can contain any character, hence framed with a length prefix.
FRAMED = frozenset({"text"})
# Categories whose canonical forms agree with each other for the values both can hold.
_NUMERIC = frozenset({"int", "bool", "decimal"})


def category_of(type_: Any) -> Category:
    """Map a reflected SQLAlchemy type to the normalisation rule it needs."""
    name = type(type_).__name__.upper()
    if isinstance(type_, sa.Boolean):
        return "bool"
    if isinstance(type_, sa.Integer):
        return "int"
    if isinstance(type_, sa.Float) or name in ("REAL", "DOUBLE", "DOUBLE_PRECISION", "FLOAT"):
        return "float"
    if isinstance(type_, sa.Numeric):
        return "decimal"
    if isinstance(type_, sa.DateTime):
        return "timestamp"
    if isinstance(type_, sa.Date):
        return "date"
    if isinstance(type_, sa.Time):
        return "time"
    if isinstance(type_, sa.LargeBinary | sa.types._Binary) or name in ("BYTEA", "BLOB", "VARBINARY", "BINARY"):
        return "binary"
    return "text"


def reconcile(
    source: Category, target: Category, source_sqlite: bool, target_sqlite: bool
) -> tuple[Category, Category]:
    """Choose the rule each side applies to one column.

    SQLite stores values loosely (a DATETIME column holds text), and our SQLite functions can read
    any storage class, so the SQLite side adopts the other side's rule. Between two servers, each
    side keeps its own rule where the canonical forms agree (int/decimal), floats win over
    decimals (both rounded the float way), and anything else stays per side (and will differ).
    """
    if source == target:
        return source, target
    if source_sqlite and not target_sqlite:
        return target, target
    if target_sqlite and not source_sqlite:
        return source, source
    if source_sqlite and target_sqlite:
        chosen = target if source == "text" else source
        return chosen, chosen
    if "float" in (source, target) and {source, target} <= _NUMERIC | {"float"}:
        return "float", "float"
    return source, target


def compatible(source: Category, target: Category) -> bool:
    """Whether two per-side rules can render equal values to equal text."""
    return source == target or {source, target} <= _NUMERIC


# ---------------------------------------------------------------------------------------------
# Python side: the reference implementation, used by SQLite functions and by the tests.


def _dec_text(d: Decimal) -> str:
    if d.is_nan():
        return "NaN"
    if d.is_infinite():
        return "Infinity" if d > 0 else "-Infinity"
    if d == 0:
        return "0"
    s = format(d, "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


def _to_decimal(v: Any) -> Decimal | None:
    if isinstance(v, bool):
        return Decimal(int(v))
    if isinstance(v, int | Decimal):
        return Decimal(v)
    if isinstance(v, float):
        return Decimal(repr(v))
    if isinstance(v, str):
        try:
            return Decimal(v.strip())
        except InvalidOperation:
            return None
    return None


def canon_int(v: Any) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str) and v.strip().lower() in ("true", "t", "false", "f"):
        return "1" if v.strip().lower() in ("true", "t") else "0"
    d = _to_decimal(v)
    return _dec_text(d) if d is not None else str(v)


def canon_decimal(v: Any) -> str:
    d = _to_decimal(v)
    return _dec_text(d) if d is not None else str(v)


def canon_float(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
        d: Decimal | None = Decimal(format(v, ".15g"))
    else:
        d = _to_decimal(v)
        if d is not None and d.is_finite():
            d = Decimal(format(float(d), ".15g"))
    if d is None:
        return str(v)
    if not d.is_finite():
        return _dec_text(d)
    # A double can reach 1.8e308: the default 28-digit context cannot hold it with 6 decimals.
    return _dec_text(d.quantize(FLOAT_SCALE, rounding=ROUND_HALF_UP, context=_WIDE))


def _parse_iso(v: str) -> dt.datetime | dt.date | None:
    text = v.strip()
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        pass
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def canon_timestamp(v: Any) -> str:
    value = _parse_iso(v) if isinstance(v, str) else v
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return f"{value.year:04d}-{value.month:02d}-{value.day:02d} {value.strftime('%H:%M:%S.%f')}"
    if isinstance(value, dt.date):
        return f"{value.year:04d}-{value.month:02d}-{value.day:02d} 00:00:00.000000"
    return str(v)


def canon_date(v: Any) -> str:
    value = _parse_iso(v) if isinstance(v, str) else v
    if isinstance(value, dt.date):  # a datetime is a date too: its date part
        return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
    return str(v)


def canon_time(v: Any) -> str:
    value = v
    if isinstance(v, str):
        try:
            value = dt.time.fromisoformat(v.strip())
        except ValueError:
            return v
    if isinstance(value, dt.timedelta):
        micros = round(value.total_seconds() * 1_000_000)
        hours, rest = divmod(micros, 3_600_000_000)
        minutes, rest = divmod(rest, 60_000_000)
        seconds, micro = divmod(rest, 1_000_000)
        return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{micro:06d}"
    if isinstance(value, dt.datetime):
        value = value.time()
    if isinstance(value, dt.time):
        return value.strftime("%H:%M:%S.%f")
    return str(v)


def canon_binary(v: Any) -> str:
    if isinstance(v, str):
        return v.encode("utf-8").hex()
    if isinstance(v, bytes | bytearray | memoryview):
        return bytes(v).hex()
    return str(v).encode("utf-8").hex()


def canon_text(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, bytes | bytearray | memoryview):
        return bytes(v).decode("utf-8", errors="replace")
    if isinstance(v, float):
        return repr(v)
    return str(v)


CANON: dict[str, Callable[[Any], str]] = {
    "int": canon_int,
    "bool": canon_int,
    "decimal": canon_decimal,
    "float": canon_float,
    "timestamp": canon_timestamp,
    "date": canon_date,
    "time": canon_time,
    "binary": canon_binary,
    "text": canon_text,
}


def canon(category: str, value: Any) -> str | None:
    """The canonical text of one value (None stays None: NULL is not a text)."""
    if value is None:
        return None
    return CANON[category](value)


def token(category: str, framed: bool, value: Any) -> str:
    """One column's part of the row string."""
    text = canon(category, value)
    if text is None:
        return NULL_TOKEN
    return f"{len(text)}:{text}" if framed else text


# ---------------------------------------------------------------------------------------------
# SQL side: the same rules as SQL expressions for PostgreSQL and MySQL/MariaDB.


def lit(text: str) -> sa.ColumnElement[str]:
    """An internal constant (never user input) inlined as a SQL string literal."""
    if "'" in text or "\\" in text:
        raise ValueError("internal literal must not contain quotes or backslashes")
    return sa.literal_column(f"'{text}'", sa.String)


class _trim_trailing(FunctionElement[str]):
    """MySQL ``TRIM(TRAILING c FROM s)``, which SQLAlchemy has no construct for."""

    type = sa.String()
    inherit_cache = True
    name = "trim_trailing"


@compiles(_trim_trailing)
def _compile_trim_trailing(element: _trim_trailing, compiler: Any, **kw: Any) -> str:
    expr, char = list(element.clauses)
    return f"TRIM(TRAILING {compiler.process(char, **kw)} FROM {compiler.process(expr, **kw)})"


class _convert_utf8mb4(FunctionElement[str]):
    """MySQL ``CONVERT(x USING utf8mb4)``: one character set (and collation) for every text part."""

    type = sa.String()
    inherit_cache = True
    name = "convert_utf8mb4"


@compiles(_convert_utf8mb4)
def _compile_convert(element: _convert_utf8mb4, compiler: Any, **kw: Any) -> str:
    (expr,) = list(element.clauses)
    return f"CONVERT({compiler.process(expr, **kw)} USING utf8mb4)"


def _pg(category: str, col: sa.ColumnElement[Any], pg_version: int) -> sa.ColumnElement[str]:
    f = sa.func
    if category == "int":
        return sa.cast(col, sa.Text)
    if category == "bool":
        return sa.cast(sa.cast(col, sa.Integer), sa.Text)
    if category == "decimal":
        return sa.cast(_pg_trim(sa.cast(col, sa.Numeric), pg_version), sa.Text)
    if category == "float":
        rounded = f.round(sa.cast(sa.cast(col, sa.Float(precision=53)), sa.Numeric), 6)
        return sa.cast(_pg_trim(rounded, pg_version), sa.Text)
    if category == "timestamp":
        return f.to_char(col, lit("YYYY-MM-DD HH24:MI:SS.US"))
    if category == "date":
        return f.to_char(col, lit("YYYY-MM-DD"))
    if category == "time":
        # to_char has no timetz form; ::time keeps the wall-clock part, as the Python rule does.
        return f.to_char(sa.cast(col, sa.Time), lit("HH24:MI:SS.US"))
    if category == "binary":
        return f.encode(col, lit("hex"))
    return sa.cast(col, sa.Text)


def _pg_trim(num: sa.ColumnElement[Any], pg_version: int) -> sa.ColumnElement[Any]:
    """trim_scale (PostgreSQL 13+), else strip zeros from the text form."""
    if pg_version >= 130000:
        return sa.func.trim_scale(num)
    text = sa.cast(num, sa.Text)
    return sa.case(
        (sa.func.strpos(text, lit(".")) > 0, sa.func.rtrim(sa.func.rtrim(text, lit("0")), lit("."))), else_=text
    )


def _mysql_strip(text: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
    return sa.case(
        (sa.func.locate(lit("."), text) > 0, _trim_trailing(_trim_trailing(text, lit("0")), lit("."))), else_=text
    )


def _mysql(category: str, col: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
    f = sa.func
    if category in ("int", "bool"):
        return sa.cast(col, sa.String)
    if category == "decimal":
        return _mysql_strip(sa.cast(col, sa.String))
    if category == "float":
        return _mysql_strip(sa.cast(sa.cast(col, sa.Numeric(65, 6)), sa.String))
    if category == "timestamp":
        return f.date_format(col, lit("%Y-%m-%d %H:%i:%s.%f"))
    if category == "date":
        return f.date_format(col, lit("%Y-%m-%d"))
    if category == "time":
        return f.time_format(col, lit("%H:%i:%s.%f"))
    if category == "binary":
        return f.lower(f.hex(col))
    return _convert_utf8mb4(col)


def canon_sql(dialect: str, category: str, col: sa.ColumnElement[Any], version: int = 0) -> sa.ColumnElement[Any]:
    """The canonical text of a column as a SQL expression (NULL stays NULL)."""
    if dialect == "postgresql":
        return _pg(category, col, version)
    if dialect == "mysql":
        return _mysql(category, col)
    return sa.func.dmig_canon(lit(category), col)


def token_sql(dialect: str, category: str, framed: bool, col: sa.ColumnElement[Any], version: int = 0) -> Any:
    """One column's part of the row string, NULL already replaced by its token."""
    text = canon_sql(dialect, category, col, version)
    if framed:
        if dialect == "postgresql":
            text = sa.cast(sa.func.length(text), sa.Text).op("||")(lit(":")).op("||")(text)
        else:
            text = sa.func.concat(sa.func.char_length(text), lit(":"), text)
    return sa.func.coalesce(text, lit(NULL_TOKEN))
