"""Read-only means read-only at the database: every connection of a read-only call refuses writes itself.

Issue 12.1 (second half): a check missed above must not turn into a write. A read-only tool, and every
tool of a ``--read-only`` server, opens its connections read-only at the server: PostgreSQL answers
SQLSTATE 25006, MariaDB error 1792, SQLite "attempt to write a readonly database". The sentinel table
is read back with plain SQL after each attempt.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import BaseModel

from dmig.context import RunContext
from dmig.db import access
from dmig.db.engine import create, open_engine
from dmig.db.urls import dialect_of, parse_url
from dmig.registry import ToolSpec, run_tool
from mcp_client import call
from test_security_urls import sentinel, sentinel_rows

READ_ONLY = access.Access(read_only=True)
INTACT = [(1, "intact")]
WRITES = [
    "DROP TABLE sentinel",
    "DELETE FROM sentinel",
    "UPDATE sentinel SET v = 'changed'",
    "INSERT INTO sentinel (id, v) VALUES (2, 'added')",
    "CREATE TABLE intruder (a INTEGER)",
    "ALTER TABLE sentinel ADD COLUMN w INTEGER",
]


def refused_by_the_server(exc: BaseException, dialect: str) -> bool:
    orig = getattr(exc, "orig", exc)
    if dialect == "postgresql":
        return getattr(orig, "sqlstate", None) == "25006"
    if dialect == "mysql":
        return bool(orig.args) and orig.args[0] == 1792
    return "attempt to write a readonly database" in str(orig)


def read_only_engine(url: str, **kw: object) -> sa.Engine:
    with access.scope(READ_ONLY):
        return create(url, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("statement", WRITES)
def test_read_only_connections_refuse_every_write(db_url: str, statement: str) -> None:
    sentinel(db_url)
    dialect = dialect_of(parse_url(db_url))
    engine = read_only_engine(db_url)  # used outside the scope: the engine carries its settings
    try:
        for isolation in (None, "AUTOCOMMIT"):
            with engine.connect() as conn:
                if isolation:
                    conn = conn.execution_options(isolation_level=isolation)
                with pytest.raises(sa.exc.DBAPIError) as info:
                    conn.exec_driver_sql(statement)
                assert refused_by_the_server(info.value, dialect), info.value
    finally:
        engine.dispose()
    assert sentinel_rows(db_url) == INTACT


@pytest.mark.parametrize(
    ("fixture", "reset"),
    [
        ("mysql_url", "SET SESSION TRANSACTION READ WRITE"),
        ("mysql_url", "SET SESSION tx_read_only = 0"),
        ("pg_url", "SET default_transaction_read_only = off"),
        ("pg_url", "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE"),
    ],
)
def test_a_session_set_back_to_read_write_is_read_only_again_on_the_next_checkout(
    fixture: str, reset: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(fixture)
    sentinel(url)
    engine = read_only_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(reset)
            conn.commit()
        with engine.connect() as conn:  # the same pooled connection, checked out again
            with pytest.raises(sa.exc.DBAPIError) as info:
                conn.exec_driver_sql("DROP TABLE sentinel")
            assert refused_by_the_server(info.value, dialect_of(parse_url(url)))
    finally:
        engine.dispose()
    assert sentinel_rows(url) == INTACT


@pytest.mark.parametrize(
    "statement", ["ATTACH DATABASE '{out}' AS x", "VACUUM INTO '{out}'", "ATTACH DATABASE 'file:{out}?mode=rwc' AS x"]
)
def test_read_only_sqlite_cannot_create_files_through_attach(tmp_path: Path, statement: str) -> None:
    db = tmp_path / "app.db"
    sentinel(f"sqlite:///{db}")
    out = tmp_path / "elsewhere" / "made.db"
    out.parent.mkdir()
    engine = read_only_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            with pytest.raises(sa.exc.DBAPIError):
                conn.exec_driver_sql(statement.format(out=out))
            conn.exec_driver_sql("CREATE TEMP TABLE scratch (a INTEGER)")  # temp tables still work
    finally:
        engine.dispose()
    assert list(out.parent.iterdir()) == []
    assert sentinel_rows(f"sqlite:///{db}") == INTACT


def test_read_only_sqlite_never_creates_a_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    engine = read_only_engine(f"sqlite:///{missing}", must_exist=False)
    with pytest.raises(sa.exc.OperationalError):
        engine.connect()
    engine.dispose()
    assert not missing.exists()


# --- the decision is made once, in run_tool, for every tool --------------------------------------


class _UrlIn(BaseModel):
    url: str


class _Done(BaseModel):
    done: bool


def _drop_sentinel(inp: _UrlIn, rc: RunContext) -> _Done:
    engine = open_engine(inp.url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE sentinel")
    finally:
        engine.dispose()
    return _Done(done=True)


def _spec(read_only: bool) -> ToolSpec:
    return ToolSpec(
        name="t_drop", func=_drop_sentinel, input_model=_UrlIn, output_model=_Done, description="t", read_only=read_only
    )


@pytest.mark.parametrize("front_end", ["cli", "mcp"])
def test_a_read_only_tool_gets_read_only_sessions_whatever_it_runs(
    db_url: str, project: Path, front_end: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DMIG_ALLOWED_DIRS", str(project.parent))  # the SQLite variant lives beside the project
    sentinel(db_url)
    dialect = dialect_of(parse_url(db_url))
    with pytest.raises(sa.exc.DBAPIError) as info:
        run_tool(_spec(read_only=True), {"url": db_url}, RunContext(project_dir=project, front_end=front_end))
    assert refused_by_the_server(info.value, dialect), info.value
    assert sentinel_rows(db_url) == INTACT
    # The same code as a writing tool does write: the refusal above came from the session, not the SQL.
    out = run_tool(_spec(read_only=False), {"url": db_url}, RunContext(project_dir=project, front_end=front_end))
    assert out.done is True
    with pytest.raises(sa.exc.DBAPIError):
        sentinel_rows(db_url)


def test_outside_a_tool_call_connections_are_writable(db_url: str) -> None:
    """Direct service calls (tests, the demo's set-up) keep writable sessions: read-only is per call."""
    sentinel(db_url)
    assert access.current() == access.Access()
    engine = create(db_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE sentinel SET v = 'changed'")
    finally:
        engine.dispose()
    assert sentinel_rows(db_url) == [(1, "changed")]


# --- end to end: a --read-only server, user SQL that writes through a function ---------------------

_PG_SNEAKY = "CREATE FUNCTION sneaky() RETURNS integer LANGUAGE sql VOLATILE AS $$ DELETE FROM sentinel; SELECT 1 $$"
_MYSQL_SNEAKY = "CREATE FUNCTION sneaky() RETURNS INT MODIFIES SQL DATA BEGIN DELETE FROM sentinel; RETURN 1; END"


def test_read_only_server_probe_that_writes_through_a_function_is_refused(
    pg_url: str, mysql_url: str, project: Path
) -> None:
    for url, ddl in ((pg_url, _PG_SNEAKY), (mysql_url, _MYSQL_SNEAKY)):
        sentinel(url)
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql(ddl)
        engine.dispose()
    calls = [
        (tool, {"url": url, "probes": ["SELECT sneaky()"], "thresholds": {}, "rounds": 1})
        for url in (pg_url, mysql_url)
        for tool in ("health",)
    ]
    results = call(project, calls, "--read-only")
    assert len(results) == 2
    assert sentinel_rows(pg_url) == INTACT
    assert sentinel_rows(mysql_url) == INTACT
    # Two walls: the probe guard refuses a function off its allow-list before anything runs; were it
    # missed, the read-only session would refuse the write (25006 / 1792; tested above on its own).
    for result, server_refusal in zip(results, ("25006", "1792"), strict=True):
        text = str(result)
        assert "probe_refused" in text or server_refusal in text, result


def test_no_sqlite_sidecar_or_new_file_from_read_only_mcp_calls(tmp_path: Path, project: Path) -> None:
    db = project / "data" / "app.db"
    db.parent.mkdir()
    sentinel(f"sqlite:///{db}")
    before = sorted(os.listdir(db.parent))
    url = f"sqlite:///{db}"
    results = call(
        project,
        [
            ("inspect", {"url": url}),
            (
                "validate",
                {"spec": {"target": url, "checks": [{"type": "not_null", "table": "sentinel", "columns": ["v"]}]}},
            ),
            ("diff", {"source_url": url, "target_url": url, "table": "sentinel"}),
        ],
        "--read-only",
        env={"DMIG_ALLOWED_DIRS": ""},
    )
    assert all("error" not in r for r in results), results
    assert sorted(os.listdir(db.parent)) == before
    assert sentinel_rows(url) == INTACT
