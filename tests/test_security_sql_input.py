"""SQL text from a tool input never reaches the database as SQL from a read-only path (issue 12).

A read-only session does not stop a superuser: MariaDB's ``SELECT ... INTO OUTFILE/DUMPFILE`` and
``LOAD_FILE``, PostgreSQL's ``pg_read_file``, ``lo_export``, ``COPY ... TO PROGRAM`` and
``dblink``, SQLite's ``ATTACH``/``VACUUM INTO`` all read or write files from inside a read-only
transaction. Every read-only tool path that takes text which could be SQL is driven with these
(the test connects as the superuser): ``health`` probes (the only path that runs input SQL: parsed
and allow-listed), ``lint_migration`` SQL with a live URL (parsed, never run), ``validate`` and
``diff`` names and row filters (structured, bound), and spec expressions of ``lint_migration``
(a sqlglot allow-list). The effect is checked outside the product: no file appears where the
statements point, and no answer carries a line of /etc/passwd or a directory listing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from db_helpers import run_sql
from mcp_client import call

PASSWD_MARK = "root:x:0:0"


@pytest.fixture
def out() -> Iterator[Path]:
    """A folder the database servers (other OS users) could write into, were a statement let through."""
    folder = Path("/tmp") / f"dmig-sqlin-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    folder.chmod(0o777)
    yield folder
    for p in folder.iterdir():
        p.unlink()
    folder.rmdir()


# Each statement's "{o}" is the folder that must stay empty.
ATTACK_TEMPLATES: dict[str, dict[str, str]] = {
    "postgresql": {
        "pg_read_file": "SELECT pg_read_file('/etc/passwd')",
        "pg_read_binary_file": "SELECT pg_read_binary_file('/etc/passwd')",
        "pg_ls_dir": "SELECT * FROM pg_ls_dir('/')",
        "lo_export": "SELECT lo_export(lo_import('/etc/passwd'), '{o}/lo')",
        "copy_to_program": "COPY (SELECT 1) TO PROGRAM 'touch {o}/program'",
        "copy_to_file": "COPY users TO '{o}/copy'",
        "dblink": "SELECT * FROM dblink('dbname=postgres', 'COPY (SELECT 1) TO ''{o}/dblink''') AS t(x text)",
        "in_where": "SELECT id FROM users WHERE pg_read_file('/etc/passwd') IS NOT NULL",
        "in_cte": "WITH x AS (SELECT pg_read_file('/etc/passwd') AS f) SELECT f FROM x",
        "in_subquery": "SELECT id FROM users WHERE id IN (SELECT length(pg_read_file('/etc/passwd')))",
        "second_statement": "SELECT id FROM users; COPY (SELECT 1) TO PROGRAM 'touch {o}/second'",
        "do_block": "DO $$BEGIN EXECUTE 'COPY (SELECT 1) TO PROGRAM ''touch {o}/do'''; END$$",
    },
    "mariadb": {
        "into_outfile": "SELECT * FROM users INTO OUTFILE '{o}/outfile'",
        "into_dumpfile": "SELECT id FROM users LIMIT 1 INTO DUMPFILE '{o}/dumpfile'",
        "into_outfile_first": "SELECT id INTO OUTFILE '{o}/first' FROM users",
        "parenthesised": "(SELECT id FROM users) INTO OUTFILE '{o}/paren'",
        "load_file": "SELECT LOAD_FILE('/etc/passwd')",
        "load_file_where": "SELECT id FROM users WHERE LOAD_FILE('/etc/passwd') IS NOT NULL",
        "load_file_union": "SELECT user_name FROM users UNION SELECT LOAD_FILE('/etc/passwd')",
        "second_statement": "SELECT 1; SELECT 1 INTO OUTFILE '{o}/second'",
        "comment_hidden": "SELECT id FROM users /*! INTO OUTFILE '{o}/comment' */",
    },
    "sqlite": {
        "attach": "ATTACH DATABASE '{o}/attached.db' AS x",
        "vacuum_into": "VACUUM INTO '{o}/vacuum.db'",
        "load_extension": "SELECT load_extension('/tmp/nothing')",
        "second_statement": "SELECT 1; ATTACH DATABASE '{o}/second.db' AS y",
    },
}


def attacks_for(dialect: str, o: Path) -> dict[str, str]:
    return {k: v.replace("{o}", str(o)) for k, v in ATTACK_TEMPLATES[dialect].items()}


FIXTURE = {"postgresql": "pg_url", "mariadb": "mysql_url", "sqlite": "sqlite_url"}


def _users(url: str) -> None:
    run_sql(
        url,
        "CREATE TABLE users (id INTEGER PRIMARY KEY, user_name VARCHAR(80))",
        "INSERT INTO users VALUES (1, 'ada'), (2, 'grace')",
    )


def _check(answers: list[dict[str, Any]], o: Path) -> None:
    for answer in answers:
        text = json.dumps(answer, ensure_ascii=False)
        assert PASSWD_MARK not in text, text[:500]
        assert '"bin"' not in text and "'boot'" not in text  # pg_ls_dir('/') rows
        err = answer.get("error")
        if err:
            assert err["code"] not in ("E_INTERNAL", "E_DMIG", "E_UNPARSED"), err
    assert list(o.iterdir()) == [], list(o.iterdir())


@pytest.fixture(params=sorted(ATTACK_TEMPLATES))
def server(request: pytest.FixtureRequest) -> tuple[str, str]:
    url = request.getfixturevalue(FIXTURE[request.param])
    _users(url)
    return request.param, url


PROBE_TOOLS = {
    "health": ({"rounds": 1}, ("--read-only",)),  # read-only: what a cautious user connects to production
    "monitor": ({"duration_seconds": 0.3, "baseline_seconds": 0.1, "report": False}, ()),
}


@pytest.mark.parametrize("tool", sorted(PROBE_TOOLS))
def test_probes_refuse_file_access(project: Path, server: tuple[str, str], out: Path, tool: str) -> None:
    """health and monitor run user probes: each attack is refused by the allow-list, nothing runs."""
    dialect, url = server
    attacks = attacks_for(dialect, out)
    extra, serve_args = PROBE_TOOLS[tool]
    calls = [(tool, {"url": url, "probes": [sql], **extra, **({"run_id": f"sqlin-{i}"} if tool == "monitor" else {})})
             for i, sql in enumerate(attacks.values())]  # fmt: skip
    answers = call(project, calls, *serve_args)
    for name, answer in zip(attacks, answers, strict=True):
        assert answer.get("error", {}).get("code") == "E_INVALID_INPUT", (name, answer)
    _check(answers, out)


def test_lint_with_live_url_never_runs_the_sql(project: Path, server: tuple[str, str], out: Path) -> None:
    """lint_migration reads the live schema only; the SQL it lints is parsed, never executed."""
    dialect, url = server
    attacks = attacks_for(dialect, out)
    answers = call(project, [("lint_migration", {"url": url, "sql": sql}) for sql in attacks.values()], "--read-only")
    _check(answers, out)


def _expression_ops(e: str) -> list[dict[str, Any]]:
    """Every spec place that takes an expression: backfill values and filters, CHECKs, partial indexes."""
    return [
        {"op": "backfill", "table": "users", "set": {"user_name": e}},
        {"op": "backfill", "table": "users", "set": {"user_name": "lower(user_name)"}, "where": e},
        {"op": "add_check", "table": "users", "name": "leak_chk", "expression": e},
        {"op": "add_index", "table": "users", "columns": ["id"], "where": e},
    ]


FILE_EXPRESSIONS = ["pg_read_file('/etc/passwd')", "LOAD_FILE('/etc/passwd')", "lo_export(1, '/tmp/e')",
                    "load_extension('/tmp/x')", "(SELECT pg_read_file('/etc/passwd'))", "readfile('/etc/passwd')",
                    "pg_catalog.pg_read_file('/etc/passwd')", "id = 1; SELECT pg_read_file('/etc/passwd')"]  # fmt: skip


def test_spec_expressions_refuse_file_functions(project: Path, server: tuple[str, str], out: Path) -> None:
    """A spec expression naming a file function is refused by the expression allow-list (controls pass)."""
    url = server[1]

    def lint(e: str) -> list[tuple[str, dict[str, Any]]]:
        return [("lint_migration", {"url": url, "spec_inline": {"version": 1, "id": "sqlin", "operations": [op]}})
                for op in _expression_ops(e)]  # fmt: skip

    controls = call(project, lint("id >= 0"), "--read-only")
    assert all("error" not in a for a in controls), controls
    answers = call(project, [c for e in FILE_EXPRESSIONS for c in lint(e)], "--read-only")
    for answer in answers:
        assert answer.get("error", {}).get("code") == "E_INVALID_INPUT", answer
    _check(answers, out)


def test_validate_and_diff_take_no_sql(project: Path, server: tuple[str, str], out: Path) -> None:
    """Names and filter values of validate and diff are identifiers and bound values, never SQL."""
    dialect, url = server
    attacks = list(attacks_for(dialect, out).values())
    calls: list[tuple[str, dict[str, Any]]] = []
    for sql in attacks:
        checks = [{"type": "not_null", "table": "users", "columns": [sql[:128]]},
                  {"type": "row_count", "table": sql[:128]},
                  {"type": "not_null", "table": "users", "columns": ["id"],
                   "where": [{"column": "user_name", "op": "=", "value": sql}]}]  # fmt: skip
        calls.append(("validate", {"spec": {"source": url, "target": url, "checks": checks}}))
        calls.append(("diff", {"source_url": url, "target_url": url, "table": "users",
                               "where": [{"column": "user_name", "op": "=", "value": sql}]}))  # fmt: skip
        calls.append(("diff", {"source_url": url, "target_url": url, "table": "users", "columns": [sql]}))
    answers = call(project, calls, "--read-only")
    _check(answers, out)
