"""The workload tool through the real MCP stdio path (dmig serve + the official client) and the CLI exit code."""

from __future__ import annotations

import subprocess
from pathlib import Path

from mcp_client import call, dmig_executable, list_tools
from workload_helpers import count, users_table


def test_workload_over_stdio(project: Path, pg_url: str) -> None:
    rows = users_table(pg_url, 200)
    ok, bad, unknown = call(
        project,
        [
            ("workload", {"url": pg_url, "table": "users", "seconds": 2, "threads": 2, "rate": 100, "seed": 3}),
            ("workload", {"url": pg_url, "table": "users", "mix": {"old_delete": 1}}),
            ("workload", {"url": pg_url, "table": "users", "thread": 2}),
        ],
    )
    report = ok["report"]
    assert report["failed"] == 0 and report["ops"] > 0 and report["phases"][0]["phase"] == "old"
    assert {s["op"] for s in report["by_op"]} <= {"old_point_read", "old_range_read", "old_insert", "old_update",
                                                  "read_back"}  # fmt: skip
    assert ok["locks"]["samples"] > 0
    assert report["own_rows"]["deleted"] == report["own_rows"]["inserted"] and count(pg_url) == len(rows)
    assert bad["error"]["code"] == "E_INVALID_INPUT" and "old_delete" in bad["error"]["message"]
    assert "error" in unknown
    assert "workload" not in {t.name for t in list_tools(project, "--read-only")}


def test_workload_cli_exit_code(project: Path, mysql_url: str) -> None:
    users_table(mysql_url, 100)
    done = subprocess.run(
        [dmig_executable(), "workload", mysql_url, "users", "--seconds", "1.5", "--threads", "2", "--rate", "60"],
        cwd=project, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "0 failed" in done.stdout and "p99" in done.stdout
