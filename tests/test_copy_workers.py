"""How ``copy`` runs in processes: ``workers`` counts the coordinator (it copies partitions too),
the others are plain child processes (no multiprocessing resource tracker beside them), a killed
worker fails only its own partitions and a re-run completes the copy, and under the MCP server
(stdio, threads) workers never write to the protocol channel."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import sqlalchemy as sa

from copy_helpers import engine, mcp_copy_with_progress
from mcp_client import dmig_executable
from test_copy_native import _committed


def _fill(url: str, rows: int) -> None:
    e = engine(url)
    with e.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT NOT NULL, amount NUMERIC(12,2))")
        conn.exec_driver_sql(
            "INSERT INTO items SELECT i, 'item ' || i, i / 100.0 FROM generate_series(1, %(n)s) AS i", {"n": rows}
        )
    e.dispose()


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        for children in Path(f"/proc/{todo.pop()}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                kids = [int(k) for k in children.read_text().split()]
                out += kids
                todo += kids
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _start(project: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "DMIG_PROJECT_DIR": str(project)}
    cmd = [dmig_executable(), "copy", *args, "--json"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=project)


def _ids(url: str) -> tuple[int, int]:
    e = engine(url)
    with e.connect() as conn:
        total, distinct = conn.execute(sa.text("SELECT COUNT(*), COUNT(DISTINCT id) FROM items")).one()
    e.dispose()
    return int(total), int(distinct)


def test_workers_counts_the_coordinator_and_no_resource_tracker_starts(
    pg_url: str, pg_url2: str, project: Path
) -> None:
    _fill(pg_url, 100_000)
    proc = _start(project, pg_url, pg_url2, "--workers", "3", "--batch-size", "1000", "--partition-rows", "5000")
    seen: dict[int, str] = {}
    while proc.poll() is None:
        for pid in _descendants(proc.pid):
            # Between fork and exec a child still shows the coordinator's own command line: keep
            # reading until it shows what it became (a worker's is final, so it is kept).
            if "dmig.move.partitions" not in seen.get(pid, ""):
                seen[pid] = _cmdline(pid)
        time.sleep(0.02)
    stdout, stderr = proc.communicate()
    out = json.loads(stdout)
    assert proc.returncode == 0 and out["ok"], stderr
    assert out["workers"] == 3 and out["tables"][0]["partitions"] > 3 and out["tables"][0]["rows"] == 100_000
    assert seen, "no worker process was seen"
    assert len(seen) <= 2, f"--workers 3 is this process and two others, saw: {seen}"
    assert all("dmig.move.partitions" in cmd for cmd in seen.values()), seen
    assert not any(_alive(pid) for pid in seen), "a worker outlived the copy"


def test_a_killed_worker_fails_its_partition_and_a_rerun_completes(pg_url: str, pg_url2: str, project: Path) -> None:
    rows = 300_000
    _fill(pg_url, rows)
    args = (pg_url, pg_url2, "--workers", "2", "--batch-size", "500", "--partition-rows", "20000", "--no-verify")
    proc = _start(project, *args)
    deadline = time.monotonic() + 60
    while not (kids := _descendants(proc.pid)) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert kids, "no worker process was started"
    # The worker is started before planning and may still be idle (then its death costs nothing and the
    # copy succeeds): wait until rows are committed. The coordinator hands the worker its partition before
    # it takes one itself, so from then on the worker holds one of the 15 partitions.
    e, deadline = engine(pg_url2), time.monotonic() + 120
    try:
        with e.connect() as conn:
            while proc.poll() is None and not _committed(conn) and time.monotonic() < deadline:
                time.sleep(0.02)
    finally:
        e.dispose()
    assert proc.poll() is None, "the copy ended before the worker could be killed"
    os.kill(kids[0], signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=300)
    first = json.loads(stdout)
    assert proc.returncode == 1 and not first["ok"], stderr
    assert "worker failed" in (first["tables"][0]["error"] or ""), first["tables"][0]
    assert not _alive(kids[0])

    again = _start(project, *args)
    stdout, stderr = again.communicate(timeout=300)
    second = json.loads(stdout)
    assert again.returncode == 0 and second["ok"], stderr
    assert _ids(pg_url2) == (rows, rows)  # no gap, no duplicate


def test_mcp_copy_with_worker_processes_keeps_stdio_clean(pg_url: str, pg_url2: str, project: Path) -> None:
    _fill(pg_url, 20_000)
    out, events = mcp_copy_with_progress(
        project,
        {"source_url": pg_url, "target_url": pg_url2, "workers": 2, "partition_rows": 2000, "batch_size": 500},
    )
    assert out["ok"], out
    [table] = out["tables"]
    assert table["rows"] == 20_000 and table["partitions"] > 1 and out["verification"]["ok"] is True
    assert events and max(p for p, _, _ in events) == 20_000
