"""The user's approval of the project's test command: what verify may run, decided outside the agent's reach.

``verify``, ``session_resume`` and ``baseline`` run ``docs/00-meta/environment.json``'s test command through
the shell with the user's rights. That file is inside the project, where the agent's tools (and a prompt
injection steering them) can write, and ``session_init`` accepts a command as a tool input. So a command in
the file is only a *proposal*: it runs only once the user approved that exact string for that project, on
the command line (``dmig approve-test-command``, which shows the command and asks, or ``--yes``; or
``dmig session-init --test-command ...``, a command the user typed). A changed command, the same command in
another project, or an approval written by anyone without the seal key does not count.

An approval is a record in the user's data folder (``seal.data_dir()``, outside the project, mode 0600):
the project's real path, the SHA-256 of the command (the command itself is never stored, so a password in
it does not land on disk twice), the environment variables the user lets it receive, and an HMAC with the
seal key over all of them. Nothing reachable over MCP writes this file.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shlex
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from dmig import fsutil, seal
from dmig.errors import CorruptFile, DmigError, InvalidInput
from dmig.harness.clock import utc_now
from dmig.redact import redact

PURPOSE = "test-command-approval"
FILE_NAME = "test-command-approvals.json"
MAX_FILE_BYTES = 4 << 20
MAX_ENTRIES = 2000
CLI_COMMAND = "dmig approve-test-command"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class TestCommandNotApproved(DmigError):
    """verify was asked to run a command the user has not approved (or that changed since)."""

    __test__ = False  # not a pytest class, whatever its name says
    code = "E_TEST_COMMAND_NOT_APPROVED"


@dataclass(frozen=True)
class Approval:
    project: str
    command_sha256: str
    pass_env: tuple[str, ...]
    approved_at: str
    via: str


class ApprovalResult(BaseModel):
    approved: bool
    command: str = Field(description="The command approved (credentials masked).")
    command_sha256: str
    project: str
    pass_env: list[str] = Field(description="Variables the command may receive even though they name credentials.")
    already: bool = Field(description="True when this exact approval was already recorded.")
    path: str = Field(description="Where the approval is kept (the user's dmig data folder).")


def project_identity(project_dir: str | os.PathLike[str]) -> str:
    """The project an approval is for (``seal.project_identity``: one meaning of "this project")."""
    return seal.project_identity(project_dir)


def command_digest(command: str) -> str:
    return hashlib.sha256(command.encode("utf-8")).hexdigest()


def store_path() -> Path:
    return seal.data_dir() / FILE_NAME


def _corrupt(problem: str) -> CorruptFile:
    return CorruptFile(
        f"the test-command approvals ({store_path()}) are unreadable ({problem}); no test command runs until the "
        f"file is fixed or removed (then approve again with {CLI_COMMAND})",
        reason="approvals_corrupt",
    )


def _read_text() -> str | None:
    path = store_path()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _corrupt("a symbolic link" if exc.errno == errno.ELOOP else exc.strerror or "cannot open") from None
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise _corrupt("not a regular file")
        data = fh.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise _corrupt(f"larger than {MAX_FILE_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise _corrupt("not UTF-8") from None


def _entries() -> list[dict[str, Any]]:
    text = _read_text()
    if text is None:
        return []
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        raise _corrupt("not JSON") from None
    entries = doc.get("approvals") if isinstance(doc, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise _corrupt("no list of approvals")
    return entries


def _mac(project: str, command: str, pass_env: tuple[str, ...]) -> tuple[str, ...]:
    return (project, command, json.dumps(list(pass_env)))


def _as_approval(entry: dict[str, Any], project: str, command: str) -> Approval | None:
    """The entry as an Approval if it is for this project and command and its seal holds, else None."""
    pass_env = entry.get("pass_env") or []
    if not isinstance(pass_env, list) or not all(isinstance(n, str) and _ENV_NAME.match(n) for n in pass_env):
        return None
    names = tuple(pass_env)
    if not seal.check(entry.get("mac"), PURPOSE, *_mac(project, command, names)):
        return None
    return Approval(
        project=project,
        command_sha256=command_digest(command),
        pass_env=names,
        approved_at=str(entry.get("approved_at") or ""),
        via=str(entry.get("via") or ""),
    )


def find(project_dir: str | os.PathLike[str], command: str) -> Approval | None:
    """The user's approval of ``command`` in this project, or None (never approved, changed, forged)."""
    project = project_identity(project_dir)
    digest = command_digest(command)
    for entry in _entries():
        if entry.get("project") == project and entry.get("command_sha256") == digest:
            found = _as_approval(entry, project, command)
            if found is not None:
                return found
    return None


def _other_approvals(project: str) -> int:
    return sum(1 for e in _entries() if e.get("project") == project)


def normalise_pass_env(names: list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    bad = [n for n in names or () if not isinstance(n, str) or not _ENV_NAME.match(n)]
    if bad:
        raise InvalidInput(f"not an environment variable name: {bad[0]!r}", field="pass_env")
    return tuple(sorted(set(names or ())))


def check_approvable(command: str) -> None:
    """Commands we refuse to approve: empty ones, and ones holding a credential.

    A credential in the command would be masked wherever dmig shows it, so the user could not see the
    exact text they approve (a mask can hide anything), and environment.json (usually committed) would
    store it masked, never matching the approval. Secrets belong in an environment variable (--pass-env).
    """
    if not command or not command.strip():
        raise InvalidInput("the test command is empty; nothing to approve", field="test_command")
    if redact(command) != command:
        raise InvalidInput(
            "the test command holds text that looks like a credential (it would be shown masked, so it cannot be "
            "approved as seen); read the secret from an environment variable and let it through with --pass-env",
            field="test_command",
            reason="credential_in_command",
        )


def approve(
    project_dir: str | os.PathLike[str], command: str, pass_env: list[str] | tuple[str, ...] = (), *, via: str
) -> ApprovalResult:
    """Record the user's approval of ``command`` for this project. Only the CLI and the demo (acting as the
    user) call this; no MCP tool does."""
    check_approvable(command)
    project = project_identity(project_dir)
    seal.ensure_outside(Path(project))
    names = normalise_pass_env(pass_env)
    digest = command_digest(command)
    path = store_path()
    folder = seal.data_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=seal.DIR_MODE)
    with fsutil.locked(path, root=folder):
        entries = _entries()
        current = find(project, command)
        already = current is not None and current.pass_env == names
        if not already:
            entries = [e for e in entries if not (e.get("project") == project and e.get("command_sha256") == digest)]
            entries.append(
                {
                    "project": project,
                    "command_sha256": digest,
                    "pass_env": list(names),
                    "approved_at": utc_now(),
                    "via": via,
                    "mac": seal.sign(PURPOSE, *_mac(project, command, names)),
                }
            )
            entries = entries[-MAX_ENTRIES:]
            text = json.dumps({"version": 1, "approvals": entries}, indent=1) + "\n"
            fsutil.atomic_write_text(path, text, mode=seal.FILE_MODE, root=folder)
    return ApprovalResult(
        approved=True,
        command=redact(command),
        command_sha256=digest,
        project=project,
        pass_env=list(names),
        already=already,
        path=str(path),
    )


def approve_hint(project_dir: str | os.PathLike[str]) -> str:
    return f"dmig --project-dir {shlex.quote(project_identity(project_dir))} approve-test-command"


def require(project_dir: str | os.PathLike[str], command: str, *, label: str) -> Approval:
    """The approval verify needs before it runs ``command``; refuses (and runs nothing) without one."""
    project = project_identity(project_dir)
    seal.ensure_outside(Path(project))  # a key the agent's tools can read would let them forge approvals
    found = find(project, command)
    if found is not None:
        return found
    changed = _other_approvals(project) > 0
    why = (
        "it changed since the user approved a test command for this project"
        if changed
        else "the user has not approved it"
    )
    raise TestCommandNotApproved(
        f"verify will not run the test command in {label}: {why}. A test command set through a tool (session_init) "
        f"or by editing {label} is only a proposal; it runs after the user, in a terminal, reads it and runs "
        f"`{approve_hint(project)}` (it shows the exact command and asks). Command: {command}",
        command=command,
        command_sha256=command_digest(command),
        reason="changed" if changed else "not_approved",
        approve_with=approve_hint(project),
    )


def current_command(project_dir: str | os.PathLike[str]) -> str:
    """environment.json's test command, as verify would read it (the same refusals when it is missing)."""
    from dmig.context import RunContext
    from dmig.harness import environment
    from dmig.harness.paths import project_files

    files = project_files(RunContext(project_dir=Path(project_dir).resolve()))
    return environment.test_command(environment.require(files))


def approve_current(
    project_dir: str | os.PathLike[str], pass_env: list[str] | tuple[str, ...] = (), *, via: str
) -> ApprovalResult:
    """Approve the command environment.json holds now: the user's path (the CLI after asking, the demo)."""
    return approve(project_dir, current_command(project_dir), pass_env, via=via)


def describe(project_dir: str | os.PathLike[str], command: str, pass_env: tuple[str, ...]) -> list[str]:
    """What the user reads before approving: the exact command (control characters spelled out, never
    masked: check_approvable refuses what a mask would hide), where it runs, what it may receive."""
    from dmig.render import has_unsafe

    project = project_identity(project_dir)
    state = find(project, command)
    status = (
        "already approved"
        if state is not None
        else "CHANGED: another command was approved here before"
        if _other_approvals(project)
        else "not approved yet"
    )
    lines = [
        f"project:       {project}",
        "test command (verify, session_resume and baseline run it through /bin/sh -c with your rights):",
        *(f"    {line}" for line in command.split("\n")),  # only LF: splitlines() would hide a CR's effect
        f"sha256:        {command_digest(command)}",
        f"status:        {status}",
        "variables let through: " + (", ".join(pass_env) if pass_env else "none (credential-like ones are removed)"),
    ]
    if has_unsafe(command):
        lines.append("WARNING: the command holds control or direction characters (shown escaped above)")
    return lines


def cli_approve(
    project_dir: str | os.PathLike[str],
    *,
    yes: bool,
    pass_env: list[str] | tuple[str, ...],
    say: Any,
    ask: Any,
    interactive: bool,
) -> ApprovalResult | None:
    """``dmig approve-test-command``: show the command, ask (unless --yes), record. None: the user said no."""
    from dmig.errors import ConfirmationRequired

    command = current_command(project_dir)
    check_approvable(command)
    names = normalise_pass_env(pass_env)
    for line in describe(project_dir, command, names):
        say(line)
    if not yes:
        if not interactive:
            raise ConfirmationRequired(
                "not a terminal: read the command above, then run again with --yes to approve it",
                reason="not_interactive",
            )
        answer = ask("Approve this exact command for this project? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            return None
    return approve(project_dir, command, names, via="approve-test-command")
