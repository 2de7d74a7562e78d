"""Credential masking for every string that leaves the process.

Passwords reach us inside database URLs (``scheme://user:pw@host``), as query parameters
(``?password=``), or as the values of environment variables that a URL reference
(``env:NAME``) resolved. Every output path (tool results, errors, files, bus, logs) passes
through ``redact``; secrets seen once are remembered for the life of the process so that a
password echoed back by a driver error is masked too.
"""

from __future__ import annotations

import re
import threading
from typing import Any

MASK = "***"

_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^\s]*)@")
_QUERY_SECRET = re.compile(
    r"(?i)(?P<key>\b(?:password|passwd|pwd|secret|token|api[_-]?key|sslpassword)\s*[=:]\s*)(?P<val>[^&\s;,'\"]+)"
)

_known: set[str] = set()
_lock = threading.Lock()


def remember_secret(value: str | None) -> None:
    """Mask this exact value wherever it appears from now on (short values are too risky to mask)."""
    if value and len(value) >= 4:
        with _lock:
            _known.add(value)


def redact(text: str) -> str:
    if not text:
        return text
    out = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    out = _QUERY_SECRET.sub(lambda m: f"{m['key']}{MASK}", out)
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for secret in known:
        out = out.replace(secret, MASK)
    return out


def redact_obj(obj: Any) -> Any:
    """Redact every string inside a JSON-like structure."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {k: redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact_obj(v) for v in obj]
    return obj
