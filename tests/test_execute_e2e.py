"""The seed's example end to end on SQLite, PostgreSQL and MariaDB: plan -> dry run -> run (expand + backfill +
validate) -> both shapes in sync under old and new writers -> validate tool -> complete -> old readers still work."""

from __future__ import annotations

from pathlib import Path

import pytest

from dmig.context import RunContext
from dmig.db.urls import parse_url
from dmig.errors import ConfirmationRequired, Conflict, CorruptFile
from dmig.execute import complete, migration_status, run_plan
from dmig.execute.backups import unavailable_reason
from dmig.execute.ledger import protected_backup_ids
from dmig.plan import load_plan
from dmig.tools.migrate import RunMigrationInput, run_tool
from dmig.validate.runner import run_spec
from dmig.validate.spec import ValidationSpec
from execute_helpers import (
    EDGE_ROWS,
    batches,
    checkpoint,
    execute,
    make_plan,
    old_reader,
    parts,
    query,
    split_spec,
    tables,
    users_table,
)

EXPECTED = {
    1: ("Ada", "Lovelace"),
    2: ("Plato", None),
    3: ("", None),
    4: (None, None),
    5: ("Mary", "Ann Smith"),
    6: ("", "leading"),
    7: ("trailing", ""),
    8: ("O'Brien", "Jr"),
    9: ("Zoë", "Ünïcode-Ñame"),
    10: ("two", " spaces"),
}


def test_split_user_name_end_to_end(db_url: str, project: Path) -> None:
    users_table(db_url, n=2500)
    plan, path = make_plan(project, db_url)
    before = query(db_url, "SELECT id, user_name FROM users ORDER BY id")

    # Wrong or missing confirmation, and a dry run: nothing touched, not even the ledger.
    with pytest.raises(ConfirmationRequired):
        run_plan(plan, confirm="0" * 64, url=db_url)
    with pytest.raises(ConfirmationRequired):
        run_plan(plan, confirm=None, url=db_url)
    rc = RunContext(project_dir=project)
    dry = run_tool(RunMigrationInput(plan=str(path.relative_to(project)), dry_run=True), rc)
    assert dry.state == "dry_run" and any("ALTER TABLE" in s.sql for s in dry.statements)
    assert any(s.phase == "backfill" for s in dry.statements) and any(s.phase == "validate" for s in dry.statements)
    assert tables(db_url) == {"users"}

    out = run_plan(load_plan(path), confirm=plan.checksum, url=db_url)
    assert out.state == "validated" and out.validation_passed
    assert [s.status for s in out.steps] == ["done"] * len(plan.phase_steps("expand"))
    [bf] = out.backfills
    needing = sum(1 for _, v in before if v is not None)
    assert bf.state == "done" and bf.rows_total == needing
    assert sum(b[3] for b in batches(db_url, plan.id)) == needing
    assert checkpoint(db_url, plan.id)[0] == "done"
    assert out.measured and out.measured[0]["operation"] == "backfill"
    got = parts(db_url)
    for key, want in EXPECTED.items():
        assert got[key] == want, key
    assert query(db_url, "SELECT user_name FROM users ORDER BY id") == [(v,) for _, v in before]  # old column intact

    # While expanded: old writers (user_name) and new writers (parts) stay in sync through the triggers.
    execute(db_url, "INSERT INTO users (id, user_name) VALUES (90001, 'Grace Hopper')")
    execute(db_url, "INSERT INTO users (id, first_name, last_name) VALUES (90002, 'Alan', 'Turing')")
    execute(db_url, "UPDATE users SET user_name = 'Ada King Lovelace' WHERE id = 1")
    execute(db_url, "UPDATE users SET last_name = 'Turing OBE' WHERE id = 90002")
    assert parts(db_url)[90001] == ("Grace", "Hopper")
    assert parts(db_url)[1] == ("Ada", "King Lovelace")
    assert query(db_url, "SELECT user_name FROM users WHERE id = 90002") == [("Alan Turing OBE",)]

    # The plan's validate-tool rules pass on their own (a second, independent opinion).
    rules = ValidationSpec.model_validate(plan.validation.rules)
    verdict = run_spec(rules, source=db_url, target=db_url)
    assert verdict.ok, [c.summary for c in verdict.checks if c.status != "pass"]

    status = migration_status(parse_url(db_url), plan.id)
    assert status.state == "validated" and status.locked_by is None and status.backfills[0].state == "done"

    # Contract: needs the checksum; the backup is waived in this (development) plan.
    with pytest.raises(ConfirmationRequired):
        complete(plan, confirm="nope", project_dir=project, url=db_url)
    done = complete(plan, confirm=plan.checksum, project_dir=project, url=db_url)
    assert done.state == "completed" and done.backup_waived
    expected_old = {**dict(EDGE_ROWS), 1: "Ada King Lovelace", 90001: "Grace Hopper", 90002: "Alan Turing OBE"}
    reader = old_reader(db_url)
    assert {k: reader[k] for k in expected_old} == expected_old
    execute(db_url, "INSERT INTO users (id, first_name, last_name) VALUES (90003, 'Linus', 'Torvalds')")
    assert old_reader(db_url)[90003] == "Linus Torvalds"
    assert migration_status(parse_url(db_url), plan.id).state == "completed"
    with pytest.raises(Conflict):
        run_plan(plan, confirm=plan.checksum, url=db_url)


def test_production_contract_takes_a_verified_backup_first(sqlite_url: str, project: Path) -> None:
    if unavailable_reason() is not None:
        pytest.skip(f"dmig.backup unavailable: {unavailable_reason()}")
    users_table(sqlite_url, n=200)
    plan, _ = make_plan(project, sqlite_url, environment="production", waive_backup=None)
    assert plan.backup.required
    run_plan(plan, confirm=plan.checksum, url=sqlite_url)
    done = complete(plan, confirm=plan.checksum, project_dir=project, url=sqlite_url)
    assert done.backup and done.backup["verified"] is True and not done.backup_waived
    assert protected_backup_ids(project) == {done.backup["id"]}
    plan2, _ = make_plan(project, sqlite_url, {**split_spec(), "id": "again"}, environment="production",
                         waive_backup=None)  # fmt: skip
    item = {c.id: c for c in plan2.checklist}["verified_backup"]  # the next plan on users sees that backup
    assert item.satisfied is True and done.backup["id"] in item.detail


def test_contract_refused_without_the_backup_module(
    sqlite_url: str, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    users_table(sqlite_url)
    plan, _ = make_plan(project, sqlite_url, environment="production", waive_backup=None)
    run_plan(plan, confirm=plan.checksum, url=sqlite_url)
    monkeypatch.setattr("dmig.execute.backups.SERVICE", "dmig.backup.not_installed")
    with pytest.raises(Conflict) as err:
        complete(plan, confirm=plan.checksum, project_dir=project, url=sqlite_url)
    assert err.value.details["reason"] == "backup_unavailable"
    assert "user_name" in {r[1] for r in query(sqlite_url, "SELECT cid, name FROM pragma_table_info('users')")}


def test_contract_refused_when_validation_breaks(sqlite_url: str, project: Path) -> None:
    users_table(sqlite_url)
    plan, _ = make_plan(project, sqlite_url)
    run_plan(plan, confirm=plan.checksum, url=sqlite_url)
    # A writer that bypasses the triggers' rules (both shapes, inconsistent) breaks the round trip.
    execute(sqlite_url, "UPDATE users SET user_name = 'X Y', first_name = 'Q', last_name = 'R' WHERE id = 1")
    with pytest.raises(Conflict) as err:
        complete(plan, confirm=plan.checksum, project_dir=project, url=sqlite_url)
    assert err.value.details["reason"] == "validation_failed"


def test_a_plan_for_another_database_is_refused(sqlite_url: str, tmp_path: Path, project: Path) -> None:
    users_table(sqlite_url)
    plan, path = make_plan(project, sqlite_url)
    other = f"sqlite:///{tmp_path / 'other.db'}"
    with pytest.raises(Conflict) as err:
        run_plan(plan, confirm=plan.checksum, url=other)
    assert err.value.details["reason"] == "wrong_database"
    path.write_text(path.read_text().replace("batch_size: 100", "batch_size: 101"))
    with pytest.raises(CorruptFile):
        run_tool(RunMigrationInput(plan=str(path.relative_to(project)), confirm=plan.checksum), RunContext(project))
