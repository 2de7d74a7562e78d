"""range: values outside [min, max] (inclusive); NULLs are not out of range (use not_null)."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

import sqlalchemy as sa

from dmig.validate.checks import CheckEnv, column_rule
from dmig.validate.db import Session
from dmig.validate.result import Outcome
from dmig.validate.spec import RangeCheck


def _bound(col: sa.ColumnElement[Any], value: Any) -> Any:
    """Bind a bound with the column's type; a date bound of a timestamp column means midnight."""
    if isinstance(col.type, sa.DateTime) and isinstance(value, date) and not isinstance(value, datetime):
        value = datetime.combine(value, time())
    return sa.literal(value, type_=col.type)


def run(check: RangeCheck, env: CheckEnv) -> Outcome:
    def offending(col: sa.Column[Any], s: Session) -> sa.ColumnElement[bool]:
        outside = []
        if check.min is not None:
            outside.append(col < _bound(col, check.min))
        if check.max is not None:
            outside.append(col > _bound(col, check.max))
        return sa.and_(col.is_not(None), sa.or_(*outside))

    bounds = f"[{'' if check.min is None else check.min}, {'' if check.max is None else check.max}]"
    return column_rule(env, check, offending, f"outside {bounds}")
