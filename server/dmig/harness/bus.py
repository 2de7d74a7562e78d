"""The agent bus: docs/09-agents/bus/log.jsonl, one JSON message per line, append-only.

Many agents append at once, so a message is one ``fsutil.append_line`` call (locked, whole
line). Reading tolerates the other spelling some AgileFlow scripts use (``agent``/``story_id``)
and lines that are not valid JSON (counted, skipped). Message text is untrusted: it is
returned as data and never interpreted.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from dmig import fields, fsutil, safeload
from dmig.errors import InvalidInput
from dmig.harness import jsonio
from dmig.harness.clock import utc_now
from dmig.redact import redact, redact_obj

SCHEMA = "bus-message.schema.json"
COMMON_TYPES = ("status", "question", "blocked", "unblock", "finding", "assign", "handoff", "warning")
RESERVED = ("ts", "from", "type", "text", "to", "story", "status", "agent", "story_id")
MAX_TEXT = fields.MESSAGE_MAX  # bus_append's input limit: one number
MAX_LINE_BYTES = 16_384
_TYPE = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,99}$")


class BusTail(BaseModel):
    messages: list[dict[str, Any]] = Field(description="Newest messages, oldest first, normalized (untrusted data).")
    invalid_lines: int = Field(description="Lines in the scanned tail that were not valid JSON objects (skipped).")


def build_message(
    *,
    sender: str,
    type: str,
    text: str,
    to: str | None = None,
    story: str | None = None,
    status: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Validate and assemble one message; credentials in any text are masked before it is stored."""
    if not _TYPE.match(type or ""):
        raise InvalidInput(
            f"bus message type {type!r} must be one lowercase word (common: {', '.join(COMMON_TYPES)})",
            common_types=list(COMMON_TYPES),
        )
    if not text or not text.strip():
        raise InvalidInput("bus message text must not be empty")
    if len(text) > MAX_TEXT:
        raise InvalidInput(f"bus message text is {len(text)} characters; the limit is {MAX_TEXT}")
    for name, value in (("from", sender), ("to", to), ("story", story), ("status", status)):
        if value is not None and not _TOKEN.match(value):
            raise InvalidInput(f"bus field {name} {value!r} must be a short identifier (letters, digits, - _ . : @)")
    clash = sorted(set(extra or {}) & set(RESERVED))
    if clash:
        raise InvalidInput(f"extra fields may not redefine {', '.join(clash)}", fields=clash)
    message: dict[str, Any] = {"ts": utc_now(), "from": sender, "type": type}
    for key, value in (("to", to), ("story", story), ("status", status)):
        if value is not None:
            message[key] = value
    message["text"] = redact(text)
    message.update(redact_obj(extra or {}))
    problems = jsonio.schema_problems(message, SCHEMA)
    if problems:
        raise InvalidInput(f"the bus message is not valid: {problems[0]}", problems=problems)
    return message


def append(path: Path, message: dict[str, Any]) -> int:
    """Append one message as one line; returns the line's size in bytes."""
    try:
        line = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"bus message is not JSON-serializable: {exc}") from None
    size = len(line.encode("utf-8"))
    if size > MAX_LINE_BYTES:
        raise InvalidInput(f"bus message is {size} bytes; the limit is {MAX_LINE_BYTES}")
    fsutil.append_line(path, line)
    return size + 1


def normalize(raw: dict[str, Any]) -> dict[str, Any]:
    """One vocabulary for readers: ``from``/``story`` whichever spelling the writer used."""
    out: dict[str, Any] = {
        "ts": raw.get("ts"),
        "from": raw.get("from", raw.get("agent")),
        "type": raw.get("type"),
        "to": raw.get("to"),
        "story": raw.get("story", raw.get("story_id")),
        "status": raw.get("status"),
        "text": raw.get("text"),
    }
    out = {k: v for k, v in out.items() if v is not None}
    extra = {k: v for k, v in raw.items() if k not in RESERVED}
    if extra:
        out["extra"] = extra
    return out


def _tail_lines(path: Path, count: int, block: int = 65_536) -> list[bytes]:
    """The last ``count`` complete lines, read backwards in blocks (the log can be large).

    At most ``bus_tail`` bytes are read (dmig.safeload): a log that is one endless line, or a FIFO
    in its place, cannot make the tail read everything or block.
    """
    budget = safeload.KINDS["bus_tail"].max_bytes
    with safeload.open_regular(path, "bus_tail", check_size=False) as (fh, _size):
        fh.seek(0, os.SEEK_END)
        end = fh.tell()
        floor = max(0, end - budget)
        chunks: list[bytes] = []
        newlines = 0
        while end > floor and newlines <= count:
            start = max(floor, end - block)
            fh.seek(start)
            chunks.append(fh.read(end - start))
            newlines += chunks[-1].count(b"\n")
            end = start
    data = b"".join(reversed(chunks))
    segments = data.split(b"\n")
    if end > 0:  # the first segment may be the tail of a line that starts before what we read
        segments = segments[1:]
    lines = [ln for ln in segments if ln.strip()]
    return lines[-count:]


def tail(path: Path, count: int) -> BusTail:
    if count <= 0 or not path.exists():
        return BusTail(messages=[], invalid_lines=0)
    messages, invalid = [], 0
    for raw in _tail_lines(path, count):
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            invalid += 1
            continue
        if not isinstance(obj, dict):
            invalid += 1
            continue
        messages.append(normalize(obj))
    return BusTail(messages=messages, invalid_lines=invalid)


def read_all(path: Path) -> list[dict[str, Any]]:
    """Every parseable message (for tests and small logs); unparseable lines are skipped."""
    out = []
    if not path.exists():
        return out
    for raw in safeload.read_bytes(path, "jsonl").split(b"\n"):
        if raw.strip():
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
    return out
