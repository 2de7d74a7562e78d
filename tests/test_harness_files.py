"""Reading and writing the shared AgileFlow files: nothing unknown is lost, nothing corrupt is touched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dmig.errors import CorruptFile, InvalidInput, PathOutsideProject
from dmig.harness import jsonio, paths, status
from dmig.harness.paths import project_files
from dmig.harness.transition import transition
from harness_helpers import rc_for, read_json, story, write_json, write_status

REPO = Path(__file__).resolve().parents[1]


def test_unknown_fields_key_order_and_indent_survive_an_edit(project: Path) -> None:
    data = {
        "zeta_top": {"keep": [1, 2, {"deep": True}]},
        "updated": "2025-01-01T00:00:00Z",
        "stories": {
            "US-0001": {
                "custom_b": "b",
                "id": "US-0001",
                "status": "ready",
                "acceptance_criteria": ["Given ü", "Then ✓"],
                "tdd_mode": True,
                "custom_a": None,
            }
        },
        "epics": {"EP-0001": {"id": "EP-0001", "title": "E", "whatever": 3}},
    }
    path = project / paths.STATUS
    write_json(path, data, indent=4)
    transition(rc_for(project), "US-0001", "in-progress")
    text = path.read_text(encoding="utf-8")
    after = json.loads(text)
    assert list(after) == ["zeta_top", "updated", "stories", "epics"]
    assert after["zeta_top"] == data["zeta_top"] and after["epics"] == data["epics"]
    s = after["stories"]["US-0001"]
    assert list(s)[:6] == ["custom_b", "id", "status", "acceptance_criteria", "tdd_mode", "custom_a"]
    assert s["acceptance_criteria"] == ["Given ü", "Then ✓"] and s["custom_a"] is None
    assert '\n    "zeta_top"' in text and "✓" in text and text.endswith("}\n")


def test_indent_detection() -> None:
    assert jsonio.detect_indent('{\n    "a": 1\n}') == 4
    assert jsonio.detect_indent('{\n\t"a": 1\n}') == "\t"
    assert jsonio.detect_indent('{"a": 1}') is None
    assert jsonio.detect_indent("{}\n") is None


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ('{"stories": {"US-1": ', "not valid JSON"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"stories": {"US-1": {"status": "wip"}}}', "stories/US-1/status"),
        ('{"stories": {"US-1": {"status": "ready", "history": "oops"}}}', "stories/US-1/history"),
        ('{"stories": {"US-1": {"status": "ready", "test_results": {"passed": -1}}}}', "passed"),
        ('{"stories": []}', "stories"),
    ],
)
def test_corrupt_or_invalid_status_is_reported_and_left_untouched(project: Path, content: str, fragment: str) -> None:
    path = project / paths.STATUS
    path.parent.mkdir(parents=True)
    path.write_text(content)
    before = path.read_bytes()
    with pytest.raises(CorruptFile) as err:
        transition(rc_for(project), "US-1", "in-progress")
    assert err.value.code == "E_CORRUPT_FILE"
    assert fragment in err.value.message + json.dumps(err.value.details)
    assert path.read_bytes() == before
    assert not (project / paths.BUS).exists()


def test_harness_paths_through_a_symlink_outside_the_project_are_refused(project: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    victim = write_json(outside / "status.json", {"stories": {"US-1": story("US-1", "ready")}})
    (project / "docs").mkdir()
    (project / "docs" / "09-agents").symlink_to(outside, target_is_directory=True)
    with pytest.raises(PathOutsideProject) as err:
        transition(rc_for(project), "US-1", "in-progress")
    assert err.value.code == "E_PATH_OUTSIDE_PROJECT"
    assert (outside / "status.json").read_bytes() == victim
    assert not (outside / "bus").exists()


def test_real_world_variants_are_accepted_by_the_schemas() -> None:
    wild = {
        "updated": "2025-10-01T10:00:00.000Z",
        "stories": {
            "US-1": {"id": "US-1", "status": "in_progress", "test_status": "not_run", "epic": None, "estimate": 2},
            "US-2": {"status": "completed", "completed_at": "x", "depends_on": ["US-1"], "priority": "P1"},
            "US-3": {"status": "archived", "history": [{"status": "in_review", "ts": "x"}, {"action": "moved"}]},
            "US-4": {"status": "pending", "deps": [], "test_results": None, "estimate": "1d"},
        },
        "epics": {"EP-1": {"title": "x", "status": "active", "stories": ["US-1"]}},
    }
    assert jsonio.schema_problems(wild, status.SCHEMA) == []
    for message in (
        {"ts": "2025-01-01T00:00:00Z", "from": "AG-UI", "type": "status", "text": "hi", "anything": {"x": 1}},
        {"ts": "2025-01-01T00:00:00Z", "agent": "AG-API", "story_id": "US-1", "type": "handoff", "text": "x"},
    ):
        assert jsonio.schema_problems(message, "bus-message.schema.json") == []
    assert jsonio.schema_problems({"ts": "x", "type": "status"}, "bus-message.schema.json")  # no sender
    assert jsonio.schema_problems({"test_timeout_ms": 0}, "environment.schema.json")
    assert jsonio.schema_problems({"verification_policy": "maybe"}, "environment.schema.json")


def test_states_are_compared_canonically() -> None:
    assert status.canonical("in_progress") == status.canonical("In-Progress") == "in-progress"
    assert status.canonical("completed") == "done" and status.canonical("in_review") == "in-review"
    assert status.canonical("wip") is None
    data = {"stories": {"A": story("A", "in_progress"), "B": story("B", "completed"), "C": story("C", "in-progress")}}
    assert status.story_ids_in(data, "in-progress") == ["A", "C"]
    assert status.counts_by_state(data) == {"done": 1, "in-progress": 2}
    assert status.spelling_for({"stories": {"A": story("A", "in_progress")}}, "in-review") == "in_review"
    assert status.spelling_for({"stories": {"A": story("A", "completed")}}, "done") == "completed"
    assert status.spelling_for({"stories": {}}, "in-review") == "in-review"


def test_the_repository_own_harness_files_are_valid() -> None:
    env = read_json(REPO / paths.ENVIRONMENT)
    assert env["test_command"] == "make test"
    assert jsonio.schema_problems(env, "environment.schema.json") == []
    data = read_json(REPO / paths.STATUS)
    assert jsonio.schema_problems(data, status.SCHEMA) == []
    assert len(data["epics"]) == 1 and len(data["stories"]) >= 5
    lines = (REPO / paths.BUS).read_text(encoding="utf-8").splitlines()
    assert lines
    for line in lines:
        assert jsonio.schema_problems(json.loads(line), "bus-message.schema.json") == []


def test_status_write_refuses_to_create_an_invalid_file(project: Path) -> None:
    path = write_status(project, {"US-1": story("US-1", "ready")})
    before = path.read_bytes()
    with pytest.raises(InvalidInput), status.editing(project_files(rc_for(project))) as data:
        data["stories"]["US-1"]["status"] = "nonsense"
    assert path.read_bytes() == before
