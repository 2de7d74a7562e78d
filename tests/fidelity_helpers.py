"""Fidelity suite (issue 14): random tables over every type of each dialect, copied along all 9 pairs,
compared INDEPENDENTLY of dmig's own hashing, and the tools' verdicts checked against that comparison.

How a case runs (``run_case``): a table of one *type family* (below) is created on the source with
fixed edge rows plus rows drawn by hypothesis; ``dmig copy`` (``dmig.move.service.copy_database``, the
real service) copies it; both sides are read with plain SQLAlchemy/driver queries (``SELECT`` of every
column, JSON read as text) and compared in Python under the rules below; then ``dmig diff``
(``dmig.diff.service.diff_table``), the copy's own verification (``CopySummary.verification``) and
``dmig validate`` (a ``spot_check`` over every row) must each agree with that comparison.

Normalisation rules of the independent comparison (one canonical Python value per cell):

- NULL is only equal to NULL; the empty string / empty bytes are values, never NULL.
- Integers (any width, signed or unsigned, SQLite INTEGER, text digits) by exact integer value.
- DECIMAL/NUMERIC by exact decimal value (``Decimal``, trailing zeros of the scale ignored: 1.50 == 1.5).
- Doubles by exact IEEE value: the same 64-bit float (read from text with ``float()``), NaN equal to
  NaN, +Inf/-Inf themselves; -0.0 equals 0.0 (IEEE equality; neither MariaDB nor SQLite keeps the sign).
  32-bit floats (PostgreSQL ``real``, MySQL ``FLOAT``) by their value rounded to float32 on both sides.
- CHAR(n): trailing blanks ignored (PostgreSQL pads, MariaDB and SQLite do not); every other text
  exactly, trailing blanks included (``'b '`` != ``'b'``), case and accents included.
- Binary exactly (bytes); MySQL ``BINARY(n)`` values are compared as the server returns them (padded).
- Booleans by truth value (``True``, 1, ``'1'``, ``'t'``, ``'true'``).
- BIT / VARBIT by their integer value (``B'101'``, ``b'\\x05'``, 5, ``'101'`` are equal; a BIT(1)
  may arrive as a boolean). Raw bytes stored as characters (``'\\x01'``) are NOT equal to 1.
- JSON by parsed content: objects as mappings (key order ignored, as jsonb reorders), numbers by exact
  decimal value (1.0 == 1, big integers exact), strings exactly.
- Dates, times and timestamps exactly to the precision the source column declares (the values drawn
  have no finer digits, so the target must hold every digit): ISO text and driver objects are equal
  when they name the same instant/wall time. ``timestamptz`` and MySQL ``TIMESTAMP`` by their UTC
  instant (a naive target value is read as UTC, documented). ``timetz`` by wall time AND offset:
  a target that drops the offset changed the value. MySQL ``TIME`` (a duration) by microseconds.
- Zero dates (``0000-00-00``) are the value ``'zero date'``; a NULL in their place is a change that
  must be reported (the copy's ``tables[].warnings``) unless target and source are both MariaDB, where
  the value must stay as it is.
- ``interval`` by (months, microseconds); uuid by its 128-bit value; inet by ``ipaddress`` value;
  enums by label; MySQL SET by the set of its members; arrays element by element; geometry POINT by
  its (x, y) (from WKB with or without the 4-byte SRID prefix, or WKT text); YEAR by integer.
- A value a target cannot hold must be reported by the copy: the row rejected (``tables[].rejects``)
  or the column's change counted (``tables[].warnings[column]``) or named in ``tables[].notes``.
  Anything else that differs is a *silent change* and fails the case.

A tool verdict disagrees with the independent comparison when it says equal / match / pass while the
tables differ, or differ / FAILED / fail while they are identical (an error instead of a verdict on a
table that was copied also counts, e.g. "nothing to compare"). Each disagreement fails the case.

Known defects of the issue that main still has are listed in ``KNOWN_GAPS`` (pair, family) -> reason:
those cases are ``xfail(strict=True)``; once a fix lands, remove its entries and the case must pass.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import math
import os
import re
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from dmig.context import RunContext
from dmig.db.urls import dialect_of, parse_url
from dmig.diff.service import diff_table
from dmig.move.models import CopyRequest, CopySummary
from dmig.move.service import copy_database
from dmig.validate.load import parse_spec
from dmig.validate.runner import run_spec

DIALECTS = ("sqlite", "postgresql", "mysql")
PAIRS = [(s, t) for s in DIALECTS for t in DIALECTS]

# --- hypothesis profiles: bounded for `make test`, longer for `make fidelity` -------------------------

EXAMPLES = int(os.environ.get("DMIG_FIDELITY_EXAMPLES", "1"))
RANDOM_ROWS = int(os.environ.get("DMIG_FIDELITY_ROWS", "3"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI is reproducible
    database=None,
    # The bounded run (`make test`) runs the explicit example only: the edge rows, one copy per case, no
    # shrinking (a failing case, a known gap included, costs one copy). `make fidelity` adds drawn rows.
    phases=(Phase.explicit,) if EXAMPLES <= 1 else (Phase.explicit, Phase.generate, Phase.shrink),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- canonical values (the rules above) ------------------------------------------------------------------

ZERO = "zero date"


class Text(str):
    """A text value that is not in its type's form (e.g. raw bytes stored as characters): never equal to it."""


def _f64(v: Any) -> Any:
    if isinstance(v, bool):
        return v
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            return Text(v)
    v = float(v)
    if math.isnan(v):
        return "NaN"
    return v + 0.0  # -0.0 == 0.0


def _f32(v: Any) -> Any:
    v = _f64(v)
    if isinstance(v, float) and math.isfinite(v):
        return struct.unpack("f", struct.pack("f", v))[0]
    return v


def _int(v: Any) -> Any:
    if isinstance(v, str):
        try:
            return int(v)
        except ValueError:
            return Text(v)
    if isinstance(v, float | Decimal):
        return int(v) if v == int(v) else v
    return int(v)


def _dec(v: Any) -> Any:
    try:
        d = Decimal(repr(v)) if isinstance(v, float) else Decimal(str(v))
    except InvalidOperation:
        return Text(v)
    return d.normalize() if d else Decimal(0)


def _bool(v: Any) -> Any:
    if isinstance(v, str):
        return v.strip().lower() in ("1", "t", "true", "y", "yes", "on")
    return bool(v)


def _char(v: Any) -> Any:
    return v.rstrip(" ") if isinstance(v, str) else v


def _bytes(v: Any) -> Any:
    if isinstance(v, str):
        return Text(v)
    return bytes(v)


def _bit(v: Any) -> Any:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    if isinstance(v, bytes | bytearray | memoryview):
        return int.from_bytes(bytes(v), "big")
    if isinstance(v, str):
        return int(v, 2) if v and set(v) <= {"0", "1"} else Text(v)
    return Text(repr(v))


def _json(v: Any) -> Any:
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, str):
        try:
            v = json.loads(v, parse_float=Decimal, parse_int=int)
        except ValueError:
            return Text(v)
    return _frozen_json(v)


def _frozen_json(v: Any) -> Any:
    if isinstance(v, dict):
        return ("obj", frozenset((k, _frozen_json(x)) for k, x in v.items()))
    if isinstance(v, list):
        return ("arr", tuple(_frozen_json(x) for x in v))
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, int | float | Decimal):
        return ("num", _dec(v))
    return v


def _date(v: Any) -> Any:
    if isinstance(v, str):
        if v.startswith("0000") or "-00" in v[:10]:
            return ZERO
        try:
            return dt.date.fromisoformat(v[:10])
        except ValueError:
            return Text(v)
    if isinstance(v, dt.datetime):
        return Text(str(v))
    return v


def _micros_of_day(v: Any) -> Any:
    """time of day / MySQL TIME duration -> microseconds (a negative or >24h duration stays distinct)."""
    if isinstance(v, dt.timedelta):
        return v // dt.timedelta(microseconds=1)
    if isinstance(v, dt.time):
        return ((v.hour * 60 + v.minute) * 60 + v.second) * 1_000_000 + v.microsecond
    if isinstance(v, str):
        m = re.fullmatch(r"(-?)(\d+):(\d\d):(\d\d)(?:\.(\d{1,6}))?", v)
        if not m:
            return Text(v)
        sign = -1 if m[1] else 1
        frac = int((m[5] or "0").ljust(6, "0"))
        return sign * (((int(m[2]) * 60 + int(m[3])) * 60 + int(m[4])) * 1_000_000 + frac)
    return Text(repr(v))


def _timetz(v: Any) -> Any:
    if isinstance(v, dt.time):
        off = v.utcoffset()
        return (_micros_of_day(v.replace(tzinfo=None)), off)
    if isinstance(v, str):
        m = re.fullmatch(r"([\d:.]+)([+-]\d\d(?::?\d\d)?)?", v)
        if not m or not m[2]:
            return Text(v)  # the offset is gone
        sign = -1 if m[2][0] == "-" else 1
        hh, mm = int(m[2][1:3]), int(m[2][-2:]) if len(m[2]) > 3 else 0
        return (_micros_of_day(m[1]), sign * dt.timedelta(hours=hh, minutes=mm))
    return Text(repr(v))


def _ts(v: Any) -> Any:
    if isinstance(v, str):
        if v.startswith("0000") or "-00" in v[:10]:
            return ZERO
        try:
            v = dt.datetime.fromisoformat(v)
        except ValueError:
            return Text(v)
    if isinstance(v, dt.datetime):
        return v.astimezone(dt.UTC).replace(tzinfo=None) if v.tzinfo else v
    return Text(repr(v))


_INTERVAL = re.compile(
    r"(?:(-?\d+) years? ?)?(?:(-?\d+) mons? ?)?(?:(-?\d+) days?,? ?)?(?:([+-]?)(\d+):(\d\d):(\d\d)(?:\.(\d+))?)?"
)


def _interval(v: Any) -> Any:
    if isinstance(v, dt.timedelta):
        return (0, v // dt.timedelta(microseconds=1))
    if isinstance(v, str):
        m = _INTERVAL.fullmatch(v.strip())
        if not m or not v.strip():
            return Text(v)
        months = int(m[1] or 0) * 12 + int(m[2] or 0)
        micros = int(m[3] or 0) * 86_400_000_000
        if m[5]:
            part = ((int(m[5]) * 60 + int(m[6])) * 60 + int(m[7])) * 1_000_000 + int((m[8] or "0").ljust(6, "0")[:6])
            micros += -part if m[4] == "-" else part
        return (months, micros)
    return Text(repr(v))


def _uuid(v: Any) -> Any:
    try:
        return uuid.UUID(str(v)).int
    except ValueError:
        return Text(v)


def _inet(v: Any) -> Any:
    try:
        return ipaddress.ip_interface(str(v))
    except ValueError:
        return Text(v)


def _set(v: Any) -> Any:
    if isinstance(v, set | frozenset):
        return frozenset(v)
    return frozenset(x for x in str(v).split(",") if x)


def _array(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(v)
    if isinstance(v, str) and v.startswith("{") and v.endswith("}"):
        inner = v[1:-1]
        return tuple(None if x == "NULL" else _int(x) for x in inner.split(",")) if inner else ()
    if isinstance(v, str) and v.startswith("["):
        try:
            return tuple(json.loads(v))
        except ValueError:
            return Text(v)
    return Text(repr(v))


def _point(v: Any) -> Any:
    if isinstance(v, memoryview | bytearray):
        v = bytes(v)
    if isinstance(v, bytes):
        for body in (v[4:], v):  # MySQL internal form: SRID + WKB; plain WKB
            if len(body) == 21 and body[0] in (0, 1):
                fmt = "<" if body[0] == 1 else ">"
                if struct.unpack(fmt + "I", body[1:5])[0] == 1:
                    return struct.unpack(fmt + "dd", body[5:21])
        return Text(v.hex())
    if isinstance(v, str):
        m = re.fullmatch(r"\s*POINT\s*\(\s*(\S+)\s+(\S+)\s*\)\s*", v, re.I)
        if m:
            return (float(m[1]), float(m[2]))
        if re.fullmatch(r"(?:[0-9a-fA-F]{2})+", v):
            return _point(bytes.fromhex(v))
    return Text(repr(v))


CANON: dict[str, Callable[[Any], Any]] = {
    "int": _int,
    "dec": _dec,
    "f64": _f64,
    "f32": _f32,
    "text": lambda v: v if isinstance(v, str) else Text(repr(v)),
    "char": _char,
    "bytes": _bytes,
    "bool": _bool,
    "bit": _bit,
    "json": _json,
    "date": _date,
    "time": _micros_of_day,
    "timetz": _timetz,
    "ts": _ts,
    "interval": _interval,
    "uuid": _uuid,
    "inet": _inet,
    "enum": lambda v: str(v),
    "set": _set,
    "array": _array,
    "point": _point,
    "year": _int,
}


def canon(kind: str, v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, memoryview | bytearray):
        v = bytes(v)
    return CANON[kind](v)


# --- type families -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Col:
    """One source column: declared type, canonical rule, edge values always inserted, and random values."""

    ddl: str
    kind: str
    edges: tuple[Any, ...] = ()
    values: st.SearchStrategy[Any] = field(default_factory=lambda: st.none())
    insert: str = ":{p}"  # SQL around the bound parameter, e.g. "CAST(:{p} AS bit(3))"


@dataclass(frozen=True)
class Family:
    columns: dict[str, Col]
    key: str = "id INTEGER"  # the key column's DDL; the key is always ``id``
    keys: tuple[Any, ...] = ()  # edge keys (the first rows), then 1000, 1001, ...
    key_kind: str = "int"
    extra_ddl: tuple[str, ...] = ()  # run after CREATE TABLE ({t} is the table name)
    table_suffix: str = ""  # e.g. MySQL table options
    may_reject: tuple[str, ...] = ()  # target dialects that cannot hold some edge values: rejects expected there


_NO_NUL = st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x00")


def txt(n: int, *, no_trailing_blank: bool = False) -> st.SearchStrategy[str]:
    s = st.text(alphabet=_NO_NUL, max_size=n)
    return s.map(lambda x: x.rstrip(" ")) if no_trailing_blank else s


def ints(lo: int, hi: int) -> st.SearchStrategy[int]:
    return st.integers(min_value=lo, max_value=hi)


def decs(p: int, s: int) -> st.SearchStrategy[Decimal]:
    lim = Decimal(10) ** (p - s) - Decimal(1).scaleb(-s)
    return st.decimals(min_value=-lim, max_value=lim, places=s, allow_nan=False, allow_infinity=False)


DOUBLE_EDGES = (0.0, -0.0, 1e60, 2e60, -3.5e200, -1e100, 1.7976931348623157e308, 5e-324, 505140.76916049956, 0.1)
DOUBLE_SPECIAL = (math.nan, math.inf, -math.inf)
doubles = st.floats(allow_nan=False, allow_infinity=False)
floats32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
TEXT_EDGES = ("", "a", "A", "ä", "b ", " lead", "李 小龙", "🙂", "O'Brien \\ \t\n", "\\N", "NULL")
JSON_EDGES = (
    '{"b": 1, "a": 2, "c": {"z": [1, 2, {"y": null}], "x": true}}',
    '"x"',
    "[]",
    "{}",
    "0",
    "123456789012345678901234567890",
    "1.5e300",
    '{"ü": "\\u00e9\\ud83d\\ude42", "": ""}',
    "null",
    '[1, "two", 3.25, false]',
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(alphabet=_NO_NUL, max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(alphabet=_NO_NUL, max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
).map(lambda v: json.dumps(v, ensure_ascii=False))
DATES = (dt.date(1, 1, 1), dt.date(1970, 1, 1), dt.date(2000, 2, 29), dt.date(9999, 12, 31))
dates = st.dates(min_value=dt.date(1000, 1, 1), max_value=dt.date(9999, 12, 31))


def datetimes(precision: int, lo: int = 1000, hi: int = 9999) -> st.SearchStrategy[dt.datetime]:
    unit = 10 ** (6 - precision)
    return st.datetimes(min_value=dt.datetime(lo, 1, 1), max_value=dt.datetime(hi, 12, 31)).map(
        lambda d: d.replace(microsecond=d.microsecond // unit * unit)
    )


def times(precision: int) -> st.SearchStrategy[dt.time]:
    unit = 10 ** (6 - precision)
    return st.times().map(lambda t: t.replace(microsecond=t.microsecond // unit * unit))


def iso(v: dt.date | dt.datetime | dt.time) -> str:
    return v.isoformat(sep=" ") if isinstance(v, dt.datetime) else v.isoformat()


SQLITE: dict[str, Family] = {
    "integer": Family(
        {
            "i": Col("INTEGER", "int", (0, -1, 2**63 - 1, -(2**63)), ints(-(2**63), 2**63 - 1)),
            "b": Col("BIGINT", "int", (2**53 + 1, -(2**53) - 1), ints(-(2**63), 2**63 - 1)),
            "s": Col("SMALLINT", "int", (32767, -32768), ints(-32768, 32767)),
            "n": Col("INT", "int", (2**31 - 1,), ints(-(2**31), 2**31 - 1)),
        }
    ),
    "real": Family(
        {
            "r": Col("REAL", "f64", (*DOUBLE_EDGES, math.inf, -math.inf), doubles),
            "d": Col("DOUBLE", "f64", (1e-300, -2.5), doubles),
        },
        may_reject=("mysql",),  # MariaDB has no infinities
    ),
    "numeric": Family(
        {
            "n": Col("NUMERIC(10,2)", "dec", (Decimal("0.00"), Decimal("-99999999.99"), Decimal("12.5")), decs(10, 2)),
            "d": Col("DECIMAL(12,4)", "dec", (Decimal("1.0001"), Decimal("-0.0001")), decs(12, 4)),
        }
    ),
    "text": Family(
        {
            "t": Col("TEXT", "text", TEXT_EDGES, txt(12)),
            "v": Col("VARCHAR(20)", "text", TEXT_EDGES, txt(20)),
            "c": Col("CHAR(5)", "char", ("ab", "", "abcde", "ä"), txt(5, no_trailing_blank=True)),
        }
    ),
    "blob": Family(
        {"b": Col("BLOB", "bytes", (b"", b"\x00", b"\x00\xff\\\n'", bytes(range(256))), st.binary(max_size=16))}
    ),
    "boolean": Family({"b": Col("BOOLEAN", "bool", (0, 1), st.booleans())}),
    "temporal": Family(
        {
            "d": Col("DATE", "date", tuple(map(iso, DATES)), dates.map(iso)),
            "ts": Col(
                "DATETIME",
                "ts",
                ("2024-02-29 23:59:59.999999", "1970-01-01 00:00:00", "2038-01-19 03:14:08.5"),
                datetimes(6).map(iso),
            ),
            "tm": Col("TIME", "time", ("00:00:00", "23:59:59.999999", "12:30:00"), times(6).map(iso)),
        }
    ),
    "json": Family({"j": Col("JSON", "json", JSON_EDGES, json_values)}),
    "null_keys": Family(
        {"v": Col("TEXT", "text", ("x", "y", "z"), txt(4))},
        key="id BIGINT",
        keys=(None, None, None),
        may_reject=("postgresql", "mysql"),  # a primary key cannot be NULL there
    ),
    "key_zero": Family({"v": Col("TEXT", "text", ("zero", "one"), txt(4))}, key="id INTEGER", keys=(0, 1)),
    "text_keys": Family(
        {"v": Col("INTEGER", "int", (1, 2, 3, 4, 5), ints(0, 9))},
        key="id VARCHAR(10)",
        keys=("a", "A", "ä", "b", "b "),
        key_kind="text",
    ),
    "schema": Family(
        {
            "a": Col("INTEGER", "int", (1, 2), ints(0, 1000)),
            "g": Col("INTEGER GENERATED ALWAYS AS (a * 2) STORED", "int"),
            "c": Col("INTEGER CHECK (c >= 0)", "int", (0, 5), ints(0, 1000)),
        },
        extra_ddl=("CREATE VIEW {t}_v AS SELECT id, a FROM {t}",),
    ),
}

PG_ENUM = "CREATE TYPE {t}_mood AS ENUM ('sad', 'ok', 'happy')"
POSTGRESQL: dict[str, Family] = {
    "integer": Family(
        {
            "s": Col("SMALLINT", "int", (32767, -32768, 0), ints(-32768, 32767)),
            "i": Col("INTEGER", "int", (2**31 - 1, -(2**31)), ints(-(2**31), 2**31 - 1)),
            "b": Col("BIGINT", "int", (2**63 - 1, -(2**63)), ints(-(2**63), 2**63 - 1)),
        },
        key="id BIGINT",
    ),
    "numeric": Family(
        {
            "n": Col(
                "NUMERIC(12,3)", "dec", (Decimal("0.000"), Decimal("-999999999.999"), Decimal("0.5")), decs(12, 3)
            ),
            "w": Col("NUMERIC(30,10)", "dec", (Decimal("12345678901234567890.0123456789"),), decs(30, 10)),
            "u": Col("NUMERIC", "dec", (Decimal("1e-20"), Decimal("123456789012345678901234567890")), decs(20, 5)),
        }
    ),
    "float": Family(
        {
            "d": Col("DOUBLE PRECISION", "f64", DOUBLE_EDGES, doubles),
            "r": Col("REAL", "f32", (3.4028234663852886e38, 1.401298464324817e-45, 0.1), floats32),
        }
    ),
    "float_special": Family(
        {"d": Col("DOUBLE PRECISION", "f64", (*DOUBLE_SPECIAL, 1.0), doubles)},
        may_reject=("mysql", "sqlite"),  # MariaDB has no NaN/Inf; SQLite stores a NaN as NULL
    ),
    "text": Family(
        {
            "t": Col("TEXT", "text", TEXT_EDGES, txt(12)),
            "v": Col("VARCHAR(20)", "text", TEXT_EDGES, txt(20)),
            "c": Col("CHAR(5)", "char", ("ab", "", "abcde", "ä  "), txt(5, no_trailing_blank=True)),
        }
    ),
    "bytea": Family(
        {"b": Col("BYTEA", "bytes", (b"", b"\x00", b"\x00\xff\\\n'", bytes(range(256))), st.binary(max_size=16))}
    ),
    "boolean": Family({"b": Col("BOOLEAN", "bool", (True, False), st.booleans())}),
    "temporal": Family(
        {
            "d": Col("DATE", "date", (dt.date(1000, 1, 1), dt.date(2000, 2, 29), dt.date(9999, 12, 31)), dates),
            "t0": Col("TIMESTAMP(0)", "ts", (dt.datetime(2024, 1, 1, 12, 0, 1),), datetimes(0)),
            "t3": Col("TIMESTAMP(3)", "ts", (dt.datetime(2024, 2, 29, 23, 59, 59, 999000),), datetimes(3)),
            "t6": Col("TIMESTAMP", "ts", (dt.datetime(1970, 1, 1, 0, 0, 0, 1),), datetimes(6)),
            "tz": Col(
                "TIMESTAMPTZ(6)",
                "ts",
                (dt.datetime(2023, 6, 1, 12, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),),
                datetimes(6).map(lambda d: d.replace(tzinfo=dt.UTC)),
            ),
            "tm": Col("TIME(6)", "time", (dt.time(0, 0), dt.time(23, 59, 59, 999999)), times(6)),
        }
    ),
    "timetz": Family({"tt": Col("TIMETZ", "timetz", ("12:00:00+02", "23:59:59.5-05:30"), st.just("01:02:03+00"))}),
    "interval": Family(
        {
            "iv": Col(
                "INTERVAL",
                "interval",
                (dt.timedelta(days=1, hours=2), dt.timedelta(microseconds=1), dt.timedelta(days=-3, seconds=5)),
                st.timedeltas(min_value=dt.timedelta(days=-9999), max_value=dt.timedelta(days=9999)),
            )
        }
    ),
    "uuid": Family({"u": Col("UUID", "uuid", (uuid.UUID(int=0), uuid.UUID(int=2**128 - 1)), st.uuids())}),
    "json": Family(
        {
            "j": Col("JSON", "json", JSON_EDGES, json_values, "CAST(:{p} AS json)"),
            "jb": Col("JSONB", "json", JSON_EDGES, json_values, "CAST(:{p} AS jsonb)"),
        }
    ),
    "array": Family({"a": Col("INTEGER[]", "array", ([1, 2, 3], [], [None, 5]), st.lists(ints(-9, 9), max_size=3))}),
    "inet": Family(
        {
            "ip": Col(
                "INET",
                "inet",
                ("192.168.0.1", "10.0.0.0/8", "::1", "2001:db8::/32"),
                st.ip_addresses().map(str),
                "CAST(:{p} AS inet)",
            )
        }
    ),
    "enum": Family(
        {
            "m": Col(
                "{t}_mood",
                "enum",
                ("sad", "ok", "happy"),
                st.sampled_from(["sad", "ok", "happy"]),
                "CAST(:{p} AS {t}_mood)",
            )
        },
    ),
    "bit": Family(
        {
            "b1": Col("BIT(1)", "bit", ("0", "1"), st.sampled_from(["0", "1"]), "CAST(:{p} AS bit(1))"),
            "b8": Col(
                "BIT(8)",
                "bit",
                ("01000001", "00000000"),
                ints(0, 255).map(lambda i: f"{i:08b}"),
                "CAST(:{p} AS bit(8))",
            ),
            "vb": Col("VARBIT(12)", "bit", ("101", ""), st.just("1"), "CAST(:{p} AS varbit(12))"),
        }
    ),
    "text_keys": Family(
        {"v": Col("INTEGER", "int", (1, 2, 3, 4, 5), ints(0, 9))},
        key="id VARCHAR(10)",
        keys=("a", "A", "ä", "b", "b "),
        key_kind="text",
    ),
    "schema": Family(
        {
            "a": Col("INTEGER", "int", (1, 2), ints(0, 1000)),
            "g": Col("INTEGER GENERATED ALWAYS AS (a * 2) STORED", "int"),
            "c": Col("INTEGER CHECK (c >= 0)", "int", (0, 5), ints(0, 1000)),
        },
        extra_ddl=("CREATE VIEW {t}_v AS SELECT id, a FROM {t}",),
    ),
}

MYSQL: dict[str, Family] = {
    "integer": Family(
        {
            "ti": Col("TINYINT", "int", (127, -128), ints(-128, 127)),
            "tu": Col("TINYINT UNSIGNED", "int", (255, 0), ints(0, 255)),
            "si": Col("SMALLINT", "int", (32767, -32768), ints(-32768, 32767)),
            "mu": Col("MEDIUMINT UNSIGNED", "int", (16777215,), ints(0, 16777215)),
            "iu": Col("INT UNSIGNED", "int", (4294967295,), ints(0, 4294967295)),
            "bi": Col("BIGINT", "int", (2**63 - 1, -(2**63)), ints(-(2**63), 2**63 - 1)),
            "bu": Col("BIGINT UNSIGNED", "int", (2**64 - 1, 2**63), ints(0, 2**64 - 1)),
        }
    ),
    "decimal": Family(
        {
            "d": Col("DECIMAL(12,3)", "dec", (Decimal("0.000"), Decimal("-999999999.999")), decs(12, 3)),
            "w": Col("DECIMAL(40,10)", "dec", (Decimal("123456789012345678901234567890.0123456789"),), decs(40, 10)),
        }
    ),
    "float": Family(
        {
            "d": Col("DOUBLE", "f64", DOUBLE_EDGES, doubles),
            "f": Col("FLOAT", "f32", (3.4028234663852886e38, 0.1, 1.401298464324817e-45), floats32),
        }
    ),
    "bit": Family(
        {
            "b1": Col("BIT(1)", "bit", (0, 1), ints(0, 1)),
            "b8": Col("BIT(8)", "bit", (65, 0, 255), ints(0, 255)),
            "b64": Col("BIT(64)", "bit", (2**64 - 1,), ints(0, 2**64 - 1)),
        }
    ),
    "text": Family(
        {
            "c": Col("CHAR(5)", "char", ("ab", "", "abcde", "ä"), txt(5, no_trailing_blank=True)),
            "v": Col("VARCHAR(20)", "text", TEXT_EDGES, txt(20)),
            "t": Col("TEXT", "text", TEXT_EDGES, txt(12)),
            "ci": Col("VARCHAR(20) COLLATE utf8mb4_general_ci", "text", TEXT_EDGES, txt(20)),
        }
    ),
    "ci_keys": Family(
        {"v": Col("INTEGER", "int", (1, 2, 3), ints(0, 9))},
        key="id VARCHAR(10) COLLATE utf8mb4_general_ci",
        keys=("a", "B", "ü"),
        key_kind="text",
    ),
    "binary": Family(
        {
            "bn": Col(
                "BINARY(4)",
                "bytes",
                (b"\x00\x00\x00\x00", b"ab\x00\x00", b"\xff\xff\xff\xff"),
                st.binary(min_size=4, max_size=4),
            ),
            "vb": Col("VARBINARY(16)", "bytes", (b"", b"\x00\\'"), st.binary(max_size=16)),
            "bl": Col("BLOB", "bytes", (bytes(range(256)),), st.binary(max_size=16)),
        }
    ),
    "temporal": Family(
        {
            "d": Col("DATE", "date", (dt.date(1000, 1, 1), dt.date(9999, 12, 31)), dates),
            "dt0": Col("DATETIME", "ts", (dt.datetime(2024, 1, 1, 12, 0, 1),), datetimes(0)),
            "dt3": Col("DATETIME(3)", "ts", (dt.datetime(2024, 2, 29, 23, 59, 59, 999000),), datetimes(3)),
            "dt6": Col("DATETIME(6)", "ts", (dt.datetime(1970, 1, 1, 0, 0, 0, 1),), datetimes(6)),
            "tm": Col(
                "TIME(6)",
                "time",
                (dt.timedelta(hours=23, minutes=59, microseconds=5), dt.timedelta(0)),
                times(6).map(lambda t: dt.datetime.combine(dt.date.min, t) - dt.datetime.min),
            ),
            "ts": Col(
                "TIMESTAMP(6) NULL",
                "ts",
                (dt.datetime(2038, 1, 19, 3, 14, 7, 999999), dt.datetime(1970, 1, 2)),
                datetimes(6, 1971, 2037),
            ),
            "y": Col("YEAR", "year", (1901, 2155, 2024), ints(1901, 2155)),
        }
    ),
    "zero_dates": Family(
        {
            "d": Col("DATE NOT NULL", "date", ("0000-00-00", "2020-00-15", "2021-03-04"), st.just("2000-01-01")),
            "dtn": Col("DATETIME NULL", "ts", ("0000-00-00 00:00:00", None, "2021-03-04 05:06:07"), st.none()),
        },
        may_reject=("postgresql", "sqlite"),  # documented: a zero date in a NOT NULL column is a reject across
    ),
    "duration": Family(
        {"tm": Col("TIME", "time", (dt.timedelta(hours=-5), dt.timedelta(hours=100)), st.none())},
        may_reject=("postgresql", "sqlite"),  # a duration is no time of day there (documented)
    ),
    "enum_set": Family(
        {
            "e": Col(
                "ENUM('new','active','closed')",
                "enum",
                ("new", "active", "closed"),
                st.sampled_from(["new", "active", "closed"]),
            ),
            "s": Col("SET('a','b','c')", "set", ("", "a,c", "a,b,c"), st.sampled_from(["a", "b", "a,b"])),
        }
    ),
    "json": Family({"j": Col("JSON", "json", JSON_EDGES, json_values)}),
    "geometry": Family(
        {
            "p": Col(
                "POINT", "point", ("POINT(1 2)", "POINT(-71.06 42.36)"), st.just("POINT(0 0)"), "ST_GeomFromText(:{p})"
            )
        }
    ),
    "key_zero": Family(
        {"v": Col("VARCHAR(10)", "text", ("zero", "one"), txt(4))}, key="id INT AUTO_INCREMENT", keys=(0, 1)
    ),
    "schema": Family(
        {
            "a": Col("INTEGER", "int", (1, 2), ints(0, 1000)),
            "g": Col("INTEGER AS (a * 2) STORED", "int"),
            "c": Col("INTEGER CHECK (c >= 0)", "int", (0, 5), ints(0, 1000)),
        },
        extra_ddl=("CREATE VIEW {t}_v AS SELECT id, a FROM {t}",),
    ),
}

FAMILIES: dict[str, dict[str, Family]] = {"sqlite": SQLITE, "postgresql": POSTGRESQL, "mysql": MYSQL}
CASES = [(s, t, f) for s, t in PAIRS for f in FAMILIES[s]]

# --- known gaps on main: (source, target, family) -> reason (issue 14 item) ---------------------------------

_P5 = "issue 14 proof #5/#6: JSON compared as text (jsonb reorders keys); validate: jsonb scalar string vs JSON text"

KNOWN_GAPS: dict[tuple[str, str, str], str] = {
    ("mysql", "postgresql", "json"): _P5,
    ("postgresql", "mysql", "json"): _P5,
}


# --- running one case --------------------------------------------------------------------------------------


def engine(url: str) -> sa.Engine:
    """A plain engine (no dmig code) with one small pool and UTC sessions."""
    d = dialect_of(parse_url(url))
    e = sa.create_engine(parse_url(url), pool_size=1, max_overflow=1) if d != "sqlite" else sa.create_engine(url)
    if d == "mysql":

        def _mysql(c: Any, _r: Any) -> None:
            cur = c.cursor()
            cur.execute("SET time_zone = '+00:00'")
            cur.execute("SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO'")  # zero dates and key 0 as written

        sa.event.listen(e, "connect", _mysql)
    elif d == "postgresql":
        sa.event.listen(e, "connect", lambda c, _r: c.execute("SET TIME ZONE 'UTC'"))
    return e


def rows_for(family: Family, drawn: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Edge rows first (each column's edge values in turn, NULL after them), then the drawn rows."""
    n_edges = max([len(family.keys)] + [len(c.edges) for c in family.columns.values()])
    rows = []
    for i in range(n_edges):
        key = family.keys[i] if i < len(family.keys) else 1000 + i if family.key_kind == "int" else f"k{i}"
        rows.append({"id": key, **{n: c.edges[i] if i < len(c.edges) else None for n, c in family.columns.items()}})
    for j, r in enumerate(drawn):
        key = 2000 + j if family.key_kind == "int" else f"r{j}"
        rows.append({"id": key, **r})
    return rows


def row_strategy(family: Family) -> st.SearchStrategy[list[dict[str, Any]]]:
    cols = {n: c.values for n, c in family.columns.items() if "GENERATED" not in c.ddl and " AS (" not in c.ddl}
    return st.lists(st.fixed_dictionaries(cols), max_size=RANDOM_ROWS)


def _generated(c: Col) -> bool:
    return "GENERATED" in c.ddl or " AS (" in c.ddl


def _param(d: str, v: Any) -> Any:
    """SQLite's driver binds no Decimal: its text (NUMERIC affinity stores the number)."""
    return str(v) if d == "sqlite" and isinstance(v, Decimal) else v


def create_source(url: str, d: str, table: str, family: Family, rows: list[dict[str, Any]]) -> None:
    cols = ", ".join(f"{n} {c.ddl.format(t=table)}" for n, c in family.columns.items())
    pk = "PRIMARY KEY (id)"
    ddl = []
    if d == "postgresql" and any("_mood" in c.ddl for c in family.columns.values()):
        ddl.append(PG_ENUM.format(t=table))
    ddl.append(f"CREATE TABLE {table} ({family.key}, {cols}, {pk}){family.table_suffix}")
    ddl += [x.format(t=table) for x in family.extra_ddl]
    names = ["id"] + [n for n, c in family.columns.items() if not _generated(c)]
    values = ", ".join([":id"] + [family.columns[n].insert.format(p=n, t=table) for n in names[1:]])
    e = engine(url)
    try:
        with e.begin() as conn:
            for x in ddl:
                conn.exec_driver_sql(x)
            stmt = sa.text(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({values})")
            conn.execute(stmt, [{n: _param(d, r.get(n)) for n in names} for r in rows])
    finally:
        e.dispose()


def read_side(url: str, table: str) -> tuple[list[str], list[dict[str, Any]]]:
    """Every column of ``table`` by a plain SELECT; JSON read as its text (exact numbers, no driver parsing)."""
    e = engine(url)
    try:
        insp = sa.inspect(e)
        if table not in insp.get_table_names():
            return [], []
        columns = insp.get_columns(table)
        d = e.dialect.name
        exprs = []
        for c in columns:
            col = sa.column(c["name"])
            tname = type(c["type"]).__name__.upper()
            if d == "postgresql" and tname in ("JSON", "JSONB"):
                exprs.append(sa.cast(col, sa.Text).label(c["name"]))
            elif d == "mysql" and tname == "FLOAT":  # the text protocol prints 6 digits; the double is exact
                exprs.append(sa.cast(col, sa.Double).label(c["name"]))
            else:
                exprs.append(col)
        with e.connect() as conn:
            rows = [dict(r) for r in conn.execute(sa.select(*exprs).select_from(sa.table(table))).mappings()]
        TYPES[(url, table)] = {c["name"]: _type_text(c, e.dialect) for c in columns}
        return [c["name"] for c in columns], rows
    finally:
        e.dispose()


TYPES: dict[tuple[str, str], dict[str, str]] = {}  # (url, table) -> column -> reflected type, for the docs


def _plain_type(text: str) -> str:
    """The test databases' default charset and collation, and the generated mark (checked on its own), left out."""
    return text.replace(" CHARACTER SET utf8mb4 COLLATE utf8mb4_bin", "").replace(" (generated)", "")


def _type_text(c: dict[str, Any], dialect: sa.Dialect) -> str:
    try:
        text = c["type"].compile(dialect=dialect)
    except sa.exc.CompileError:
        text = type(c["type"]).__name__
    return text + (" (generated)" if c.get("computed") else "")


@dataclass
class Outcome:
    """What the independent comparison found, and which tool verdicts disagree with it."""

    identical: bool = True
    silent: list[str] = field(default_factory=list)  # differences the copy did not report
    reported: list[str] = field(default_factory=list)  # differences the copy reported (rejects, warnings, notes)
    lies: list[str] = field(default_factory=list)  # tool verdicts that disagree
    schema: list[str] = field(default_factory=list)  # schema (generated columns, CHECKs, views) dropped silently
    not_carried: list[str] = field(default_factory=list)  # rows rejected (reported) that the target could hold
    mapping: dict[str, tuple[str, str]] = field(default_factory=dict)  # column -> (source type, target type)

    def problems(self) -> list[str]:
        return (
            [f"silent change: {s}" for s in self.silent]
            + [f"rejected, though the target can hold it: {s}" for s in self.not_carried]
            + [f"schema not carried, not reported: {s}" for s in self.schema]
            + [f"verdict: {x}" for x in self.lies]
        )


def _short(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 80 else s[:77] + "..."


def compare(
    family: Family,
    src_cols: list[str],
    src_rows: list[dict],
    tgt_cols: list[str],
    tgt_rows: list[dict],
    summary: CopySummary | None,
    source_dialect: str,
    target_dialect: str,
) -> Outcome:
    out = Outcome()
    ts = summary.tables[0] if summary and summary.tables else None
    rejects = ts.rejects if ts else 0
    warnings = ts.warnings if ts else {}
    notes = " ".join(ts.notes) if ts else ""
    kinds = {"id": family.key_kind, **{n: c.kind for n, c in family.columns.items()}}
    for c in src_cols:
        if c not in tgt_cols:
            out.identical = False
            (out.reported if c in notes else out.silent).append(f"column {c} ({family.columns[c].ddl}) not in target")
    common = [c for c in src_cols if c in tgt_cols]

    def keyed(rows: list[dict]) -> dict[Any, list[dict]]:
        by: dict[Any, list[dict]] = {}
        for r in rows:
            by.setdefault(canon(kinds["id"], r["id"]), []).append({c: canon(kinds[c], r[c]) for c in common})
        return by

    s_by, t_by = keyed(src_rows), keyed(tgt_rows)
    missing = sum(len(v) for k, v in s_by.items() if k not in t_by) + sum(
        max(0, len(v) - len(t_by[k])) for k, v in s_by.items() if k in t_by
    )
    extra = [k for k in t_by if k not in s_by] + [k for k, v in t_by.items() if k in s_by and len(v) > len(s_by[k])]
    if missing or extra:
        out.identical = False
    if missing:
        msg = f"{missing} source row(s) not in target (copy rejected {rejects})"
        if missing <= rejects:
            (out.reported if target_dialect in family.may_reject else out.not_carried).append(msg)
        elif ts is not None and ts.state != "done":
            out.not_carried.append(f"{msg}: the table {ts.state}: {ts.error}")
        else:
            out.silent.append(msg)
    excused = warnings if source_dialect != target_dialect else {}  # same dialect: every value as it is
    if extra:
        out.silent.append(f"target rows with keys {[_short(k) for k in extra[:5]]} not in source")
    changed: dict[str, list[str]] = {}
    for k, srows in s_by.items():
        for s_row, t_row in zip(srows, t_by.get(k, []), strict=False):
            for c in common:
                if s_row[c] != t_row[c] or type(s_row[c]) is Text or type(t_row[c]) is Text:
                    if s_row[c] == t_row[c] and type(s_row[c]) is type(t_row[c]):
                        continue
                    raw_s = next(r[c] for r in src_rows if canon(kinds["id"], r["id"]) == k)
                    raw_t = next(r[c] for r in tgt_rows if canon(kinds["id"], r["id"]) == k)
                    changed.setdefault(c, []).append(f"id={_short(k)}: {_short(raw_s)} -> {_short(raw_t)}")
    for c, items in changed.items():
        out.identical = False
        ddl = family.columns[c].ddl if c in family.columns else c
        msg = f"{c} {ddl} [{source_dialect}->{target_dialect}] {len(items)} value(s) changed: {'; '.join(items[:3])}"
        (out.reported if excused.get(c, 0) >= len(items) else out.silent).append(msg)
    return out


def run_copy(source: str, target: str, table: str, project: Path) -> CopySummary:
    req = CopyRequest(source_url=source, target_url=target, tables=[table], workers=1)
    return copy_database(req, RunContext(project_dir=project))


def check_verdicts(out: Outcome, source: str, target: str, table: str, summary: CopySummary | None) -> None:
    """diff, the copy's verification and validate's spot check against the independent comparison."""
    # the copy's own verdict
    if summary is not None:
        checks = [t for t in summary.verification.tables if t.table == table]
        verdict = checks[0].checksum if checks else "none"
        says_equal = verdict in ("match", "explained") or summary.verification.ok is True
        says_differ = verdict == "differ" or summary.verification.ok is False
        if out.silent and says_equal:
            out.lies.append(
                f"copy verification says {verdict!r} (ok={summary.verification.ok}) on silently changed data"
            )
        if out.identical and says_differ:
            out.lies.append(
                f"copy verification says {verdict!r} (ok={summary.verification.ok}) on identical data"
                f" ({checks[0].detail if checks else ''})"
            )
    # dmig diff
    try:
        d = diff_table(source, target, table)
        if d.equal != out.identical:
            out.lies.append(
                f"diff says equal={d.equal} (missing {d.missing_count}, extra {d.extra_count}, changed "
                f"{d.changed_count}, warnings {d.warnings}) but the tables are "
                f"{'identical' if out.identical else 'different'}"
            )
    except Exception as exc:  # a tool error is a missing verdict, reported as such
        out.lies.append(f"diff gave no verdict: {type(exc).__name__}: {str(exc)[:200]}")
    # dmig validate: a spot check of every row (the tables are small)
    try:
        spec = {
            "source": source,
            "target": target,
            "checks": [{"type": "spot_check", "table": table, "key": ["id"], "random": 10000}],
        }
        [c] = run_spec(parse_spec(spec)).checks
        if c.status == "error":
            out.lies.append(f"validate spot_check errored: {c.summary} {c.error}")
        elif (c.status == "pass") != out.identical:
            out.lies.append(
                f"validate spot_check {c.status}: {c.summary} {c.sample[:2]} but the tables are "
                f"{'identical' if out.identical else 'different'}"
            )
    except Exception as exc:
        out.lies.append(f"validate gave no verdict: {type(exc).__name__}: {str(exc)[:200]}")


def schema_findings(out: Outcome, family: Family, target: str, table: str, summary: CopySummary) -> None:
    """Generated columns, CHECKs and views of the source: on the target, or named in the copy's summary."""
    said = " ".join([summary.message, *(n for t in summary.tables for n in t.notes)])
    e = engine(target)
    try:
        insp = sa.inspect(e)
        cols = {c["name"]: c for c in insp.get_columns(table)}
        for name, c in family.columns.items():
            if _generated(c) and name in cols and not cols[name].get("computed") and name not in said:
                out.schema.append(f"generated column {name} ({c.ddl}) became a plain column")
            if "CHECK" in c.ddl and not _check_holds(e, table, name) and "check" not in said.lower():
                out.schema.append(f"CHECK of {name} ({c.ddl}) dropped: a violating row was accepted by the target")
        for view in (x.format(t=table).split()[2] for x in family.extra_ddl if x.startswith("CREATE VIEW")):
            if view not in insp.get_view_names() and view not in said:
                out.schema.append(f"view {view} neither copied nor named in the copy's summary")
    finally:
        e.dispose()


def _check_holds(e: sa.Engine, table: str, column: str) -> bool:
    """True when the target refuses a row violating the source's CHECK (``column >= 0``); rolled back."""
    with e.connect() as conn:
        trans = conn.begin()
        try:
            conn.execute(sa.text(f"INSERT INTO {table} (id, {column}) VALUES (987654, -1)"))
            return False
        except sa.exc.DBAPIError:
            return True
        finally:
            trans.rollback()


def drop(url: str, table: str) -> None:
    """Drop the example's table, view and enum type: the databases are shared by a module's tests, and
    introspection (copy, diff, validate) slows down with every table left behind."""
    e = engine(url)
    try:
        with e.begin() as conn:
            conn.exec_driver_sql(f"DROP VIEW IF EXISTS {table}_v")
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
            if e.dialect.name == "postgresql":
                conn.exec_driver_sql(f"DROP TYPE IF EXISTS {table}_mood")
    finally:
        e.dispose()


def run_case(
    source: str, target: str, family: Family, drawn: list[dict[str, Any]], table: str, project: Path
) -> Outcome:
    try:
        return _run_case(source, target, family, drawn, table, project)
    finally:
        drop(source, table)
        drop(target, table)


def _run_case(
    source: str, target: str, family: Family, drawn: list[dict[str, Any]], table: str, project: Path
) -> Outcome:
    sd, td = dialect_of(parse_url(source)), dialect_of(parse_url(target))
    rows = rows_for(family, drawn)
    create_source(source, sd, table, family, rows)
    summary: CopySummary | None = None
    try:
        summary = run_copy(source, target, table, project)
    except Exception as exc:  # the copy aborting is a finding, not a crash of the suite
        out = Outcome(identical=False)
        out.silent.append(f"copy aborted: {type(exc).__name__}: {str(exc)[:300]}")
        return out
    s_cols, s_rows = read_side(source, table)
    t_cols, t_rows = read_side(target, table)
    out = compare(family, s_cols, s_rows, t_cols, t_rows, summary, sd, td)
    s_types, t_types = TYPES.get((source, table), {}), TYPES.get((target, table), {})
    out.mapping = {c: (s_types.get(c, "?"), t_types.get(c, "(not in target)")) for c in s_cols}
    if sd == td:  # within a dialect the declared type (length, precision, collation) is kept exactly
        for c, (a, b) in out.mapping.items():
            a, b = _plain_type(a), _plain_type(b)
            if b not in (a, "(not in target)"):
                out.schema.append(f"column {c}: type {a} became {b}")
    ts = summary.tables[0]
    if t_cols:
        schema_findings(out, family, target, table, summary)
        check_verdicts(out, source, target, table, summary)
    else:
        out.silent.append(f"target table not created ({ts.state}: {ts.error})")
    return out


def record(source: str, target: str, family: str, out: Outcome) -> None:
    """With DMIG_FIDELITY_RECORD=path: one JSON line per example (types observed, problems), for the docs."""
    path = os.environ.get("DMIG_FIDELITY_RECORD")
    if path:
        line = {
            "source": source,
            "target": target,
            "family": family,
            "mapping": out.mapping,
            "identical": out.identical,
            "problems": out.problems(),
            "reported": out.reported,
        }
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")


# --- the per-pair table of docs/copy-type-mapping.md, from a DMIG_FIDELITY_RECORD file -------------------

RULE = {
    "int": "exact integer",
    "dec": "exact decimal",
    "f64": "exact IEEE double (NaN = NaN)",
    "f32": "float32 value",
    "text": "exact text",
    "char": "text, trailing blanks ignored",
    "bytes": "exact bytes",
    "bool": "truth value",
    "bit": "integer value",
    "json": "parsed JSON content",
    "date": "date",
    "time": "time of day / duration, µs",
    "timetz": "wall time and offset",
    "ts": "timestamp (UTC instant if aware), µs",
    "interval": "months + µs",
    "uuid": "128-bit value",
    "inet": "address/prefix",
    "enum": "label",
    "set": "set of members",
    "array": "elements",
    "point": "(x, y)",
    "year": "integer",
}
_NAME = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mysql": "MariaDB"}


def mapping_table(record_path: str) -> str:
    """Markdown: per pair, each family's source type, the type the copy created, the comparison rule, the verdict."""
    recs = {}
    with open(record_path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            recs[(r["source"], r["target"], r["family"])] = r
    out = []
    for s, t in PAIRS:
        out += [
            f"### {_NAME[s]} → {_NAME[t]}\n",
            "| family | source type | target type (as created) | compared as | suite verdict |",
        ]
        out.append("|---|---|---|---|---|")
        for fam_name, fam in FAMILIES[s].items():
            r = recs.get((s, t, fam_name))
            gap = KNOWN_GAPS.get((s, t, fam_name))
            verdict = f"known gap: {gap}" if gap else "faithful, tools agree"
            cols = {"id": Col(fam.key.split(" ", 1)[1], fam.key_kind), **fam.columns} if fam.keys else dict(fam.columns)
            for i, (c, col) in enumerate(cols.items()):
                if r and r["mapping"]:
                    src_t, tgt_t = r["mapping"].get(c, ["?", "?"])
                else:
                    src_t, tgt_t = col.ddl.format(t="t"), "(copy aborted)"
                v = verdict.replace("|", "/") if i == 0 else ""
                out.append(f"| {fam_name if i == 0 else ''} | `{src_t}` | `{tgt_t}` | {RULE[col.kind]} | {v} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":  # python tests/fidelity_helpers.py RECORD.jsonl > table.md
    import sys

    print(mapping_table(sys.argv[1]))
