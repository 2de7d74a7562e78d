"""Security: the test command runs only once the user approved it, shows itself, leaves nothing behind
and sees no credential (issues 12.4 and 20.5).

A test command that arrives over MCP (``session_init``), or by editing environment.json, is a proposal:
verify, session_resume and baseline refuse it with E_TEST_COMMAND_NOT_APPROVED until the user approves that
exact string for that project on the command line. Each test checks the effect outside the product: a
sentinel file that must not appear, a file outside the project that must survive, the pid of a detached
process that must be gone, the bytes of the approvals file and of status.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dmig import envrefs, seal
from dmig.context import RunContext
from dmig.errors import ConfirmationRequired, CorruptFile, InvalidInput
from dmig.harness import approval, paths, testenv
from dmig.harness import verify as verify_mod
from dmig.harness.baseline import baseline
from dmig.harness.lifecycle import session_init, session_resume
from harness_helpers import approve_test_command, commit_all, read_json, story, write_env, write_status
from mcp_client import call, dmig_executable, list_tools

CODE = "E_TEST_COMMAND_NOT_APPROVED"
LATE_S = 1.2  # how long detached processes wait before acting


def _rc(project: Path, front_end: str = "mcp") -> RunContext:
    return RunContext(project_dir=project, front_end=front_end)


def _outside(project: Path) -> Path:
    """A folder beside the project holding a victim file that a hostile command would delete or change."""
    folder = project.parent / "outside"
    folder.mkdir(exist_ok=True)
    (folder / "victim.txt").write_text("keep me\n")
    return folder


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _approvals_bytes() -> bytes | None:
    path = approval.store_path()
    return path.read_bytes() if path.exists() else None


# Hostile commands a prompt injection could hand to session_init; {out} is outside the project.
HOSTILE = {
    "rm_outside": "rm -rf {out}/victim.txt",
    "touch_sentinel": "touch {out}/sentinel",
    "overwrite": "echo pwned > {out}/victim.txt",
    "env_dump": "env > {out}/env.txt",
    "printenv_project": "printenv > env-in-project.txt; touch {out}/sentinel",
    "background": "(sleep 0.5; touch {out}/late) &",
    "nohup": "nohup sh -c 'touch {out}/nohup' >/dev/null 2>&1 &",
    "setsid": "setsid sh -c 'sleep 0.5; touch {out}/setsid' &",
    "chained_after_tests": "true && touch {out}/sentinel",
    "subshell_in_args": "echo $(touch {out}/sentinel)",
    "newline": "true\ntouch {out}/sentinel",
    "python": sys.executable + " -c \"open('{out}/sentinel','w')\"",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_command_from_mcp_session_init_never_runs(project: Path, name: str) -> None:
    out = _outside(project)
    before_out, before_approvals = _snapshot(out), _approvals_bytes()
    command = HOSTILE[name].format(out=out)
    init, verified, resumed, based = call(
        project,
        [
            ("session_init", {"test_command": command}),
            ("verify", {}),
            ("session_resume", {}),
            ("baseline", {"message": "known good"}),
        ],
    )
    assert init["environment"]["test_command"] == command
    assert init["test_command_approval"] == {
        "command": command,
        "approved": False,
        "approve_with": approval.approve_hint(project),
    }
    for refused in (verified, resumed, based):
        error = refused["error"]
        assert error["code"] == CODE, refused
        assert error["details"]["command"] == command and "approve-test-command" in error["message"]
        assert error["details"]["reason"] == "not_approved"
    time.sleep(LATE_S)  # anything detached would have acted by now
    assert _snapshot(out) == before_out, "the command ran"
    assert not (project / "env-in-project.txt").exists()
    assert _approvals_bytes() == before_approvals, "an MCP call wrote an approval"
    state = read_json(project / paths.SESSION_STATE)
    assert "last_verify" not in state


@pytest.mark.parametrize("name", ["touch_sentinel", "rm_outside", "env_dump", "setsid"])
def test_session_init_over_mcp_cannot_replace_an_approved_command(project: Path, name: str) -> None:
    out = _outside(project)
    write_env(project, "true")  # the user's command, approved
    assert verify_mod.verify(_rc(project)).test_status == "passing"
    before = _snapshot(out)
    command = HOSTILE[name].format(out=out)
    init, verified = call(
        project, [("session_init", {"test_command": command, "update_environment": True}), ("verify", {})]
    )
    assert init["updated"] == [paths.ENVIRONMENT] and init["test_command_approval"]["approved"] is False
    assert verified["error"]["code"] == CODE and verified["error"]["details"]["reason"] == "changed"
    time.sleep(LATE_S)
    assert _snapshot(out) == before


def test_no_mcp_tool_can_approve(project: Path) -> None:
    names = {t.name for t in list_tools(project)}
    assert not any("approv" in n for n in names)
    for tool in list_tools(project):
        schema = json.dumps(tool.input_schema)
        assert "pass_env" not in schema and '"approve' not in schema


# Edits an agent's file tools could make to an approved environment.json.
TAMPER = {
    "appended": lambda c: c + "; touch {out}/sentinel",
    "prefixed": lambda c: "touch {out}/sentinel; " + c,
    "trailing_space": lambda c: c + " ",
    "replaced": lambda c: "touch {out}/sentinel",
    "newline": lambda c: c + "\ntouch {out}/sentinel",
    "case": lambda c: c.upper(),
    "lookalike": lambda c: c.replace("e", "\u0435"),  # Cyrillic e
    "bidi": lambda c: c + " \u202e",
}


@pytest.mark.parametrize("name", sorted(TAMPER))
def test_editing_environment_json_unapproves_the_command(project: Path, name: str) -> None:
    out = _outside(project)
    original = f"echo ok > {project}/ran.txt"
    env_path = write_env(project, original)
    status_path = write_status(project, {"US-1": story("US-1")})
    assert verify_mod.verify(_rc(project)).test_status == "passing"
    (project / "ran.txt").unlink()
    before_status, before_out = status_path.read_bytes(), _snapshot(out)
    tampered = TAMPER[name](original).format(out=out)
    data = read_json(env_path)
    data["test_command"] = tampered
    env_path.write_text(json.dumps(data))
    for front_end in ("mcp", "cli"):
        with pytest.raises(approval.TestCommandNotApproved) as err:
            verify_mod.verify(_rc(project, front_end))
        assert err.value.details["command"] == tampered and err.value.details["reason"] == "changed"
        with pytest.raises(approval.TestCommandNotApproved):
            session_resume(_rc(project, front_end))
    time.sleep(0.2)
    assert not (project / "ran.txt").exists() and _snapshot(out) == before_out
    assert status_path.read_bytes() == before_status
    data["test_command"] = original  # back to the approved text: it runs again
    env_path.write_text(json.dumps(data))
    assert verify_mod.verify(_rc(project)).test_status == "passing" and (project / "ran.txt").exists()


def test_changed_command_needs_a_new_approval(project: Path) -> None:
    write_env(project, f"echo one > {project}/one.txt")
    assert verify_mod.verify(_rc(project)).command.startswith("echo one")
    write_env(project, f"echo two > {project}/two.txt", approve=False)
    with pytest.raises(approval.TestCommandNotApproved) as err:
        verify_mod.verify(_rc(project))
    assert err.value.details["reason"] == "changed" and not (project / "two.txt").exists()
    approve_test_command(project)
    assert verify_mod.verify(_rc(project)).test_status == "passing" and (project / "two.txt").exists()


def test_an_approval_for_project_a_is_not_one_for_project_b(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for p in (a, b):
        p.mkdir()
    command = "echo ran > ran.txt"
    write_env(a, command)
    write_env(b, command, approve=False)
    with pytest.raises(approval.TestCommandNotApproved) as err:
        verify_mod.verify(_rc(b))
    assert err.value.details["reason"] == "not_approved" and not (b / "ran.txt").exists()
    # Copying A's record with B's path does not help: the HMAC covers the project's real path.
    store = approval.store_path()
    doc = json.loads(store.read_text())
    forged = [dict(e, project=str(b.resolve())) for e in doc["approvals"] if e["project"] == str(a.resolve())]
    store.write_text(json.dumps({"version": 1, "approvals": doc["approvals"] + forged}))
    with pytest.raises(approval.TestCommandNotApproved):
        verify_mod.verify(_rc(b))
    assert not (b / "ran.txt").exists()
    assert verify_mod.verify(_rc(a)).test_status == "passing" and (a / "ran.txt").exists()
    link = tmp_path / "a-link"
    link.symlink_to(a)  # the same project reached by another spelling
    assert verify_mod.verify(_rc(link)).test_status == "passing"


FORGED = {
    "no_mac": lambda e: {k: v for k, v in e.items() if k != "mac"},
    "random_mac": lambda e: dict(e, mac="0" * 64),
    "mac_of_other_purpose": lambda e: dict(e, mac=seal.sign("plan", e["project"], e["_command"], "[]")),
    "sha_only": lambda e: dict(e, mac=approval.command_digest(e["_command"])),
    "extra_pass_env": lambda e: dict(e, pass_env=["HOME"]),
}


@pytest.mark.parametrize("name", sorted(FORGED))
def test_an_approval_written_without_the_key_is_refused(project: Path, name: str) -> None:
    command = "echo ran > ran.txt"
    write_env(project, "true")  # makes sure the key and the file exist
    write_env(project, command, approve=False)
    store = approval.store_path()
    doc = json.loads(store.read_text())
    entry = {
        "project": str(project.resolve()),
        "command_sha256": approval.command_digest(command),
        "pass_env": [],
        "approved_at": "2026-01-01T00:00:00.000Z",
        "via": "approve-test-command",
        "mac": "",
        "_command": command,
    }
    if name == "extra_pass_env":  # a real approval, widened by hand afterwards
        approve_test_command(project)
        doc = json.loads(store.read_text())
        entry = next(
            e
            for e in doc["approvals"]
            if e["command_sha256"] == entry["command_sha256"] and e["project"] == entry["project"]
        )
        doc["approvals"].remove(entry)
        entry["_command"] = command
    forged = FORGED[name](entry)
    forged.pop("_command", None)
    doc["approvals"].append(forged)
    store.write_text(json.dumps(doc))
    with pytest.raises(approval.TestCommandNotApproved):
        verify_mod.verify(_rc(project))
    assert not (project / "ran.txt").exists()


@pytest.mark.parametrize("content", [b"{not json", b'{"approvals": 5}', b"\xff\xfe", b"[]", b"x" * (5 << 20)])
def test_a_corrupt_approvals_file_fails_closed(project: Path, content: bytes) -> None:
    write_env(project, "echo ran > ran.txt")
    store = approval.store_path()
    saved = store.read_bytes()
    try:
        store.write_bytes(content)
        with pytest.raises(CorruptFile) as err:
            verify_mod.verify(_rc(project))
        assert err.value.details["reason"] == "approvals_corrupt"
        assert not (project / "ran.txt").exists()
    finally:
        store.write_bytes(saved)


def test_a_symlinked_approvals_file_fails_closed(project: Path, tmp_path: Path) -> None:
    write_env(project, "echo ran > ran.txt")
    store = approval.store_path()
    real = tmp_path / "elsewhere.json"
    real.write_bytes(store.read_bytes())
    saved = store.read_bytes()
    store.unlink()
    try:
        store.symlink_to(real)
        with pytest.raises(CorruptFile):
            verify_mod.verify(_rc(project))
        assert not (project / "ran.txt").exists()
    finally:
        store.unlink()
        store.write_bytes(saved)


def test_a_data_folder_inside_the_project_cannot_hold_approvals(project: Path, monkeypatch) -> None:
    write_env(project, "echo ran > ran.txt", approve=False)
    monkeypatch.setenv("DMIG_DATA_DIR", str(project / ".dmig"))
    with pytest.raises(InvalidInput) as err:
        approve_test_command(project)
    assert err.value.details["reason"] == "seal_key_in_project"
    with pytest.raises(InvalidInput):
        verify_mod.verify(_rc(project))
    assert not (project / "ran.txt").exists() and not (project / ".dmig").exists()


# ---------------------------------------------------------------------------------------------- the user's path


def _cli(project: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [dmig_executable(), "--project-dir", str(project), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_approval_shows_the_command_and_needs_a_yes(project: Path) -> None:
    command = f"echo ran > {project}/ran.txt"
    call(project, [("session_init", {"test_command": command})])
    before = _approvals_bytes()
    refused = _cli(project, "approve-test-command", stdin="y\n")  # not a terminal: no answer is taken
    assert refused.returncode == 2 and "E_CONFIRMATION_REQUIRED" in refused.stderr
    assert command in refused.stdout and approval.command_digest(command) in refused.stdout
    assert _approvals_bytes() == before
    not_run = _cli(project, "verify")
    assert not_run.returncode == 2 and CODE in not_run.stderr and "approve-test-command" in not_run.stderr
    assert not (project / "ran.txt").exists()
    ok = _cli(project, "approve-test-command", "--yes", "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["command_sha256"] == approval.command_digest(command)
    ran = _cli(project, "verify")
    assert ran.returncode == 0 and f"command: {command}" in ran.stdout and (project / "ran.txt").exists()
    again = _cli(project, "approve-test-command", "--yes", "--json")
    assert json.loads(again.stdout)["already"] is True


@pytest.mark.parametrize(("answer", "approved"), [("y", True), ("yes", True), ("n", False), ("", False), ("Y ", True)])
def test_the_interactive_question(project: Path, answer: str, approved: bool) -> None:
    write_env(project, "echo ran > ran.txt", approve=False)
    shown: list[str] = []
    out = approval.cli_approve(
        project, yes=False, pass_env=[], say=shown.append, ask=lambda _q: answer, interactive=True
    )
    assert (out is not None) is approved
    assert (approval.find(project, "echo ran > ran.txt") is not None) is approved
    assert "    echo ran > ran.txt" in shown and any("not approved yet" in s for s in shown)


def test_non_interactive_without_yes_is_refused(project: Path) -> None:
    write_env(project, "true", approve=False)
    with pytest.raises(ConfirmationRequired):
        approval.cli_approve(project, yes=False, pass_env=[], say=print, ask=lambda _q: "y", interactive=False)
    assert approval.find(project, "true") is None


@pytest.mark.parametrize(
    "command",
    [
        "psql postgresql://app:hunter2secret@db/prod -c 'select 1'",
        "PGPASSWORD=hunter2secret pytest",
        "mysql --password=hunter2secret -e 'select 1'",
    ],
)
def test_a_command_whose_text_would_be_masked_cannot_be_approved(project: Path, command: str) -> None:
    env = write_env(project, "true")
    data = read_json(env)
    data["test_command"] = command
    env.write_text(json.dumps(data))
    before = _approvals_bytes()
    with pytest.raises(InvalidInput) as err:
        approve_test_command(project)
    assert err.value.details["reason"] == "credential_in_command"
    assert _approvals_bytes() == before


def test_control_characters_are_shown_escaped_when_approving(project: Path) -> None:
    command = "true \x1b[2K\rmake test"
    env = write_env(project, "true")
    data = read_json(env)
    data["test_command"] = command
    env.write_text(json.dumps(data))
    shown = _cli(project, "approve-test-command", stdin="")
    assert "\x1b" not in shown.stdout and "\\x1b[2K\\rmake test" in shown.stdout and "WARNING" in shown.stdout


def test_cli_session_init_approves_what_the_user_typed_only(project: Path) -> None:
    out = session_init(_rc(project, "cli"), test_command="echo typed > typed.txt")
    assert out.test_command_approval["approved"] is True
    assert verify_mod.verify(_rc(project)).test_status == "passing" and (project / "typed.txt").exists()
    # A detected command (nobody typed it) is a proposal on the CLI too.
    other = project.parent / "detected"
    other.mkdir()
    (other / "Makefile").write_text("test:\n\ttouch made.txt\n")
    detected = session_init(_rc(other, "cli"))
    assert detected.environment["test_command"] == "make test"
    assert detected.test_command_approval["approved"] is False
    with pytest.raises(approval.TestCommandNotApproved):
        verify_mod.verify(_rc(other))
    assert not (other / "made.txt").exists()


def test_hook_and_annotations_say_a_shell_command_runs() -> None:
    from dmig.registry import all_tools

    specs = {s.name: s for s in all_tools()}
    for name in ("verify", "session_resume", "baseline"):
        assert specs[name].destructive and specs[name].open_world and not specs[name].read_only
        assert "shell command" in specs[name].description and "approv" in specs[name].description
    root = Path(__file__).resolve().parents[1]
    hook = root / "hooks" / "confirm-destructive.sh"
    for name in ("verify", "session_resume", "baseline"):
        answer = subprocess.run(
            ["sh", str(hook)],
            input=json.dumps({"tool_name": f"mcp__plugin_agileflow_dmig__{name}"}),
            capture_output=True,
            text=True,
            check=True,
        )
        reason = json.loads(answer.stdout)["hookSpecificOutput"]["permissionDecisionReason"]
        assert "shell command" in reason and "approve-test-command" in reason


# ---------------------------------------------------------------------------------------------- nothing survives


# Each writes its detached process's pid to pid.txt, then (later) a flag file that must never appear.
DETACHERS = {
    "background": "(echo $$ > /dev/null; sh -c 'echo $$ > pid.txt; sleep {late}; touch {flag}') &",
    "nohup": "nohup sh -c 'echo $$ > pid.txt; sleep {late}; touch {flag}' >/dev/null 2>&1 &",
    "setsid": "setsid sh -c 'echo $$ > pid.txt; sleep {late}; touch {flag}' >/dev/null 2>&1 < /dev/null &",
    "setsid_fork": "setsid -f sh -c 'echo $$ > pid.txt; sleep {late}; touch {flag}' >/dev/null 2>&1 < /dev/null",
    "double_fork": "sh -c \"(setsid sh -c 'echo \\$\\$ > pid.txt; sleep {late}; touch {flag}' &)\"",
    "ignores_term": "setsid sh -c 'trap \"\" TERM HUP INT; echo $$ > pid.txt; sleep {late}; touch {flag}' &",
    "kills_supervisor": "setsid sh -c 'echo $$ > pid.txt; sleep {late}; touch {flag}' & sleep 0.3; kill -9 $PPID",
    "python_daemon": sys.executable
    + ' -c "import os,time,sys\nif os.fork(): sys.exit(0)\nos.setsid()\nif os.fork(): sys.exit(0)\n'
    "open('pid.txt','w').write(str(os.getpid()))\ntime.sleep({late}); open('{flag}','w')\" ",
}


def _assert_nothing_left(project: Path, flag: Path, *, pid: bool = True) -> None:
    """The detached process (its pid in pid.txt) is gone now, and its file never appears."""
    if pid:
        detached = int((project / "pid.txt").read_text().strip())
        assert _gone(detached), f"pid {detached} outlived verify"
    time.sleep(2.5)
    assert not flag.exists(), "a detached process outlived verify and wrote its file"


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")  # a zombie has already ended; its parent (not us) reaps it


@pytest.mark.parametrize("ending", ["normal", "timeout"])
@pytest.mark.parametrize("name", sorted(DETACHERS))
def test_every_process_the_command_started_is_killed(project: Path, name: str, ending: str) -> None:
    flag = project.parent / f"late-{name}-{ending}"
    command = DETACHERS[name].format(late=2, flag=flag) + ("\nsleep 0.5" if ending == "normal" else "\nsleep 30")
    write_env(project, command, timeout_ms=1500 if ending == "timeout" else 60_000)
    started = time.monotonic()
    result = verify_mod.verify(_rc(project))
    assert result.command == command
    if ending == "timeout" and name != "kills_supervisor":
        assert result.timed_out and time.monotonic() - started < 10
    assert (project / "pid.txt").exists(), result.output_summary
    _assert_nothing_left(project, flag)


def test_processes_are_killed_when_verify_fails_midway(project: Path, monkeypatch) -> None:
    flag = project.parent / "late-error"
    command = f"setsid sh -c 'echo $$ > pid.txt; sleep 2; touch {flag}' & sleep 30"
    write_env(project, command)
    real_wait = subprocess.Popen.wait

    def interrupted(self, timeout=None):
        if timeout and timeout > 10:  # verify's wait for the test run: fail the way a Ctrl-C would
            time.sleep(0.7)
            raise KeyboardInterrupt
        return real_wait(self, timeout)

    monkeypatch.setattr(subprocess.Popen, "wait", interrupted)
    with pytest.raises(KeyboardInterrupt):
        verify_mod.verify(_rc(project))
    monkeypatch.undo()
    _assert_nothing_left(project, flag)


def test_detached_processes_die_over_mcp_too(project: Path) -> None:
    flag = project.parent / "late-mcp"
    command = f"setsid sh -c 'echo $$ > pid.txt; sleep 2; touch {flag}' & sleep 0.5"
    write_env(project, command)
    [verified] = call(project, [("verify", {})])
    assert verified["command"] == command and verified["test_status"] == "passing"
    _assert_nothing_left(project, flag)


def test_baseline_runs_the_command_supervised(project: Path) -> None:
    flag = project.parent / "late-baseline"
    command = f"setsid sh -c 'sleep 2; touch {flag}' >/dev/null 2>&1 < /dev/null &"
    write_env(project, command)
    (project / ".gitignore").write_text("docs/\n")
    commit_all(project)
    baseline(_rc(project), "known good")
    _assert_nothing_left(project, flag, pid=False)


# ---------------------------------------------------------------------------------------------- environment


SECRET = "s3cr3t-value-behind-an-env-reference"


def _spec(project: Path, name: str, text: str) -> None:
    path = project / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


REFERENCES = {
    "spec_database": ("docs/migrations/x/spec.yaml", "id: x\ndatabase: env:{var}\n"),
    "spec_target": ("docs/migrations/x/spec.yaml", "operations:\n  - move_table: {{target_database: 'env:{var}'}}\n"),
    "policy": ("docs/00-meta/dmig-policy.yaml", "version: 1\ndatabases:\n  app: {{env: {var}, writable: true}}\n"),
    "plan_dollar": ("docs/migrations/x/plan.yaml", "target:\n  ref: ${{{var}}}\n"),
    "plan_bare_dollar": ("docs/migrations/x/plan.yaml", "target:\n  ref: ${var}\n"),
    "audit_json": ("docs/00-meta/dmig-audit.jsonl", '{{"tool": "copy", "arguments": {{"target_url": "env:{var}"}}}}\n'),
    "json_spec": ("docs/migrations/y/spec.json", '{{"database": "env:{var}"}}\n'),
}


@pytest.mark.parametrize("kind", sorted(REFERENCES))
def test_variables_named_by_env_references_in_the_project_are_withheld(project: Path, kind: str, monkeypatch) -> None:
    var = f"APP_CONN_{kind.upper()}"  # an innocent name: only the reference marks it
    monkeypatch.setenv(var, SECRET)
    name, text = REFERENCES[kind]
    _spec(project, name, text.format(var=var))
    write_env(project, "env > captured.txt; cat captured.txt")
    result = verify_mod.verify(_rc(project))
    captured = (project / "captured.txt").read_text()
    assert f"{var}=" not in captured and SECRET not in captured
    assert SECRET not in result.output_summary and "PATH=" in captured


@pytest.mark.parametrize("spelling", ["env:{var}", "${var}", "${{{var}}}"])
def test_variables_this_process_expanded_are_withheld(project: Path, spelling: str, monkeypatch) -> None:
    from dmig.db.urls import parse_url

    var = f"MY_APP_CONN_{abs(hash(spelling)) % 1000}"
    monkeypatch.setenv(var, f"sqlite:///{project}/x.db")
    parse_url(spelling.format(var=var))
    assert var in envrefs.names()
    kept = testenv.clean_env()
    assert var not in kept


def test_referenced_variables_are_withheld_over_mcp(project: Path, tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    import sqlite3

    sqlite3.connect(db).close()
    env = {"PLAIN_LOOKING_DSN": f"sqlite:///{db}", "UNRELATED_SETTING": SECRET}
    write_env(project, "env > captured.txt")
    inspected, verified = call(project, [("inspect", {"url": "env:PLAIN_LOOKING_DSN"}), ("verify", {})], env=env)
    assert "error" not in inspected and verified["test_status"] == "passing"
    captured = (project / "captured.txt").read_text()
    assert "PLAIN_LOOKING_DSN" not in captured and str(db) not in captured
    assert "UNRELATED_SETTING=" in captured  # not referenced, not credential-like: kept


@pytest.mark.parametrize(
    ("name", "value"),
    [  # ids: pytest puts the test id into PYTEST_CURRENT_TEST, which the command inherits
        ("SOURCE_DB_URL", "postgresql://app:hunter2-source@db.example/prod"),
        ("LEGACY_DSN", "mysql://reader@db.example/prod"),  # a database URL, even without a password
        ("OTHER_URL", "https://u:hunter2-inline@example.org/x"),
        ("API_TOKEN", "tok-hunter2-abcdef"),
        ("MY_PASSWORD", "hunter2-plain-xyz"),
    ],
    ids=["db_url_name", "dsn_value", "url_with_password", "token_name", "password_name"],
)
def test_credential_like_variables_stay_withheld_and_masked(project: Path, name: str, value: str, monkeypatch) -> None:
    monkeypatch.setenv(name, value)
    write_env(project, "env > captured.txt; cat captured.txt")
    result = verify_mod.verify(_rc(project))
    assert value not in (project / "captured.txt").read_text() and value not in result.output_summary


def test_pass_env_lets_a_variable_through_and_still_masks_it(project: Path, monkeypatch) -> None:
    var = "APP_CONN_FOR_TESTS"
    monkeypatch.setenv(var, SECRET)
    _spec(project, "docs/migrations/x/spec.yaml", f"database: env:{var}\n")
    write_env(project, f'printf "%s\\n" "${var}" > got.txt; cat got.txt', approve=False)
    approve_test_command(project, var)
    result = verify_mod.verify(_rc(project))
    assert (project / "got.txt").read_text().strip() == SECRET  # the user let it through
    assert SECRET not in result.output_summary  # and it is still masked in what verify returns
    # pass_env is part of what was approved: the agent cannot widen it.
    found = approval.find(project, read_json(project / paths.ENVIRONMENT)["test_command"])
    assert found is not None and found.pass_env == (var,)


def test_the_supervisor_is_the_command_parent(project: Path) -> None:
    """verify's own process does not become the parent of the command (the reaper sits between)."""
    write_env(project, "echo $PPID > ppid.txt")
    verify_mod.verify(_rc(project))
    ppid = int((project / "ppid.txt").read_text())
    assert ppid != os.getpid()


def test_processes_are_killed_when_the_verifying_process_dies(project: Path) -> None:
    """SIGKILL of `dmig verify` itself: the supervisor's parent-death signal still ends the whole tree."""
    flag = project.parent / "late-parent-died"
    write_env(project, f"setsid sh -c 'echo $$ > pid.txt; sleep 2; touch {flag}' >/dev/null 2>&1 &\nsleep 30")
    proc = subprocess.Popen([dmig_executable(), "--project-dir", str(project), "verify"], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not (project / "pid.txt").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.1)
    proc.kill()
    proc.wait()
    time.sleep(0.5)  # the supervisor's sweep after its SIGTERM
    _assert_nothing_left(project, flag)
