"""A backfill killed with SIGKILL at random points (a real `dmig run-migration` process) and resumed repeatedly:
every row is done exactly once, the checkpoint and the batch log stay consistent, validation passes."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path

from dmig.execute.backfill import decode_key
from execute_helpers import batches, checkpoint, make_plan, query, split_spec, users_table
from mcp_client import dmig_executable

KILLS = 2


def _start(project: Path, plan_file: Path, checksum: str) -> subprocess.Popen:
    cmd = [dmig_executable(), "--project-dir", str(project), "run-migration", str(plan_file.relative_to(project)),
           "--confirm", checksum, "--throttle-ms", "15", "--json"]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _rows_done(url: str, migration_id: str) -> int:
    try:
        cp = checkpoint(url, migration_id)
    except Exception:  # the checkpoint table may not exist yet
        return -1
    return cp[1] if cp else -1


def _assert_consistent(url: str, migration_id: str) -> int:
    """The batch log partitions the key range walked so far, and the checkpoint agrees with it."""
    cp = checkpoint(url, migration_id)
    if cp is None:
        return 0
    _state, rows_done, n_batches, last_key, _hi, version = cp
    log = batches(url, migration_id)
    assert [b[0] for b in log] == list(range(1, n_batches + 1))
    assert version == n_batches
    assert sum(b[3] for b in log) == rows_done
    previous = None
    for _no, lo, hi, _rows in log:
        assert lo == previous, "batches must be contiguous and disjoint"
        previous = hi
    assert previous == last_key
    return rows_done


def test_backfill_survives_sigkill_and_resumes_exactly_once(db_url: str, project: Path) -> None:
    users_table(db_url, n=6000)
    needing = query(db_url, "SELECT count(*) FROM users WHERE user_name IS NOT NULL")[0][0]
    plan, plan_file = make_plan(project, db_url, split_spec(batch_size=100))
    rng = random.Random(20240601)
    kills_mid_backfill = 0
    for _ in range(KILLS + 5):
        before = max(_rows_done(db_url, plan.id), 0)
        proc = _start(project, plan_file, plan.checksum)
        deadline = time.monotonic() + 60
        while proc.poll() is None and _rows_done(db_url, plan.id) <= before and time.monotonic() < deadline:
            time.sleep(0.02)
        if proc.poll() is not None:
            break  # finished before we could kill it
        time.sleep(rng.uniform(0, 0.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done = _assert_consistent(db_url, plan.id)
        if 0 < done < needing:
            kills_mid_backfill += 1
        if kills_mid_backfill >= KILLS:
            break
    assert kills_mid_backfill >= 1, "no kill landed inside the backfill"
    final = subprocess.run(
        [dmig_executable(), "--project-dir", str(project), "run-migration", str(plan_file.relative_to(project)),
         "--confirm", plan.checksum, "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert final.returncode == 0, final.stderr
    out = json.loads(final.stdout)
    assert out["state"] == "validated" and out["validation_passed"] and out["resumed"]
    assert _assert_consistent(db_url, plan.id) == needing  # every row exactly once
    state, _rows, *_rest, hi_max, _v = checkpoint(db_url, plan.id)
    assert state == "done" and decode_key(hi_max) == (7000,)
    assert query(db_url, "SELECT count(*) FROM users WHERE user_name IS NOT NULL AND first_name IS NULL") == [(0,)]
