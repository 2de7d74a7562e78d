"""Survive ``kill -9`` at random moments: re-running the same command resumes with no duplicate, no gap.

The target table of the first scenario deliberately has NO primary key (the key is transformed by
a cast), so a resume that re-wrote a batch would leave visible duplicates instead of a unique
violation; rows are then compared with the checksum diff (``dmig.diff.diff_table``).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from copy_helpers import cli, engine, make_people, popen, read_rows
from dmig.diff.service import diff_table

KILLS = 5
COMPARED = ["id", "user_name", "note", "amount", "ratio", "active", "created_at", "birthday", "avatar", "status"]


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purpose
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _kill_loop(project: Path, args: list[str], rng: random.Random, kills: int = KILLS) -> int:
    """Start, kill -9 after a random delay, repeat; returns how many runs were killed mid-copy."""
    killed = 0
    for _ in range(kills):
        proc = popen(project, *args)
        time.sleep(rng.uniform(2.0, 8.0))  # CLI start-up is 1-4 s here: kills land in planning and in the load
        if proc.poll() is not None:  # finished before the kill: nothing left to interrupt
            break
        kill_and_reap(proc)
        killed += 1
    return killed


def kill_and_reap(proc: subprocess.Popen[bytes]) -> None:
    """kill -9 the coordinator; its worker processes must not outlive it (they die with their parent)."""
    children = _children(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while any(_alive(c) for c in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(c) for c in children), "worker processes outlived the killed coordinator"


def _distinct(url: str) -> tuple[int, int]:
    e = engine(url)
    with e.connect() as conn:
        total = conn.execute(sa.text("SELECT COUNT(*), COUNT(DISTINCT id) FROM people")).one()
    e.dispose()
    return int(total[0]), int(total[1])


def verify_rows(src: str, tgt: str, rows: int) -> None:
    """Checksum diff of the copied table (the diff module landed; an ordered full-row compare is the fallback)."""
    result = diff_table(src, tgt, "people", key=["id"], columns=COMPARED, limit=5)
    assert result.equal, result.model_dump_json(indent=1)
    assert result.stats.rows_source == result.stats.rows_target == rows


@pytest.mark.slow
def test_kill_nine_at_random_points_then_resume_sqlite_to_postgresql(
    tmp_path: Path, pg_url: str, project: Path
) -> None:
    rng = random.Random(int(os.environ.get("DMIG_TEST_SEED", "0")) or None)
    rows = 40_000
    src = f"sqlite:///{tmp_path / 'src.db'}"
    make_people(src, rows)
    mapping = {"people": {"transforms": [{"op": "cast", "column": "id", "to": "bigint"}]}}  # no PK on the target
    args = ["copy", src, pg_url, "--workers", "2", "--batch-size", "500", "--partition-rows", "8000"]
    args += ["--mapping", json.dumps(mapping), "--json"]

    killed = _kill_loop(project, args, rng)

    final = cli(project, *args)
    assert final.returncode == 0, final.stdout + final.stderr
    out = json.loads(final.stdout)
    assert out["ok"] and out["tables"][0]["rows"] == rows and out["tables"][0]["rejects"] == 0
    assert out["resumed"] or out["already_complete"] or killed == 0
    assert out["tables"][0]["partitions"] > 1
    assert _distinct(pg_url) == (rows, rows)
    verify_rows(src, pg_url, rows)


@pytest.mark.slow
def test_kill_nine_while_the_primary_key_is_deferred_then_resume_builds_it(
    tmp_path: Path, pg_url: str, project: Path
) -> None:
    """PostgreSQL tables the copy creates are loaded without their key index (dmig.move.primarykey):
    kills at any point, then a resume, still give every row once and the key, named as PostgreSQL names it."""
    rng = random.Random(int(os.environ.get("DMIG_TEST_SEED", "0")) or None)
    rows = 30_000
    src = f"sqlite:///{tmp_path / 'src.db'}"
    make_people(src, rows)
    args = ["copy", src, pg_url, "--workers", "2", "--batch-size", "500", "--partition-rows", "8000", "--json"]

    _kill_loop(project, args, rng, kills=3)

    final = cli(project, *args)
    assert final.returncode == 0, final.stdout + final.stderr
    out = json.loads(final.stdout)
    assert out["ok"] and out["tables"][0]["rows"] == rows
    assert _distinct(pg_url) == (rows, rows)
    e = engine(pg_url)
    pk = sa.inspect(e).get_pk_constraint("people")
    e.dispose()
    assert pk["constrained_columns"] == ["id"] and pk["name"] == "people_pkey"
    verify_rows(src, pg_url, rows)


@pytest.mark.slow
def test_kill_nine_then_resume_postgresql_to_mariadb_with_key(pg_url: str, mysql_url: str, project: Path) -> None:
    rng = random.Random(int(os.environ.get("DMIG_TEST_SEED", "0")) or None)
    rows = 20_000
    make_people(pg_url, rows)
    args = ["copy", pg_url, mysql_url, "--workers", "1", "--batch-size", "400", "--json"]

    _kill_loop(project, args, rng)

    final = cli(project, *args)
    # exit 3: matched, but people.payload (jsonb vs MariaDB JSON) has no common form and is named (issue 14)
    assert final.returncode == 3, final.stdout + final.stderr
    out = json.loads(final.stdout)
    assert out["ok"] and out["tables"][0]["rows"] == rows
    assert out["verification"]["tables"][0]["counts_match"] is True
    assert out["verification"]["tables"][0]["checksum"] == "partial"
    assert [n.split(" ")[0] for n in out["verification"]["not_compared"]] == ["people.payload"]
    assert _distinct(mysql_url) == (rows, rows)
    src_rows, tgt_rows = read_rows(pg_url), read_rows(mysql_url)
    assert [r["id"] for r in tgt_rows] == [r["id"] for r in src_rows]


def test_parallel_partitions_cover_the_key_range_exactly(
    tmp_path: Path, pg_url: str, pg_url2: str, project: Path
) -> None:
    make_people(pg_url, 3000)
    e = engine(pg_url)
    with e.begin() as conn:  # gaps in the key space, and rows beyond the last planned boundary
        conn.exec_driver_sql("DELETE FROM people WHERE id BETWEEN 1000 AND 1600")
        conn.exec_driver_sql("UPDATE people SET id = id + 1000000 WHERE id > 2990")
    e.dispose()
    from copy_helpers import run_copy

    out = run_copy(pg_url, pg_url2, project, workers=2, partition_rows=500, batch_size=128)
    assert out.ok, out.model_dump_json(indent=1)
    [t] = out.tables
    assert t.partitions > 2 and t.rows == 3000 - 601
    assert out.verification.tables[0].checksum == "match"
    assert [r["id"] for r in read_rows(pg_url2)] == [r["id"] for r in read_rows(pg_url)]
