"""Connections and secrets: every way a URL can be wrong gets its own clear error, and no password leaks.

Failure tests use real servers on loopback only: an unused local port for "unreachable", a
non-empty password for MariaDB's password-less root for "wrong password".
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import sqlalchemy as sa

from db_helpers import run_dmig, with_password
from dmig.db.engine import connect, open_engine
from dmig.db.introspect import inspect_url
from dmig.db.urls import dialect_of, display_url, parse_url
from dmig.errors import ConnectionFailed, DmigError, InvalidInput, NotFound
from dmig.redact import redact
from mcp_client import call

SECRET = "SuperSecret123"


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _failure(url: str) -> DmigError:
    with pytest.raises(DmigError) as info, connect(url):
        pass
    return info.value


# --- parsing and normalisation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "driver", "dialect"),
    [
        ("postgres://u@h/db", "postgresql+psycopg", "postgresql"),
        ("postgresql://u@h/db", "postgresql+psycopg", "postgresql"),
        ("postgresql+psycopg2://u@h/db", "postgresql+psycopg", "postgresql"),
        ("postgresql+asyncpg://u@h/db", "postgresql+psycopg", "postgresql"),
        ("mysql://u@h/db", "mysql+pymysql", "mysql"),
        ("mariadb://u@h/db", "mysql+pymysql", "mysql"),
        ("mysql+mysqldb://u@h/db", "mysql+pymysql", "mysql"),
        ("mariadb+mariadbconnector://u@h/db", "mysql+pymysql", "mysql"),
        ("sqlite:///rel.db", "sqlite", "sqlite"),
        ("sqlite+pysqlite:////abs/file.db", "sqlite", "sqlite"),
        ("  postgresql://u@h/db\n", "postgresql+psycopg", "postgresql"),
    ],
)
def test_drivers_are_normalised_to_the_tested_ones(raw: str, driver: str, dialect: str) -> None:
    url = parse_url(raw)
    assert url.drivername == driver
    assert dialect_of(url) == dialect
    assert dialect_of(parse_url(url.render_as_string(hide_password=False))) == dialect  # idempotent


@pytest.mark.parametrize("form", ["env:{name}", "${name}", "${{{name}}}"])
def test_env_references_resolve_and_their_password_is_masked(form: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DMIG_T_REF_URL", f"postgres://app:{SECRET}@db.internal:6543/sales")
    url = parse_url(form.format(name="DMIG_T_REF_URL"))
    assert (url.host, url.port, url.database, url.password) == ("db.internal", 6543, "sales", SECRET)
    assert SECRET not in display_url(url)
    assert SECRET not in redact(f"driver said: login {SECRET} rejected")


def test_missing_env_var_is_not_found_and_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DMIG_T_ABSENT", raising=False)
    with pytest.raises(NotFound) as info:
        parse_url("env:DMIG_T_ABSENT")
    assert info.value.details == {"variable": "DMIG_T_ABSENT", "reason": "env_var_missing"}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "missing_url"),
        ("not a url", "malformed_url"),
        ("postgresql://u@h:notaport/db", "malformed_url"),
        ("postgresql://u@h:70000/db", "malformed_url"),
        ("sqlite://somehost/file.db", "malformed_url"),
        ("oracle://u@h/db", "unsupported_scheme"),
        ("http://example.invalid/", "unsupported_scheme"),
    ],
)
def test_bad_urls_are_invalid_input_with_a_reason(raw: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_url(raw)
    assert info.value.details["reason"] == reason


def test_an_unencoded_at_sign_in_the_password_is_refused_without_leaking_either_half() -> None:
    with pytest.raises(InvalidInput) as info:
        parse_url("postgresql://app:Half0ne@Half2wo@db.internal/sales")
    message = info.value.info().message
    assert "%40" in message
    assert "Half0ne" not in message and "Half2wo" not in message


def test_passwords_in_the_query_string_and_percent_encoded_ones_are_masked() -> None:
    url = parse_url("postgresql://app:Pa%2Fss%40word1@h/db?sslpassword=KeyPass99")
    assert url.password == "Pa/ss@word1"
    shown = redact(f"{display_url(url)} Pa/ss@word1 Pa%2Fss%40word1 KeyPass99")
    for secret in ("Pa/ss@word1", "Pa%2Fss%40word1", "KeyPass99"):
        assert secret not in shown


# --- connection failures, each with its own reason ------------------------------------------------


@pytest.mark.parametrize("scheme", ["postgresql", "mysql"])
def test_unreachable_server_fails_fast_with_a_clear_reason(scheme: str) -> None:
    err = _failure(f"{scheme}://someone:{SECRET}@127.0.0.1:{_unused_port()}/db")
    assert isinstance(err, ConnectionFailed)
    assert err.details["reason"] == "server unreachable"
    assert SECRET not in json.dumps(err.info().model_dump())


def test_wrong_password_on_mariadb_is_an_authentication_failure(mysql_url: str) -> None:
    err = _failure(with_password(mysql_url, SECRET))  # root has an empty password
    assert err.code == "E_CONNECTION"
    assert err.details["reason"] == "authentication failed"
    assert SECRET not in json.dumps(err.info().model_dump())


def test_unknown_postgres_role_is_an_authentication_failure(pg_url: str) -> None:
    err = _failure(sa.make_url(pg_url).set(username="dmig_no_such_role").render_as_string(hide_password=False))
    assert err.details["reason"] == "authentication failed"


@pytest.mark.parametrize("fixture", ["pg_url", "mysql_url"])
def test_unknown_database_is_reported_as_such(fixture: str, request: pytest.FixtureRequest) -> None:
    url = sa.make_url(request.getfixturevalue(fixture)).set(database="dmig_t_no_such_db")
    err = _failure(url.render_as_string(hide_password=False))
    assert err.details["reason"] == "unknown database"


def test_sqlite_file_that_does_not_exist_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    err = _failure(f"sqlite:///{missing}")
    assert isinstance(err, NotFound)
    assert err.details["reason"] == "sqlite_file_missing"
    assert not missing.exists()


def test_a_file_that_is_not_sqlite_is_named_as_such(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.db"
    bogus.write_text("this is not a database\n" * 200)
    with pytest.raises(ConnectionFailed) as info:
        inspect_url(f"sqlite:///{bogus}")
    assert info.value.details["reason"] == "not a SQLite database"


def test_unknown_driver_option_is_invalid_input_not_a_crash(mysql_url: str) -> None:
    url = sa.make_url(mysql_url).update_query_dict({"no_such_option": "1"}).render_as_string(hide_password=False)
    with pytest.raises(InvalidInput) as info:
        open_engine(url)
    assert info.value.details["reason"] == "invalid connection option"


# --- no password in any output of the real front ends ---------------------------------------------


def test_cli_inspect_never_prints_the_password(pg_url: str) -> None:
    url = with_password(pg_url, SECRET)  # trust auth on loopback accepts any password
    for args in (["inspect", url], ["inspect", url, "--json"], ["inspect", url, "--tables", "nope", "--json"]):
        res = run_dmig(*args)
        assert SECRET not in res.stdout + res.stderr, args
        assert "Traceback" not in res.stderr
    ok = run_dmig("inspect", url, "--json")
    assert ok.returncode == 0
    assert json.loads(ok.stdout)["url"].startswith("postgresql+psycopg://postgres:***@127.0.0.1")


def test_cli_connection_errors_are_distinct_clean_and_masked(mysql_url: str) -> None:
    cases = {
        "authentication failed": with_password(mysql_url, SECRET),
        "server unreachable": f"mysql://root:{SECRET}@127.0.0.1:{_unused_port()}/x",
        "unknown database": sa.make_url(mysql_url).set(database="dmig_t_nodb").render_as_string(hide_password=False),
        "unsupported_scheme": f"oracle://scott:{SECRET}@127.0.0.1/orcl",
        "malformed_url": f"postgresql://scott:{SECRET}@127.0.0.1:port/db",
        "env_var_missing": "env:DMIG_T_UNSET_VAR",
    }
    for reason, url in cases.items():
        res = run_dmig("inspect", url, "--json", env={"DMIG_T_UNSET_VAR": ""})
        assert res.returncode == 2, (reason, res.stderr)
        assert "Traceback" not in res.stderr
        assert SECRET not in res.stdout + res.stderr, reason
        error = json.loads(res.stdout)["error"]
        assert error["details"]["reason"] == reason
        assert f"dmig: error [{error['code']}]" in res.stderr


def test_mcp_server_masks_passwords_in_results_errors_and_stderr(
    project: Path, pg_url: str, mysql_url: str, capfd: pytest.CaptureFixture[str]
) -> None:
    env = {"DMIG_T_SRC": with_password(pg_url, SECRET)}
    results = call(
        project,
        [
            ("inspect", {"url": "env:DMIG_T_SRC", "include": ["counts"]}),
            ("inspect", {"url": with_password(pg_url, SECRET), "tables": ["nope"]}),
            ("inspect", {"url": with_password(mysql_url, SECRET)}),
            ("inspect", {"url": "env:DMIG_T_NOT_PASSED"}),
        ],
        env=env,
    )
    ok, missing_table, bad_password, missing_env = results
    assert ok["url"].endswith(sa.make_url(pg_url).database) and ":***@" in ok["url"]
    assert missing_table["error"]["code"] == "E_NOT_FOUND"
    assert bad_password["error"]["details"]["reason"] == "authentication failed"
    assert missing_env["error"]["details"]["reason"] == "env_var_missing"
    captured = capfd.readouterr()
    assert SECRET not in json.dumps(results) + captured.out + captured.err
