"""The few git facts the harness needs, read through the git CLI (no library, no network).

Git is optional for most tools (context just says "not a repository"); baseline needs it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from pydantic import BaseModel, Field

from dmig.errors import Conflict

GIT_TIMEOUT_S = 30


class GitError(Exception):
    pass


class Commit(BaseModel):
    sha: str
    short: str
    subject: str = Field(description="First line of the commit message (untrusted text).")
    date: str = Field(description="Committer date, ISO-8601.")


class GitInfo(BaseModel):
    is_repo: bool
    branch: str | None = None
    last_commit: Commit | None = None
    status_short: list[str] = Field(default_factory=list, description="`git status --short` lines (bounded).")
    status_truncated: int = Field(default=0, description="How many more status lines were left out.")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "GIT_OPTIONAL_LOCKS": "0"})
    return env


def git(root: Path, *args: str, extra_env: dict[str, str] | None = None) -> str:
    env = _env()
    env.update(extra_env or {})
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GitError(f"git {args[0]} could not run: {exc}") from None
    if proc.returncode != 0:
        raise GitError((proc.stderr or proc.stdout).strip()[:500] or f"git {args[0]} failed")
    return proc.stdout


def is_repo(root: Path) -> bool:
    try:
        return git(root, "rev-parse", "--is-inside-work-tree").strip() == "true"
    except GitError:
        return False


def head_sha(root: Path) -> str | None:
    try:
        return git(root, "rev-parse", "--verify", "-q", "HEAD^{commit}").strip() or None
    except GitError:
        return None


def branch(root: Path) -> str | None:
    try:
        return git(root, "symbolic-ref", "--short", "-q", "HEAD").strip() or None
    except GitError:
        sha = head_sha(root)
        return f"(detached at {sha[:12]})" if sha else None


def last_commit(root: Path) -> Commit | None:
    try:
        out = git(root, "log", "-1", "--format=%H%x00%h%x00%s%x00%cI")
    except GitError:
        return None
    parts = out.rstrip("\n").split("\x00")
    if len(parts) != 4:
        return None
    return Commit(sha=parts[0], short=parts[1], subject=parts[2][:300], date=parts[3])


def porcelain(root: Path) -> list[tuple[str, str]]:
    """(XY status, path) for every changed or untracked file, .gitignore respected."""
    out = git(root, "status", "--porcelain=v1", "-z", "--untracked-files=all")
    entries, fields = [], out.split("\x00")
    i = 0
    while i < len(fields):
        item = fields[i]
        i += 1
        if len(item) < 4:
            continue
        code, path = item[:2], item[3:]
        if code[0] in "RC":  # renames carry the old path as the next field
            i += 1
        entries.append((code, path))
    return entries


def info(root: Path, status_limit: int = 30) -> GitInfo:
    if not is_repo(root):
        return GitInfo(is_repo=False)
    lines = [f"{code} {path}" for code, path in porcelain(root)]
    return GitInfo(
        is_repo=True,
        branch=branch(root),
        last_commit=last_commit(root),
        status_short=lines[:status_limit],
        status_truncated=max(0, len(lines) - status_limit),
    )


def tag_exists(root: Path, name: str) -> bool:
    try:
        git(root, "rev-parse", "--verify", "-q", f"refs/tags/{name}")
        return True
    except GitError:
        return False


def _identity_env(root: Path, actor: str) -> dict[str, str]:
    """An annotated tag needs a tagger; fall back to the agent's id when git has no identity set."""
    try:
        git(root, "var", "GIT_COMMITTER_IDENT")
        return {}
    except GitError:
        return {"GIT_COMMITTER_NAME": actor, "GIT_COMMITTER_EMAIL": f"{actor.lower()}@agileflow.invalid"}


def create_annotated_tag(root: Path, name: str, message: str, sha: str, actor: str) -> None:
    try:
        git(root, "tag", "-a", name, "-m", message, sha, extra_env=_identity_env(root, actor))
    except GitError as exc:
        raise Conflict(f"could not create tag {name}: {exc}", tag=name) from None


def commits_since(root: Path, since_iso: str | None) -> int | None:
    if not since_iso:
        return None
    try:
        return int(git(root, "rev-list", "--count", f"--since={since_iso}", "HEAD").strip() or 0)
    except (GitError, ValueError):
        return None
