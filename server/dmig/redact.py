"""Credential masking for every string that leaves the process.

Passwords reach us inside database URLs (``scheme://user:pw@host``), as key/value pairs
(``?password=``, ``PGPASSWORD=``, ``"api_key": "..."``), or as the values of environment
variables that a URL reference (``env:NAME``) resolved. Every output path (tool results,
errors, files, bus, logs) passes through ``redact``; secrets seen once are remembered for the
life of the process, in every spelling they can take on the way out (raw, percent-encoded with
``%20`` or ``+``, decoded, JSON- and HTML-escaped), so that a password echoed back by a driver
error, a test command or the agent's own text is masked too, even where it is not URL-shaped.

``redact`` is linear in the length of its input: it runs on every call's output, on whole
files before they are written and on test-command output, and a quadratic pattern there lets
one long string stall the server for every other call. So there is no backtracking regex
over unbounded runs: URLs are found by the literal ``://`` and measured with ``str.find``,
key/value pairs by a pattern whose only unbounded parts are possessive in effect (each run
is scanned once), and known secrets with C-speed substring search. All masks are collected as
intervals of the original text and merged, so overlapping findings never leave a fragment.
"""

from __future__ import annotations

import html
import json
import re
import threading
from typing import Any
from urllib.parse import quote, quote_plus, unquote, unquote_plus

MASK = "***"
MIN_SECRET = 4  # shorter values would mask ordinary words and numbers everywhere
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
# Where a URL written inside other text ends: whitespace, quotes and angle brackets (JSON, HTML,
# Markdown code). A password containing one of these is found by its remembered value instead.
_URL_END = re.compile(r"[\s\"'<>`]")
# Key names whose value is a credential, lower case. Found with str.find in a lower-cased copy (a
# case-insensitive regex tried at every position costs ~80 ns a character).
_KEY_WORDS = (
    "password", "passwd", "pwd", "secret", "apikey", "api_key", "api-key",
    "access_key", "access-key", "private_key", "private-key", "credential",
)  # fmt: skip
# Key names matched only as a whole word: "token=..." is a credential, "confirm_token" (the restore and
# prune confirmations a user must see) is not.
_WHOLE_WORDS = ("token",)
# After the key: optional closing quote of a JSON/YAML key, separator, optional opening quote, value.
# Horizontal whitespace only: "password:\n  next: 1" must not eat the next key.
_AFTER_KEY = re.compile(r"s?[\"']?[ \t]*[=:][ \t]*[\"']?(?P<val>[^&\s;,'\"]+)")
_SECRET_KEY_NAME = re.compile(
    r"(?i)^[\w.-]*(?:passw(?:or)?d|pwd|secret|api[_-]?key|access[_-]?key|private[_-]?key|credentials?)$"
)
_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}
_PERCENT = re.compile(r"%[0-9A-F]{2}")

_known: set[str] = set()
_variants: tuple[str, ...] = ()
_lock = threading.Lock()


def _spellings(value: str) -> set[str]:
    """Every form the value can take in text we write or return."""
    forms = {value, unquote(value), unquote_plus(value)}
    for base in list(forms):
        forms |= {quote(base, safe=""), quote(base), quote_plus(base, safe=""), quote_plus(base)}
    forms |= {_PERCENT.sub(lambda m: m[0].lower(), f) for f in forms if "%" in f}
    for base in list(forms):
        forms |= {json.dumps(base)[1:-1], json.dumps(base, ensure_ascii=False)[1:-1], html.escape(base)}
    return {f for f in forms if len(f) >= MIN_SECRET}


def remember_secret(value: str | None) -> None:
    """Mask this value (in all its spellings) wherever it appears from now on (short values are too risky)."""
    global _variants
    if not value or len(value) < MIN_SECRET:
        return
    with _lock:
        if value in _known:
            return
        _known.add(value)
        # Longest first: when two spellings overlap, the merge below masks their union anyway.
        _variants = tuple(sorted(set(_variants) | _spellings(value), key=len, reverse=True))


def known_secret_count() -> int:
    return len(_known)


def longest_secret() -> int:
    """The longest spelling remembered (callers that cut text keep this much margin before masking)."""
    current = _variants
    return len(current[0]) if current else 0


def _url_passwords(text: str, spans: list[tuple[int, int]]) -> None:
    """The password part of every ``scheme://user:password@`` (up to the LAST '@' of the URL)."""
    find = text.find
    end_of = _URL_END.search
    pos = find("://")
    token_end = last_at = -1
    while pos >= 0:
        after = pos + 3
        if pos > 0 and text[pos - 1] in _SCHEME_CHARS:
            if after > token_end:  # a new whitespace-delimited token: measure it once
                m = end_of(text, after)
                token_end = m.start() if m else len(text)
                last_at = text.rfind("@", after, token_end)
            if last_at > after:
                colon = find(":", after, last_at)
                if colon >= 0 and colon + 1 < last_at and find("/", after, colon) < 0:
                    spans.append((colon + 1, last_at))
        pos = find("://", after)


def _key_values(text: str, spans: list[tuple[int, int]]) -> None:
    """The value of every ``password=...``, ``PGPASSWORD=...``, ``"api_key": "..."``, ``secret: ...``."""
    lowered = text.lower()
    if len(lowered) != len(text):  # a character whose lower case is longer: keep indexes aligned
        lowered = text.translate(_ASCII_LOWER)
    hits: list[int] = []
    for word in _KEY_WORDS + _WHOLE_WORDS:
        size, whole = len(word), word in _WHOLE_WORDS
        pos = lowered.find(word)
        while pos >= 0:
            if not (whole and pos and (lowered[pos - 1].isalnum() or lowered[pos - 1] == "_")):
                hits.append(pos + size)
            pos = lowered.find(word, pos + 1)
    match = _AFTER_KEY.match
    covered = 0
    for pos in sorted(hits):
        if pos < covered:  # inside a value already masked: each stretch of text is scanned once
            continue
        m = match(text, pos)
        if m:
            covered = m.end()
            if m["val"] != MASK:
                spans.append(m.span("val"))


def _known_secrets(text: str, spans: list[tuple[int, int]]) -> None:
    find = text.find
    for secret in _variants:
        if secret not in text:
            continue
        size = len(secret)
        pos = find(secret)
        while pos >= 0:
            spans.append((pos, pos + size))
            pos = find(secret, pos + 1)


def redact(text: str) -> str:
    """``text`` with every credential replaced by ``***``; linear in ``len(text)``."""
    if not text or not isinstance(text, str):
        return text
    spans: list[tuple[int, int]] = []
    if "://" in text:
        _url_passwords(text, spans)
    _key_values(text, spans)
    _known_secrets(text, spans)
    if not spans:
        return text
    spans.sort()
    out: list[str] = []
    done = 0
    cur_start, cur_end = spans[0]
    for start, end in spans[1:]:
        if start <= cur_end:
            cur_end = max(cur_end, end)
            continue
        out += (text[done:cur_start], MASK)
        done = cur_end
        cur_start, cur_end = start, end
    out += (text[done:cur_start], MASK, text[cur_end:])
    return "".join(out)


def is_secret_key(key: Any) -> bool:
    """A mapping key whose value is a credential by name (``password``, ``DB_PASSWORD``, ``api_key``...)."""
    return isinstance(key, str) and len(key) <= 80 and bool(_SECRET_KEY_NAME.match(key))


def redact_obj(obj: Any) -> Any:
    """Redact every string inside a JSON-like structure; a string under a credential key is masked whole.

    Masking the object before it is serialised is what keeps structured files intact: the mask
    lands inside a string, whatever quoting or escaping the serialiser then applies to it.
    """
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {k: (MASK if is_secret_key(k) and isinstance(v, str) and v else redact_obj(v)) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact_obj(v) for v in obj]
    return obj
