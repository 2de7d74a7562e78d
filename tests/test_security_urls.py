"""Database URLs are hostile input: driver options are allow-listed, and read-only means read-only.

Issue 12.1: ``inspect``/``health`` with ``mysql://...?init_command=DROP TABLE t`` dropped the table,
``?read_default_file=/etc/passwd`` put the file's first line in the error, ``validate`` with a SQLite
``file:`` URI created a database outside the project. Each hostile option is tried per driver and
per tool, and the effect is checked independently of the error: the sentinel table is still there
(plain SQL read), no file appeared, no ``/etc/passwd`` content in any output.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from dmig.context import RunContext
from dmig.errors import DmigError, InvalidInput
from dmig.registry import run_tool, tool_for_command
from mcp_client import call

PASSWD_MARKERS = ("root:x:0:0", "/bin/bash", "/usr/sbin/nologin", "daemon:")


def sentinel(url: str) -> None:
    """A table with one row that no read-only call may remove or change."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE sentinel (id INTEGER PRIMARY KEY, v VARCHAR(20))")
        conn.exec_driver_sql("INSERT INTO sentinel (id, v) VALUES (1, 'intact')")
    engine.dispose()


def sentinel_rows(url: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.exec_driver_sql("SELECT id, v FROM sentinel ORDER BY id")]
    finally:
        engine.dispose()


def with_query(url: str, **query: str) -> str:
    return sa.make_url(url).update_query_dict(query).render_as_string(hide_password=False)


def files_under(*roots: Path) -> set[Path]:
    """Every path below the roots, except the audit log a writing tool appends to in the project."""
    return {
        p
        for root in roots
        if root.exists()
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith("dmig-audit.jsonl")
    }


def no_passwd(text: str) -> None:
    for marker in PASSWD_MARKERS:
        assert marker not in text, marker


def run(command: str, arguments: dict[str, Any], project: Path, **rc: Any) -> Any:
    spec = tool_for_command(command)
    assert spec is not None
    return run_tool(spec, arguments, RunContext(project_dir=project, **rc))


def read_only_calls(url: str) -> dict[str, dict[str, Any]]:
    """One call per read-only tool that connects to ``url``."""
    return {
        "inspect": {"url": url},
        "health": {"url": url, "thresholds": {}, "rounds": 1},
        "validate": {"spec": {"target": url, "checks": [{"type": "not_null", "table": "sentinel", "columns": ["v"]}]}},
        "lint": {"sql": "ALTER TABLE sentinel ADD COLUMN x INTEGER", "url": url},
        "diff": {"source_url": url, "target_url": url, "table": "sentinel"},
    }


def refused(
    command: str, arguments: dict[str, Any], project: Path, option: str | None, *, listed: bool = False
) -> InvalidInput:
    """The call fails with InvalidInput naming ``option`` (``listed``: an allowed option with a bad value)."""
    with pytest.raises(InvalidInput) as info:
        run(command, arguments, project)
    err = info.value
    text = json.dumps(err.info().model_dump())
    assert err.details["reason"] == "invalid connection option", text
    if option is not None:  # None: a SQLite URI filename (no option to name)
        assert err.details["option"] == option and repr(option) in err.info().message
        assert (option in err.details["allowed"]) is listed
    no_passwd(text)
    return err


# --- MySQL/MariaDB: every option outside the allow-list is refused, whatever the tool -------------

MYSQL_FORBIDDEN = [
    ("init_command", "DROP TABLE sentinel"),
    ("init_command", "LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE sentinel"),
    ("init_command", "SELECT 1 INTO OUTFILE '/tmp/dmig-sec-{tag}.txt'"),
    ("read_default_file", "/etc/passwd"),
    ("read_default_group", "client"),
    ("local_infile", "1"),
    ("client_flag", "65536"),  # CLIENT.MULTI_STATEMENTS
    ("autocommit", "true"),
    ("sql_mode", "ANSI"),
    ("max_allowed_packet", "1"),
    ("compress", "true"),
    ("defer_connect", "true"),
    ("auth_plugin_map", "x"),
    ("server_public_key", "x"),
    ("bind_address", "127.0.0.1"),
    ("program_name", "x"),
    ("ssl_verify_cert", "false"),
    ("use_unicode", "0"),
    ("binary_prefix", "1"),
    ("cursorclass", "x"),
    ("conv", "x"),
    ("plugin", "x"),
]


@pytest.mark.parametrize(("option", "value"), MYSQL_FORBIDDEN, ids=[f"{o}={v[:20]}" for o, v in MYSQL_FORBIDDEN])
def test_mysql_forbidden_options_are_refused_by_inspect(mysql_url: str, project: Path, option: str, value: str) -> None:
    sentinel(mysql_url)
    tag = uuid.uuid4().hex
    refused("inspect", {"url": with_query(mysql_url, **{option: value.format(tag=tag)})}, project, option)
    assert sentinel_rows(mysql_url) == [(1, "intact")]
    assert not Path(f"/tmp/dmig-sec-{tag}.txt").exists()


@pytest.mark.parametrize("tool", ["inspect", "health", "validate", "lint", "diff"])
@pytest.mark.parametrize(
    ("option", "value"),
    [("init_command", "DROP TABLE sentinel"), ("read_default_file", "/etc/passwd"), ("local_infile", "1")],
)
def test_every_read_only_tool_refuses_mysql_driver_options(
    mysql_url: str, project: Path, tool: str, option: str, value: str
) -> None:
    sentinel(mysql_url)
    refused(tool, read_only_calls(with_query(mysql_url, **{option: value}))[tool], project, option)
    assert sentinel_rows(mysql_url) == [(1, "intact")]


# --- PostgreSQL (libpq keywords) --------------------------------------------------------------------

PG_FORBIDDEN = [
    ("options", "-c default_transaction_read_only=off"),
    ("options", "-c search_path=evil"),
    ("service", "dmig"),
    ("servicefile", "/etc/passwd"),
    ("passfile", "/etc/passwd"),
    ("sslkeylogfile", "/tmp/dmig-sec-{tag}.log"),
    ("replication", "database"),
    ("dbname", "postgres"),
    ("user", "postgres"),
    ("password", "x"),
    ("hostaddr", "127.0.0.1"),
    ("requirepeer", "root"),
    ("krbsrvname", "x"),
    ("gsslib", "gssapi"),
    ("client_encoding", "SQL_ASCII"),
    ("fallback_application_name", "x"),
    ("plugin", "x"),
]


@pytest.mark.parametrize(("option", "value"), PG_FORBIDDEN, ids=[f"{o}={v[:20]}" for o, v in PG_FORBIDDEN])
def test_postgres_forbidden_options_are_refused(pg_url: str, project: Path, option: str, value: str) -> None:
    sentinel(pg_url)
    tag = uuid.uuid4().hex
    refused("inspect", {"url": with_query(pg_url, **{option: value.format(tag=tag)})}, project, option)
    assert sentinel_rows(pg_url) == [(1, "intact")]
    assert not Path(f"/tmp/dmig-sec-{tag}.log").exists()


@pytest.mark.parametrize("tool", ["inspect", "health", "validate", "lint", "diff"])
def test_every_read_only_tool_refuses_postgres_options(pg_url: str, project: Path, tool: str) -> None:
    sentinel(pg_url)
    url = with_query(pg_url, options="-c default_transaction_read_only=off")
    refused(tool, read_only_calls(url)[tool], project, "options")
    assert sentinel_rows(pg_url) == [(1, "intact")]


# --- values of allowed options are checked for their shape ----------------------------------------

BAD_VALUES = [
    ("pg_url", "sslmode", "bogus"),
    ("pg_url", "connect_timeout", "abc"),
    ("pg_url", "connect_timeout", "100000"),
    ("pg_url", "sslrootcert", "/dev/zero"),  # a device would block or stream forever
    ("pg_url", "sslcert", "/nonexistent/cert.pem"),
    ("pg_url", "host", "/etc/passwd"),  # a socket directory must be a directory
    ("pg_url", "application_name", "a\nb"),
    ("mysql_url", "unix_socket", "/etc/passwd"),
    ("mysql_url", "ssl_ca", "/dev/zero"),
    ("mysql_url", "charset", "utf8;DROP"),
    ("mysql_url", "connect_timeout", "9999"),
    ("mysql_url", "ssl_check_hostname", "maybe"),
]


@pytest.mark.parametrize(("fixture", "option", "value"), BAD_VALUES)
def test_malformed_values_of_allowed_options_are_refused(
    fixture: str, option: str, value: str, project: Path, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(fixture)
    refused("inspect", {"url": with_query(url, **{option: value})}, project, option, listed=True)


def test_an_option_given_twice_is_refused(mysql_url: str, project: Path) -> None:
    url = mysql_url + "&charset=latin1"  # the fixture already sets charset=utf8mb4
    refused("inspect", {"url": url}, project, "charset", listed=True)


def test_allowed_options_still_connect(pg_url: str, mysql_url: str, project: Path) -> None:
    pg = with_query(pg_url, sslmode="disable", connect_timeout="3", application_name="dmig-t", keepalives="1")
    my = with_query(mysql_url, connect_timeout="3", read_timeout="30", collation="utf8mb4_bin")
    for url in (pg, my):
        sentinel(url)
        out = run("inspect", {"url": url}, project)
        assert [t.name for t in out.tables] == ["sentinel"]


@pytest.mark.skipif(not Path("/var/run/postgresql").is_dir(), reason="no local PostgreSQL socket directory")
def test_a_postgres_unix_socket_directory_is_allowed(pg_url: str, project: Path) -> None:
    url = with_query(pg_url, host="/var/run/postgresql")
    try:
        out = run("inspect", {"url": url}, project)
    except DmigError as exc:  # the socket may be elsewhere or need peer auth: the URL itself passed
        assert exc.code == "E_CONNECTION", exc.info()
    else:
        assert out.tables is not None


# --- SQLite: plain paths only ---------------------------------------------------------------------

SQLITE_FORBIDDEN = ["mode", "uri", "vfs", "cache", "immutable", "nolock", "timeout", "check_same_thread", "factory"]


@pytest.mark.parametrize("option", SQLITE_FORBIDDEN)
def test_sqlite_urls_take_no_options(tmp_path: Path, project: Path, option: str) -> None:
    db = tmp_path / "app.db"
    sentinel(f"sqlite:///{db}")
    refused("inspect", {"url": f"sqlite:///{db}?{option}=1"}, project, option)
    assert sentinel_rows(f"sqlite:///{db}") == [(1, "intact")]


@pytest.mark.parametrize(
    "database",
    ["file:{dir}/new.db?mode=rwc", "file:{dir}/new.db", "FILE:{dir}/new.db", "file:{dir}/new.db?mode=rwc&uri=true"],
)
@pytest.mark.parametrize("tool", ["inspect", "validate", "health", "lint"])
def test_sqlite_uri_filenames_are_refused_and_create_nothing(
    tmp_path: Path, project: Path, database: str, tool: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    before = files_under(tmp_path)
    url = "sqlite:///" + database.format(dir=outside)
    refused(tool, read_only_calls(url)[tool], project, None)
    assert files_under(tmp_path) - before == set()


def test_copy_refuses_a_sqlite_uri_target(tmp_path: Path, project: Path) -> None:
    src = tmp_path / "src.db"
    sentinel(f"sqlite:///{src}")
    before = files_under(tmp_path)
    target = f"sqlite:///file:{tmp_path}/x.db?mode=rwc"
    with pytest.raises(InvalidInput):
        run("copy", {"source_url": f"sqlite:///{src}", "target_url": target}, project)
    assert files_under(tmp_path) - before == set()


# --- through the MCP server over stdio --------------------------------------------------------------


def test_mcp_server_refuses_hostile_urls_and_nothing_changes(
    mysql_url: str, pg_url: str, tmp_path: Path, project: Path
) -> None:
    sentinel(mysql_url)
    sentinel(pg_url)
    tag = uuid.uuid4().hex
    outfile = Path(f"/tmp/dmig-sec-{tag}.txt")
    before = files_under(tmp_path)
    calls = [
        ("inspect", {"url": with_query(mysql_url, init_command="DROP TABLE sentinel")}),
        ("health", {"url": with_query(mysql_url, read_default_file="/etc/passwd"), "thresholds": {}, "rounds": 1}),
        ("inspect", {"url": with_query(mysql_url, init_command=f"SELECT 1 INTO OUTFILE '{outfile}'")}),
        ("inspect", {"url": with_query(mysql_url, local_infile="1")}),
        ("inspect", {"url": with_query(pg_url, options="-c default_transaction_read_only=off")}),
        (
            "validate",
            {
                "spec": {
                    "target": f"sqlite:///file:{tmp_path}/made.db?mode=rwc",
                    "checks": [{"type": "not_null", "table": "sentinel", "columns": ["v"]}],
                }
            },
        ),
        ("lint_migration", {"sql": "SELECT 1", "url": with_query(pg_url, passfile="/etc/passwd")}),
    ]
    for read_only in (False, True):
        results = call(project, calls, *(["--read-only"] if read_only else []))
        for (name, _args), res in zip(calls, results, strict=True):
            assert res.get("error", {}).get("code") == "E_INVALID_INPUT", (name, res)
            assert res["error"]["details"].get("reason") == "invalid connection option", (name, res)
            no_passwd(json.dumps(res))
    assert sentinel_rows(mysql_url) == [(1, "intact")]
    assert sentinel_rows(pg_url) == [(1, "intact")]
    assert not outfile.exists()
    assert {p for p in files_under(tmp_path) - before if p.suffix == ".db"} == set()


# --- the URL text itself --------------------------------------------------------------------------


def test_the_error_names_the_option_and_lists_the_allowed_ones(mysql_url: str, project: Path) -> None:
    url = with_query(mysql_url, init_command="DROP TABLE sentinel")
    err = refused("inspect", {"url": url}, project, "init_command")
    assert "charset" in err.details["allowed"] and "ssl_ca" in err.details["allowed"]
    assert "charset" in err.info().message


def test_a_password_in_a_refused_url_is_masked(mysql_url: str, project: Path) -> None:
    secret = "Hunter2Secret"
    url = sa.make_url(mysql_url).set(password=secret).update_query_dict({"init_command": "DROP TABLE x"})
    err = refused("inspect", {"url": url.render_as_string(hide_password=False)}, project, "init_command")
    assert secret not in json.dumps(err.info().model_dump())


def test_env_references_pass_the_same_allow_list(
    mysql_url: str, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sentinel(mysql_url)
    monkeypatch.setenv("DMIG_T_HOSTILE_URL", with_query(mysql_url, init_command="DROP TABLE sentinel"))
    refused("inspect", {"url": "env:DMIG_T_HOSTILE_URL"}, project, "init_command")
    assert sentinel_rows(mysql_url) == [(1, "intact")]


def test_percent_encoded_sqlite_paths_are_still_plain_paths(tmp_path: Path, project: Path) -> None:
    folder = tmp_path / "a b%c"
    folder.mkdir()
    db = folder / "x.db"
    sentinel(f"sqlite:///{db}")
    out = run("inspect", {"url": f"sqlite:///{db}"}, project)
    assert [t.name for t in out.tables] == ["sentinel"]
    assert quote(str(db)) != str(db)  # the read-only URI we build must encode it, and did
    assert os.path.exists(db)
