"""Crash-safe, concurrency-safe and confined file writes for the project files we share with other agents.

Readers must never see a half-written status.json, and concurrent writers must not lose each
other's changes: writes go to a temp file in the same folder, are fsynced and renamed over the
target, under an inter-process lock (``<file>.lock``) that read-modify-write callers hold across
the whole cycle. Appends (the bus, the audit log) take the same lock and write one complete line
per call.

This module is also the one place every project file is written through, so it enforces two
promises for all writers at once:

* **Nothing is written outside the project.** The agent's inputs may be hostile and a repository
  may carry symlinks (``docs/migrations/reports -> /etc``): every target's folder is resolved and
  must lie inside the real project folder (the deepest project registered with
  ``register_root``, or given as ``root=``, that lexically contains the path), folders created along the way are made
  one by one under the resolved parent, and the final component is never followed (``O_NOFOLLOW``
  for appends and lock files; a symlink in its place is refused). Refusals are
  ``PathOutsideProject`` naming the path.
* **No credential is written.** Every text is passed through ``redact`` right before it reaches
  the disk. Callers that serialise structured data mask the object first (``redact_obj``) so the
  mask lands inside strings; should this last pass still change a JSON/JSONL/YAML text so that it
  no longer parses, the write is refused rather than corrupting the file or keeping the secret.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from dmig import safeload
from dmig.errors import Conflict, InvalidInput, PathOutsideProject
from dmig.redact import redact

LOCK_TIMEOUT_S = 30.0
_WRITE_CHECK_KIND = "plan"  # the largest structured project file dmig writes
_POLL_S = 0.02
_roots: set[str] = set()
_roots_lock = threading.Lock()


def register_root(project_dir: str | os.PathLike[str]) -> None:
    """Writes under this folder are confined to it (both its given and its real spelling)."""
    given = os.path.abspath(os.fspath(project_dir))
    with _roots_lock:
        _roots.update({given, os.path.realpath(given)})


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def project_root_of(path: str | os.PathLike[str]) -> str | None:
    """The deepest registered project folder that lexically contains ``path`` (None: not a project file)."""
    target = os.path.abspath(os.fspath(path))
    with _roots_lock:
        candidates = [r for r in _roots if _inside(target, r)]
    return max(candidates, key=len) if candidates else None


def _refuse(path: str | os.PathLike[str], why: str) -> PathOutsideProject:
    return PathOutsideProject(f"refusing to write {os.fspath(path)}: {why}", path=os.fspath(path))


def ensure_dir(folder: str | os.PathLike[str], *, mode: int = 0o777, root: str | os.PathLike[str] | None = None) -> str:
    """Create ``folder`` (and its parents) inside its project and return its real path.

    The deepest folder that exists is resolved and checked first, then each missing component is
    made under that real path, so neither an existing symlink nor one that appears midway leads
    out of the project.
    """
    given = os.path.abspath(os.fspath(folder))
    if root is not None:
        register_root(root)
    root = project_root_of(given)
    if root is None:  # not inside a project we serve (library use, a scratch folder the caller owns)
        os.makedirs(given, mode=mode, exist_ok=True)
        return os.path.realpath(given)
    real_root = os.path.realpath(root)
    existing, missing = given, []
    while not os.path.lexists(existing):
        existing, name = os.path.split(existing)
        missing.append(name)
    real = os.path.realpath(existing)
    if not _inside(real, real_root):
        raise _refuse(folder, f"{existing} resolves to {real}, outside the project folder {real_root}")
    if not os.path.isdir(real):
        raise _refuse(folder, f"{existing} is not a folder")
    for name in reversed(missing):
        real = os.path.join(real, name)
        with contextlib.suppress(FileExistsError):
            os.mkdir(real, mode)
        info = os.lstat(real)
        if not stat.S_ISDIR(info.st_mode):
            raise _refuse(folder, f"{real} is not a folder (a symlink or a file appeared in its place)")
    return real


def write_target(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> str:
    """The real path to write ``path`` at: its folder resolved (and made) inside the project, the name not followed.

    Also what a writer calls up front to refuse a bad target before doing any work.
    """
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    real = os.path.join(ensure_dir(folder, root=root), name)
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISLNK(os.lstat(real).st_mode):
            raise _refuse(path, "it is a symbolic link (dmig never writes through one)")
    return real


def _open_nofollow(real: str, flags: int, mode: int, shown: str | os.PathLike[str]) -> int:
    try:
        return os.open(real, flags | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _refuse(shown, "it is a symbolic link (dmig never writes through one)") from None
        raise


@contextlib.contextmanager
def locked(
    path: Path, timeout: float = LOCK_TIMEOUT_S, *, root: str | os.PathLike[str] | None = None
) -> Iterator[None]:
    """Hold the inter-process lock of ``path`` (a sibling ``.lock`` file, opened without following a symlink).

    ``flock`` on a descriptor of our own: a lock file symlinked elsewhere is refused instead of
    being created or truncated there (which a path-based lock library would do).
    """
    real = write_target(str(path) + ".lock", root)
    fd = _open_nofollow(real, os.O_RDWR | os.O_CREAT, 0o644, str(path) + ".lock")
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise Conflict(
                        f"timed out after {timeout:.0f}s waiting for the lock on {path.name}", path=str(path)
                    ) from None
                time.sleep(_POLL_S)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _structured_ok(name: str, text: str) -> bool:
    """Whether ``text`` still parses as what its file name says it is (JSON, JSON lines, YAML).

    Parsed with the bounded loaders (:mod:`dmig.safeload`): a text that would be too costly to
    read back (an alias bomb) counts as not parsing, so it is refused instead of written.
    """
    suffix = os.path.splitext(name)[1].lower()
    try:
        if suffix == ".json":
            safeload.parse_json(text, _WRITE_CHECK_KIND)
        elif suffix == ".jsonl":
            for line in text.splitlines():
                if line.strip():
                    safeload.parse_json(line, _WRITE_CHECK_KIND)
        elif suffix in (".yaml", ".yml"):
            safeload.parse_yaml(text, _WRITE_CHECK_KIND)
    except ValueError:
        return False
    except Exception:  # yaml.YAMLError, DocumentTooComplex and friends
        return False
    return True


def _clean(path: str | os.PathLike[str], text: str) -> str:
    """``text`` with every credential masked; refused if masking would break the file's format."""
    clean = redact(text)
    if clean != text and not _structured_ok(os.fspath(path), clean):
        raise InvalidInput(
            f"refusing to write {os.path.basename(os.fspath(path))}: it holds a credential that cannot be masked "
            "without breaking the file's format; nothing was written",
            path=os.fspath(path),
            reason="credential_in_structure",
        )
    return clean


def atomic_write_text(
    path: Path, text: str, *, mode: int | None = None, root: str | os.PathLike[str] | None = None
) -> None:
    """Replace ``path`` with ``text`` (credentials masked) atomically: temp file + fsync + rename."""
    text = _clean(path, text)
    real = write_target(path, root)
    folder, name = os.path.split(real)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        else:
            try:
                os.chmod(tmp, os.stat(real, follow_symlinks=False).st_mode & 0o777)
            except FileNotFoundError:
                os.chmod(tmp, 0o644)
        os.replace(tmp, real)  # rename replaces the name itself: it never follows a symlink
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def append_line(path: Path, line: str, *, root: str | os.PathLike[str] | None = None) -> None:
    """Append one whole line (credentials masked) under the file's lock; never torn, interleaved or redirected."""
    if "\n" in line:
        raise ValueError("append_line takes a single line")
    data = (_clean(path, line) + "\n").encode("utf-8")
    with locked(path, root=root):
        fd = _open_nofollow(write_target(path, root), os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644, path)
        try:
            # A previous writer killed mid-line would leave no newline: start on a fresh line.
            size = os.fstat(fd).st_size
            if size > 0 and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
