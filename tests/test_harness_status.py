"""Story transitions: the graph, the in-review gate, spellings, errors, and concurrent writers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dmig.errors import Conflict, InvalidInput, NotFound
from dmig.harness import bus, paths
from dmig.harness.transition import transition
from harness_helpers import rc_for, read_json, story, write_status


def test_a_legal_transition_updates_story_history_and_bus(project: Path) -> None:
    path = write_status(project, {"US-1": story("US-1", "ready", updated="2020-01-01T00:00:00Z")})
    out = transition(rc_for(project), "US-1", "in-progress", reason="picked up")
    assert out.changed and out.from_status == "ready" and out.to_status == "in-progress"
    assert out.allowed_next == ["in-review", "blocked", "ready"]
    s = read_json(path)["stories"]["US-1"]
    assert s["status"] == "in-progress" and s["updated"] != "2020-01-01T00:00:00Z" and s["updated"].endswith("Z")
    assert s["history"][-1]["status"] == "in-progress" and s["history"][-1]["reason"] == "picked up"
    assert read_json(path)["updated"].endswith("Z")
    [msg] = bus.read_all(project / paths.BUS)
    assert msg["type"] == "status" and msg["story"] == "US-1" and msg["status"] == "in-progress"
    assert msg["from"] == "AG-DATAMIGRATION" and "ready → in-progress" in msg["text"]


def test_the_file_spelling_is_written_back(project: Path) -> None:
    path = write_status(
        project,
        {"US-1": story("US-1", "in_progress", test_status="passing"), "US-2": story("US-2", "completed")},
    )
    out = transition(rc_for(project), "US-1", "in-review")
    assert out.to_status == "in_review"
    transition(rc_for(project), "US-1", "done")
    assert read_json(path)["stories"]["US-1"]["status"] == "completed"


def test_illegal_transition_lists_the_allowed_states_and_changes_nothing(project: Path) -> None:
    path = write_status(project, {"US-1": story("US-1", "draft")})
    before = path.read_bytes()
    with pytest.raises(Conflict) as err:
        transition(rc_for(project), "US-1", "done")
    assert err.value.code == "E_CONFLICT" and err.value.details["allowed_next"] == ["ready"]
    assert "allowed next states: ready" in err.value.message
    assert path.read_bytes() == before and not (project / paths.BUS).exists()


def test_unknown_story_and_unknown_state(project: Path) -> None:
    path = write_status(project, {"US-1": story("US-1", "ready")})
    before = path.read_bytes()
    with pytest.raises(NotFound) as err:
        transition(rc_for(project), "US-404", "in-progress")
    assert err.value.code == "E_NOT_FOUND" and err.value.details["some_known"] == ["US-1"]
    with pytest.raises(InvalidInput):
        transition(rc_for(project), "US-1", "wip")
    assert path.read_bytes() == before


def test_same_state_is_a_no_op(project: Path) -> None:
    path = write_status(project, {"US-1": story("US-1", "in_progress")})
    before = path.read_bytes()
    out = transition(rc_for(project), "US-1", "in-progress")
    assert not out.changed and out.bus_message is None
    assert path.read_bytes() == before and not (project / paths.BUS).exists()


def test_in_review_gate_refuses_without_passing_tests(project: Path) -> None:
    path = write_status(project, {"US-1": story("US-1", "in-progress", test_status="failing")})
    before = path.read_bytes()
    with pytest.raises(Conflict) as err:
        transition(rc_for(project), "US-1", "in-review")
    assert "not passing" in err.value.message and "override_reason" in err.value.message
    assert path.read_bytes() == before


def test_in_review_gate_override_is_recorded_and_announced(project: Path) -> None:
    path = write_status(project, {"US-1": story("US-1", "in-progress")})
    out = transition(rc_for(project), "US-1", "in-review", override_reason="flaky CI runner; verified by hand")
    assert out.override_used
    s = read_json(path)["stories"]["US-1"]
    assert s["review_override"]["reason"] == "flaky CI runner; verified by hand"
    assert s["review_override"]["test_status"] is None
    assert s["history"][-1]["override_reason"] == "flaky CI runner; verified by hand"
    [msg] = bus.read_all(project / paths.BUS)
    assert "TEST GATE OVERRIDDEN" in msg["text"] and msg["override_reason"].startswith("flaky")


def test_passing_tests_pass_the_gate_without_override(project: Path) -> None:
    write_status(project, {"US-1": story("US-1", "in-progress", test_status="passing")})
    out = transition(rc_for(project), "US-1", "in-review")
    assert out.changed and not out.override_used


UPDATER = """
import sys
from pathlib import Path
from dmig.context import RunContext
from dmig.harness.transition import transition
rc = RunContext(project_dir=Path(sys.argv[1]))
for sid in sys.argv[2:]:
    transition(rc, sid, "in-progress")
    transition(rc, sid, "blocked", reason="waiting")
"""


def test_concurrent_updates_of_different_stories_all_survive(project: Path) -> None:
    ids = [f"US-{n:04d}" for n in range(24)]
    path = write_status(project, {sid: story(sid, "ready", extra_field=sid) for sid in ids}, custom_top={"k": 1})
    groups = [ids[i::6] for i in range(6)]
    procs = [
        subprocess.Popen([sys.executable, "-c", UPDATER, str(project), *g], stderr=subprocess.PIPE) for g in groups
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    data = read_json(path)
    assert data["custom_top"] == {"k": 1}
    for sid in ids:
        s = data["stories"][sid]
        assert s["status"] == "blocked" and s["extra_field"] == sid
        assert [h["status"] for h in s["history"]] == ["in-progress", "blocked"]
    assert len(bus.read_all(project / paths.BUS)) == 2 * len(ids)


def test_status_update_refuses_in_read_only_mode(project: Path) -> None:
    from dmig.errors import ReadOnlyMode

    path = write_status(project, {"US-1": story("US-1", "ready")})
    before = path.read_bytes()
    with pytest.raises(ReadOnlyMode):
        transition(rc_for(project, read_only=True), "US-1", "in-progress")
    assert path.read_bytes() == before
