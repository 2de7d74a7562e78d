"""The stdio transport of ``dmig serve``, with a bound on every request line (issue 12.9).

The SDK's ``stdio_server`` reads stdin a whole line at a time, however long: a 10 MB request
was held several times over (bytes, text, parsed JSON) and a line without a newline was
buffered until one came, while a line that was not JSON got no answer at all. Here the wire is
read in chunks from a private copy of fd 0, and each line is checked before the SDK sees it:

- longer than ``MAX_LINE_BYTES``: discarded as it streams in (never held whole) and answered
  with a JSON-RPC error (-32600): at once when the request's id leads the line, else when the
  line ends, with the id if it closes the line (else ``null``); the server reads on after it;
- not JSON (-32700) or not a JSON-RPC message (-32600): answered, not passed on;
- anything else: handed to the SDK unchanged.

So the server stays alive and answers the next request, and its memory stays bounded by one line.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio
import anyio.to_thread
import mcp_types as types
from mcp.server import MCPServer
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

log = logging.getLogger("dmig.mcp")

# Twice the largest tool argument dmig.bounds admits (2 million characters), which leaves room for
# JSON escapes and multi-byte UTF-8 in a legitimate request; the same 4 MiB the SDK's HTTP transport
# allows a request body (mcp.server.transport_security.DEFAULT_MAX_REQUEST_BODY_SIZE).
MAX_LINE_BYTES = 4 * 1024 * 1024  # tests/test_security_limits.py keeps it >= 2 x bounds.MAX_ARGUMENT_CHARS

_CHUNK = 64 * 1024
_HEAD = 4096  # bytes of an oversized line kept to find its id
# Where clients write a request's id: the first member, or after "jsonrpc" (the Python SDK), or the last member
# (the TypeScript SDK). Only the top-level object's: at the end, a single "}" may follow it.
_ID = rb'"id"\s*:\s*(-?\d{1,18}|"[^"\\]{0,256}")'
_ID_AT_START = re.compile(rb'\s*\{\s*(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?' + _ID + rb"\s*[,}]")
_ID_AT_END = re.compile(rb"[,{]\s*" + _ID + rb"\s*\}\s*$")

Reply = Callable[[SessionMessage], Awaitable[None]]


def _id_at_start(head: bytes) -> int | str | None:
    match = _ID_AT_START.match(head)
    return None if match is None else json.loads(match.group(1))


def _id_at_end(tail: bytes) -> int | str | None:
    match = _ID_AT_END.search(tail)
    return None if match is None else json.loads(match.group(1))


def _id_of(line: bytes) -> int | str | None:
    """The id of a line that is valid JSON but not a valid message (None unless an int or a str)."""
    try:
        value = json.loads(line).get("id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int | str) and not isinstance(value, bool) else None


def _problem(line: bytes) -> tuple[int, str, int | str | None] | None:
    """Why the SDK would drop this line without an answer (code, message, id), or None if it is a message."""
    try:
        types.jsonrpc_message_adapter.validate_json(line, by_name=False)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors(include_url=False, include_input=False)):
            return types.PARSE_ERROR, "Parse error: the request line is not valid JSON", _id_at_start(line[:_HEAD])
        return types.INVALID_REQUEST, "Invalid Request: not a JSON-RPC 2.0 message", _id_of(line)
    return None


class BoundedLines:
    """The request lines read from a file descriptor, as the SDK's stdio reader iterates them (text).

    At most ``limit + _CHUNK`` bytes are buffered at any time; refused lines are answered through
    the reply function given to ``answer_with`` (the transport's write stream).
    """

    def __init__(self, fd: int, limit: int = MAX_LINE_BYTES) -> None:
        self._fd = fd
        self._limit = limit
        self._buf = bytearray()
        self._scanned = 0  # bytes of _buf already searched for a newline
        self._reply: Reply | None = None
        self._can_reply = anyio.Event()

    def answer_with(self, reply: Reply) -> None:
        self._reply = reply
        self._can_reply.set()

    def __aiter__(self) -> BoundedLines:
        return self

    async def __anext__(self) -> str:
        while True:
            line = await self._next_line()
            if line is None:
                raise StopAsyncIteration
            if not line.strip():
                continue  # a blank line is no message; the SDK would drop it too
            problem = _problem(line)
            if problem is None:
                return line.decode("utf-8", errors="replace")
            await self._answer(*problem)

    async def _read(self) -> bytes:
        return await anyio.to_thread.run_sync(os.read, self._fd, _CHUNK, abandon_on_cancel=True)

    async def _next_line(self) -> bytes | None:
        """The next line within the limit (without its newline); None at end of input."""
        while True:
            newline = self._buf.find(b"\n", self._scanned)
            if newline != -1 and newline <= self._limit:
                line = bytes(self._buf[:newline])
                del self._buf[: newline + 1]
                self._scanned = 0
                return line
            if newline != -1 or len(self._buf) > self._limit:
                await self._skip_oversized()
                continue
            self._scanned = len(self._buf)
            chunk = await self._read()
            if not chunk:  # end of input: a last line without a newline is still a line (as for the SDK)
                line, self._buf, self._scanned = bytes(self._buf), bytearray(), 0
                return line or None
            self._buf += chunk

    async def _skip_oversized(self) -> None:
        """Answer the oversized line and drop it through its newline, chunk by chunk (the buffer never grows).

        When the id leads the line the answer goes at once (a sender without a newline may be waiting for it);
        else it goes when the line ends, with the id if it closes the line (the TypeScript SDK writes it last).
        """
        log.warning("refused a request line of more than %d bytes", self._limit)
        request_id = _id_at_start(bytes(self._buf[:_HEAD]))
        if request_id is not None:
            await self._refuse_oversized(request_id)
        tail = b""
        while True:
            newline = self._buf.find(b"\n")
            if newline != -1:
                tail = (tail + bytes(self._buf[max(0, newline - _HEAD) : newline]))[-_HEAD:]
                del self._buf[: newline + 1]
                break
            tail = (tail + bytes(self._buf[-_HEAD:]))[-_HEAD:]
            self._buf.clear()
            chunk = await self._read()
            if not chunk:
                break
            self._buf += chunk
        self._scanned = 0
        if request_id is None:
            await self._refuse_oversized(_id_at_end(tail))

    async def _refuse_oversized(self, request_id: int | str | None) -> None:
        await self._answer(
            types.INVALID_REQUEST,
            f"Invalid Request: the request line is longer than {self._limit} bytes; refused",
            request_id,
            {"code": "E_INVALID_INPUT", "limit_bytes": self._limit},
        )

    async def _answer(self, code: int, message: str, request_id: int | str | None, data: Any = None) -> None:
        await self._can_reply.wait()
        assert self._reply is not None
        error = types.JSONRPCError(
            jsonrpc="2.0", id=request_id, error=types.ErrorData(code=code, message=message, data=data)
        )
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            await self._reply(SessionMessage(error))


@contextlib.contextmanager
def _wire_stdin() -> Iterator[int]:
    """The wire moved off fd 0 to a private descriptor, with /dev/null on fd 0 while serving.

    What the SDK does for its own reader: a child process (the test command ``verify`` runs)
    then reads end of input instead of swallowing requests. The private descriptor is left open
    at the end, since a worker thread may still be blocked reading it.
    """
    wire = os.dup(0)
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(null, 0)
    finally:
        os.close(null)
    try:
        yield wire
    finally:
        os.dup2(wire, 0)


async def serve_stdio(server: MCPServer) -> None:
    """``MCPServer.run_stdio_async`` with the bounded reader in front of the SDK's own transport."""
    with _wire_stdin() as wire:
        lines = BoundedLines(wire)
        async with stdio_server(stdin=lines) as (read_stream, write_stream):  # type: ignore[arg-type]
            lines.answer_with(write_stream.send)
            lowlevel = server._lowlevel_server
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
