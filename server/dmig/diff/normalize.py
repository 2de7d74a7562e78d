"""One canonical text per value, whatever database holds it.

Two databases agree on a row only if they render it to the same bytes before hashing, so every
value is reduced to a canonical text by SQL that runs inside each database (and, for SQLite, by
the Python functions below, registered on the connection). The rules, per value category:

- ``int`` / ``bool``: decimal digits, booleans as ``0``/``1`` (so PostgreSQL ``boolean`` matches
  MySQL ``TINYINT(1)`` and SQLite's 0/1).
- ``decimal``: plain notation, never an exponent, trailing fractional zeros and a trailing dot
  stripped, no negative zero: ``10.50`` -> ``10.5``, ``100.00`` -> ``100``, ``-0.00`` -> ``0``.
  An integral decimal therefore reads like an integer, so ``INTEGER`` vs ``NUMERIC`` compares.
- ``float`` (double precision): the exact value, by its shortest round-trip digits (what Python's
  ``repr``, PostgreSQL's ``float8out`` at ``extra_float_digits`` 1 and MariaDB's ``CAST(d AS
  CHAR)`` all print), written in plain notation like a decimal: ``1e60`` is a ``1`` and sixty
  zeros, ``5e-324`` is ``0.`` then 323 zeros and ``5``. So two doubles compare equal exactly when
  they are the same IEEE value, except that ``-0.0`` equals ``0.0`` (both ``0``, as SQL's ``=``
  says). ``NaN``/``Infinity``/``-Infinity`` are spelt as PostgreSQL spells them. An integral double
  reads like an integer and like the equal decimal (``3.0`` -> ``3``).
- ``float4`` (single precision: PostgreSQL ``real``, MariaDB ``FLOAT``): the float32 value,
  widened exactly to double, then the double rule (``0.1`` in a ``real`` is
  ``0.10000000149011612``). SQLite has no float32, so a SQLite value compared with a
  single-precision column is rounded to float32 first; a double column compared with a
  single-precision one is compared as double (a copy that narrowed the value shows as changed).
- ``timestamp``: ``YYYY-MM-DD HH:MM:SS.ffffff``. Zone-aware values are rendered in UTC (each
  session runs with time zone UTC); naive values are taken as they are.
- ``date``: ``YYYY-MM-DD``; ``time``: ``HH:MM:SS.ffffff``.
- ``binary``: lower-case hex.
- ``text`` (and anything else: enums, UUID, ...): the value's own text, UTF-8.
- ``char`` (fixed-length ``CHAR(n)`` on either side): text with trailing blanks (U+0020) removed,
  which is SQL's PAD SPACE rule; PostgreSQL returns ``char(n)`` blank-padded, MariaDB strips
  the padding, SQLite keeps what was stored, and all three compare alike this way.
- ``bit`` (MySQL ``BIT(n)``, PostgreSQL ``bit(n)``, and ``bit varying`` against a number): the
  unsigned integer the bits spell, in decimal, whatever holds it on the other side: ``BIT(1)``
  ``b'1'`` equals boolean true (PostgreSQL ``boolean`` is read as ``(col)::int``, it has no cast to
  ``bigint``), integer 1, ``numeric`` 1, PostgreSQL ``B'1'``, the text ``'1'`` (bits) and SQLite's
  ``'\x01'`` (bytes).
- ``varbit`` (PostgreSQL ``bit varying`` against text or ``bit varying``): the text of the bits as
  written, length and leading zeros included (``B'0101'`` and ``B'101'`` differ, as PostgreSQL says).
- ``timetz`` (PostgreSQL ``time with time zone``): wall time and offset as Python's ``isoformat``
  writes it (``12:00:00+02:00``, ``23:59:59.500000-05:30``), the text the copy writes into a text
  column; a text side is compared as stored (SQLite's parsed and rewritten).
- ``geometry`` (MariaDB spatial types, reflected as ``NullType``; the catalog names them): against
  text, MariaDB's WKT (``ST_AsText``), the copy's form; MariaDB against MariaDB compares the stored
  bytes (SRID + WKB) by the ``binary`` rule.
- ``json``: the document's content as PostgreSQL ``jsonb`` prints it (keys of each object in
  jsonb's order, by length then bytes, duplicates resolved to the last, ``", "``/``": "``
  separators, numbers as their decimal text): the SQLite side renders the same text in Python.
  MariaDB's JSON is LONGTEXT and is compared as its text (``JSON_NORMALIZE`` keeps each string's
  escapes as written, so it is no content form): equal text is equal, differently spelt equal
  documents show as changed. A PostgreSQL JSON column against MariaDB has no common SQL form: that
  column is reported as NOT compared, by name, in the verdict (``not_compared``), never silently.

NULL is the token ``!``, which no canonical number, time or hex string can start with; text
tokens are length-prefixed (``5:hello``), so a ``|`` or ``!`` inside data can never be mistaken
for the column separator ``|`` or for NULL, and ``''`` (``0:``) differs from NULL.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import struct
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import BIT, DOUBLE_PRECISION, INET, JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from dmig.db import dialects

Category = Literal[
    "int",
    "bool",
    "decimal",
    "float",
    "float4",
    "timestamp",
    "date",
    "time",
    "binary",
    "text",
    "char",
    "bit",
    "varbit",
    "json",
    "timetz",
    "geometry",
]

NULL_TOKEN = "!"
SEPARATOR = "|"
TIMESTAMP_FMT = "%Y-%m-%d %H:%M:%S.%f"
# Categories whose canonical text can contain any character, hence framed with a length prefix.
FRAMED = frozenset({"text", "char", "json", "geometry"})
# Categories whose canonical forms agree with each other for the values both can hold.
_NUMERIC = frozenset({"int", "bool", "decimal", "bit"})
_FLOATS = frozenset({"float", "float4"})
_TEXTS = frozenset({"text", "char"})
# Rules whose canonical text is, by construction, the text form the copy writes into a text column.
_AS_TEXT = frozenset({"varbit", "timetz", "geometry"})
SPATIAL_TYPES = dialects.MYSQL_SPATIAL_TYPES
# Rules that only Python (the SQLite side) can apply: a server side never gets them.
_PYTHON_ONLY = frozenset({"float4"})
NOT_COMPARABLE = "not comparable"
_TWO_64 = sa.literal_column("18446744073709551616", sa.Numeric)


def _refine(base: Category, type_: Any, dialect: str) -> Category:
    """The dialect-aware refinements: single precision, fixed-length text, bit strings, JSON."""
    name = type(type_).__name__.upper()
    if base == "float":
        single = (dialect == "postgresql" and name == "REAL") or (dialect == "mysql" and name == "FLOAT")
        return "float4" if single else base
    if dialect == "postgresql" and (name in ("BIT_VARYING", "VARBIT") or (name == "BIT" and type_.varying)):
        return "varbit"
    if name == "BIT":
        return "bit"
    if base == "time" and dialect == "postgresql" and getattr(type_, "timezone", False):
        return "timetz"
    if (isinstance(type_, sa.JSON) or name in ("JSON", "JSONB")) and dialect != "mysql":
        return "json"  # MySQL/MariaDB JSON stays text: no SQL there renders jsonb's form
    if isinstance(type_, sa.CHAR) or name in ("CHAR", "NCHAR", "BPCHAR", "CHARACTER"):
        return "char"
    return base


def category_of(type_: Any, dialect: str | None = None) -> Category:
    """Map a reflected SQLAlchemy type to the normalisation rule it needs.

    With ``dialect`` (the diff's sides pass it) the rules of "How values are compared" apply in
    full: single-precision floats, ``CHAR(n)``, ``BIT`` and JSON get their own categories. Without
    it (older fingerprints and backups that store categories) the coarse categories stay as they were.
    """
    base = _base_category(type_)
    return base if dialect is None else _refine(base, type_, dialect)


def native_category(type_text: str, dialect: str) -> Category | None:
    """The rule for a column SQLAlchemy reflects as ``NullType``, from the catalog's type text (MariaDB geometry)."""
    base = type_text.split("(")[0].strip().lower()
    return "geometry" if dialect == "mysql" and base in SPATIAL_TYPES else None


def _base_category(type_: Any) -> Category:
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
    """Choose the rule each side applies to one column (``NOT_COMPARABLE`` when none fits both).

    SQLite stores values loosely (a DATETIME column holds text), and our SQLite functions can read
    any storage class, so the SQLite side adopts the other side's rule. Between two servers, each
    side keeps its own rule where the canonical forms agree (int/decimal/bit, float/float4,
    text/char under the padding rule), floats win over decimals, ``CHAR`` wins over text (the
    padding rule applies whenever either side is fixed-length), ``bit`` is read on the side that
    holds bits and the other side's integers/booleans/bit text agree with it, and JSON needs the
    same server on both sides.
    """
    pair = {source, target}
    if "char" in pair and pair <= _TEXTS:
        source = target = "char"
    if "varbit" in pair and len(pair) == 2 and pair - {"varbit"} <= _NUMERIC:
        # against numbers (MySQL BIT, integers, booleans) a bit string is the integer it spells
        source, target = ("bit" if c == "varbit" else c for c in (source, target))
    if source == target == "geometry":
        return "binary", "binary"  # MariaDB on both sides: its own bytes, SRID included
    if source == target:
        return source, target
    if source_sqlite and target_sqlite:
        chosen = target if source == "text" else source
        return chosen, chosen
    if source_sqlite or target_sqlite:
        other = target if source_sqlite else source
        mine = source if source_sqlite else target
        if other == "float4" and mine not in _FLOATS | _NUMERIC | {"text"}:
            other = "float"
        chosen = other
        return (chosen, other) if source_sqlite else (other, chosen)
    if pair & _FLOATS and pair <= _NUMERIC | _FLOATS:
        # float4 is widened exactly in SQL, so on a server it is the double rule.
        return ("float" if source == "float4" else source if source in _FLOATS else "float"), (
            "float" if target == "float4" else target if target in _FLOATS else "float"
        )
    if "bit" in pair:
        other = target if source == "bit" else source
        if other in _NUMERIC or other in _TEXTS:
            return "bit", "bit"
    if "json" in pair:
        other = target if source == "json" else source
        if other in _TEXTS:
            return "json", "json"  # only PostgreSQL can render the text side's JSON the jsonb way (see plan)
        return NOT_COMPARABLE, NOT_COMPARABLE  # type: ignore[return-value]
    return source, target


def compatible(source: Category, target: Category) -> bool:
    """Whether two per-side rules can render equal values to equal text."""
    pair = {source, target}
    as_text = len(pair & _AS_TEXT) == 1 and len(pair - _AS_TEXT) == 1 and pair - _AS_TEXT <= _TEXTS
    return source == target or pair <= _NUMERIC or pair <= _FLOATS or as_text


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


def float_text(v: float) -> str:
    """A double's exact value in plain notation, from its shortest round-trip digits (``repr``)."""
    if v != v:
        return "NaN"
    if v in (math.inf, -math.inf):
        return "Infinity" if v > 0 else "-Infinity"
    r = repr(v)
    if "e" in r:
        return _dec_text(Decimal(r))
    if r.endswith(".0"):
        r = r[:-2]
    return "0" if r == "-0" else r


def _as_float(v: Any) -> float | None:
    if isinstance(v, float):
        return v
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, int | Decimal):
        try:
            return float(v)
        except OverflowError:
            return math.inf if v > 0 else -math.inf
    if isinstance(v, str):
        try:
            return float(v.strip())
        except ValueError:
            return None
    return None


def canon_float(v: Any) -> str:
    f = _as_float(v)
    return str(v) if f is None else float_text(f)


def _to_float32(f: float) -> float:
    try:
        return struct.unpack("<f", struct.pack("<f", f))[0]
    except OverflowError:  # beyond float32's range: what a float32 column would hold is out of reach
        return math.inf if f > 0 else -math.inf


def canon_float4(v: Any) -> str:
    f = _as_float(v)
    return str(v) if f is None else float_text(_to_float32(f))


def canon_char(v: Any) -> str:
    return canon_text(v).rstrip(" ")


def canon_bit(v: Any) -> str:
    """The unsigned integer a bit string spells, whatever form it arrived in."""
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, bytes | bytearray | memoryview):
        return str(int.from_bytes(bytes(v), "big"))
    if isinstance(v, str):
        if v and set(v) <= {"0", "1"}:
            return str(int(v, 2))
        try:
            return str(int.from_bytes(v.encode("latin-1"), "big"))
        except UnicodeEncodeError:
            return v
    return canon_int(v)


def canon_varbit(v: Any) -> str:
    """A bit string against text: its text of bits as written, length and leading zeros included
    (PostgreSQL's ``B'0101'`` and ``B'101'`` are different values, and so are the texts)."""
    return canon_text(v)


def canon_timetz(v: Any) -> str:
    """A time of day with its offset as Python's ``isoformat`` writes it (``12:00:00+02:00``,
    ``23:59:59.500000-05:30``): the form the copy writes into a text column. Text without an
    offset stays as it is, so it never equals a zoned value."""
    value = v
    if isinstance(v, str):
        try:
            value = dt.time.fromisoformat(v.strip())
        except ValueError:
            return v
    if isinstance(value, dt.time) and value.tzinfo is not None:
        return value.isoformat()
    return canon_text(v)


def canon_geometry(v: Any) -> str:
    """MariaDB geometry against text: its WKT (``ST_AsText`` on MariaDB; a text side as stored)."""
    if isinstance(v, bytes | bytearray | memoryview):
        return bytes(v).hex()  # MariaDB's own SRID + WKB bytes: never equal to a WKT text
    return canon_text(v)


def _json_value(v: Any) -> Any:
    if isinstance(v, bytes | bytearray | memoryview):
        v = bytes(v).decode("utf-8", errors="replace")
    if isinstance(v, str):
        return json.loads(v, parse_float=Decimal, parse_int=Decimal)
    return _decimals(v)


def _decimals(v: Any) -> Any:
    """Numbers of an already decoded document as Decimal (drivers hand over dicts and floats)."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, float):
        return Decimal(repr(v))
    if isinstance(v, int):
        return Decimal(v)
    if isinstance(v, dict):
        return {str(k): _decimals(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_decimals(x) for x in v]
    return v


def _jsonb_number(d: Decimal) -> str:
    text = format(d, "f")
    return text.lstrip("-") if d == 0 else text


def _jsonb_text(v: Any) -> str:
    """PostgreSQL's jsonb output: keys by (UTF-8 length, bytes), ", " and ": ", numbers as numeric prints them."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, Decimal):
        return _jsonb_number(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(_jsonb_text(x) for x in v) + "]"
    keys = sorted(v, key=lambda k: (len(k.encode("utf-8")), k.encode("utf-8")))
    return "{" + ", ".join(f"{json.dumps(k, ensure_ascii=False)}: {_jsonb_text(v[k])}" for k in keys) + "}"


def canon_json(v: Any) -> str:
    try:
        return _jsonb_text(_json_value(v))
    except ValueError:  # not JSON at all: its own text, which a valid document on the other side never equals
        return canon_text(v)


def value_rule(a: Category, b: Category) -> Category | None:
    """The rule for two values compared in Python with each side's driver value at hand (validate's spot
    check): JSON by content (PostgreSQL's and MariaDB's columns alike), CHAR unpadded, bits by integer
    (``bit varying`` against text by its bit text), timetz against text by wall time and offset;
    None leaves the comparison to the caller's own value normalisation (numbers by exact value)."""
    pair = {a, b}
    if "json" in pair:
        return "json"
    if "char" in pair and pair <= _TEXTS:
        return "char"
    if "varbit" in pair:
        return "bit" if pair & _NUMERIC else "varbit"  # as ``reconcile`` chooses: integer vs numbers, else bit text
    if "bit" in pair:
        return "bit"
    if "timetz" in pair and pair - {"timetz"} <= _TEXTS:
        return "timetz"
    return None


def canon_json_value(v: Any, decoded: bool) -> str:
    """``canon_json`` of a value a driver already decoded (psycopg hands jsonb over as Python values:
    a jsonb scalar string is then a plain ``str`` that must not be parsed again)."""
    if v is None:
        return "null"
    return _jsonb_text(_decimals(v)) if decoded else canon_json(v)


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
    "float4": canon_float4,
    "timestamp": canon_timestamp,
    "date": canon_date,
    "time": canon_time,
    "binary": canon_binary,
    "text": canon_text,
    "char": canon_char,
    "bit": canon_bit,
    "varbit": canon_varbit,
    "json": canon_json,
    "timetz": canon_timetz,
    "geometry": canon_geometry,
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


class _trim_leading(FunctionElement[str]):
    """MySQL ``TRIM(LEADING c FROM s)``."""

    type = sa.String()
    inherit_cache = True
    name = "trim_leading"


@compiles(_trim_leading)
def _compile_trim_leading(element: _trim_leading, compiler: Any, **kw: Any) -> str:
    expr, char = list(element.clauses)
    return f"TRIM(LEADING {compiler.process(char, **kw)} FROM {compiler.process(expr, **kw)})"


def mysql_double(col: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """``CAST(col AS DOUBLE)`` on MariaDB/MySQL: a FLOAT widened exactly (validate reads FLOAT this way,
    as the text protocol prints only 6 digits of it)."""
    return dialects.mysql_as_double(col)


class _as_unsigned(FunctionElement[Any]):
    """MySQL ``CAST(x AS UNSIGNED)``: a BIT value as its integer."""

    type = sa.Integer()
    inherit_cache = True
    name = "as_unsigned"


@compiles(_as_unsigned)
def _compile_as_unsigned(element: _as_unsigned, compiler: Any, **kw: Any) -> str:
    (expr,) = list(element.clauses)
    return f"CAST({compiler.process(expr, **kw)} AS UNSIGNED)"


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
    if category in ("float", "float4"):
        # float8out prints the shortest round-trip digits (extra_float_digits is set to 1 by the
        # side); fixed notation is already canonical apart from "-0", exponents go through numeric.
        text = sa.cast(sa.cast(col, DOUBLE_PRECISION), sa.Text)
        plain = sa.cast(_pg_trim(sa.cast(text, sa.Numeric), pg_version), sa.Text)
        return sa.case(
            (f.strpos(text, lit("e")) > 0, plain),
            (text == lit("-0"), lit("0")),
            else_=text,
        )
    if category == "char":
        return f.rtrim(sa.cast(col, sa.Text), lit(" "))
    if category == "bit":
        held = getattr(col, "type", None)
        if isinstance(held, sa.Boolean):
            return sa.cast(sa.cast(col, sa.Integer), sa.Text)  # boolean has no cast to bigint, only to int
        if isinstance(held, sa.Integer):
            return sa.cast(col, sa.Text)
        if isinstance(held, sa.Numeric) and not isinstance(held, sa.Float):
            return _pg("decimal", col, pg_version)  # BIT(64) beyond bigint, held as numeric(20)
        bits = sa.cast(sa.cast(f.lpad(sa.cast(col, sa.Text), 64, lit("0")), BIT(64)), sa.BigInteger)
        unsigned = sa.case((bits < 0, sa.cast(bits, sa.Numeric) + _TWO_64), else_=sa.cast(bits, sa.Numeric))
        return sa.cast(unsigned, sa.Text)
    if category == "json":
        return sa.cast(sa.cast(col, JSONB), sa.Text)
    if category == "timetz":
        return _pg_timetz(col)
    if category == "timestamp":
        return f.to_char(col, lit("YYYY-MM-DD HH24:MI:SS.US"))
    if category == "date":
        return f.to_char(col, lit("YYYY-MM-DD"))
    if category == "time":
        # to_char has no timetz form; ::time keeps the wall-clock part, as the Python rule does.
        return f.to_char(sa.cast(col, sa.Time), lit("HH24:MI:SS.US"))
    if category == "binary":
        return f.encode(col, lit("hex"))
    if isinstance(getattr(col, "type", None), INET):
        # inet::text always adds the netmask ('192.168.0.1/32'); abbrev() is inet_out, the printed form the
        # copy writes across dialects. Not for cidr: abbrev(cidr) shortens '10.1.0.0/16' to '10.1/16'.
        return f.abbrev(col)
    return sa.cast(col, sa.Text)


def _pg_timetz(col: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
    """``canon_timetz`` in SQL: ``HH:MM:SS``, ``.ffffff`` unless zero, then ``+HH:MM`` (``:SS`` if any)."""
    f = sa.func
    wall = sa.cast(col, sa.Time)
    micros = f.to_char(wall, lit("US"))
    frac = sa.case((micros == lit("000000"), lit("")), else_=lit(".").op("||")(micros))
    east = sa.cast(sa.extract("timezone", col), sa.Integer)
    secs = f.abs(east)

    def two(n: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
        return f.lpad(sa.cast(n, sa.Text), 2, lit("0"))

    sign = sa.case((east < 0, lit("-")), else_=lit("+"))
    rest = f.mod(secs, 60)
    seconds = sa.case((rest == 0, lit("")), else_=lit(":").op("||")(two(rest)))
    offset = sign.op("||")(two(f.div(secs, 3600))).op("||")(lit(":")).op("||")(two(f.div(f.mod(secs, 3600), 60)))
    return f.to_char(wall, lit("HH24:MI:SS")).op("||")(frac).op("||")(offset).op("||")(seconds)


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


def _mysql_float(col: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
    """A double's plain-notation text on MariaDB, from ``CAST(d AS CHAR)``'s shortest digits.

    Fixed notation (most values) is already canonical for the absolute value; only a text with
    an exponent (``1e60``, ``5e-324``) is taken apart and written out, in the CASE branch that
    MariaDB evaluates for those rows alone.
    """
    f = sa.func
    value = dialects.mysql_as_double(col)
    text = sa.cast(f.abs(value), sa.String)
    mantissa = f.substring_index(text, lit("e"), 1)
    exponent = sa.cast(f.substring_index(text, lit("e"), -1), sa.Integer)
    fraction = sa.case(
        (f.locate(lit("."), mantissa) > 0, f.char_length(f.substring_index(mantissa, lit("."), -1))), else_=0
    )
    digits = _trim_leading(f.replace(mantissa, lit("."), lit("")), lit("0"))
    shift = (exponent - fraction).self_group()
    n = f.char_length(digits)
    written = sa.case(
        (digits == lit(""), lit("0")),
        (shift >= 0, f.concat(digits, f.repeat(lit("0"), shift))),
        (n > -shift, _mysql_strip(f.concat(f.left(digits, n + shift), lit("."), f.right(digits, -shift)))),
        else_=_mysql_strip(f.concat(lit("0."), f.repeat(lit("0"), -shift - n), digits)),
    )
    body = sa.case((f.locate(lit("e"), text) == 0, text), else_=written)
    return sa.case((value < 0, f.concat(lit("-"), body)), else_=body)


def _mysql(category: str, col: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
    f = sa.func
    if category in ("int", "bool"):
        return sa.cast(col, sa.String)
    if category == "decimal":
        return _mysql_strip(sa.cast(col, sa.String))
    if category in ("float", "float4"):
        return _mysql_float(col)
    if category == "char":
        return _trim_trailing(_convert_utf8mb4(col), lit(" "))
    if category == "bit":
        if isinstance(getattr(col, "type", None), sa.String):
            return sa.cast(f.conv(col, 2, 10), sa.String)  # text of the bits
        return sa.cast(_as_unsigned(col), sa.String)
    if category == "timestamp":
        return f.date_format(col, lit("%Y-%m-%d %H:%i:%s.%f"))
    if category == "date":
        return f.date_format(col, lit("%Y-%m-%d"))
    if category == "time":
        return f.time_format(col, lit("%H:%i:%s.%f"))
    if category == "binary":
        return f.lower(f.hex(col))
    if category == "geometry":
        return _convert_utf8mb4(f.ST_AsText(col))
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
