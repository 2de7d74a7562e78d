"""Security: true annotations for tools that run user-supplied SQL or commands (12.4), and no option
injection through identifiers handed to client programs (12.5).

Each test checks the effect independently: the hook's answer, the registry, and for the client programs
that a table whose name looks like an option neither creates a file outside the project nor loses data.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from backup_helpers import root, run_sql, take, verify
from dmig import registry

ROOT = Path(__file__).resolve().parents[1]
HOOK = ROOT / "hooks" / "confirm-destructive.sh"
PREFIX = "mcp__plugin_agileflow_dmig__"
RUNS_USER_INPUT = ["run_migration", "verify", "session_resume"]


def _specs() -> dict:
    return {s.name: s for s in registry.all_tools()}


@pytest.mark.parametrize("name", RUNS_USER_INPUT)
def test_tools_that_run_user_sql_or_commands_are_destructive(name):
    spec = _specs()[name]
    assert spec.destructive is True and spec.read_only is False


@pytest.mark.parametrize("name", RUNS_USER_INPUT)
def test_hook_matcher_guards_them(name):
    import re

    matcher = json.loads((ROOT / "hooks" / "hooks.json").read_text())["hooks"]["PreToolUse"][0]["matcher"]
    assert re.fullmatch(matcher, PREFIX + name)


@pytest.mark.parametrize("name", RUNS_USER_INPUT)
def test_hook_asks_with_a_true_consequence(name):
    out = subprocess.run(
        ["sh", str(HOOK)], input=json.dumps({"tool_name": PREFIX + name}), capture_output=True, text=True, check=True
    )
    answer = json.loads(out.stdout)["hookSpecificOutput"]
    assert answer["permissionDecision"] == "ask"
    reason = answer["permissionDecisionReason"]
    assert name in reason and "can change or drop data" not in reason  # a specific sentence, not the fallback
    assert ("raw_sql" in reason) if name == "run_migration" else ("test command" in reason)


NASTY = [
    "--result-file={sentinel}",
    "-r{sentinel}",
    "--help",
    "-- spaced name",
    'it\'s "quoted"',
    "$(touch {sentinel})",
    "`touch {sentinel}`",
]


@pytest.mark.parametrize("template", NASTY)
def test_mariadb_native_backup_option_like_table_names(mysql_url, project, tmp_path_factory, template):
    outside = tmp_path_factory.mktemp("outside")
    sentinel = outside / f"sentinel-{uuid.uuid4().hex[:8]}"
    name = template.format(sentinel=sentinel)[:64]
    quoted = "`" + name.replace("`", "``") + "`"
    run_sql(mysql_url, f"CREATE TABLE {quoted} (id INT PRIMARY KEY, v VARCHAR(20))")
    run_sql(mysql_url, f"INSERT INTO {quoted} VALUES (1, 'a'), (2, 'b')")
    try:
        out = take(project, mysql_url, fmt="native", tables=[name])
    except Exception as exc:  # a refusal is acceptable if it is structured and clear
        from dmig.errors import DmigError

        assert isinstance(exc, DmigError), repr(exc)
    else:
        v = verify(project, out.manifest.backup_id)
        assert v.passed
        entry = out.manifest.table(name)
        assert entry.rows == 2
    assert not sentinel.exists(), "a client program wrote outside the project"
    assert list(outside.iterdir()) == []
    engine = sa.create_engine(mysql_url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql(f"SELECT COUNT(*) FROM {quoted}").scalar() == 2
    finally:
        engine.dispose()
    assert root(project).is_relative_to(project)


SECRETS = {
    "SOURCE_DB_URL": "postgresql://app:hunter2-source@db.example/prod",
    "TARGET_DATABASE_URL": "mysql://root:hunter2-target@db.example/prod",
    "API_TOKEN": "tok-hunter2-abcdef",
    "DMIG_BACKUP_KEY": "key-hunter2-123456",
    "INNOCENT_NAME": "https://u:hunter2-inline@example.org/x",
    "MY_PASSWORD": "hunter2-plain",
}


@pytest.mark.parametrize("command", ["env", "printenv", "set", "cat /proc/self/environ | tr '\\0' '\\n'"])
def test_verify_runs_the_test_command_without_secret_variables(monkeypatch, tmp_path, command):
    from dmig.harness import verify as verify_mod

    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    run = verify_mod.run_command(command + " > captured.txt; cat captured.txt", tmp_path, 20_000)
    captured = (tmp_path / "captured.txt").read_text()
    for k, v in SECRETS.items():
        assert v not in captured, f"{k} reached the test command"
        assert v not in run.output_summary
    assert "PATH=" in captured or "PATH" in captured  # the ordinary environment is kept
