"""The project policy decides which databases the agent may use; every change lands in the audit log."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from dmig.context import RunContext
from dmig.errors import DmigError
from dmig.registry import all_tools, run_tool
from mcp_client import call

TOOLS = {t.name: t for t in all_tools()}


def _db(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.execute("INSERT INTO t VALUES (1, 'a')")
    return f"sqlite:///{path}"


def _policy(project: Path, text: str) -> None:
    path = project / "docs" / "00-meta" / "dmig-policy.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _code(fn) -> str:
    with pytest.raises(DmigError) as info:
        fn()
    return info.value.code


def test_without_a_policy_any_url_is_allowed(project: Path, tmp_path: Path) -> None:
    url = _db(tmp_path / "a.db")
    out = run_tool(TOOLS["inspect"], {"url": url}, RunContext(project_dir=project))
    assert [t.name for t in out.tables] == ["t"]


def test_alias_resolves_to_its_env_var_and_ad_hoc_urls_are_refused(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = _db(tmp_path / "a.db")
    other = _db(tmp_path / "b.db")
    monkeypatch.setenv("APP_DB_URL", url)
    _policy(project, "version: 1\ndatabases:\n  app: {env: APP_DB_URL, writable: false}\n")
    rc = RunContext(project_dir=project)
    assert run_tool(TOOLS["inspect"], {"url": "app"}, rc).tables[0].name == "t"
    assert run_tool(TOOLS["inspect"], {"url": "env:APP_DB_URL"}, rc).tables[0].name == "t"
    assert run_tool(TOOLS["inspect"], {"url": url}, rc).tables[0].name == "t"  # the same database, spelled out
    assert _code(lambda: run_tool(TOOLS["inspect"], {"url": other}, rc)) == "E_POLICY"
    assert _code(lambda: run_tool(TOOLS["inspect"], {"url": "nosuch"}, rc)) == "E_INVALID_INPUT"
    spec = {"target": other, "checks": [{"type": "not_null", "table": "t", "columns": ["v"]}]}
    assert _code(lambda: run_tool(TOOLS["validate"], {"spec": spec}, rc)) == "E_POLICY"


def test_ad_hoc_urls_when_the_policy_allows_them(project: Path, tmp_path: Path) -> None:
    url = _db(tmp_path / "a.db")
    _policy(project, "version: 1\nallow_ad_hoc_urls: true\ndatabases: {}\n")
    assert run_tool(TOOLS["inspect"], {"url": url}, RunContext(project_dir=project)).tables


def test_writes_to_a_read_only_database_are_refused(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SRC_URL", _db(tmp_path / "src.db"))
    monkeypatch.setenv("DST_URL", f"sqlite:///{tmp_path / 'dst.db'}")
    _policy(project, "databases:\n  src: {env: SRC_URL}\n  dst: {env: DST_URL, writable: false}\n")
    rc = RunContext(project_dir=project)
    args = {"source_url": "src", "target_url": "dst"}
    assert _code(lambda: run_tool(TOOLS["copy"], args, rc)) == "E_POLICY"
    assert not (tmp_path / "dst.db").exists()


def test_production_destructive_steps_need_a_recent_verified_backup(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SRC_URL", _db(tmp_path / "src.db"))
    monkeypatch.setenv("PROD_URL", f"sqlite:///{tmp_path / 'prod.db'}")
    _policy(
        project,
        "databases:\n  src: {env: SRC_URL}\n  prod: {env: PROD_URL, writable: true, production: true, "
        "max_backup_age: 2h}\n",
    )
    err = _code(
        lambda: run_tool(TOOLS["copy"], {"source_url": "src", "target_url": "prod"}, RunContext(project_dir=project))
    )
    assert err == "E_POLICY"


@pytest.mark.parametrize(
    "text",
    ["databases: [1, 2]\n", "databases:\n  app: {env: X, writeable: true}\n", "version: 1\nread_only: tru\n", "{{{"],
)
def test_a_malformed_policy_fails_closed(project: Path, tmp_path: Path, text: str) -> None:
    _policy(project, text)
    url = _db(tmp_path / "a.db")
    assert _code(lambda: run_tool(TOOLS["inspect"], {"url": url}, RunContext(project_dir=project))) == "E_CORRUPT_FILE"


def test_every_change_is_audited_with_credentials_masked(project: Path) -> None:
    rc = RunContext(project_dir=project, front_end="cli")
    run_tool(TOOLS["session_init"], {"test_command": "true"}, rc)
    run_tool(TOOLS["bus_append"], {"type": "finding", "text": "see postgresql://app:Hunter2Secret@db/x"}, rc)
    with pytest.raises(DmigError):
        run_tool(TOOLS["status_update"], {"story_id": "US-404", "status": "done"}, rc)
    audit = (project / "docs" / "00-meta" / "dmig-audit.jsonl").read_text()
    assert "Hunter2Secret" not in audit
    lines = [json.loads(line) for line in audit.splitlines()]
    assert [(e["tool"], e["outcome"]) for e in lines] == [
        ("session_init", "ok"),
        ("bus_append", "ok"),
        ("status_update", "error:E_NOT_FOUND"),
    ]
    assert all(e["actor"] == "AG-DATAMIGRATION" and e["front_end"] == "cli" and e["ts"].endswith("Z") for e in lines)


def test_audit_and_policy_over_mcp_stdio(project: Path, tmp_path: Path) -> None:
    url = _db(tmp_path / "a.db")
    other = _db(tmp_path / "b.db")
    _policy(project, "version: 1\ndatabases:\n  app: {env: APP_DB_URL}\n")
    out = call(
        project,
        [("inspect", {"url": "app"}), ("inspect", {"url": other}), ("bus_append", {"type": "status", "text": "hi"})],
        env={"APP_DB_URL": url},
    )
    assert out[0]["tables"][0]["name"] == "t"
    assert out[1]["error"]["code"] == "E_POLICY"
    audit = [json.loads(x) for x in (project / "docs/00-meta/dmig-audit.jsonl").read_text().splitlines()]
    assert audit[-1]["tool"] == "bus_append" and audit[-1]["front_end"] == "mcp"
