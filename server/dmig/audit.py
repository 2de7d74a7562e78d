"""The audit log: one line per call that could change something, whatever its outcome.

Who (actor, front end), what (tool, arguments with credentials masked and long values cut),
when, the plan checksum it acted under (the ``confirm`` argument or the result's checksum),
and the outcome (ok, or the error code). Appended with the same locked, whole-line append as
the bus, so concurrent servers never tear a line.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dmig.fsutil import append_line, write_target
from dmig.redact import longest_secret, redact_obj

AUDIT_PATH = Path("docs") / "00-meta" / "dmig-audit.jsonl"
_MAX_VALUE = 300
_MARGIN = 256  # kept past the cut until masking is done: a secret straddling the cut is still recognised


def _cut(value: Any, limit: int, depth: int = 0) -> Any:
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit]
    if depth > 3:
        return "…"
    if isinstance(value, dict):
        return {str(k): _cut(v, limit, depth + 1) for k, v in list(value.items())[:30]}
    if isinstance(value, list | tuple):
        return [_cut(v, limit, depth + 1) for v in list(value)[:30]]
    return value


def _note_cut(clean: Any, original: Any, depth: int = 0) -> Any:
    """Cut the masked strings to _MAX_VALUE and say how long the original was."""
    if isinstance(clean, str) and isinstance(original, str):
        if len(original) <= _MAX_VALUE and len(clean) <= _MAX_VALUE:
            return clean
        return clean[:_MAX_VALUE] + f"…(+{max(len(original) - _MAX_VALUE, 0)} chars)"
    if isinstance(clean, dict) and isinstance(original, dict):
        return {k: _note_cut(v, original.get(k), depth + 1) for k, v in clean.items()}
    if isinstance(clean, list) and isinstance(original, list | tuple):
        return [_note_cut(v, o, depth + 1) for v, o in zip(clean, original, strict=False)]
    return clean


def _bounded(value: Any) -> Any:
    """Bound first, then mask, then cut: masking a 10 MB argument would hold up every other call.

    The first cut keeps a margin of the longest remembered secret so that one starting before
    the final cut is still whole (and masked) when the redactor sees it.
    """
    margin = max(_MARGIN, longest_secret())
    rough = _cut(value, _MAX_VALUE + margin)
    return _note_cut(redact_obj(rough), value)


def _checksum(arguments: dict[str, Any], result: dict[str, Any] | None) -> str | None:
    for source in (arguments, result or {}):
        for key in ("confirm", "plan_checksum", "checksum"):
            value = source.get(key)
            if isinstance(value, str) and value:
                return value
    return None


def preflight(project_dir: Path) -> None:
    """Refuse a call up front when its audit line could not be written inside the project (a symlinked log)."""
    write_target(project_dir / AUDIT_PATH, root=project_dir)
    write_target(Path(str(project_dir / AUDIT_PATH) + ".lock"), root=project_dir)


def record(
    project_dir: Path,
    *,
    actor: str,
    front_end: str,
    tool: str,
    arguments: dict[str, Any],
    started: float,
    outcome: str,
    result: dict[str, Any] | None = None,
) -> None:
    entry = {
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "actor": actor,
        "front_end": front_end,
        "tool": tool,
        "arguments": _bounded(arguments),
        "plan_checksum": _checksum(arguments, result),
        "outcome": outcome,
        "seconds": round(time.perf_counter() - started, 3),
    }
    append_line(project_dir / AUDIT_PATH, json.dumps(entry, ensure_ascii=False, default=str), root=project_dir)
