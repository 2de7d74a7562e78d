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

from dmig.fsutil import append_line
from dmig.redact import redact_obj

AUDIT_PATH = Path("docs") / "00-meta" / "dmig-audit.jsonl"
_MAX_VALUE = 300


def _bounded(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return value if len(value) <= _MAX_VALUE else value[:_MAX_VALUE] + f"…(+{len(value) - _MAX_VALUE} chars)"
    if depth > 3:
        return "…"
    if isinstance(value, dict):
        return {str(k): _bounded(v, depth + 1) for k, v in list(value.items())[:30]}
    if isinstance(value, list | tuple):
        return [_bounded(v, depth + 1) for v in list(value)[:30]]
    return value


def _checksum(arguments: dict[str, Any], result: dict[str, Any] | None) -> str | None:
    for source in (arguments, result or {}):
        for key in ("confirm", "plan_checksum", "checksum"):
            value = source.get(key)
            if isinstance(value, str) and value:
                return value
    return None


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
        "arguments": _bounded(redact_obj(arguments)),
        "plan_checksum": _checksum(arguments, result),
        "outcome": outcome,
        "seconds": round(time.perf_counter() - started, 3),
    }
    append_line(project_dir / AUDIT_PATH, json.dumps(entry, ensure_ascii=False, default=str))
