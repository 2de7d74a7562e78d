"""What the connections of the current tool call may do: read-only sessions and SQLite folders.

Every engine is built by ``dmig.db.engine.create``; this module holds the one decision it applies,
set once per tool call by ``dmig.registry.run_tool`` (so no service function can forget it):

* ``read_only``: true for a read-only tool (inspect, validate, diff, health, lint, migration
  status: a tool that reads has no business writing) and for every tool of a server started with
  ``--read-only``. Each connection is then read-only **at the server**, so no input can write even
  where a check above was missed: PostgreSQL ``default_transaction_read_only=on`` as a connect
  option, MySQL/MariaDB ``SET SESSION TRANSACTION READ ONLY`` on connect and again on every
  checkout (a tool that set it back to READ WRITE cannot leak that to the next user of the pooled
  connection), SQLite ``mode=ro`` in a URI we build, with ATTACH (and so ``VACUUM INTO``) disabled.
* ``sqlite_roots``: the folders a SQLite file may be in, or None for anywhere. The MCP server (the
  agent, whose inputs may be hostile) is confined to the project folder plus the folders listed in
  ``DMIG_ALLOWED_DIRS`` (``os.pathsep``-separated); symlinks are resolved before the check, and ATTACH
  / ``VACUUM INTO`` are held to the same folders. The CLI is not confined: a human typing a path to
  their own file is the legitimate use, and the agent reaching the CLI goes through the client's own
  permission prompt for shell commands.

Threads a service starts do not inherit the call's context; engines are therefore created in the
calling thread (and carry their settings with them), which is how every read-only tool works.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, replace
from pathlib import Path

from dmig.errors import PathOutsideProject

ENV_ALLOWED_DIRS = "DMIG_ALLOWED_DIRS"


@dataclass(frozen=True)
class Access:
    read_only: bool = False
    sqlite_roots: tuple[Path, ...] | None = None  # None: SQLite files anywhere

    def sqlite_path(self, database: str) -> Path:
        """The file SQLite will open (absolute, symlinks resolved), refused when outside the roots."""
        path = Path(database).expanduser()
        resolved = (path if path.is_absolute() else Path.cwd() / path).resolve()
        if self.sqlite_roots is not None and not _inside(resolved, self.sqlite_roots):
            raise PathOutsideProject(
                f"SQLite file {database} resolves to {resolved}, outside the project folder and the allowed "
                f"folders ({', '.join(str(r) for r in self.sqlite_roots)}); move it into the project or add "
                f"its folder to {ENV_ALLOWED_DIRS} in the environment that starts dmig",
                path=database,
                resolved=str(resolved),
                allowed=[str(r) for r in self.sqlite_roots],
                reason="sqlite_outside_allowed_dirs",
            )
        return resolved

    def guard_sqlite(self, dbapi_conn: sqlite3.Connection) -> None:
        """Hold ATTACH (and VACUUM INTO, which attaches its output) to the same rules as the main file."""
        if self.read_only:
            dbapi_conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        if self.sqlite_roots is None:
            return
        roots = self.sqlite_roots

        def authorize(action: int, arg1: str | None, *_rest: object) -> int:
            if action != sqlite3.SQLITE_ATTACH or arg1 in (None, "", ":memory:"):
                return sqlite3.SQLITE_OK
            if arg1.lower().startswith("file:"):
                return sqlite3.SQLITE_DENY
            target = Path(arg1)
            target = (target if target.is_absolute() else Path.cwd() / target).resolve()
            return sqlite3.SQLITE_OK if _inside(target, roots) else sqlite3.SQLITE_DENY

        dbapi_conn.set_authorizer(authorize)


def _inside(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path == root or root in path.parents for root in roots)


_DEFAULT = Access()  # frozen: writable sessions, SQLite anywhere (direct service calls, the CLI)
_current: ContextVar[Access | None] = ContextVar("dmig_db_access", default=None)


def current() -> Access:
    return _current.get() or _DEFAULT


@contextlib.contextmanager
def scope(access: Access) -> Iterator[Access]:
    token = _current.set(access)
    try:
        yield access
    finally:
        _current.reset(token)


def allowed_dirs() -> tuple[Path, ...]:
    """The extra folders of ``DMIG_ALLOWED_DIRS`` (set by the human who starts the server)."""
    raw = os.environ.get(ENV_ALLOWED_DIRS, "")
    return tuple(Path(part).expanduser().resolve() for part in raw.split(os.pathsep) if part.strip())


def for_call(*, read_only: bool, project_dir: Path, confine: bool) -> Access:
    roots = (Path(project_dir).resolve(), *allowed_dirs()) if confine else None
    return Access(read_only=read_only, sqlite_roots=roots)


@contextlib.contextmanager
def trusted_folder(folder: Path) -> Iterator[None]:
    """A folder dmig made itself (a scratch restore in the temp folder) may hold SQLite files too."""
    acc = current()
    if acc.sqlite_roots is None:
        yield
        return
    with scope(replace(acc, sqlite_roots=(*acc.sqlite_roots, Path(folder).resolve()))):
        yield
