"""LOAD DATA LOCAL INFILE only for the copy's own file: a MySQL server must not pick what we send.

With ``LOAD DATA LOCAL`` the *server* names the file the client must upload, and PyMySQL reads
whatever name comes back: a hostile ``mysql://`` server answered a plain ``SELECT 1`` of
``inspect`` with a request for ``/etc/passwd`` and received it. So:

* every connection is opened without the capability (``local_infile=False``), except those of an
  engine built for bulk loading (``create(..., local_infile=True)``, the copy's target);
* even there PyMySQL's own switch stays off between loads: ``allow_file`` turns it on for one
  statement and names the one file that statement may send;
* PyMySQL's sender is wrapped once per process so that any other name is refused (nothing is read,
  the server gets an empty upload and the statement fails with an OperationalError naming the file).

If PyMySQL ever stops having the hook we wrap, ``available()`` is false and the copy falls back to
INSERTs: slower, never unsafe.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any

_ALLOWED = "_dmig_local_file"
_lock = threading.Lock()
_installed: bool | None = None
_CR_UNKNOWN_ERROR = 2000


def install() -> bool:
    """Wrap PyMySQL's local-file sender (idempotent); False when it cannot be wrapped."""
    global _installed
    with _lock:
        if _installed is not None:
            return _installed
        try:
            from pymysql import connections, err
        except ImportError:
            _installed = False
            return False
        original = getattr(connections, "_send_local_file", None)
        if original is None or not callable(original):
            _installed = False
            return False

        def send_only_the_allowed_file(filename: Any, conn: Any) -> Any:
            allowed = getattr(conn, _ALLOWED, None)
            asked = os.fsencode(filename) if isinstance(filename, str) else bytes(filename)
            if allowed is None or asked != allowed:
                raise err.OperationalError(
                    _CR_UNKNOWN_ERROR,
                    f"the server asked for local file {asked.decode('utf-8', 'replace')!r}, which this "
                    "connection did not offer; nothing was sent",
                )
            return original(filename, conn)

        connections._send_local_file = send_only_the_allowed_file  # type: ignore[attr-defined]
        _installed = True
        return True


def available() -> bool:
    return install()


def disable(dbapi_conn: Any) -> None:
    """Between loads (and on every connection of every other engine) PyMySQL refuses LOCAL requests."""
    dbapi_conn._local_infile = False
    setattr(dbapi_conn, _ALLOWED, None)


def capable(dbapi_conn: Any) -> bool:
    """Was the connection opened with the LOCAL_FILES capability (so the server will accept LOCAL)?"""
    from pymysql.constants import CLIENT

    return bool(getattr(dbapi_conn, "client_flag", 0) & CLIENT.LOCAL_FILES) and available()


@contextlib.contextmanager
def allow_file(dbapi_conn: Any, path: str) -> Iterator[None]:
    """For the statements inside: the server may ask for ``path`` and nothing else."""
    if not available():
        raise RuntimeError("PyMySQL's local-file sender could not be restricted; LOAD DATA LOCAL is disabled")
    dbapi_conn._local_infile = True
    setattr(dbapi_conn, _ALLOWED, os.fsencode(path))
    try:
        yield
    finally:
        disable(dbapi_conn)
