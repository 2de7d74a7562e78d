"""SQLite files under the MCP server: inside the project or DMIG_ALLOWED_DIRS, symlinks resolved first.

The agent must not read a browser's history database or create files anywhere by naming a path:
the MCP server refuses SQLite files outside the project folder and the folders the human listed in
``DMIG_ALLOWED_DIRS``; ATTACH and VACUUM INTO are held to the same folders. The CLI (a human typing
a path to their own file) is not confined. Each test walks the folders afterwards for new files.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from dmig.context import RunContext
from dmig.db import access
from dmig.db.engine import create
from dmig.errors import PathOutsideProject
from dmig.registry import run_tool, tool_for_command
from mcp_client import call
from test_security_urls import files_under, sentinel, sentinel_rows


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    sentinel(f"sqlite:///{folder / 'secret.db'}")
    return folder


@pytest.fixture
def strict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DMIG_ALLOWED_DIRS", raising=False)


def _mcp(command: str, arguments: dict, project: Path) -> object:
    spec = tool_for_command(command)
    assert spec is not None
    return run_tool(spec, arguments, RunContext(project_dir=project, front_end="mcp"))


def _ways_out(project: Path, outside: Path) -> list[str]:
    (project / "link.db").symlink_to(outside / "secret.db")
    (project / "linkdir").symlink_to(outside)
    return [
        str(outside / "secret.db"),
        str(project / "link.db"),
        str(project / "linkdir" / "secret.db"),
        f"{project}/../outside/secret.db",
        "~/../../" + str(outside / "secret.db").lstrip("/"),
    ]


@pytest.mark.parametrize("which", range(5))
@pytest.mark.parametrize("tool", ["inspect", "validate", "diff", "health"])
def test_mcp_refuses_sqlite_files_outside_the_project(
    project: Path, outside: Path, strict: None, which: int, tool: str
) -> None:
    url = "sqlite:///" + _ways_out(project, outside)[which]
    arguments = {
        "inspect": {"url": url},
        "validate": {"spec": {"target": url, "checks": [{"type": "not_null", "table": "sentinel", "columns": ["v"]}]}},
        "diff": {"source_url": url, "target_url": url, "table": "sentinel"},
        "health": {"url": url, "thresholds": {}, "rounds": 1},
    }[tool]
    with pytest.raises(PathOutsideProject) as info:
        _mcp(tool, arguments, project)
    assert info.value.details["reason"] == "sqlite_outside_allowed_dirs"
    assert "DMIG_ALLOWED_DIRS" in info.value.info().message


def test_mcp_copy_cannot_create_a_file_outside_the_project(project: Path, outside: Path, strict: None) -> None:
    src = project / "src.db"
    sentinel(f"sqlite:///{src}")
    before = files_under(outside)
    for target in (outside / "new.db", outside / "deeper" / "new.db"):
        with pytest.raises(PathOutsideProject):
            _mcp("copy", {"source_url": f"sqlite:///{src}", "target_url": f"sqlite:///{target}"}, project)
    assert files_under(outside) == before
    out = _mcp("copy", {"source_url": f"sqlite:///{src}", "target_url": f"sqlite:///{project / 'new.db'}"}, project)
    assert out.ok and sentinel_rows(f"sqlite:///{project / 'new.db'}") == [(1, "intact")]


def test_files_inside_the_project_and_allowed_dirs_work(
    project: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inside = project / "data" / "app.db"
    inside.parent.mkdir()
    sentinel(f"sqlite:///{inside}")
    monkeypatch.delenv("DMIG_ALLOWED_DIRS", raising=False)
    assert [t.name for t in _mcp("inspect", {"url": f"sqlite:///{inside}"}, project).tables] == ["sentinel"]
    monkeypatch.chdir(project)
    assert [t.name for t in _mcp("inspect", {"url": "sqlite:///data/app.db"}, project).tables] == ["sentinel"]
    monkeypatch.setenv("DMIG_ALLOWED_DIRS", os.pathsep.join(["/nonexistent-dmig", str(outside)]))
    url = f"sqlite:///{outside / 'secret.db'}"
    assert [t.name for t in _mcp("inspect", {"url": url}, project).tables] == ["sentinel"]


def test_the_cli_is_not_confined(project: Path, outside: Path, strict: None) -> None:
    spec = tool_for_command("inspect")
    assert spec is not None
    out = run_tool(spec, {"url": f"sqlite:///{outside / 'secret.db'}"}, RunContext(project_dir=project))
    assert [t.name for t in out.tables] == ["sentinel"]


@pytest.mark.parametrize("read_only", [False, True])
@pytest.mark.parametrize(
    "statement", ["ATTACH DATABASE '{out}' AS x", "VACUUM INTO '{out}'", "ATTACH DATABASE 'file:{out}?mode=rwc' AS x"]
)
def test_attach_and_vacuum_into_are_confined_too(project: Path, outside: Path, statement: str, read_only: bool) -> None:
    db = project / "app.db"
    sentinel(f"sqlite:///{db}")
    out = outside / "made.db"
    before = files_under(outside)
    with access.scope(access.for_call(read_only=read_only, project_dir=project, confine=True)):
        engine = create(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            with pytest.raises(sa.exc.DBAPIError):
                conn.exec_driver_sql(statement.format(out=out))
            if not read_only:  # inside the project, a writable connection may attach
                conn.exec_driver_sql(f"ATTACH DATABASE '{project / 'side.db'}' AS side")
    finally:
        engine.dispose()
    assert files_under(outside) == before


def test_mcp_server_over_stdio_confines_sqlite(project: Path, outside: Path, tmp_path: Path) -> None:
    inside = project / "app.db"
    sentinel(f"sqlite:///{inside}")
    (project / "link.db").symlink_to(outside / "secret.db")
    before = files_under(tmp_path)
    calls = [
        ("inspect", {"url": f"sqlite:///{outside / 'secret.db'}"}),
        ("inspect", {"url": f"sqlite:///{project / 'link.db'}"}),
        ("copy", {"source_url": f"sqlite:///{inside}", "target_url": f"sqlite:///{outside / 'made.db'}"}),
        (
            "validate",
            {
                "spec": {
                    "target": f"sqlite:///{outside / 'made2.db'}",
                    "checks": [{"type": "not_null", "table": "sentinel", "columns": ["v"]}],
                }
            },
        ),
        ("inspect", {"url": f"sqlite:///{inside}"}),
    ]
    results = call(project, calls, env={"DMIG_ALLOWED_DIRS": ""})
    for res in results[:4]:
        assert res.get("error", {}).get("code") == "E_PATH_OUTSIDE_PROJECT", res
    assert "error" not in results[4], results[4]
    assert {p for p in files_under(tmp_path) - before if p.suffix == ".db"} == set()
    allowed = call(project, calls[:1], env={"DMIG_ALLOWED_DIRS": str(outside)})
    assert "error" not in allowed[0], allowed[0]
