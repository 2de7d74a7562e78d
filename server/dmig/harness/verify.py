"""verify: run the project's test command and record the verdict where AgileFlow agents look.

The exit code is the verdict (0 passing; non-zero, a timeout or a command that cannot start:
failing). The command runs through the shell in its own process group so that a timeout kills
the whole tree (``make`` → ``pytest`` → workers), with output spooled to a temp file so a noisy
suite cannot exhaust memory or block on a full pipe. Counts are parsed best effort.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from dmig.context import RunContext
from dmig.harness import environment, session, status
from dmig.harness.clock import utc_now
from dmig.harness.paths import ProjectFiles, project_files
from dmig.harness.testcounts import Counts, parse, strip_ansi
from dmig.redact import redact, remember_secret

SUMMARY_LINES = 25
SUMMARY_CHARS = 2000
MAX_PARSE_BYTES = 8 * 1024 * 1024
KILL_GRACE_S = 3.0


class RunResult(BaseModel):
    command: str
    exit_code: int | None = Field(description="The command's exit code; None when it timed out or could not start.")
    timed_out: bool
    started: bool = Field(description="False when the shell could not be started at all.")
    duration_ms: int
    counts: Counts
    output_summary: str = Field(description="The last lines of the output, bounded and with credentials masked.")

    @property
    def test_status(self) -> str:
        return "passing" if self.exit_code == 0 and not self.timed_out and self.started else "failing"


class VerifyResult(BaseModel):
    test_status: str = Field(description="passing or failing: the exit code is the verdict.")
    command: str
    exit_code: int | None
    timed_out: bool
    duration_ms: int
    framework: str | None = Field(description="Test runner recognized in the output, if any.")
    passed: int | None
    failed: int | None
    skipped: int | None
    output_summary: str
    last_run: str = Field(description="When the run finished (ISO-8601 UTC).")
    updated_stories: list[str] = Field(description="Stories whose test_status/test_results were updated.")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=KILL_GRACE_S)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=KILL_GRACE_S)


def _read_tail(fh: Any) -> str:
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    fh.seek(max(0, size - MAX_PARSE_BYTES))
    return fh.read().decode("utf-8", errors="replace")


def summarize(text: str, note: str | None = None) -> str:
    lines = [ln.rstrip() for ln in strip_ansi(text).splitlines() if ln.strip()]
    tail = "\n".join(lines[-SUMMARY_LINES:])
    if len(tail) > SUMMARY_CHARS:
        tail = "…" + tail[-SUMMARY_CHARS:]
    if note:
        tail = f"{tail}\n[{note}]" if tail else f"[{note}]"
    return redact(tail)


# Names of variables that hold, or name, credentials: the test command does not inherit them (a suite
# printing `env` must not hand the server's database passwords back through output_summary).
_SECRET_NAME = re.compile(r"PASS|SECRET|TOKEN|KEY|CREDENTIAL|AUTH|DATABASE_URL|DB_URL|PRIVATE", re.I)
_URL_WITH_PASSWORD = re.compile(r"://[^/@\s]*:[^@\s]*@")


def clean_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment the test command gets: ``environ`` without any variable that looks like a secret
    (by name, or a URL carrying a password). The removed values are also registered with the redactor, so
    that a suite that reads them some other way still cannot echo them back unmasked."""
    environ = dict(os.environ if environ is None else environ)
    kept: dict[str, str] = {}
    for name, value in environ.items():
        if _SECRET_NAME.search(name) or _URL_WITH_PASSWORD.search(value):
            remember_secret(value)
            continue
        kept[name] = value
    return kept


def run_command(command: str, cwd: Path, timeout_ms: int) -> RunResult:
    """Run ``command`` through the shell in ``cwd``; never raises for the command's own failure."""
    start = time.monotonic()
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.Popen(
                command,
                shell=True,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=clean_env(),
            )
        except OSError as exc:
            return RunResult(
                command=command,
                exit_code=None,
                timed_out=False,
                started=False,
                duration_ms=int((time.monotonic() - start) * 1000),
                counts=Counts(),
                output_summary=summarize("", f"could not start: {exc}"),
            )
        timed_out = False
        try:
            proc.wait(timeout=timeout_ms / 1000)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            # Even after a normal exit, stray background children of the suite must not outlive it.
            _kill_group(proc)
        duration = int((time.monotonic() - start) * 1000)
        text = _read_tail(out)
    note = f"timed out after {timeout_ms} ms; the process group was killed" if timed_out else None
    if not timed_out and proc.returncode == 127:
        note = "exit 127: the shell could not find the command"
    return RunResult(
        command=command,
        exit_code=None if timed_out else proc.returncode,
        timed_out=timed_out,
        started=True,
        duration_ms=duration,
        counts=parse(text.splitlines()),
        output_summary=summarize(text, note),
    )


def test_results(run: RunResult, ts: str) -> dict[str, Any]:
    """The story's ``test_results`` object, in AgileFlow's field names."""
    return {
        "last_run": ts,
        "command": run.command,
        "passed": run.counts.passed,
        "failed": run.counts.failed,
        "exit_code": run.exit_code,
        "output_summary": run.output_summary,
    }


def apply_to_stories(data: dict[str, Any], story_id: str | None, run: RunResult, ts: str) -> list[str]:
    """Set test_status/test_results on the story, or on every in-progress story (any spelling)."""
    targets = [story_id] if story_id else status.story_ids_in(data, "in-progress")
    for sid in targets:
        story = status.get_story(data, sid)
        story["test_status"] = run.test_status
        previous = story.get("test_results")
        # Fields another tool keeps in test_results (coverage, ...) stay; ours are replaced.
        story["test_results"] = {**(previous if isinstance(previous, dict) else {}), **test_results(run, ts)}
    return targets


def preflight(files: ProjectFiles, story_id: str | None) -> tuple[str, int]:
    """Everything that can be refused is refused before the (possibly long) test run."""
    env = environment.require(files)
    command, timeout = environment.test_command(env), environment.timeout_ms(env)
    session.read(files)  # a corrupt session-state must stop us before the run, not after status.json changed
    data = status.read(files)
    if story_id:
        if data is None:
            status.get_story({}, story_id)
        else:
            status.get_story(data, story_id)
    return command, timeout


def record(files: ProjectFiles, rc: RunContext, story_id: str | None, run: RunResult) -> VerifyResult:
    ts = utc_now()
    updated: list[str] = []
    if files.status.exists() or story_id:
        with status.editing(files) as data:
            updated = apply_to_stories(data, story_id, run, ts)
    result = VerifyResult(
        test_status=run.test_status,
        command=run.command,
        exit_code=run.exit_code,
        timed_out=run.timed_out,
        duration_ms=run.duration_ms,
        framework=run.counts.framework,
        passed=run.counts.passed,
        failed=run.counts.failed,
        skipped=run.counts.skipped,
        output_summary=run.output_summary,
        last_run=ts,
        updated_stories=updated,
    )
    summary = result.model_dump(exclude={"output_summary"})
    summary["story_id"] = story_id
    with session.editing(files) as state:
        session.record_verify(state, rc.actor, summary)
    return result


def verify(rc: RunContext, story_id: str | None = None, timeout_ms: int | None = None) -> VerifyResult:
    rc.require_writable("verify")
    files = project_files(rc)
    command, configured_timeout = preflight(files, story_id)
    rc.progress(0, 1, f"running {command}")
    run = run_command(command, files.root, timeout_ms or configured_timeout)
    rc.progress(1, 1, f"tests {run.test_status}")
    return record(files, rc, story_id, run)
