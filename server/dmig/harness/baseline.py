"""baseline: mark a known-good commit with an annotated tag, once the evidence says it is good.

Order matters because verify itself writes status.json and session-state.json: the tree is
checked clean *before* the tests run, the commit to tag is captured then, and verify's own
writes land afterwards, so they can never make a clean tree look dirty or a dirty one clean.
The only files ignored in the cleanliness check are the transient ``.lock`` siblings that the
harness creates next to its files, and the append-only audit log that every writing tool call
(this one included) extends.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field

from dmig.audit import AUDIT_PATH
from dmig.context import RunContext
from dmig.errors import Conflict, InvalidInput
from dmig.harness import environment, gitinfo, jsonio, session, status, verify
from dmig.harness.clock import utc_now
from dmig.harness.paths import ProjectFiles, project_files
from dmig.harness.verify import VerifyResult
from dmig.redact import redact

MAX_MESSAGE = 2000
TAG_PREFIX = "agileflow-baseline-"


class BaselineResult(BaseModel):
    tag: str = Field(description="The annotated tag created (agileflow-baseline-YYYYMMDD-HHMMSS).")
    commit: str = Field(description="The commit the tag points at.")
    message: str
    established: str = Field(description="When the baseline was recorded (ISO-8601 UTC).")
    verify: VerifyResult


def _clean_tree_commit(files: ProjectFiles) -> str:
    root = files.root
    if not gitinfo.is_repo(root):
        raise Conflict("baseline needs a git repository; this project folder is not one")
    sha = gitinfo.head_sha(root)
    if sha is None:
        raise Conflict("baseline needs at least one commit to tag")
    ignored = files.lock_files() | {AUDIT_PATH.as_posix()}
    dirty = [f"{code} {path}" for code, path in gitinfo.porcelain(root) if path not in ignored]
    if dirty:
        raise Conflict(
            f"the git tree is not clean ({len(dirty)} changed or untracked file(s)); commit or stash them first",
            dirty=dirty[:20],
            dirty_count=len(dirty),
        )
    return sha


def _unfinished_stories(files: ProjectFiles) -> list[str]:
    data = status.read(files) or {}
    return [
        sid
        for sid in status.story_ids_in(data, "in-progress")
        if status.stories(data)[sid].get("test_status") != "passing"
    ]


def baseline(rc: RunContext, message: str) -> BaselineResult:
    rc.require_writable("baseline")
    message = (message or "").strip()
    if not message or len(message) > MAX_MESSAGE:
        raise InvalidInput(f"the baseline message must be 1 to {MAX_MESSAGE} characters")
    message = redact(message)
    files = project_files(rc)
    planned = verify.preflight(files, None)
    sha = _clean_tree_commit(files)
    tag = TAG_PREFIX + datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    if gitinfo.tag_exists(files.root, tag):
        raise Conflict(f"tag {tag} already exists (one baseline per second); try again", tag=tag)
    run = verify.run_command(planned.command, files.root, planned.timeout_ms, pass_env=planned.pass_env)
    result = verify.record(files, rc, None, run)
    if result.test_status != "passing":
        raise Conflict(
            f"tests are failing (exit code {result.exit_code}{', timed out' if result.timed_out else ''}); "
            "no baseline was created",
            exit_code=result.exit_code,
            output_summary=result.output_summary,
        )
    unfinished = _unfinished_stories(files)
    if unfinished:
        raise Conflict("in-progress stories without passing tests: " + ", ".join(unfinished), stories=unfinished)
    if gitinfo.head_sha(files.root) != sha:
        raise Conflict("HEAD moved while the tests ran; run baseline again", expected=sha)
    gitinfo.create_annotated_tag(files.root, tag, message, sha, rc.actor)
    established = utc_now()
    with jsonio.editing(files.environment, environment.SCHEMA, label=environment.LABEL) as doc:
        doc.data["baseline_commit"] = sha
        doc.data["baseline_established"] = established
        doc.data["updated_at"] = established
    with session.editing(files) as state:
        history = state.get("baseline_history")
        if not isinstance(history, list):
            history = state["baseline_history"] = []
        history.append({"tag": tag, "commit": sha, "message": message, "ts": established, "by": rc.actor})
        session.ensure_current(state, rc.actor)["baseline_verified"] = True
    return BaselineResult(tag=tag, commit=sha, message=message, established=established, verify=result)
