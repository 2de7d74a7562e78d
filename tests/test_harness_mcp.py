"""The harness tools as Claude Code and a shell user reach them: `dmig serve` over stdio, and the CLI."""

from __future__ import annotations

from pathlib import Path

from dmig.harness import bus, paths
from harness_helpers import FAILING, PASSING, approve_test_command, dmig_cli, read_json, script_command
from mcp_client import call, list_tools

HARNESS_TOOLS = {
    "obtain_context",
    "session_init",
    "session_resume",
    "verify",
    "baseline",
    "status_update",
    "bus_append",
}


def _seed_story(project: Path) -> None:
    path = project / paths.STATUS
    data = read_json(path)
    data["stories"]["US-0001"] = {"id": "US-0001", "title": "Copy engine", "status": "ready", "owner": "AG-X"}
    path.write_text(__import__("json").dumps(data, indent=2) + "\n")


def test_round_trip_over_stdio(project: Path) -> None:
    command = script_command(project, "ok.py", PASSING)
    [init] = call(project, [("session_init", {"test_command": command})])
    assert init["environment"]["test_command"] == command
    assert init["test_command_approval"]["approved"] is False  # over MCP it is a proposal
    approve_test_command(project)  # the user's path: `dmig approve-test-command`
    _seed_story(project)
    results = call(
        project,
        [
            ("status_update", {"story_id": "US-0001", "status": "in_progress", "reason": "start"}),
            ("verify", {}),
            ("status_update", {"story_id": "US-0001", "status": "in-review"}),
            ("bus_append", {"type": "finding", "text": "copy ran at 50k rows/s", "story": "US-0001", "to": "ALL"}),
            ("obtain_context", {"story_id": "US-0001", "bus_messages": 5}),
            ("status_update", {"story_id": "US-0001", "status": "draft"}),
            ("status_update", {"story_id": "US-9999", "status": "ready"}),
            ("bus_append", {"type": "finding", "text": "x", "surprise": 1}),
        ],
    )
    moved, verified, reviewed, posted, ctx, illegal, unknown, typo = results
    assert moved["to_status"] == "in-progress" and moved["changed"]
    assert verified["test_status"] == "passing" and verified["updated_stories"] == ["US-0001"]
    assert reviewed["to_status"] == "in-review" and not reviewed["override_used"]
    assert posted["message"]["from"] == "AG-DATAMIGRATION" and posted["bytes"] > 0
    assert ctx["story"]["status"] == "in-review" and ctx["story"]["test_status"] == "passing"
    assert ctx["bus"]["messages"][-1]["text"] == "copy ran at 50k rows/s"
    assert ctx["git"]["branch"] == "main" and ctx["bytes"] <= 8000
    assert illegal["error"]["code"] == "E_CONFLICT" and illegal["error"]["details"]["allowed_next"] == [
        "done",
        "in-progress",
    ]
    assert unknown["error"]["code"] == "E_NOT_FOUND"
    assert typo["error"]["code"] == "E_INVALID_INPUT"
    assert len(bus.read_all(project / paths.BUS)) == 3


def test_missing_environment_and_corrupt_status_over_stdio(project: Path) -> None:
    [missing] = call(project, [("verify", {})])
    assert missing["error"]["code"] == "E_NOT_FOUND" and "session_init" in missing["error"]["message"]
    status_path = project / paths.STATUS
    status_path.parent.mkdir(parents=True, exist_ok=True)
    status_path.write_text('{"stories": {"US-1": {"status": 7}}}')
    [corrupt] = call(project, [("status_update", {"story_id": "US-1", "status": "ready"})])
    assert corrupt["error"]["code"] == "E_CORRUPT_FILE"
    assert status_path.read_text() == '{"stories": {"US-1": {"status": 7}}}'


def test_read_only_server_keeps_only_obtain_context(project: Path) -> None:
    names = {t.name for t in list_tools(project, "--read-only")}
    assert names & HARNESS_TOOLS == {"obtain_context"}


def test_the_cli_round_trip_with_json(project: Path) -> None:
    code, init = dmig_cli(project, "session-init", "--test-command", script_command(project, "bad.py", FAILING))
    assert code == 0 and paths.STATUS in init["created"]
    assert init["test_command_approval"]["approved"] is True  # typed by the user on the command line
    _seed_story(project)
    code, moved = dmig_cli(project, "status-update", "US-0001", "in-progress")
    assert code == 0 and moved["to_status"] == "in-progress"
    code, verified = dmig_cli(project, "verify", "US-0001")
    assert code == 1 and verified["test_status"] == "failing" and verified["failed"] == 1
    code, over = dmig_cli(project, "status-update", "US-0001", "in-review", "--override-reason", "known flaky test")
    assert code == 0 and over["override_used"]
    code, posted = dmig_cli(project, "bus-append", "handoff", "over to AG-QA", "--to", "AG-QA", "--extra", '{"pr": 12}')
    assert code == 0 and posted["message"]["pr"] == 12
    code, ctx = dmig_cli(project, "obtain-context", "US-0001")
    assert code == 0 and ctx["story"]["review_override"]["reason"] == "known flaky test"
    texts = [m["text"] for m in ctx["bus"]["messages"]]
    assert any("TEST GATE OVERRIDDEN" in t for t in texts) and texts[-1] == "over to AG-QA"
    code, refused = dmig_cli(project, "status-update", "US-0001", "draft")
    assert code == 2 and refused["error"]["code"] == "E_CONFLICT"
