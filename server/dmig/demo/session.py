"""The demo's side of the MCP conversation: call a tool, print one line, keep the figures.

Every step goes through the official client to ``dmig serve`` over stdio, exactly as Claude Code
drives it. A tool error stops the story with the tool's own code and message (one line, never a
traceback); the server's stderr goes to a log file in the work folder, not to the terminal.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mcp import Client

from dmig.redact import redact

Summary = Callable[[dict[str, Any]], str]


class StoryError(Exception):
    """A step failed: the message is the one line the user sees."""


@dataclass
class Account:
    """What happened, step by step, for the closing summary."""

    lines: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def step(self, title: str, detail: str, seconds: float, ok: bool = True) -> None:
        mark = "ok  " if ok else "FAIL"
        line = redact(f"[{mark}] {title:<26} {seconds:6.2f}s  {detail}")
        self.lines.append(line)
        print(line, flush=True)

    def note(self, text: str) -> None:
        print(redact(f"       {text}"), flush=True)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started


def error_payload(result: Any) -> dict[str, Any]:
    """The structured error of a failed call (the SDK prefixes the JSON with some text)."""
    text = "".join(getattr(c, "text", "") for c in result.content)
    try:
        return json.loads(text[text.index("{") :]).get("error", {})
    except (ValueError, json.JSONDecodeError, AttributeError):
        return {"code": "E_UNPARSED", "message": text[:300]}


class Session:
    """One MCP client session; ``call`` returns the structured result or raises StoryError."""

    def __init__(self, client: Client, account: Account) -> None:
        self.client = client
        self.account = account

    async def call(self, title: str, tool: str, args: dict[str, Any], summary: Summary) -> dict[str, Any]:
        t0 = time.perf_counter()
        result = await self.client.call_tool(tool, args)
        seconds = time.perf_counter() - t0
        if result.is_error:
            err = error_payload(result)
            reason = f"{err.get('code')}: {err.get('message')}"
            self.account.step(title, reason, seconds, ok=False)
            raise StoryError(f"{tool} failed: {reason}")
        out = result.structured_content or {}
        try:
            detail = summary(out)
        except (KeyError, TypeError, ValueError, IndexError) as exc:  # a tool answered in an unexpected shape
            detail = f"(unexpected answer: {type(exc).__name__} {exc})"
        self.account.step(title, detail, seconds)
        return out

    async def read_text(self, uri: str) -> str:
        result = await self.client.read_resource(uri)
        return "".join(getattr(c, "text", "") for c in result.contents)
