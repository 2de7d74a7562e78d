"""issue 13 item 9: complete_migration is idempotent: a completed migration's complete answers
"already completed", exits 0 (CLI and MCP) and changes nothing; a contract killed mid-way resumes."""

from __future__ import annotations

from pathlib import Path

from dmig.execute import complete, run_plan
from dmig.execute.runner import set_run_state
from execute_helpers import engine, make_plan, query, split_spec, users_table, write_spec
from harness_helpers import dmig_cli
from mcp_client import call
from rollback_helpers import state


def test_complete_twice_answers_already_completed(db_url: str, project: Path) -> None:
    users_table(db_url, n=50)
    plan, _ = make_plan(project, db_url)
    run_plan(plan, confirm=plan.checksum, url=db_url)
    first = complete(plan, confirm=plan.checksum, project_dir=project, url=db_url)
    assert first.state == "completed" and not first.already_completed
    after = state(db_url)
    ledger = query(db_url, "SELECT step_id, state, attempts, finished_at FROM dmig_migrations ORDER BY step_id")
    again = complete(plan, confirm=plan.checksum, project_dir=project, url=db_url)
    assert again.state == "completed" and again.already_completed and not again.steps
    assert "already completed" in again.next_action and "nothing was changed" in again.next_action
    assert state(db_url) == after
    assert query(db_url, "SELECT step_id, state, attempts, finished_at FROM dmig_migrations ORDER BY step_id") == ledger


def test_a_contract_killed_after_its_steps_committed_finishes(sqlite_url: str, project: Path) -> None:
    """The kill left the run 'contracting' with every contract step done (old column dropped): the checks that
    still name it are not run again, the steps are skipped and the run is marked completed."""
    users_table(sqlite_url, n=50)
    plan, _ = make_plan(project, sqlite_url)
    run_plan(plan, confirm=plan.checksum, url=sqlite_url)
    complete(plan, confirm=plan.checksum, project_dir=project, url=sqlite_url)
    eng = engine(sqlite_url)
    try:
        set_run_state(eng, plan, "contracting")  # as if killed between the last step's commit and "completed"
    finally:
        eng.dispose()
    out = complete(plan, confirm=plan.checksum, project_dir=project, url=sqlite_url)
    assert out.state == "completed" and all(s.status == "skipped" for s in out.steps)
    assert query(sqlite_url, "SELECT state FROM dmig_migrations WHERE step_id = '_run'") == [("completed",)]


def test_cli_and_mcp_exit_0_on_a_completed_migration(sqlite_url: str, project: Path) -> None:
    users_table(sqlite_url, n=20)
    spec = write_spec(project, split_spec())
    [planned] = call(
        project,
        [("plan_migration", {"spec": spec, "url": sqlite_url, "environment": "development", "waive_backup": "test"})],
    )
    checksum, plan = planned["checksum"], planned["plan_path"]
    ran, done, again = call(
        project,
        [
            ("run_migration", {"plan": plan, "confirm": checksum}),
            ("complete_migration", {"plan": plan, "confirm": checksum}),
            ("complete_migration", {"plan": plan, "confirm": checksum}),
        ],
    )
    assert ran["state"] == "validated" and done["state"] == "completed"
    assert again["state"] == "completed" and again["already_completed"] is True, again
    code, out = dmig_cli(project, "complete-migration", plan, "--confirm", checksum)
    assert code == 0 and out["already_completed"] is True, out
