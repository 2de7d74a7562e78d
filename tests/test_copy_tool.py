"""The copy tool through its two front ends: MCP over real stdio (with progress notifications) and the CLI."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from copy_helpers import cli, make_people, mcp_copy_with_progress, read_rows
from dmig.registry import all_tools
from mcp_client import call, list_tools


def test_tool_annotations_are_truthful(project: Path) -> None:
    spec = next(s for s in all_tools() if s.name == "copy")
    assert (spec.read_only, spec.destructive, spec.idempotent, spec.open_world) == (False, True, False, True)
    listed = {t.name: t for t in list_tools(project)}
    assert "copy" in listed and listed["copy"].annotations.destructive_hint is True
    assert "copy" not in {t.name for t in list_tools(project, "--read-only")}


def test_mcp_copy_reports_progress_and_a_summary(tmp_path: Path, pg_url: str, project: Path) -> None:
    src = f"sqlite:///{tmp_path / 'src.db'}"
    make_people(src, 3000)
    out, events = mcp_copy_with_progress(project, {"source_url": src, "target_url": pg_url, "batch_size": 200})
    assert out["ok"], out
    assert out["tables"][0]["rows"] == 3000 and out["verification"]["ok"] is True
    assert out["source_dialect"] == "sqlite" and out["target_dialect"] == "postgresql"
    assert events, "no progress notification reached the client"
    assert any("rows/s" in (m or "") and "ETA" in (m or "") for _, _, m in events)
    assert max(p for p, _, _ in events) == 3000 and all(t for _, t, _ in events)


def test_mcp_errors_are_structured(tmp_path: Path, project: Path) -> None:
    src = f"sqlite:///{tmp_path / 'src.db'}"
    make_people(src, 10)
    tgt = f"sqlite:///{tmp_path / 'tgt.db'}"
    missing, unknown_opt, outside, truncate = call(
        project,
        [
            ("copy", {"source_url": src, "target_url": tgt, "tables": ["nope"]}),
            ("copy", {"source_url": src, "target_url": tgt, "trucate": True}),
            ("copy", {"source_url": src, "target_url": tgt, "reject_file": "/etc/x.jsonl"}),
            ("copy", {"source_url": src, "target_url": tgt, "mode": "truncate"}),
        ],
    )
    assert missing["error"]["code"] == "E_NOT_FOUND"
    assert unknown_opt["error"]["code"] == "E_INVALID_INPUT"
    assert outside["error"]["code"] == "E_PATH_OUTSIDE_PROJECT"
    assert truncate["error"]["code"] == "E_CONFIRMATION_REQUIRED"
    assert truncate["error"]["details"]["confirm"].startswith("truncate-")


def test_cli_json_exit_codes(tmp_path: Path, mysql_url: str, project: Path) -> None:
    src = f"sqlite:///{tmp_path / 'src.db'}"
    make_people(src, 500)
    ok = cli(project, "copy", src, mysql_url, "--tables", "peo*", "--workers", "2", "--json")
    assert ok.returncode == 0, ok.stderr
    out = json.loads(ok.stdout)
    assert out["ok"] and out["tables"][0]["rows"] == 500 and out["totals"]["rows_per_s"] > 0
    assert read_rows(mysql_url)[0]["user_name"] == read_rows(src)[0]["user_name"]

    human = cli(project, "copy", src, mysql_url)
    assert human.returncode == 0 and "already complete" in human.stdout

    refused = cli(project, "copy", src, mysql_url, "--mode", "truncate", "--json")
    assert refused.returncode == 2
    token = json.loads(refused.stdout)["error"]["details"]["confirm"]
    redo = cli(project, "copy", src, mysql_url, "--mode", "truncate", "--confirm", token, "--json")
    assert redo.returncode == 0 and json.loads(redo.stdout)["tables"][0]["rows"] == 500

    unreachable = cli(project, "copy", src, "mysql://root:pw-xyz-123@127.0.0.1:1/db", "--json")
    assert unreachable.returncode == 2 and json.loads(unreachable.stdout)["error"]["code"] == "E_CONNECTION"
    assert "pw-xyz-123" not in unreachable.stdout + unreachable.stderr


def test_cli_exit_code_is_one_when_a_table_fails(tmp_path: Path, project: Path) -> None:
    src, tgt = tmp_path / "src.db", tmp_path / "tgt.db"
    with sqlite3.connect(src) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        db.executemany("INSERT INTO t VALUES (?, ?)", [(i, "x" * (i % 5)) for i in range(1, 51)])
    with sqlite3.connect(tgt) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT CHECK (length(name) < 3))")
    res = cli(project, "copy", f"sqlite:///{src}", f"sqlite:///{tgt}", "--reject-limit", "2", "--json")
    assert res.returncode == 1, res.stdout + res.stderr
    out = json.loads(res.stdout)
    assert out["ok"] is False and out["tables"][0]["state"] == "failed"
    assert "reject_limit" in out["tables"][0]["error"]


def test_existing_target_without_the_columns_is_refused(tmp_path: Path, project: Path) -> None:
    src, tgt = tmp_path / "src.db", tmp_path / "tgt.db"
    with sqlite3.connect(src) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, extra TEXT)")
    with sqlite3.connect(tgt) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
    res = cli(project, "copy", f"sqlite:///{src}", f"sqlite:///{tgt}", "--mode", "append", "--json")
    assert res.returncode == 2
    err = json.loads(res.stdout)["error"]
    assert err["code"] == "E_CONFLICT" and "extra" in err["message"]
