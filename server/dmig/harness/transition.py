"""status_update: move a story along the AgileFlow graph, with the in-review test gate.

Every transition is recorded three times on purpose: the story's ``status``, an entry in its
``history`` and a bus message, because other agents watch the bus rather than the file. A story
reaches in-review only with passing tests; an override needs a written reason that stays on
the story and is announced on the bus, so skipping the gate is always visible.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from dmig.context import RunContext
from dmig.errors import Conflict, InvalidInput
from dmig.harness import bus, status
from dmig.harness.clock import utc_now
from dmig.harness.paths import project_files
from dmig.redact import redact

MAX_REASON = 1000


class TransitionResult(BaseModel):
    story_id: str
    changed: bool = Field(description="False when the story already was in the requested state (nothing written).")
    from_status: str | None = Field(description="The previous status, as spelled in the file.")
    to_status: str = Field(description="The new status, in the spelling the file already uses.")
    test_status: str | None
    override_used: bool = Field(description="True when the in-review test gate was overridden with a reason.")
    allowed_next: list[str] = Field(description="States the story may move to from its new state.")
    bus_message: dict[str, Any] | None = Field(description="The message announced on the bus, if any.")


def _clean_reason(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        raise InvalidInput(f"{name} must not be blank when given")
    if len(value) > MAX_REASON:
        raise InvalidInput(f"{name} is {len(value)} characters; the limit is {MAX_REASON}")
    return redact(value)


def _gate(story_id: str, story: dict[str, Any], target: str, override_reason: str | None) -> bool:
    """True when the transition goes through the in-review gate only thanks to an override."""
    if target != "in-review" or story.get("test_status") == "passing":
        return False
    if override_reason:
        return True
    raise Conflict(
        f"story {story_id} cannot enter in-review: test_status is {story.get('test_status') or 'unset'}, not passing. "
        "Run verify for it, or give override_reason (recorded on the story and announced on the bus)",
        story_id=story_id,
        test_status=story.get("test_status"),
    )


def _bus_text(story_id: str, before: str | None, after: str, reason: str | None, override: str | None) -> str:
    text = f"{story_id}: {before or '(none)'} → {after}"
    if reason:
        text += f" ({reason})"
    if override:
        text += f" — TEST GATE OVERRIDDEN: {override}"
    return text


def _result(
    story_id: str,
    story: dict[str, Any],
    target: str,
    before: str | None,
    *,
    changed: bool,
    overridden: bool = False,
    message: dict[str, Any] | None = None,
) -> TransitionResult:
    return TransitionResult(
        story_id=story_id,
        changed=changed,
        from_status=before,
        to_status=story.get("status"),
        test_status=story.get("test_status"),
        override_used=overridden,
        allowed_next=list(status.TRANSITIONS.get(target, ())),
        bus_message=message,
    )


def transition(
    rc: RunContext,
    story_id: str,
    target_status: str,
    reason: str | None = None,
    override_reason: str | None = None,
) -> TransitionResult:
    rc.require_writable("status_update")
    files = project_files(rc)
    target = status.require_state(target_status)
    reason = _clean_reason(reason, "reason")
    override_reason = _clean_reason(override_reason, "override_reason")
    with status.editing(files) as data:
        story = status.get_story(data, story_id)
        before = story.get("status")
        current = status.canonical(before)
        if current == target:
            return _result(story_id, story, target, before, changed=False)
        status.check_transition(story_id, current, target)
        overridden = _gate(story_id, story, target, override_reason)
        ts = utc_now()
        written = status.spelling_for(data, target)
        story["status"] = written
        entry: dict[str, Any] = {"status": written, "ts": ts, "by": rc.actor}
        if reason:
            entry["reason"] = reason
        if overridden:
            entry["override_reason"] = override_reason
            story["review_override"] = {
                "reason": override_reason,
                "test_status": story.get("test_status"),
                "by": rc.actor,
                "ts": ts,
            }
        history = story.get("history")
        if not isinstance(history, list):
            history = story["history"] = []
        history.append(entry)
        status.touch_updated(story, ts)
        message = bus.build_message(
            sender=rc.actor,
            type="status",
            text=_bus_text(story_id, before, written, reason, override_reason if overridden else None),
            story=story_id,
            status=written,
            extra={"from_status": before, **({"override_reason": override_reason} if overridden else {})},
        )
    # Announced once the file is safely written: the bus never reports a change that did not happen.
    bus.append(files.bus, message)
    return _result(story_id, story, target, before, changed=True, overridden=overridden, message=message)
