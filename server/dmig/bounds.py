"""Refuse oversized tool inputs before anything else looks at them.

Policy resolution, redaction and the audit log all read the raw arguments; on a 10 MB string
each of them is slow enough to stop the server answering. So the first step of every call is
this check: every length limit of the input model (the shared types of ``dmig.fields`` bound
every string, list and object), plus a budget on each argument's whole tree, refused with
E_INVALID_INPUT naming the field and its limit, in milliseconds. The budget is what a request
line of the MCP transport can carry (``dmig.mcp_stdio.MAX_LINE_BYTES`` is twice it).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from dmig.errors import InvalidInput

MAX_ARGUMENT_CHARS = 2_000_000
MAX_DEPTH = 32
_TOO_LONG = {"string_too_long", "too_long"}


class InputTooLarge(InvalidInput):
    pass


def _size(value: Any, depth: int, budget: int) -> int:
    if depth > MAX_DEPTH:
        raise InputTooLarge(f"the tool input nests deeper than {MAX_DEPTH} levels", limit=MAX_DEPTH)
    if isinstance(value, str):
        return len(value)
    total = 1
    if isinstance(value, dict):
        items = [*value.keys(), *value.values()]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        return total
    for item in items:
        total += _size(item, depth + 1, budget - total)
        if total > budget:
            return total
    return total


def check(model: type[BaseModel], arguments: dict[str, Any]) -> None:
    for name, value in arguments.items():
        if _size(value, 0, MAX_ARGUMENT_CHARS) > MAX_ARGUMENT_CHARS:
            raise InputTooLarge(
                f"{name} is larger than the {MAX_ARGUMENT_CHARS} characters a tool input may hold",
                field=name,
                limit=MAX_ARGUMENT_CHARS,
            )
    try:
        model.model_validate(arguments)
    except ValidationError as exc:
        problems = [
            {
                "field": ".".join(str(p) for p in e["loc"]),
                "problem": e["msg"],
                "limit": (e.get("ctx") or {}).get("max_length"),
            }
            for e in exc.errors(include_url=False, include_input=False)
            if e["type"] in _TOO_LONG
        ]
        if problems:
            raise InputTooLarge(
                f"{problems[0]['field']} is too long: {problems[0]['problem']}", errors=problems
            ) from None
    except Exception:  # other problems are reported by the real validation, after policy resolution
        return


def placeholder(arguments: dict[str, Any]) -> dict[str, Any]:
    """What the audit log records of a refused oversized call: names and sizes, never the content."""
    return {k: f"<{_size(v, 0, MAX_ARGUMENT_CHARS)} chars, refused>" for k, v in arguments.items()}
