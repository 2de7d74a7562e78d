"""Shared fixtures: a scratch project, and one private database per test on each real server.

Each database test gets its own database (PostgreSQL, MariaDB) or file (SQLite), dropped
afterwards, so runs never collide. When a server cannot be reached the test is skipped on a
developer machine and FAILS under CI=true: CI must never go green by skipping the real thing.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

PG_ADMIN_URL = os.environ.get("DMIG_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
MYSQL_ADMIN_URL = os.environ.get("DMIG_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
IN_CI = os.environ.get("CI", "").lower() == "true"

_reachable: dict[str, str | None] = {}


def _unreachable(kind: str, admin_url: str) -> str | None:
    """None when reachable, else the reason (cached per session)."""
    if kind not in _reachable:
        try:
            engine = sa.create_engine(admin_url, connect_args={"connect_timeout": 3})
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            engine.dispose()
            _reachable[kind] = None
        except Exception as exc:
            _reachable[kind] = f"{kind} unreachable: {type(exc).__name__}"
    return _reachable[kind]


def _need(kind: str, admin_url: str) -> None:
    reason = _unreachable(kind, admin_url)
    if reason:
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: database tests must not be skipped)")
        pytest.skip(reason)


def _new_name() -> str:
    return f"dmig_t_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session", autouse=True)
def dmig_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The seal key (dmig.seal) of this test run: a session tmp folder, never the user's real data folder.

    Set in os.environ so every `dmig` child (CLI, `dmig serve` via tests/mcp_client.py) signs and
    checks with the same key as the test process.
    """
    folder = tmp_path_factory.mktemp("dmig-data")
    saved = os.environ.get("DMIG_DATA_DIR")
    os.environ["DMIG_DATA_DIR"] = str(folder)
    yield folder
    if saved is None:
        os.environ.pop("DMIG_DATA_DIR", None)
    else:
        os.environ["DMIG_DATA_DIR"] = saved


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'test.db'}"


def _pg_database() -> Iterator[str]:
    _need("postgresql", PG_ADMIN_URL)
    name = _new_name()
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(PG_ADMIN_URL).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _mysql_database() -> Iterator[str]:
    _need("mariadb", MYSQL_ADMIN_URL)
    name = _new_name()
    admin = sa.create_engine(MYSQL_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
    url = sa.make_url(MYSQL_ADMIN_URL).set(database=name, query={"charset": "utf8mb4"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from _pg_database()


@pytest.fixture
def pg_url2() -> Iterator[str]:
    """A second PostgreSQL database, for source/target pairs."""
    yield from _pg_database()


@pytest.fixture
def mysql_url() -> Iterator[str]:
    yield from _mysql_database()


@pytest.fixture
def mysql_url2() -> Iterator[str]:
    yield from _mysql_database()


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same test once per dialect."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'param.db'}"
    elif request.param == "postgresql":
        yield from _pg_database()
    else:
        yield from _mysql_database()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A scratch git repository to act as the user's AgileFlow project."""
    root = tmp_path / "project"
    root.mkdir()
    git = ["git", "-c", "user.name=dmig-test", "-c", "user.email=dmig@test.invalid"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    (root / "README.md").write_text("scratch project\n")
    subprocess.run([*git, "-C", str(root), "add", "."], check=True)
    subprocess.run([*git, "-C", str(root), "commit", "-q", "-m", "init"], check=True)
    return root
