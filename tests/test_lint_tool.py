"""lint_migration through the service, the `dmig lint` CLI (exit codes for CI) and MCP over stdio."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dmig.cli import main
from dmig.context import RunContext
from dmig.errors import InvalidInput, PathOutsideProject
from dmig.tools.lint import LintInput, lint_migration
from mcp_client import call
from spec_helpers import users_table

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "migrations" / "examples" / "split-user-name.yaml"
BAD_SQL = "SET lock_timeout = '1s'; SET statement_timeout = '1min';\nCREATE INDEX i ON t (a);"
GOOD_SQL = "SET lock_timeout = '1s'; SET statement_timeout = '1min';\nCREATE INDEX CONCURRENTLY i ON t (a);"


def _project_with_spec(project: Path) -> Path:
    target = project / "migrations" / "split.yaml"
    target.parent.mkdir()
    shutil.copy(EXAMPLE, target)
    return target


def test_service_lints_a_spec_file_and_renders_steps(project: Path) -> None:
    _project_with_spec(project)
    out = lint_migration(
        LintInput(spec="migrations/split.yaml", dialect="postgresql", server_version="15"),
        RunContext(project_dir=project),
    )
    assert out.ok and out.server_version == "PostgreSQL 15"
    assert [s.id for s in out.steps["expand"]] == [
        "op0.expand.1.compat_view",
        "op0.expand.2.add_columns",
        "op0.expand.3.sync_triggers",
    ]
    assert out.steps["contract"][0].destructive and out.checks


def test_service_reads_dialect_and_version_from_a_live_database(pg_url: str, project: Path) -> None:
    users_table(pg_url, [(1, "a b")])
    out = lint_migration(
        LintInput(
            spec_inline=json.loads(
                json.dumps({"id": "x", "operations": [{"op": "set_not_null", "table": "users", "column": "user_name"}]})
            ),
            url=pg_url,
        ),
        RunContext(project_dir=project),
    )
    assert out.dialect == "postgresql" and out.server_version.startswith("PostgreSQL 1")


def test_service_refuses_bad_input(project: Path, tmp_path: Path) -> None:
    rc = RunContext(project_dir=project)
    with pytest.raises(PathOutsideProject):
        lint_migration(LintInput(spec="../../elsewhere.yaml"), rc)
    with pytest.raises(InvalidInput):
        lint_migration(LintInput(spec_inline={"id": "x", "operations": [{"op": "nope"}]}), rc)
    with pytest.raises(ValueError):
        LintInput(sql="SELECT 1", spec="a.yaml")


def test_cli_exit_codes(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _project_with_spec(project)
    base = ["--project-dir", str(project), "lint"]
    assert main([*base, "--sql", BAD_SQL, "--dialect", "postgresql"]) == 1
    assert "pg-create-index-non-concurrent" in capsys.readouterr().out
    assert main([*base, "--sql", GOOD_SQL, "--dialect", "postgresql"]) == 0
    assert main([*base, "migrations/split.yaml", "--dialect", "mysql", "--server-version", "10.11"]) == 0
    capsys.readouterr()
    assert main([*base, "--sql", "ALTER TABLE t ADD COLUMN c INT, ALGORITHM=COPY", "--dialect", "mysql", "--json"]) == 1
    payload = json.loads(capsys.readouterr().out)
    assert "mysql-algorithm-copy" in {f["rule"] for f in payload["findings"]}
    ignored = BAD_SQL.replace(
        "CREATE INDEX", "-- dmig:ignore pg-create-index-non-concurrent reason: empty table\nCREATE INDEX"
    )
    assert main([*base, "--sql", ignored, "--dialect", "postgresql"]) == 0
    assert main([*base, "no-such-spec.yaml"]) == 2


def test_lint_over_mcp_stdio(project: Path) -> None:
    _project_with_spec(project)
    bad, spec, outside, malformed = call(
        project,
        [
            ("lint_migration", {"sql": BAD_SQL, "dialect": "postgresql", "server_version": "16"}),
            ("lint_migration", {"spec": "migrations/split.yaml", "dialect": "sqlite"}),
            ("lint_migration", {"spec": "../x.yaml"}),
            ("lint_migration", {"spec_inline": {"id": "x", "operations": [{"op": "split_column"}]}}),
        ],
    )
    assert bad["ok"] is False and bad["counts"]["error"] == 1
    assert bad["findings"][-1]["line"] == 2 and bad["findings"][-1]["safe_alternative"]
    assert spec["ok"] is True and spec["steps"]["contract"][0]["id"] == "op0.contract.1.replace_with_generated"
    assert outside["error"]["code"] == "E_PATH_OUTSIDE_PROJECT"
    assert malformed["error"]["code"] == "E_INVALID_INPUT" and malformed["error"]["details"]["errors"]
