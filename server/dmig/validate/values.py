"""Database values as results show them (bounded) and as spot checks compare them (normalised).

Sample values are untrusted data: they are shown as JSON scalars, truncated, never interpreted.
Normalisation makes the same value equal across dialects: a NUMERIC 1.50 from PostgreSQL equals a
REAL 1.5 from SQLite, booleans compare as 0/1, timestamps at microsecond precision in UTC (naive
values are taken as UTC), dates as ISO text, JSON by canonical text, and a text column that holds
a number or an ISO timestamp (SQLite stores anything) is read as that value before comparing.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from dmig.render import visible


def shown(value: Any, max_chars: int) -> Any:
    """A JSON-safe, bounded rendering of one value."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        text = "0x" + raw[: max_chars // 2].hex()
        return text + (f"…(+{len(raw) - max_chars // 2} bytes)" if len(raw) > max_chars // 2 else "")
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, dict | list):
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    else:
        text = str(value)
    text = visible(text)  # ESC, CR, bidi... spelled out: a sample is shown, never acts on a terminal
    if len(text) > max_chars:
        return text[:max_chars] + f"…(+{len(text) - max_chars} chars)"
    return text


def shown_row(row: dict[str, Any], max_chars: int) -> dict[str, Any]:
    return {str(k): shown(v, max_chars) for k, v in row.items()}


def _as_utc(dt: datetime) -> datetime:
    return dt.astimezone(UTC).replace(tzinfo=None) if dt.tzinfo else dt


def _number(value: Any) -> Decimal | None:
    try:
        d = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() else None


def _text_as(value: str, other: Any) -> Any:
    """Read text as the type of the value it is compared with (SQLite keeps values as text)."""
    try:
        if isinstance(other, datetime):
            return datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        if isinstance(other, date):
            return date.fromisoformat(value.strip()[:10]) if len(value.strip()) == 10 else None
        if isinstance(other, dict | list):
            return json.loads(value)
    except ValueError:
        return None
    if isinstance(other, bool | int | float | Decimal):
        return _number(value)
    return None


def normalise(value: Any, other: Any = None) -> Any:
    """A canonical, hashable form; ``other`` (the compared value) guides how text is read."""
    if isinstance(value, str) and not isinstance(other, str) and other is not None:
        converted = _text_as(value, other)
        if converted is not None:
            value = converted
    if value is None:
        return None
    if isinstance(value, bool):
        return ("num", Decimal(int(value)))
    if isinstance(value, int | float | Decimal):
        d = _number(value)
        return ("num", d.normalize() if d is not None else str(value))
    if isinstance(value, datetime):
        return ("ts", _as_utc(value).isoformat(timespec="microseconds"))
    if isinstance(value, date):
        return ("ts", datetime(value.year, value.month, value.day).isoformat(timespec="microseconds"))
    if isinstance(value, time):
        return ("time", value.replace(tzinfo=None).isoformat(timespec="microseconds"))
    if isinstance(value, timedelta):
        return ("num", Decimal(str(value.total_seconds())).normalize())
    if isinstance(value, bytes | bytearray | memoryview):
        return ("bytes", bytes(value))
    if isinstance(value, uuid.UUID):
        return ("text", str(value))
    if isinstance(value, dict | list):
        return ("json", json.dumps(value, sort_keys=True, separators=(",", ":"), default=str))
    return ("text", str(value))


def same(a: Any, b: Any) -> bool:
    return normalise(a, b) == normalise(b, a)
