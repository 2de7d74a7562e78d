"""Text from databases and files, made harmless to show: control and bidi characters made visible.

Table names, column names, row values, comments and file contents may be hostile. Printed raw,
``ESC[2J`` clears the user's terminal, ``ESC]0;...BEL`` retitles the window, a CR rewrites the
start of a line and U+202E reverses what follows, so a human (or an agent reading a rendered
result) sees something other than what is there. ``visible`` turns every such character into
its escaped spelling (``\\x1b``, ``\\r``, ``\\u202e``): the text stays readable and nothing in it
acts on the terminal. Newline and tab are kept (they lay out multi-line output and are inert).

The CLI passes every human line it prints through ``visible`` (one place, whatever the tool) and
every ``--json`` text through ``json_text`` (json.dumps escapes C0 itself, not DEL, C1 or bidi).
Row values in structured results (diff, validate samples) go through ``visible`` too, inside
results labelled as untrusted data (``dmig.models.UNTRUSTED_NOTE``).
"""

from __future__ import annotations

import re

# C0 controls but TAB and LF; DEL; C1 controls; bidi marks, embeddings, overrides and isolates;
# line/paragraph separators (some renderers break lines on them).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\r": "\\r", "\x0b": "\\v", "\x0c": "\\f", "\x00": "\\x00"}


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    named = _NAMED.get(ch)
    if named:
        return named
    code = ord(ch)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` with every terminal-active or direction-changing character spelled out."""
    return _UNSAFE.sub(_escape, text) if _UNSAFE.search(text) else text


def has_unsafe(text: str) -> bool:
    return _UNSAFE.search(text) is not None


def json_text(text: str) -> str:
    """JSON text with DEL, C1 and bidi characters as \\uXXXX escapes (same JSON value, inert bytes)."""
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
