"""Rollback after contract: the verified backup comes back checksum-identical, writes made after the backup are
counted and discarded (by design, and said so), the ledger, the bus and the story record it; and the refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dmig.backup.manifest import Verification
from dmig.backup.service import backup_tables, backups_root
from dmig.backup.store import read_manifest, write_manifest
from dmig.context import RunContext
from dmig.db.urls import parse_url
from dmig.errors import ConfirmationRequired, Conflict, ReadOnlyMode
from dmig.execute import complete, migration_status, run_plan
from dmig.execute.rollback import rollback
from dmig.harness import paths
from dmig.registry import all_tools, run_tool
from execute_helpers import execute, make_plan, query, split_spec, users_table
from harness_helpers import dmig_cli, read_json, story, write_status
from rollback_helpers import production_plan, spec_for, state


def _contracted(url: str, project: Path, n: int = 400):
    users_table(url, n=n)
    before = state(url)
    plan, path = production_plan(project, url, split_spec())
    run_plan(plan, confirm=plan.checksum, url=url, project_dir=project)
    done = complete(plan, confirm=plan.checksum, project_dir=project, url=url)
    assert done.backup and done.backup["verified"] is True
    return plan, path, before, done.backup


def _bus(project: Path) -> list[dict]:
    return [json.loads(line) for line in (project / paths.BUS).read_text().splitlines() if line.strip()]


def test_restore_after_contract_is_checksum_identical_and_counts_what_it_discards(db_url: str, project: Path) -> None:
    plan, _path, before, backup = _contracted(db_url, project)
    write_status(project, {"US-0007": story("US-0007", "in-progress")})
    # The application keeps writing in the new shape after the backup: these changes are lost by design.
    execute(db_url, "INSERT INTO users (id, first_name, last_name) VALUES (90001, 'Grace', 'Hopper')")
    execute(db_url, "UPDATE users SET first_name = 'Augusta' WHERE id = 1")
    execute(db_url, "DELETE FROM users WHERE id = 5")

    out = rollback(plan, confirm=plan.checksum, project_dir=project, url=db_url, story_id="US-0007",
                   reason="error rate doubled after the switch")  # fmt: skip

    assert out.procedure == "restore" and out.from_state == "completed" and out.state == "rolled_back"
    assert out.backup and out.backup.backup_id == backup["id"] and out.backup.label == f"before-contract-{plan.id}"
    [t] = out.restore.tables
    assert t.checksum_ok and t.expected == t.actual and out.verified_after_commit == {"users": True}
    assert t.rows == 410  # 10 edge rows + 400
    assert (t.drift.inserted_after_backup, t.drift.updated_after_backup, t.drift.deleted_after_backup) == (1, 1, 1)
    assert out.discarded_changes == 3 and "discarded by design" in out.data_loss_warning
    assert out.schema_identical and state(db_url) == before  # the pre-migration schema and every row
    print(f"\n{plan.target.dialect}: {t.rows} rows restored in {t.seconds:.3f} s; writes stopped "
          f"{out.restore.seconds:.3f} s; rollback {out.seconds:.3f} s; checksum {t.actual}")  # fmt: skip

    status = migration_status(parse_url(db_url), plan.id)
    assert status.state == "rolled_back" and status.finished_at
    step = next(s for s in status.steps if s.step_id == "rollback.restore")
    assert step.state == "done" and step.info["backup_id"] == backup["id"] and step.finished_at
    msg = _bus(project)[-2]  # the rollback warning, then the story's status message
    assert msg["type"] == "warning" and msg["backup_id"] == backup["id"] and msg["discarded_changes"] == 3
    assert "ROLLED BACK" in msg["text"] and msg["story"] == "US-0007"
    assert _bus(project)[-1]["type"] == "status" and _bus(project)[-1]["status"] == "blocked"
    moved = read_json(project / paths.STATUS)["stories"]["US-0007"]
    assert moved["status"] == "blocked" and "error rate doubled" in moved["history"][-1]["reason"]
    assert out.story and out.story["to_status"] == "blocked"

    with pytest.raises(Conflict) as err:
        rollback(plan, confirm=plan.checksum, project_dir=project, url=db_url)
    assert err.value.details["reason"] == "already_rolled_back"
    assert run_plan(plan, confirm=plan.checksum, url=db_url, project_dir=project).state == "validated"  # fresh run


def test_without_a_verified_backup_after_contract_nothing_is_touched(sqlite_url: str, project: Path) -> None:
    users_table(sqlite_url, n=50)
    plan, _ = make_plan(project, sqlite_url)  # development: backup waived
    run_plan(plan, confirm=plan.checksum, url=sqlite_url)
    complete(plan, confirm=plan.checksum, project_dir=project, url=sqlite_url)
    contracted = state(sqlite_url)
    with pytest.raises(Conflict) as err:
        rollback(plan, confirm=plan.checksum, project_dir=project, url=sqlite_url)
    assert err.value.details["reason"] == "no_verified_backup" and "Nothing was changed" in err.value.message
    assert state(sqlite_url) == contracted
    assert migration_status(parse_url(sqlite_url), plan.id).state == "completed"


def test_an_unverified_record_is_skipped_for_the_newest_verified_backup(sqlite_url: str, project: Path) -> None:
    users_table(sqlite_url, n=30)
    before = state(sqlite_url)
    nightly = backup_tables(project, sqlite_url, ["users"], label="nightly")  # pre-migration, verified
    plan, _ = production_plan(project, sqlite_url, split_spec())
    run_plan(plan, confirm=plan.checksum, url=sqlite_url, project_dir=project)
    taken = complete(plan, confirm=plan.checksum, project_dir=project, url=sqlite_url).backup
    folder = backups_root(project) / taken["id"]
    manifest, _sha = read_manifest(folder)  # a later failed verification revokes the contract's backup
    failed = Verification(verified_at="2099-01-01T00:00:00Z", scratch_target="scratch", restore_seconds=0.1,
                          counts_ok=False, checksums_ok=False, problems=["planted: test restore failed"])  # fmt: skip
    write_manifest(folder, manifest.model_copy(update={"verifications": [*manifest.verifications, failed]}))
    out = rollback(plan, confirm=plan.checksum, project_dir=project, url=sqlite_url)
    assert out.backup.backup_id == nightly["id"] and out.backup.found_by == "latest verified backup of the tables"
    assert any("no passing verification" in n for n in out.notes) and out.schema_identical
    assert state(sqlite_url) == before


def test_refusals_happen_before_any_change(sqlite_url: str, project: Path) -> None:
    plan, _path, _before, _backup = _contracted(sqlite_url, project, n=20)
    contracted = state(sqlite_url)
    with pytest.raises(ConfirmationRequired):
        rollback(plan, confirm="0" * 64, project_dir=project, url=sqlite_url)
    write_status(project, {"US-1": story("US-1", "done")})
    with pytest.raises(Conflict, match="cannot move from done to blocked"):
        rollback(plan, confirm=plan.checksum, project_dir=project, url=sqlite_url, story_id="US-1")
    spec = {t.name: t for t in all_tools()}["rollback"]
    assert spec.destructive and not spec.read_only and not spec.idempotent and spec.open_world
    with pytest.raises(ReadOnlyMode):
        run_tool(spec, {"plan": plan.id, "confirm": plan.checksum}, RunContext(project_dir=project, read_only=True))
    assert state(sqlite_url) == contracted


def test_before_contract_rollback_is_the_abort_path(sqlite_url: str, project: Path) -> None:
    users_table(sqlite_url, n=80)
    before = state(sqlite_url)
    plan, _ = production_plan(project, sqlite_url, split_spec())
    with pytest.raises(Conflict) as err:
        rollback(plan, confirm=plan.checksum, project_dir=project, url=sqlite_url)
    assert err.value.details["reason"] == "not_started"
    run_plan(plan, confirm=plan.checksum, url=sqlite_url, project_dir=project)
    out = rollback(plan, confirm=plan.checksum, project_dir=project, url=sqlite_url)
    assert out.procedure == "abort" and out.restore is None and out.backup is None
    assert [s.id for s in out.undo_steps] == [s.id for s in plan.rollback]
    assert all(p.shape_restored and p.data_unchanged_by_rollback for p in out.undo_proof)
    assert out.schema_identical and state(sqlite_url) == before


def test_cli_rollback_json_and_exit_code(sqlite_url: str, project: Path) -> None:
    users_table(sqlite_url, n=40)
    before = state(sqlite_url)
    plan, path = production_plan(project, sqlite_url, spec_for({"op": "drop_column", "table": "users",
                                                                  "column": "user_name"}))  # fmt: skip
    run_plan(plan, confirm=plan.checksum, url=sqlite_url, project_dir=project)
    complete(plan, confirm=plan.checksum, project_dir=project, url=sqlite_url)
    assert "user_name" not in {r[1] for r in query(sqlite_url, "PRAGMA table_info(users)")}
    code, out = dmig_cli(project, "rollback", str(path.relative_to(project)), "--confirm", "f" * 64)
    assert code != 0 and out["error"]["code"] == "E_CONFIRMATION_REQUIRED"
    code, out = dmig_cli(project, "rollback", plan.id, "--confirm", plan.checksum)
    assert code == 0 and out["state"] == "rolled_back" and out["checksums_ok"] is True
    assert state(sqlite_url) == before
