"""baseline: refuses a dirty tree and failing tests; tags a clean, passing commit."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from dmig.errors import Conflict
from dmig.harness import paths
from dmig.harness.baseline import baseline
from dmig.harness.lifecycle import session_init
from harness_helpers import (
    FAILING,
    PASSING,
    commit_all,
    rc_for,
    read_json,
    script_command,
    story,
    write_env,
    write_status,
)


def _tags(project: Path) -> list[str]:
    out = subprocess.run(["git", "-C", str(project), "tag", "-l"], capture_output=True, text=True, check=True)
    return out.stdout.split()


def _ready_project(project: Path, body: str = PASSING) -> str:
    write_env(project, script_command(project, "t.py", body))
    write_status(project, {"US-1": story("US-1", "in-progress"), "US-2": story("US-2", "done")})
    session_init(rc_for(project))
    return commit_all(project, "harness")


def test_baseline_tags_a_clean_passing_tree(project: Path) -> None:
    sha = _ready_project(project)
    out = baseline(rc_for(project), "schema v2 ready")
    assert re.fullmatch(r"agileflow-baseline-\d{8}-\d{6}", out.tag) and out.commit == sha
    assert _tags(project) == [out.tag]
    kind = subprocess.run(["git", "-C", str(project), "cat-file", "-t", out.tag], capture_output=True, text=True)
    assert kind.stdout.strip() == "tag"  # annotated, not lightweight
    msg = subprocess.run(["git", "-C", str(project), "tag", "-l", "-n1", out.tag], capture_output=True, text=True)
    assert "schema v2 ready" in msg.stdout
    env = read_json(project / paths.ENVIRONMENT)
    assert env["baseline_commit"] == sha and env["baseline_established"].endswith("Z")
    state = read_json(project / paths.SESSION_STATE)
    assert state["baseline_history"][-1]["tag"] == out.tag and state["current_session"]["baseline_verified"]
    assert read_json(project / paths.STATUS)["stories"]["US-1"]["test_status"] == "passing"


def test_baseline_refuses_a_dirty_tree_without_running_tests(project: Path) -> None:
    _ready_project(project)
    (project / "README.md").write_text("changed\n")
    (project / "new.txt").write_text("untracked\n")
    status_before = (project / paths.STATUS).read_bytes()
    with pytest.raises(Conflict) as err:
        baseline(rc_for(project), "nope")
    assert "not clean" in err.value.message
    assert set(err.value.details["dirty"]) == {" M README.md", "?? new.txt"}
    assert _tags(project) == [] and (project / paths.STATUS).read_bytes() == status_before


def test_baseline_refuses_failing_tests(project: Path) -> None:
    _ready_project(project, FAILING)
    with pytest.raises(Conflict) as err:
        baseline(rc_for(project), "nope")
    assert "tests are failing" in err.value.message
    assert _tags(project) == []
    assert read_json(project / paths.ENVIRONMENT).get("baseline_commit") is None
    assert read_json(project / paths.STATUS)["stories"]["US-1"]["test_status"] == "failing"


def test_baseline_lock_files_do_not_count_as_dirty(project: Path) -> None:
    _ready_project(project)
    (project / "docs" / "09-agents" / ".gitignore").unlink()  # lock files now visible to git
    commit_all(project, "no gitignore")
    (project / (paths.STATUS + ".lock")).write_text("")
    out = baseline(rc_for(project), "ok")
    assert out.tag in _tags(project)


def test_baseline_outside_git_is_refused(tmp_path: Path) -> None:
    write_env(tmp_path, "true")
    with pytest.raises(Conflict) as err:
        baseline(rc_for(tmp_path), "x")
    assert "git repository" in err.value.message


def test_baseline_without_git_identity(project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _ready_project(project)
    home = tmp_path / "empty-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / "none"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in ("GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(var, raising=False)
    out = baseline(rc_for(project), "no identity configured")
    tagger = subprocess.run(
        ["git", "-C", str(project), "for-each-ref", "--format=%(taggername)", f"refs/tags/{out.tag}"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert tagger == "AG-DATAMIGRATION"
