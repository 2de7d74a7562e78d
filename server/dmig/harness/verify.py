"""verify: run the project's test command and record the verdict where AgileFlow agents look.

The exit code is the verdict (0 passing; non-zero, a timeout or a command that cannot start:
failing). Only a command the user approved for this project runs (``approval.require`` in
``preflight``; session_resume and baseline go through it too). It runs through the shell under a
subreaper supervisor (``reaper.py``) in its own session, so that at its end, on a timeout or on an
error every process it started is killed, detached ones included (``make`` → ``pytest`` → workers,
and a ``setsid`` sleeper); its environment is ``testenv.clean_env``'s. Output is spooled to a temp
file so a noisy suite cannot exhaust memory or block on a full pipe. Counts are parsed best effort.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel, Field

from dmig.context import RunContext
from dmig.harness import approval, environment, reaper, session, status, testenv
from dmig.harness.clock import utc_now
from dmig.harness.paths import ProjectFiles, project_files
from dmig.harness.testcounts import Counts, parse, strip_ansi
from dmig.redact import redact

SUMMARY_LINES = 25
SUMMARY_CHARS = 2000
MAX_PARSE_BYTES = 8 * 1024 * 1024
KILL_GRACE_S = 3.0
MARKER_VAR = "DMIG_VERIFY_RUN"


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


def clean_env(environ: dict[str, str] | None = None, **kwargs: Any) -> dict[str, str]:
    """The test command's environment (see ``dmig.harness.testenv``)."""
    return testenv.clean_env(environ, **kwargs)


def _carries(pid: int, needle: bytes) -> bool:
    try:
        if os.stat(f"/proc/{pid}").st_uid != os.getuid():
            return False
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return needle in fh.read(1 << 20).split(b"\0")
    except OSError:
        return False


def _sweep_marked(marker: str) -> None:
    """Kill every process of ours that still carries this run's marker in its environment.

    The supervisor (``reaper.py``) kills the command's whole tree; this second net catches processes that
    left the tree because the supervisor itself was killed (a command can kill its parent)."""
    needle = f"{MARKER_VAR}={marker}".encode()

    def marked(pid: int) -> bool:
        return _carries(pid, needle)

    for _round in range(3):
        try:
            pids = [int(n) for n in os.listdir("/proc") if n.isdigit() and int(n) != os.getpid()]
        except OSError:
            return
        found = [pid for pid in pids if marked(pid)]
        if not found:
            return
        for pid in found:
            reaper.signal_pid(pid, signal.SIGKILL, marked)
        time.sleep(0.02)


def _stop(proc: subprocess.Popen[bytes], marker: str) -> None:
    """End the supervisor (it kills the command's tree on SIGTERM), then make sure: group, marker."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=KILL_GRACE_S)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=KILL_GRACE_S)
    _sweep_marked(marker)


def supervised_argv(command: str) -> list[str]:
    """``/bin/sh -c command`` under the supervisor that kills every process it leaves behind."""
    return [sys.executable, "-I", "-S", reaper.__file__, str(os.getpid()), "--", "/bin/sh", "-c", command]


def run_command(command: str, cwd: Path, timeout_ms: int, *, pass_env: tuple[str, ...] = ()) -> RunResult:
    """Run ``command`` through the shell in ``cwd``; never raises for the command's own failure.

    The caller has checked the user's approval (``preflight``). Whatever happens (the command ends, times
    out, or we fail), every process it started is killed before this returns (``reaper.py``)."""
    start = time.monotonic()
    marker = secrets.token_hex(12)
    env = clean_env(project_dir=cwd, pass_env=pass_env)
    env[MARKER_VAR] = marker
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.Popen(
                supervised_argv(command),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
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
            _stop(proc, marker)
        duration = int((time.monotonic() - start) * 1000)
        text = _read_tail(out)
    note = f"timed out after {timeout_ms} ms; every process it started was killed" if timed_out else None
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


class Planned(NamedTuple):
    command: str
    timeout_ms: int
    pass_env: tuple[str, ...]


def preflight(files: ProjectFiles, story_id: str | None) -> Planned:
    """Everything that can be refused is refused before the (possibly long) test run: first of all a
    command the user has not approved for this project (``dmig.harness.approval``), which never runs."""
    env = environment.require(files)
    command, timeout = environment.test_command(env), environment.timeout_ms(env)
    approved = approval.require(files.root, command, label=environment.LABEL)
    session.read(files)  # a corrupt session-state must stop us before the run, not after status.json changed
    data = status.read(files)
    if story_id:
        if data is None:
            status.get_story({}, story_id)
        else:
            status.get_story(data, story_id)
    return Planned(command, timeout, approved.pass_env)


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
    planned = preflight(files, story_id)
    rc.progress(0, 1, f"running the approved test command: {planned.command}")
    run = run_command(planned.command, files.root, timeout_ms or planned.timeout_ms, pass_env=planned.pass_env)
    rc.progress(1, 1, f"tests {run.test_status}")
    return record(files, rc, story_id, run)
