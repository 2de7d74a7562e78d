"""rollback through the real MCP stdio path (dmig serve + the official client): refusal, restore, figures."""

from __future__ import annotations

from pathlib import Path

from execute_helpers import split_spec, users_table, write_spec
from harness_helpers import read_json, story, write_status
from mcp_client import call, list_tools
from rollback_helpers import state


def test_rollback_over_stdio(sqlite_url: str, project: Path) -> None:
    users_table(sqlite_url, n=120)
    before = state(sqlite_url)
    write_status(project, {"US-0042": story("US-0042", "in-progress")})
    spec = write_spec(project, split_spec())
    [planned] = call(project, [("plan_migration", {"spec": spec, "url": sqlite_url, "environment": "production",
                                                   "sample": False})])  # fmt: skip
    checksum, plan = planned["checksum"], planned["plan_path"]
    wrong, ran, done, back, again = call(
        project,
        [
            ("rollback", {"plan": plan, "confirm": "0" * 64}),
            ("run_migration", {"plan": plan, "confirm": checksum}),
            ("complete_migration", {"plan": plan, "confirm": checksum}),
            ("rollback", {"plan": plan, "confirm": checksum, "story_id": "US-0042", "reason": "p95 latency x3"}),
            ("rollback", {"plan": plan, "confirm": checksum}),
        ],
    )
    assert wrong["error"]["code"] == "E_CONFIRMATION_REQUIRED"
    assert ran["state"] == "validated" and done["state"] == "completed" and done["backup"]["verified"] is True
    assert back["state"] == "rolled_back" and back["procedure"] == "restore" and back["checksums_ok"] is True
    assert back["backup"]["backup_id"] == done["backup"]["id"] and back["schema_identical"] is True
    assert back["restore"]["tables"][0]["rows"] == 130 and back["discarded_changes"] == 0
    assert back["story"]["to_status"] == "blocked" and back["bus_message"]["type"] == "warning"
    assert again["error"]["code"] == "E_CONFLICT" and "already rolled back" in again["error"]["message"]
    assert read_json(project / "docs/09-agents/status.json")["stories"]["US-0042"]["status"] == "blocked"
    assert state(sqlite_url) == before


def test_rollback_is_a_destructive_writer_hidden_in_read_only_mode(project: Path) -> None:
    tools = {t.name: t for t in list_tools(project)}
    hints = tools["rollback"].annotations
    assert (hints.read_only_hint, hints.destructive_hint, hints.idempotent_hint, hints.open_world_hint) == (
        False,
        True,
        False,
        True,
    )
    assert "rollback" not in {t.name for t in list_tools(project, "--read-only")}
