"""abort before contract restores the original shape and data exactly (checksum-identical), on every dialect."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dmig.errors import Conflict
from dmig.execute import abort, complete, run_plan
from execute_helpers import make_plan, query, tables, users_table
from spec_helpers import schema_snapshot


@pytest.mark.parametrize("backfill", [True, False])
def test_abort_restores_exactly(db_url: str, project: Path, backfill: bool) -> None:
    users_table(db_url, n=700)
    shape = schema_snapshot(db_url)
    data = query(db_url, "SELECT id, user_name FROM users ORDER BY id")
    plan, _ = make_plan(project, db_url)
    out = run_plan(plan, confirm=plan.checksum, url=db_url, max_batches=None if backfill else 1)
    assert out.state == ("validated" if backfill else "expanded")
    result = abort(plan, confirm=plan.checksum, url=db_url)
    assert result.state == "aborted" and result.restored_exactly
    [proof] = result.proof
    assert proof.shape_restored and proof.data_unchanged_by_rollback and proof.data_identical_to_start
    assert proof.rows == len(data)
    assert _user_objects(schema_snapshot(db_url)) == _user_objects(shape)
    assert query(db_url, "SELECT id, user_name FROM users ORDER BY id") == data
    assert query(db_url, "SELECT count(*) FROM dmig_backfill_batches WHERE migration_id = :m", {"m": plan.id}) == [(0,)]
    # Aborted: a fresh run starts over and works.
    again = run_plan(plan, confirm=plan.checksum, url=db_url)
    assert again.state == "validated" and not again.resumed


def _user_objects(snap: dict) -> dict:
    """Leave out our own bookkeeping tables and PostgreSQL's temporary schemas (the planner's sample made one)."""
    ours = {"dmig_migrations", "dmig_backfill_checkpoints", "dmig_backfill_batches", "dmig_lock"}
    out = {k: v for k, v in snap.items() if k not in ours}
    if "schemas" in out:
        out["schemas"] = [s for s in out["schemas"] if not s.startswith(("pg_temp_", "pg_toast_temp_"))]
    return out


def test_abort_under_live_writes_reports_them(sqlite_url: str, project: Path) -> None:
    users_table(sqlite_url, n=50)
    plan, _ = make_plan(project, sqlite_url)
    run_plan(plan, confirm=plan.checksum, url=sqlite_url)
    from execute_helpers import execute

    execute(sqlite_url, "UPDATE users SET first_name = 'Augusta' WHERE id = 1")  # a new-shape writer
    result = abort(plan, confirm=plan.checksum, url=sqlite_url)
    assert result.restored_exactly
    assert result.proof[0].data_identical_to_start is False and result.notes
    assert query(sqlite_url, "SELECT user_name FROM users WHERE id = 1") == [("Augusta Lovelace",)]
    assert tables(sqlite_url) >= {"users"}


def test_abort_after_contract_is_refused(sqlite_url: str, project: Path) -> None:
    users_table(sqlite_url)
    plan, _ = make_plan(project, sqlite_url)
    run_plan(plan, confirm=plan.checksum, url=sqlite_url)
    complete(plan, confirm=plan.checksum, project_dir=project, url=sqlite_url)
    with pytest.raises(Conflict) as err:
        abort(plan, confirm=plan.checksum, url=sqlite_url)
    assert err.value.details["reason"] == "contracted" and "backup" in err.value.message
    assert os.environ.get("DMIG_DEBUG") is None
