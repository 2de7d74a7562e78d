"""Every operation type: plan -> run -> complete (when it has a contract) -> rollback -> the schema and every row
are exactly what they were before the migration (schema snapshot equal, checksums equal).

SQLite and PostgreSQL run every operation; MariaDB runs split_column and a few others (time)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dmig.execute import complete, run_plan
from dmig.execute.rollback import rollback
from dmig.spec.models import OP_NAMES
from rollback_helpers import CASES, production_plan, spec_for, state

MARIADB_OPS = ("split_column", "change_column_type", "drop_column", "set_not_null", "backfill", "move_table")


def test_every_operation_type_has_a_case() -> None:
    assert set(CASES) == set(OP_NAMES)


def _cycle(url: str, project: Path, name: str) -> None:
    setup, op = CASES[name]
    setup(url)
    before = state(url)
    plan, _ = production_plan(project, url, spec_for(op))
    ran = run_plan(plan, confirm=plan.checksum, url=url, project_dir=project)
    assert ran.validation_passed, [c for c in ran.validation if not c.passed]
    contracted = bool(plan.phase_steps("contract"))
    if contracted:
        assert complete(plan, confirm=plan.checksum, project_dir=project, url=url).state == "completed"
    out = rollback(plan, confirm=plan.checksum, project_dir=project, url=url)
    assert out.state == "rolled_back" and out.schema_identical, out.shape
    assert out.procedure == ("restore" if contracted else "abort")
    if out.restore is not None:
        assert out.checksums_ok and all(out.verified_after_commit.values())
        # after contract nothing was written since the backup; before it, the in-place backfill's own writes are
        # what the restore throws away (reported as later changes)
        lost = 0 if contracted else out.restore.tables[0].drift.updated_after_backup
        assert out.discarded_changes == lost and (contracted or lost > 0)
    after = state(url)
    assert after["schema"] == before["schema"]
    assert after["data"] == before["data"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_migrate_then_roll_back_sqlite(sqlite_url: str, project: Path, name: str) -> None:
    _cycle(sqlite_url, project, name)


@pytest.mark.parametrize("name", sorted(CASES))
def test_migrate_then_roll_back_postgresql(pg_url: str, project: Path, name: str) -> None:
    _cycle(pg_url, project, name)


@pytest.mark.parametrize("name", MARIADB_OPS)
def test_migrate_then_roll_back_mariadb(mysql_url: str, project: Path, name: str) -> None:
    _cycle(mysql_url, project, name)
