"""move_table through the executor: the copy step runs the copy engine, abort drops the copy, a run after an
abort copies afresh (the engine's checkpoints of the aborted run must not say "already complete"), and a move
into another database relies on the copy engine's own verification."""

from __future__ import annotations

from pathlib import Path

from dmig.execute import complete, run_plan
from dmig.execute.abort import abort
from execute_helpers import execute, make_plan, query, users_table
from rollback_helpers import spec_for


def _count(url: str, table: str) -> int:
    return int(query(url, f"SELECT count(*) FROM {table}")[0][0])


def test_run_abort_and_run_again_copies_afresh(db_url: str, project: Path) -> None:
    users_table(db_url, n=300)
    plan, _ = make_plan(project, db_url, spec_for({"op": "move_table", "table": "users", "target_table": "users_v2"}))

    rows = _count(db_url, "users")
    first = run_plan(plan, confirm=plan.checksum, url=db_url, project_dir=project)
    assert first.validation_passed and [s.status for s in first.steps] == ["done"]
    assert _count(db_url, "users_v2") == _count(db_url, "users")

    aborted = abort(plan, confirm=plan.checksum, url=db_url)
    assert aborted.state == "aborted"
    assert _count(db_url, "users") == rows  # the source is untouched...
    execute(db_url, "DELETE FROM users WHERE id % 2 = 0")  # ...and changes before the next run

    again = run_plan(plan, confirm=plan.checksum, url=db_url, project_dir=project)
    assert again.validation_passed, again.validation
    assert _count(db_url, "users_v2") == _count(db_url, "users") < rows


def test_move_into_another_database(sqlite_url: str, tmp_path: Path, project: Path) -> None:
    users_table(sqlite_url, n=120)
    other = f"sqlite:///{tmp_path / 'other.db'}"
    op = {"op": "move_table", "table": "users", "target_table": "users", "target_database": other}
    plan, _ = make_plan(project, sqlite_url, spec_for(op))

    ran = run_plan(plan, confirm=plan.checksum, url=sqlite_url, project_dir=project)
    assert ran.validation_passed and _count(other, "users") == _count(sqlite_url, "users")

    done = complete(plan, confirm=plan.checksum, project_dir=project, url=sqlite_url)
    assert done.state == "completed"
    assert not query(sqlite_url, "SELECT name FROM sqlite_master WHERE name = 'users'")  # the source was dropped
    assert _count(other, "users") > 0
