"""session_init, session_resume and obtain_context on real project folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dmig.errors import CorruptFile, NotFound
from dmig.harness import bus, context_digest, environment, paths
from dmig.harness.lifecycle import session_init, session_resume
from harness_helpers import (
    FAILING,
    PASSING,
    rc_for,
    read_json,
    script_command,
    story,
    write_env,
    write_json,
    write_status,
)


@pytest.mark.parametrize(
    ("files", "command", "kind"),
    [
        ({"Makefile": "test:\n\tpytest\n", "pyproject.toml": "[project]\nname='x'\n"}, "make test", "python"),
        ({"package.json": json.dumps({"scripts": {"test": "vitest run"}})}, "npm test", "node"),
        ({"Cargo.toml": "[package]\nname='x'\n"}, "cargo test", "rust"),
        ({"go.mod": "module example.com/x\n"}, "go test ./...", "go"),
        ({"pyproject.toml": "[project]\nname='x'\n"}, "pytest", "python"),
        ({"setup.py": ""}, "pytest", "python"),
        ({"README.md": "nothing"}, None, None),
    ],
)
def test_test_command_detection(tmp_path: Path, files: dict[str, str], command: str | None, kind: str | None) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    found = environment.detect(tmp_path)
    assert (found.test_command, found.project_type) == (command, kind)


def test_npm_placeholder_script_is_not_a_test_command(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text(
        json.dumps({"scripts": {"test": 'echo "Error: no test specified" && exit 1'}})
    )
    assert environment.detect(tmp_path).test_command is None


def test_init_creates_everything_then_is_idempotent_and_never_clobbers(project: Path) -> None:
    (project / "Makefile").write_text("test:\n\ttrue\n")
    first = session_init(rc_for(project))
    assert set(first.created) >= {paths.ENVIRONMENT, paths.STATUS, paths.BUS, paths.SESSION_STATE}
    assert first.environment["test_command"] == "make test" and first.session_id
    assert read_json(project / paths.STATUS)["stories"] == {}
    snapshot = {p: (project / p).read_bytes() for p in (paths.ENVIRONMENT, paths.STATUS, paths.SESSION_STATE)}
    second = session_init(rc_for(project), test_command="pytest -x")
    assert second.created == [] and second.session_id == first.session_id
    assert any("update_environment" in n for n in second.notes)
    assert {p: (project / p).read_bytes() for p in snapshot} == snapshot


def test_init_keeps_an_existing_status_and_can_update_the_environment_on_request(project: Path) -> None:
    status_path = write_status(project, {"US-1": story("US-1", "in_progress", mine=True)}, other={"x": 1})
    env_path = write_env(project, "old", custom_env="kept")
    before = status_path.read_bytes()
    out = session_init(rc_for(project), test_command="make check", update_environment=True)
    assert status_path.read_bytes() == before
    assert paths.ENVIRONMENT in out.updated
    env = read_json(env_path)
    assert env["test_command"] == "make check" and env["custom_env"] == "kept" and env["updated_at"].endswith("Z")


def test_init_refuses_a_corrupt_file_without_creating_anything(project: Path) -> None:
    path = project / paths.SESSION_STATE
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(CorruptFile):
        session_init(rc_for(project))
    assert not (project / paths.ENVIRONMENT).exists() and not (project / paths.STATUS).exists()
    assert path.read_text() == "{not json"


def test_resume_reports_regressions_and_rotates_sessions(project: Path) -> None:
    write_env(project, script_command(project, "ok.py", PASSING))
    write_status(project, {"US-1": story("US-1", "in-progress"), "US-2": story("US-2", "ready")})
    first = session_init(rc_for(project))
    good = session_resume(rc_for(project))
    assert good.verify.test_status == "passing" and good.regressions == []
    assert good.previous_session["id"] == first.session_id
    write_env(project, script_command(project, "bad.py", FAILING))
    bad = session_resume(rc_for(project), story_id="US-1")
    assert bad.previous_test_status == "passing" and bad.verify.test_status == "failing"
    scopes = {(r.scope, r.story_id) for r in bad.regressions}
    assert scopes == {("project", None), ("story", "US-1")}
    assert bad.context["story"]["id"] == "US-1" and bad.context["story"]["test_status"] == "failing"
    state = read_json(project / paths.SESSION_STATE)
    assert state["current_session"]["id"] == bad.session_id
    assert state["current_session"]["initial_test_status"] == "failing"
    assert state["last_session"]["id"] == good.session_id
    assert state["last_session"]["final_test_status"] == "passing"
    assert [s["id"] for s in state["session_history"]] == [first.session_id]


def test_resume_without_environment_is_refused(project: Path) -> None:
    with pytest.raises(NotFound):
        session_resume(rc_for(project))
    assert not (project / paths.SESSION_STATE).exists()


def test_obtain_context_is_bounded_on_a_huge_status_and_says_what_it_cut(project: Path) -> None:
    long = "word " * 2000
    stories = {
        f"US-{n:04d}": story(
            f"US-{n:04d}",
            ["ready", "in-progress", "in_progress", "done", "completed"][n % 5],
            description=long,
            acceptance_criteria=[long] * 5,
            history=[{"status": "ready", "ts": "2025-01-01T00:00:00Z"}] * 30,
        )
        for n in range(300)
    }
    path = write_status(project, stories)
    assert path.stat().st_size > 2_500_000
    write_env(project, "true")
    for i in range(50):
        bus.append(project / paths.BUS, bus.build_message(sender="AG-UI", type="status", text=f"{i} " + "t" * 3000))
    for budget in (2000, 4000):
        small = context_digest.obtain_context(rc_for(project), story_id="US-0001", bus_messages=20, max_bytes=budget)
        assert len(json.dumps(small, ensure_ascii=False).encode()) <= budget
        assert small["stories"]["total"] == 300 and small["truncated"]
    ctx = context_digest.obtain_context(rc_for(project), story_id="US-0001", bus_messages=20)
    raw = json.dumps(ctx, ensure_ascii=False).encode()
    assert len(raw) <= context_digest.DEFAULT_MAX_BYTES and ctx["bytes"] == len(raw)
    assert ctx["stories"]["total"] == 300
    assert ctx["stories"]["by_status"] == {"done": 120, "in-progress": 120, "ready": 60}
    assert ctx["stories"]["in_progress_total"] == 120
    assert ctx["story"]["id"] == "US-0001" and len(ctx["story"]["description"]) < 400
    assert ctx["truncated"] and ctx["bus"]["messages"]
    assert ctx["bus"]["messages"][-1]["text"].startswith("49 ")


def test_obtain_context_survives_broken_parts(project: Path) -> None:
    (project / "docs" / "09-agents").mkdir(parents=True)
    (project / paths.STATUS).write_text("{broken")
    ctx = context_digest.obtain_context(rc_for(project), story_id="US-1")
    assert ctx["git"]["is_repo"] and ctx["git"]["branch"] == "main"
    assert ctx["git"]["last_commit"]["subject"] == "init"
    assert {p["part"]: p["code"] for p in ctx["problems"]}["status"] == "E_CORRUPT_FILE"
    assert ctx["harness_active"] is False


def test_obtain_context_reports_an_unknown_story_as_a_problem(project: Path) -> None:
    write_status(project, {"US-1": story("US-1")})
    write_json(project / paths.SESSION_STATE, {"current_session": {"id": "s", "current_story": "US-1"}})
    ctx = context_digest.obtain_context(rc_for(project))
    assert ctx["story"]["id"] == "US-1"  # picked from the session's current_story
    ctx = context_digest.obtain_context(rc_for(project), story_id="US-2")
    assert ctx["story"] is None and ctx["stories"]["total"] == 1
    assert any(p["code"] == "E_NOT_FOUND" for p in ctx["problems"])
