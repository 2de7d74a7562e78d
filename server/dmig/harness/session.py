"""docs/09-agents/session-state.json: what one session hands to the next.

A session starts with ``session_init`` or ``session_resume``; resume closes the previous one
(its final test status, completed stories, commit count) into ``last_session`` and keeps the
older ones in ``session_history`` so a regression can be traced to the session that caused it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dmig.harness import jsonio
from dmig.harness.clock import new_session_id, parse_ts, utc_now
from dmig.harness.paths import ProjectFiles
from dmig.harness.status import canonical, stories

SCHEMA = "session-state.schema.json"
LABEL = "docs/09-agents/session-state.json"
SCHEMA_VERSION = 1


def empty() -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "current_session": None,
        "last_session": None,
        "session_history": [],
        "baseline_history": [],
    }


def new_current(actor: str, *, current_story: str | None = None, baseline_verified: bool = False) -> dict[str, Any]:
    return {
        "id": new_session_id(),
        "started_at": utc_now(),
        "baseline_verified": baseline_verified,
        "initial_test_status": None,
        "current_story": current_story,
        "active_agent": actor,
    }


def read(files: ProjectFiles) -> dict[str, Any] | None:
    doc = jsonio.load(files.session_state, SCHEMA, label=LABEL)
    return doc.data if doc else None


@contextmanager
def editing(files: ProjectFiles) -> Iterator[dict[str, Any]]:
    """Locked read-modify-write; a missing file starts empty (the harness may predate it)."""
    with jsonio.editing(files.session_state, SCHEMA, label=LABEL, default=empty()) as doc:
        yield doc.data


def ensure_current(state: dict[str, Any], actor: str) -> dict[str, Any]:
    current = state.get("current_session")
    if not isinstance(current, dict):
        current = new_current(actor)
        state["current_session"] = current
    return current


def record_verify(state: dict[str, Any], actor: str, summary: dict[str, Any]) -> None:
    """The session's first verdict is its initial test status; every run is its last verify."""
    current = ensure_current(state, actor)
    if current.get("initial_test_status") in (None, "not_run"):
        current["initial_test_status"] = summary["test_status"]
    state["last_verify"] = summary


def completed_since(status_data: dict[str, Any] | None, since_iso: str | None) -> list[str]:
    """Stories whose history shows them reaching done (any spelling) since the session started."""
    since = parse_ts(since_iso)
    if since is None:
        return []
    done = []
    for sid, story in stories(status_data or {}).items():
        if not isinstance(story, dict) or canonical(story.get("status")) != "done":
            continue
        stamps = [
            parse_ts(h.get("ts"))
            for h in story.get("history") or []
            if isinstance(h, dict) and canonical(h.get("status")) == "done"
        ]
        stamps = [s for s in stamps if s is not None]
        if any(s >= since for s in stamps):
            done.append(sid)
    return done


def rotate(state: dict[str, Any], new_current_session: dict[str, Any], ended: dict[str, Any] | None) -> None:
    """Close the current session into last_session (the previous last one goes to the history)."""
    previous_last = state.get("last_session")
    if isinstance(previous_last, dict):
        history = state.get("session_history")
        if not isinstance(history, list):
            history = []
            state["session_history"] = history
        history.append(previous_last)
    if ended is not None:
        state["last_session"] = ended
    state["current_session"] = new_current_session
