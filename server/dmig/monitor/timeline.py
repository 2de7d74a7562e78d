"""The metrics timeline kept with the run: docs/migrations/<run-id>/metrics.jsonl.

One JSON object per line, appended as it happens (a crash mid-run keeps every sample up to the
crash, and a resumed run continues the same file). Lines carry ``type``: ``baseline`` (the
latency measured before the migration), ``sample`` (one snapshot and the verdict after it) or
``event`` (a pause, resume, trigger, clear or escalation, or anything the executor records).
Readers skip lines that are not valid JSON objects rather than failing the report.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from dmig import fsutil, safeload
from dmig.context import RunContext
from dmig.errors import InvalidInput
from dmig.redact import redact_obj

RUNS_DIR = "docs/migrations"
TIMELINE = "metrics.jsonl"
REPORT = "report.html"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def check_run_id(run_id: str) -> str:
    if not _RUN_ID.match(run_id or "") or ".." in run_id:
        raise InvalidInput(
            f"run id {run_id!r} must be letters, digits, '-', '_' or '.' (up to 100, no '..')", run_id=run_id
        )
    return run_id


def run_dir(rc: RunContext, run_id: str) -> Path:
    return rc.project_path(f"{RUNS_DIR}/{check_run_id(run_id)}")


def timeline_path(rc: RunContext, run_id: str) -> Path:
    return rc.project_path(f"{RUNS_DIR}/{check_run_id(run_id)}/{TIMELINE}")


def report_path(rc: RunContext, run_id: str) -> Path:
    return rc.project_path(f"{RUNS_DIR}/{check_run_id(run_id)}/{REPORT}")


class Timeline:
    """Appends records for one run; without a path (no project) it keeps them in memory only."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.records: list[dict[str, Any]] = []

    def append(self, record: dict[str, Any]) -> None:
        clean = redact_obj(record)
        self.records.append(clean)
        if self.path is not None:
            fsutil.append_line(self.path, json.dumps(clean, ensure_ascii=False, separators=(",", ":"), default=str))


def read(path: Path) -> list[dict[str, Any]]:
    """Every valid record of a timeline file, in order; invalid lines are skipped."""
    if not path.is_file():
        return []
    out = []
    for raw in safeload.read_bytes(path, "jsonl").split(b"\n"):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(obj, dict) and isinstance(obj.get("type"), str):
            out.append(obj)
    return out
