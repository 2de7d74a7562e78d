"""session_init and session_resume: start the harness in a project, and start each later session.

Init only ever creates: an existing file is left byte for byte as it is (another agent, or the
user, may own it), and anything we would have set differently is reported instead. Resume
closes the previous session, runs the tests and compares them with the last known result, so a
regression introduced between sessions is reported at the start of the next one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from dmig import fsutil, safeload
from dmig.context import RunContext
from dmig.errors import DmigError
from dmig.harness import approval, context_digest, environment, gitinfo, jsonio, session, status, verify
from dmig.harness.clock import utc_now
from dmig.harness.paths import ProjectFiles, project_files
from dmig.harness.verify import VerifyResult

GITIGNORE_LINE = "*.lock"


class InitResult(BaseModel):
    created: list[str] = Field(description="Files this call created.")
    existing: list[str] = Field(description="Files that already existed and were left unchanged (unless updated).")
    updated: list[str] = Field(description="Files changed because update_environment was set.")
    environment: dict[str, Any]
    detected: dict[str, Any] = Field(description="What detection found: project_type, test_command and why.")
    session_id: str | None
    test_command_approval: dict[str, Any] = Field(
        default_factory=dict,
        description="Whether environment.json's test command is approved by the user (verify runs only an "
        "approved command) and, if not, the terminal command with which the user approves it.",
    )
    notes: list[str]


class Regression(BaseModel):
    scope: str = Field(description="'project' for the whole suite, 'story' for one in-progress story.")
    story_id: str | None = None
    title: str | None = None
    was: str
    now: str


class ResumeResult(BaseModel):
    session_id: str
    previous_session: dict[str, Any] | None = Field(description="The session just closed (as stored in last_session).")
    previous_test_status: str | None = Field(description="The last known test status before this run.")
    verify: VerifyResult
    regressions: list[Regression]
    context: dict[str, Any] = Field(description="The bounded obtain_context briefing, taken after the test run.")


def _env_overrides(**given: Any) -> dict[str, Any]:
    return {k: v for k, v in given.items() if v is not None}


def _new_environment(files: ProjectFiles, overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    found = environment.detect(files.root)
    now = utc_now()
    env: dict[str, Any] = {
        "project_type": found.project_type,
        "init_script": None,
        "test_command": found.test_command,
        "test_timeout_ms": environment.DEFAULT_TIMEOUT_MS,
        "verification_policy": "warn",
        "baseline_commit": None,
        "baseline_established": None,
        "created_at": now,
        "updated_at": now,
    }
    env.update(overrides)
    return env, {"project_type": found.project_type, "test_command": found.test_command, "reason": found.reason}


def _init_environment(files: ProjectFiles, overrides: dict[str, Any], update: bool, out: InitResult) -> None:
    label = files.relative(files.environment)
    with fsutil.locked(files.environment):
        doc = jsonio.load(files.environment, environment.SCHEMA, label=environment.LABEL)
        if doc is None:
            env, out.detected = _new_environment(files, overrides)
            doc = jsonio.JsonDoc(path=files.environment, data=env, existed=False)
            jsonio.save(doc, environment.SCHEMA, label=environment.LABEL)
            out.created.append(label)
        elif update and overrides:
            before = dict(doc.data)
            doc.data.update(overrides)
            if doc.data != before:
                doc.data["updated_at"] = utc_now()
            if jsonio.save(doc, environment.SCHEMA, label=environment.LABEL):
                out.updated.append(label)
            else:
                out.existing.append(label)
        else:
            out.existing.append(label)
            differs = {k: v for k, v in overrides.items() if doc.data.get(k) != v}
            if differs:
                out.notes.append(
                    f"{label} exists and was not changed; pass update_environment to apply: {sorted(differs)}"
                )
        out.environment = doc.data
    if not out.environment.get("test_command"):
        out.notes.append("no test command was detected; verify will refuse until test_command is set")


def _create_if_missing(path: Any, text: str, files: ProjectFiles, out: InitResult) -> None:
    """Create a file with ``text`` unless it exists; under its lock so two inits cannot race."""
    label = files.relative(path)
    with fsutil.locked(path):
        if path.exists():
            out.existing.append(label)
            return
        fsutil.atomic_write_text(path, text)
        out.created.append(label)


def _init_session(files: ProjectFiles, actor: str, out: InitResult) -> None:
    label = files.relative(files.session_state)
    existed = files.session_state.exists()
    with session.editing(files) as state:
        had_current = isinstance(state.get("current_session"), dict)
        out.session_id = session.ensure_current(state, actor)["id"]
    if not existed:
        out.created.append(label)
    elif had_current:
        out.existing.append(label)
    else:
        out.updated.append(label)


def _read_or_empty(path: Path) -> str:
    """A small project text file, or "" when it is huge, special (a FIFO) or unreadable."""
    try:
        return safeload.read_text(path, "text", errors="replace")
    except (OSError, DmigError):
        return ""


def _gitignore_locks(files: ProjectFiles, out: InitResult) -> None:
    """Lock files are transient; a .gitignore beside them keeps them out of commits (never edited if present)."""
    for folder in {files.status.parent, files.environment.parent}:
        path = folder / ".gitignore"
        if not path.exists():
            text = f"# transient inter-process locks of the AgileFlow harness\n{GITIGNORE_LINE}\n"
            _create_if_missing(path, text, files, out)
        elif GITIGNORE_LINE not in _read_or_empty(path).split():
            out.notes.append(f"{files.relative(path)} does not ignore {GITIGNORE_LINE}; lock files may show in git")


def session_init(
    rc: RunContext,
    *,
    test_command: str | None = None,
    test_timeout_ms: int | None = None,
    project_type: str | None = None,
    init_script: str | None = None,
    verification_policy: str | None = None,
    update_environment: bool = False,
) -> InitResult:
    rc.require_writable("session_init")
    files = project_files(rc)
    # Refuse a corrupt file before creating anything, so a failed init leaves no half-set-up project.
    status.read(files)
    session.read(files)
    environment.read(files)
    out = InitResult(created=[], existing=[], updated=[], environment={}, detected={}, session_id=None, notes=[])
    overrides = _env_overrides(
        test_command=test_command,
        test_timeout_ms=test_timeout_ms,
        project_type=project_type,
        init_script=init_script,
        verification_policy=verification_policy,
    )
    _init_environment(files, overrides, update_environment, out)
    _create_if_missing(files.status, jsonio.dumps(status.new_status_document()), files, out)
    _create_if_missing(files.bus, "", files, out)
    _init_session(files, rc.actor, out)
    _gitignore_locks(files, out)
    if not out.detected:
        found = environment.detect(files.root)
        out.detected = {"project_type": found.project_type, "test_command": found.test_command, "reason": found.reason}
    _approval_state(rc, files, test_command, out)
    return out


def _approval_state(rc: RunContext, files: ProjectFiles, given: str | None, out: InitResult) -> None:
    """A command the user typed on the command line is approved; one that arrived over MCP (or that was
    detected, or already in the file) is a proposal that verify refuses until the user approves it."""
    stored = out.environment.get("test_command")
    if not isinstance(stored, str) or not stored.strip():
        return
    if rc.front_end == "cli" and given is not None and given == stored:
        try:
            approval.approve(files.root, stored, via="session-init")
        except DmigError as exc:  # a command a mask would change, a corrupt approvals file: stays a proposal
            out.notes.append(f"the test command was not approved: {exc.message}")
    try:
        found = approval.find(files.root, stored)
    except DmigError as exc:
        found = None
        out.notes.append(exc.message)
    out.test_command_approval = {"command": stored, "approved": found is not None}
    if found is None:
        hint = approval.approve_hint(files.root)
        out.test_command_approval["approve_with"] = hint
        out.notes.append(
            "the test command is a proposal until the user approves it: verify, session_resume and baseline refuse "
            f"to run it until the user runs `{hint}` in a terminal"
        )


def _last_known(state: dict[str, Any] | None) -> str | None:
    if not state:
        return None
    last_verify = state.get("last_verify")
    if isinstance(last_verify, dict) and last_verify.get("test_status"):
        return last_verify["test_status"]
    for key, field in (("current_session", "initial_test_status"), ("last_session", "final_test_status")):
        value = state.get(key)
        if isinstance(value, dict) and value.get(field):
            return value[field]
    return None


def _story_tests(files: ProjectFiles) -> dict[str, tuple[str | None, str | None]]:
    data = status.read(files) or {}
    return {
        sid: (story.get("test_status"), story.get("title"))
        for sid, story in status.stories(data).items()
        if isinstance(story, dict)
    }


def _regressions(previous: str | None, before: dict, after: dict, result: VerifyResult) -> list[Regression]:
    found = []
    if previous == "passing" and result.test_status == "failing":
        found.append(Regression(scope="project", was="passing", now="failing"))
    for sid in result.updated_stories:
        was = before.get(sid, (None, None))[0]
        now, title = after.get(sid, (None, None))
        if was == "passing" and now == "failing":
            found.append(Regression(scope="story", story_id=sid, title=title, was=was, now=now))
    return found


def _close_and_open(files: ProjectFiles, rc: RunContext, env: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    data = status.read(files)
    head = gitinfo.head_sha(files.root)
    with session.editing(files) as state:
        old = state.get("current_session") if isinstance(state.get("current_session"), dict) else None
        ended = None
        if old is not None:
            ended = {
                "id": old.get("id"),
                "started_at": old.get("started_at"),
                "ended_at": utc_now(),
                "stories_completed": session.completed_since(data, old.get("started_at")),
                "final_test_status": _last_known(state),
                "commits": gitinfo.commits_since(files.root, old.get("started_at")),
            }
        fresh = session.new_current(
            rc.actor,
            current_story=old.get("current_story") if old else None,
            baseline_verified=bool(head and head == env.get("baseline_commit")),
        )
        session.rotate(state, fresh, ended)
    return fresh["id"], ended


def session_resume(rc: RunContext, story_id: str | None = None) -> ResumeResult:
    rc.require_writable("session_resume")
    files = project_files(rc)
    env = environment.require(files)
    verify.preflight(files, None)
    previous = _last_known(session.read(files))
    before = _story_tests(files)
    session_id, ended = _close_and_open(files, rc, env)
    result = verify.verify(rc)
    after = _story_tests(files)
    return ResumeResult(
        session_id=session_id,
        previous_session=ended,
        previous_test_status=previous,
        verify=result,
        regressions=_regressions(previous, before, after, result),
        context=context_digest.obtain_context(rc, story_id=story_id),
    )
