"""Timestamps in the one form AgileFlow's JavaScript writes (``Date.toISOString``): UTC, ms, ``Z``."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime


def utc_now() -> str:
    return format_ts(datetime.now(UTC))


def format_ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_ts(value: object) -> datetime | None:
    """Lenient: files in the wild carry ``Z``, offsets, or no zone at all (taken as UTC)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def new_session_id() -> str:
    return "sess-" + datetime.now(UTC).strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)
