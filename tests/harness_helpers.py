"""Builders for harness tests: real project files, tiny test-command scripts, real git commits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from dmig.context import RunContext
from dmig.harness import paths

GIT = ["git", "-c", "user.name=dmig-test", "-c", "user.email=dmig@test.invalid"]


def rc_for(project: Path, **kwargs: Any) -> RunContext:
    return RunContext(project_dir=project, **kwargs)


def story(sid: str, status: str = "in-progress", **fields: Any) -> dict[str, Any]:
    return {"id": sid, "title": f"Story {sid}", "status": status, **fields}


def write_json(path: Path, data: Any, indent: int | str | None = 2) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=indent, ensure_ascii=False) + "\n"
    path.write_text(text, encoding="utf-8")
    return text.encode()


def write_status(project: Path, stories: dict[str, dict[str, Any]], **top: Any) -> Path:
    path = project / paths.STATUS
    write_json(path, {**top, "stories": stories})
    return path


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def script_command(project: Path, name: str, body: str) -> str:
    """A test command that runs a tiny Python script kept outside docs/ (so git sees it like user code)."""
    script = project / "scripts" / name
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(body, encoding="utf-8")
    return f"{sys.executable} scripts/{name}"


PASSING = "print('===== 3 passed, 1 skipped in 0.01s =====')\n"
FAILING = "import sys\nprint('===== 2 passed, 1 failed in 0.02s =====')\nsys.exit(1)\n"
SLOW = (
    "import subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "time.sleep(60)\n"
)


def write_env(
    project: Path, command: str | None, timeout_ms: int = 60_000, *, approve: bool = True, **extra: Any
) -> Path:
    """environment.json as the user wrote it; ``approve``: and the user approved its command (the CLI's path)."""
    path = project / paths.ENVIRONMENT
    write_json(path, {"project_type": "python", "test_command": command, "test_timeout_ms": timeout_ms, **extra})
    if approve and command and command.strip():
        approve_test_command(project)
    return path


def approve_test_command(project: Path, *pass_env: str) -> None:
    """What `dmig approve-test-command --yes` does: the user approves environment.json's command."""
    from dmig.harness import approval

    approval.approve_current(project, pass_env, via="test")


def commit_all(project: Path, message: str = "work") -> str:
    subprocess.run([*GIT, "-C", str(project), "add", "-A"], check=True)
    subprocess.run([*GIT, "-C", str(project), "commit", "-q", "--allow-empty", "-m", message], check=True)
    return subprocess.run(
        ["git", "-C", str(project), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()


def dmig_cli(project: Path, *args: str) -> tuple[int, Any]:
    """Run the real ``dmig`` console script with --json; returns (exit code, parsed stdout)."""
    from mcp_client import dmig_executable

    proc = subprocess.run(
        [dmig_executable(), "--project-dir", str(project), *args, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    try:
        return proc.returncode, json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"dmig {args} printed no JSON: {proc.stdout!r} {proc.stderr!r}") from None
