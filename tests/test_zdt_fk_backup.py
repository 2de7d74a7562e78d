"""issue 13 item 3: a migration on a table that REFERENCES another must not be refused by its own backup.

The backup of the child alone could not be restored into the scratch database (PostgreSQL:
``relation "teams" does not exist`` when its foreign key was recreated), so every run or complete
touching such a table was refused with a message that named neither the cause nor the phase.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dmig.backup.service import backup_tables
from dmig.errors import Conflict
from dmig.execute import complete, run_plan
from dmig.execute.rollback import rollback
from execute_helpers import execute, query
from rollback_helpers import OPTIONS, production_plan, state


def _teams(url: str) -> None:
    execute(
        url,
        "CREATE TABLE teams (id BIGINT PRIMARY KEY, name VARCHAR(50))",
        "CREATE TABLE players (id BIGINT PRIMARY KEY, team_id BIGINT REFERENCES teams (id), "
        "full_name VARCHAR(100), nick VARCHAR(50))",
        "INSERT INTO teams (id, name) VALUES (1, 'red'), (2, 'blue')",
        "INSERT INTO players (id, team_id, full_name, nick) VALUES (1, 1, 'Ada Lovelace', 'ada'), "
        "(2, NULL, 'Plato', 'PLATO'), (3, 2, 'Mary Ann Smith', NULL)",
    )
    if "mysql" in url:  # MariaDB ignores an inline REFERENCES: declare the key as a table constraint
        execute(url, "ALTER TABLE players ADD CONSTRAINT players_team_fk FOREIGN KEY (team_id) REFERENCES teams (id)")


def _spec() -> dict:
    return {
        "version": 1,
        "id": "players-split",
        "options": dict(OPTIONS),
        "operations": [
            # overwrites an existing column: the run itself takes a verified backup first
            {"op": "backfill", "table": "players", "key": ["id"], "set": {"nick": "lower(nick)"}},
            # drops full_name at contract: complete takes a verified backup first
            {"op": "split_column", "table": "players", "key": ["id"], "column": "full_name",
             "into": ["first_name", "last_name"]},
        ],
    }  # fmt: skip


def test_child_table_backup_verifies_on_its_own(db_url: str, project: Path) -> None:
    _teams(db_url)
    info = backup_tables(project, db_url, ["players"], label="child")
    assert info["verified"] is True, info["problems"]
    assert "teams" in info["tables"], "the referenced table comes along so the foreign key restores"
    assert any("teams" in w and "foreign key" in w for w in info["warnings"]), info["warnings"]


def test_child_table_runs_validates_completes_and_rolls_back(db_url: str, project: Path) -> None:
    _teams(db_url)
    before = state(db_url)
    plan, _ = production_plan(project, db_url, _spec())
    out = run_plan(plan, confirm=plan.checksum, url=db_url, project_dir=project)
    assert out.state == "validated", out
    assert query(db_url, "SELECT nick FROM players ORDER BY id") == [("ada",), ("plato",), (None,)]
    done = complete(plan, confirm=plan.checksum, project_dir=project, url=db_url)
    assert done.state == "completed" and done.backup and done.backup["verified"] is True
    back = rollback(plan, confirm=plan.checksum, project_dir=project, url=db_url, reason="drill")
    assert back.state == "rolled_back" and back.schema_identical, back
    after = state(db_url)
    assert after["schema"] == before["schema"]  # full_name and the foreign key are back
    assert after["data"]["teams"] == before["data"]["teams"]
    # the backup contract took holds the backfilled nick (the run's own backup holds the original one)
    assert query(db_url, "SELECT id, team_id, full_name, nick FROM players ORDER BY id") == [
        (1, 1, "Ada Lovelace", "ada"), (2, None, "Plato", "plato"), (3, 2, "Mary Ann Smith", None)
    ]  # fmt: skip


def test_a_backup_that_cannot_verify_names_the_cause_and_the_phase(
    pg_url: str, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old defect, re-created by backing up the child alone: the refusal says why and in which phase."""
    from dmig.backup import service

    monkeypatch.setattr(service, "_with_referenced", lambda _c, _s, _cur, chosen: (chosen, []))
    _teams(pg_url)
    spec = {**_spec(), "operations": [_spec()["operations"][0]]}
    plan, _ = production_plan(project, pg_url, spec)
    with pytest.raises(Conflict) as err:
        run_plan(plan, confirm=plan.checksum, url=pg_url, project_dir=project)
    msg = err.value.message
    assert msg.startswith("the run (its backfill overwrites existing columns) refused"), msg
    assert "contract" not in msg and 'relation "teams" does not exist' in msg, msg
    assert err.value.details["reason"] == "backup_not_verified"
    assert query(pg_url, "SELECT nick FROM players ORDER BY id") == [("ada",), ("PLATO",), (None,)]
