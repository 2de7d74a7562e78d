"""Checks every executor entry point makes before touching the database: the plan is the one
plan_migration sealed (checksum + server-side seal), the caller confirmed exactly it, and the URL
names the database the plan was made for. No refusal ever carries an expected confirm value.
"""

from __future__ import annotations

import hmac
from pathlib import Path

from sqlalchemy.engine import URL

from dmig import policy
from dmig.db.urls import dialect_of, parse_url
from dmig.errors import ConfirmationRequired, Conflict, InvalidInput
from dmig.plan.model import Plan, verify_plan
from dmig.policy import Access

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


def resolve_url(
    plan: Plan,
    url: str | None,
    *,
    access: Access = "write",
    destructive: bool = False,
    project_dir: Path | None = None,
) -> URL:
    """The URL to run with: the caller's (if it names the plan's database) or the plan's reference.

    Whichever it is passes the project policy first (``access``: what the caller will do to it;
    ``destructive``: production then needs a recent verified backup). The plan's stored target is a
    URL source like any argument: a plan made while an innocent variable pointed elsewhere, or one
    whose stored reference names production, is held to the policy as it stands now.
    """
    raw = url if url is not None else plan.target.ref
    if raw is not None:
        field = "url" if url is not None else f"plan {plan.id} target"
        raw = policy.admit(raw, access, field=field, destructive=destructive, project_dir=project_dir)
    planned = parse_url(plan.target.ref) if plan.target.ref else None
    if url is None:
        if planned is None:
            raise InvalidInput(
                f"plan {plan.id} stores no way to reach {plan.target.url} without a password: pass url (prefer "
                "env:VARNAME)",
                reason="url_required",
            )
        return planned
    given = parse_url(raw or url)
    shown = parse_url(plan.target.url)
    if _identity(given) != _identity(planned or shown):
        raise Conflict(
            f"plan {plan.id} was made for {plan.target.url}, not for this database: re-plan against it",
            reason="wrong_database",
        )
    return given


def admit(plan: Plan, confirm: str | None, url: str | None, action: str, *, project_dir: Path | None = None) -> URL:
    """The checks every destructive call makes first: reviewed plan, exact confirmation, the right database,
    and the project policy (write access; production needs a recent verified backup)."""
    verify_plan(plan)
    require_confirm(plan, confirm, action)
    return resolve_url(plan, url, destructive=True, project_dir=project_dir)
