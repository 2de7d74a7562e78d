"""The environment variables this process has been told hold a database URL (``env:NAME`` and friends).

A URL given as ``env:PROD_URL`` keeps the password out of the chat, but the variable still sits in the
server's environment, and a test command that prints ``env`` would hand it back. ``dmig.db.urls``
records every name it expands here, whatever the name looks like, so the test command's environment
(``dmig.harness.testenv``) can drop exactly those variables, including innocently named ones.
"""

from __future__ import annotations

import threading

_MAX_NAMES = 10_000
_names: set[str] = set()
_lock = threading.Lock()


def remember(name: str) -> None:
    with _lock:
        if len(_names) < _MAX_NAMES:
            _names.add(name)


def names() -> frozenset[str]:
    with _lock:
        return frozenset(_names)
