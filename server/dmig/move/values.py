"""Value conversion: driver values → canonical Python values → what each target driver accepts.

Canonical values per kind: bool, int, Decimal, float, str (string/text/enum/json/uuid/other),
bytes, date, time, and datetime (naive for naive kinds, aware UTC for ``tz`` kinds). Readers
run in UTC sessions, so MySQL ``TIMESTAMP`` arrives as naive UTC and is made aware here. A
conversion that cannot be done raises :class:`ValueRejected`; the row goes to the reject file
with that message instead of being silently altered. The single documented exception is the
MySQL zero date copied to another dialect, which becomes NULL (as pgloader maps it) and is counted
per column as a warning; in a NOT NULL column the row is rejected, naming the zero date. Copied
MySQL to MySQL, zero dates are kept as they are (the writer's session allows them).

Special doubles: PostgreSQL holds NaN and +/-Infinity; SQLite holds +/-Infinity as REAL but reads a
NaN back as NULL, and MariaDB has neither: such a row is rejected with the reason, the rest of the
table is copied. Bit strings (MySQL ``BIT(n)``, PostgreSQL ``bit(n)``) are canonically the number
they spell (``b'1000001'`` is 65).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from dmig.move.typemap import Kind

Converter = Callable[[Any], Any]
WarnFn = Callable[[str], None]

SQLITE_MAX_INT = 2**63 - 1
_INF = float("inf")
_TRUE = {"1", "t", "true", "y", "yes", "on"}
_FALSE = {"0", "f", "false", "n", "no", "off"}


class ValueRejected(ValueError):
    """A value that cannot be represented in the target kind (the row is rejected, not altered)."""


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float | Decimal):
        return v != 0
    if isinstance(v, str) and v.strip().lower() in _TRUE | _FALSE:
        return v.strip().lower() in _TRUE
    if isinstance(v, bytes) and len(v) == 1:
        return v != b"\x00"
    raise ValueRejected(f"not a boolean: {_show(v)}")


def _int(v: Any) -> int:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    if isinstance(v, float | Decimal):
        if v != v or v in (float("inf"), float("-inf")) or v != int(v):
            raise ValueRejected(f"not an integer: {_show(v)}")
        return int(v)
    if isinstance(v, str):
        try:
            return int(v.strip())
        except ValueError:
            try:
                return _int(Decimal(v.strip()))
            except InvalidOperation:
                raise ValueRejected(f"not an integer: {_show(v)}") from None
    if isinstance(v, bytes):  # MySQL BIT(n)
        return int.from_bytes(v, "big")
    raise ValueRejected(f"not an integer: {_show(v)}")


def _decimal(v: Any) -> Decimal:
    if isinstance(v, Decimal):
        return v
    if isinstance(v, bool):
        return Decimal(int(v))
    if isinstance(v, int):
        return Decimal(v)
    if isinstance(v, float):
        return Decimal(repr(v))  # shortest round-trip text, not the binary expansion
    if isinstance(v, str):
        try:
            return Decimal(v.strip())
        except InvalidOperation:
            raise ValueRejected(f"not a decimal number: {_show(v)}") from None
    raise ValueRejected(f"not a decimal number: {_show(v)}")


def _float(v: Any) -> float:
    if isinstance(v, float):
        return v
    if isinstance(v, int | Decimal) and not isinstance(v, bool):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v.strip())
        except ValueError:
            raise ValueRejected(f"not a number: {_show(v)}") from None
    raise ValueRejected(f"not a number: {_show(v)}")


def _text(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, bytes):
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueRejected("bytes that are not UTF-8 text") from None
    if isinstance(v, dt.datetime):
        return v.isoformat(sep=" ")
    if isinstance(v, dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, dt.timedelta):
        return format_timedelta(v)
    if isinstance(v, Decimal):
        return format(v, "f")
    if isinstance(v, dict | list):
        return json.dumps(v, ensure_ascii=False, separators=(",", ":"))
    return str(v)


def _json(v: Any) -> str:
    if isinstance(v, dict | list | int | float | bool) and not isinstance(v, Decimal):
        return json.dumps(v, ensure_ascii=False, separators=(",", ":"))
    text = _text(v)
    try:
        json.loads(text)
    except ValueError:
        raise ValueRejected(f"not valid JSON: {_show(text)}") from None
    return text


def _bytes(v: Any) -> bytes:
    if isinstance(v, bytes):
        return v
    if isinstance(v, bytearray | memoryview):
        return bytes(v)
    if isinstance(v, str):
        return v.encode("utf-8")
    raise ValueRejected(f"not binary data: {_show(v)}")


def _date(v: Any) -> dt.date:
    if isinstance(v, dt.datetime):
        if v.time() != dt.time(0):
            raise ValueRejected(f"a timestamp with a time of day is not a date: {_show(v)}")
        return v.date()
    if isinstance(v, dt.date):
        return v
    if isinstance(v, str):
        try:
            return dt.date.fromisoformat(v.strip())
        except ValueError:
            raise ValueRejected(f"invalid date: {_show(v)}") from None
    raise ValueRejected(f"invalid date: {_show(v)}")


def _time(v: Any) -> dt.time:
    if isinstance(v, dt.time):
        return v
    if isinstance(v, dt.timedelta):
        if dt.timedelta(0) <= v < dt.timedelta(days=1):
            return (dt.datetime.min + v).time()
        raise ValueRejected(f"time outside 00:00..24:00 cannot be stored as a time of day: {format_timedelta(v)}")
    if isinstance(v, str):
        try:
            return dt.time.fromisoformat(v.strip())
        except ValueError:
            raise ValueRejected(f"invalid time: {_show(v)}") from None
    raise ValueRejected(f"invalid time: {_show(v)}")


def _datetime(v: Any, tz: bool) -> dt.datetime:
    if isinstance(v, dt.datetime):
        value = v
    elif isinstance(v, dt.date):
        value = dt.datetime(v.year, v.month, v.day)
    elif isinstance(v, str):
        try:
            value = dt.datetime.fromisoformat(v.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueRejected(f"invalid timestamp: {_show(v)}") from None
    else:
        raise ValueRejected(f"invalid timestamp: {_show(v)}")
    if tz:
        # Naive values in an aware kind are UTC (our sessions run in UTC).
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    if value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def format_timedelta(v: dt.timedelta) -> str:
    """MySQL TIME text (may be negative or beyond 24h)."""
    sign = "-" if v < dt.timedelta(0) else ""
    v = abs(v)
    hours, rem = divmod(v.days * 86400 + v.seconds, 3600)
    minutes, seconds = divmod(rem, 60)
    return f"{sign}{hours:02d}:{minutes:02d}:{seconds:02d}.{v.microseconds:06d}"


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


def to_kind(kind: Kind) -> Converter:
    """Convert any canonical value to ``kind`` (used by cast transforms and by SQLite sources)."""
    n = kind.name
    if n == "bool":
        return _bool
    if n == "int":
        return _int
    if n == "decimal":
        return _decimal
    if n == "float":
        return _float
    if n == "json":
        return _json
    if n == "bytes":
        return _bytes
    if n == "date":
        return _date
    if n == "time":
        return _time
    if n == "datetime":
        return lambda v, _tz=kind.tz: _datetime(v, _tz)
    return _text


def _nullable(fn: Converter) -> Converter:
    return lambda v: None if v is None else fn(v)


def _fast(expected: type, slow: Converter) -> Converter:
    """Values already of the expected Python type (the common case) pass with one type check."""

    def convert(v: Any) -> Any:
        if v is None or type(v) is expected:
            return v
        return slow(v)

    return convert


def _from_iso(parse: Callable[[str], Any], slow: Converter) -> Converter:
    """SQLite keeps dates and timestamps as ISO text: parse it directly, anything else the slow way."""

    def convert(v: Any) -> Any:
        if v is None:
            return None
        if type(v) is str:
            try:
                return parse(v)
            except ValueError:
                pass
        return slow(v)

    return convert


_SQLITE_FAST: dict[str, tuple[type, Converter]] = {
    "int": (int, _int),
    "float": (float, _float),
    "bytes": (bytes, _bytes),
    "bool": (bool, _bool),
    "string": (str, _text),
    "text": (str, _text),
    "enum": (str, _text),
    "json": (str, _text),
    "uuid": (str, _text),
    "other": (str, _text),
}


def _sqlite_source(kind: Kind) -> Converter:
    n = kind.name
    if n in _SQLITE_FAST:
        expected, slow = _SQLITE_FAST[n]
        return _fast(expected, slow)
    if n == "date":
        return _from_iso(dt.date.fromisoformat, _date)
    if n == "datetime" and not kind.tz:
        return _from_iso(_naive_iso, lambda v: _datetime(v, False))
    return _nullable(to_kind(kind))


def _sqlite_to_text_target(kind: Kind, target: str) -> Converter | None:
    """PostgreSQL COPY and MySQL LOAD DATA parse text themselves: a valid ISO date/timestamp string (or a
    number for a PostgreSQL numeric) is checked here and passed on as it is, saving a parse and a format
    per value (the bulk of a SQLite copy's CPU). Anything unusual takes the full conversion."""
    n = kind.name
    if n == "datetime" and not kind.tz:
        slow: Converter = lambda v: _datetime(v, False)  # noqa: E731
        parse = dt.datetime.fromisoformat

        def timestamp(v: Any) -> Any:
            if type(v) is str:
                try:
                    if parse(v).tzinfo is None:
                        return v
                except ValueError:
                    pass
            return None if v is None else slow(v)

        return timestamp
    if n == "date":
        parse_date = dt.date.fromisoformat

        def date(v: Any) -> Any:
            if type(v) is str:
                try:
                    parse_date(v)
                    return v
                except ValueError:
                    pass
            return None if v is None else _date(v)

        return date
    if n == "decimal" and target == "postgresql":

        def number(v: Any) -> Any:
            if v is None or type(v) is int or (type(v) is float and v == v and v not in (_INF, -_INF)):
                return v
            return _decimal(v)

        return number
    if n == "decimal" and kind.scale is not None:
        return _float_within_scale(kind.scale)
    if n == "bool":
        return lambda v: v != 0 if type(v) is int else None if v is None else _bool(v)
    return None


def _float_within_scale(scale: int) -> Converter:
    """MySQL: a float whose shortest text already fits the scale is written as that text (no Decimal)."""

    def number(v: Any) -> Any:
        if v is None or type(v) is int:
            return v
        if type(v) is float:
            text = repr(v)
            dot = text.find(".")
            if dot >= 0 and "e" not in text and len(text) - dot - 1 <= scale:
                return v
        return _decimal(v)

    return number


def _naive_iso(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is not None:
        raise ValueError("aware")  # handled by the slow path (converted to UTC)
    return value


def _mysql_zero_date(fn: Converter, column: str, warn: WarnFn, nullable: bool, target: str) -> Converter:
    """MySQL returns zero/invalid dates as strings: NULL plus a counted warning (documented), or, in a
    NOT NULL column where NULL cannot stand in, a rejected row that says why."""

    def convert(v: Any) -> Any:
        if v is None:
            return None
        if isinstance(v, str):
            if not nullable:
                raise ValueRejected(
                    f"zero date {v!r} in NOT NULL column {column}: {target} has no such date, and NULL "
                    "(what a nullable column gets) is not allowed"
                )
            warn(column)
            return None
        return fn(v)

    return convert


def _bit_text(v: Any) -> int:
    """PostgreSQL bit(n), selected as text ('01000001'), as the number it spells."""
    return int(v, 2) if isinstance(v, str) else _int(v)


def source_converter(
    kind: Kind, source: str, target: str, column: str, warn: WarnFn, nullable: bool = True
) -> Converter | None:
    """Driver value → canonical value; None when the driver already gives the canonical value."""
    n = kind.name
    if source == "postgresql":
        # psycopg loaders give canonical values; json/uuid/enum/other/bits are selected as text
        return _nullable(_bit_text) if n == "bits" else None
    if source == "mysql":
        if n == "bool":
            return _nullable(_bool)
        if n == "bits":
            return _nullable(_int)  # PyMySQL gives BIT(n) as big-endian bytes
        if n in ("date", "datetime"):
            if target == "mysql":
                return None  # zero and partial dates arrive as text and are written back as they are
            base = _date if n == "date" else (lambda v, _tz=kind.tz: _datetime(v, _tz))
            return _mysql_zero_date(base, column, warn, nullable, target)
        if n == "time" and target != "mysql":
            return _nullable(_time)
        if n == "other" and target != "mysql":
            return _nullable(_text)
        if n == "int":
            return _nullable(_int) if target != "mysql" else None  # BIT arrives as bytes
        return None
    # SQLite: dynamic typing, every declared kind needs a check (JSON is validated by the target itself).
    if target != "sqlite":
        fast = _sqlite_to_text_target(kind, target)
        if fast is not None:
            return fast
    return _sqlite_source(kind)


def _rounder(scale: int | None) -> Converter:
    """Round a Decimal to ``scale`` places, half away from zero (what PostgreSQL and MySQL do)."""
    if scale is None:
        return lambda v: v
    exp = Decimal(1).scaleb(-scale)

    def round_to_scale(v: Any) -> Any:
        if isinstance(v, Decimal) and v.is_finite() and v.as_tuple().exponent < -scale:  # type: ignore[operator]
            return v.quantize(exp, rounding=ROUND_HALF_UP)
        return v

    return round_to_scale


def _sqlite_datetime(v: dt.datetime) -> str:
    if v.tzinfo is not None:
        v = v.astimezone(dt.UTC).replace(tzinfo=None)
    return v.strftime("%Y-%m-%d %H:%M:%S.%f")


def _mysql_naive(v: Any) -> Any:
    if isinstance(v, dt.datetime) and v.tzinfo is not None:
        return v.astimezone(dt.UTC).replace(tzinfo=None)
    return v


def _finite(where: str, nan_too: bool = True) -> Converter:
    """Reject the doubles (and decimals) the target cannot hold, instead of failing the table or storing NULL."""

    def check(v: Any) -> Any:
        if isinstance(v, float | Decimal) and not isinstance(v, bool):
            if v != v and nan_too:
                raise ValueRejected(f"NaN cannot be stored in {where}")
            if v in (_INF, -_INF):
                raise ValueRejected(f"{'-' if v < 0 else ''}Infinity cannot be stored in {where}")
        return v

    return check


def _sqlite_nan(v: Any) -> Any:
    if isinstance(v, float) and v != v:
        raise ValueRejected("NaN cannot be stored in SQLite (a REAL NaN reads back as NULL)")
    return v


def _time_with_offset(v: Any) -> Any:
    """timetz where the target has no zoned time of day: its ISO text, offset kept (12:00:00+02:00)."""
    return v.isoformat() if isinstance(v, dt.time) else _text(v)


def _pg_bits(length: int) -> Converter:
    """The number as PostgreSQL takes it: bit(1) is a boolean there (see typemap), wider ones a bit string."""
    if length == 1:
        return lambda v: v != 0 if isinstance(v, int) else _bool(v)
    if length > 64:
        return _text
    return lambda v: format(_int(v), f"0{length}b")


def target_adapter(kind: Kind, target: str) -> Converter | None:
    """Canonical value → what the target's writer takes; None when no change is needed."""
    n = kind.name
    if n == "time" and kind.tz and target != "postgresql":
        return _nullable(_time_with_offset)
    if target == "postgresql":
        return _nullable(_pg_bits(kind.length or 1)) if n == "bits" else None
    if target == "mysql":
        if n == "float":
            return _nullable(_finite("a MariaDB/MySQL DOUBLE or FLOAT (neither has NaN or Infinity)"))
        if n == "decimal":
            finite = _finite("a MariaDB/MySQL DECIMAL")
            if kind.scale is not None:  # LOAD DATA would warn on extra digits (and fall back)
                rounder = _rounder(kind.scale)
                return _nullable(lambda v: rounder(finite(v)))
            return _nullable(finite)
        return _nullable(_mysql_naive) if n == "datetime" else None
    if target == "sqlite":
        if n == "float":
            return lambda v: v if v == v else _sqlite_nan(v)  # only NaN differs from itself (None does not)
        if n == "bits":
            # 64 bits may exceed SQLite's signed INTEGER: the text of the bits, full width as PostgreSQL
            # writes bit(n), which every comparer reads back as the same number (decimal digits would not).
            width = kind.length or 64
            return _nullable(lambda v: format(int(v), f"0{width}b")) if width >= 64 else None
        if n == "bool":
            return _nullable(int)
        if n == "decimal":
            # SQLite does not round to the declared scale as PostgreSQL and MySQL do; we do, the same way.
            rounder = _rounder(kind.scale)
            return _nullable(lambda v: format(rounder(v), "f") if isinstance(v, Decimal) else v)
        # A str here is PostgreSQL's text of a value Python cannot hold (infinity, year 10000+, BC; see
        # readers): SQLite keeps dates as text anyway, so it is stored as that text.
        if n == "datetime":
            return _nullable(lambda v: v if isinstance(v, str) else _sqlite_datetime(v))
        if n == "date":
            return _nullable(lambda v: v if isinstance(v, str) else v.isoformat())
        if n == "time":
            return _nullable(lambda v: v.strftime("%H:%M:%S.%f") if isinstance(v, dt.time) else _text(v))
        if n == "int":
            return _nullable(_text) if kind.unsigned and (kind.bits or 64) >= 64 else _fast(int, _sqlite_int)
        if n in ("uuid", "other", "json", "text", "string", "enum"):
            return _fast(str, _text)
        return None
    return None


def _sqlite_int(v: Any) -> int:
    v = _int(v)
    if not -SQLITE_MAX_INT - 1 <= v <= SQLITE_MAX_INT:
        raise ValueRejected(f"integer {v} is outside SQLite's 64-bit INTEGER range")
    return v


_KEYS_NAME = {"postgresql": "PostgreSQL", "mysql": "MySQL/MariaDB"}


def key_not_null(column: str, target: str) -> Converter | None:
    """A primary key column of a target that cannot hold a NULL key (all but SQLite, whose non-rowid keys
    may be NULL): such a row is rejected naming the column, never given a generated key value (an
    AUTO_INCREMENT column turns an inserted NULL into the next counter value, silently)."""
    if target == "sqlite":
        return None

    def check(v: Any) -> Any:
        if v is None:
            raise ValueRejected(f"NULL in primary key column {column}: {_KEYS_NAME[target]} keys cannot be NULL")
        return v

    return check


def compose(first: Converter | None, second: Converter | None) -> Converter | None:
    if first is None:
        return second
    if second is None:
        return first
    return lambda v: second(first(v))


def jsonable(v: Any) -> Any:
    """A JSON-safe form of a canonical value, for reject files and checkpoint keys."""
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, bytes | bytearray | memoryview):
        return "\\x" + bytes(v).hex()
    if isinstance(v, Decimal):
        return format(v, "f")
    if isinstance(v, dt.datetime | dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, dt.timedelta):
        return format_timedelta(v)
    if isinstance(v, dict | list | tuple):
        return json.loads(json.dumps(v, default=str))
    return str(v)
