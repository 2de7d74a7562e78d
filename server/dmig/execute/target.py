"""Checks every executor entry point makes before touching the database: the plan is the one
plan_migration sealed (checksum + server-side seal), the caller confirmed exactly it, and the URL
names the database the plan was made for. No refusal ever carries an expected confirm value.
"""

from __future__ import annotations

import hmac

from sqlalchemy.engine import URL

from dmig.db.urls import dialect_of, parse_url
from dmig.errors import ConfirmationRequired, Conflict, InvalidInput
from dmig.plan.model import Plan, verify_plan

__all__ = ["admit", "require_confirm", "resolve_url", "verify_plan"]


def require_confirm(plan: Plan, confirm: str | None, action: str) -> None:
    """``confirm`` must be the checksum the reviewer saw; an error never says what it is.

    The plan's seal (``verify_plan``) is what proves the plan is the one plan_migration made; the
    confirmation is the caller's statement that this is the plan they reviewed. Echoing the
    expected value would turn a refusal into the answer to copy back.
    """
    where = "the checksum shown in plan_migration's result and in the plan's runbook.md"
    if not confirm:
        raise ConfirmationRequired(
            f"{action} changes the database: pass confirm = {where}, to show you reviewed this exact plan",
            reason="confirm_required",
            migration_id=plan.id,
        )
    if not hmac.compare_digest(confirm.strip().lower().encode(), plan.checksum.encode()):
        raise ConfirmationRequired(
            f"confirm does not match plan {plan.id}: {action} refused. Review the plan and pass {where}",
            reason="confirm_mismatch",
            migration_id=plan.id,
        )


def _identity(url: URL) -> tuple[str, str | None, int | None, str | None]:
    return (dialect_of(url), (url.host or "").lower() or None, url.port, url.database)


def resolve_url(plan: Plan, url: str | None) -> URL:
    """The URL to run with: the caller's (if it names the plan's database) or the plan's reference."""
    planned = parse_url(plan.target.ref) if plan.target.ref else None
    if url is None:
        if planned is None:
            raise InvalidInput(
                f"plan {plan.id} stores no way to reach {plan.target.url} without a password: pass url (prefer "
                "env:VARNAME)",
                reason="url_required",
            )
        return planned
    given = parse_url(url)
    shown = parse_url(plan.target.url)
    if _identity(given) != _identity(planned or shown):
        raise Conflict(
            f"plan {plan.id} was made for {plan.target.url}, not for this database: re-plan against it",
            reason="wrong_database",
        )
    return given


def admit(plan: Plan, confirm: str | None, url: str | None, action: str) -> URL:
    """The checks every executing call makes first: reviewed plan, exact confirmation, the right database."""
    verify_plan(plan)
    require_confirm(plan, confirm, action)
    return resolve_url(plan, url)
