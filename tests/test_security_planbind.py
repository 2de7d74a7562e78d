"""A reviewed plan is bound to the project it was saved in (fail closed, issue 12.2's follow-up).

The seal proves plan_migration made a plan, under the user's key; the same user's key seals plans in
every project, so a plan folder copied from another project (by an agent's file tools, or a prompt
injection naming one) carried a valid seal. save_plan now adds ``project_seal``, an HMAC over the
checksum and the project's real path, and every tool that loads a plan refuses one saved elsewhere.
Effects are checked in the database: the sentinel table and the users' columns stay as they were.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from dmig.context import RunContext
from dmig.errors import CorruptFile
from dmig.plan import load_plan
from dmig.tools.migrate import (
    ConfirmedPlanInput,
    MigrationStatusInput,
    RunMigrationInput,
    abort_tool,
    complete_tool,
    run_tool,
    status_tool,
)
from dmig.tools.rollback import RollbackInput, rollback_tool
from execute_helpers import make_plan, users_table


def _columns(url: str) -> set[str]:
    eng = sa.create_engine(url)
    try:
        return {c["name"] for c in sa.inspect(eng).get_columns("users")}
    finally:
        eng.dispose()


@pytest.fixture
def two_projects(tmp_path: Path, project: Path) -> tuple[Path, Path]:
    other = tmp_path / "other-project"
    other.mkdir()
    return project, other


def _copy_plan(src: Path, dst: Path, plan_id: str) -> str:
    rel = f"docs/migrations/{plan_id}"
    shutil.copytree(src / rel, dst / rel)
    return f"{rel}/plan.yaml"


CALLS = {
    "run_migration": lambda rel, c, url, rc: run_tool(RunMigrationInput(plan=rel, confirm=c, url=url), rc),
    "run_migration_dry": lambda rel, c, url, rc: run_tool(
        RunMigrationInput(plan=rel, confirm=c, url=url, dry_run=True), rc
    ),
    "complete_migration": lambda rel, c, url, rc: complete_tool(ConfirmedPlanInput(plan=rel, confirm=c, url=url), rc),
    "abort_migration": lambda rel, c, url, rc: abort_tool(ConfirmedPlanInput(plan=rel, confirm=c, url=url), rc),
    "rollback": lambda rel, c, url, rc: rollback_tool(RollbackInput(plan=rel, confirm=c, url=url), rc),
    "migration_status": lambda rel, c, url, rc: status_tool(MigrationStatusInput(plan=rel, url=url), rc),
}  # fmt: skip


@pytest.mark.parametrize("call", sorted(CALLS))
def test_a_plan_copied_from_another_project_is_refused(call: str, sqlite_url: str, two_projects) -> None:
    home, other = two_projects
    users_table(sqlite_url)
    plan, _ = make_plan(home, sqlite_url)
    before = _columns(sqlite_url)
    rel = _copy_plan(home, other, plan.id)
    with pytest.raises(CorruptFile) as err:
        CALLS[call](rel, plan.checksum, sqlite_url, RunContext(project_dir=other))
    assert err.value.details["reason"] == "other_project"
    assert plan.checksum not in str(err.value)
    assert _columns(sqlite_url) == before


@pytest.mark.parametrize("how", ["project_seal_of_other_plan", "project_seal_removed", "project_seal_garbage"])
def test_a_copied_plan_cannot_be_rebound_by_editing(how: str, sqlite_url: str, two_projects) -> None:
    home, other = two_projects
    users_table(sqlite_url)
    seal = "" if how == "project_seal_removed" else "0" * 64
    if how == "project_seal_of_other_plan":  # the binding of a plan the user did make in `other`
        _mine, mine_path = make_plan(other, sqlite_url, environment="staging")
        seal = yaml.safe_load(mine_path.read_text())["project_seal"]
        shutil.rmtree(mine_path.parent)
    plan, _ = make_plan(home, sqlite_url)
    rel = _copy_plan(home, other, plan.id)
    path = other / rel
    doc = yaml.safe_load(path.read_text())
    doc["project_seal"] = seal
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(CorruptFile):
        run_tool(RunMigrationInput(plan=rel, confirm=plan.checksum, url=sqlite_url), RunContext(project_dir=other))
    assert "first_name" not in _columns(sqlite_url)


def test_the_plan_still_runs_where_it_was_made_and_through_a_symlink(sqlite_url: str, tmp_path: Path, project: Path):
    users_table(sqlite_url)
    plan, path = make_plan(project, sqlite_url)
    assert load_plan(path).project_seal
    link = tmp_path / "project-link"
    link.symlink_to(project)
    out = run_tool(
        RunMigrationInput(plan=f"docs/migrations/{plan.id}/plan.yaml", confirm=plan.checksum, url=sqlite_url),
        RunContext(project_dir=link),
    )
    assert out.state and "first_name" in _columns(sqlite_url)


def test_load_plan_defaults_to_the_project_holding_the_plan(sqlite_url: str, two_projects) -> None:
    home, other = two_projects
    users_table(sqlite_url)
    plan, path = make_plan(home, sqlite_url)
    assert load_plan(path).id == plan.id
    with pytest.raises(CorruptFile):
        load_plan(other / _copy_plan(home, other, plan.id))
    with pytest.raises(CorruptFile):
        load_plan(path, project_dir=other)
