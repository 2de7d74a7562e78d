"""verify: real processes, the exit code as verdict, timeouts that kill the whole tree, counts."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from dmig.errors import CorruptFile, NotFound
from dmig.harness import paths, testcounts
from dmig.harness.verify import verify
from harness_helpers import FAILING, PASSING, SLOW, rc_for, read_json, script_command, story, write_env, write_status


def test_passing_command_updates_every_in_progress_story_in_either_spelling(project: Path) -> None:
    write_env(project, script_command(project, "ok.py", PASSING + "print('token=abcd1234secret')\n"))
    path = write_status(
        project,
        {
            "US-1": story("US-1", "in-progress", custom="kept"),
            "US-2": story("US-2", "in_progress", test_results={"coverage": 81.5, "passed": 99}),
            "US-3": story("US-3", "ready"),
        },
    )
    out = verify(rc_for(project))
    assert out.test_status == "passing" and out.exit_code == 0 and not out.timed_out
    assert (out.framework, out.passed, out.failed, out.skipped) == ("pytest", 3, 0, 1)
    assert sorted(out.updated_stories) == ["US-1", "US-2"]
    data = read_json(path)["stories"]
    for sid in ("US-1", "US-2"):
        results = data[sid]["test_results"]
        assert data[sid]["test_status"] == "passing"
        assert set(results) - {"coverage"} == {"last_run", "command", "passed", "failed", "exit_code", "output_summary"}
        assert results["passed"] == 3 and results["exit_code"] == 0 and results["last_run"].endswith("Z")
        assert "abcd1234secret" not in results["output_summary"]
    assert data["US-1"]["custom"] == "kept" and "test_status" not in data["US-3"]
    assert data["US-2"]["test_results"]["coverage"] == 81.5
    state = read_json(project / paths.SESSION_STATE)
    assert state["current_session"]["initial_test_status"] == "passing"
    assert state["last_verify"]["test_status"] == "passing" and state["last_verify"]["passed"] == 3


def test_failing_command_on_one_story_and_initial_status_is_kept(project: Path) -> None:
    env = write_env(project, script_command(project, "ok.py", PASSING))
    path = write_status(project, {"US-1": story("US-1", "ready"), "US-2": story("US-2", "in-progress")})
    verify(rc_for(project))
    write_env(project, script_command(project, "bad.py", FAILING))
    out = verify(rc_for(project), "US-1")
    assert out.test_status == "failing" and out.exit_code == 1 and (out.passed, out.failed) == (2, 1)
    data = read_json(path)["stories"]
    assert data["US-1"]["test_status"] == "failing" and data["US-2"]["test_status"] == "passing"
    state = read_json(project / paths.SESSION_STATE)
    assert state["current_session"]["initial_test_status"] == "passing"
    assert state["last_verify"]["test_status"] == "failing" and state["last_verify"]["story_id"] == "US-1"
    assert env.exists()


def test_timeout_is_failing_and_kills_the_process_group(project: Path, tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    body = SLOW.replace(
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])",
        f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))",
    )
    write_env(project, script_command(project, "slow.py", body), timeout_ms=1500)
    write_status(project, {"US-1": story("US-1", "in-progress")})
    out = verify(rc_for(project))
    assert out.test_status == "failing" and out.timed_out and out.exit_code is None
    assert "timed out after 1500 ms" in out.output_summary
    assert not _alive(int(pidfile.read_text()))  # the grandchild died with its group
    assert read_json(project / paths.STATUS)["stories"]["US-1"]["test_results"]["exit_code"] is None


def _alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie waiting for a (container) init to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def test_a_command_that_cannot_start_is_failing(project: Path) -> None:
    write_env(project, "definitely-not-a-command-dmig-xyz --run")
    out = verify(rc_for(project))
    assert out.test_status == "failing" and out.exit_code == 127
    assert "could not find the command" in out.output_summary


def test_missing_environment_is_a_clear_error_and_nothing_is_written(project: Path) -> None:
    path = write_status(project, {"US-1": story("US-1", "in-progress")})
    before = path.read_bytes()
    with pytest.raises(NotFound) as err:
        verify(rc_for(project))
    assert err.value.code == "E_NOT_FOUND" and "session_init" in err.value.message
    assert path.read_bytes() == before and not (project / paths.SESSION_STATE).exists()


def test_unknown_story_is_refused_before_running_anything(project: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    write_env(project, f"{sys.executable} -c \"open({str(marker)!r}, 'w')\"")
    write_status(project, {"US-1": story("US-1")})
    with pytest.raises(NotFound):
        verify(rc_for(project), "US-9")
    assert not marker.exists()


SAMPLES = {
    "pytest": (
        "tests/test_a.py ..F.s\n=================== short test summary info ===================\n"
        "FAILED tests/test_a.py::test_x - assert 1 == 2\n"
        "========= 1 failed, 3 passed, 1 skipped, 2 warnings, 1 error in 1.23s =========\n",
        (3, 2, 1),
    ),
    "pytest-q": ("....\n4 passed in 0.05s\n", (4, 0, 0)),
    "jest": (
        "PASS src/a.test.js\nFAIL src/b.test.js\nTest Suites: 1 failed, 1 passed, 2 total\n"
        "Tests:       1 failed, 2 skipped, 5 passed, 8 total\nSnapshots:   0 total\nTime:        1.2 s\n",
        (5, 1, 2),
    ),
    "vitest": (
        " ✓ src/a.test.ts (3)\n ❯ src/b.test.ts (2)\n\n Test Files  1 failed | 1 passed (2)\n"
        "      Tests  1 failed | 3 passed | 1 skipped (5)\n   Start at  10:00:00\n   Duration  1.02s\n",
        (3, 1, 1),
    ),
    "cargo": (
        "running 3 tests\ntest a ... ok\ntest b ... FAILED\ntest c ... ignored\n\n"
        "test result: FAILED. 1 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s\n\n"
        "running 2 tests\ntest result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\n",
        (3, 1, 1),
    ),
    "go": (
        "=== RUN   TestA\n--- PASS: TestA (0.00s)\n=== RUN   TestB\n--- FAIL: TestB (0.00s)\n"
        "    b_test.go:9: boom\n=== RUN   TestC\n--- SKIP: TestC (0.00s)\n    --- PASS: TestA/sub (0.00s)\n"
        "FAIL\nFAIL\texample.com/m\t0.003s\nok  \texample.com/other\t0.002s\n",
        (2, 1, 1),
    ),
    "unittest": ("..F\n------\nRan 3 tests in 0.001s\n\nFAILED (failures=1)\n", (2, 1, 0)),
    "mocha": ("  3 passing (12ms)\n  1 pending\n  2 failing\n", (3, 2, 1)),
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_counts_are_parsed_for_each_runner(name: str) -> None:
    text, expected = SAMPLES[name]
    counts = testcounts.parse(text.splitlines())
    assert counts.framework == name.split("-")[0]
    assert (counts.passed, counts.failed, counts.skipped) == expected


def test_go_without_verbose_reports_unknown_passes_and_ansi_is_ignored() -> None:
    counts = testcounts.parse(["ok  \texample.com/a\t0.01s", "ok  \texample.com/b\t(cached)"])
    assert (counts.framework, counts.passed, counts.failed) == ("go", None, 0)
    colored = testcounts.parse(["\x1b[32m==== 2 passed in 0.1s ====\x1b[0m"])
    assert colored.passed == 2
    assert testcounts.parse(["nothing to see"]).framework is None


def test_make_wrapped_pytest_output_parses(project: Path) -> None:
    (project / "Makefile").write_text(f"test:\n\t{sys.executable} scripts/ok.py\n")
    script_command(project, "ok.py", PASSING)
    write_env(project, "make test")
    out = verify(rc_for(project))
    assert out.test_status == "passing" and out.framework == "pytest" and out.passed == 3


def test_corrupt_session_state_or_environment_stops_verify_before_any_write(project: Path) -> None:
    status_path = write_status(project, {"US-1": story("US-1", "in-progress")})
    before = status_path.read_bytes()
    write_env(project, script_command(project, "ok.py", PASSING))
    state = project / paths.SESSION_STATE
    state.write_text('{"current_session": "not an object"}')
    with pytest.raises(CorruptFile) as err:
        verify(rc_for(project))
    assert "current_session" in err.value.message
    assert status_path.read_bytes() == before
    state.unlink()
    env = write_env(project, "true", timeout_ms=-5, approve=False)
    with pytest.raises(CorruptFile):
        verify(rc_for(project))
    assert status_path.read_bytes() == before and not state.exists()
    assert '"test_timeout_ms": -5' in env.read_text()
