"""The demo's three databases and how the server reaches them.

- **source**: the application's database as it is today (users with ``user_name``, orders). By
  default the demo generates it as a SQLite file; ``--source`` names an existing one instead. The
  story only ever reads it, so it stays the pre-migration state every later diff compares with.
- **target**: the database the application moves to. The copy engine fills it with users and
  orders, and the migration reshapes users there. Default: a second SQLite file; ``--target``
  names a PostgreSQL or MariaDB database (it must not hold users/orders yet).
- **drill**: a scratch database of the target's dialect for the rollback drill (which also
  measures the learning). For SQLite a file in the project; on a server a fresh
  ``dmig_verify_drill_<hex>`` database next to the target, made by the same helper verify_backup
  uses for its scratch restores and dropped when the demo ends, whatever happens.

The server process gets the three URLs as environment variables and every tool call names them
as ``env:`` references, so no password ever passes through the MCP conversation.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL

from dmig.backup.scratch import scratch
from dmig.db.urls import dialect_of, display_url, parse_url
from dmig.errors import InvalidInput

SOURCE_ENV, TARGET_ENV, DRILL_ENV = "DMIG_SOURCE_URL", "DMIG_TARGET_URL", "DMIG_DRILL_URL"
SOURCE, TARGET, DRILL = f"env:{SOURCE_ENV}", f"env:{TARGET_ENV}", f"env:{DRILL_ENV}"


@dataclass(frozen=True)
class Databases:
    source: URL
    target: URL
    drill: URL
    generated_source: bool

    @property
    def dialect(self) -> str:
        return dialect_of(self.target)

    def env(self) -> dict[str, str]:
        """What the server process is started with: the real URLs, passwords included, never echoed."""
        return {
            SOURCE_ENV: self.source.render_as_string(hide_password=False),
            TARGET_ENV: self.target.render_as_string(hide_password=False),
            DRILL_ENV: self.drill.render_as_string(hide_password=False),
        }

    def describe(self) -> str:
        return f"source {display_url(self.source)} -> target {display_url(self.target)}"


def sqlite_url(path: Path) -> URL:
    return parse_url(f"sqlite:///{path}")


def _same(a: URL, b: URL) -> bool:
    return a.render_as_string(hide_password=True) == b.render_as_string(hide_password=True)


@contextlib.contextmanager
def databases(data_dir: Path, source: str | None, target: str | None) -> Iterator[Databases]:
    """Resolve the three databases; a drill database created on a server is dropped on the way out."""
    src = parse_url(source) if source else sqlite_url(data_dir / "app.db")
    tgt = parse_url(target) if target else sqlite_url(data_dir / "app-v2.db")
    if _same(src, tgt):
        raise InvalidInput("--source and --target name the same database: the target must be a different one")
    if dialect_of(tgt) == "sqlite":
        drill = data_dir / "drill.db"
        drill.unlink(missing_ok=True)
        sqlite3.connect(drill).close()  # restore_backup wants an existing file, as it wants an existing database
        yield Databases(src, tgt, sqlite_url(drill), generated_source=source is None)
        return
    with scratch(dialect_of(tgt), tgt, "demo-drill", need_database=True) as (made, _description):
        yield Databases(src, tgt, made.url, generated_source=source is None)
