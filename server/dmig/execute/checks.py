"""Run a plan's validation checks (each a SELECT returning one number) and say which pass.

They run in one read-only, time-bounded transaction so a check can never change data, and one
that cannot run is reported as failed with its (redacted) error rather than aborting the others.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel

from dmig.db.dialects import read_only_session
from dmig.execute.ledger import clean_error
from dmig.spec.steps import ValidationCheck

CHECK_TIMEOUT_S = 600.0


class CheckOutcome(BaseModel):
    id: str
    description: str
    severity: str
    expected: int
    value: Any = None
    passed: bool
    error: str | None = None


def run_checks(
    engine: sa.Engine, checks: list[ValidationCheck], timeout_s: float = CHECK_TIMEOUT_S
) -> list[CheckOutcome]:
    out: list[CheckOutcome] = []
    with engine.connect() as conn, read_only_session(conn, timeout_s):
        for check in checks:
            try:
                with conn.begin_nested():
                    value = conn.execute(sa.text(check.sql), check.params).scalar()
                value = int(value) if value is not None else None
                out.append(
                    CheckOutcome(id=check.id, description=check.description, severity=check.severity,
                                 expected=check.expected, value=value, passed=value == check.expected)
                )  # fmt: skip
            except sa.exc.DBAPIError as exc:
                out.append(
                    CheckOutcome(id=check.id, description=check.description, severity=check.severity,
                                 expected=check.expected, passed=False, error=clean_error(exc))
                )  # fmt: skip
    return out


def gate_passed(results: list[CheckOutcome]) -> bool:
    """Error-severity checks must all pass; warnings are reported but do not block."""
    return all(r.passed for r in results if r.severity == "error")
