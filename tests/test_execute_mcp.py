"""The migrate tools through the real MCP stdio path (dmig serve + the official client), and read-only mode."""

from __future__ import annotations

from pathlib import Path

from execute_helpers import old_reader, split_spec, users_table, write_spec
from mcp_client import call, list_tools

WRITERS = {"plan_migration", "run_migration", "complete_migration", "abort_migration"}


def test_migration_story_over_stdio(sqlite_url: str, project: Path) -> None:
    users_table(sqlite_url, n=300)
    spec = write_spec(project, split_spec())
    [planned] = call(
        project,
        [("plan_migration", {"spec": spec, "url": sqlite_url, "environment": "development", "waive_backup": "test"})],
    )
    checksum, plan = planned["checksum"], planned["plan_path"]
    assert len(checksum) == 64 and (project / plan).is_file() and (project / planned["runbook_path"]).is_file()
    tampered = project / "docs/migrations/tampered/plan.yaml"  # a copy edited after review
    tampered.parent.mkdir(parents=True)
    tampered.write_text((project / plan).read_text().replace("lock_timeout_ms: 1000", "lock_timeout_ms: 999"))
    edited, dry, wrong, ran, status, aborted, again, done, final = call(
        project,
        [
            ("run_migration", {"plan": "docs/migrations/tampered/plan.yaml", "confirm": checksum}),
            ("run_migration", {"plan": plan, "dry_run": True}),
            ("run_migration", {"plan": plan, "confirm": "f" * 64}),
            ("run_migration", {"plan": plan, "confirm": checksum}),
            ("migration_status", {"plan": plan}),
            ("abort_migration", {"plan": plan, "confirm": checksum}),
            ("run_migration", {"plan": "split-user-name", "confirm": checksum}),
            ("complete_migration", {"plan": plan, "confirm": checksum}),
            ("migration_status", {"migration_id": "split-user-name", "url": sqlite_url}),
        ],
    )
    assert edited["error"]["code"] == "E_CORRUPT_FILE" and "edited after review" in edited["error"]["message"]
    assert dry["state"] == "dry_run" and dry["statements"]
    assert wrong["error"]["code"] == "E_CONFIRMATION_REQUIRED"
    assert ran["state"] == "validated" and ran["backfills"][0]["rows_total"] > 0
    assert status["state"] == "validated" and status["backfills"][0]["state"] == "done"
    assert aborted["state"] == "aborted" and aborted["restored_exactly"] is True
    assert again["state"] == "validated"
    assert done["state"] == "completed"
    assert final["state"] == "completed"
    assert old_reader(sqlite_url)[1] == "Ada Lovelace"


def test_read_only_mode_hides_the_writers(project: Path) -> None:
    names = {t.name for t in list_tools(project, "--read-only")}
    assert "migration_status" in names and not WRITERS & names
    tools = {t.name: t for t in list_tools(project)}
    assert set(tools) >= WRITERS
    assert tools["complete_migration"].annotations.destructive_hint is True
    assert tools["abort_migration"].annotations.destructive_hint is True
    # run_migration executes a plan's raw_sql steps (user-supplied SQL): destructive, and the hook asks.
    assert tools["run_migration"].annotations.destructive_hint is True
    assert tools["run_migration"].annotations.idempotent_hint is False
    assert tools["migration_status"].annotations.read_only_hint is True
    assert tools["plan_migration"].annotations.open_world_hint is True
