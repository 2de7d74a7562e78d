"""status.json: story states, their spellings, the transition graph, and safe edits.

AgileFlow's own modules disagree on spelling (``in-progress`` vs ``in_progress``, ``done`` vs
``completed``), so we compare canonical states but write back the spelling the file already
uses: rewriting another agent's vocabulary would break the tools that wrote it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dmig.errors import Conflict, InvalidInput, NotFound
from dmig.harness import jsonio
from dmig.harness.clock import utc_now
from dmig.harness.paths import ProjectFiles

SCHEMA = "status.schema.json"
LABEL = "docs/09-agents/status.json"

# canonical state -> every spelling seen in the wild (the canonical one first)
SPELLINGS: dict[str, tuple[str, ...]] = {
    "draft": ("draft",),
    "ready": ("ready", "pending"),
    "in-progress": ("in-progress", "in_progress"),
    "blocked": ("blocked",),
    "in-review": ("in-review", "in_review"),
    "done": ("done", "completed"),
    "archived": ("archived",),
}
_CANONICAL = {spelling: state for state, spellings in SPELLINGS.items() for spelling in spellings}

TRANSITIONS: dict[str, tuple[str, ...]] = {
    "draft": ("ready",),
    "ready": ("in-progress", "blocked"),
    "in-progress": ("in-review", "blocked", "ready"),
    "blocked": ("ready", "in-progress"),
    "in-review": ("done", "in-progress"),
    "done": (),
    "archived": (),
}
TEST_STATES = ("passing", "failing", "not_run", "skipped")


def canonical(state: object) -> str | None:
    """The canonical state of any spelling (case and surrounding blanks ignored); None if unknown."""
    if not isinstance(state, str):
        return None
    return _CANONICAL.get(state.strip().lower().replace(" ", "-"))


def require_state(state: str) -> str:
    found = canonical(state)
    if found is None:
        raise InvalidInput(
            f"unknown story status {state!r}",
            allowed=list(SPELLINGS),
        )
    return found


def stories(data: dict[str, Any]) -> dict[str, Any]:
    value = data.get("stories")
    return value if isinstance(value, dict) else {}


def spelling_for(data: dict[str, Any], state: str) -> str:
    """The spelling of ``state`` this file already uses (most common), else its house style."""
    variants = SPELLINGS[state]
    used = Counter(s.get("status") for s in stories(data).values() if isinstance(s, dict))
    counts = [(used[v], -i, v) for i, v in enumerate(variants) if used[v]]
    if counts:
        return max(counts)[2]
    underscore = sum(used[v] for v in ("in_progress", "in_review"))
    hyphen = sum(used[v] for v in ("in-progress", "in-review"))
    if underscore > hyphen:
        return next((v for v in variants if "_" in v), variants[0])
    return variants[0]


def story_ids_in(data: dict[str, Any], state: str) -> list[str]:
    return [sid for sid, s in stories(data).items() if isinstance(s, dict) and canonical(s.get("status")) == state]


def counts_by_state(data: dict[str, Any]) -> dict[str, int]:
    counter: Counter[str] = Counter()
    for story in stories(data).values():
        raw = story.get("status") if isinstance(story, dict) else None
        counter[canonical(raw) or (str(raw) if raw is not None else "(none)")] += 1
    return dict(sorted(counter.items()))


def read(files: ProjectFiles) -> dict[str, Any] | None:
    """The parsed, schema-checked file, or None when the project has none yet."""
    doc = jsonio.load(files.status, SCHEMA, label=LABEL)
    return doc.data if doc else None


@contextmanager
def editing(files: ProjectFiles) -> Iterator[dict[str, Any]]:
    """Locked read-modify-write of status.json; bumps the top-level ``updated`` when anything changed."""
    with jsonio.editing(files.status, SCHEMA, label=LABEL) as doc:
        before = jsonio.dumps(doc.data)
        yield doc.data
        if jsonio.dumps(doc.data) != before:
            doc.data["updated"] = utc_now()


def get_story(data: dict[str, Any], story_id: str) -> dict[str, Any]:
    story = stories(data).get(story_id)
    if not isinstance(story, dict):
        known = sorted(stories(data))
        raise NotFound(
            f"story {story_id} is not in {LABEL}",
            story_id=story_id,
            known_count=len(known),
            some_known=known[:20],
        )
    return story


def check_transition(story_id: str, current: str | None, target: str) -> None:
    allowed = TRANSITIONS.get(current or "", ())
    if target not in allowed:
        raise Conflict(
            f"story {story_id} cannot move from {current or 'an unknown state'} to {target}"
            + (f"; allowed next states: {', '.join(allowed)}" if allowed else "; it has no allowed next state"),
            story_id=story_id,
            current=current,
            requested=target,
            allowed_next=list(allowed),
        )


def touch_updated(story: dict[str, Any], ts: str) -> None:
    """Set the story's last-change stamp under the name it already uses."""
    for key in ("updated", "updated_at", "last_update"):
        if key in story:
            story[key] = ts
            return
    story["updated"] = ts


def new_status_document() -> dict[str, Any]:
    return {"updated": utc_now(), "epics": {}, "stories": {}}
