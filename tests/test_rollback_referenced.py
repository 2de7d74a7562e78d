"""Rollback after contract of a table that other tables reference by foreign key: the referencing rows
must survive the reload (the demo once found the restore failing there on PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dmig.errors import DatabaseError
from dmig.execute import complete, run_plan
from dmig.execute.rollback import rollback
from execute_helpers import execute, query, split_spec, users_table
from rollback_helpers import production_plan, state


def test_rollback_of_a_referenced_table_keeps_the_referencing_rows(db_url: str, project: Path) -> None:
    users_table(db_url, n=200)
    execute(
        db_url,
        "CREATE TABLE orders (id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL REFERENCES users (id), amount INTEGER)",
        "INSERT INTO orders (id, user_id, amount) SELECT id, id, 10 FROM users WHERE id % 3 = 0",
    )
    before = state(db_url)
    orders_before = query(db_url, "SELECT id, user_id, amount FROM orders ORDER BY id")
    plan, _path = production_plan(project, db_url, split_spec())
    run_plan(plan, confirm=plan.checksum, url=db_url, project_dir=project)
    done = complete(plan, confirm=plan.checksum, project_dir=project, url=db_url)
    assert done.backup and done.backup["verified"] is True

    out = rollback(plan, confirm=plan.checksum, project_dir=project, url=db_url, reason="drill")

    assert out.state == "rolled_back" and out.schema_identical, out
    assert state(db_url) == before
    assert query(db_url, "SELECT id, user_id, amount FROM orders ORDER BY id") == orders_before


def test_rollback_refuses_to_orphan_rows_written_after_the_backup(pg_url: str, project: Path) -> None:
    """A child row pointing at a parent row the backup lacks: the unit fails as a whole, nothing changes."""
    users_table(pg_url, n=50)
    execute(pg_url, "CREATE TABLE orders (id BIGINT PRIMARY KEY, user_id BIGINT NOT NULL REFERENCES users (id))")
    plan, _path = production_plan(project, pg_url, split_spec())
    run_plan(plan, confirm=plan.checksum, url=pg_url, project_dir=project)
    complete(plan, confirm=plan.checksum, project_dir=project, url=pg_url)
    execute(
        pg_url,
        "INSERT INTO users (id, first_name, last_name) VALUES (90001, 'New', 'User')",
        "INSERT INTO orders VALUES (1, 90001)",
    )
    after = state(pg_url)

    with pytest.raises(DatabaseError) as err:
        rollback(plan, confirm=plan.checksum, project_dir=project, url=pg_url, reason="drill")

    assert "orders" in err.value.message and "rolled back" in err.value.message
    assert state(pg_url) == after  # the shape, the rows and the foreign key are all still there
