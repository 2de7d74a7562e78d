"""Find or create the virtualenv that runs ``dmig``, then exec ``dmig serve`` in place of this process.

Claude Code starts the plugin's MCP server with ``bin/dmig-serve``; a user who only added the
plugin has no virtualenv yet, so the first start creates one. Three facts shape this file:

* stdout is the MCP channel: nothing here may print to it (messages go to stderr, pip's
  output to a log file beside the virtualenv);
* Claude Code gives a server about 30 seconds to answer and then kills it, while a first
  ``pip install`` can take longer, so the install runs in a detached installer process (its own
  session) that survives the kill and finishes; the next start finds the virtualenv ready;
* two sessions may start the server at the same moment, so the installer holds an exclusive
  ``flock`` on ``<venv>.lock`` (released by the kernel if the installer dies) and re-checks the
  ready-stamp under the lock; the stamp is written last, so a half-built virtualenv is never used;
* a virtualenv someone else made (the README's ``.venv`` in the plugin root, editable, with the
  dev tools) is used as it is and never modified: only a folder carrying this bootstrap's owner
  mark is ever deleted or rebuilt.

Standard library only: it runs before any dependency exists.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAMP = ".dmig-bootstrap-ready"
OWNER = ".dmig-bootstrap-owned"
# What goes into the installed package: a change to any of these means a re-install. Not expertise/:
# the seed is copied into the wheel once, and a learning written there must not trigger a re-install.
WATCHED = ("pyproject.toml", "server", "agent", "workflows")


def say(message: str) -> None:
    print(f"dmig-serve: {message}", file=sys.stderr, flush=True)


def dmig_of(venv: Path) -> Path:
    return venv / "bin" / "dmig"


def owned(venv: Path) -> bool:
    """True when this bootstrap created the folder; only then may it delete or rebuild it."""
    return (venv / OWNER).exists()


def user_venv() -> Path | None:
    """A ``.venv`` in the plugin root that someone else made (the README's set-up): used as it is, never touched."""
    venv = ROOT / ".venv"
    return venv if venv.exists() and not owned(venv) else None


def managed_venv() -> Path:
    """Where this bootstrap keeps its own virtualenv; CLAUDE_PLUGIN_DATA survives plugin updates."""
    if os.environ.get("DMIG_VENV"):
        return Path(os.environ["DMIG_VENV"]).expanduser().resolve()
    data = os.environ.get("CLAUDE_PLUGIN_DATA")
    return (Path(data) / "venv") if data else ROOT / ".venv"


def install_spec() -> str:
    """What pip installs: this plugin's source by default; DMIG_INSTALL_SPEC may name a wheel instead."""
    return os.environ.get("DMIG_INSTALL_SPEC") or str(ROOT)


def fingerprint() -> str:
    """Identifies the source being installed: its path, the install spec, and every watched file's size and mtime."""
    digest = hashlib.sha256(f"{ROOT}\n{install_spec()}\n{sys.version_info[:2]}\n".encode())
    for name in WATCHED:
        top = ROOT / name
        paths = sorted(top.rglob("*")) if top.is_dir() else [top]
        for path in paths:
            if path.is_file() and "__pycache__" not in path.parts:
                st = path.stat()
                digest.update(f"{path.relative_to(ROOT)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def is_ready(venv: Path, expected: str) -> bool:
    stamp = venv / STAMP
    try:
        return stamp.read_text().strip() == expected and os.access(dmig_of(venv), os.X_OK)
    except OSError:
        return False


def install(venv: Path, expected: str) -> int:
    """Run as the detached installer: build the virtualenv under the lock, stamp it last."""
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{venv}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_ready(venv, expected):  # another installer finished while we waited for the lock
            return 0
        print(f"installing {install_spec()} into {venv}", flush=True)
        if venv.exists():
            if not owned(venv):
                print(f"refusing to replace {venv}: this bootstrap did not create it", flush=True)
                return 3
            shutil.rmtree(venv)
        venv.mkdir(parents=True)
        (venv / OWNER).write_text("created by dmig-serve; safe to delete\n")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "install"]
        subprocess.run([*pip, "--quiet", "--upgrade", "pip"], check=False)
        subprocess.run([*pip, install_spec()], check=True)
        tmp = venv / f"{STAMP}.tmp"
        tmp.write_text(expected + "\n")
        os.replace(tmp, venv / STAMP)
        print("done", flush=True)
    return 0


def ensure(venv: Path, expected: str) -> None:
    """Start a detached installer (it no-ops if another one finished first) and wait for it."""
    log = venv.parent / f"{venv.name}.install.log"
    venv.parent.mkdir(parents=True, exist_ok=True)
    say(f"first start: creating {venv} (pip output in {log}); this can take a minute or two.")
    say("If Claude Code gives up waiting, the install carries on: reconnect with /mcp when it is done.")
    with open(log, "ab") as out:
        child = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "install", str(venv), expected],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    child.wait()
    if not is_ready(venv, expected):
        tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
        say(f"could not create the virtualenv (installer exit code {child.returncode}); last lines of {log}:")
        for line in tail:
            print(f"    {line}", file=sys.stderr)
        sys.exit(1)


def serve(args: list[str]) -> None:
    venv = None if os.environ.get("DMIG_VENV") else user_venv()
    if venv is not None and not os.access(dmig_of(venv), os.X_OK):
        say(f"{venv} exists but has no dmig in it: run `make test` in {ROOT} (or remove {venv}).")
        sys.exit(1)
    if venv is None:
        venv = managed_venv()
        if venv.exists() and not owned(venv) and any(venv.iterdir()):
            say(f"{venv} exists and was not created by dmig-serve; point DMIG_VENV at another folder.")
            sys.exit(1)
        expected = fingerprint()
        if not is_ready(venv, expected):
            try:
                ensure(venv, expected)
            except OSError as exc:
                say(f"cannot create {venv}: {exc.strerror or exc}; set DMIG_VENV to a writable folder")
                sys.exit(1)
    dmig = dmig_of(venv)
    os.execv(dmig, [str(dmig), "serve", *args])


def main(argv: list[str]) -> int:
    if argv[:1] == ["install"] and len(argv) == 3:
        return install(Path(argv[1]), argv[2])
    if argv[:1] == ["serve"]:
        serve(argv[1:])
    say("usage: dmig-bootstrap.py serve [dmig serve options]")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
