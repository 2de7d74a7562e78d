"""enum: values outside an allowed set.

Text is compared byte for byte by default, also on MySQL/MariaDB whose usual collations would
otherwise take 'Active' and 'active ' for 'active'; ``case_sensitive: false`` compares lower-cased.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from dmig.validate.checks import CheckEnv, column_rule
from dmig.validate.db import Session
from dmig.validate.result import Outcome
from dmig.validate.spec import EnumCheck


def _comparable(col: sa.ColumnElement[Any], check: EnumCheck, s: Session) -> tuple[Any, list[Any]]:
    values = [v for v in check.values if v is not None]
    texts = all(isinstance(v, str) for v in values)
    if texts and not check.case_sensitive:
        return sa.func.lower(col), [v.lower() for v in values]
    if texts and s.dialect == "mysql":
        return sa.func.binary(col), values
    return col, values


def run(check: EnumCheck, env: CheckEnv) -> Outcome:
    null_ok = check.allow_null or None in check.values

    def offending(col: sa.Column[Any], s: Session) -> sa.ColumnElement[bool]:
        expr, values = _comparable(col, check, s)
        outside = sa.and_(col.is_not(None), expr.not_in(values)) if values else col.is_not(None)
        return outside if null_ok else sa.or_(outside, col.is_(None))

    allowed = ", ".join(repr(v) for v in check.values[:10]) + (" …" if len(check.values) > 10 else "")
    return column_rule(env, check, offending, f"not in {{{allowed}}}")
