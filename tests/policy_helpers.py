"""Helpers for the policy tests: a policy with a writable app, a writable production and a read-only
production database; databases on one real server; plain catalog reads that check the effect."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from conftest import _mysql_database, _pg_database
from dmig.context import RunContext
from dmig.errors import DmigError
from dmig.registry import all_tools, run_tool

TOOLS = {t.name: t for t in all_tools()}
POLICY_FILE = Path("docs") / "00-meta" / "dmig-policy.yaml"

STRICT = """\
version: 1
allow_ad_hoc_urls: false
databases:
  app:  {env: APP_URL, writable: true}
  live: {env: LIVE_URL, writable: true, production: true, max_backup_age: 24h}
  prod: {env: PROD_URL, writable: false, production: true, max_backup_age: 24h}
"""
LENIENT = STRICT.replace("allow_ad_hoc_urls: false", "allow_ad_hoc_urls: true")


def write_policy(project: Path, text: str | bytes) -> Path:
    path = project / POLICY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@contextlib.contextmanager
def databases(kind: str, n: int) -> Iterator[list[str]]:
    """n fresh databases on one real server (dropped afterwards)."""
    make = _pg_database if kind == "postgresql" else _mysql_database
    gens = [make() for _ in range(n)]
    urls: list[str] = []
    try:
        for g in gens:
            urls.append(next(g))
        yield urls
    finally:
        for g in gens[: len(urls)]:
            with contextlib.suppress(StopIteration):
                next(g)


def respelled(url: str) -> str:
    """The same database written differently: another scheme spelling, localhost, default port, a password."""
    u = sa.make_url(url)
    if u.drivername.startswith("postgresql"):
        return f"postgres://{u.username}:not-checked-by-trust@localhost/{u.database}"
    return f"mariadb://{u.username}@localhost:{u.port or 3306}/{u.database}"


def schema(url: str) -> list[tuple[str, str]]:
    """(table, column) of every user table, read straight from the catalog (not through dmig)."""
    eng = sa.create_engine(url)
    where = "'public'" if eng.dialect.name == "postgresql" else "DATABASE()"
    try:
        with eng.connect() as conn:
            return [
                (r[0], r[1])
                for r in conn.execute(
                    sa.text(
                        "SELECT table_name, column_name FROM information_schema.columns "
                        f"WHERE table_schema = {where} ORDER BY 1, 2"
                    )
                )
            ]
    finally:
        eng.dispose()


def tool(project: Path, name: str, args: dict[str, Any]) -> Any:
    return run_tool(TOOLS[name], args, RunContext(project_dir=project))


def refused(fn: Callable[[], Any]) -> tuple[str, str, float]:
    """(error code, message, seconds) of a call that must fail."""
    started = time.monotonic()
    with pytest.raises(DmigError) as info:
        fn()
    return info.value.code, info.value.message, time.monotonic() - started


def write_yaml(project: Path, rel: str, data: Any) -> str:
    path = project / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return rel


def files(root: Path) -> dict[str, float]:
    """Every file under root (outside .git) with its mtime: to prove a refused call wrote nothing."""
    return {
        str(p.relative_to(root)): p.lstat().st_mtime
        for p in root.rglob("*")
        if ".git" not in p.relative_to(root).parts and (p.is_file() or p.is_symlink())
    }
