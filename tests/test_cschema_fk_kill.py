"""A copy into PostgreSQL killed (SIGKILL) in its foreign-key step finishes on the next run.

The test hook ``DMIG_TEST_HOLD_FOREIGN_KEY`` (dmig.move.schema) stops the copy right after a key was
added NOT VALID, before it is validated: the window in which a kill used to leave a key that every
re-run then failed to add again (``constraint ... already exists``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import sqlalchemy as sa

from copy_helpers import cli, engine
from mcp_client import dmig_executable


def _source(path: Path) -> str:
    url = f"sqlite:///{path}"
    e = sa.create_engine(url)
    with e.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        conn.exec_driver_sql(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, item_id INTEGER REFERENCES items(id), qty INTEGER)"
        )
        conn.exec_driver_sql("INSERT INTO items VALUES " + ",".join(f"({i}, 'i{i}')" for i in range(1, 51)))
        conn.exec_driver_sql(
            "INSERT INTO orders VALUES " + ",".join(f"({i}, {i % 50 + 1}, {i})" for i in range(1, 301))
        )
    e.dispose()
    return url


def _keys(url: str) -> list[tuple[str, bool]]:
    e = engine(url)
    with e.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT conname, convalidated FROM pg_constraint WHERE contype = 'f' "
                "AND conrelid = 'orders'::regclass ORDER BY conname"
            )
        ).all()
    e.dispose()
    return [(r[0], bool(r[1])) for r in rows]


def test_a_copy_killed_in_the_foreign_key_step_finishes_on_rerun(tmp_path: Path, pg_url: str, project: Path) -> None:
    src = _source(tmp_path / "src.db")
    args = ["copy", src, pg_url, "--workers", "1", "--json"]
    marker = tmp_path / "holding"
    env = {**os.environ, "DMIG_PROJECT_DIR": str(project), "DMIG_TEST_HOLD_FOREIGN_KEY": str(marker)}
    proc = subprocess.Popen(
        [dmig_executable(), *args], env=env, cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the copy never reached the foreign key step"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert [valid for _name, valid in _keys(pg_url)] == [False]  # added NOT VALID, then killed

    again = cli(project, *args)

    assert again.returncode == 0, again.stdout + again.stderr
    out = json.loads(again.stdout)
    assert out["ok"] and out["resumed"], out
    assert _keys(pg_url) == [(_keys(pg_url)[0][0], True)]
