"""No name reaches a client program's argv as an option (issue 12.5).

Tables, schemas and databases named like options of pg_dump, pg_restore, mariadb-dump and the
mariadb client (``--result-file=<path>``, ``-f<path>``, ``--file=<path>``...) or like a libpq
connection string (``host=... dbname=...``) go through native backup, verify, restore and copy.
Each must work (the name is a name) or fail with a structured error; no file may appear at the
paths the names point to, nor in the working folder, and the data restored must be the data taken.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from backup_helpers import root, take, verify
from conftest import MYSQL_ADMIN_URL, PG_ADMIN_URL, _need
from copy_helpers import run_copy
from dmig.backup import service
from dmig.errors import DmigError

ROWS = [{"id": i, "v": f"row {i}"} for i in range(1, 6)]


@pytest.fixture
def outside() -> Iterator[Path]:
    """A short folder outside the project the hostile names point into (names are at most 63 bytes)."""
    folder = Path("/tmp") / f"dmig-argv-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    yield folder
    for p in sorted(folder.rglob("*"), reverse=True):
        p.unlink() if not p.is_dir() else p.rmdir()
    folder.rmdir()


def hostile_names(out: Path) -> dict[str, str]:
    return {
        "result_file": f"--result-file={out}/a.sql",
        "short_f": f"-f{out}/b",
        "file": f"--file={out}/c",
        "short_r": f"-r{out}/d",
        "tab_file": f"--tab={out}",
        "log_file": f"--log-file={out}/e",
        "conninfo": f"host={out} dbname=x",
        "conninfo_quoted": f"x' host='{out}",
        "uri": f"postgresql:///x?host={out}",
        "dash": "-",
        "double_dash": "--",
    }


NAME_KEYS = sorted(hostile_names(Path("/x")))


def _no_stray_files(out: Path, cwd: Path, before: set[str]) -> None:
    assert list(out.iterdir()) == [], list(out.iterdir())
    assert {p.name for p in cwd.iterdir()} == before


def _q(dialect: str, name: str) -> str:
    return f"`{name.replace('`', '``')}`" if dialect == "mysql" else '"' + name.replace('"', '""') + '"'


def _make_table(url: str, table: str, schema: str | None = None) -> None:
    eng = sa.create_engine(url)
    dialect = "mysql" if eng.dialect.name in ("mysql", "mariadb") else eng.dialect.name
    full = f"{_q(dialect, schema)}.{_q(dialect, table)}" if schema else _q(dialect, table)
    with eng.begin() as conn:
        if schema and dialect == "postgresql":
            conn.exec_driver_sql(f"CREATE SCHEMA {_q(dialect, schema)}")
        conn.exec_driver_sql(f"CREATE TABLE {full} (id INTEGER PRIMARY KEY, v VARCHAR(40))")
        meta = sa.MetaData()
        t = sa.Table(table, meta, sa.Column("id", sa.Integer), sa.Column("v", sa.String(40)), schema=schema)
        conn.execute(t.insert(), ROWS)
    eng.dispose()


def _rows(url: str, table: str, schema: str | None = None) -> list[tuple]:
    eng = sa.create_engine(url)
    t = sa.Table(table, sa.MetaData(), sa.Column("id", sa.Integer), sa.Column("v", sa.String(40)), schema=schema)
    try:
        with eng.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.select(t.c.id, t.c.v).order_by(t.c.id))]
    finally:
        eng.dispose()


def _clobber(url: str, table: str, schema: str | None = None, drop: bool = False) -> None:
    eng = sa.create_engine(url)
    t = sa.Table(table, sa.MetaData(), sa.Column("id", sa.Integer), schema=schema)
    with eng.begin() as conn:
        if drop:
            t.drop(conn)
        else:
            conn.execute(t.delete())
    eng.dispose()


def _round_trip(project: Path, url: str, table: str, schema: str | None = None, drop: bool = False) -> None:
    """Native backup, verify, destructive restore after the rows (or the table: the restore then runs
    pg_restore's schema sections against the target database) were deleted: the rows come back."""
    bid = take(project, url, tables=[table], schema=schema, fmt="native").manifest.backup_id
    assert verify(project, bid).passed
    _clobber(url, table, schema, drop)
    preview = service.restore_tables(project, bid, url, confirm=None, target_schema=schema, dry_run=True)
    token = preview.confirm_token
    service.restore_tables(project, bid, url, confirm=token, target_schema=schema)
    assert _rows(url, table, schema) == [(r["id"], r["v"]) for r in ROWS]
    assert all(p.resolve().is_relative_to(root(project).resolve()) for p in root(project).rglob("*"))


def _database(admin_url: str, name: str, dialect: str) -> Iterator[str]:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {_q(dialect, name)}")
    try:
        yield sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            force = " WITH (FORCE)" if dialect == "postgresql" else ""
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {_q(dialect, name)}{force}")
        admin.dispose()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, set[str]]:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd, set()


SERVERS = {"postgresql": ("pg_url", PG_ADMIN_URL), "mariadb": ("mysql_url", MYSQL_ADMIN_URL)}


@pytest.mark.parametrize("key", NAME_KEYS)
@pytest.mark.parametrize("server", sorted(SERVERS))
def test_hostile_table_name(
    request: pytest.FixtureRequest, project: Path, outside: Path, workdir, server: str, key: str
) -> None:
    url = request.getfixturevalue(SERVERS[server][0])
    name = hostile_names(outside)[key]
    _make_table(url, name)
    _round_trip(project, url, name)
    _no_stray_files(outside, *workdir)


@pytest.mark.pg
@pytest.mark.parametrize("key", NAME_KEYS)
def test_pg_hostile_schema_name(project: Path, pg_url: str, outside: Path, workdir, key: str) -> None:
    name = hostile_names(outside)[key]
    _make_table(pg_url, "t", schema=name)
    _round_trip(project, pg_url, "t", schema=name, drop=True)
    _no_stray_files(outside, *workdir)


@pytest.mark.parametrize("key", NAME_KEYS)
@pytest.mark.parametrize("server", sorted(SERVERS))
def test_hostile_database_name(project: Path, outside: Path, workdir, server: str, key: str) -> None:
    """The restore drops to pg_restore's schema sections (table dropped first), which connect by name."""
    admin = SERVERS[server][1]
    _need(server, admin)
    name = hostile_names(outside)[key]
    for url in _database(admin, name, "postgresql" if server == "postgresql" else "mysql"):
        _make_table(url, "t")
        _round_trip(project, url, "t", drop=True)
    _no_stray_files(outside, *workdir)


@pytest.mark.parametrize("key", ["result_file", "short_f", "file"])
@pytest.mark.parametrize("dialects", ["pg_to_mariadb", "mariadb_to_pg"])
def test_copy_hostile_table_name(
    project: Path, pg_url: str, mysql_url: str, outside: Path, workdir, key: str, dialects: str
) -> None:
    name = hostile_names(outside)[key]
    src, tgt = (pg_url, mysql_url) if dialects == "pg_to_mariadb" else (mysql_url, pg_url)
    _make_table(src, name)
    try:
        assert run_copy(src, tgt, project, tables=[name]).ok
        assert _rows(tgt, name) == [(r["id"], r["v"]) for r in ROWS]
    except DmigError as exc:
        assert exc.code not in ("E_INTERNAL", "E_DMIG"), exc.info()
    _no_stray_files(outside, *workdir)


def _encoded(text: str) -> str:
    return "".join(c if c.isalnum() else f"%{ord(c):02X}" for c in text)


OPTION_FILE_LINES = {
    "newline_result_file": "x\nresult-file={out}/opt\n#",
    "crlf_result_file": "x\r\nresult-file={out}/crlf\r\n#",
    "quote_then_newline": 'x"\nresult-file={out}/quote\n#',
    "backslash_newline": "x\\\nresult-file={out}/bs\n#",
    "group_header": "x\n[mariadb-dump]\nresult-file={out}/group\n#",
}


@pytest.fixture
def mariadb_user(mysql_url: str) -> Iterator[Callable[[str, str], None]]:
    """Create accounts with awkward names and passwords on the test database (dropped afterwards)."""
    made: list[tuple[str, str]] = []
    admin = sa.create_engine(MYSQL_ADMIN_URL, isolation_level="AUTOCOMMIT")
    db = sa.make_url(mysql_url).database

    def make(user: str, password: str) -> None:
        with admin.connect() as conn:
            conn.execute(sa.text("CREATE USER :u@'%' IDENTIFIED BY :p"), {"u": user, "p": password})
            conn.execute(sa.text(f"GRANT ALL ON `{db}`.* TO :u@'%'"), {"u": user})
        made.append((user, "%"))

    yield make
    with admin.connect() as conn:
        for user, host in made:
            conn.execute(sa.text("DROP USER IF EXISTS :u@:h"), {"u": user, "h": host})
    admin.dispose()


@pytest.mark.mysql
@pytest.mark.parametrize("part", ["password", "username"])
@pytest.mark.parametrize("key", sorted(OPTION_FILE_LINES))
def test_mariadb_option_file_lines(
    project: Path, mysql_url: str, mariadb_user, outside: Path, workdir, key: str, part: str
) -> None:
    """A URL's user or password with line breaks must not add lines to the tools' private option file.

    The account exists (as it would on a server the attacker runs), so our own connection succeeds and
    mariadb-dump is started with the option file: an injected line (result-file, plugin-dir...) would
    act there. The backup must work with the account as it is, or fail with a structured error.
    """
    _make_table(mysql_url, "t")
    value = OPTION_FILE_LINES[key].format(out=outside)
    user, password = (f"u{uuid.uuid4().hex[:6]}{value}"[:80], "pw") if part == "username" else (
        f"u{uuid.uuid4().hex[:6]}", value)  # fmt: skip
    mariadb_user(user, password)
    parsed = sa.make_url(mysql_url)
    url = f"mysql://{_encoded(user)}:{_encoded(password)}@{parsed.host}:{parsed.port or 3306}/{parsed.database}"
    try:
        bid = take(project, url, tables=["t"], fmt="native").manifest.backup_id
        assert verify(project, bid).passed
    except DmigError as err:
        assert err.code not in ("E_INTERNAL", "E_DMIG"), err.info()
    _no_stray_files(outside, *workdir)
