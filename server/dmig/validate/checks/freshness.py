"""freshness: the newest timestamp in a table is recent enough (a stalled sync or load shows here).

Only ``max(column)`` leaves the database. Naive timestamps are taken as UTC; SQLite text
timestamps are parsed as ISO-8601. The reference instant is now (UTC) unless the rule gives one.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

import sqlalchemy as sa

from dmig.errors import InvalidInput
from dmig.validate.checks import CheckEnv, where_text
from dmig.validate.db import column, raw, where_clause
from dmig.validate.result import Outcome
from dmig.validate.spec import FreshnessCheck, parse_duration


def _as_utc(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(f"the newest value {value[:60]!r} is not an ISO timestamp") from None
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime.combine(value, time())
    if not isinstance(value, datetime):
        raise InvalidInput(f"the column holds {type(value).__name__} values, not timestamps")
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def run(check: FreshnessCheck, env: CheckEnv) -> Outcome:
    with env.session(check.on) as s:
        table = s.table(check.table, env.schema(check.on, check.schema_))
        col = column(table, check.column)
        newest_raw = s.scalar(sa.select(raw(sa.func.max(col), "newest")).where(*where_clause(table, check.where)))
    max_age = parse_duration(check.max_age)
    reference = _as_utc(check.reference) if check.reference else datetime.now(UTC)
    where = f"{check.table}.{check.column}{where_text(check)}"
    if newest_raw is None:
        return Outcome(
            passed=False,
            summary=f"no timestamp at all in {where}: nothing to be fresh",
            figures={"newest": None, "max_age": check.max_age, "reference": reference.isoformat()},
        )
    newest = _as_utc(newest_raw)
    age = reference - newest
    ok = age <= max_age
    return Outcome(
        passed=ok,
        summary=f"newest {where} is {newest.isoformat()}, {_human(age)} old (limit {check.max_age})",
        figures={
            "newest": newest.isoformat(),
            "age_s": round(age.total_seconds(), 3),
            "max_age": check.max_age,
            "max_age_s": max_age.total_seconds(),
            "reference": reference.isoformat(),
        },
    )


def _human(age: Any) -> str:
    seconds = int(age.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    d, rem = divmod(seconds, 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    return sign + (f"{d}d{h}h" if d else f"{h}h{m}m" if h else f"{m}m{s}s")
