"""Running the database vendors' own tools (pg_dump, pg_restore, psql, mariadb-dump, mariadb).

Credentials never go on a command line (other users can read it from the process table): the
PostgreSQL tools get them through ``PG*`` environment variables, the MariaDB tools through a
0600 option file in a private temporary folder that is removed afterwards. Tool failures become
``DatabaseError`` with redacted, bounded stderr.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from sqlalchemy.engine import URL

from dmig.errors import DatabaseError, InvalidInput, NotFound
from dmig.redact import redact

PG_TOOLS = ("pg_dump", "pg_restore", "psql")
MARIADB_DUMP = ("mariadb-dump", "mysqldump")
MARIADB_CLIENT = ("mariadb", "mysql")
_PG_QUERY_ENV = {"sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY"}


def find(names: tuple[str, ...]) -> str | None:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


def require(names: tuple[str, ...]) -> str:
    path = find(names)
    if path is None:
        raise NotFound(
            f"{names[0]} is not installed (needed for a native backup on this dialect): install the database "
            "client tools, or use format=portable",
            tool=names[0],
            reason="tool_missing",
        )
    return path


def version(names: tuple[str, ...]) -> str | None:
    path = find(names)
    if path is None:
        return None
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else None


def major_version(text: str | None) -> int | None:
    m = re.search(r"(\d+)(?:\.\d+)?", text or "")
    return int(m.group(1)) if m else None


def pg_env(url: URL, database: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(
        {
            "PGHOST": url.host or "localhost",
            "PGPORT": str(url.port or 5432),
            "PGDATABASE": database or url.database or "postgres",
            "PGCONNECT_TIMEOUT": "10",
            "PGAPPNAME": "dmig-backup",
            "PGOPTIONS": "-c TimeZone=UTC",
        }
    )
    if url.username:
        env["PGUSER"] = url.username
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    for key, var in _PG_QUERY_ENV.items():
        if key in url.query:
            env[var] = str(url.query[key])
    return env


@contextlib.contextmanager
def mariadb_options(url: URL, database: str | None = None) -> Iterator[str]:
    """A private option file for the mariadb tools (the first argument they must be given)."""
    folder = tempfile.mkdtemp(prefix="dmig-my-")
    path = Path(folder) / "client.cnf"
    lines = ["[client]", f"host={_opt(url.host or '127.0.0.1')}", f"port={int(url.port or 3306)}", "protocol=TCP"]
    if url.username:
        lines.append(f"user={_opt(url.username)}")
    if url.password:
        lines.append(f"password={_opt(str(url.password))}")
    lines.append("default-character-set=utf8mb4")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    try:
        yield f"--defaults-extra-file={path}"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


_OPT_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b"}


def _opt(value: str) -> str:
    """Option-file value quoting: double quotes, with the escapes the MariaDB option parser knows.

    A line break must never reach the file as one: a URL password (or user) of ``x<LF>result-file=/p``
    would otherwise add an option line of its own to the tools' [client] group (result-file,
    plugin-dir, init-command...), which mariadb-dump obeys once our own connection has succeeded.
    """
    if "\x00" in value:
        raise InvalidInput("a user name or password holding a NUL character cannot be given to the mariadb tools")
    return '"' + "".join(_OPT_ESCAPES.get(c, c) for c in value) + '"'


def run(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    stdin: IO[bytes] | None = None,
    stdout: IO[bytes] | None = None,
    input_bytes: bytes | None = None,
    what: str,
    timeout: float | None = None,
    **details: Any,
) -> subprocess.CompletedProcess[bytes]:
    try:
        proc = subprocess.run(
            argv,
            env=env,
            stdin=stdin,
            stdout=stdout if stdout is not None else subprocess.PIPE,
            stderr=subprocess.PIPE,
            input=input_bytes,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise DatabaseError(f"{what}: {Path(argv[0]).name} ran past {timeout}s", **details) from None
    except OSError as exc:
        raise DatabaseError(f"{what}: cannot run {Path(argv[0]).name}: {exc}", **details) from None
    if proc.returncode != 0:
        raise DatabaseError(f"{what}: {Path(argv[0]).name} failed: {stderr_text(proc.stderr)}", **details)
    return proc


def stderr_text(data: bytes | None) -> str:
    text = (data or b"").decode("utf-8", errors="replace").strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return redact(" | ".join(lines[-6:]))[:800] or "no error output"
