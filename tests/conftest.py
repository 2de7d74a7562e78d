"""Shared fixtures: a scratch project, and one private database per test on each real server.

Each database test gets its own database (PostgreSQL, MariaDB) or file (SQLite), dropped
afterwards, so runs never collide, also when pytest-xdist runs several workers at once (names
are random, every path is a tmp_path, no port is fixed). When a server cannot be reached the
test is skipped on a developer machine and FAILS under CI=true: CI must never go green by
skipping the real thing.

Every test that needs a server carries the marker ``pg`` or ``mysql`` (``sqlite`` for a SQLite
file), set at collection from the fixtures and parameters it names, so ``-m pg`` or
``-m "not pg and not mysql"`` select subsets; a test that reaches a server without its marker
fails, which keeps the markers true.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa

PG_ADMIN_URL = os.environ.get("DMIG_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
MYSQL_ADMIN_URL = os.environ.get("DMIG_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
IN_CI = os.environ.get("CI", "").lower() == "true"

_reachable: dict[str, str | None] = {}

# Which marker each way of naming a database in a test means: fixture names, and the parameter values
# tests pass to request.getfixturevalue or to helpers such as policy_helpers.databases.
MARKER_OF = {
    "pg_url": "pg",
    "pg_url2": "pg",
    "postgresql": "pg",
    "postgres": "pg",
    "mysql_url": "mysql",
    "mysql_url2": "mysql",
    "mysql": "mysql",
    "mariadb": "mysql",
    "sqlite_url": "sqlite",
    "sqlite": "sqlite",
}
SERVER_MARKER = {"postgresql": "pg", "mariadb": "mysql"}


def _markers_named(value: object) -> Iterable[str]:
    if isinstance(value, str):
        if value in MARKER_OF:
            yield MARKER_OF[value]
    elif isinstance(value, tuple | list):
        for part in value:
            yield from _markers_named(part)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with the servers it needs, so `-m pg`, `-m mysql`, `-m sqlite` select subsets."""
    for item in items:
        wanted = {MARKER_OF[name] for name in getattr(item, "fixturenames", ()) if name in MARKER_OF}
        callspec = getattr(item, "callspec", None)
        for value in callspec.params.values() if callspec else ():
            wanted.update(_markers_named(value))
        for name in sorted(wanted - {m.name for m in item.iter_markers()}):
            item.add_marker(name)


_current: list[pytest.Item] = []


@pytest.fixture(autouse=True)
def _running_item(request: pytest.FixtureRequest) -> Iterator[None]:
    """The test being run, for the marker check in _need (fixtures and helpers alike make databases)."""
    _current.append(request.node)
    yield
    _current.pop()


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
    marker = SERVER_MARKER[kind]
    if _current and _current[-1].get_closest_marker(marker) is None:
        pytest.fail(
            f"{_current[-1].nodeid} uses {kind} without the '{marker}' marker: add @pytest.mark.{marker} "
            "(or name the server in a fixture or parameter the conftest recognises), so -m selects it"
        )
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


# Dropping a PostgreSQL database costs ~0.15 s (it waits for a checkpoint): one background thread per
# process drops each test's databases while the next test runs; the session waits for every drop
# and fails if one failed, so nothing is left behind unnoticed.
_dropper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dmig-test-drop")
_drops: list[Future[None]] = []


def _drop(admin: sa.Engine, statement: str) -> None:
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(statement))
    finally:
        admin.dispose()


def _drop_later(admin: sa.Engine, statement: str) -> None:
    _drops.append(_dropper.submit(_drop, admin, statement))


def _finish_drops() -> list[str]:
    """Wait for every pending drop; the errors, if any."""
    errors = []
    while _drops:
        exc = _drops.pop().exception()
        if exc is not None:
            errors.append(f"{type(exc).__name__}: {exc}")
    return errors


atexit.register(_finish_drops)  # also when the run is interrupted


@pytest.fixture(scope="session", autouse=True)
def _every_database_dropped() -> Iterator[None]:
    """At the end of the session (of each xdist worker), after the last test's own teardown."""
    yield
    errors = _finish_drops()
    if errors:
        pytest.fail(f"{len(errors)} test database(s) could not be dropped: {errors}")


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
        _drop_later(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
        _drop_later(admin, f"DROP DATABASE IF EXISTS `{name}`")


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
